//! The guest's filesystem: mounts, and the one path resolver every path
//! operation goes through.
//!
//! The sandbox rule, enforced by [`resolve`] and nowhere else: a path is
//! walked one component at a time from the directory descriptor it is
//! relative to, and may never leave that directory. Absolute paths, `..`
//! above the starting directory and symbolic links that are absolute or climb
//! above it are refused with `NOTCAPABLE`; chains of more than
//! [`MAX_SYMLINKS`] links with `LOOP`.

pub mod host;
pub mod mem;
pub mod ops;

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::errno::Errno;
use host::HostFs;
use mem::MemFs;

/// Symbolic links followed in one resolution before `LOOP`.
pub const MAX_SYMLINKS: usize = 32;

/// Attributes of a file, as `filestat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Device (one per mount).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// WASI `filetype`.
    pub filetype: u8,
    /// Number of hard links.
    pub nlink: u64,
    /// The size, in bytes.
    pub size: u64,
    /// Last access, nanoseconds since the epoch.
    pub atim: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtim: u64,
    /// Last status change, nanoseconds since the epoch.
    pub ctim: u64,
}

/// One directory entry, for `fd_readdir`.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// Its inode number.
    pub ino: u64,
    /// Its WASI `filetype`.
    pub filetype: u8,
}

/// A directory inside a mount.
#[derive(Debug, Clone)]
pub enum DirRef {
    /// An inode of a memory mount.
    Mem(u64),
    /// A directory of a host mount, held open (see `host` for why).
    Host(host::HostDir),
}

/// An open regular file inside a mount.
#[derive(Debug)]
pub enum FileRef {
    /// An inode of a memory mount.
    Mem(u64),
    /// A file of a host mount.
    Host(std::fs::File),
}

/// What a name in a directory is.
#[derive(Debug, Clone)]
pub enum Node {
    /// A directory.
    Dir(DirRef),
    /// A regular file.
    File,
    /// A symbolic link and its target.
    Symlink(String),
    /// Anything else, with its WASI `filetype`.
    Other(u8),
}

/// Where a path leads.
#[derive(Debug, Clone)]
pub enum Target {
    /// The path names the starting directory itself, or one it walked
    /// through (`.`, `a/..`).
    SelfDir(DirRef),
    /// An entry `name` in `parent` (which may not exist yet).
    Entry {
        /// The directory holding the entry.
        parent: DirRef,
        /// The entry's name.
        name: String,
    },
}

/// A resolved path.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Where the path leads.
    pub target: Target,
    /// The path ended in `/`: the target must be a directory.
    pub must_be_dir: bool,
}

/// What backs a mount.
pub enum Backend {
    /// The journaled in-memory tree.
    Mem(MemFs),
    /// A host directory.
    Host(HostFs),
}

/// One preopened directory tree.
pub struct Mount {
    /// The name the guest sees (`fd_prestat_dir_name`).
    pub guest_path: String,
    /// Refuse every change with `ROFS`.
    pub readonly: bool,
    /// What holds the tree.
    pub backend: Backend,
    /// While a resumed program re-executes its journal, a host mount does
    /// not perform effects again (the host already holds them): changes
    /// succeed without touching the host (see `crate::effects`).
    pub(crate) suppress_host_effects: bool,
}

impl Mount {
    /// A journaled mount: an empty in-memory tree.
    pub fn memory(guest_path: impl Into<String>, dev: u64, now: u64) -> Mount {
        Mount {
            guest_path: guest_path.into(),
            readonly: false,
            backend: Backend::Mem(MemFs::new(dev, now)),
            suppress_host_effects: false,
        }
    }

    /// A host mount of `root`, which must be an existing directory.
    pub fn host(
        guest_path: impl Into<String>,
        root: PathBuf,
        readonly: bool,
    ) -> std::io::Result<Mount> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Mount {
            guest_path: guest_path.into(),
            readonly,
            backend: Backend::Host(HostFs::open(&root)?),
            suppress_host_effects: false,
        })
    }

    /// Whether the mount is the journaled in-memory kind.
    pub fn is_memory(&self) -> bool {
        matches!(self.backend, Backend::Mem(_))
    }

    /// The in-memory tree, if the mount is one.
    pub fn mem(&mut self) -> Option<&mut MemFs> {
        match &mut self.backend {
            Backend::Mem(m) => Some(m),
            Backend::Host(_) => None,
        }
    }

    /// The mount's root directory.
    pub fn root(&self) -> DirRef {
        match &self.backend {
            Backend::Mem(_) => DirRef::Mem(mem::ROOT),
            Backend::Host(h) => DirRef::Host(h.root.clone()),
        }
    }

    /// `ROFS` for a read-only mount.
    pub fn check_writable(&self) -> Result<(), Errno> {
        if self.readonly {
            Err(Errno::Rofs)
        } else {
            Ok(())
        }
    }

    /// What `name` in `dir` is, if it exists (symlinks are not followed).
    pub fn lookup(&self, dir: &DirRef, name: &str) -> Result<Option<Node>, Errno> {
        match (&self.backend, dir) {
            (Backend::Mem(m), DirRef::Mem(ino)) => m.lookup(*ino, name),
            (Backend::Host(h), DirRef::Host(dir)) => h.lookup(dir, name),
            _ => Err(Errno::Badf),
        }
    }

    /// The attributes of a directory.
    pub fn stat_dir(&self, dir: &DirRef) -> Result<Stat, Errno> {
        match (&self.backend, dir) {
            (Backend::Mem(m), DirRef::Mem(ino)) => m.stat(*ino),
            (Backend::Host(h), DirRef::Host(dir)) => h.stat_dir(dir),
            _ => Err(Errno::Badf),
        }
    }

    /// Attributes of what a resolved path names (a symlink itself if the
    /// resolution did not follow it).
    pub fn stat(&self, resolved: &Resolved) -> Result<Stat, Errno> {
        let stat = match &resolved.target {
            Target::SelfDir(dir) => self.stat_dir(dir)?,
            Target::Entry { parent, name } => match (&self.backend, parent) {
                (Backend::Mem(m), DirRef::Mem(dir)) => m.stat(m.entry_ino(*dir, name)?)?,
                (Backend::Host(h), DirRef::Host(dir)) => h.stat_entry(dir, name)?,
                _ => return Err(Errno::Badf),
            },
        };
        if resolved.must_be_dir && stat.filetype != crate::abi::filetype::DIRECTORY {
            return Err(Errno::Notdir);
        }
        Ok(stat)
    }

    /// A directory's entries, `.` and `..` first.
    pub fn readdir(&self, dir: &DirRef) -> Result<Vec<DirEntry>, Errno> {
        match (&self.backend, dir) {
            (Backend::Mem(m), DirRef::Mem(ino)) => m.readdir(*ino),
            (Backend::Host(h), DirRef::Host(dir)) => h.readdir(dir),
            _ => Err(Errno::Badf),
        }
    }

    /// A descriptor now holds `dir` open (memory mounts count holders).
    pub fn retain_dir(&mut self, dir: &DirRef) {
        if let (Backend::Mem(m), DirRef::Mem(ino)) = (&mut self.backend, dir) {
            m.retain(*ino);
        }
    }

    /// Drops a descriptor's hold on a directory.
    pub fn release_dir(&mut self, dir: &DirRef) {
        if let (Backend::Mem(m), DirRef::Mem(ino)) = (&mut self.backend, dir) {
            m.release(*ino);
        }
    }

    /// Drops a descriptor's hold on a file (an unlinked file goes away with its last one).
    pub fn release_file(&mut self, file: &FileRef) {
        if let (Backend::Mem(m), FileRef::Mem(ino)) = (&mut self.backend, file) {
            m.release(*ino);
        }
    }
}

/// Splits a guest path into components, refusing what can never be valid.
fn components(path: &str) -> Result<(VecDeque<String>, bool), Errno> {
    if path.is_empty() {
        return Err(Errno::Noent);
    }
    if path.contains('\0') {
        return Err(Errno::Ilseq);
    }
    if path.starts_with('/') {
        return Err(Errno::Notcapable);
    }
    let must_be_dir = path.ends_with('/');
    let parts = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((parts, must_be_dir))
}

/// Resolves `path` relative to the directory `base` of `mount`. With
/// `follow`, a symbolic link in the last position is followed too.
pub fn resolve(mount: &Mount, base: &DirRef, path: &str, follow: bool) -> Result<Resolved, Errno> {
    let (mut queue, mut must_be_dir) = components(path)?;
    if queue.iter().any(|c| c.len() > 255) {
        return Err(Errno::Nametoolong);
    }
    // The directories walked through; `..` pops, and may never pop `base`.
    let mut stack: Vec<DirRef> = vec![base.clone()];
    let mut links = 0usize;
    // A path ending in `/.` or `/..` names a directory, like a trailing `/`.
    let mut last = Target::SelfDir(base.clone());
    while let Some(component) = queue.pop_front() {
        let is_last = queue.is_empty();
        let current = stack.last().cloned().ok_or(Errno::Notcapable)?;
        match component.as_str() {
            "." => {
                last = Target::SelfDir(current);
            }
            ".." => {
                if stack.len() == 1 {
                    return Err(Errno::Notcapable);
                }
                stack.pop();
                last = Target::SelfDir(stack.last().cloned().ok_or(Errno::Notcapable)?);
            }
            name => {
                let follow_here = !is_last || follow || must_be_dir;
                match mount.lookup(&current, name)? {
                    Some(Node::Symlink(target)) if follow_here => {
                        links += 1;
                        if links > MAX_SYMLINKS {
                            return Err(Errno::Loop);
                        }
                        let (parts, dir) = components(&target)?;
                        if is_last {
                            must_be_dir |= dir;
                        }
                        for part in parts.into_iter().rev() {
                            queue.push_front(part);
                        }
                        last = Target::SelfDir(current);
                        continue;
                    }
                    Some(Node::Dir(dir)) => {
                        last = Target::Entry {
                            parent: current,
                            name: name.to_owned(),
                        };
                        stack.push(dir);
                    }
                    Some(_) | None if is_last => {
                        last = Target::Entry {
                            parent: current,
                            name: name.to_owned(),
                        };
                    }
                    Some(_) => return Err(Errno::Notdir),
                    None => return Err(Errno::Noent),
                }
            }
        }
    }
    Ok(Resolved {
        target: last,
        must_be_dir,
    })
}

/// Operations on open regular files.
impl Mount {
    fn mem_file(&mut self, file: &FileRef) -> Result<(&mut MemFs, u64), Errno> {
        match (&mut self.backend, file) {
            (Backend::Mem(m), FileRef::Mem(ino)) => Ok((m, *ino)),
            _ => Err(Errno::Badf),
        }
    }

    /// Reads at `pos`; returns the bytes read.
    pub fn read_at(&mut self, file: &FileRef, pos: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match file {
            FileRef::Host(f) => HostFs::read_at(f, pos, buf),
            FileRef::Mem(_) => {
                let (m, ino) = self.mem_file(file)?;
                m.read_at(ino, pos, buf)
            }
        }
    }

    /// Writes at `pos`, at effect time `now`; returns the bytes written.
    pub fn write_at(
        &mut self,
        file: &FileRef,
        pos: u64,
        data: &[u8],
        now: u64,
    ) -> Result<usize, Errno> {
        self.check_writable()?;
        match file {
            FileRef::Host(_) if self.suppress_host_effects => Ok(data.len()),
            FileRef::Host(f) => HostFs::write_at(f, pos, data),
            FileRef::Mem(_) => {
                let (m, ino) = self.mem_file(file)?;
                m.write_at(ino, pos, data, now)
            }
        }
    }

    /// The file's size.
    pub fn file_size(&mut self, file: &FileRef) -> Result<u64, Errno> {
        match file {
            FileRef::Host(f) => Ok(f.metadata()?.len()),
            FileRef::Mem(_) => {
                let (m, ino) = self.mem_file(file)?;
                m.size(ino)
            }
        }
    }

    /// Truncates or extends the file.
    pub fn set_len(&mut self, file: &FileRef, len: u64, now: u64) -> Result<(), Errno> {
        self.check_writable()?;
        match file {
            FileRef::Host(_) if self.suppress_host_effects => Ok(()),
            FileRef::Host(f) => Ok(f.set_len(len)?),
            FileRef::Mem(_) => {
                let (m, ino) = self.mem_file(file)?;
                m.set_len(ino, len, now)
            }
        }
    }

    /// The attributes of an open file.
    pub fn file_stat(&mut self, file: &FileRef) -> Result<Stat, Errno> {
        match file {
            FileRef::Host(f) => host::file_stat(f),
            FileRef::Mem(_) => {
                let (m, ino) = self.mem_file(file)?;
                m.stat(ino)
            }
        }
    }

    /// Sets an open file's times (`None` leaves one alone).
    pub fn file_set_times(
        &mut self,
        file: &FileRef,
        atim: Option<u64>,
        mtim: Option<u64>,
        now: u64,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        match file {
            FileRef::Host(_) if self.suppress_host_effects => Ok(()),
            FileRef::Host(f) => {
                let mut times = std::fs::FileTimes::new();
                if let Some(a) = atim {
                    times = times.set_accessed(system_time(a));
                }
                if let Some(m) = mtim {
                    times = times.set_modified(system_time(m));
                }
                Ok(f.set_times(times)?)
            }
            FileRef::Mem(_) => {
                let (m, ino) = self.mem_file(file)?;
                m.set_times(ino, atim, mtim, now)
            }
        }
    }

    /// Flushes a file to its storage.
    pub fn sync(&mut self, file: &FileRef, data_only: bool) -> Result<(), Errno> {
        match file {
            FileRef::Host(f) if data_only => Ok(f.sync_data()?),
            FileRef::Host(f) => Ok(f.sync_all()?),
            FileRef::Mem(_) => Ok(()),
        }
    }

    /// Sets the times of a directory (or, through a path, any entry).
    pub fn set_times(
        &mut self,
        resolved: &Resolved,
        atim: Option<u64>,
        mtim: Option<u64>,
        now: u64,
    ) -> Result<(), Errno> {
        self.check_writable()?;
        if self.suppress_host_effects && !self.is_memory() {
            return Ok(());
        }
        match (&mut self.backend, &resolved.target) {
            (Backend::Mem(m), Target::SelfDir(DirRef::Mem(ino))) => {
                m.set_times(*ino, atim, mtim, now)
            }
            (
                Backend::Mem(m),
                Target::Entry {
                    parent: DirRef::Mem(dir),
                    name,
                },
            ) => {
                let ino = m.entry_ino(*dir, name)?;
                m.set_times(ino, atim, mtim, now)
            }
            (Backend::Host(h), Target::SelfDir(DirRef::Host(dir))) => {
                h.set_times(dir, None, atim, mtim)
            }
            (
                Backend::Host(h),
                Target::Entry {
                    parent: DirRef::Host(dir),
                    name,
                },
            ) => h.set_times(dir, Some(name), atim, mtim),
            _ => Err(Errno::Badf),
        }
    }
}

fn system_time(nanos: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos)
}
