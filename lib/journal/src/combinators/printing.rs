//! Printing entries as they pass.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{
    JournalEntry, JournalError, LogRecord, ReadError, ReadJournal, RecordSpan, WriteJournal,
};

/// How [`Printing`] shows an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintFormat {
    /// One line per entry: the kind and `field=value` pairs, long values cut.
    Text,
    /// One JSON object per line, exactly as `JournalEntry::to_json`.
    Json,
}

type Output = Arc<Mutex<Box<dyn Write + Send>>>;

/// Wraps a journal and prints every entry that passes through it (written,
/// or read and kept) to an output, then passes it on.
pub struct Printing<J> {
    inner: J,
    format: PrintFormat,
    out: Output,
}

impl<J: std::fmt::Debug> std::fmt::Debug for Printing<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printing")
            .field("inner", &self.inner)
            .field("format", &self.format)
            .finish()
    }
}

impl<J> Printing<J> {
    /// Prints to `out`.
    pub fn new(inner: J, format: PrintFormat, out: Box<dyn Write + Send>) -> Self {
        Self {
            inner,
            format,
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// Prints to standard output.
    pub fn to_stdout(inner: J, format: PrintFormat) -> Self {
        Self::new(inner, format, Box::new(std::io::stdout()))
    }

    /// The wrapped journal.
    pub fn into_inner(self) -> J {
        self.inner
    }
}

impl<J: WriteJournal> WriteJournal for Printing<J> {
    fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        print_entry(&self.out, self.format, entry);
        self.inner.write(entry)
    }
    fn commit(&self) -> Result<(), JournalError> {
        self.inner.commit()
    }
    fn flush(&self) -> Result<(), JournalError> {
        let _ = self
            .out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush();
        self.inner.flush()
    }
}

impl<J: ReadJournal> ReadJournal for Printing<J> {
    fn read_next_where(
        &mut self,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        let out = Arc::clone(&self.out);
        let format = self.format;
        let record = self.inner.read_next_where(keep)?;
        if let Some(record) = &record {
            print_entry(&out, format, &record.entry);
        }
        Ok(record)
    }
    fn restart(&mut self) -> Result<(), JournalError> {
        self.inner.restart()
    }
}

fn print_entry(out: &Output, format: PrintFormat, entry: &JournalEntry<'_>) {
    let mut out = out.lock().unwrap_or_else(PoisonError::into_inner);
    let written = match format {
        PrintFormat::Text => writeln!(out, "{entry}"),
        PrintFormat::Json => writeln!(out, "{}", entry.to_json()),
    };
    // Printing is a side channel: a closed pipe must not fail the journal.
    if let Err(e) = written {
        tracing::debug!(error = %e, "cannot print a journal entry");
    }
}
