//! EAL initialisation (once per process) and `rte_errno` text.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::sync::Mutex;

use super::DpdkError;

/// The process-wide EAL state. `rte_eal_init` can run once per process and cannot be retried
/// after a failure, so the first outcome is remembered.
enum Eal {
    Uninit,
    /// Initialised with these arguments (program name first).
    Ready(Vec<String>),
    /// The first init failed with this message.
    Failed(String),
}

static EAL: Mutex<Eal> = Mutex::new(Eal::Uninit);

/// The program name put in front of the EAL arguments.
const PROGRAM: &str = "openais-dataplane";

/// `rte_errno` of the calling thread and its text.
pub(crate) fn errno_text() -> String {
    // SAFETY: shim_rte_errno reads the calling thread's rte_errno; no EAL state is needed.
    let e = unsafe { dpdk_sys::shim_rte_errno() };
    strerror(e)
}

/// The text of a DPDK or libc error number (positive).
pub(crate) fn strerror(e: c_int) -> String {
    // SAFETY: rte_strerror accepts any number and returns a pointer to a static or
    // thread-local NUL-terminated string, valid until the next call on this thread; we copy it
    // at once.
    let s = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(e)) };
    format!("{} (errno {e})", s.to_string_lossy())
}

/// Initialises EAL with `args` (without the program name, which is prepended) unless it was
/// already initialised in this process. A later call with other arguments reuses the first
/// initialisation and ignores its own arguments (EAL cannot be re-initialised; a debug message
/// notes the difference).
///
/// # Errors
/// [`DpdkError::Eal`] when `rte_eal_init` fails now or failed in an earlier call.
pub fn init(args: &[String]) -> Result<(), DpdkError> {
    let mut state = EAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match &*state {
        Eal::Ready(first) => {
            if first[1..] != *args {
                tracing::debug!(first = ?first, ignored = ?args,
                    "EAL already initialised in this process; reusing it");
            }
            return Ok(());
        }
        Eal::Failed(msg) => {
            return Err(DpdkError::Eal {
                args: args.join(" "),
                reason: format!("an earlier rte_eal_init in this process failed: {msg}"),
            });
        }
        Eal::Uninit => {}
    }
    let mut all = Vec::with_capacity(args.len() + 1);
    all.push(PROGRAM.to_owned());
    all.extend(args.iter().cloned());
    let owned: Vec<CString> = all
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| DpdkError::Eal {
            args: args.join(" "),
            reason: "an argument contains a NUL byte".into(),
        })?;
    let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr().cast_mut()).collect();
    let argc = c_int::try_from(argv.len()).map_err(|_| DpdkError::Eal {
        args: args.join(" "),
        reason: "too many arguments".into(),
    })?;
    // EAL pins the calling thread to its main lcore (`-l`/`--main-lcore`). That thread is
    // whichever thread opened the first transport (aisexec's main thread), and threads it
    // creates afterwards would inherit the single CPU: all of aisexec would share the Totem
    // core. Put the thread's own mask back; the Totem thread is pinned where the
    // configuration says (aisexec.cpu).
    let saved = crate::affinity::SavedMask::save();
    // SAFETY: argv holds argc pointers to NUL-terminated strings that outlive the call (EAL
    // may permute the array but keeps no reference and frees nothing); the mutex guarantees
    // this runs at most once per process.
    let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if let Ok(mask) = &saved
        && let Err(e) = mask.restore()
    {
        tracing::warn!("cannot restore this thread's CPU mask after EAL pinned it: {e}");
    }
    if rc < 0 {
        let msg = errno_text();
        *state = Eal::Failed(msg.clone());
        return Err(DpdkError::Eal {
            args: args.join(" "),
            reason: msg,
        });
    }
    *state = Eal::Ready(all);
    Ok(())
}

/// Whether EAL is initialised in this process.
pub(crate) fn ready() -> bool {
    matches!(
        *EAL.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        Eal::Ready(_)
    )
}
