//! Snapshots at snapshot points, by Binaryen's asyncify, and resume.
//!
//! The mechanism (DESIGN.md "Snapshots and resume"):
//! 1. at a snapshot point (an import the module was prepared to unwind
//!    from), the import grows memory by [`UNWIND_PAGES`] for the unwind
//!    buffer, calls `asyncify_start_unwind(buf)` and returns at once;
//! 2. when `_start` returns, the runtime calls `asyncify_stop_unwind` and
//!    writes the snapshot: changed memory chunks, the exported mutable
//!    globals and the unwind buffer (`ThreadStateV1`), then the `SnapshotV1`
//!    marker, and syncs the journal (a snapshot is complete only then);
//! 3. to go on (now, or in a fresh process after restoring memory and
//!    globals), it calls `asyncify_start_rewind(buf)` and `_start` again; the
//!    same import is reached, sees the rewind, calls `asyncify_stop_rewind`
//!    and does its real work.
//!
//! [`SnapshotControl`] is the WASI host's snapshot-point hook
//! ([`SnapshotPoints`]); the triggers it fires come from a
//! [`SnapshotPolicy`].
//!
//! `ThreadStateV1` conventions: `stack_lower` is the unwind buffer's address
//! and `stack_upper` its end; `globals` are the values of the exported
//! mutable globals in export order (floats as their bits).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::ops::Range;

use wasmer::{AsStoreMut, Global, Instance, Memory, Pages, StoreMut, TypedFunction, Value};
use wasnap_journal::memory::{stored_region, MemoryLayers};
use wasnap_journal::{JournalEntry, SnapshotTrigger, SnapshotV1, ThreadStateV1};
use wasnap_wasi::points::{Point, PointError, SnapshotPoints};
use wasnap_wasi::{Errno, WasiCtx};

use crate::dirty::{DirtyTracker, PAGE};
use crate::forked_write::ChildChain;
use crate::memory_map::RestoreFigures;
use crate::policy::SnapshotPolicy;

/// Pages (64 KiB) added to memory for the unwind buffer at each snapshot.
pub const UNWIND_PAGES: u32 = 16;
/// Without the kernel's tracking, memory is compared in chunks of this size.
pub const CHUNK: usize = 64 * 1024;

/// How a snapshot found what changed since the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirtyTracking {
    /// The kernel tracked the pages written (userfaultfd asynchronous
    /// write-protect and `PAGEMAP_SCAN`): only those were read.
    Kernel,
    /// The whole memory was compared with its copy from the previous
    /// snapshot (where the kernel cannot track).
    Compare,
}

impl std::fmt::Display for DirtyTracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DirtyTracking::Kernel => "written pages tracked by the kernel",
            DirtyTracking::Compare => "memory compared with the previous snapshot",
        })
    }
}

/// The asyncify exports of a prepared module.
pub(crate) struct Asyncify {
    start_unwind: TypedFunction<i32, ()>,
    stop_unwind: TypedFunction<(), ()>,
    start_rewind: TypedFunction<i32, ()>,
    stop_rewind: TypedFunction<(), ()>,
}

/// Where the program is with respect to asyncify.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Phase {
    #[default]
    Normal,
    /// Unwinding to `_start` for a snapshot, with this buffer.
    Unwinding { buf: u32 },
    /// Rewinding back into the import that unwound.
    Rewinding,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_points_are_the_ones_prepare_instruments() {
        let prepared: Vec<&str> = wasnap_prepare::asyncify::SNAPSHOT_POINTS
            .iter()
            .filter_map(|p| p.strip_prefix("wasi_snapshot_preview1."))
            .collect();
        for name in wasnap_wasi::imports::FUNCTIONS {
            assert_eq!(
                wasnap_wasi::points::is_point(name),
                prepared.contains(name),
                "{name}"
            );
        }
        assert_eq!(prepared.len(), 7);
    }
}

/// What one snapshot cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    /// From the end of the unwind to the journal synced (the program waits
    /// this long; the rewind adds little).
    pub pause: std::time::Duration,
    /// Linear memory size.
    pub memory_bytes: u64,
    /// Memory chunks written (changed since the previous snapshot).
    pub regions: usize,
    /// Bytes the snapshot added to the journal.
    pub journal_bytes: u64,
    /// How the changed memory was found.
    pub tracking: DirtyTracking,
    /// How the records went to the journal.
    pub written: SnapshotWrite,
    /// From the end of the unwind to the snapshot on disk (synced in the
    /// background while the program runs on); known once that sync ended.
    pub on_disk_after: Option<std::time::Duration>,
}

/// How the sync of one snapshot (by its index in `stats`) ended: when it
/// was on disk, measured from the end of its unwind.
type SyncOutcome = (usize, Result<Duration, SnapshotError>);

/// The snapshots being synced to disk in the background: a thread that
/// reports for its snapshot and every earlier one still pending.
struct PendingSync {
    thread: std::thread::JoinHandle<Vec<SyncOutcome>>,
}

impl PendingSync {
    fn join(self) -> Vec<SyncOutcome> {
        self.thread.join().unwrap_or_else(|_| {
            vec![(
                usize::MAX,
                Err(SnapshotError::Engine("the sync thread panicked".into())),
            )]
        })
    }
}

/// The triggers armed in one process (from its [`SnapshotPolicy`]).
#[derive(Default)]
struct Armed {
    /// Snapshot at the first read from standard input (armed until fired).
    first_stdin: bool,
    /// Snapshot when the guest asks (`wasnap.snapshot`, WASIX `proc_snapshot`).
    explicit: bool,
    /// Snapshot at the first environment read (armed until fired).
    first_environ: bool,
    /// Snapshot when the program reads standard input and none is there.
    idle: bool,
    /// Snapshot at the first snapshot point after each interval.
    interval: Option<Duration>,
    /// When the interval last restarted.
    interval_from: Option<Instant>,
    /// Set (by a signal handler) when Ctrl-C was pressed: snapshot at the
    /// next point, then stop.
    sigint: Option<Arc<AtomicBool>>,
    /// Stop cleanly after the first snapshot.
    stop_after: bool,
}

/// Snapshot state of one instance: the armed triggers, the asyncify state,
/// the memory of the last snapshot (for diffs) and the figures of every
/// snapshot taken.
#[derive(Default)]
pub struct SnapshotControl {
    armed: Armed,
    phase: Phase,
    asyncify: Option<Asyncify>,
    /// Exported mutable globals, in export order.
    globals: Vec<Global>,
    memory: Option<Memory>,
    /// The kernel's tracking of written pages, once started.
    tracker: Option<DirtyTracker>,
    /// Why the kernel cannot track (asked once per process).
    tracking_refused: Option<String>,
    /// When the rewind into a restored snapshot started, until it ends.
    restore_rewind_from: Option<Instant>,
    /// How long the rewind into the restored snapshot took.
    restore_rewind: Option<Duration>,
    /// The last snapshot's sync to disk, while it runs.
    pending_sync: Option<PendingSync>,
    /// The child processes writing snapshots, in order.
    pub(crate) children: ChildChain,
    /// Without the kernel's tracking: memory as of the last snapshot (or
    /// restore), for diffs.
    previous: Vec<u8>,
    /// What fired the snapshot being taken.
    trigger: Option<SnapshotTrigger>,
    /// Figures of every snapshot this process took, in order.
    stats: Vec<SnapshotStats>,
    /// The unwind buffer, once memory was grown for it (or restored): later
    /// snapshots reuse it instead of growing memory again.
    buffer: Option<u32>,
}

/// Why a snapshot could not be taken or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The module lacks the asyncify exports.
    #[error("the module cannot be snapshotted: it lacks Binaryen's asyncify exports (prepare it with `wasnap prepare MODULE -o PREPARED`)")]
    NotPrepared,
    /// No journal to write the snapshot to.
    #[error("snapshots need a journal to write to (--journal)")]
    NoJournal,
    /// The engine failed (growing memory, calling asyncify).
    #[error("snapshot failed: {0}")]
    Engine(String),
    /// The journal could not be written.
    #[error("cannot write the snapshot to the journal: {0}")]
    Journal(#[from] wasnap_journal::JournalError),
    /// The snapshot does not fit the module (globals, types).
    #[error("the journal's snapshot does not fit this module: {0}")]
    Mismatch(String),
    /// The snapshot's memory could not be put back.
    #[error("cannot restore memory from the journal: {0}")]
    Restore(String),
}

fn engine<E: std::fmt::Display>(e: E) -> SnapshotError {
    SnapshotError::Engine(e.to_string())
}

impl SnapshotControl {
    /// Arms the triggers of `policy`; `sigint` is the flag a Ctrl-C handler
    /// sets (with the sigint trigger).
    pub fn arm(&mut self, policy: &SnapshotPolicy, sigint: Option<Arc<AtomicBool>>) {
        self.armed = Armed {
            first_stdin: policy.has(SnapshotTrigger::FirstStdin),
            explicit: policy.has(SnapshotTrigger::Explicit),
            first_environ: policy.has(SnapshotTrigger::FirstEnviron),
            idle: policy.has(SnapshotTrigger::Idle),
            interval: policy
                .interval
                .filter(|_| policy.has(SnapshotTrigger::Interval)),
            interval_from: Some(Instant::now()),
            sigint,
            stop_after: policy.stop_after,
        };
    }

    /// Whether the module was prepared with asyncify (can be snapshotted).
    pub fn snapshottable(&self) -> bool {
        self.asyncify.is_some()
    }

    /// Whether `_start` returned because a snapshot point unwound it.
    pub fn unwinding(&self) -> bool {
        matches!(self.phase, Phase::Unwinding { .. })
    }

    /// Whether the run stops after the snapshot being taken.
    pub fn stops_after(&self) -> bool {
        self.armed.stop_after
    }

    /// Figures of every snapshot this process took, in order.
    pub fn stats(&self) -> &[SnapshotStats] {
        &self.stats
    }

    /// Records the figures of a snapshot just written.
    pub(crate) fn push_stats(&mut self, stats: SnapshotStats) {
        self.stats.push(stats);
    }

    /// Syncs the journal to disk on a thread of its own, for the snapshot
    /// whose figures were pushed last (its unwind ended at `started`). The
    /// syncs are chained: this one reports after the previous one, which it
    /// does not wait for here (a child process may still be writing that
    /// snapshot); a previous sync that already ended reports its error now.
    pub(crate) fn sync_in_background(
        &mut self,
        writer: wasnap_journal::JournalWriter,
        started: Instant,
    ) -> Result<(), SnapshotError> {
        if self
            .pending_sync
            .as_ref()
            .is_some_and(|p| p.thread.is_finished())
        {
            self.wait_for_disk()?;
        }
        let previous = self.pending_sync.take();
        let index = self.stats.len().saturating_sub(1);
        let thread = std::thread::Builder::new()
            .name("wasnap-snapshot-sync".into())
            .spawn(move || {
                let mut outcomes = previous.map_or_else(Vec::new, PendingSync::join);
                let synced = writer
                    .sync()
                    .map(|()| started.elapsed())
                    .map_err(SnapshotError::from);
                outcomes.push((index, synced));
                outcomes
            })
            .map_err(|e| SnapshotError::Engine(format!("cannot start the sync thread: {e}")))?;
        self.pending_sync = Some(PendingSync { thread });
        Ok(())
    }

    /// Waits until every snapshot is on disk; the first error, if a sync
    /// failed (then that snapshot is not durable).
    pub fn wait_for_disk(&mut self) -> Result<(), SnapshotError> {
        let Some(pending) = self.pending_sync.take() else {
            return Ok(());
        };
        let mut first_error = None;
        for (index, synced) in pending.join() {
            match synced {
                Ok(after) => {
                    if let Some(stats) = self.stats.get_mut(index) {
                        stats.on_disk_after = Some(after);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Finds the asyncify exports, the exported mutable globals and the
    /// memory of a new instance.
    fn find_exports(&mut self, store: &mut impl AsStoreMut, instance: &Instance) {
        let e = &instance.exports;
        let start_unwind = e
            .get_typed_function::<i32, ()>(&*store, "asyncify_start_unwind")
            .ok();
        let stop_unwind = e
            .get_typed_function::<(), ()>(&*store, "asyncify_stop_unwind")
            .ok();
        let start_rewind = e
            .get_typed_function::<i32, ()>(&*store, "asyncify_start_rewind")
            .ok();
        let stop_rewind = e
            .get_typed_function::<(), ()>(&*store, "asyncify_stop_rewind")
            .ok();
        self.asyncify = match (start_unwind, stop_unwind, start_rewind, stop_rewind) {
            (Some(start_unwind), Some(stop_unwind), Some(start_rewind), Some(stop_rewind)) => {
                Some(Asyncify {
                    start_unwind,
                    stop_unwind,
                    start_rewind,
                    stop_rewind,
                })
            }
            _ => None,
        };
        self.globals = instance
            .exports
            .iter()
            .filter_map(|(_, ext)| match ext {
                wasmer::Extern::Global(g)
                    if g.ty(&*store).mutability == wasmer::Mutability::Var =>
                {
                    Some(g.clone())
                }
                _ => None,
            })
            .collect();
        self.memory = instance.exports.get_memory("memory").ok().cloned();
    }

    /// The trigger due at snapshot point `name`, if any (and disarms
    /// one-shot triggers). `stdin_ready` is asked only when the import reads
    /// standard input.
    fn due(
        &mut self,
        name: &str,
        reads_stdin: bool,
        waits_on_stdin: bool,
        stdin_ready: impl FnOnce() -> bool,
    ) -> Option<SnapshotTrigger> {
        if self
            .armed
            .sigint
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
        {
            self.armed.stop_after = true;
            return Some(SnapshotTrigger::Sigint);
        }
        if self.armed.first_environ && (name == "environ_get" || name == "environ_sizes_get") {
            self.armed.first_environ = false;
            return Some(SnapshotTrigger::FirstEnviron);
        }
        if reads_stdin && self.armed.first_stdin {
            self.armed.first_stdin = false;
            return Some(SnapshotTrigger::FirstStdin);
        }
        if (reads_stdin || waits_on_stdin) && self.armed.idle && !stdin_ready() {
            return Some(SnapshotTrigger::Idle);
        }
        if let Some(interval) = self.armed.interval {
            let from = *self.armed.interval_from.get_or_insert_with(Instant::now);
            if from.elapsed() >= interval {
                self.armed.interval_from = Some(Instant::now());
                return Some(SnapshotTrigger::Interval);
            }
        }
        None
    }

    /// At a snapshot point: finishes a rewind (returns `Ok(false)`: do the
    /// real work), or, if `fire`, starts an unwind (returns `Ok(true)`: the
    /// import must return at once).
    fn point(
        &mut self,
        store: &mut impl AsStoreMut,
        fire: Option<SnapshotTrigger>,
    ) -> Result<bool, SnapshotError> {
        if self.phase == Phase::Rewinding {
            let a = self.asyncify.as_ref().ok_or(SnapshotError::NotPrepared)?;
            a.stop_rewind.call(store).map_err(engine)?;
            self.phase = Phase::Normal;
            if let Some(from) = self.restore_rewind_from.take() {
                self.restore_rewind = Some(from.elapsed());
            }
            return Ok(false);
        }
        let Some(trigger) = fire else {
            return Ok(false);
        };
        let (Some(a), Some(memory)) = (self.asyncify.as_ref(), self.memory.as_ref()) else {
            return Err(SnapshotError::NotPrepared);
        };
        let buf = match self.buffer {
            Some(buf) => buf,
            None => {
                let old = memory
                    .grow(&mut *store, Pages(UNWIND_PAGES))
                    .map_err(engine)?;
                old.bytes().0 as u32
            }
        };
        self.buffer = Some(buf);
        let end = buf + UNWIND_PAGES * 65536;
        let view = memory.view(&*store);
        view.write(u64::from(buf), &(buf + 8).to_le_bytes())
            .map_err(engine)?;
        view.write(u64::from(buf) + 4, &end.to_le_bytes())
            .map_err(engine)?;
        a.start_unwind.call(store, buf as i32).map_err(engine)?;
        self.phase = Phase::Unwinding { buf };
        self.trigger = Some(trigger);
        Ok(true)
    }

    /// The byte ranges of memory (now `size` bytes at `base`) that may
    /// differ from the previous snapshot: the pages the kernel saw written,
    /// or, where it cannot track, the chunks that differ from the copy kept
    /// at the previous snapshot.
    fn changed(
        &mut self,
        base: *mut u8,
        size: usize,
        view: &wasmer::MemoryView<'_>,
    ) -> Result<(Vec<Range<usize>>, DirtyTracking), SnapshotError> {
        if self
            .tracker
            .as_ref()
            .is_some_and(|t| t.base() != base as usize)
        {
            // The engine moved the memory: what was tracked is elsewhere.
            // Starting over reports every page that holds anything.
            self.tracker = None;
        }
        if self.tracker.is_none() && self.tracking_refused.is_none() {
            // A fresh process: tracking starts empty, so the first take
            // reports every page that holds anything.
            match DirtyTracker::start(base, 0) {
                Ok(tracker) => self.tracker = Some(tracker),
                Err(why) => self.refuse_tracking(why),
            }
        }
        if let Some(tracker) = &mut self.tracker {
            match tracker.take(size) {
                Ok(ranges) => return Ok((ranges, DirtyTracking::Kernel)),
                Err(why) => {
                    // Nothing was kept to compare with: the comparison
                    // below, against zeros, writes every non-zero chunk.
                    self.tracker = None;
                    self.previous.clear();
                    self.refuse_tracking(why);
                }
            }
        }
        if self.previous.len() < size {
            self.previous.resize(size, 0);
        }
        // `previous` is updated in place, chunk by chunk: no copy of the
        // whole memory is allocated per snapshot.
        let mut ranges = Vec::new();
        let mut chunk = vec![0u8; CHUNK];
        for start in (0..size).step_by(CHUNK) {
            let range = start..(start + CHUNK).min(size);
            let current = &mut chunk[..range.len()];
            view.read(range.start as u64, current).map_err(engine)?;
            let before = &mut self.previous[range.clone()];
            if before != current {
                before.copy_from_slice(current);
                ranges.push(range);
            }
        }
        Ok((ranges, DirtyTracking::Compare))
    }

    fn refuse_tracking(&mut self, why: String) {
        tracing::debug!("dirty pages are found by comparison: {why}");
        self.tracking_refused = Some(why);
    }

    /// How long the rewind into the restored snapshot took (from the call
    /// of `_start` to the snapshot point), once it ended.
    pub fn restore_rewind(&self) -> Option<Duration> {
        self.restore_rewind
    }

    /// Why the kernel does not track written pages in this process, if it
    /// was asked and said no.
    pub fn tracking_refused(&self) -> Option<&str> {
        self.tracking_refused.as_deref()
    }

    /// After `_start` returned while unwinding: stops the unwind and builds
    /// the snapshot's entries (regions, thread state, marker).
    pub(crate) fn capture(
        &mut self,
        store: &mut impl AsStoreMut,
        now_ns: u64,
    ) -> Result<Captured, SnapshotError> {
        let Phase::Unwinding { buf } = self.phase else {
            return Err(SnapshotError::Engine("not unwinding".into()));
        };
        let a = self.asyncify.as_ref().ok_or(SnapshotError::NotPrepared)?;
        a.stop_unwind.call(store).map_err(engine)?;
        let memory = self.memory.clone().ok_or(SnapshotError::NotPrepared)?;
        let view = memory.view(&*store);
        let size = view.data_size() as usize;
        let (mut ranges, tracking) = self.changed(view.data_ptr(), size, &view)?;
        // The last page is always written: it carries the memory size.
        if size >= PAGE {
            ranges.push(size - PAGE..size);
        }
        let runs = merged(ranges);
        let mut entries = Vec::new();
        let read_u32 = |at: u32| -> Result<u32, SnapshotError> {
            let mut word = [0u8; 4];
            view.read(u64::from(at), &mut word)
                .map_err(|_| SnapshotError::Engine("unwind buffer outside memory".into()))?;
            Ok(u32::from_le_bytes(word))
        };
        let current = read_u32(buf)?;
        if current < buf || u64::from(current) > size as u64 {
            return Err(SnapshotError::Engine("unwind buffer overflow".into()));
        }
        let mut call_stack = vec![0u8; (current - buf) as usize];
        view.read(u64::from(buf), &mut call_stack).map_err(engine)?;
        let globals = self
            .globals
            .iter()
            .map(|g| value_bits(&g.get(&mut *store)))
            .collect();
        entries.push(JournalEntry::ThreadStateV1(ThreadStateV1 {
            thread_id: 0,
            call_stack: call_stack.into(),
            memory_stack: Vec::new().into(),
            globals,
            stack_lower: u64::from(buf),
            stack_upper: u64::from(buf + UNWIND_PAGES * 65536),
            guard_size: 0,
        }));
        let trigger = self.trigger.take().unwrap_or(SnapshotTrigger::Explicit);
        entries.push(JournalEntry::SnapshotV1(SnapshotV1 {
            since_epoch_ns: now_ns,
            trigger: trigger.as_u8(),
        }));
        Ok(Captured {
            buf,
            runs,
            entries,
            tracking,
            memory,
        })
    }

    /// Starts the rewind into the import that unwound; call `_start` next.
    pub(crate) fn start_rewind(
        &mut self,
        store: &mut impl AsStoreMut,
        buf: u32,
    ) -> Result<(), SnapshotError> {
        let a = self.asyncify.as_ref().ok_or(SnapshotError::NotPrepared)?;
        a.start_rewind.call(store, buf as i32).map_err(engine)?;
        self.phase = Phase::Rewinding;
        Ok(())
    }

    /// Restores memory and globals of a fresh instance from a snapshot (the
    /// memory as `how` says) and starts the rewind. With `track_writes` (the process will snapshot),
    /// the kernel tracks writes from here (or a copy of memory is kept to
    /// compare with), so the next snapshot stores only what changed;
    /// without, tracking costs nothing (write-protecting the memory would
    /// add a fault to the first write of every page) and a snapshot, if one
    /// came, would store every page that holds anything.
    pub(crate) fn restore(
        &mut self,
        store: &mut impl AsStoreMut,
        layers: &MemoryLayers,
        thread: &ThreadStateV1<'_>,
        how: crate::memory_map::MemoryRestore,
        track_writes: bool,
    ) -> Result<RestoreFigures, SnapshotError> {
        let memory = self.memory.clone().ok_or(SnapshotError::NotPrepared)?;
        if self.asyncify.is_none() {
            return Err(SnapshotError::NotPrepared);
        }
        if thread.globals.len() != self.globals.len() {
            return Err(SnapshotError::Mismatch(format!(
                "{} globals saved, the module exports {}",
                thread.globals.len(),
                self.globals.len()
            )));
        }
        let have = memory.view(&*store).data_size();
        let want = layers.len();
        if want > have {
            let pages = (want - have).div_ceil(65536) as u32;
            memory.grow(&mut *store, Pages(pages)).map_err(engine)?;
        }
        let view = memory.view(&*store);
        let (base, size) = (view.data_ptr(), view.data_size() as usize);
        // SAFETY: `[base, base + size)` is the accessible part of this
        // instance's linear memory, which the engine allocated as a private
        // mapping; the store is borrowed mutably, the guest is not running
        // and no slice into the memory is alive.
        let map = how.maps(layers.len());
        let figures = unsafe { crate::memory_map::restore(base, size, layers, map) }
            .map_err(SnapshotError::Restore)?;
        for (global, bits) in self.globals.iter().zip(&thread.globals) {
            let value = match global.get(&mut *store) {
                Value::I32(_) => Value::I32(*bits as u32 as i32),
                Value::I64(_) => Value::I64(*bits as i64),
                Value::F32(_) => Value::F32(f32::from_bits(*bits as u32)),
                Value::F64(_) => Value::F64(f64::from_bits(*bits)),
                other => return Err(SnapshotError::Mismatch(format!("global of type {other:?}"))),
            };
            global.set(&mut *store, value).map_err(engine)?;
        }
        if track_writes {
            match DirtyTracker::start(base, size) {
                Ok(tracker) => self.tracker = Some(tracker),
                Err(why) => {
                    self.refuse_tracking(why);
                    let view = memory.view(&*store);
                    self.previous = vec![0u8; size];
                    view.read(0, &mut self.previous).map_err(engine)?;
                }
            }
        }
        self.buffer = Some(thread.stack_lower as u32);
        self.start_rewind(store, thread.stack_lower as u32)?;
        self.restore_rewind_from = Some(Instant::now());
        Ok(figures)
    }
}

/// A snapshot, found while the program is unwound: the memory to store
/// (written straight from linear memory by [`Captured::write`]), then the
/// thread state and the marker.
pub(crate) struct Captured {
    /// The unwind buffer (the rewind starts from it).
    pub buf: u32,
    /// Byte ranges of memory that changed, sorted, apart.
    pub runs: Vec<Range<usize>>,
    /// Thread state and marker.
    pub entries: Vec<JournalEntry<'static>>,
    /// How the changed memory was found.
    pub tracking: DirtyTracking,
    /// The memory the runs are in.
    pub memory: Memory,
}

/// How a snapshot's records went to the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotWrite {
    /// Written in the pause: the program went on once the operating system
    /// had them.
    InPause,
    /// Kept in memory, in the journal's buffer, while a child process still
    /// writes the previous snapshot; written once it is done (the program
    /// does not wait for it). Until then a crash of this process loses this
    /// snapshot, and the journal ends at the previous one.
    BehindChild,
    /// Written by a child process forked in the pause (the snapshot stored
    /// at least [`crate::forked_write::fork_min_bytes`] of memory): the
    /// program went on at once, and the journal takes its next records
    /// after them.
    ByChild,
}

impl std::fmt::Display for SnapshotWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SnapshotWrite::InPause => "written in the pause",
            SnapshotWrite::ByChild => "written by a child process",
            SnapshotWrite::BehindChild => "buffered behind a child process's write",
        })
    }
}

impl Captured {
    /// Writes `first` (descriptor positions), the changed memory, as
    /// regions borrowed from linear memory (no copy of it is made before
    /// the journal's), then the thread state and the marker. Returns the
    /// number of regions and how they were written: a snapshot that stores
    /// much memory is written by a child process, which has the memory as
    /// it is now while the program goes on.
    pub(crate) fn write(
        &self,
        store: &impl wasmer::AsStoreRef,
        writer: &wasnap_journal::JournalWriter,
        first: &[JournalEntry<'_>],
        children: &mut ChildChain,
    ) -> Result<(usize, SnapshotWrite), SnapshotError> {
        let view = self.memory.view(store);
        // SAFETY: the program is unwound and stays so until the rewind: no
        // guest code or host call runs, so nothing writes linear memory
        // while this slice is alive (a forked child reads its own copy), and
        // the memory is not grown (the view and the store are borrowed for
        // the whole function).
        let memory = unsafe { view.data_unchecked() };
        let mut regions = Vec::with_capacity(self.runs.len());
        for run in &self.runs {
            let bytes = memory.get(run.clone()).ok_or_else(|| {
                SnapshotError::Engine("a changed range lies outside memory".into())
            })?;
            let region = stored_region(run.start as u64, std::borrow::Cow::Borrowed(bytes));
            regions.push(JournalEntry::UpdateMemoryRegionV1(region));
        }
        let stored: usize = self.runs.iter().map(|r| r.len()).sum();
        let all = || first.iter().chain(&regions).chain(&self.entries);
        if crate::forked_write::fork_min_bytes().is_some_and(|min| stored >= min) {
            let entries: Vec<JournalEntry<'_>> = all().cloned().collect();
            if let Some((detached, ticket)) = writer.detach_write(&entries)? {
                let how = match crate::forked_write::write_in_child(detached, ticket, children) {
                    true => SnapshotWrite::ByChild,
                    false => SnapshotWrite::InPause,
                };
                return Ok((self.runs.len(), how));
            }
        }
        for entry in all() {
            writer.write(entry)?;
        }
        let how = match writer.detached_out() {
            true => SnapshotWrite::BehindChild,
            false => SnapshotWrite::InPause,
        };
        Ok((self.runs.len(), how))
    }
}

/// Sorted, overlapping or touching ranges joined.
fn merged(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => out.push(range),
        }
    }
    out
}

fn value_bits(value: &Value) -> u64 {
    match value {
        Value::I32(v) => *v as u32 as u64,
        Value::I64(v) => *v as u64,
        Value::F32(v) => v.to_bits() as u64,
        Value::F64(v) => v.to_bits(),
        _ => 0,
    }
}

impl SnapshotPoints for SnapshotControl {
    fn attach(&mut self, store: &mut StoreMut<'_>, instance: &Instance) {
        self.find_exports(store, instance);
    }

    fn wants_idle(&self) -> bool {
        self.armed.idle
    }

    fn at_point(
        &mut self,
        store: &mut StoreMut<'_>,
        ctx: &mut WasiCtx,
        point: Point,
    ) -> Result<bool, PointError> {
        // Only prepared modules have snapshot points.
        if self.asyncify.is_none() {
            return Ok(false);
        }
        let fire = match self.phase {
            // No snapshot while the program re-executes its journal: the
            // journal already holds what follows.
            Phase::Normal if ctx.replaying() => return Ok(false),
            Phase::Normal => {
                let fire = self.due(point.name, point.reads_stdin, point.waits_on_stdin, || {
                    ctx.stdin_ready()
                });
                if fire.is_none() {
                    return Ok(false);
                }
                fire
            }
            Phase::Unwinding { .. } | Phase::Rewinding => None,
        };
        Ok(self.point(store, fire)?)
    }

    fn explicit(&mut self, store: &mut StoreMut<'_>, ctx: &mut WasiCtx) -> Result<u16, PointError> {
        let rewinding = self.phase == Phase::Rewinding;
        if !rewinding && (!self.armed.explicit || self.asyncify.is_none()) {
            return Ok(Errno::Notsup as u16);
        }
        if !rewinding && ctx.replaying() {
            // Taken when the journal was written; not again.
            return Ok(0);
        }
        let fire = (!rewinding).then_some(SnapshotTrigger::Explicit);
        self.point(store, fire)?;
        Ok(0)
    }
}
