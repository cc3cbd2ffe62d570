//! Error types. Every error names the DPDK call that failed, the object it
//! was working on (port id and name, pool or ring name) and DPDK's own
//! description of the errno, so a log line is enough to diagnose it.

use std::ffi::CStr;

use crate::sys;

/// DPDK's text for an errno value (`rte_strerror`, which also knows DPDK's
/// private codes above `RTE_MIN_ERRNO`).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror works without EAL and returns a pointer to a
    // static string or to a per-thread buffer that stays valid until the next
    // call on this thread; it is copied out before anything else runs here.
    unsafe {
        let p = sys::rte_strerror(errno);
        if p.is_null() {
            format!("errno {errno}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// The calling thread's `rte_errno` (a per-thread variable behind a macro,
/// read through the C shim).
pub fn last_errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { sys::pias_errno() }
}

/// Errors from EAL start-up and lcore launching.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// `Eal::init` ran before in this process. DPDK cannot initialise twice,
    /// not even after a failed attempt or `rte_eal_cleanup`, so the second
    /// call is refused without touching DPDK.
    #[error("EAL was already initialised in this process (state: {state}); rte_eal_init runs at most once per process")]
    AlreadyInitialized {
        /// What became of the first attempt.
        state: &'static str,
    },
    /// An argument cannot be passed to C (it contains a NUL byte).
    #[error("EAL argument #{index} {arg:?} contains a NUL byte")]
    NulInArgument {
        /// Position in the caller's list (0 = first argument after `argv[0]`).
        index: usize,
        /// The argument as given.
        arg: String,
    },
    /// `rte_eal_init` returned an error.
    #[error(
        "rte_eal_init failed: {dpdk_error} (rte_errno {errno}){}; arguments: {args:?}{}",
        culprit.as_ref().map(|c| format!("; offending argument: {c:?}")).unwrap_or_default(),
        summarize_log(eal_log)
    )]
    InitFailed {
        /// The full argument list handed to EAL (`argv[0]` excluded).
        args: Vec<String>,
        /// The argument EAL complained about, when its log names one of them.
        culprit: Option<String>,
        /// `rte_errno` after the call.
        errno: i32,
        /// `rte_strerror(rte_errno)`.
        dpdk_error: String,
        /// Everything written to stderr during the attempt (EAL's log and
        /// getopt's complaints, which name the rejected option). The message
        /// shows only its error lines.
        eal_log: String,
    },
    /// The lcore is not an enabled worker lcore of this EAL.
    #[error("lcore {lcore} is not a worker lcore (main lcore is {main}, workers are {workers:?})")]
    NotAWorker {
        /// The lcore asked for.
        lcore: u32,
        /// The main lcore, which cannot be launched on.
        main: u32,
        /// The enabled worker lcores.
        workers: Vec<u32>,
    },
    /// `rte_eal_remote_launch` refused (the lcore is still running an
    /// earlier function: `wait` for it first).
    #[error("rte_eal_remote_launch on lcore {lcore} failed: {dpdk_error} (errno {errno})")]
    Launch {
        /// Target lcore.
        lcore: u32,
        /// Negative return value, made positive.
        errno: i32,
        /// `rte_strerror(errno)`.
        dpdk_error: String,
    },
}

/// Lines of EAL's start-up output that report a problem.
pub(crate) fn complaint_lines(log: &str) -> impl Iterator<Item = &str> {
    log.lines().map(str::trim).filter(|l| {
        let l = l.to_ascii_lowercase();
        ["invalid", "unrecognized", "unknown", "error", "cannot", "fail", "missing", "requires"]
            .iter()
            .any(|w| l.contains(w))
    })
}

fn summarize_log(log: &str) -> String {
    let mut lines: Vec<&str> = complaint_lines(log).collect();
    lines.dedup();
    if lines.is_empty() {
        String::new()
    } else {
        format!("; EAL said: {}", lines.join(" | "))
    }
}

/// Errors from DPDK objects: mempools, rings, ports and their queues.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// The object needs a running EAL (`Eal::init` succeeded and the `Eal`
    /// has not been dropped).
    #[error("{call}: EAL is not running (call Eal::init first; objects cannot be created after the Eal is dropped)")]
    EalNotRunning {
        /// The operation that was attempted.
        call: &'static str,
    },
    /// A DPDK call on a named object (pool, ring) failed.
    #[error("{call}({object:?}) failed: {dpdk_error} (errno {errno})")]
    Call {
        /// The DPDK function.
        call: &'static str,
        /// Name of the object it was called for.
        object: String,
        /// The errno (positive).
        errno: i32,
        /// `rte_strerror(errno)`.
        dpdk_error: String,
    },
    /// A DPDK call on an ethdev port failed.
    #[error("{call} on port {port} ({name}) failed: {dpdk_error} (errno {errno})")]
    Port {
        /// Port id.
        port: u16,
        /// Device name (`?` when DPDK no longer knows the port).
        name: String,
        /// The DPDK function.
        call: &'static str,
        /// The errno (positive).
        errno: i32,
        /// `rte_strerror(errno)`.
        dpdk_error: String,
    },
    /// A caller-supplied value is out of range before DPDK is even asked.
    #[error("{call}: invalid argument: {what}")]
    InvalidArgument {
        /// The operation.
        call: &'static str,
        /// What is wrong with which value.
        what: String,
    },
    /// A queue handle was already handed out and has not been dropped.
    #[error("port {port} ({name}) {dir} queue {queue} is already taken by another handle")]
    QueueTaken {
        /// Port id.
        port: u16,
        /// Device name.
        name: String,
        /// `rx` or `tx`.
        dir: &'static str,
        /// Queue index.
        queue: u16,
    },
    /// The port's queues are in use by live handles, so it cannot be
    /// reconfigured or closed (a handle would then burst on a freed queue).
    #[error("{call} on port {port} ({name}): {rx} rx and {tx} tx queue handles are still alive; drop them first")]
    QueuesInUse {
        /// The operation that was refused.
        call: &'static str,
        /// Port id.
        port: u16,
        /// Device name.
        name: String,
        /// Live rx handles.
        rx: usize,
        /// Live tx handles.
        tx: usize,
    },
}

impl DpdkError {
    /// The errno DPDK reported, when the error came from DPDK.
    pub fn errno(&self) -> Option<i32> {
        match self {
            DpdkError::Call { errno, .. } | DpdkError::Port { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    pub(crate) fn call(call: &'static str, object: &str, errno: i32) -> Self {
        let errno = errno.abs();
        DpdkError::Call {
            call,
            object: object.to_owned(),
            errno,
            dpdk_error: strerror(errno),
        }
    }
}

/// Errors from packet-buffer operations. None of them changes the mbuf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MbufError {
    /// The mempool had no free mbuf.
    #[error("mempool {pool:?} is empty: cannot allocate an mbuf")]
    PoolEmpty {
        /// Pool name.
        pool: String,
    },
    /// Not enough headroom in front of the data.
    #[error("prepend of {requested} bytes: only {available} bytes of headroom")]
    NoHeadroom {
        /// Bytes asked for.
        requested: usize,
        /// Headroom there is.
        available: usize,
    },
    /// Not enough tailroom after the data (in the last segment).
    #[error("append of {requested} bytes: only {available} bytes of tailroom")]
    NoTailroom {
        /// Bytes asked for.
        requested: usize,
        /// Tailroom there is.
        available: usize,
    },
    /// Removing more bytes than the segment holds.
    #[error("{op} of {requested} bytes: the segment holds only {len} bytes")]
    TooShort {
        /// `adj` or `trim`.
        op: &'static str,
        /// Bytes asked for.
        requested: usize,
        /// Bytes there are.
        len: usize,
    },
}
