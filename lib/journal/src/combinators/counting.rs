//! Counting entries and bytes per kind.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{
    EntryKind, JournalEntry, JournalError, LogRecord, ReadError, ReadJournal, RecordSpan,
    WriteJournal,
};

/// Entries and record bytes of one kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KindCount {
    /// Entries of the kind.
    pub entries: u64,
    /// Record bytes (header, payload, padding, trailer). For journals that
    /// hold entries rather than bytes, zero.
    pub bytes: u64,
}

/// Counts per kind, in tag order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Entries and bytes of each kind seen.
    pub per_kind: BTreeMap<EntryKind, KindCount>,
}

impl Counts {
    fn add(&mut self, kind: EntryKind, bytes: u64) {
        let count = self.per_kind.entry(kind).or_default();
        count.entries += 1;
        count.bytes += bytes;
    }

    /// All entries.
    pub fn entries(&self) -> u64 {
        self.per_kind.values().map(|c| c.entries).sum()
    }

    /// All record bytes.
    pub fn bytes(&self) -> u64 {
        self.per_kind.values().map(|c| c.bytes).sum()
    }
}

/// Wraps a journal and counts what passes through it, in either direction.
/// The counts are shared: clones of the handle see the same numbers.
#[derive(Debug, Clone)]
pub struct Counting<J> {
    inner: J,
    counts: Arc<Mutex<Counts>>,
}

impl<J> Counting<J> {
    /// A counter over `inner`, starting at zero.
    pub fn new(inner: J) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The wrapped journal.
    pub fn into_inner(self) -> J {
        self.inner
    }
}

impl<J: WriteJournal> WriteJournal for Counting<J> {
    fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        let span = self.inner.write(entry)?;
        if span.is_stored() {
            self.counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(entry.kind(), span.end - span.start);
        }
        Ok(span)
    }
    fn commit(&self) -> Result<(), JournalError> {
        self.inner.commit()
    }
    fn flush(&self) -> Result<(), JournalError> {
        self.inner.flush()
    }
}

impl<J: ReadJournal> ReadJournal for Counting<J> {
    fn read_next_where(
        &mut self,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        let record = self.inner.read_next_where(keep)?;
        if let Some(record) = &record {
            self.counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(record.entry.kind(), record.end - record.start);
        }
        Ok(record)
    }
    fn restart(&mut self) -> Result<(), JournalError> {
        self.inner.restart()
    }
}
