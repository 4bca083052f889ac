//! Pinning the calling thread to one CPU (`sched_setaffinity(2)`) and giving it a nice value
//! of its own (`setpriority(2)`), for the Totem driver thread. Linux only.

#![allow(unsafe_code)]

use std::io;

/// Why [`pin_current_thread`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AffinityError {
    /// The CPU number does not fit in a `cpu_set_t`.
    #[error("cannot pin to CPU {cpu}: CPU numbers go up to {max}")]
    OutOfRange {
        /// The CPU asked for.
        cpu: usize,
        /// The largest CPU number a `cpu_set_t` holds.
        max: usize,
    },
    /// The kernel refused (for example, the CPU is offline or outside the process's cpuset).
    #[error("cannot pin the thread to CPU {cpu}")]
    Os {
        /// The CPU asked for.
        cpu: usize,
        /// The error from `sched_setaffinity`.
        #[source]
        source: io::Error,
    },
}

/// Restricts the calling thread to run only on CPU `cpu` (numbered as in `/proc/cpuinfo`).
///
/// # Errors
/// [`AffinityError::OutOfRange`] when `cpu` does not fit in a `cpu_set_t`,
/// [`AffinityError::Os`] when the kernel refuses the mask.
pub fn pin_current_thread(cpu: usize) -> Result<(), AffinityError> {
    let setsize = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    if cpu >= setsize {
        return Err(AffinityError::OutOfRange {
            cpu,
            max: setsize.saturating_sub(1),
        });
    }
    // SAFETY: `cpu_set_t` is a plain bit array for which all-zero bytes are a valid (empty)
    // value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed `cpu_set_t`, and `cpu < CPU_SETSIZE`
    // (checked above), so `CPU_SET` writes inside the bit array.
    unsafe {
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
    }
    // SAFETY: pid 0 means the calling thread; the pointer and size describe `set`, which is
    // alive and initialised for the whole call, and the kernel only reads it.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(AffinityError::Os {
            cpu,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Why [`set_current_thread_nice`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NiceError {
    /// The value is outside nice(1)'s range.
    #[error("nice value {nice} is outside -20..=19")]
    OutOfRange {
        /// The value asked for.
        nice: i32,
    },
    /// The kernel refused: a value below the thread's current one needs `CAP_SYS_NICE` or a
    /// high enough `RLIMIT_NICE`.
    #[error("cannot set the thread's nice value to {nice}")]
    Os {
        /// The value asked for.
        nice: i32,
        /// The error from `setpriority`.
        #[source]
        source: io::Error,
    },
}

/// Gives the calling thread, and only it, the nice value `nice` (-20, the most CPU, to 19, the
/// least; 0 is the default). On Linux the nice value belongs to each thread, so the process's
/// other threads keep theirs; threads the caller starts afterwards inherit it.
///
/// # Errors
/// [`NiceError::OutOfRange`] outside -20..=19, [`NiceError::Os`] when the kernel refuses
/// (lowering the value without `CAP_SYS_NICE`).
pub fn set_current_thread_nice(nice: i32) -> Result<(), NiceError> {
    if !(-20..=19).contains(&nice) {
        return Err(NiceError::OutOfRange { nice });
    }
    // SAFETY: `gettid` takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    let who = libc::id_t::try_from(tid).unwrap_or(0);
    // SAFETY: plain integer arguments; `who` names the calling thread (0, if the conversion
    // ever failed, names the caller too).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice) };
    if rc != 0 {
        return Err(NiceError::Os {
            nice,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The calling thread's CPU mask, saved to be put back after a library changed it (DPDK's
/// `rte_eal_init` pins the thread that calls it to EAL's main lcore, and every thread that
/// thread creates later would inherit that single CPU).
#[cfg(feature = "dpdk")]
pub(crate) struct SavedMask(libc::cpu_set_t);

#[cfg(feature = "dpdk")]
impl SavedMask {
    /// Saves the calling thread's mask.
    pub(crate) fn save() -> io::Result<SavedMask> {
        // SAFETY: all-zero bytes are a valid (empty) `cpu_set_t`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`, which is
        // alive for the call and written by the kernel only within its size.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SavedMask(set))
    }

    /// Gives the calling thread the saved mask again.
    pub(crate) fn restore(&self) -> io::Result<()> {
        // SAFETY: pid 0 is the calling thread; the pointer and size describe the saved set,
        // alive and initialised for the whole call; the kernel only reads it.
        let rc =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(feature = "dpdk")]
impl std::fmt::Debug for SavedMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedMask").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_a_thread_to_cpu_0() {
        // Assumes CPU 0 is online and in this process's cpuset (true on the 2-core test box).
        std::thread::spawn(|| pin_current_thread(0))
            .join()
            .expect("thread")
            .expect("pin to CPU 0");
    }

    #[test]
    fn out_of_range_cpu_is_named() {
        let err = pin_current_thread(1 << 20).expect_err("no such CPU");
        assert!(err.to_string().contains("CPU 1048576"), "{err}");
    }

    /// The calling thread's nice value, from `/proc/thread-self/stat` (field 19).
    fn current_thread_nice() -> io::Result<i32> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
        stat.rfind(')')
            .and_then(|end| stat.get(end + 2..))
            .and_then(|rest| rest.split(' ').nth(16))
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| io::Error::other("unexpected /proc/thread-self/stat"))
    }

    #[test]
    fn nice_applies_to_the_calling_thread_only() {
        // Raising the value (less CPU) needs no privilege, so this runs as any user.
        let before = current_thread_nice().expect("own nice");
        let target = (before + 3).min(19);
        assert_ne!(target, before, "the test runs at nice 19: nothing to raise");
        let inside = std::thread::spawn(move || {
            set_current_thread_nice(target).expect("raise own nice");
            (target, current_thread_nice().expect("own nice"))
        })
        .join()
        .expect("thread");
        assert_eq!(inside.0, inside.1, "the thread has the value it set");
        assert_eq!(
            current_thread_nice().expect("own nice"),
            before,
            "the other threads keep theirs"
        );
    }

    #[test]
    fn nice_out_of_range_is_named() {
        for nice in [-21, 20, i32::MIN] {
            let err = set_current_thread_nice(nice).expect_err("outside the range");
            assert!(err.to_string().contains(&nice.to_string()), "{err}");
        }
    }

    #[test]
    fn missing_cpu_is_refused_and_named() {
        // CPU 1023 fits in a cpu_set_t but no test machine has it.
        let err = std::thread::spawn(|| pin_current_thread(1023))
            .join()
            .expect("thread")
            .expect_err("CPU 1023 is not online");
        assert!(err.to_string().contains("CPU 1023"), "{err}");
    }
}
