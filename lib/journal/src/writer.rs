//! The write half (tx) of a journal.
//!
//! Records are serialized into an in-memory batch, backpatched there, and
//! handed to the sink with one write call per batch. The handle is an `Arc`:
//! cheap to clone, and shared between threads. One mutex guards the batch, so
//! records from concurrent writers never interleave.
//!
//! Invariants:
//! - `batch_start` is the sink offset of `batch[0]`; the sink holds exactly
//!   the bytes before it;
//! - after a failed sink write the writer is poisoned: it accepts no more
//!   records, so nothing is ever written behind a hole.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use crate::entry::JournalEntry;
use crate::error::JournalError;
use crate::format::{self, EncodeError};
use crate::store::MemoryStore;

/// When committed records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `commit` does nothing; records reach the sink when a batch fills, on
    /// `flush`, and when the last handle is dropped. Fastest; a crash loses
    /// the unflushed batch.
    None,
    /// `commit` hands the batch to the operating system (one write call).
    /// Survives a crash of the process, not of the machine.
    #[default]
    Flush,
    /// `commit` writes the batch and waits for `fdatasync`.
    Fsync,
    /// `commit` writes the batch and waits for a background thread that
    /// `fdatasync`s at most once per interval, so concurrent committers share
    /// one sync.
    GroupCommit(Duration),
}

/// Where a record landed: `[start, end)` byte offsets in the journal (for
/// journals that hold entries rather than bytes: entry sequence numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordSpan {
    pub start: u64,
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

#[derive(Debug)]
pub(crate) enum Sink {
    File { file: File, path: PathBuf },
    Memory(Arc<MemoryStore>),
}

#[derive(Debug)]
struct State {
    batch: Vec<u8>,
    batch_start: u64,
    sink: Sink,
    failed: Option<String>,
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
    durability: Durability,
    batch_limit: usize,
    state: Mutex<State>,
    /// A second handle on the file, for syncing without holding `state`.
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
    /// Hands the batch to the sink. Poisons the writer on failure.
    fn drain(&mut self, name: &str) -> Result<(), JournalError> {
        if let Some(message) = &self.failed {
            return Err(JournalError::Poisoned {
                journal: name.to_owned(),
                message: message.clone(),
            });
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        match &mut self.sink {
            Sink::File { file, path } => {
                if let Err(source) = file.write_all(&self.batch) {
                    self.failed = Some(source.to_string());
                    return Err(JournalError::Io {
                        path: path.clone(),
                        what: "cannot append to the journal",
                        source,
                    });
                }
            }
            Sink::Memory(store) => store.append(&self.batch),
        }
        self.batch_start += self.batch.len() as u64;
        self.batch.clear();
        // A single huge record should not pin its buffer forever.
        if self.batch.capacity() > 16 * DEFAULT_BATCH_LIMIT {
            self.batch.shrink_to(DEFAULT_BATCH_LIMIT);
        }
        Ok(())
    }
}

impl JournalWriter {
    /// A writer appending to `sink`, whose current length is `sink_len`.
    /// `prefix` (a magic and header for a new journal) is queued first.
    /// A writer appending to a memory store. Memory needs no syncing, so the
    /// durability mode is `Flush` (commit makes records visible to readers).
    pub(crate) fn new_memory(store: Arc<MemoryStore>, prefix: Vec<u8>) -> Self {
        let len = store.len() as u64;
        Self::build(
            crate::MEMORY_NAME.to_owned(),
            Sink::Memory(store),
            len,
            prefix,
            Durability::Flush,
            None,
        )
    }

    pub(crate) fn new(
        name: String,
        sink: Sink,
        sink_len: u64,
        prefix: Vec<u8>,
        durability: Durability,
    ) -> Result<Self, JournalError> {
        let sync_file = match &sink {
            Sink::File { file, path }
                if matches!(durability, Durability::Fsync | Durability::GroupCommit(_)) =>
            {
                Some(file.try_clone().map_err(|source| JournalError::Io {
                    path: path.clone(),
                    what: "cannot duplicate the journal's handle",
                    source,
                })?)
            }
            _ => None,
        };
        let writer = Self::build(name, sink, sink_len, prefix, durability, sync_file);
        if let Durability::GroupCommit(interval) = durability {
            spawn_group_committer(Arc::downgrade(&writer.shared), interval).map_err(|source| {
                JournalError::Io {
                    path: PathBuf::from(writer.name()),
                    what: "cannot start the group-commit thread",
                    source,
                }
            })?;
        }
        Ok(writer)
    }

    fn build(
        name: String,
        sink: Sink,
        sink_len: u64,
        prefix: Vec<u8>,
        durability: Durability,
        sync_file: Option<File>,
    ) -> Self {
        let mut batch = Vec::with_capacity(DEFAULT_BATCH_LIMIT + 4096);
        batch.extend_from_slice(&prefix);
        let shared = Arc::new(Shared {
            name,
            durability,
            batch_limit: DEFAULT_BATCH_LIMIT,
            state: Mutex::new(State {
                batch,
                batch_start: sink_len,
                sink,
                failed: None,
            }),
            sync_file,
            group: Mutex::new(GroupState {
                requested: 0,
                synced: sink_len,
                failed: None,
            }),
            group_done: Condvar::new(),
        });
        Self { shared }
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
        let mut state = lock(&shared.state);
        if let Some(message) = &state.failed {
            return Err(JournalError::Poisoned {
                journal: shared.name.clone(),
                message: message.clone(),
            });
        }
        let offset_in_batch = state.batch.len();
        format::append_entry(&mut state.batch, entry)
            .map_err(|e| encode_error(&shared.name, entry, e))?;
        let span = RecordSpan {
            start: state.batch_start + offset_in_batch as u64,
            end: state.batch_start + state.batch.len() as u64,
        };
        if state.batch.len() >= shared.batch_limit {
            state.drain(&shared.name)?;
        }
        Ok(span)
    }

    /// Appends several records contiguously: no other writer's record lands
    /// between them, and they reach the sink in one write call (unless they
    /// exceed the batch limit together, in which case they still go out
    /// contiguously, in one call). On an encoding error none is written.
    pub fn write_batch(
        &self,
        entries: &[JournalEntry<'_>],
    ) -> Result<Vec<RecordSpan>, JournalError> {
        let shared = &*self.shared;
        let mut state = lock(&shared.state);
        if let Some(message) = &state.failed {
            return Err(JournalError::Poisoned {
                journal: shared.name.clone(),
                message: message.clone(),
            });
        }
        let rollback_to = state.batch.len();
        let mut spans = Vec::with_capacity(entries.len());
        for entry in entries {
            let offset_in_batch = state.batch.len();
            if let Err(e) = format::append_entry(&mut state.batch, entry) {
                state.batch.truncate(rollback_to);
                return Err(encode_error(&shared.name, entry, e));
            }
            spans.push(RecordSpan {
                start: state.batch_start + offset_in_batch as u64,
                end: state.batch_start + state.batch.len() as u64,
            });
        }
        if state.batch.len() >= shared.batch_limit {
            state.drain(&shared.name)?;
        }
        Ok(spans)
    }

    /// Hands every buffered record to the operating system (or the memory
    /// store), whatever the durability mode.
    pub fn flush(&self) -> Result<(), JournalError> {
        lock(&self.shared.state).drain(&self.shared.name)
    }

    /// Flushes and waits for the data to reach the disk.
    pub fn sync(&self) -> Result<(), JournalError> {
        self.flush()?;
        self.sync_data()
    }

    fn sync_data(&self) -> Result<(), JournalError> {
        let state = lock(&self.shared.state);
        match &state.sink {
            Sink::File { file, path } => file.sync_data().map_err(|source| JournalError::Io {
                path: path.clone(),
                what: "cannot sync the journal",
                source,
            }),
            Sink::Memory(_) => Ok(()),
        }
    }

    /// Makes every record written so far as durable as the mode promises.
    pub fn commit(&self) -> Result<(), JournalError> {
        match self.shared.durability {
            Durability::None => Ok(()),
            Durability::Flush => self.flush(),
            Durability::Fsync => {
                let target = {
                    let mut state = lock(&self.shared.state);
                    state.drain(&self.shared.name)?;
                    state.batch_start
                };
                self.sync_to(target)
            }
            Durability::GroupCommit(_) => {
                let target = {
                    let mut state = lock(&self.shared.state);
                    state.drain(&self.shared.name)?;
                    state.batch_start
                };
                self.wait_for_group(target)
            }
        }
    }

    /// Syncs through the spare handle, without holding the batch lock.
    fn sync_to(&self, target: u64) -> Result<(), JournalError> {
        let Some(file) = &self.shared.sync_file else {
            return Ok(());
        };
        file.sync_data().map_err(|source| JournalError::Io {
            path: PathBuf::from(&self.shared.name),
            what: "cannot sync the journal",
            source,
        })?;
        let mut group = lock(&self.shared.group);
        group.synced = group.synced.max(target);
        Ok(())
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

    /// The offset the next record will start at.
    pub fn end_offset(&self) -> u64 {
        let state = lock(&self.shared.state);
        state.batch_start + state.batch.len() as u64
    }
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
            let requested = lock(&shared.group).requested;
            if requested <= lock(&shared.group).synced {
                continue;
            }
            let outcome = {
                let mut state = lock(&shared.state);
                state.drain(&shared.name).map(|()| state.batch_start)
            }
            .and_then(|target| match &shared.sync_file {
                Some(file) => file
                    .sync_data()
                    .map(|()| target)
                    .map_err(|e| JournalError::Io {
                        path: PathBuf::from(&shared.name),
                        what: "cannot sync the journal",
                        source: e,
                    }),
                None => Ok(target),
            });
            let mut group = lock(&shared.group);
            match outcome {
                Ok(target) => group.synced = group.synced.max(target),
                Err(e) => group.failed = Some(e.to_string()),
            }
            shared.group_done.notify_all();
        })
        .map(drop)
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = state.drain(&self.name) {
            tracing::error!(error = %e, "records lost: the journal could not be flushed on close");
        }
    }
}
