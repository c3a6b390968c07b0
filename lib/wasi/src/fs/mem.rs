//! A journaled mount: an in-memory namespace (directories, hard links,
//! symbolic links, times) whose file contents live in a `virtual-fs` memory
//! filesystem, one content file per inode.
//!
//! Invariants:
//! - inode 1 is the root; it is its own parent;
//! - a directory inode is named by exactly one entry (its parent's), a file
//!   inode by `nlink` entries; a file with `nlink == 0` lives on only while a
//!   descriptor holds it (`open > 0`) and is freed on the last close;
//! - entry names are never empty, `.`, `..`, and never contain `/`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::executor::block_on;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use virtual_fs::{FileSystem as _, VirtualFile};

use super::{DirEntry, Node, Stat};
use crate::abi::filetype;
use crate::errno::Errno;

/// The inode of a memory mount's root directory.
pub const ROOT: u64 = 1;

type Content = Box<dyn VirtualFile + Send + Sync>;

enum Kind {
    Dir {
        entries: BTreeMap<String, u64>,
        parent: u64,
    },
    File(Content),
    Symlink(String),
}

struct Inode {
    kind: Kind,
    nlink: u64,
    open: u32,
    atim: u64,
    mtim: u64,
    ctim: u64,
}

/// An in-memory filesystem with POSIX semantics.
pub struct MemFs {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    store: virtual_fs::mem_fs::FileSystem,
    dev: u64,
    /// Contents served from a journal's mapping (replay): a second content
    /// store whose files may hold extents that point into the map.
    offload: Option<virtual_fs::mem_fs::FileSystem>,
    /// Inodes whose content lives in `offload`.
    offloaded: HashSet<u64>,
    /// Writes made to offloaded files since replay ended; past
    /// [`MIGRATE_AFTER_WRITES`] the file moves to the plain store, because
    /// every write to an offloaded file adds an extent that reads must walk.
    live_writes: HashMap<u64, u32>,
    /// While true, new files are created in the offload store.
    pub replaying: bool,
    /// The bytes all in-memory mounts of a context may hold, shared.
    budget: Arc<FsBudget>,
}

/// A limit on the bytes the in-memory mounts of one context hold (the sum
/// of their files' sizes: contents are stored densely, so a sparse file
/// costs its whole size). A change that would pass it fails with `NOSPC`
/// (writes, `fd_allocate`) or `FBIG` (`fd_filestat_set_size`), never by
/// asking the allocator for what it may not have.
#[derive(Debug)]
pub struct FsBudget {
    limit: u64,
    used: AtomicU64,
}

impl FsBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<FsBudget> {
        Arc::new(FsBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// No limit.
    pub fn unlimited() -> Arc<FsBudget> {
        FsBudget::new(u64::MAX)
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget, or fails with `refusal`.
    fn take(&self, bytes: u64, refusal: Errno) -> Result<(), Errno> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used
                .checked_add(bytes)
                .filter(|n| *n <= self.limit)
                .ok_or(refusal)?;
            match self
                .used
                .compare_exchange(used, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// Gives `bytes` back.
    fn give(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }
}

/// The default budget: a quarter of the machine's memory (4 GiB when it
/// cannot be read).
pub fn default_fs_limit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib.saturating_mul(1024))
        });
    total.map_or(4 << 30, |bytes| bytes / 4)
}

/// Where an inode's contents live in a content store. virtual-fs looks a
/// name up by walking its directory, so the contents are spread over 4096
/// directories: creating a file costs the same with 100,000 as with 10.
fn content_path(ino: u64) -> PathBuf {
    PathBuf::from(format!("/{:03x}/{ino}", ino % 4096))
}

/// See `MemFs::live_writes`.
pub const MIGRATE_AFTER_WRITES: u32 = 64;

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from(e)
}

impl MemFs {
    /// An empty filesystem (just the root directory) created at time `now`.
    pub fn new(dev: u64, now: u64) -> MemFs {
        let mut inodes = HashMap::new();
        inodes.insert(
            ROOT,
            Inode {
                kind: Kind::Dir {
                    entries: BTreeMap::new(),
                    parent: ROOT,
                },
                nlink: 2,
                open: 0,
                atim: now,
                mtim: now,
                ctim: now,
            },
        );
        MemFs {
            inodes,
            next_ino: ROOT + 1,
            store: Default::default(),
            dev,
            offload: None,
            offloaded: HashSet::new(),
            live_writes: HashMap::new(),
            replaying: false,
            budget: FsBudget::unlimited(),
        }
    }

    /// Shares `budget` with the other in-memory mounts of a context. The
    /// bytes this filesystem already holds are charged to it.
    pub fn set_budget(&mut self, budget: Arc<FsBudget>) -> Result<(), Errno> {
        let held = self.held_bytes();
        budget.take(held, Errno::Nospc)?;
        self.budget.give(held);
        self.budget = budget;
        Ok(())
    }

    /// The bytes the files hold (the sum of their sizes).
    fn held_bytes(&mut self) -> u64 {
        let files: Vec<u64> = self
            .inodes
            .iter()
            .filter(|(_, n)| matches!(n.kind, Kind::File(_)))
            .map(|(ino, _)| *ino)
            .collect();
        files
            .into_iter()
            .map(|ino| self.size(ino).unwrap_or(0))
            .fold(0u64, u64::saturating_add)
    }

    /// Charges the growth of file `ino` to `end` bytes to the budget.
    fn grow_to(&mut self, ino: u64, end: u64, refusal: Errno) -> Result<u64, Errno> {
        let size = self.size(ino)?;
        let growth = end.saturating_sub(size);
        if growth > 0 {
            self.budget.take(growth, refusal)?;
        }
        Ok(growth)
    }

    fn node(&self, ino: u64) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(Errno::Noent)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino).ok_or(Errno::Noent)
    }

    fn entries(&self, dir: u64) -> Result<&BTreeMap<String, u64>, Errno> {
        match &self.node(dir)?.kind {
            Kind::Dir { entries, .. } => Ok(entries),
            _ => Err(Errno::Notdir),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Result<&mut BTreeMap<String, u64>, Errno> {
        match &mut self.node_mut(dir)?.kind {
            Kind::Dir { entries, .. } => Ok(entries),
            _ => Err(Errno::Notdir),
        }
    }

    fn child(&self, dir: u64, name: &str) -> Result<Option<u64>, Errno> {
        Ok(self.entries(dir)?.get(name).copied())
    }

    fn touch_dir(&mut self, dir: u64, now: u64) {
        if let Some(node) = self.inodes.get_mut(&dir) {
            node.mtim = now;
            node.ctim = now;
        }
    }

    fn alloc(&mut self, kind: Kind, now: u64) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if matches!(kind, Kind::Dir { .. }) {
            2
        } else {
            1
        };
        self.inodes.insert(
            ino,
            Inode {
                kind,
                nlink,
                open: 0,
                atim: now,
                mtim: now,
                ctim: now,
            },
        );
        ino
    }

    /// What `name` in `dir` is.
    pub fn lookup(&self, dir: u64, name: &str) -> Result<Option<Node>, Errno> {
        let Some(ino) = self.child(dir, name)? else {
            return Ok(None);
        };
        Ok(Some(match &self.node(ino)?.kind {
            Kind::Dir { .. } => Node::Dir(super::DirRef::Mem(ino)),
            Kind::File(_) => Node::File,
            Kind::Symlink(target) => Node::Symlink(target.clone()),
        }))
    }

    /// The inode `name` in `dir` names.
    pub fn entry_ino(&self, dir: u64, name: &str) -> Result<u64, Errno> {
        self.child(dir, name)?.ok_or(Errno::Noent)
    }

    /// The attributes of an inode.
    pub fn stat(&self, ino: u64) -> Result<Stat, Errno> {
        let node = self.node(ino)?;
        let (filetype, size) = match &node.kind {
            Kind::Dir { entries, .. } => (filetype::DIRECTORY, entries.len() as u64),
            Kind::File(content) => (filetype::REGULAR_FILE, content.size()),
            Kind::Symlink(target) => (filetype::SYMBOLIC_LINK, target.len() as u64),
        };
        Ok(Stat {
            dev: self.dev,
            ino,
            filetype,
            nlink: node.nlink,
            size,
            atim: node.atim,
            mtim: node.mtim,
            ctim: node.ctim,
        })
    }

    /// Whether the inode is a directory.
    pub fn is_dir(&self, ino: u64) -> bool {
        matches!(
            self.inodes.get(&ino).map(|n| &n.kind),
            Some(Kind::Dir { .. })
        )
    }

    /// Creates an empty regular file `name` in `dir`.
    pub fn create_file(&mut self, dir: u64, name: &str, now: u64) -> Result<u64, Errno> {
        if self.child(dir, name)?.is_some() {
            return Err(Errno::Exist);
        }
        let ino = self.next_ino;
        let offload = self.replaying && self.offload.is_some();
        let store = match (&self.offload, offload) {
            (Some(store), true) => store,
            _ => &self.store,
        };
        let path = content_path(ino);
        if let Some(shard) = path.parent() {
            // Exists after the first file of the shard: that error is fine.
            let _ = store.create_dir(shard);
        }
        let content = store
            .new_open_options()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .map_err(Errno::from)?;
        let ino = self.alloc(Kind::File(content), now);
        if offload {
            self.offloaded.insert(ino);
        }
        self.entries_mut(dir)?.insert(name.to_owned(), ino);
        self.touch_dir(dir, now);
        Ok(ino)
    }

    /// Creates directory `name` in `dir`; returns its inode.
    pub fn mkdir(&mut self, dir: u64, name: &str, now: u64) -> Result<u64, Errno> {
        if self.child(dir, name)?.is_some() {
            return Err(Errno::Exist);
        }
        let ino = self.alloc(
            Kind::Dir {
                entries: BTreeMap::new(),
                parent: dir,
            },
            now,
        );
        self.entries_mut(dir)?.insert(name.to_owned(), ino);
        self.node_mut(dir)?.nlink += 1;
        self.touch_dir(dir, now);
        Ok(ino)
    }

    /// Creates symbolic link `name` in `dir` pointing at `target`.
    pub fn symlink(&mut self, target: &str, dir: u64, name: &str, now: u64) -> Result<(), Errno> {
        if self.child(dir, name)?.is_some() {
            return Err(Errno::Exist);
        }
        let ino = self.alloc(Kind::Symlink(target.to_owned()), now);
        self.entries_mut(dir)?.insert(name.to_owned(), ino);
        self.touch_dir(dir, now);
        Ok(())
    }

    /// The target of symbolic link `name` in `dir`.
    pub fn readlink(&self, dir: u64, name: &str) -> Result<String, Errno> {
        let ino = self.entry_ino(dir, name)?;
        match &self.node(ino)?.kind {
            Kind::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::Inval),
        }
    }

    /// Makes `to` a hard link of `from` (directory inode, name).
    pub fn link(&mut self, from: (u64, &str), to: (u64, &str), now: u64) -> Result<(), Errno> {
        let ino = self.entry_ino(from.0, from.1)?;
        if self.is_dir(ino) {
            return Err(Errno::Perm);
        }
        if self.child(to.0, to.1)?.is_some() {
            return Err(Errno::Exist);
        }
        self.entries_mut(to.0)?.insert(to.1.to_owned(), ino);
        let node = self.node_mut(ino)?;
        node.nlink += 1;
        node.ctim = now;
        self.touch_dir(to.0, now);
        Ok(())
    }

    /// Drops one name of a non-directory inode.
    pub fn unlink(&mut self, dir: u64, name: &str, now: u64) -> Result<(), Errno> {
        let ino = self.entry_ino(dir, name)?;
        if self.is_dir(ino) {
            return Err(Errno::Isdir);
        }
        self.entries_mut(dir)?.remove(name);
        self.touch_dir(dir, now);
        self.drop_link(ino, now);
        Ok(())
    }

    fn drop_link(&mut self, ino: u64, now: u64) {
        let free = match self.inodes.get_mut(&ino) {
            Some(node) => {
                node.nlink = node.nlink.saturating_sub(1);
                node.ctim = now;
                node.nlink == 0 && node.open == 0
            }
            None => false,
        };
        if free {
            self.free(ino);
        }
    }

    fn free(&mut self, ino: u64) {
        if let Some(node) = self.inodes.remove(&ino) {
            if let Kind::File(content) = &node.kind {
                self.budget.give(content.size());
                let path = content_path(ino);
                match (&self.offload, self.offloaded.remove(&ino)) {
                    (Some(store), true) => {
                        let _ = store.remove_file(&path);
                    }
                    _ => {
                        let _ = self.store.remove_file(&path);
                    }
                }
                self.live_writes.remove(&ino);
            }
        }
    }

    /// Removes the empty directory `name` from `dir`.
    pub fn rmdir(&mut self, dir: u64, name: &str, now: u64) -> Result<(), Errno> {
        let ino = self.entry_ino(dir, name)?;
        match &self.node(ino)?.kind {
            Kind::Dir { entries, .. } if !entries.is_empty() => return Err(Errno::Notempty),
            Kind::Dir { .. } => {}
            _ => return Err(Errno::Notdir),
        }
        self.entries_mut(dir)?.remove(name);
        self.node_mut(dir)?.nlink -= 1;
        self.touch_dir(dir, now);
        let node = self.node_mut(ino)?;
        node.nlink = 0;
        if node.open == 0 {
            self.free(ino);
        }
        Ok(())
    }

    /// Whether directory `of` is `ancestor` or lies below it.
    pub fn is_within(&self, ancestor: u64, of: u64) -> bool {
        self.is_ancestor(ancestor, of)
    }

    fn is_ancestor(&self, ancestor: u64, mut of: u64) -> bool {
        loop {
            if of == ancestor {
                return true;
            }
            match self.inodes.get(&of).map(|n| &n.kind) {
                Some(Kind::Dir { parent, .. }) if *parent != of => of = *parent,
                _ => return false,
            }
        }
    }

    /// Renames `from` to `to` (directory inode, name), replacing what POSIX allows.
    pub fn rename(&mut self, from: (u64, &str), to: (u64, &str), now: u64) -> Result<(), Errno> {
        let ino = self.entry_ino(from.0, from.1)?;
        let src_is_dir = self.is_dir(ino);
        if src_is_dir && self.is_ancestor(ino, to.0) {
            return Err(Errno::Inval);
        }
        if let Some(existing) = self.child(to.0, to.1)? {
            if existing == ino {
                return Ok(()); // two names of one inode: POSIX does nothing
            }
            let dst_is_dir = self.is_dir(existing);
            match (src_is_dir, dst_is_dir) {
                (true, false) => return Err(Errno::Notdir),
                (false, true) => return Err(Errno::Isdir),
                (true, true) => self.rmdir(to.0, to.1, now)?,
                (false, false) => self.unlink(to.0, to.1, now)?,
            }
        }
        self.entries_mut(from.0)?.remove(from.1);
        self.entries_mut(to.0)?.insert(to.1.to_owned(), ino);
        if src_is_dir {
            self.node_mut(from.0)?.nlink -= 1;
            self.node_mut(to.0)?.nlink += 1;
            if let Kind::Dir { parent, .. } = &mut self.node_mut(ino)?.kind {
                *parent = to.0;
            }
        }
        self.node_mut(ino)?.ctim = now;
        self.touch_dir(from.0, now);
        self.touch_dir(to.0, now);
        Ok(())
    }

    /// A directory's entries, `.` and `..` first.
    pub fn readdir(&self, dir: u64) -> Result<Vec<DirEntry>, Errno> {
        let node = self.node(dir)?;
        let Kind::Dir { entries, parent } = &node.kind else {
            return Err(Errno::Notdir);
        };
        let mut out = vec![
            DirEntry {
                name: ".".into(),
                ino: dir,
                filetype: filetype::DIRECTORY,
            },
            DirEntry {
                name: "..".into(),
                ino: *parent,
                filetype: filetype::DIRECTORY,
            },
        ];
        for (name, &ino) in entries {
            let filetype = self
                .stat(ino)
                .map(|s| s.filetype)
                .unwrap_or(filetype::UNKNOWN);
            out.push(DirEntry {
                name: name.clone(),
                ino,
                filetype,
            });
        }
        Ok(out)
    }

    /// Sets an inode's times (`None` leaves one alone).
    pub fn set_times(
        &mut self,
        ino: u64,
        atim: Option<u64>,
        mtim: Option<u64>,
        now: u64,
    ) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        if let Some(a) = atim {
            node.atim = a;
        }
        if let Some(m) = mtim {
            node.mtim = m;
        }
        node.ctim = now;
        Ok(())
    }

    /// A descriptor now refers to `ino`.
    pub fn retain(&mut self, ino: u64) {
        if let Some(node) = self.inodes.get_mut(&ino) {
            node.open += 1;
        }
    }

    /// A descriptor no longer refers to `ino`; frees it if nothing names it.
    pub fn release(&mut self, ino: u64) {
        let free = match self.inodes.get_mut(&ino) {
            Some(node) => {
                node.open = node.open.saturating_sub(1);
                node.open == 0 && node.nlink == 0
            }
            None => false,
        };
        if free {
            self.free(ino);
        }
    }

    fn content(&mut self, ino: u64) -> Result<&mut Content, Errno> {
        match &mut self.node_mut(ino)?.kind {
            Kind::File(content) => Ok(content),
            Kind::Dir { .. } => Err(Errno::Isdir),
            Kind::Symlink(_) => Err(Errno::Inval),
        }
    }

    /// Reads at `pos`. Access times are not updated (reads are not
    /// journaled, so replay could not reproduce them).
    pub fn read_at(&mut self, ino: u64, pos: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let content = self.content(ino)?;
        let size = content.size();
        let n = if pos >= size {
            0
        } else {
            let want = buf.len().min((size - pos) as usize);
            block_on(async {
                content.seek(SeekFrom::Start(pos)).await?;
                content.read_exact(&mut buf[..want]).await
            })
            .map_err(io_errno)?;
            want
        };
        Ok(n)
    }

    /// Writes a file at `pos`; returns the bytes written.
    pub fn write_at(&mut self, ino: u64, pos: u64, data: &[u8], now: u64) -> Result<usize, Errno> {
        if !self.replaying && self.offloaded.contains(&ino) {
            let writes = self.live_writes.entry(ino).or_insert(0);
            *writes += 1;
            if *writes > MIGRATE_AFTER_WRITES {
                self.migrate(ino)?;
            }
        }

        let end = pos.checked_add(data.len() as u64).ok_or(Errno::Fbig)?;
        let growth = self.grow_to(ino, end, Errno::Nospc)?;
        let content = self.content(ino)?;
        let written = block_on(async {
            content.seek(SeekFrom::Start(pos)).await?;
            content.write_all(data).await
        });
        if let Err(e) = written {
            self.budget.give(growth);
            return Err(io_errno(e));
        }
        let node = self.node_mut(ino)?;
        node.mtim = now;
        node.ctim = now;
        Ok(data.len())
    }

    /// A file's size.
    pub fn size(&mut self, ino: u64) -> Result<u64, Errno> {
        Ok(self.content(ino)?.size())
    }

    /// Truncates or extends a file.
    pub fn set_len(&mut self, ino: u64, len: u64, now: u64) -> Result<(), Errno> {
        let size = self.size(ino)?;
        let growth = self.grow_to(ino, len, Errno::Fbig)?;
        if let Err(e) = self.content(ino)?.set_len(len) {
            self.budget.give(growth);
            return Err(Errno::from(e));
        }
        self.budget.give(size.saturating_sub(len));
        let node = self.node_mut(ino)?;
        node.mtim = now;
        node.ctim = now;
        Ok(())
    }

    /// Serves future reads of the files created while `replaying` from
    /// `buffer` (a journal's mapping) where [`MemFs::write_mapped`] says so.
    pub fn set_offload(&mut self, buffer: shared_buffer::OwnedBuffer) -> Result<(), Errno> {
        let store = virtual_fs::mem_fs::OffloadBackingStore::from_buffer(buffer);
        let fs = virtual_fs::mem_fs::FileSystem::default()
            .with_backing_offload(store)
            .map_err(Errno::from)?;
        self.offload = Some(fs);
        Ok(())
    }

    /// Writes `len` bytes found at `map_offset` of the offload buffer to
    /// `pos` of the file, without copying them. `Ok(false)` if the file is
    /// not offloaded (the caller copies instead).
    pub fn write_mapped(
        &mut self,
        ino: u64,
        pos: u64,
        map_offset: u64,
        len: u64,
        now: u64,
    ) -> Result<bool, Errno> {
        if !self.offloaded.contains(&ino) {
            return Ok(false);
        }
        let end = pos.checked_add(len).ok_or(Errno::Fbig)?;
        let growth = self.grow_to(ino, end, Errno::Nospc)?;
        let content = self.content(ino)?;
        let written = block_on(content.seek(SeekFrom::Start(pos)))
            .and_then(|_| content.write_from_mmap(map_offset, len));
        if let Err(e) = written {
            self.budget.give(growth);
            return Err(io_errno(e));
        }
        let node = self.node_mut(ino)?;
        node.mtim = now;
        node.ctim = now;
        Ok(true)
    }

    /// Moves an offloaded file's content into the plain store (a copy).
    fn migrate(&mut self, ino: u64) -> Result<(), Errno> {
        let size = self.size(ino)?;
        let mut data = vec![0u8; size as usize];
        self.read_at(ino, 0, &mut data)?;
        let path = content_path(ino);
        if let Some(shard) = path.parent() {
            let _ = self.store.create_dir(shard);
        }
        let _ = self.store.remove_file(&path);
        let mut fresh = self
            .store
            .new_open_options()
            .read(true)
            .write(true)
            .create(true)
            .open(&path)
            .map_err(Errno::from)?;
        block_on(fresh.write_all(&data)).map_err(io_errno)?;
        if let Some(store) = &self.offload {
            let _ = store.remove_file(&path);
        }
        self.offloaded.remove(&ino);
        self.live_writes.remove(&ino);
        if let Kind::File(content) = &mut self.node_mut(ino)?.kind {
            *content = fresh;
        }
        Ok(())
    }
}
