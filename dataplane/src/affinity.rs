//! Pinning the calling thread to one CPU (`sched_setaffinity(2)`), for the Totem driver
//! thread. Linux only.

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
