//! A journal that is a channel between threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{
    JournalEntry, JournalError, LogRecord, ReadError, ReadJournal, RecordSpan, WriteJournal,
};

/// A pipe: entries written to the [`PipeWriter`] are read, in order, from the
/// [`PipeReader`]. Spans and offsets are entry sequence numbers.
pub fn pipe() -> (PipeWriter, PipeReader) {
    let (sender, receiver) = mpsc::channel();
    (
        PipeWriter {
            sender,
            sequence: Arc::new(AtomicU64::new(0)),
        },
        PipeReader {
            receiver,
            current: None,
            next_index: 0,
        },
    )
}

type Message = (u64, JournalEntry<'static>);

/// The sending end. Cheap to clone; clones share one sequence.
#[derive(Debug, Clone)]
pub struct PipeWriter {
    sender: Sender<Message>,
    sequence: Arc<AtomicU64>,
}

impl WriteJournal for PipeWriter {
    /// Sends the entry; fails with [`JournalError::Disconnected`] when the
    /// reader is gone.
    fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        let index = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.sender
            .send((index, entry.clone().into_owned()))
            .map_err(|_| JournalError::Disconnected {
                journal: "<pipe>".to_owned(),
            })?;
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

/// The receiving end.
#[derive(Debug)]
pub struct PipeReader {
    receiver: Receiver<Message>,
    current: Option<Message>,
    next_index: u64,
}

/// How long a read may wait.
#[derive(Debug, Clone, Copy)]
enum Wait {
    No,
    Until(Option<Instant>),
}

impl PipeReader {
    /// Blocks until an entry arrives; `None` once every writer is gone and
    /// the pipe is drained.
    pub fn read_blocking(&mut self) -> Result<Option<LogRecord<'_>>, ReadError> {
        self.read_waiting(Wait::Until(None), &mut |_| true)
    }

    /// Waits at most `timeout` for an entry; `None` if none came.
    pub fn read_timeout(&mut self, timeout: Duration) -> Result<Option<LogRecord<'_>>, ReadError> {
        self.read_waiting(Wait::Until(Some(Instant::now() + timeout)), &mut |_| true)
    }

    fn read_waiting(
        &mut self,
        wait: Wait,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        loop {
            let message = match wait {
                Wait::No => match self.receiver.try_recv() {
                    Ok(message) => message,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(None),
                },
                Wait::Until(None) => match self.receiver.recv() {
                    Ok(message) => message,
                    Err(_) => return Ok(None),
                },
                Wait::Until(Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.receiver.recv_timeout(left) {
                        Ok(message) => message,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                            return Ok(None)
                        }
                    }
                }
            };
            self.next_index = message.0 + 1;
            if keep(&message.1) {
                let (index, entry) = self.current.insert(message);
                return Ok(Some(LogRecord {
                    start: *index,
                    end: *index + 1,
                    payload_offset: *index,
                    entry: entry.reborrow(),
                }));
            }
        }
    }
}

impl ReadJournal for PipeReader {
    /// Does not block: `None` when no entry is waiting.
    fn read_next_where(
        &mut self,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        self.read_waiting(Wait::No, keep)
    }
    fn restart(&mut self) -> Result<(), JournalError> {
        Ok(())
    }
}
