//! Re-applying journaled effects to a fresh [`WasiCtx`]: the journaled
//! mounts and the descriptor table come back as the recorded program left
//! them. The runtime (`wasnap-runtime`) reads the journal, follows its
//! timeline and hands each live entry to a [`Reapplier`].
//!
//! What each entry means is fixed by the journal crate's reference model
//! (`wasnap_journal::state`, docs/format.md "What entries mean"); this module
//! applies it to a live context:
//! - effects on journaled (in-memory) mounts are applied again, with the
//!   recorded effect times (`ClockSetV1`), so trees, bytes, sizes, times and
//!   links come back exactly;
//! - effects on host mounts are not re-applied (the host holds them); their
//!   descriptors are reopened by path, without creating or truncating, and
//!   only if the replay needs them: a reopen waits until an entry acts
//!   through the descriptor (or through it as a directory) or the replay
//!   ends, and a close before then means it never happens (an interpreter
//!   that opened and closed hundreds of library files reopens none);
//! - descriptors come back at their recorded numbers, positions and flags;
//! - writes to standard output and error are printed again only if asked;
//! - large writes are served from the journal's mapping instead of being
//!   copied (see [`ZERO_COPY_MIN`]); small sequential writes are gathered
//!   into one copy per run, so a file does not end up as thousands of
//!   extents.

use std::collections::{BTreeMap, HashMap, HashSet};

use wasnap_journal::{JournalEntry, OpenFileDescriptorV1, OwnedBuffer};

use crate::abi::{fstflags, oflags};
use crate::ctx::WasiCtx;
use crate::errno::{Errno, SysError};
use crate::fd::Handle;
use crate::fs::{resolve, FileRef, Resolved};

/// The realtime clock id, as used in `ClockSetV1` to mark effect times.
pub const EFFECT_CLOCK: u32 = 0;

/// The entry kinds replay cannot bring back (sockets, pipes, events, epoll,
/// terminals, directory changes), as one pattern over `JournalEntry` (`E`).
macro_rules! not_restorable {
    () => {
        E::ChangeDirectoryV1(_)
            | E::CreatePipeV1(_)
            | E::CreateEventV1(_)
            | E::EpollCreateV1(_)
            | E::EpollCtlV1(_)
            | E::TtySetV1(_)
            | E::SocketOpenV1(_)
            | E::SocketBindV1(_)
            | E::SocketListenV1(_)
            | E::SocketConnectV1(_)
            | E::SocketAcceptV1(_)
            | E::SocketSendV1(_)
            | E::SocketSendToV1(_)
            | E::SocketSetOptionV1(_)
            | E::SocketShutdownV1(_)
            | E::SocketJoinMulticastV1(_)
            | E::SocketLeaveMulticastV1(_)
    };
}

/// Writes at least this long are served from the journal's mapping.
pub const ZERO_COPY_MIN: usize = 64 * 1024;

/// What re-applying did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapplyCounts {
    /// File bytes written into memory mounts from the mapping, not copied.
    pub zero_copy_bytes: u64,
    /// File bytes copied into memory mounts.
    pub copied_bytes: u64,
    /// Effects on host mounts, not re-applied.
    pub host_effects_skipped: u64,
    /// Entries about things that cannot be brought back (sockets, pipes,
    /// epoll), skipped.
    pub unsupported_skipped: u64,
    /// Descriptors on host mounts that could not be reopened.
    pub warnings: Vec<String>,
}

/// Small writes waiting to be applied as one: `data` goes at `start` of the
/// file behind `fd`.
struct Pending {
    fd: u32,
    start: u64,
    data: Vec<u8>,
    time: u64,
}

/// Applies journaled effects to a context, one entry at a time, in journal
/// order. Dropping it ends the replay (the context's clock and mounts go
/// back to live behaviour); call [`Reapplier::finish`] to apply what is
/// still gathered.
pub struct Reapplier<'c> {
    ctx: &'c mut WasiCtx,
    replay_stdio: bool,
    counts: ReapplyCounts,
    time: u64,
    pending: HashMap<u32, Pending>,
    /// Descriptors of host mounts that could not be reopened: their later
    /// effects are skipped.
    lost: HashSet<u32>,
    /// Opens on host mounts not done yet, by recorded descriptor: done when
    /// an entry acts through the descriptor, when the descriptor they were
    /// opened relative to is about to go, or at the end; dropped by a close.
    deferred: BTreeMap<u32, OpenFileDescriptorV1<'static>>,
    map_base: usize,
    map_len: usize,
}

impl<'c> Reapplier<'c> {
    /// Starts re-applying into `ctx`. Entries read from `mapping` (the
    /// journal's buffer) may be served from it instead of copied; with
    /// `replay_stdio`, recorded output is printed again.
    pub fn new(ctx: &'c mut WasiCtx, mapping: Option<&OwnedBuffer>, replay_stdio: bool) -> Self {
        let mut offload_ok = mapping.is_some();
        for mount in &mut ctx.mounts {
            if let Some(m) = mount.mem() {
                if let Some(map) = mapping {
                    offload_ok &= m.set_offload(map.clone()).is_ok();
                }
                m.replaying = true;
            }
        }
        let (map_base, map_len) = match mapping {
            Some(map) if offload_ok => (map.as_ptr() as usize, map.len()),
            _ => (0, 0),
        };
        Reapplier {
            time: ctx.now(),
            ctx,
            replay_stdio,
            counts: ReapplyCounts::default(),
            pending: HashMap::new(),
            lost: HashSet::new(),
            deferred: BTreeMap::new(),
            map_base,
            map_len,
        }
    }

    /// Applies what is still gathered and reports what was done.
    pub fn finish(mut self) -> Result<ReapplyCounts, SysError> {
        self.flush_all()?;
        while let Some(fd) = self.deferred.keys().next().copied() {
            self.reopen(fd)?;
        }
        Ok(std::mem::take(&mut self.counts))
    }
}

impl Drop for Reapplier<'_> {
    fn drop(&mut self) {
        self.ctx.time_override = None;
        for mount in &mut self.ctx.mounts {
            if let Some(m) = mount.mem() {
                m.replaying = false;
            }
        }
    }
}

type Applied = Result<(), SysError>;

impl Reapplier<'_> {
    /// Applies one entry of the live timeline.
    pub fn apply(&mut self, entry: &JournalEntry<'_>) -> Applied {
        use JournalEntry as E;
        // Gathered small writes wait only across writes and seeks.
        if !matches!(
            entry,
            E::FileDescriptorWriteV1(_) | E::FileDescriptorSeekV1(_) | E::ClockSetV1(_)
        ) {
            self.flush_all()?;
        }
        self.ctx.time_override = Some(self.time);
        self.ctx.now();
        let fds = descriptors_of(entry);
        if let Some(fds) = &fds {
            if let E::CloseFileDescriptorV1(c) = entry {
                if self.deferred.contains_key(&c.fd) {
                    // What was opened relative to it is opened now (which
                    // opens it too, and then it is closed as usual).
                    self.reopen_children(c.fd)?;
                    if self.deferred.remove(&c.fd).is_some() {
                        // Opened and closed with nothing in between that
                        // needed it: never reopened.
                        self.counts.host_effects_skipped += 1;
                        return Ok(());
                    }
                }
            }
            for &fd in fds {
                if matches!(
                    entry,
                    E::CloseFileDescriptorV1(_) | E::RenumberFileDescriptorV1(_)
                ) {
                    // The descriptor goes (or moves): what was opened
                    // relative to it is opened now.
                    self.reopen_children(fd)?;
                }
                self.reopen(fd)?;
            }
        }
        if let Some(fds) = fds {
            if fds.iter().any(|fd| self.lost.contains(fd)) {
                match entry {
                    E::CloseFileDescriptorV1(c) => {
                        self.lost.remove(&c.fd);
                    }
                    E::RenumberFileDescriptorV1(r) if self.lost.contains(&r.from_fd) => {
                        self.lost.remove(&r.from_fd);
                        if let Ok(old) = self.ctx.fds.remove(r.to_fd) {
                            self.ctx.release(old.handle);
                        }
                        self.lost.insert(r.to_fd);
                    }
                    E::DuplicateFileDescriptorV1(d) if self.lost.contains(&d.original_fd) => {
                        if let Ok(old) = self.ctx.fds.remove(d.copied_fd) {
                            self.ctx.release(old.handle);
                        }
                        self.lost.insert(d.copied_fd);
                    }
                    _ => {}
                }
                self.counts.host_effects_skipped += 1;
                return Ok(());
            }
        }
        match entry {
            // Identity, inputs and the exit change no host state; the runtime
            // checks the module and follows the timeline.
            E::InitModuleV1(_)
            | E::EnvironmentV1(_)
            | E::ProcessExitV1(_)
            | E::ClockReadV1(_)
            | E::RandomBytesV1(_)
            | E::InputReadV1(_)
            | E::PollResultV1(_)
            // Alignment, nothing else.
            | E::PaddingV1(_) => {}
            E::ClockSetV1(c) if c.clock_id == EFFECT_CLOCK => self.time = c.time_ns,
            E::ClockSetV1(_) => {}
            E::OpenFileDescriptorV1(o) => self.open(o)?,
            E::CloseFileDescriptorV1(c) => {
                self.flush_fd(c.fd)?;
                self.ctx.fd_close(c.fd)?;
            }
            E::FileDescriptorSeekV1(s) => self.seek(s.fd, s.offset)?,
            E::FileDescriptorWriteV1(w) => self.write(w.fd, w.offset, &w.data)?,
            E::FileDescriptorSetSizeV1(s) => {
                if self.on_memory_mount(s.fd)? {
                    self.ctx.fd_filestat_set_size(s.fd, s.size)?;
                } else {
                    self.counts.host_effects_skipped += 1;
                }
            }
            E::FileDescriptorAllocateV1(a) => {
                if self.on_memory_mount(a.fd)? {
                    self.ctx.fd_allocate(a.fd, a.offset, a.len)?;
                } else {
                    self.counts.host_effects_skipped += 1;
                }
            }
            E::FileDescriptorSetTimesV1(t) => {
                if self.on_memory_mount(t.fd)? {
                    self.ctx
                        .fd_filestat_set_times(t.fd, t.atim, t.mtim, t.fst_flags)?;
                } else {
                    self.counts.host_effects_skipped += 1;
                }
            }
            E::FileDescriptorSetFlagsV1(f) => self.ctx.fd_fdstat_set_flags(f.fd, f.flags)?,
            E::FileDescriptorSetRightsV1(r) => {
                self.ctx
                    .fd_fdstat_set_rights(r.fd, r.fs_rights_base, r.fs_rights_inheriting)?
            }
            E::FileDescriptorAdviseV1(_) => {}
            E::RenumberFileDescriptorV1(r) => {
                self.flush_fd(r.from_fd)?;
                self.flush_fd(r.to_fd)?;
                self.ctx.fd_renumber(r.from_fd, r.to_fd)?;
            }
            E::CreateDirectoryV1(c) => {
                self.path_effect(c.fd, &c.path, |m, r, now| m.mkdir(r, now))?
            }
            E::RemoveDirectoryV1(c) => {
                self.path_effect(c.fd, &c.path, |m, r, now| m.rmdir(r, now))?
            }
            E::UnlinkFileV1(c) => self.path_effect(c.fd, &c.path, |m, r, now| m.unlink(r, now))?,
            E::CreateSymbolicLinkV1(s) => {
                let target = s.target.to_string();
                self.path_effect(s.fd, &s.new_path, move |m, r, now| {
                    m.symlink(&target, r, now)
                })?
            }
            E::PathSetTimesV1(t) => {
                let (a, m) = times(t.atim, t.mtim, t.fst_flags);
                let follow = t.flags & crate::abi::lookupflags::SYMLINK_FOLLOW != 0;
                if let Some((mount, resolved)) = self.resolve_memory(t.fd, &t.path, follow)? {
                    let now = self.time;
                    self.ctx.mounts[mount].set_times(&resolved, a, m, now)?;
                }
            }
            E::PathRenameV1(r) => {
                if let Some((mount, from)) = self.resolve_memory(r.old_fd, &r.old_path, false)? {
                    let (_, to) = self.ctx.resolve_at(r.new_fd, &r.new_path, false, 0)?;
                    self.ctx.mounts[mount].rename(&from, &to, self.time)?;
                }
            }
            E::CreateHardLinkV1(l) => {
                let follow = l.old_flags & crate::abi::lookupflags::SYMLINK_FOLLOW != 0;
                if let Some((mount, from)) = self.resolve_memory(l.old_fd, &l.old_path, follow)? {
                    let (_, to) = self.ctx.resolve_at(l.new_fd, &l.new_path, false, 0)?;
                    self.ctx.mounts[mount].link(&from, &to, self.time)?;
                }
            }
            // Memory, threads and snapshots are the runtime's to restore.
            E::UpdateMemoryRegionV1(_)
            | E::ThreadStateV1(_)
            | E::ThreadExitV1(_)
            | E::SnapshotV1(_)
            | E::ResumedFromSnapshotV1(_)
            | E::TimelineCutV1(_) => {}
            // Sockets, pipes, events, epoll, terminals and directory changes
            // cannot be brought back.
            E::DuplicateFileDescriptorV1(d) => {
                self.flush_fd(d.original_fd)?;
                self.flush_fd(d.copied_fd)?;
                self.ctx.duplicate_for_replay(d.original_fd, d.copied_fd)?;
            }
            not_restorable!() => self.counts.unsupported_skipped += 1,
        }
        Ok(())
    }

    fn on_memory_mount(&self, fd: u32) -> Result<bool, SysError> {
        match &self.ctx.fds.get(fd)?.handle {
            Handle::File { mount, .. } | Handle::Dir { mount, .. } => {
                Ok(self.ctx.mounts[*mount].is_memory())
            }
            _ => Ok(false),
        }
    }

    /// Resolves a path of a memory mount; `None` (and counted as skipped) on
    /// a host mount.
    fn resolve_memory(
        &mut self,
        fd: u32,
        path: &str,
        follow: bool,
    ) -> Result<Option<(usize, Resolved)>, SysError> {
        let (mount, dir, _) = self.ctx.dir_of(fd, 0)?;
        if !self.ctx.mounts[mount].is_memory() {
            self.counts.host_effects_skipped += 1;
            return Ok(None);
        }
        let resolved = resolve(&self.ctx.mounts[mount], &dir, path, follow)?;
        Ok(Some((mount, resolved)))
    }

    fn path_effect(
        &mut self,
        fd: u32,
        path: &str,
        op: impl FnOnce(&mut crate::fs::Mount, &Resolved, u64) -> Result<(), Errno>,
    ) -> Applied {
        if let Some((mount, resolved)) = self.resolve_memory(fd, path, false)? {
            op(&mut self.ctx.mounts[mount], &resolved, self.time)?;
        }
        Ok(())
    }

    fn open(&mut self, o: &OpenFileDescriptorV1<'_>) -> Applied {
        let (mount, _, _) = self.ctx.dir_of(o.dirfd, 0)?;
        if !self.ctx.mounts[mount].is_memory() {
            use wasnap_journal::field::IntoOwned as _;
            self.deferred.insert(o.fd, o.clone().into_owned());
            return Ok(());
        }
        self.open_now(o)
    }

    /// Does the deferred open of `fd`, if there is one (and first the open
    /// of the directory it is relative to, if that is deferred too).
    fn reopen(&mut self, fd: u32) -> Applied {
        let Some(o) = self.deferred.remove(&fd) else {
            return Ok(());
        };
        if o.dirfd != fd {
            self.reopen(o.dirfd)?;
        }
        if self.lost.contains(&o.dirfd) {
            self.counts.warnings.push(format!(
                "cannot reopen {}: its directory was not restored; descriptor {} is not restored",
                o.path, o.fd
            ));
            self.lost.insert(o.fd);
            return Ok(());
        }
        self.open_now(&o)
    }

    /// Does every deferred open relative to the directory descriptor `dirfd`.
    fn reopen_children(&mut self, dirfd: u32) -> Applied {
        let children: Vec<u32> = self
            .deferred
            .iter()
            .filter(|(&fd, o)| o.dirfd == dirfd && fd != dirfd)
            .map(|(&fd, _)| fd)
            .collect();
        for fd in children {
            self.reopen(fd)?;
        }
        Ok(())
    }

    fn open_now(&mut self, o: &OpenFileDescriptorV1<'_>) -> Applied {
        let (mount, _, _) = self.ctx.dir_of(o.dirfd, 0)?;
        let host = !self.ctx.mounts[mount].is_memory();
        // On a host mount the file is reopened as it is now: never created
        // or truncated again.
        let o_flags = if host {
            o.o_flags & !(oflags::CREAT | oflags::EXCL | oflags::TRUNC)
        } else {
            o.o_flags
        };
        let opened = self.ctx.open_path(
            o.dirfd,
            o.dirflags,
            &o.path,
            o_flags,
            o.fs_rights_base,
            o.fs_rights_inheriting,
            o.fs_flags,
        );
        let fd = match opened {
            Ok(fd) => fd,
            Err(SysError::Errno(errno)) if host => {
                self.counts.warnings.push(format!(
                    "cannot reopen {} on a host mount ({errno}); descriptor {} is not restored",
                    o.path, o.fd
                ));
                self.lost.insert(o.fd);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if fd != o.fd {
            // The recorded number is free in a faithful replay; if an earlier
            // host reopen failed, numbers can differ: move it into place.
            let desc = self.ctx.fds.remove(fd)?;
            if let Some(old) = self.ctx.fds.insert_at(o.fd, desc) {
                self.ctx.release(old.handle);
            }
        }
        Ok(())
    }

    fn seek(&mut self, fd: u32, offset: i64) -> Applied {
        self.flush_fd(fd)?;
        match &mut self.ctx.fds.get_mut(fd)?.handle {
            Handle::File { pos, .. } => *pos = offset.max(0) as u64,
            _ => return Err(Errno::Spipe.into()),
        }
        Ok(())
    }

    fn write(&mut self, fd: u32, offset: u64, data: &[u8]) -> Applied {
        let mount = match &mut self.ctx.fds.get_mut(fd)?.handle {
            Handle::Stdout if self.replay_stdio => {
                self.ctx.stdout.write_all(data).map_err(Errno::from)?;
                return Ok(());
            }
            Handle::Stderr if self.replay_stdio => {
                self.ctx.stderr.write_all(data).map_err(Errno::from)?;
                return Ok(());
            }
            Handle::Stdout | Handle::Stderr => return Ok(()),
            Handle::File { mount, pos, .. } => {
                // As the reference model says: the position ends after the write.
                *pos = offset + data.len() as u64;
                *mount
            }
            _ => {
                self.counts.unsupported_skipped += 1;
                return Ok(());
            }
        };
        if !self.ctx.mounts[mount].is_memory() {
            self.counts.host_effects_skipped += 1;
            return Ok(());
        }
        let ptr = data.as_ptr() as usize;
        let in_map = self.map_len > 0
            && ptr >= self.map_base
            && ptr + data.len() <= self.map_base + self.map_len;
        if data.len() >= ZERO_COPY_MIN && in_map {
            self.flush_fd(fd)?;
            let map_offset = (ptr - self.map_base) as u64;
            let time = self.time;
            let Handle::File {
                file: FileRef::Mem(ino),
                ..
            } = &self.ctx.fds.get(fd)?.handle
            else {
                return Err(Errno::Badf.into());
            };
            let ino = *ino;
            let Some(m) = self.ctx.mounts[mount].mem() else {
                return Err(Errno::Badf.into());
            };
            if m.write_mapped(ino, offset, map_offset, data.len() as u64, time)? {
                self.counts.zero_copy_bytes += data.len() as u64;
                return Ok(());
            }
        }
        // Gather: continue the pending run of this descriptor, or start one.
        let contiguous = self
            .pending
            .get(&fd)
            .is_some_and(|p| p.start + p.data.len() as u64 == offset);
        if !contiguous {
            self.flush_fd(fd)?;
        }
        let time = self.time;
        let pending = self.pending.entry(fd).or_insert_with(|| Pending {
            fd,
            start: offset,
            data: Vec::new(),
            time,
        });
        pending.data.extend_from_slice(data);
        pending.time = time;
        if pending.data.len() >= 4 << 20 {
            self.flush_fd(fd)?;
        }
        Ok(())
    }

    fn flush_fd(&mut self, fd: u32) -> Applied {
        let Some(p) = self.pending.remove(&fd) else {
            return Ok(());
        };
        let desc = self.ctx.fds.get(p.fd)?;
        let Handle::File { mount, file, .. } = &desc.handle else {
            return Err(Errno::Badf.into());
        };
        self.ctx.mounts[*mount].write_at(file, p.start, &p.data, p.time)?;
        self.counts.copied_bytes += p.data.len() as u64;
        Ok(())
    }

    fn flush_all(&mut self) -> Applied {
        let fds: Vec<u32> = self.pending.keys().copied().collect();
        for fd in fds {
            self.flush_fd(fd)?;
        }
        Ok(())
    }
}

/// The descriptors an entry acts through (directory descriptors of path
/// entries included), if it acts through any.
fn descriptors_of(entry: &JournalEntry<'_>) -> Option<Vec<u32>> {
    use JournalEntry as E;
    Some(match entry {
        E::OpenFileDescriptorV1(o) => vec![o.dirfd],
        E::CloseFileDescriptorV1(e) => vec![e.fd],
        E::FileDescriptorSeekV1(e) => vec![e.fd],
        E::FileDescriptorWriteV1(e) => vec![e.fd],
        E::FileDescriptorSetSizeV1(e) => vec![e.fd],
        E::FileDescriptorSetTimesV1(e) => vec![e.fd],
        E::FileDescriptorSetFlagsV1(e) => vec![e.fd],
        E::FileDescriptorSetRightsV1(e) => vec![e.fd],
        E::FileDescriptorAdviseV1(e) => vec![e.fd],
        E::FileDescriptorAllocateV1(e) => vec![e.fd],
        E::RenumberFileDescriptorV1(e) => vec![e.from_fd, e.to_fd],
        E::DuplicateFileDescriptorV1(e) => vec![e.original_fd, e.copied_fd],
        E::CreateDirectoryV1(e) => vec![e.fd],
        E::RemoveDirectoryV1(e) => vec![e.fd],
        E::UnlinkFileV1(e) => vec![e.fd],
        E::PathRenameV1(e) => vec![e.old_fd, e.new_fd],
        E::CreateHardLinkV1(e) => vec![e.old_fd, e.new_fd],
        E::CreateSymbolicLinkV1(e) => vec![e.fd],
        E::PathSetTimesV1(e) => vec![e.fd],
        // No descriptor of a mount: identity, clocks, memory, threads,
        // snapshots, inputs; and what replay skips anyway (duplicates,
        // pipes, events, epoll, terminals, sockets, directory changes).
        E::InitModuleV1(_)
        | E::ProcessExitV1(_)
        | E::EnvironmentV1(_)
        | E::ClockSetV1(_)
        | E::PaddingV1(_)
        | E::UpdateMemoryRegionV1(_)
        | E::ThreadStateV1(_)
        | E::ThreadExitV1(_)
        | E::SnapshotV1(_)
        | E::ResumedFromSnapshotV1(_)
        | E::TimelineCutV1(_)
        | E::ClockReadV1(_)
        | E::RandomBytesV1(_)
        | E::InputReadV1(_)
        | E::PollResultV1(_)
        | not_restorable!() => return None,
    })
}

fn times(atim: u64, mtim: u64, flags: u16) -> (Option<u64>, Option<u64>) {
    (
        (flags & fstflags::ATIM != 0).then_some(atim),
        (flags & fstflags::MTIM != 0).then_some(mtim),
    )
}
