//! A journal: a writer and a reader over one file or one memory buffer, that
//! splits into the two halves and joins back.
//!
//! Opening a journal for appending validates it first. A torn tail (a crash
//! while appending) is truncated away and logged, so new records stay
//! reachable; any other damage refuses the open rather than append behind it.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shared_buffer::OwnedBuffer;

use crate::entry::JournalEntry;
use crate::error::{JournalError, ReadError};
use crate::format;
use crate::reader::{map_file, JournalReader, LogRecord, Recovery};
use crate::store::MemoryStore;
use crate::writer::{Durability, JournalWriter, RecordSpan};

/// Something entries can be written to.
pub trait WriteJournal: Send + Sync {
    /// Appends one entry and returns where its record landed.
    fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError>;
    /// Appends several entries, contiguously where the journal can promise it.
    fn write_batch(&self, entries: &[JournalEntry<'_>]) -> Result<Vec<RecordSpan>, JournalError> {
        entries.iter().map(|entry| self.write(entry)).collect()
    }
    /// Makes everything written so far as durable as the journal promises.
    fn commit(&self) -> Result<(), JournalError>;
    /// Hands buffered records to the operating system.
    fn flush(&self) -> Result<(), JournalError>;
}

/// Something entries can be read from, in order.
pub trait ReadJournal: Send {
    /// The next record whose entry `keep` accepts, or `None` at the end.
    /// Records `keep` refuses are skipped. (This is the primitive: a wrapper
    /// that filters passes its test down instead of looping over borrowed
    /// records itself.)
    fn read_next_where(
        &mut self,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError>;
    /// The next record, or `None` at the end.
    fn read_next(&mut self) -> Result<Option<LogRecord<'_>>, ReadError> {
        self.read_next_where(&mut |_| true)
    }
    /// Makes records appended since opening visible; the cursor stays.
    fn restart(&mut self) -> Result<(), JournalError>;
}

impl WriteJournal for JournalWriter {
    fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        JournalWriter::write(self, entry)
    }
    fn write_batch(&self, entries: &[JournalEntry<'_>]) -> Result<Vec<RecordSpan>, JournalError> {
        JournalWriter::write_batch(self, entries)
    }
    fn commit(&self) -> Result<(), JournalError> {
        JournalWriter::commit(self)
    }
    fn flush(&self) -> Result<(), JournalError> {
        JournalWriter::flush(self)
    }
}

impl ReadJournal for JournalReader {
    fn read_next_where(
        &mut self,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        JournalReader::read_next_where(self, keep)
    }
    fn restart(&mut self) -> Result<(), JournalError> {
        JournalReader::restart(self)
    }
}

/// Options for opening a journal for appending.
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalOptions {
    /// When committed records become durable.
    pub durability: Durability,
}

/// A writer and a reader over the same journal.
#[derive(Debug)]
pub struct Journal {
    tx: JournalWriter,
    rx: JournalReader,
}

/// Where the valid records of existing bytes end, validating every record.
/// A torn tail is reported (as the error that describes it) so the caller can
/// log it; every other problem is an error.
fn valid_end(reader: &mut JournalReader) -> Result<(u64, Option<ReadError>), ReadError> {
    while reader.read_next()?.is_some() {}
    Ok((reader.position(), reader.torn_tail().cloned()))
}

impl Journal {
    /// Opens the journal at `path` for appending and reading, creating it if
    /// it does not exist, and holds its writer lock ([`crate::lock`]) while
    /// the writer lives: a second writer is refused with the holder's pid. A
    /// torn tail left by a crash is truncated (and a warning logged); other
    /// damage is an error and the file is left alone.
    pub fn open(path: impl AsRef<Path>, options: JournalOptions) -> Result<Self, JournalError> {
        let path = path.as_ref();
        let io_error = |what: &'static str| {
            let path = path.to_owned();
            move |source| JournalError::Io { path, what, source }
        };
        crate::lock::require_regular_file(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_error("cannot open the journal for writing"))?;
        // Before anything is read or cut: one writer at a time, and a
        // refused writer changes nothing.
        crate::lock::lock_for_writing(&file, path)?;
        let existing = map_file(&file, path)?;
        let existing_len = existing.len() as u64;
        let mut check =
            JournalReader::from_buffer(existing).with_recovery(Recovery::StopAtTornTail);
        let (end, torn) = valid_end(&mut check).map_err(|mut e| {
            e.journal = path.display().to_string();
            e
        })?;
        drop(check);
        if let Some(torn) = torn {
            tracing::warn!(
                journal = %path.display(),
                offset = end,
                dropped_bytes = existing_len - end,
                cause = %torn.kind,
                "truncating the torn tail of the journal"
            );
            file.set_len(end)
                .map_err(io_error("cannot truncate the journal's torn tail"))?;
            file.sync_all()
                .map_err(io_error("cannot sync the journal after truncating it"))?;
        }
        file.seek(SeekFrom::Start(end))
            .map_err(io_error("cannot seek to the end of the journal"))?;
        let mut prefix = Vec::new();
        if end == 0 {
            format::append_segment_start(&mut prefix);
        }
        let read_file = file
            .try_clone()
            .map_err(io_error("cannot duplicate the journal's handle"))?;
        let tx = JournalWriter::new_file(
            path.display().to_string(),
            file,
            PathBuf::from(path),
            end,
            prefix,
            options.durability,
        )?;
        // The check above verified every record before `end`.
        let rx = JournalReader::from_file(read_file, path)?.with_verified_prefix(end);
        Ok(Self { tx, rx })
    }

    /// An empty journal in memory.
    pub fn in_memory() -> Self {
        Self::over_store(Arc::new(MemoryStore::new(
            OwnedBuffer::from_bytes(Vec::new()),
            0,
        )))
    }

    /// A memory journal over `store`, whose bytes end on a record boundary.
    fn over_store(store: Arc<MemoryStore>) -> Self {
        let mut prefix = Vec::new();
        if store.len() == 0 {
            format::append_segment_start(&mut prefix);
        }
        let tx = JournalWriter::new_memory(Arc::clone(&store), prefix);
        let rx = JournalReader::from_store(store);
        Self { tx, rx }
    }

    /// A journal over bytes in memory: reads see them (zero-copy), writes go
    /// to a growable buffer behind them. A torn tail is cut off as `open`
    /// does; other damage is an error.
    pub fn from_buffer(buf: OwnedBuffer) -> Result<Self, JournalError> {
        let mut check =
            JournalReader::from_buffer(buf.clone()).with_recovery(Recovery::StopAtTornTail);
        let (end, torn) = valid_end(&mut check)?;
        if let Some(torn) = torn {
            tracing::warn!(
                journal = crate::MEMORY_NAME,
                offset = end,
                dropped_bytes = buf.len() as u64 - end,
                cause = %torn.kind,
                "truncating the torn tail of the journal"
            );
        }
        Ok(Self::over_store(Arc::new(MemoryStore::new(
            buf,
            end as usize,
        ))))
    }

    /// Splits into the write half and the read half.
    pub fn split(self) -> (JournalWriter, JournalReader) {
        (self.tx, self.rx)
    }

    /// Joins a write half and a read half (not necessarily of the same
    /// journal: a reader of one journal and a writer of another make a copier).
    pub fn recombine(tx: JournalWriter, rx: JournalReader) -> Self {
        Self { tx, rx }
    }

    /// The write half.
    pub fn writer(&self) -> &JournalWriter {
        &self.tx
    }

    /// The read half.
    pub fn reader(&mut self) -> &mut JournalReader {
        &mut self.rx
    }
}

impl WriteJournal for Journal {
    fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        self.tx.write(entry)
    }
    fn write_batch(&self, entries: &[JournalEntry<'_>]) -> Result<Vec<RecordSpan>, JournalError> {
        self.tx.write_batch(entries)
    }
    fn commit(&self) -> Result<(), JournalError> {
        self.tx.commit()
    }
    fn flush(&self) -> Result<(), JournalError> {
        self.tx.flush()
    }
}

impl ReadJournal for Journal {
    /// Reads the next record. Records still in the writer's batch are not
    /// visible until flushed and the reader restarted.
    fn read_next_where(
        &mut self,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        self.rx.read_next_where(keep)
    }
    fn restart(&mut self) -> Result<(), JournalError> {
        self.rx.restart()
    }
}
