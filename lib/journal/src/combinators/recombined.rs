//! A writer and a reader joined into one journal.

use crate::{
    JournalEntry, JournalError, LogRecord, ReadError, ReadJournal, RecordSpan, WriteJournal,
};

/// Writes go to `tx`, reads come from `rx`. They need not be halves of the
/// same journal: a reader of one and a writer of another make a copier, an
/// [`UnsupportedJournal`](super::UnsupportedJournal) writer makes a
/// read-only journal.
#[derive(Debug, Clone)]
pub struct Recombined<W, R> {
    /// Where writes go.
    pub tx: W,
    /// Where reads come from.
    pub rx: R,
}

impl<W, R> Recombined<W, R> {
    /// Joins `tx` and `rx`.
    pub fn new(tx: W, rx: R) -> Self {
        Self { tx, rx }
    }

    /// Splits them again.
    pub fn split(self) -> (W, R) {
        (self.tx, self.rx)
    }
}

impl<W: WriteJournal, R: Send + Sync> WriteJournal for Recombined<W, R> {
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

impl<W: Send, R: ReadJournal> ReadJournal for Recombined<W, R> {
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
