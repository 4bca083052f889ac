//! Process-wide settings of the C library's allocator, for long-running daemons.
//!
//! glibc's `malloc` gives the top of its heap back to the kernel once more than 128 KiB of it
//! is free (its trim threshold), and serves requests from a threshold on (128 KiB at first,
//! raised as such blocks are freed) with a mapping of their own. A daemon whose buffers come
//! and go in bursts (the executive's encoded messages, the Totem thread's 64 KiB frame
//! chunks) then has its pages unmapped at the end of one burst and faulted in again, zeroed,
//! in the next: about 15 000 page faults a second for three executives at the maximum at MTU
//! 9000 (docs/performance.md). [`keep_freed_memory`] raises both thresholds, so freed memory
//! stays with the process for the next burst.
//!
//! This is the process's allocator, shared by every thread and library in it: call it from
//! a daemon's `main`, never from a library that applications link.

#![allow(unsafe_code)]

/// What [`keep_freed_memory`] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapSettings {
    /// Free bytes at the top of the heap kept rather than given back to the kernel.
    pub trim_threshold: usize,
    /// Requests of at least this many bytes get a mapping of their own (unmapped when freed).
    pub mmap_threshold: usize,
}

impl Default for HeapSettings {
    /// 64 MiB kept, mappings from 4 MiB: a daemon's bursts of frames and messages (at most a
    /// few MiB at once) are served from memory it already has, and the memory it keeps free
    /// is bounded by its own peak.
    fn default() -> Self {
        HeapSettings {
            trim_threshold: 64 << 20,
            mmap_threshold: 4 << 20,
        }
    }
}

/// Applies `settings` to this process's allocator. Returns false when the C library does not
/// take them (not glibc, or a value it refuses); the allocator then keeps its defaults, which
/// costs page faults, not correctness.
pub fn keep_freed_memory(settings: HeapSettings) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let (Ok(trim), Ok(mmap)) = (
            libc::c_int::try_from(settings.trim_threshold),
            libc::c_int::try_from(settings.mmap_threshold),
        ) else {
            return false;
        };
        // SAFETY: `mallopt` only changes the allocator's parameters; it takes plain integers
        // and is safe to call from any thread at any time.
        let trim_ok = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, trim) } == 1;
        // SAFETY: as above.
        let mmap_ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, mmap) } == 1;
        trim_ok && mmap_ok
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = settings;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc takes the default settings; a value the C library cannot take is reported, not
    /// ignored.
    #[test]
    fn glibc_takes_the_settings_and_refusals_are_reported() {
        assert!(keep_freed_memory(HeapSettings::default()));
        assert!(!keep_freed_memory(HeapSettings {
            trim_threshold: usize::MAX,
            mmap_threshold: 4 << 20,
        }));
        // Back to the defaults for the rest of this test process.
        assert!(keep_freed_memory(HeapSettings::default()));
    }

    /// With the settings, memory freed in a burst is not given back: allocating the same
    /// burst again faults in (almost) no new pages.
    #[test]
    fn a_second_burst_faults_in_no_new_pages() {
        assert!(keep_freed_memory(HeapSettings::default()));
        let minor_faults = || -> u64 {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split_whitespace().nth(7).unwrap().parse().unwrap()
        };
        let burst = || {
            // 8 MiB in 1 KiB blocks, written, then all freed: the top of the heap.
            let blocks: Vec<Vec<u8>> = (0..8192).map(|i| vec![i as u8; 1024]).collect();
            assert!(blocks.iter().enumerate().all(|(i, b)| b[0] == i as u8));
        };
        burst();
        let before = minor_faults();
        burst();
        let faults = minor_faults() - before;
        // 8 MiB given back and taken again would be 2048 faults of 4 KiB pages.
        assert!(
            faults < 200,
            "{faults} page faults for a burst already served once"
        );
    }
}
