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
//! If the kernel refuses the fork, the records are written here, in the
//! pause, as they would have been without a child.

use wasnap_journal::{DetachedTicket, DetachedWrite};

/// Snapshots that store at least this much memory are written by a child
/// process; smaller ones are written in the pause, which is quicker than a
/// fork for them (`run-bench --snapshots` prints both kinds).
pub const FORK_MIN_BYTES: usize = 32 << 20;

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

/// The child's exit code when its write failed without an OS error code.
const FAILED_WITHOUT_CODE: i32 = 255;

/// Writes `write` in a child process and reports to `ticket` when it ends
/// (from a thread of this process). Returns whether a child does the
/// writing (`false`: it was written here, the fork being refused).
pub(crate) fn write_in_child(mut write: DetachedWrite<'_>, ticket: DetachedTicket) -> bool {
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
    if let Err(e) = waiter {
        tracing::debug!(error = %e, "cannot start a thread to wait for a snapshot writer; writing in the pause");
        ticket.finish(write.write_out());
        return false;
    }
    // SAFETY: fork in a multi-threaded process. The child runs only
    // `DetachedWrite::write_out` (write(2) calls and checksums: it allocates
    // nothing and takes no lock, so no lock another thread held at the fork
    // can block it) and then `_exit`, which runs no destructor or exit
    // handler of the parent's.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match write.write_out() {
            Ok(()) => 0,
            Err(e) => e
                .raw_os_error()
                .filter(|code| (1..FAILED_WITHOUT_CODE).contains(code))
                .unwrap_or(FAILED_WITHOUT_CODE),
        };
        // SAFETY: ends the child at once (see above); nothing of the
        // parent's runs in it.
        unsafe { libc::_exit(code) }
    }
    if pid < 0 {
        let refused = std::io::Error::last_os_error();
        tracing::debug!(error = %refused, "cannot fork a snapshot writer; writing in the pause");
        ticket.finish(write.write_out());
        return false;
    }
    // The parent's copy of the records is not needed: the child has its own.
    drop(write);
    if let Err(std::sync::mpsc::SendError((pid, ticket))) = hand_over.send((pid, ticket)) {
        ticket.finish(wait_for(pid));
    }
    true
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
            FAILED_WITHOUT_CODE => Err(std::io::Error::other(format!(
                "the snapshot writer process {pid} failed"
            ))),
            code => Err(std::io::Error::from_raw_os_error(code)),
        };
    }
    if libc::WIFSIGNALED(status) {
        return Err(std::io::Error::other(format!(
            "the snapshot writer process {pid} was killed by signal {}",
            libc::WTERMSIG(status)
        )));
    }
    Err(std::io::Error::other(format!(
        "the snapshot writer process {pid} ended with status {status:#x}"
    )))
}
