//! Staging entries and committing or rolling them back together.

use std::sync::{Mutex, PoisonError};

use crate::{JournalEntry, JournalError, RecordSpan, WriteJournal};

/// Wraps a writer: entries are staged in memory until [`Transaction::commit`]
/// writes them all, contiguously (one batch, one write call for a file
/// journal), and commits the inner journal; [`Transaction::rollback`] drops
/// them. A staged write returns [`RecordSpan::NOT_STORED`]; its place is
/// known only when it is committed.
///
/// Limit: format v1 has no commit marker, so a crash in the middle of the
/// write call can leave the first records of a committed transaction without
/// the rest.
#[derive(Debug)]
pub struct Transaction<W> {
    inner: W,
    staged: Mutex<Vec<JournalEntry<'static>>>,
}

impl<W: WriteJournal> Transaction<W> {
    /// A transaction over `inner`, with nothing staged.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            staged: Mutex::new(Vec::new()),
        }
    }

    /// Writes the staged entries, commits the inner journal, and returns
    /// where they landed. On error the entries stay staged.
    pub fn commit_staged(&self) -> Result<Vec<RecordSpan>, JournalError> {
        let mut staged = self.staged.lock().unwrap_or_else(PoisonError::into_inner);
        let spans = self.inner.write_batch(&staged)?;
        staged.clear();
        drop(staged);
        self.inner.commit()?;
        Ok(spans)
    }

    /// Drops the staged entries and returns how many there were.
    pub fn rollback(&self) -> usize {
        let mut staged = self.staged.lock().unwrap_or_else(PoisonError::into_inner);
        let count = staged.len();
        staged.clear();
        count
    }

    /// How many entries are staged.
    pub fn staged(&self) -> usize {
        self.staged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The wrapped writer (staged entries are dropped).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: WriteJournal> WriteJournal for Transaction<W> {
    fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        self.staged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry.clone().into_owned());
        Ok(RecordSpan::NOT_STORED)
    }
    /// Commits the transaction (see [`Transaction::commit_staged`]).
    fn commit(&self) -> Result<(), JournalError> {
        self.commit_staged().map(drop)
    }
    /// Flushes the inner journal; staged entries stay staged.
    fn flush(&self) -> Result<(), JournalError> {
        self.inner.flush()
    }
}
