//! Replay: rebuild the journaled mounts and the descriptor table of a
//! recorded program from its journal, before the program starts again.
//!
//! What each entry means is fixed by the journal crate's reference model
//! (`wasnap_journal::state`, docs/format.md "What entries mean"); this module
//! applies it to a live [`WasiCtx`]:
//! - effects on journaled (in-memory) mounts are applied again, with the
//!   recorded effect times (`ClockSetV1`), so trees, bytes, sizes, times and
//!   links come back exactly;
//! - effects on host mounts are not re-applied (the host holds them); their
//!   descriptors are reopened by path, without creating or truncating;
//! - descriptors come back at their recorded numbers, positions and flags;
//! - writes to standard output and error are printed again only if asked;
//! - large writes are served from the journal's mapping instead of being
//!   copied (see [`ZERO_COPY_MIN`]); small sequential writes are gathered
//!   into one copy per run, so a file does not end up as thousands of
//!   extents.

use std::collections::{HashMap, HashSet};

use wasnap_journal::{JournalEntry, JournalReader, ReadError};

use crate::abi::{fstflags, oflags};
use crate::ctx::WasiCtx;
use crate::errno::{Errno, SysError};
use crate::fd::Handle;
use crate::fs::{resolve, FileRef, Resolved};
use crate::record::EFFECT_CLOCK;

/// Writes at least this long are served from the journal's mapping.
pub const ZERO_COPY_MIN: usize = 64 * 1024;

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Print recorded writes to standard output and error again.
    pub replay_stdio: bool,
    /// Replay even if the journal was recorded for another module.
    pub force: bool,
    /// SHA-256 of the module about to run, checked against `InitModuleV1`.
    pub module_hash: Option<[u8; 32]>,
    /// Stop at the last complete snapshot of the live timeline and collect
    /// what resuming from it needs (memory, thread state).
    pub resume: bool,
}

/// What resuming from a snapshot needs, collected by [`replay`].
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// Offset of the `SnapshotV1` marker record.
    pub marker_offset: u64,
    /// Linear memory at the snapshot.
    pub memory: Vec<u8>,
    /// Globals and unwind buffer at the snapshot.
    pub thread: wasnap_journal::ThreadStateV1<'static>,
}

/// The live timeline of a journal: records in `dead` ranges belong to
/// timelines lost when a run resumed from an earlier snapshot; `last_marker`
/// is the last complete snapshot on the live timeline.
struct Plan {
    dead: Vec<std::ops::Range<u64>>,
    last_marker: Option<u64>,
}

fn plan(reader: &mut JournalReader) -> Result<Plan, ReadError> {
    let mut markers: HashMap<u64, u64> = HashMap::new();
    let mut dead = Vec::new();
    let mut last_marker = None;
    reader.rewind();
    while let Some(record) = reader.read_next()? {
        match &record.entry {
            JournalEntry::SnapshotV1(_) => {
                markers.insert(record.start, record.end);
                last_marker = Some(record.start);
            }
            JournalEntry::ResumedFromSnapshotV1(r) => {
                if let Some(&end) = markers.get(&r.snapshot_offset) {
                    dead.push(end..record.start);
                    last_marker = Some(r.snapshot_offset);
                }
            }
            _ => {}
        }
    }
    reader.rewind();
    Ok(Plan { dead, last_marker })
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    pub records: u64,
    /// `InitModuleV1` records seen: one per recorded run.
    pub runs: u64,
    /// File bytes written into memory mounts from the mapping, not copied.
    pub zero_copy_bytes: u64,
    /// File bytes copied into memory mounts.
    pub copied_bytes: u64,
    /// Effects on host mounts, not re-applied.
    pub host_effects_skipped: u64,
    /// Entries about things replay cannot restore (sockets, snapshots), skipped.
    pub unsupported_skipped: u64,
    /// Descriptors on host mounts that could not be reopened.
    pub warnings: Vec<String>,
    /// With [`ReplayOptions::resume`]: the snapshot to resume from, if the
    /// journal has a complete one.
    pub resume: Option<ResumePoint>,
}

/// Why a journal cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the journal {journal} was recorded for another module (journal: {recorded}, module: {running}); pass --force to replay it anyway")]
    ModuleMismatch {
        journal: String,
        recorded: String,
        running: String,
    },
    #[error(
        "the journal {journal} cannot be replayed: {entry} at offset {offset} failed with {errno}"
    )]
    Apply {
        journal: String,
        offset: u64,
        entry: String,
        errno: Errno,
    },
    #[error("the journal {journal} cannot be replayed: {entry} at offset {offset}: {message}")]
    Trap {
        journal: String,
        offset: u64,
        entry: String,
        message: String,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Small writes waiting to be applied as one: `data` goes at `start` of the
/// file behind `fd`.
struct Pending {
    fd: u32,
    start: u64,
    data: Vec<u8>,
    time: u64,
}

struct Replayer<'c> {
    ctx: &'c mut WasiCtx,
    options: &'c ReplayOptions,
    summary: ReplaySummary,
    time: u64,
    pending: HashMap<u32, Pending>,
    /// Descriptors of host mounts that could not be reopened: their later
    /// effects are skipped.
    lost: HashSet<u32>,
    map_base: usize,
    map_len: usize,
}

/// Replays every record of `reader` into `ctx`.
pub fn replay(
    ctx: &mut WasiCtx,
    reader: &mut JournalReader,
    options: &ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    let journal = reader.name().to_owned();
    let map = reader.buffer().clone();
    let mut offload_ok = true;
    for mount in &mut ctx.mounts {
        if let Some(m) = mount.mem() {
            offload_ok &= m.set_offload(map.clone()).is_ok();
            m.replaying = true;
        }
    }
    let mut replayer = Replayer {
        time: ctx.now(),
        ctx,
        options,
        summary: ReplaySummary::default(),
        pending: HashMap::new(),
        lost: HashSet::new(),
        map_base: if offload_ok { map.as_ptr() as usize } else { 0 },
        map_len: if offload_ok { map.len() } else { 0 },
    };
    let result = (|| {
        let plan = plan(reader)?;
        let stop_at = if options.resume {
            plan.last_marker
        } else {
            None
        };
        let mut image = wasnap_journal::memory::MemoryImage::new();
        let mut thread = None;
        while let Some(record) = reader.read_next()? {
            let offset = record.start;
            if plan.dead.iter().any(|r| r.contains(&offset)) {
                continue;
            }
            replayer.summary.records += 1;
            let entry = record.entry;
            if stop_at.is_some() {
                match &entry {
                    JournalEntry::UpdateMemoryRegionV1(region) => {
                        image.apply(region).map_err(|e| ReplayError::Trap {
                            journal: journal.clone(),
                            offset,
                            entry: "UpdateMemoryRegionV1".into(),
                            message: e.to_string(),
                        })?;
                        continue;
                    }
                    JournalEntry::ThreadStateV1(t) => {
                        thread = Some(wasnap_journal::ThreadStateV1 {
                            thread_id: t.thread_id,
                            call_stack: t.call_stack.to_vec().into(),
                            memory_stack: t.memory_stack.to_vec().into(),
                            globals: t.globals.clone(),
                            stack_lower: t.stack_lower,
                            stack_upper: t.stack_upper,
                            guard_size: t.guard_size,
                        });
                        continue;
                    }
                    JournalEntry::SnapshotV1(_) if Some(offset) == stop_at => {
                        if let Some(thread) = thread.take() {
                            replayer.summary.resume = Some(ResumePoint {
                                marker_offset: offset,
                                memory: std::mem::take(&mut image).into_bytes(),
                                thread,
                            });
                        }
                        break;
                    }
                    _ => {}
                }
            }
            if let Err(error) = replayer.apply(&entry) {
                let name = entry.kind().name().to_owned();
                return Err(match error {
                    SysError::Errno(errno) => ReplayError::Apply {
                        journal: journal.clone(),
                        offset,
                        entry: name,
                        errno,
                    },
                    SysError::Trap(trap) => ReplayError::Trap {
                        journal: journal.clone(),
                        offset,
                        entry: name,
                        message: trap.to_string(),
                    },
                });
            }
            if let JournalEntry::InitModuleV1(init) = &entry {
                if let (Some(running), false) = (options.module_hash, options.force) {
                    if running != init.wasm_hash {
                        return Err(ReplayError::ModuleMismatch {
                            journal: journal.clone(),
                            recorded: hex(&init.wasm_hash),
                            running: hex(&running),
                        });
                    }
                }
            }
        }
        replayer.flush_all().map_err(|error| ReplayError::Trap {
            journal: journal.clone(),
            offset: reader.position(),
            entry: "FileDescriptorWriteV1".into(),
            message: format!("{error:?}"),
        })?;
        Ok(())
    })();
    let summary = std::mem::take(&mut replayer.summary);
    let ctx = replayer.ctx;
    ctx.time_override = None;
    for mount in &mut ctx.mounts {
        if let Some(m) = mount.mem() {
            m.replaying = false;
        }
    }
    result.map(|()| summary)
}

type Applied = Result<(), SysError>;

impl Replayer<'_> {
    fn apply(&mut self, entry: &JournalEntry<'_>) -> Applied {
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
        if let Some(fds) = descriptors_of(entry) {
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
                    _ => {}
                }
                self.summary.host_effects_skipped += 1;
                return Ok(());
            }
        }
        match entry {
            E::InitModuleV1(_) => self.summary.runs += 1,
            E::EnvironmentV1(_)
            | E::ProcessExitV1(_)
            | E::ClockReadV1(_)
            | E::RandomBytesV1(_)
            | E::InputReadV1(_)
            | E::PollResultV1(_) => {}
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
                    self.summary.host_effects_skipped += 1;
                }
            }
            E::FileDescriptorAllocateV1(a) => {
                if self.on_memory_mount(a.fd)? {
                    self.ctx.fd_allocate(a.fd, a.offset, a.len)?;
                } else {
                    self.summary.host_effects_skipped += 1;
                }
            }
            E::FileDescriptorSetTimesV1(t) => {
                if self.on_memory_mount(t.fd)? {
                    self.ctx
                        .fd_filestat_set_times(t.fd, t.atim, t.mtim, t.fst_flags)?;
                } else {
                    self.summary.host_effects_skipped += 1;
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
            // Snapshots, memory and threads are resumed elsewhere; sockets,
            // pipes and epoll cannot be brought back.
            _ => self.summary.unsupported_skipped += 1,
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
            self.summary.host_effects_skipped += 1;
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

    fn open(&mut self, o: &wasnap_journal::OpenFileDescriptorV1<'_>) -> Applied {
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
                self.summary.warnings.push(format!(
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
            Handle::Stdout if self.options.replay_stdio => {
                self.ctx.stdout.write_all(data).map_err(Errno::from)?;
                return Ok(());
            }
            Handle::Stderr if self.options.replay_stdio => {
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
                self.summary.unsupported_skipped += 1;
                return Ok(());
            }
        };
        if !self.ctx.mounts[mount].is_memory() {
            self.summary.host_effects_skipped += 1;
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
                self.summary.zero_copy_bytes += data.len() as u64;
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
        self.summary.copied_bytes += p.data.len() as u64;
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
        E::CreateDirectoryV1(e) => vec![e.fd],
        E::RemoveDirectoryV1(e) => vec![e.fd],
        E::UnlinkFileV1(e) => vec![e.fd],
        E::PathRenameV1(e) => vec![e.old_fd, e.new_fd],
        E::CreateHardLinkV1(e) => vec![e.old_fd, e.new_fd],
        E::CreateSymbolicLinkV1(e) => vec![e.fd],
        E::PathSetTimesV1(e) => vec![e.fd],
        _ => return None,
    })
}

fn times(atim: u64, mtim: u64, flags: u16) -> (Option<u64>, Option<u64>) {
    (
        (flags & fstflags::ATIM != 0).then_some(atim),
        (flags & fstflags::MTIM != 0).then_some(mtim),
    )
}
