/*
 * cpgload: the CPG load generator for corosync (libcpg, corosync 3).
 *
 * It is the corosync twin of this workspace's `bench cpg-load`: same command line, same
 * stdin/stdout protocol, same message format and latency files. The contract is written down
 * in bench/src/load.rs; this file follows it and adds nothing of its own.
 *
 *   cpgload --group NAME --members M [--sender I] --size BYTES [--rate R] [--batch N]
 *           --warmup-ms W --seconds-ms S --out DIR
 *
 * One thread, one CPG handle, one loop: submit when the next message is due, otherwise wait on
 * the CPG file descriptor until it is due (or until something arrives) and dispatch. Every
 * submit is one cpg_mcast_joined(CPG_TYPE_AGREED) with one iovec; --batch is accepted for
 * command-line compatibility and ignored. Details it shares with the Rust generator
 * (bench/src/cpgload.rs), so that both measure the same thing:
 *
 *  - While waiting for "start NS", stdin and the CPG descriptor are polled together, so
 *    callbacks keep flowing and configuration changes get their true times.
 *  - Every delivery is timed when it is dispatched and counted when that time is inside the
 *    window, whatever its content; latencies need a parsable header and sent_ns in the window.
 *  - A submit refused with CS_ERR_TRY_AGAIN is counted and retried after waiting up to 1 ms
 *    for a callback; a retried message gets a new sent_ns.
 *  - The drain ends when the own messages are all back and nothing was delivered for QUIET
 *    (receive-only: only the latter), at the latest after DRAIN.
 *  - Once the window is over, configuration changes in which processes only left (reason
 *    leave or procdown: other generators finishing) are not listed; node failures are.
 *  - At most SETUP_TIMEOUT for the --members members.
 *
 * Build: cc -O2 -Wall -o cpgload cpgload.c $(pkg-config --cflags --libs libcpg)
 */

#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <corosync/corotypes.h>
#include <corosync/cpg.h>

/* Contract constants (bench/src/load.rs: MAGIC, HEADER_LEN, SAMPLE, DRAIN). */
#define BENCH_MAGIC 0x424E4348u
#define HEADER_LEN 24
#define SAMPLE 16
#define DRAIN_NS 2000000000ull

/* Shared with the Rust generator: QUIET, RETRY_WAIT and the setup timeout. */
#define QUIET_NS 200000000ull
#define RETRY_WAIT_NS 1000000ull
#define SETUP_TIMEOUT_NS 60000000000ull

#define NS_PER_SEC 1000000000ull
#define NS_PER_MS 1000000ull

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                   */

static const char *cs_name(cs_error_t e)
{
	switch (e) {
	case CS_OK: return "CS_OK";
	case CS_ERR_LIBRARY: return "CS_ERR_LIBRARY";
	case CS_ERR_VERSION: return "CS_ERR_VERSION";
	case CS_ERR_INIT: return "CS_ERR_INIT";
	case CS_ERR_TIMEOUT: return "CS_ERR_TIMEOUT";
	case CS_ERR_TRY_AGAIN: return "CS_ERR_TRY_AGAIN";
	case CS_ERR_INVALID_PARAM: return "CS_ERR_INVALID_PARAM";
	case CS_ERR_NO_MEMORY: return "CS_ERR_NO_MEMORY";
	case CS_ERR_BAD_HANDLE: return "CS_ERR_BAD_HANDLE";
	case CS_ERR_BUSY: return "CS_ERR_BUSY";
	case CS_ERR_ACCESS: return "CS_ERR_ACCESS";
	case CS_ERR_NOT_EXIST: return "CS_ERR_NOT_EXIST";
	case CS_ERR_NAME_TOO_LONG: return "CS_ERR_NAME_TOO_LONG";
	case CS_ERR_EXIST: return "CS_ERR_EXIST";
	case CS_ERR_NO_SPACE: return "CS_ERR_NO_SPACE";
	case CS_ERR_INTERRUPT: return "CS_ERR_INTERRUPT";
	case CS_ERR_NAME_NOT_FOUND: return "CS_ERR_NAME_NOT_FOUND";
	case CS_ERR_NO_RESOURCES: return "CS_ERR_NO_RESOURCES";
	case CS_ERR_NOT_SUPPORTED: return "CS_ERR_NOT_SUPPORTED";
	case CS_ERR_BAD_OPERATION: return "CS_ERR_BAD_OPERATION";
	case CS_ERR_FAILED_OPERATION: return "CS_ERR_FAILED_OPERATION";
	case CS_ERR_MESSAGE_ERROR: return "CS_ERR_MESSAGE_ERROR";
	case CS_ERR_QUEUE_FULL: return "CS_ERR_QUEUE_FULL";
	case CS_ERR_QUEUE_NOT_AVAILABLE: return "CS_ERR_QUEUE_NOT_AVAILABLE";
	case CS_ERR_BAD_FLAGS: return "CS_ERR_BAD_FLAGS";
	case CS_ERR_TOO_BIG: return "CS_ERR_TOO_BIG";
	case CS_ERR_NO_SECTIONS: return "CS_ERR_NO_SECTIONS";
	case CS_ERR_CONTEXT_NOT_FOUND: return "CS_ERR_CONTEXT_NOT_FOUND";
	case CS_ERR_TOO_MANY_GROUPS: return "CS_ERR_TOO_MANY_GROUPS";
	case CS_ERR_SECURITY: return "CS_ERR_SECURITY";
	}
	return "unknown cs_error_t";
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("cpgload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* A libcpg call failed: name it and its cs_error_t, then exit 1. */
static void cs_die(const char *call, cs_error_t e)
{
	die("%s failed: %s (%d)", call, cs_name(e), (int)e);
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                            */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* For durations (drain, quiet time, setup timeout): not moved by clock adjustments. */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* A growable array of u32, written to disk as little-endian words. */
struct u32vec {
	uint32_t *v;
	size_t len, cap;
};

static void u32vec_push(struct u32vec *a, uint32_t x)
{
	if (a->len == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 4096;
		uint32_t *v = realloc(a->v, cap * sizeof *v);

		if (!v)
			die("out of memory (%zu latency entries)", cap);
		a->v = v;
		a->cap = cap;
	}
	a->v[a->len++] = x;
}

static void u32vec_write(const struct u32vec *a, const char *path)
{
	FILE *f = fopen(path, "wb");
	unsigned char b[4];

	if (!f)
		die("cannot create %s: %s", path, strerror(errno));
	for (size_t i = 0; i < a->len; i++) {
		put_u32(b, a->v[i]);
		if (fwrite(b, 1, 4, f) != 4)
			die("cannot write %s: %s", path, strerror(errno));
	}
	if (fclose(f) != 0)
		die("cannot write %s: %s", path, strerror(errno));
}

/* Microseconds from `sent` to `now`, 0 if the clock went backwards, saturated to u32. */
static uint32_t latency_us(uint64_t sent, uint64_t now)
{
	uint64_t us = now > sent ? (now - sent) / 1000 : 0;

	return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Writes `s` as a JSON string literal. */
static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* ---------------------------------------------------------------------------------------- */
/* State                                                                                    */

struct confchg {
	uint64_t ns;
	uint32_t members;
};

static struct {
	/* Command line. */
	const char *group;
	unsigned members_wanted;
	int sender; /* -1: receive only */
	size_t size;
	double rate; /* 0: unpaced */
	uint64_t warmup_ns, window_ns;
	const char *out;

	/* Identity. */
	unsigned int node;
	uint32_t pid;

	/* Window [win_start, win_end) in CLOCK_REALTIME ns. */
	uint64_t win_start, win_end;

	/* Counters of the report. */
	uint64_t sent, delivered, delivered_bytes, try_again;
	uint64_t own_back_in_window; /* own window messages delivered back */

	/* Own messages: next sequence number to submit, how many came back (any time). */
	uint64_t next_seq, own_back;

	/* The window is over; CLOCK_MONOTONIC time of the last delivery. */
	int draining;
	uint64_t last_delivery;

	/* Current group size, and every change seen. */
	size_t members_now;
	struct confchg *changes;
	size_t n_changes, cap_changes;

	struct u32vec self_lat, all_lat;
} st = { .sender = -1 };

static void on_deliver(cpg_handle_t handle, const struct cpg_name *group, uint32_t nodeid,
		       uint32_t pid, void *msg, size_t len)
{
	uint64_t now = now_ns();
	const unsigned char *m = msg;
	uint32_t sender;
	uint64_t seq, sent;
	int in_window_sent, own = nodeid == st.node && pid == st.pid;

	(void)handle;
	(void)group;
	st.last_delivery = mono_ns();
	if (now >= st.win_start && now < st.win_end) {
		st.delivered++;
		st.delivered_bytes += len;
	}
	if (own)
		st.own_back++;
	if (len < HEADER_LEN || get_u32(m) != BENCH_MAGIC)
		return;
	sender = get_u32(m + 4);
	seq = get_u64(m + 8);
	sent = get_u64(m + 16);
	in_window_sent = sent >= st.win_start && sent < st.win_end;

	if (own && in_window_sent) {
		st.own_back_in_window++;
		u32vec_push(&st.self_lat, latency_us(sent, now));
	}
	if (in_window_sent && seq % SAMPLE == 0) {
		u32vec_push(&st.all_lat, sender);
		u32vec_push(&st.all_lat, (uint32_t)seq);
		u32vec_push(&st.all_lat, latency_us(sent, now));
	}
}

static void on_confchg(cpg_handle_t handle, const struct cpg_name *group,
		       const struct cpg_address *members, size_t n_members,
		       const struct cpg_address *left, size_t n_left,
		       const struct cpg_address *joined, size_t n_joined)
{
	int only_leaving = n_joined == 0 && n_left > 0;

	(void)handle;
	(void)group;
	(void)members;
	(void)joined;
	st.members_now = n_members;
	for (size_t i = 0; i < n_left; i++)
		if (left[i].reason != CPG_REASON_LEAVE && left[i].reason != CPG_REASON_PROCDOWN)
			only_leaving = 0;
	/* After the window, generators that finish leave: not a membership event of interest. */
	if (st.draining && only_leaving)
		return;
	if (st.n_changes == st.cap_changes) {
		size_t cap = st.cap_changes ? st.cap_changes * 2 : 16;
		struct confchg *c = realloc(st.changes, cap * sizeof *c);

		if (!c)
			die("out of memory (%zu configuration changes)", cap);
		st.changes = c;
		st.cap_changes = cap;
	}
	st.changes[st.n_changes].ns = now_ns();
	st.changes[st.n_changes].members = (uint32_t)n_members;
	st.n_changes++;
}

/* ---------------------------------------------------------------------------------------- */
/* The loop's building blocks                                                               */

static cpg_handle_t handle;
static int cpg_fd;

/* Dispatches whatever is pending without blocking. */
static void dispatch(void)
{
	cs_error_t e = cpg_dispatch(handle, CS_DISPATCH_ALL);

	if (e != CS_OK && e != CS_ERR_TRY_AGAIN)
		cs_die("cpg_dispatch", e);
}

/* Waits until the CPG descriptor (or, with `with_stdin`, standard input) is readable or
 * `timeout` ns pass, then dispatches. Returns whether stdin is readable (or at its end). */
static int wait_dispatch_stdin(uint64_t timeout, int with_stdin)
{
	struct pollfd p[2] = {
		{ .fd = cpg_fd, .events = POLLIN },
		{ .fd = STDIN_FILENO, .events = POLLIN },
	};
	struct timespec ts = {
		.tv_sec = (time_t)(timeout / NS_PER_SEC),
		.tv_nsec = (long)(timeout % NS_PER_SEC),
	};
	int r = ppoll(p, with_stdin ? 2 : 1, &ts, NULL);

	if (r < 0 && errno != EINTR)
		die("poll on the CPG descriptor failed: %s", strerror(errno));
	if (r > 0 && (p[0].revents & (POLLERR | POLLHUP | POLLNVAL)) && !(p[0].revents & POLLIN))
		die("the connection to corosync was closed (poll revents 0x%x)", p[0].revents);
	dispatch();
	return with_stdin && r > 0 && p[1].revents != 0;
}

/* Waits until the CPG descriptor is readable or `deadline` (CLOCK_REALTIME ns) passes, then
 * dispatches. */
static void wait_and_dispatch(uint64_t deadline)
{
	uint64_t now = now_ns();

	(void)wait_dispatch_stdin(deadline > now ? deadline - now : 0, 0);
}

/* Reads the "start NS" line from stdin while dispatching callbacks; returns NS. */
static uint64_t read_start(void)
{
	char line[128];
	size_t len = 0;
	unsigned long long start;
	char *nl;

	for (;;) {
		ssize_t n;

		if (!wait_dispatch_stdin(100 * NS_PER_MS, 1))
			continue;
		n = read(STDIN_FILENO, line + len, sizeof line - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("reading stdin: %s", strerror(errno));
		if (n == 0)
			die("stdin closed before \"start NS\"");
		len += (size_t)n;
		line[len] = 0;
		nl = strchr(line, '\n');
		if (nl)
			break;
		if (len == sizeof line - 1)
			die("expected \"start NS\", got a longer line: %s", line);
	}
	*nl = 0;
	if (sscanf(line, "start %llu", &start) != 1)
		die("expected \"start NS\", got: %s", line);
	return (uint64_t)start;
}

/* ---------------------------------------------------------------------------------------- */
/* Command line                                                                             */

static void usage(void)
{
	fprintf(stderr,
		"usage: cpgload --group NAME --members M [--sender I] --size BYTES [--rate R]\n"
		"               [--batch N] --warmup-ms W --seconds-ms S --out DIR\n");
	exit(1);
}

static unsigned long long parse_uint(const char *opt, const char *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-')
		die("%s: not a non-negative integer: '%s'", opt, v);
	return x;
}

static void parse_args(int argc, char **argv)
{
	int have_warmup = 0, have_window = 0;

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val;
		char *eq;
		char name[64];

		if (strncmp(opt, "--", 2) != 0)
			usage();
		/* Both "--opt value" and "--opt=value". */
		eq = strchr(opt, '=');
		if (eq) {
			size_t n = (size_t)(eq - opt);

			if (n >= sizeof name)
				usage();
			memcpy(name, opt, n);
			name[n] = 0;
			val = eq + 1;
		} else {
			if (strlen(opt) >= sizeof name || i + 1 >= argc)
				usage();
			strcpy(name, opt);
			val = argv[++i];
		}

		if (!strcmp(name, "--group")) {
			st.group = val;
		} else if (!strcmp(name, "--members")) {
			st.members_wanted = (unsigned)parse_uint(name, val);
		} else if (!strcmp(name, "--sender")) {
			unsigned long long s = parse_uint(name, val);

			if (s > INT_MAX)
				die("--sender: too large: %llu", s);
			st.sender = (int)s;
		} else if (!strcmp(name, "--size")) {
			st.size = (size_t)parse_uint(name, val);
		} else if (!strcmp(name, "--rate")) {
			char *end;

			st.rate = strtod(val, &end);
			if (end == val || *end || !(st.rate >= 0))
				die("--rate: not a non-negative number: '%s'", val);
		} else if (!strcmp(name, "--batch")) {
			(void)parse_uint(name, val); /* accepted, ignored: one message per call */
		} else if (!strcmp(name, "--warmup-ms")) {
			st.warmup_ns = parse_uint(name, val) * NS_PER_MS;
			have_warmup = 1;
		} else if (!strcmp(name, "--seconds-ms")) {
			st.window_ns = parse_uint(name, val) * NS_PER_MS;
			have_window = 1;
		} else if (!strcmp(name, "--out")) {
			st.out = val;
		} else {
			die("unknown option %s", name);
		}
	}
	if (!st.group || !st.members_wanted || !st.size || !have_warmup || !have_window || !st.out)
		usage();
	if (strlen(st.group) > CPG_MAX_NAME_LENGTH)
		die("--group: longer than %d bytes", CPG_MAX_NAME_LENGTH);
	if (st.size < HEADER_LEN)
		die("--size: at least %d bytes (the header), not %zu", HEADER_LEN, st.size);
}

/* ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	cpg_callbacks_t callbacks = { .cpg_deliver_fn = on_deliver, .cpg_confchg_fn = on_confchg };
	struct cpg_name name;
	cs_error_t e;
	char *outdir, self_path[PATH_MAX], all_path[PATH_MAX];
	uint64_t start, setup_end;
	unsigned char *buf;
	struct iovec iov;
	uint64_t interval_ns = 0, drain_end, now;

	parse_args(argc, argv);
	/* A harness that goes away must not kill us halfway through writing: EPIPE is enough. */
	signal(SIGPIPE, SIG_IGN);

	outdir = realpath(st.out, NULL);
	if (!outdir)
		die("--out %s: %s", st.out, strerror(errno));
	st.pid = (uint32_t)getpid();

	e = cpg_initialize(&handle, &callbacks);
	if (e != CS_OK)
		cs_die("cpg_initialize", e);
	e = cpg_fd_get(handle, &cpg_fd);
	if (e != CS_OK)
		cs_die("cpg_fd_get", e);
	e = cpg_local_get(handle, &st.node);
	if (e != CS_OK)
		cs_die("cpg_local_get", e);

	memset(&name, 0, sizeof name);
	name.length = (uint32_t)strlen(st.group);
	memcpy(name.value, st.group, name.length);
	do {
		e = cpg_join(handle, &name);
	} while (e == CS_ERR_TRY_AGAIN && (usleep(10000), 1));
	if (e != CS_OK)
		cs_die("cpg_join", e);

	/* 1. Wait for M members, then say ready. */
	st.win_start = st.win_end = UINT64_MAX; /* nothing counts before "start" */
	setup_end = mono_ns() + SETUP_TIMEOUT_NS;
	while (st.members_now < st.members_wanted) {
		if (mono_ns() >= setup_end)
			die("group %s has %zu of %u members after %llu s", st.group, st.members_now,
			    st.members_wanted, SETUP_TIMEOUT_NS / NS_PER_SEC);
		(void)wait_dispatch_stdin(100 * NS_PER_MS, 0);
	}
	printf("ready\n");
	if (fflush(stdout) != 0)
		die("writing \"ready\": %s", strerror(errno));

	/* 2. "start NS", callbacks flowing meanwhile. */
	start = read_start();
	st.win_start = start + st.warmup_ns;
	st.win_end = st.win_start + st.window_ns;

	buf = calloc(1, st.size);
	if (!buf)
		die("out of memory (message of %zu bytes)", st.size);
	iov.iov_base = buf;
	iov.iov_len = st.size;
	if (st.sender >= 0) {
		put_u32(buf, BENCH_MAGIC);
		put_u32(buf + 4, (uint32_t)st.sender);
	}
	if (st.rate > 0)
		interval_ns = (uint64_t)((double)NS_PER_SEC / st.rate);

	/* 3. Wait for the start time, dispatching meanwhile. */
	while ((now = now_ns()) < start)
		wait_and_dispatch(start);

	/* 4. Send during [start, win_end); receive all along. */
	while ((now = now_ns()) < st.win_end) {
		uint64_t due;

		if (st.sender < 0) {
			wait_and_dispatch(st.win_end);
			continue;
		}
		/* Paced: message k is due at start + k * interval (open loop: a stall is caught
		 * up by sending back to back). Unpaced: always due. */
		due = interval_ns ? start + st.next_seq * interval_ns : now;
		if (due > now) {
			wait_and_dispatch(due < st.win_end ? due : st.win_end);
			continue;
		}
		put_u64(buf + 8, st.next_seq);
		now = now_ns(); /* sent_ns: just before the submit call */
		put_u64(buf + 16, now);
		e = cpg_mcast_joined(handle, CPG_TYPE_AGREED, &iov, 1);
		if (e == CS_OK) {
			if (now >= st.win_start && now < st.win_end)
				st.sent++;
			st.next_seq++;
			dispatch();
		} else if (e == CS_ERR_TRY_AGAIN) {
			/* Flow control: let deliveries through, wait a little, then retry. */
			st.try_again++;
			(void)wait_dispatch_stdin(RETRY_WAIT_NS, 0);
		} else {
			cs_die("cpg_mcast_joined", e);
		}
	}

	/* 5. Drain: until the own messages are all back and deliveries have gone quiet, at most
	 * DRAIN. */
	st.draining = 1;
	now = mono_ns();
	drain_end = now + DRAIN_NS;
	for (;;) {
		uint64_t wait, quiet_end;

		now = mono_ns();
		quiet_end = st.last_delivery + QUIET_NS;
		if (now >= drain_end || (st.own_back >= st.next_seq && now >= quiet_end))
			break;
		wait = drain_end - now;
		if (quiet_end > now && quiet_end - now < wait)
			wait = quiet_end - now;
		(void)wait_dispatch_stdin(wait, 0);
	}

	/* 6. Files and report. */
	if (snprintf(self_path, sizeof self_path, "%s/self-%u-%u.lat", outdir, st.node, st.pid) >=
		    (int)sizeof self_path ||
	    snprintf(all_path, sizeof all_path, "%s/all-%u-%u.lat", outdir, st.node, st.pid) >=
		    (int)sizeof all_path)
		die("--out %s: path too long", outdir);
	u32vec_write(&st.self_lat, self_path);
	u32vec_write(&st.all_lat, all_path);

	printf("{\"node\":%u,\"pid\":%u,\"sender\":", st.node, st.pid);
	if (st.sender >= 0)
		printf("%d", st.sender);
	else
		printf("null");
	printf(",\"sent\":%llu,\"delivered\":%llu,\"delivered_bytes\":%llu,\"try_again\":%llu,"
	       "\"missing_own\":%llu,\"confchg\":[",
	       (unsigned long long)st.sent, (unsigned long long)st.delivered,
	       (unsigned long long)st.delivered_bytes, (unsigned long long)st.try_again,
	       (unsigned long long)(st.sent > st.own_back_in_window
					    ? st.sent - st.own_back_in_window
					    : 0));
	for (size_t i = 0; i < st.n_changes; i++)
		printf("%s[%llu,%u]", i ? "," : "", (unsigned long long)st.changes[i].ns,
		       st.changes[i].members);
	printf("],\"self_lat_file\":");
	json_string(stdout, self_path);
	printf(",\"all_lat_file\":");
	json_string(stdout, all_path);
	printf("}\n");
	if (fflush(stdout) != 0)
		die("cannot write the report to stdout: %s", strerror(errno));

	/* The report is out: a failing finalize is worth a note, not a failed run. */
	e = cpg_finalize(handle);
	if (e != CS_OK)
		fprintf(stderr, "cpgload: cpg_finalize failed: %s (%d)\n", cs_name(e), (int)e);
	free(buf);
	free(outdir);
	return 0;
}
