//! The write half (tx) of a journal.
//!
//! Records are serialized into an in-memory batch, backpatched there, and
//! handed to the sink a batch at a time. For a file, a dedicated I/O thread
//! performs the `write` calls (one per batch), so serializing and checksumming
//! the next batch overlaps writing the previous one; the two batch buffers
//! are recycled between the threads. The handle is an `Arc`: cheap to clone,
//! and shared between threads. One mutex guards the batch, so records from
//! concurrent writers never interleave.
//!
//! Invariants:
//! - `batch_start` is the sink offset of `batch[0]`: every byte before it has
//!   been handed to the sink (for a file: queued to the I/O thread, which
//!   writes batches in the order they were queued);
//! - `IoProgress::written` is the file offset up to which the I/O thread has
//!   written; `flush` waits for it to reach `batch_start`;
//! - after a failed write the writer is poisoned: it accepts no more records,
//!   so nothing is ever written behind a hole.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use rkyv::ser::allocator::Arena;

use crate::entry::JournalEntry;
use crate::error::JournalError;
use crate::format::{self, EncodeError};
use crate::store::MemoryStore;

mod checksum_thread;
mod detached;
use checksum_thread::ChecksumThread;
pub use detached::{DetachedTicket, DetachedWrite};

/// When committed records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `commit` does nothing; records reach the sink when a batch fills, on
    /// `flush`, and when the last handle is dropped. Fastest; a crash loses
    /// the unflushed batch.
    None,
    /// `commit` hands every record to the operating system and waits until it
    /// has them. Survives a crash of the process, not of the machine.
    #[default]
    Flush,
    /// `commit` writes and waits for `fdatasync`.
    Fsync,
    /// `commit` writes and waits for a background thread that `fdatasync`s
    /// at most once per interval, so concurrent committers share one sync.
    GroupCommit(Duration),
}

/// Where a record landed: `[start, end)` byte offsets in the journal (for
/// journals that hold entries rather than bytes: entry sequence numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordSpan {
    /// Offset of the record's first byte (its header).
    pub start: u64,
    /// Offset one past the record's last byte (after its trailer).
    pub end: u64,
}

impl RecordSpan {
    /// The span of an entry that was accepted but not stored (a filter dropped
    /// it, or the journal discards everything).
    pub const NOT_STORED: RecordSpan = RecordSpan { start: 0, end: 0 };

    /// False for [`RecordSpan::NOT_STORED`].
    pub fn is_stored(&self) -> bool {
        self.end > self.start
    }
}

/// Batches larger than this are handed to the sink right away.
pub const DEFAULT_BATCH_LIMIT: usize = 256 * 1024;

/// While a detached write is out, records are kept in the batch up to this
/// many bytes; past it, the writer waits for the detached write.
pub const DETACHED_BUFFER_LIMIT: usize = 128 << 20;

/// Batches queued to the I/O thread beyond the one it is writing.
const IO_QUEUE_DEPTH: usize = 1;

/// How far the I/O thread got, shared with every waiter.
#[derive(Debug)]
struct IoProgress {
    status: Mutex<IoStatus>,
    changed: Condvar,
}

#[derive(Debug)]
struct IoStatus {
    written: u64,
    failed: Option<(std::io::ErrorKind, String)>,
}

impl IoProgress {
    /// Waits until everything before `target` is written, or a write failed.
    fn wait(&self, target: u64) -> Result<(), (std::io::ErrorKind, String)> {
        let mut status = lock(&self.status);
        loop {
            if let Some(failed) = &status.failed {
                return Err(failed.clone());
            }
            if status.written >= target {
                return Ok(());
            }
            status = self
                .changed
                .wait(status)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn failed(&self) -> Option<(std::io::ErrorKind, String)> {
        lock(&self.status).failed.clone()
    }
}

/// The file's writing thread and the channels to it.
#[derive(Debug)]
struct IoThread {
    jobs: Option<SyncSender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
    handle: Option<JoinHandle<()>>,
    /// The same open file (a duplicate: one file position), for records
    /// written straight from the caller's buffer while the thread is idle.
    direct: File,
    /// Checksums the data of those records while it is written (started
    /// on the first).
    checksums: Option<ChecksumThread>,
}

impl IoThread {
    fn spawn(mut file: File, progress: Arc<IoProgress>) -> std::io::Result<Self> {
        let direct = file.try_clone()?;
        let (jobs, queued) = mpsc::sync_channel::<Vec<u8>>(IO_QUEUE_DEPTH);
        let (recycle, spare) = mpsc::channel::<Vec<u8>>();
        let handle = std::thread::Builder::new()
            .name("wasnap-journal-io".to_owned())
            .spawn(move || {
                let mut healthy = true;
                for mut batch in queued {
                    if healthy {
                        let result = file.write_all(&batch);
                        let mut status = lock(&progress.status);
                        match result {
                            Ok(()) => status.written += batch.len() as u64,
                            Err(e) => {
                                status.failed = Some((e.kind(), e.to_string()));
                                healthy = false;
                            }
                        }
                        progress.changed.notify_all();
                    }
                    batch.clear();
                    // The writer may be gone already; then the buffer is freed.
                    let _ = recycle.send(batch);
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            spare,
            handle: Some(handle),
            direct,
            checksums: None,
        })
    }
}

#[derive(Debug)]
enum Output {
    Io(IoThread),
    #[allow(dead_code)] // memory journals construct their writer directly
    Memory(Arc<MemoryStore>),
}

#[derive(Debug)]
struct State {
    batch: Vec<u8>,
    batch_start: u64,
    output: Output,
    arena: ScratchArena,
    failed: Option<String>,
    /// While a detached write is out (see `detached`): the offset its bytes
    /// end at. Nothing is handed to the file before the I/O progress
    /// reaches it.
    reserved_to: Option<u64>,
}

/// rkyv's scratch space, kept across records (rkyv's `Arena` has no `Debug`).
struct ScratchArena(Arena);

impl std::fmt::Debug for ScratchArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScratchArena")
    }
}

#[derive(Debug, Default)]
struct GroupState {
    /// Highest offset a committer waits to see synced.
    requested: u64,
    /// Everything before this offset is on disk.
    synced: u64,
    failed: Option<String>,
}

#[derive(Debug)]
struct Shared {
    name: String,
    path: Option<PathBuf>,
    durability: Durability,
    batch_limit: usize,
    state: Mutex<State>,
    /// For a file: the I/O thread's progress.
    progress: Option<Arc<IoProgress>>,
    /// For a file: a second handle, for syncing without holding `state`.
    sync_file: Option<File>,
    group: Mutex<GroupState>,
    group_done: Condvar,
}

/// The write half of a journal. Cloning is cheap; clones share one batch.
#[derive(Debug, Clone)]
pub struct JournalWriter {
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// Writes a record straight from the caller's buffer: the batch goes to
    /// the I/O thread first and is waited for (so records stay in order and
    /// the thread is idle: the state lock keeps other writers out), then the
    /// record is written through the duplicate handle, in one vectored
    /// write where the kernel allows.
    fn write_direct(
        &mut self,
        shared: &Shared,
        mut split: format::SplitRecord<'_>,
    ) -> Result<RecordSpan, JournalError> {
        let target = self.drain(&shared.name, shared.progress.as_deref())?;
        let progress = shared
            .progress
            .as_deref()
            .expect("a file output has I/O progress");
        if let Err((_, message)) = progress.wait(target) {
            self.failed = Some(message);
            return self.poisoned(&shared.name).map(|()| RecordSpan {
                start: target,
                end: target,
            });
        }
        let Output::Io(io) = &mut self.output else {
            unreachable!("direct writes go to files");
        };
        let total = split.len() as u64;
        // The header and the data go to the kernel while the checksum of
        // the data is computed beside (the trailer needs it), then the
        // trailer follows.
        let checksums = match &io.checksums {
            Some(thread) => Some(thread),
            None => match ChecksumThread::spawn() {
                Ok(thread) => Some(&*io.checksums.insert(thread)),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot start a checksum thread; checksumming in line");
                    None
                }
            },
        };
        let direct = &mut io.direct;
        let mut write_front = || write_all_vectored(direct, &split.head, split.data);
        let (front, crc) = match checksums {
            Some(thread) => thread.overlapped(split.head_crc, split.data, write_front),
            None => (
                write_front(),
                crc32c::crc32c_append(split.head_crc, split.data),
            ),
        };
        let written = front.and_then(|()| {
            split.set_checksum(split.tail_checksum(crc));
            write_all_vectored(&mut io.direct, &split.tail, &[])
        });
        if let Err(e) = written {
            self.failed = Some(e.to_string());
        }
        let mut status = lock(&progress.status);
        if let Some(message) = &self.failed {
            // Part of the record may be in the file: a torn tail, which the
            // next open cuts off. The writer takes nothing more.
            status.failed = Some((std::io::ErrorKind::Other, message.clone()));
            progress.changed.notify_all();
            drop(status);
            return self.poisoned(&shared.name).map(|()| RecordSpan {
                start: target,
                end: target,
            });
        }
        status.written += total;
        progress.changed.notify_all();
        drop(status);
        let start = self.batch_start + split.start as u64;
        self.batch_start += total;
        Ok(RecordSpan {
            start,
            end: self.batch_start,
        })
    }

    /// Whether a detached write's bytes are not all written yet (records
    /// are then kept in the batch rather than waiting for it).
    fn behind_detached(&self, progress: Option<&IoProgress>) -> bool {
        progress.is_some_and(|progress| detached::detached_out(self, progress))
    }

    /// Whether the batch must go to the sink now: it reached `limit`. Behind
    /// a detached write, records are kept instead, up to
    /// [`DETACHED_BUFFER_LIMIT`], so that the writer does not wait for it.
    fn must_drain(&self, limit: usize, progress: Option<&IoProgress>) -> bool {
        self.batch.len() >= limit
            && (self.batch.len() >= DETACHED_BUFFER_LIMIT || !self.behind_detached(progress))
    }

    fn poisoned(&self, name: &str) -> Result<(), JournalError> {
        match &self.failed {
            Some(message) => Err(JournalError::Poisoned {
                journal: name.to_owned(),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Hands the batch to the sink and returns the offset everything before
    /// which has been handed over. For a file this queues the batch to the
    /// I/O thread (blocking only while the queue is full).
    fn drain(&mut self, name: &str, progress: Option<&IoProgress>) -> Result<u64, JournalError> {
        self.poisoned(name)?;
        if let Some((_, message)) = progress.and_then(IoProgress::failed) {
            self.failed = Some(message);
            return self.poisoned(name).map(|()| self.batch_start);
        }
        if self.batch.is_empty() {
            return Ok(self.batch_start);
        }
        if let (Some(end), Some(progress)) = (self.reserved_to, progress) {
            // The file's position is the detached write's until it ends.
            if let Err((_, message)) = progress.wait(end) {
                self.failed = Some(message);
                return self.poisoned(name).map(|()| self.batch_start);
            }
            self.reserved_to = None;
        }
        let len = self.batch.len() as u64;
        match &mut self.output {
            Output::Memory(store) => {
                store.append(&self.batch);
                self.batch.clear();
            }
            Output::Io(io) => {
                let next = io
                    .spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(DEFAULT_BATCH_LIMIT + 4096));
                let full = std::mem::replace(&mut self.batch, next);
                let sent = io.jobs.as_ref().map(|jobs| jobs.send(full));
                if !matches!(sent, Some(Ok(()))) {
                    self.failed = Some("the journal's I/O thread stopped".to_owned());
                    return self.poisoned(name).map(|()| self.batch_start);
                }
            }
        }
        self.batch_start += len;
        // A single huge record should not pin its buffer forever.
        if self.batch.capacity() > 16 * DEFAULT_BATCH_LIMIT {
            self.batch.shrink_to(DEFAULT_BATCH_LIMIT);
        }
        Ok(self.batch_start)
    }
}

impl JournalWriter {
    /// A writer appending to a memory store. Memory needs no syncing, so the
    /// durability mode is `Flush` (commit makes records visible to readers).
    pub(crate) fn new_memory(store: Arc<MemoryStore>, prefix: Vec<u8>) -> Self {
        let len = store.len() as u64;
        let shared = Shared::new(
            crate::MEMORY_NAME.to_owned(),
            None,
            Output::Memory(store),
            len,
            prefix,
            Durability::Flush,
            None,
            None,
        );
        Self {
            shared: Arc::new(shared),
        }
    }

    /// A writer appending to `file` (at `path`), whose current length is
    /// `sink_len` and whose position is at its end. `prefix` (a magic and
    /// header for a new journal) is queued first.
    pub(crate) fn new_file(
        name: String,
        file: File,
        path: PathBuf,
        sink_len: u64,
        prefix: Vec<u8>,
        durability: Durability,
    ) -> Result<Self, JournalError> {
        let io_error = |what: &'static str| {
            let path = path.clone();
            move |source| JournalError::Io { path, what, source }
        };
        let sync_file = match durability {
            Durability::Fsync | Durability::GroupCommit(_) => Some(
                file.try_clone()
                    .map_err(io_error("cannot duplicate the journal's handle"))?,
            ),
            _ => None,
        };
        let progress = Arc::new(IoProgress {
            status: Mutex::new(IoStatus {
                written: sink_len,
                failed: None,
            }),
            changed: Condvar::new(),
        });
        let io = IoThread::spawn(file, Arc::clone(&progress))
            .map_err(io_error("cannot start the journal's I/O thread"))?;
        let shared = Arc::new(Shared::new(
            name,
            Some(path.clone()),
            Output::Io(io),
            sink_len,
            prefix,
            durability,
            Some(progress),
            sync_file,
        ));
        if let Durability::GroupCommit(interval) = durability {
            spawn_group_committer(Arc::downgrade(&shared), interval)
                .map_err(io_error("cannot start the group-commit thread"))?;
        }
        Ok(Self { shared })
    }

    /// The journal's name in messages.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.shared.durability
    }

    /// Appends one record and returns where it landed. The record is in the
    /// batch; it reaches the sink when the batch fills or on commit/flush.
    pub fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        let shared = &*self.shared;
        let mut guard = lock(&shared.state);
        let state = &mut *guard;
        state.poisoned(&shared.name)?;
        // Behind a detached write, large records are buffered too (the file
        // is not ours until it is written).
        let behind = state.behind_detached(shared.progress.as_deref());
        if let (Some(bulk), Output::Io(_), false) = (
            entry
                .bulk_data()
                .filter(|b| b.len() >= format::DIRECT_WRITE_MIN),
            &state.output,
            behind,
        ) {
            let base = state.batch_start + state.batch.len() as u64;
            let split = format::encode_split(entry, bulk, &mut state.arena.0, base)
                .map_err(|e| encode_error(&shared.name, entry, e))?;
            if let Some(split) = split {
                return state.write_direct(shared, split);
            }
        }
        let offset_in_batch = format::append_entry(
            &mut state.batch,
            entry,
            &mut state.arena.0,
            state.batch_start,
        )
        .map_err(|e| encode_error(&shared.name, entry, e))?;
        let span = RecordSpan {
            start: state.batch_start + offset_in_batch as u64,
            end: state.batch_start + state.batch.len() as u64,
        };
        if state.must_drain(shared.batch_limit, shared.progress.as_deref()) {
            state.drain(&shared.name, shared.progress.as_deref())?;
        }
        Ok(span)
    }

    /// Appends several records contiguously: no other writer's record lands
    /// between them, and they are handed to the sink together, in one batch
    /// (one write call for a file). On an encoding error none is written.
    pub fn write_batch(
        &self,
        entries: &[JournalEntry<'_>],
    ) -> Result<Vec<RecordSpan>, JournalError> {
        let shared = &*self.shared;
        let mut guard = lock(&shared.state);
        let state = &mut *guard;
        state.poisoned(&shared.name)?;
        let rollback_to = state.batch.len();
        let mut spans = Vec::with_capacity(entries.len());
        for entry in entries {
            let offset_in_batch = match format::append_entry(
                &mut state.batch,
                entry,
                &mut state.arena.0,
                state.batch_start,
            ) {
                Ok(at) => at,
                Err(e) => {
                    state.batch.truncate(rollback_to);
                    return Err(encode_error(&shared.name, entry, e));
                }
            };
            spans.push(RecordSpan {
                start: state.batch_start + offset_in_batch as u64,
                end: state.batch_start + state.batch.len() as u64,
            });
        }
        if state.must_drain(shared.batch_limit, shared.progress.as_deref()) {
            state.drain(&shared.name, shared.progress.as_deref())?;
        }
        Ok(spans)
    }

    /// Hands every buffered record to the operating system (or the memory
    /// store), whatever the durability mode, and waits until it has them.
    pub fn flush(&self) -> Result<(), JournalError> {
        // A detached write that is out is waited for without the state
        // lock, so other writers go on buffering meanwhile.
        while let Some(end) = self.detached_end() {
            self.wait_written(end)?;
        }
        let target = self.drain()?;
        self.wait_written(target)
    }

    /// Where the last detached write ends, while its bytes are not all
    /// written.
    fn detached_end(&self) -> Option<u64> {
        let progress = self.shared.progress.as_deref()?;
        let end = lock(&self.shared.state).reserved_to?;
        (lock(&progress.status).written < end).then_some(end)
    }

    /// Flushes and waits for the data to reach the disk.
    pub fn sync(&self) -> Result<(), JournalError> {
        self.flush()?;
        self.sync_data(self.end_offset())
    }

    fn drain(&self) -> Result<u64, JournalError> {
        lock(&self.shared.state).drain(&self.shared.name, self.shared.progress.as_deref())
    }

    fn wait_written(&self, target: u64) -> Result<(), JournalError> {
        let Some(progress) = &self.shared.progress else {
            return Ok(());
        };
        progress.wait(target).map_err(|(kind, message)| {
            lock(&self.shared.state).failed = Some(message.clone());
            self.io_error(
                "cannot append to the journal",
                std::io::Error::new(kind, message),
            )
        })
    }

    fn io_error(&self, what: &'static str, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self
                .shared
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from(&self.shared.name)),
            what,
            source,
        }
    }

    /// Syncs through the spare handle, without holding the batch lock, and
    /// records that everything before `target` is on disk.
    fn sync_data(&self, target: u64) -> Result<(), JournalError> {
        let file = match (&self.shared.sync_file, &self.shared.path) {
            (Some(file), _) => file,
            // Flush/None modes on a file: open a handle just for this call.
            (None, Some(path)) => {
                let file =
                    File::open(path).map_err(|e| self.io_error("cannot sync the journal", e))?;
                file.sync_data()
                    .map_err(|e| self.io_error("cannot sync the journal", e))?;
                return Ok(());
            }
            (None, None) => return Ok(()),
        };
        file.sync_data()
            .map_err(|e| self.io_error("cannot sync the journal", e))?;
        let mut group = lock(&self.shared.group);
        group.synced = group.synced.max(target);
        Ok(())
    }

    /// Makes every record written so far as durable as the mode promises.
    pub fn commit(&self) -> Result<(), JournalError> {
        match self.shared.durability {
            Durability::None => Ok(()),
            Durability::Flush => self.flush(),
            Durability::Fsync => {
                let target = self.drain()?;
                self.wait_written(target)?;
                self.sync_data(target)
            }
            Durability::GroupCommit(_) => {
                let target = self.drain()?;
                self.wait_written(target)?;
                self.wait_for_group(target)
            }
        }
    }

    fn wait_for_group(&self, target: u64) -> Result<(), JournalError> {
        if self.shared.sync_file.is_none() {
            return Ok(());
        }
        let mut group = lock(&self.shared.group);
        group.requested = group.requested.max(target);
        while group.synced < target {
            if let Some(message) = &group.failed {
                return Err(JournalError::Poisoned {
                    journal: self.shared.name.clone(),
                    message: message.clone(),
                });
            }
            group = self
                .shared
                .group_done
                .wait(group)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Ok(())
    }

    /// Drops the records still buffered — not yet handed to the operating
    /// system — and returns how many bytes they held: a run that fails to
    /// start takes back what it had begun to journal, leaving the file as
    /// it found it.
    pub fn discard_buffered(&self) -> usize {
        let mut state = lock(&self.shared.state);
        let dropped = state.batch.len();
        state.batch.clear();
        dropped
    }

    /// The offset the next record will start at.
    pub fn end_offset(&self) -> u64 {
        let state = lock(&self.shared.state);
        state.batch_start + state.batch.len() as u64
    }
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: String,
        path: Option<PathBuf>,
        output: Output,
        sink_len: u64,
        prefix: Vec<u8>,
        durability: Durability,
        progress: Option<Arc<IoProgress>>,
        sync_file: Option<File>,
    ) -> Self {
        let mut batch = Vec::with_capacity(DEFAULT_BATCH_LIMIT + 4096);
        batch.extend_from_slice(&prefix);
        Shared {
            name,
            path,
            durability,
            batch_limit: DEFAULT_BATCH_LIMIT,
            state: Mutex::new(State {
                batch,
                batch_start: sink_len,
                output,
                arena: ScratchArena(Arena::new()),
                failed: None,
                reserved_to: None,
            }),
            progress,
            sync_file,
            group: Mutex::new(GroupState {
                requested: 0,
                synced: sink_len,
                failed: None,
            }),
            group_done: Condvar::new(),
        }
    }
}

/// Writes `first` then `second` whole, in vectored writes.
fn write_all_vectored(file: &mut File, first: &[u8], second: &[u8]) -> std::io::Result<()> {
    let mut parts = [std::io::IoSlice::new(first), std::io::IoSlice::new(second)];
    let mut slices: &mut [std::io::IoSlice<'_>] = &mut parts;
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "the journal file accepted no more bytes",
                ))
            }
            Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn encode_error(name: &str, entry: &JournalEntry<'_>, error: EncodeError) -> JournalError {
    match error {
        EncodeError::Serialize(message) => JournalError::Encode {
            journal: name.to_owned(),
            kind: entry.kind().name(),
            message,
        },
        EncodeError::TooLarge(size) => JournalError::TooLarge {
            journal: name.to_owned(),
            kind: entry.kind().name(),
            size,
        },
    }
}

/// The background half of group commit: once per interval, if a committer is
/// waiting, flush and sync once for all of them. Ends when the writer is gone.
fn spawn_group_committer(shared: Weak<Shared>, interval: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("wasnap-journal-group-commit".to_owned())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let pending = {
                let group = lock(&shared.group);
                group.requested > group.synced
            };
            if !pending {
                continue;
            }
            let writer = JournalWriter {
                shared: Arc::clone(&shared),
            };
            let outcome = writer.flush().and_then(|()| {
                let target = writer.end_offset();
                writer.sync_data(target)
            });
            drop(writer);
            let mut group = lock(&shared.group);
            if let Err(e) = outcome {
                group.failed = Some(e.to_string());
            }
            shared.group_done.notify_all();
        })
        .map(drop)
}

impl Drop for Shared {
    fn drop(&mut self) {
        let name = self.name.clone();
        let progress = self.progress.clone();
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let drained = state.drain(&name, progress.as_deref());
        if let Output::Io(io) = &mut state.output {
            // Closing the queue ends the I/O thread once it has written
            // everything queued.
            io.jobs.take();
            if let Some(handle) = io.handle.take() {
                let _ = handle.join();
            }
        }
        let failed = progress.as_deref().and_then(IoProgress::failed);
        if let Err(e) = drained {
            tracing::error!(error = %e, "records lost: the journal could not be flushed on close");
        } else if let Some((_, message)) = failed {
            tracing::error!(journal = %name, error = %message, "records lost: the journal could not be written on close");
        }
    }
}
