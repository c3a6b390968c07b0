//! A host mount: a directory of the host, read-write or read-only. Its state
//! lives on the host. Paths reaching this module were resolved component by
//! component by `fs::resolve` (no `..`, no absolute parts, symlinks followed
//! only inside the mount), so `dir.join(name)` always stays under the root.

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{DirEntry, Node, Stat};
use crate::abi::filetype;
use crate::errno::Errno;

/// A host directory mounted into the guest.
pub struct HostFs {
    /// The host directory at the mount's root.
    pub root: PathBuf,
}

fn filetype_of(ft: fs::FileType) -> u8 {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        filetype::DIRECTORY
    } else if ft.is_file() {
        filetype::REGULAR_FILE
    } else if ft.is_symlink() {
        filetype::SYMBOLIC_LINK
    } else if ft.is_char_device() {
        filetype::CHARACTER_DEVICE
    } else if ft.is_block_device() {
        filetype::BLOCK_DEVICE
    } else if ft.is_socket() {
        filetype::SOCKET_STREAM
    } else {
        filetype::UNKNOWN
    }
}

fn nanos(secs: i64, nsecs: i64) -> u64 {
    (secs.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsecs.max(0) as u64)
}

/// Host metadata as WASI attributes.
pub fn stat_of(meta: &fs::Metadata) -> Stat {
    Stat {
        dev: meta.dev(),
        ino: meta.ino(),
        filetype: filetype_of(meta.file_type()),
        nlink: meta.nlink(),
        size: meta.size(),
        atim: nanos(meta.atime(), meta.atime_nsec()),
        mtim: nanos(meta.mtime(), meta.mtime_nsec()),
        ctim: nanos(meta.ctime(), meta.ctime_nsec()),
    }
}

fn name_str(os: &std::ffi::OsStr) -> Result<String, Errno> {
    os.to_str().map(str::to_owned).ok_or(Errno::Ilseq)
}

impl HostFs {
    /// What `name` in the host directory `dir` is (symlinks not followed).
    pub fn lookup(&self, dir: &Path, name: &str) -> Result<Option<Node>, Errno> {
        let path = dir.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let ft = meta.file_type();
        Ok(Some(if ft.is_dir() {
            Node::Dir(super::DirRef::Host(path))
        } else if ft.is_symlink() {
            Node::Symlink(name_str(fs::read_link(&path)?.as_os_str())?)
        } else if ft.is_file() {
            Node::File
        } else {
            Node::Other(filetype_of(ft))
        }))
    }

    /// The attributes of a host path (symlinks not followed).
    pub fn stat_path(&self, path: &Path) -> Result<Stat, Errno> {
        Ok(stat_of(&fs::symlink_metadata(path)?))
    }

    /// A host directory's entries, `.` and `..` first.
    pub fn readdir(&self, dir: &Path) -> Result<Vec<DirEntry>, Errno> {
        let here = fs::metadata(dir)?;
        let parent_ino = if dir == self.root {
            here.ino()
        } else {
            dir.parent()
                .and_then(|p| fs::metadata(p).ok())
                .map(|m| m.ino())
                .unwrap_or(here.ino())
        };
        let mut out = vec![
            DirEntry {
                name: ".".into(),
                ino: here.ino(),
                filetype: filetype::DIRECTORY,
            },
            DirEntry {
                name: "..".into(),
                ino: parent_ino,
                filetype: filetype::DIRECTORY,
            },
        ];
        let mut rest = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            // Names that are not UTF-8 cannot be expressed to the guest; skip them.
            let Ok(name) = name_str(&entry.file_name()) else {
                continue;
            };
            let meta = entry.metadata()?;
            rest.push(DirEntry {
                name,
                ino: meta.ino(),
                filetype: filetype_of(meta.file_type()),
            });
        }
        rest.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(rest);
        Ok(out)
    }

    /// Opens (or creates) a regular file. The host mode follows the guest's
    /// asked access; `O_TRUNC` without write access still truncates, as on
    /// Linux.
    pub fn open_file(
        &self,
        path: &Path,
        read: bool,
        write: bool,
        create_new: bool,
        create: bool,
        truncate: bool,
    ) -> Result<fs::File, Errno> {
        let write = write || truncate || create || create_new;
        let mut options = fs::OpenOptions::new();
        options
            .read(read || !write)
            .write(write)
            .create_new(create_new)
            .create(create && !create_new)
            .truncate(truncate);
        Ok(options.open(path)?)
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

    /// Sets a host path's times (`None` leaves one alone).
    pub fn set_times(path: &Path, atim: Option<u64>, mtim: Option<u64>) -> Result<(), Errno> {
        let meta = fs::symlink_metadata(path)?;
        let a = atim
            .map(to_filetime)
            .unwrap_or_else(|| filetime::FileTime::from_last_access_time(&meta));
        let m = mtim
            .map(to_filetime)
            .unwrap_or_else(|| filetime::FileTime::from_last_modification_time(&meta));
        filetime::set_symlink_file_times(path, a, m)?;
        Ok(())
    }
}

/// Nanoseconds since the epoch as a `FileTime`.
pub fn to_filetime(nanos: u64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        (nanos / 1_000_000_000) as i64,
        (nanos % 1_000_000_000) as u32,
    )
}
