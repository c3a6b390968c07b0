//! One writer per journal file: the writer holds an exclusive `flock` on
//! the journal for as long as it is open (`Journal::open` takes it before it
//! reads, truncates or appends anything). A second writer, or a compaction
//! of a journal being written, is refused with the holder's pid, which the
//! kernel lists in `/proc/locks`. Readers never take the lock. The lock is
//! the kernel's: it goes away with the process, however it ends.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::JournalError;

/// Refuses a path that exists and is not a regular file (following
/// links), before anything opens it: opening a FIFO for reading blocks until
/// a writer comes, and a device or directory is no journal.
pub fn require_regular_file(path: &Path) -> Result<(), JournalError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // Missing: the caller says so in its own words (or creates it).
        Err(_) => return Ok(()),
    };
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        return Ok(());
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(JournalError::NotAFile {
        path: path.to_owned(),
        kind,
    })
}

/// How long a writer waits for a lock left to the snapshot writer (a
/// forked child) of a process that has ended, before refusing.
pub const ENDED_HOLDER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Takes the writer lock of the journal `file` (at `path`), or says who
/// holds it.
///
/// The lock belongs to the open file, so a child process that a writer
/// forked to write a snapshot holds it too, until it has written the
/// snapshot, even if the writer itself ended (killed, say); the kernel
/// still names the writer. A holder that has ended is such a case: the lock
/// is waited for (up to [`ENDED_HOLDER_WAIT`]) instead of refused, since
/// the snapshot lands in a moment and nobody will write after it.
pub fn lock_for_writing(file: &File, path: &Path) -> Result<(), JournalError> {
    let waiting_since = std::time::Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = holder(file);
                let ended = holder.is_some_and(process_ended);
                if !ended || waiting_since.elapsed() >= ENDED_HOLDER_WAIT {
                    return Err(JournalError::Locked {
                        path: path.to_owned(),
                        holder,
                    });
                }
                if !said && waiting_since.elapsed() >= std::time::Duration::from_millis(500) {
                    tracing::info!(
                        "{}: waiting for the snapshot writer of process {} (which has ended) to finish",
                        path.display(),
                        holder.unwrap_or_default()
                    );
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(JournalError::Io {
                    path: path.to_owned(),
                    what: "cannot lock the journal for writing",
                    source,
                })
            }
        }
    }
}

/// Whether process `pid` has ended (gone, or a zombie waiting to be reaped).
fn process_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S …": the state follows the last parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

/// The pid holding a `flock` on `file`, from `/proc/locks` (lines such as
/// `1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF`, device in hex).
fn holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    // The kernel's encoding of dev_t: major and minor, as /proc prints them.
    let (major, minor) = (
        ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff),
        ((dev >> 12) & 0xffff_ff00) | (dev & 0xff),
    );
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, &wanted)
}

fn holder_in(locks: &str, wanted: &str) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "N:", kind, mode, access, pid, dev:ino, start, end
        let (kind, pid, id) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        (*kind == "FLOCK" && *id == wanted)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let first = File::create(&path).unwrap();
        lock_for_writing(&first, &path).unwrap();
        // Another open file description: as another process would have.
        let second = File::open(&path).unwrap();
        let refused = lock_for_writing(&second, &path).unwrap_err();
        match &refused {
            JournalError::Locked { holder, .. } => {
                assert_eq!(*holder, Some(std::process::id()), "{refused}")
            }
            other => panic!("{other}"),
        }
        assert!(refused.to_string().contains("one writer at a time"));
        drop(first);
        // Released once every copy of the first description is closed: a
        // test spawning a process meanwhile holds a copy until its exec.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while lock_for_writing(&second, &path).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock was never released"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_before_opening() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix_free_mkfifo(&fifo);
        let refused = require_regular_file(&fifo).unwrap_err();
        assert!(refused.to_string().contains("a FIFO"), "{refused}");
        let null = require_regular_file(Path::new("/dev/null")).unwrap_err();
        assert!(null.to_string().contains("character device"), "{null}");
        assert!(require_regular_file(dir.path()).is_err());
        assert!(require_regular_file(&dir.path().join("missing")).is_ok());
    }

    /// `mkfifo` through the shell's tool (no FFI in this crate's tests).
    fn rustix_free_mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_one_has_ended() {
        assert!(!process_ended(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(process_ended(pid));
    }

    #[test]
    fn proc_locks_lines_are_read_by_device_and_inode() {
        let locks = "1: POSIX  ADVISORY  WRITE 11 08:01:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 08:01:77 0 EOF\n";
        assert_eq!(holder_in(locks, "08:01:77"), Some(4242));
        assert_eq!(holder_in(locks, "08:01:78"), None);
    }
}
