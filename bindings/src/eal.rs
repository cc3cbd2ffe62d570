//! EAL start-up, lcore launching and shutdown.
//!
//! DPDK's environment abstraction layer initialises once per process (a
//! second `rte_eal_init` fails, even after `rte_eal_cleanup`), and its
//! memory backs every other object of this crate. So the lifecycle is kept in
//! one process-wide state word, and objects check it when they are created:
//!
//! * `Eal::init` moves it from *uninit* to *running* (or *failed*); a second
//!   call is refused before DPDK is asked.
//! * Mempools and rings count themselves in [`LIVE_OBJECTS`]. Dropping the
//!   [`Eal`] waits for the worker lcores, moves the state to *ended* and calls
//!   `rte_eal_cleanup` only if no such object is left: DPDK memory must not be
//!   torn down under a pool that mbufs or a configured port still point into.
//!   When objects remain, cleanup is skipped (the OS reclaims everything at
//!   exit) and a line on stderr says so.

use std::ffi::{c_char, c_int, c_void, CString};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::error::{complaint_lines, last_errno, strerror, DpdkError, EalError};
use crate::sys;

const UNINIT: u8 = 0;
const INITIALISING: u8 = 1;
const RUNNING: u8 = 2;
const FAILED: u8 = 3;
const ENDED: u8 = 4;

/// Process-wide EAL lifecycle (see the module doc).
static STATE: AtomicU8 = AtomicU8::new(UNINIT);

/// Mempools and rings whose DPDK memory has not been freed yet.
pub(crate) static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// The value [`Eal::wait`] returns for a closure that panicked.
pub const LCORE_PANICKED: i32 = i32::MIN;

fn state_name(s: u8) -> &'static str {
    match s {
        UNINIT => "not initialised",
        INITIALISING => "initialising",
        RUNNING => "running",
        FAILED => "failed",
        _ => "ended",
    }
}

/// True while DPDK objects may be created and used.
pub fn is_running() -> bool {
    STATE.load(Ordering::SeqCst) == RUNNING
}

/// Registers a new DPDK object (mempool, ring) that depends on EAL memory.
/// The count goes up before the state is checked, and `Eal::drop` changes
/// the state before it reads the count (both `SeqCst`), so either the
/// creator sees the EAL ending and backs out, or the EAL sees the object and
/// skips cleanup.
pub(crate) fn register_object(call: &'static str) -> Result<ObjectToken, DpdkError> {
    LIVE_OBJECTS.fetch_add(1, Ordering::SeqCst);
    if STATE.load(Ordering::SeqCst) != RUNNING {
        LIVE_OBJECTS.fetch_sub(1, Ordering::SeqCst);
        return Err(DpdkError::EalNotRunning { call });
    }
    Ok(ObjectToken(()))
}

/// Fails with `EalNotRunning` unless the EAL is up.
pub(crate) fn ensure_running(call: &'static str) -> Result<(), DpdkError> {
    if is_running() {
        Ok(())
    } else {
        Err(DpdkError::EalNotRunning { call })
    }
}

/// One count in [`LIVE_OBJECTS`]; released when the object's DPDK memory is
/// freed. Leaking it (an object that could not be freed) keeps the EAL from
/// being cleaned up, which is the point.
#[derive(Debug)]
pub(crate) struct ObjectToken(());

impl Drop for ObjectToken {
    fn drop(&mut self) {
        LIVE_OBJECTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The initialised EAL. Exactly one can exist per process.
///
/// It is neither `Send` nor `Sync`: the thread that called [`Eal::init`]
/// became DPDK's main lcore, and `rte_eal_remote_launch`/`rte_eal_wait_lcore`
/// may only be called from there.
///
/// Dropping it waits for every worker lcore to return (a worker that never
/// returns makes the drop hang, as `rte_eal_mp_wait_lcore` does), then
/// cleans DPDK up if no mempool or ring is left (see the module doc).
#[derive(Debug)]
pub struct Eal {
    main: u32,
    _main_thread_only: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises DPDK with `args` (everything after `argv[0]`; a program
    /// name is inserted). Runs `rte_eal_init` at most once per process: any
    /// later call returns [`EalError::AlreadyInitialized`] without calling
    /// DPDK.
    ///
    /// What is written to stderr during the call still reaches stderr, and
    /// is also kept: on failure it goes into the error, because that is
    /// where EAL's option parser names the option it rejected.
    ///
    /// The argument strings are leaked on purpose: EAL may keep pointers
    /// into `argv` for the life of the process.
    pub fn init<I, S>(args: I) -> Result<Eal, EalError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let mut c_args = Vec::with_capacity(args.len() + 1);
        c_args.push(CString::new("pias").expect("static name has no NUL"));
        for (index, arg) in args.iter().enumerate() {
            let c = CString::new(arg.as_str()).map_err(|_| EalError::NulInArgument {
                index,
                arg: arg.clone(),
            })?;
            c_args.push(c);
        }

        if let Err(prev) =
            STATE.compare_exchange(UNINIT, INITIALISING, Ordering::SeqCst, Ordering::SeqCst)
        {
            return Err(EalError::AlreadyInitialized {
                state: state_name(prev),
            });
        }

        let argv: &'static mut [*mut c_char] = Vec::leak(
            c_args
                .into_iter()
                .map(CString::into_raw)
                .chain(std::iter::once(ptr::null_mut()))
                .collect(),
        );
        let argc = (argv.len() - 1) as c_int;

        let tee = StderrTee::start();
        // SAFETY: argv is a NULL-terminated array of argc valid C strings
        // that is never freed (EAL may permute it and keep pointers into
        // it). The once-only state transition above guarantees this is the
        // only rte_eal_init call in the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        let errno = last_errno();
        let log = tee.map(StderrTee::finish).unwrap_or_default();

        if ret < 0 {
            STATE.store(FAILED, Ordering::SeqCst);
            let culprit = find_culprit(&log, &args);
            return Err(EalError::InitFailed {
                args,
                culprit,
                errno,
                dpdk_error: strerror(errno),
                eal_log: log,
            });
        }
        STATE.store(RUNNING, Ordering::SeqCst);
        // SAFETY: EAL is initialised; a plain getter.
        let main = unsafe { sys::rte_get_main_lcore() };
        Ok(Eal {
            main,
            _main_thread_only: PhantomData,
        })
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> u32 {
        self.main
    }

    /// Every enabled lcore except the main one, in id order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = u32::MAX; // rte_get_next_lcore(-1, ...) starts at 0
        loop {
            // SAFETY: EAL is initialised; rte_get_next_lcore only reads the
            // lcore table and returns RTE_MAX_LCORE past the last one.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
            if i >= sys::RTE_MAX_LCORE {
                return out;
            }
            out.push(i);
        }
    }

    /// Runs `f` on worker `lcore` (`rte_eal_remote_launch`). Its return value
    /// comes back through [`Eal::wait`]; a panic in `f` is caught there and
    /// reported as [`LCORE_PANICKED`]. If the launch is refused, `f` is
    /// dropped here (nothing leaks).
    pub fn launch<F>(&self, lcore: u32, f: F) -> Result<(), EalError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        let workers = self.worker_lcores();
        if !workers.contains(&lcore) {
            return Err(EalError::NotAWorker {
                lcore,
                main: self.main,
                workers,
            });
        }
        let arg = Box::into_raw(Box::new(f)).cast::<c_void>();
        // SAFETY: we are on the main lcore (Eal is !Send), `lcore` is an
        // enabled worker (checked above, so the index is in bounds), and
        // `arg` is a Box<F> that `trampoline::<F>` takes back exactly once.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline::<F>), arg, lcore) };
        if ret != 0 {
            // SAFETY: DPDK refused, so the worker never saw `arg`; we still
            // own the box.
            drop(unsafe { Box::from_raw(arg.cast::<F>()) });
            return Err(EalError::Launch {
                lcore,
                errno: -ret,
                dpdk_error: strerror(-ret),
            });
        }
        Ok(())
    }

    /// Waits for `lcore` to finish and returns what the function last
    /// launched there returned (DPDK keeps that value: waiting again returns
    /// it again; 0 if nothing was ever launched). For an lcore that is not a
    /// worker, returns `-EINVAL` without asking DPDK.
    pub fn wait(&self, lcore: u32) -> i32 {
        if lcore >= sys::RTE_MAX_LCORE || lcore == self.main {
            return -libc::EINVAL;
        }
        // SAFETY: main lcore only (Eal is !Send); lcore < RTE_MAX_LCORE.
        unsafe { sys::rte_eal_wait_lcore(lcore) }
    }

    /// Waits for every worker lcore.
    pub fn wait_all(&self) {
        // SAFETY: main lcore only; no preconditions beyond EAL being up.
        unsafe { sys::rte_eal_mp_wait_lcore() }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        self.wait_all();
        STATE.store(ENDED, Ordering::SeqCst);
        let live = LIVE_OBJECTS.load(Ordering::SeqCst);
        if live != 0 {
            eprintln!(
                "pias-dpdk: {live} mempool/ring object(s) still alive (or kept by a port that was not closed): skipping rte_eal_cleanup"
            );
            return;
        }
        // SAFETY: called once (Eal is unique and dropped once), on the main
        // lcore, after all workers returned and with no object of this crate
        // left that points into EAL memory.
        let ret = unsafe { sys::rte_eal_cleanup() };
        if ret != 0 {
            eprintln!("pias-dpdk: rte_eal_cleanup failed: {}", strerror(-ret));
        }
    }
}

extern "C" fn trampoline<F>(arg: *mut c_void) -> c_int
where
    F: FnOnce() -> i32 + Send + 'static,
{
    // SAFETY: `arg` is the Box<F> leaked by `launch`, handed to exactly one
    // run of this function.
    let f = unsafe { Box::from_raw(arg.cast::<F>()) };
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => LCORE_PANICKED,
    }
}

/// Copies everything written to fd 2 while it lives into a buffer, and
/// still passes it through to the real stderr as it arrives (so nothing is
/// hidden, even if EAL aborts mid-way). EAL's option parser reports the
/// option it rejected on stderr (getopt's "unrecognized option", EAL's
/// "invalid parameter for --x"), never through rte_errno; this is how the
/// error can name it.
struct StderrTee {
    saved: c_int,
    reader: std::thread::JoinHandle<Vec<u8>>,
}

impl StderrTee {
    fn start() -> Option<StderrTee> {
        let mut fds = [0 as c_int; 2];
        // SAFETY: plain fd syscalls on fds we create; on any failure
        // everything opened so far is closed and fd 2 is left untouched.
        unsafe {
            if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return None;
            }
            let saved = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3);
            let passthrough = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3);
            if saved < 0 || passthrough < 0 {
                for fd in [fds[0], fds[1], saved, passthrough] {
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
                return None;
            }
            libc::fflush(ptr::null_mut());
            if libc::dup2(fds[1], 2) < 0 {
                for fd in [fds[0], fds[1], saved, passthrough] {
                    libc::close(fd);
                }
                return None;
            }
            libc::close(fds[1]);
            let read_fd = fds[0];
            let reader = std::thread::Builder::new()
                .name("pias-eal-stderr".into())
                .spawn(move || {
                    let mut all = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        // SAFETY: reading into a local buffer from our pipe.
                        let n = libc::read(read_fd, buf.as_mut_ptr().cast(), buf.len());
                        if n < 0 && *libc::__errno_location() == libc::EINTR {
                            continue;
                        }
                        if n <= 0 {
                            break;
                        }
                        let chunk = &buf[..n as usize];
                        all.extend_from_slice(chunk);
                        let mut off = 0;
                        while off < chunk.len() {
                            // SAFETY: writing from a local buffer to our dup
                            // of the real stderr.
                            let w = libc::write(passthrough, chunk[off..].as_ptr().cast(), chunk.len() - off);
                            if w <= 0 {
                                break;
                            }
                            off += w as usize;
                        }
                    }
                    // SAFETY: both fds are owned by this thread.
                    libc::close(read_fd);
                    libc::close(passthrough);
                    all
                });
            match reader {
                Ok(reader) => Some(StderrTee { saved, reader }),
                Err(_) => {
                    libc::dup2(saved, 2);
                    libc::close(saved);
                    libc::close(read_fd);
                    libc::close(passthrough);
                    None
                }
            }
        }
    }

    /// Puts the real stderr back and returns what passed through.
    fn finish(self) -> String {
        // SAFETY: restoring fd 2 from our saved dup closes the pipe's last
        // write end, so the reader sees EOF and ends.
        unsafe {
            libc::fflush(ptr::null_mut());
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
        let bytes = self.reader.join().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The argument EAL's log complains about, if any: the last argument whose
/// option name (or value) appears in an error line.
fn find_culprit(log: &str, args: &[String]) -> Option<String> {
    let complaints: Vec<&str> = complaint_lines(log).collect();
    let mut best = None;
    for arg in args {
        let key = arg.trim_start_matches('-');
        let key = key.split('=').next().unwrap_or(key);
        if key.is_empty() {
            continue;
        }
        let named = |l: &&str| {
            l.contains(arg.as_str())
                || (arg.starts_with("--") && l.contains(&format!("--{key}")))
                || l.contains(&format!("'{key}'"))
        };
        if complaints.iter().any(named) {
            best = Some(arg.clone());
        }
    }
    best
}
