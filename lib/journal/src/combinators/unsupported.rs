//! A journal that refuses writes: the write half of a read-only journal.

use crate::{
    JournalEntry, JournalError, LogRecord, ReadError, ReadJournal, RecordSpan, WriteJournal,
};

/// Every write fails with [`JournalError::Unsupported`] naming the journal;
/// reads find nothing. Recombined with a reader, it makes a read-only journal.
#[derive(Debug, Clone)]
pub struct UnsupportedJournal {
    name: String,
}

impl UnsupportedJournal {
    /// `name` is what error messages call the journal.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    fn refuse(&self, operation: &'static str) -> JournalError {
        JournalError::Unsupported {
            journal: self.name.clone(),
            operation,
        }
    }
}

impl WriteJournal for UnsupportedJournal {
    fn write(&self, _entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        Err(self.refuse("writing"))
    }
    fn commit(&self) -> Result<(), JournalError> {
        Err(self.refuse("committing"))
    }
    fn flush(&self) -> Result<(), JournalError> {
        Ok(())
    }
}

impl ReadJournal for UnsupportedJournal {
    fn read_next_where(
        &mut self,
        _keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        Ok(None)
    }
    fn restart(&mut self) -> Result<(), JournalError> {
        Ok(())
    }
}
