//! A journal that stores nothing and holds nothing.

use crate::{
    JournalEntry, JournalError, LogRecord, ReadError, ReadJournal, RecordSpan, WriteJournal,
};

/// Accepts every write and forgets it; reads find nothing. For running
/// without a journal through code that wants one.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullJournal;

impl WriteJournal for NullJournal {
    fn write(&self, _entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        Ok(RecordSpan::NOT_STORED)
    }
    fn commit(&self) -> Result<(), JournalError> {
        Ok(())
    }
    fn flush(&self) -> Result<(), JournalError> {
        Ok(())
    }
}

impl ReadJournal for NullJournal {
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
