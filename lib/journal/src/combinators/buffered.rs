//! A journal of entries held in memory (no encoding).

use std::sync::{Arc, PoisonError, RwLock};

use crate::{
    JournalEntry, JournalError, LogRecord, ReadError, ReadJournal, RecordSpan, WriteJournal,
};

/// Entries kept in memory as values, in write order. Clones share the
/// entries but each has its own read cursor; a reader sees entries written
/// after it was created (no restart needed). Spans and record offsets are
/// entry sequence numbers: entry `i` spans `[i, i + 1)`.
#[derive(Debug, Clone, Default)]
pub struct BufferedJournal {
    entries: Arc<RwLock<Vec<Arc<JournalEntry<'static>>>>>,
    cursor: usize,
    current: Option<Arc<JournalEntry<'static>>>,
}

impl BufferedJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of entries written.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies of every entry written.
    pub fn entries(&self) -> Vec<JournalEntry<'static>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.iter().map(|e| JournalEntry::clone(e)).collect()
    }

    /// Moves the read cursor back to the first entry.
    pub fn rewind(&mut self) {
        self.cursor = 0;
    }
}

impl WriteJournal for BufferedJournal {
    fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.push(Arc::new(entry.clone().into_owned()));
        let index = entries.len() as u64 - 1;
        Ok(RecordSpan {
            start: index,
            end: index + 1,
        })
    }
    fn commit(&self) -> Result<(), JournalError> {
        Ok(())
    }
    fn flush(&self) -> Result<(), JournalError> {
        Ok(())
    }
}

impl ReadJournal for BufferedJournal {
    fn read_next_where(
        &mut self,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        loop {
            let next = {
                let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
                entries.get(self.cursor).cloned()
            };
            let Some(entry) = next else {
                return Ok(None);
            };
            let index = self.cursor as u64;
            self.cursor += 1;
            if keep(&entry) {
                let entry = self.current.insert(entry);
                return Ok(Some(LogRecord {
                    start: index,
                    end: index + 1,
                    payload_offset: index,
                    entry: entry.reborrow(),
                }));
            }
        }
    }
    fn restart(&mut self) -> Result<(), JournalError> {
        Ok(())
    }
}
