//! A host mount: a directory of the host, read-write or read-only. Its state
//! lives on the host.
//!
//! The discipline that keeps the sandbox under races: every host directory
//! the guest reaches is a held directory descriptor ([`HostDir`]), and every
//! operation acts on *one name* relative to one held descriptor, through the
//! `*at` system calls, never following a symbolic link (`O_NOFOLLOW`,
//! `AT_SYMLINK_NOFOLLOW`, and `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`). Symbolic links are followed
//! only by `fs::resolve`, which reads them and walks their targets itself,
//! component by component, with the same rule. No full host path is ever
//! resolved after a check, so a name swapped for a link between a check and
//! the operation makes the operation fail (`LOOP`, `NOTDIR`), never escape.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps};

use super::{DirEntry, Node, Stat};
use crate::abi::filetype;
use crate::errno::Errno;

/// A directory of a host mount, held open. Clones share the descriptor.
#[derive(Clone)]
pub struct HostDir(Arc<OwnedFd>);

impl std::fmt::Debug for HostDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostDir(fd {:?})", self.0)
    }
}

impl HostDir {
    fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// The (device, inode) pair naming this directory.
    fn id(&self) -> Result<(u64, u64), Errno> {
        let st = rustix::fs::fstat(self.fd()).map_err(from_rustix)?;
        Ok((stat_of(&st).dev, stat_of(&st).ino))
    }
}

/// A host directory mounted into the guest.
pub struct HostFs {
    /// The mount's root, held open.
    pub root: HostDir,
    /// The host path the root was opened from (for messages only; never
    /// used to reach a file).
    pub root_path: PathBuf,
}

fn from_rustix(e: rustix::io::Errno) -> Errno {
    Errno::from_host_errno(e.raw_os_error())
}

fn filetype_of(ft: FileType) -> u8 {
    match ft {
        FileType::Directory => filetype::DIRECTORY,
        FileType::RegularFile => filetype::REGULAR_FILE,
        FileType::Symlink => filetype::SYMBOLIC_LINK,
        FileType::CharacterDevice => filetype::CHARACTER_DEVICE,
        FileType::BlockDevice => filetype::BLOCK_DEVICE,
        FileType::Socket => filetype::SOCKET_STREAM,
        FileType::Fifo | FileType::Unknown => filetype::UNKNOWN,
    }
}

fn nanos(secs: i64, nsecs: i64) -> u64 {
    (secs.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsecs.max(0) as u64)
}

/// Host attributes as WASI attributes. (The field types of `struct stat`
/// differ between architectures, hence the casts.)
#[allow(clippy::unnecessary_cast)]
pub fn stat_of(st: &rustix::fs::Stat) -> Stat {
    Stat {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        filetype: filetype_of(FileType::from_raw_mode(st.st_mode as _)),
        nlink: st.st_nlink as u64,
        size: st.st_size.max(0) as u64,
        atim: nanos(st.st_atime as i64, st.st_atime_nsec as i64),
        mtim: nanos(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctim: nanos(st.st_ctime as i64, st.st_ctime_nsec as i64),
    }
}

/// Refuses anything but one plain name. `fs::resolve` only ever hands over
/// single components; this is the last line should that ever change.
fn one_name(name: &str) -> Result<&str, Errno> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Errno::Notcapable);
    }
    Ok(name)
}

/// Set when the kernel has no `openat2` (before Linux 5.6): single names
/// with `O_NOFOLLOW` then give the same guarantee.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `name` in `dir` without following a link and without leaving `dir`.
fn open_beneath(dir: &HostDir, name: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    let name = one_name(name)?;
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(dir.fd(), name, flags, mode, resolve) {
            Err(rustix::io::Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            other => return other.map_err(from_rustix),
        }
    }
    rustix::fs::openat(dir.fd(), name, flags, mode).map_err(from_rustix)
}

fn name_str(bytes: &[u8]) -> Result<String, Errno> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| Errno::Ilseq)
}

impl HostFs {
    /// Opens the directory `root` (given by the user, so trusted) as a mount.
    pub fn open(root: &Path) -> std::io::Result<HostFs> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(HostFs {
            root: HostDir(Arc::new(fd)),
            root_path: root.to_owned(),
        })
    }

    /// Opens the subdirectory `name` of `dir`.
    fn open_dir(&self, dir: &HostDir, name: &str) -> Result<HostDir, Errno> {
        let fd = open_beneath(dir, name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        Ok(HostDir(Arc::new(fd)))
    }

    /// What `name` in the host directory `dir` is (symlinks not followed).
    pub fn lookup(&self, dir: &HostDir, name: &str) -> Result<Option<Node>, Errno> {
        let name = one_name(name)?;
        let st = match rustix::fs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(from_rustix(e)),
        };
        Ok(Some(match FileType::from_raw_mode(st.st_mode as _) {
            FileType::Directory => Node::Dir(super::DirRef::Host(self.open_dir(dir, name)?)),
            FileType::Symlink => {
                let target =
                    rustix::fs::readlinkat(dir.fd(), name, Vec::new()).map_err(from_rustix)?;
                Node::Symlink(name_str(target.as_bytes())?)
            }
            FileType::RegularFile => Node::File,
            other => Node::Other(filetype_of(other)),
        }))
    }

    /// The attributes of a held directory.
    pub fn stat_dir(&self, dir: &HostDir) -> Result<Stat, Errno> {
        Ok(stat_of(&rustix::fs::fstat(dir.fd()).map_err(from_rustix)?))
    }

    /// The attributes of `name` in `dir` (symlinks not followed).
    pub fn stat_entry(&self, dir: &HostDir, name: &str) -> Result<Stat, Errno> {
        let st = rustix::fs::statat(dir.fd(), one_name(name)?, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(from_rustix)?;
        Ok(stat_of(&st))
    }

    /// A host directory's entries, `.` and `..` first.
    pub fn readdir(&self, dir: &HostDir) -> Result<Vec<DirEntry>, Errno> {
        let here = self.stat_dir(dir)?;
        // `..` of the mount's root is the root itself: nothing above it is
        // shown. Below the root, the kernel's `..` is only stat-ed.
        let parent_ino = if (here.dev, here.ino) == self.root.id()? {
            here.ino
        } else {
            rustix::fs::statat(dir.fd(), "..", AtFlags::empty())
                .map(|st| stat_of(&st).ino)
                .unwrap_or(here.ino)
        };
        let mut out = vec![
            DirEntry {
                name: ".".into(),
                ino: here.ino,
                filetype: filetype::DIRECTORY,
            },
            DirEntry {
                name: "..".into(),
                ino: parent_ino,
                filetype: filetype::DIRECTORY,
            },
        ];
        let mut rest = Vec::new();
        let mut entries = rustix::fs::Dir::read_from(dir.fd()).map_err(from_rustix)?;
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(from_rustix)?;
            let bytes = entry.file_name().to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            // Names that are not UTF-8 cannot be expressed to the guest; skip them.
            let Ok(name) = name_str(bytes) else {
                continue;
            };
            let filetype = match entry.file_type() {
                FileType::Unknown => match self.stat_entry(dir, &name) {
                    Ok(stat) => stat.filetype,
                    // Gone since the listing: leave it out.
                    Err(Errno::Noent) => continue,
                    Err(e) => return Err(e),
                },
                known => filetype_of(known),
            };
            rest.push(DirEntry {
                name,
                ino: entry.ino(),
                filetype,
            });
        }
        rest.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(rest);
        Ok(out)
    }

    /// Opens (or creates) the regular file `name` in `dir`. The host mode
    /// follows the guest's asked access; `O_TRUNC` without write access
    /// still truncates, as on Linux. Anything but a regular file (a link
    /// swapped in, a FIFO, a device) is refused without blocking.
    #[allow(clippy::too_many_arguments)]
    pub fn open_file(
        &self,
        dir: &HostDir,
        name: &str,
        read: bool,
        write: bool,
        create_new: bool,
        create: bool,
        truncate: bool,
    ) -> Result<fs::File, Errno> {
        let write = write || truncate || create || create_new;
        let mut flags = match (read || !write, write) {
            (true, true) => OFlags::RDWR,
            (false, true) => OFlags::WRONLY,
            _ => OFlags::RDONLY,
        };
        // Never block opening a FIFO that was swapped in.
        flags |= OFlags::NONBLOCK;
        if create_new {
            flags |= OFlags::CREATE | OFlags::EXCL;
        } else if create {
            flags |= OFlags::CREATE;
        }
        if truncate {
            flags |= OFlags::TRUNC;
        }
        // `openat2` refuses a mode without `O_CREAT`.
        let mode = if flags.contains(OFlags::CREATE) {
            Mode::from_raw_mode(0o666)
        } else {
            Mode::empty()
        };
        let fd = open_beneath(dir, name, flags, mode)?;
        let st = rustix::fs::fstat(&fd).map_err(from_rustix)?;
        match FileType::from_raw_mode(st.st_mode as _) {
            FileType::RegularFile => {}
            FileType::Directory => return Err(Errno::Isdir),
            _ => return Err(Errno::Notsup),
        }
        let status = rustix::fs::fcntl_getfl(&fd).map_err(from_rustix)?;
        rustix::fs::fcntl_setfl(&fd, status - OFlags::NONBLOCK).map_err(from_rustix)?;
        Ok(fs::File::from(fd))
    }

    /// Creates the directory `name` in `dir`.
    pub fn mkdir(&self, dir: &HostDir, name: &str) -> Result<(), Errno> {
        rustix::fs::mkdirat(dir.fd(), one_name(name)?, Mode::from_raw_mode(0o777))
            .map_err(from_rustix)
    }

    /// Removes the empty directory `name` in `dir`.
    pub fn rmdir(&self, dir: &HostDir, name: &str) -> Result<(), Errno> {
        rustix::fs::unlinkat(dir.fd(), one_name(name)?, AtFlags::REMOVEDIR).map_err(from_rustix)
    }

    /// Removes the non-directory `name` in `dir` (a link itself, never its target).
    pub fn unlink(&self, dir: &HostDir, name: &str) -> Result<(), Errno> {
        rustix::fs::unlinkat(dir.fd(), one_name(name)?, AtFlags::empty()).map_err(from_rustix)
    }

    /// Creates the symbolic link `name` in `dir` holding `target` (checked
    /// by the caller against the creation policy).
    pub fn symlink(&self, target: &str, dir: &HostDir, name: &str) -> Result<(), Errno> {
        rustix::fs::symlinkat(target, dir.fd(), one_name(name)?).map_err(from_rustix)
    }

    /// Hard-links `from` as `to`; a link is linked itself, never followed.
    pub fn link(&self, from: (&HostDir, &str), to: (&HostDir, &str)) -> Result<(), Errno> {
        rustix::fs::linkat(
            from.0.fd(),
            one_name(from.1)?,
            to.0.fd(),
            one_name(to.1)?,
            AtFlags::empty(),
        )
        .map_err(from_rustix)
    }

    /// Renames `from` to `to`.
    pub fn rename(&self, from: (&HostDir, &str), to: (&HostDir, &str)) -> Result<(), Errno> {
        rustix::fs::renameat(from.0.fd(), one_name(from.1)?, to.0.fd(), one_name(to.1)?)
            .map_err(from_rustix)
    }

    /// Sets the times of `name` in `dir` (a link itself, never its target),
    /// or of `dir` itself when `name` is `None`. `None` times are left alone.
    pub fn set_times(
        &self,
        dir: &HostDir,
        name: Option<&str>,
        atim: Option<u64>,
        mtim: Option<u64>,
    ) -> Result<(), Errno> {
        let times = Timestamps {
            last_access: timespec(atim),
            last_modification: timespec(mtim),
        };
        match name {
            None => rustix::fs::futimens(dir.fd(), &times),
            Some(name) => {
                rustix::fs::utimensat(dir.fd(), one_name(name)?, &times, AtFlags::SYMLINK_NOFOLLOW)
            }
        }
        .map_err(from_rustix)
    }

    /// Reads a host file at `pos`.
    pub fn read_at(file: &fs::File, pos: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        Ok(file.read_at(buf, pos)?)
    }

    /// Writes a host file at `pos`.
    pub fn write_at(file: &fs::File, pos: u64, data: &[u8]) -> Result<usize, Errno> {
        file.write_all_at(data, pos)?;
        Ok(data.len())
    }
}

/// A time for `utimensat`: `None` leaves it alone (`UTIME_OMIT`).
fn timespec(nanos: Option<u64>) -> rustix::fs::Timespec {
    match nanos {
        Some(n) => rustix::fs::Timespec {
            tv_sec: (n / 1_000_000_000) as _,
            tv_nsec: (n % 1_000_000_000) as _,
        },
        None => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
    }
}

/// Host metadata of an open file as WASI attributes.
pub fn file_stat(file: &fs::File) -> Result<Stat, Errno> {
    Ok(stat_of(&rustix::fs::fstat(file).map_err(from_rustix)?))
}
