//! Large snapshots written by a forked child process, so that the program's
//! pause is the fork (copying page tables) rather than the copy of every
//! changed byte into the page cache.
//!
//! The child has the parent's memory as it was at the fork — the snapshot —
//! while the program goes on changing its own copy (the kernel copies a page
//! when either side writes it). The child writes the journal's detached
//! records (`JournalWriter::detach_write`) and exits; a thread of the parent
//! waits for it and reports the outcome to the writer, which hands nothing
//! else to the file meanwhile.
//!
//! Snapshots can follow each other faster than children write them. A
//! snapshot taken while a child still writes is written by a child too
//! (whatever its size), placed after the earlier one in the journal; the
//! children form a chain: each one, before writing, waits on a pipe for the
//! one before it to say (one byte) that it wrote everything. A child whose
//! predecessor failed writes nothing, so the journal never holds records
//! after a torn one.
//!
//! If the kernel refuses the fork, the records are written here, in the
//! pause (after the earlier child's), as they would have been without a
//! child.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use wasnap_journal::{DetachedTicket, DetachedWrite};

/// The read end of the pipe on which the last child says it wrote
/// everything: one byte, or end of file without it if it failed.
#[derive(Debug, Default)]
pub(crate) struct ChildChain {
    last_done: Option<OwnedFd>,
}

/// Snapshots that store at least this much memory are written by a child
/// process; smaller ones are written in the pause, which is quicker than a
/// fork for them (`run-bench --snapshots` prints both kinds).
pub const FORK_MIN_BYTES: usize = 4 << 20;

/// Environment variable that moves [`FORK_MIN_BYTES`]: a number of bytes
/// (`0`: every snapshot), or `off` (never).
pub const FORK_MIN_VAR: &str = "WASNAP_SNAPSHOT_CHILD_MIN";

/// The memory a snapshot must store to be written by a child process
/// (`None`: never), from [`FORK_MIN_VAR`] or the default. A value that is
/// not understood is reported once and the default used.
pub fn fork_min_bytes() -> Option<usize> {
    static CHOSEN: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| match std::env::var(FORK_MIN_VAR) {
        Err(_) => Some(FORK_MIN_BYTES),
        Ok(value) if value.trim() == "off" => None,
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                tracing::warn!(
                    "{FORK_MIN_VAR}={value:?} is neither a number of bytes nor `off`; using {FORK_MIN_BYTES}"
                );
                Some(FORK_MIN_BYTES)
            }
        },
    })
}

/// The niceness of a snapshot writer process (lower priority than the
/// program it writes for).
const WRITER_NICENESS: libc::c_int = 10;

/// The child's exit code when its write failed without an OS error code.
const FAILED_WITHOUT_CODE: i32 = 255;
/// The child's exit code when the child before it failed (it wrote nothing).
const EARLIER_FAILED: i32 = 254;

/// Writes `write` in a child process and reports to `ticket` when it ends
/// (from a thread of this process); the child waits for the previous one
/// in `chain` and becomes its last. Returns whether a child does the
/// writing (`false`: it was written here, the fork being refused).
pub(crate) fn write_in_child(
    mut write: DetachedWrite<'_>,
    ticket: DetachedTicket,
    chain: &mut ChildChain,
) -> bool {
    let earlier = chain.last_done.take();
    // The thread that will wait for the child starts first: should that
    // fail, nothing was forked yet.
    let (hand_over, handed) = std::sync::mpsc::channel::<(libc::pid_t, DetachedTicket)>();
    let waiter = std::thread::Builder::new()
        .name("wasnap-snapshot-child".into())
        .spawn(move || {
            if let Ok((pid, ticket)) = handed.recv() {
                ticket.finish(wait_for(pid));
            }
        });
    let done = match &waiter {
        Ok(_) => pipe().map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let done = match done {
        Ok(done) => done,
        Err(e) => {
            tracing::debug!(error = %e, "cannot start a snapshot writer process; writing in the pause");
            write_here(write, ticket, earlier);
            return false;
        }
    };
    let (done_read, done_write) = done;
    // SAFETY: fork in a multi-threaded process. The child runs only
    // `setpriority`, `read` and `write` on descriptors it owns, `DetachedWrite::write_out`
    // (write(2) calls and checksums: it allocates nothing and takes no
    // lock, so no lock another thread held at the fork can block it) and
    // then `_exit`, which runs no destructor or exit handler of the
    // parent's.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // The program comes first: on a machine with few cores, a writer
        // competing with it at the same priority stretches its pauses.
        // SAFETY: setpriority on this process only; no memory is passed.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WRITER_NICENESS) };
        let code = if earlier
            .as_ref()
            .is_some_and(|fd| !said_done(fd.as_raw_fd()))
        {
            EARLIER_FAILED
        } else {
            match write.write_out() {
                Ok(()) => {
                    say_done(done_write.as_raw_fd());
                    0
                }
                Err(e) => e
                    .raw_os_error()
                    .filter(|code| (1..EARLIER_FAILED).contains(code))
                    .unwrap_or(FAILED_WITHOUT_CODE),
            }
        };
        // SAFETY: ends the child at once (see above); nothing of the
        // parent's runs in it.
        unsafe { libc::_exit(code) }
    }
    if pid < 0 {
        let refused = std::io::Error::last_os_error();
        tracing::debug!(error = %refused, "cannot fork a snapshot writer; writing in the pause");
        write_here(write, ticket, earlier);
        return false;
    }
    // The child has its own copies of the records and of the descriptors;
    // only the read end of its pipe stays here, for the next child.
    drop(write);
    drop(done_write);
    drop(earlier);
    chain.last_done = Some(done_read);
    if let Err(std::sync::mpsc::SendError((pid, ticket))) = hand_over.send((pid, ticket)) {
        ticket.finish(wait_for(pid));
    }
    true
}

/// Writes here, after the earlier child (if any) said it wrote everything.
fn write_here(mut write: DetachedWrite<'_>, ticket: DetachedTicket, earlier: Option<OwnedFd>) {
    if earlier.is_some_and(|fd| !said_done(fd.as_raw_fd())) {
        ticket.finish(Err(std::io::Error::other(
            "the earlier snapshot's writer process failed",
        )));
        return;
    }
    ticket.finish(write.write_out());
}

/// A pipe whose ends are closed on exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1; 2];
    // SAFETY: `fds` is a valid array of two descriptors for the kernel to
    // fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks until the writer at the other end of `fd` says it wrote
/// everything (true) or ends without saying so (false). Allocates nothing.
fn said_done(fd: RawFd) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into `byte`, which outlives the call.
        let got = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if got == 1 {
            return true;
        }
        if got < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return false;
    }
}

/// Says on `fd` that everything was written. Allocates nothing.
fn say_done(fd: RawFd) {
    let byte = 1u8;
    loop {
        // SAFETY: writes one byte from `byte`, which outlives the call.
        let put = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        if put < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return;
    }
}

/// Waits for the child `pid` and says how its write went.
fn wait_for(pid: libc::pid_t) -> std::io::Result<()> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        let got = unsafe { libc::waitpid(pid, &mut status, 0) };
        if got == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(std::io::Error::other(format!(
                "cannot wait for the snapshot writer process {pid}: {e}"
            )));
        }
    }
    if libc::WIFEXITED(status) {
        return match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            EARLIER_FAILED => Err(std::io::Error::other(format!(
                "the snapshot writer process {pid} wrote nothing: the one before it failed"
            ))),
            FAILED_WITHOUT_CODE => Err(std::io::Error::other(format!(
                "the snapshot writer process {pid} failed"
            ))),
            code => Err(std::io::Error::from_raw_os_error(code)),
        };
    }
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        let name = match signal {
            libc::SIGXFSZ => " (SIGXFSZ: the file-size limit was reached)",
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGBUS => " (SIGBUS)",
            libc::SIGSEGV => " (SIGSEGV)",
            _ => "",
        };
        return Err(std::io::Error::other(format!(
            "the snapshot writer process {pid} was killed by signal {signal}{name}"
        )));
    }
    Err(std::io::Error::other(format!(
        "the snapshot writer process {pid} ended with status {status:#x}"
    )))
}
