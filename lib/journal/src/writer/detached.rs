//! Records written outside the writer's own threads: by a process forked
//! for the purpose, so that a large snapshot does not stop the program
//! while hundreds of megabytes are copied into the page cache.
//!
//! [`JournalWriter::detach_write`] encodes the records (all but the
//! checksums over their bulk data, the costly pass), reserves their bytes at
//! the journal's end and hands back a [`DetachedWrite`], which writes them
//! through a handle that shares the journal's file position, and a
//! [`DetachedTicket`], which reports how that went.
//!
//! Invariants:
//! - the detached bytes are `[span.start, span.end)`, at the journal's end
//!   when reserved; they begin with the records the writer had buffered.
//!   Before they are written, everything before them is: what was queued
//!   to the I/O thread (waited for when reserving), and an earlier detached
//!   write (its writer must end first; a forked child waits for the one
//!   before it), so the shared file position is `span.start`;
//! - tickets report in offset order (a later one waits for the earlier);
//! - the writer counts them at once (records written afterwards land after
//!   them), and hands nothing to the file until the ticket reports them
//!   written (`State::reserved_to`): the file never gets a hole;
//! - a failed or abandoned detached write poisons the writer, as a failed
//!   write does: what is in the file after `span.start` is a torn tail;
//! - [`DetachedWrite::write_out`] allocates nothing and takes no lock, so a
//!   child process forked from a multi-threaded parent can call it.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;

use super::{encode_error, lock, IoProgress, JournalWriter, Output, RecordSpan, State};
use crate::entry::JournalEntry;
use crate::error::JournalError;
use crate::format::{self, SplitRecord};

/// Entries with at least this much bulk data leave it where it is: the
/// detached write copies and checksums it, not the caller (smaller ones are
/// encoded whole, which costs less than a separate piece).
const SPLIT_MIN: usize = 4096;

/// Bulk data is checksummed and written in pieces of this size (the piece
/// just checksummed is still in the cache when the kernel copies it).
const WRITE_PIECE: usize = 1024 * 1024;

/// Records whose bytes are reserved at the journal's end, to be written by
/// [`DetachedWrite::write_out`] (typically in a forked child process).
#[derive(Debug)]
pub struct DetachedWrite<'e> {
    pieces: Vec<Piece<'e>>,
    file: File,
    span: RecordSpan,
}

#[derive(Debug)]
enum Piece<'e> {
    /// Whole records, checksums included.
    Encoded(Vec<u8>),
    /// A record around bulk data it borrows; its checksum is computed while
    /// it is written.
    Split(SplitRecord<'e>),
}

impl std::fmt::Debug for SplitRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitRecord")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl DetachedWrite<'_> {
    /// Where the records land in the journal.
    pub fn span(&self) -> RecordSpan {
        self.span
    }

    /// Writes every record at the journal's end, computing the checksums
    /// over the bulk data as it goes. Allocates nothing and takes no lock:
    /// a child process forked from a multi-threaded parent may call it.
    pub fn write_out(&mut self) -> std::io::Result<()> {
        for piece in &mut self.pieces {
            match piece {
                Piece::Encoded(bytes) => self.file.write_all(bytes)?,
                Piece::Split(split) => {
                    self.file.write_all(&split.head)?;
                    let mut crc = split.head_crc;
                    for part in split.data.chunks(WRITE_PIECE) {
                        crc = crc32c::crc32c_append(crc, part);
                        self.file.write_all(part)?;
                    }
                    let crc = split.tail_checksum(crc);
                    split.set_checksum(crc);
                    self.file.write_all(&split.tail)?;
                }
            }
        }
        Ok(())
    }
}

/// Reports the end of a [`DetachedWrite`] to the writer. Dropped without
/// [`DetachedTicket::finish`], it reports the write as abandoned (and the
/// writer takes no more records).
#[derive(Debug)]
pub struct DetachedTicket {
    progress: Arc<IoProgress>,
    span: RecordSpan,
    finished: bool,
}

impl DetachedTicket {
    /// Where the records land in the journal.
    pub fn span(&self) -> RecordSpan {
        self.span
    }

    /// Reports how the detached write ended: on success the writer goes
    /// on after its bytes; on failure it is poisoned (the records may be
    /// partly in the file: a torn tail, which the next open cuts off).
    pub fn finish(mut self, result: std::io::Result<()>) {
        self.finished = true;
        self.report(result);
    }

    fn report(&self, result: std::io::Result<()>) {
        // An earlier detached write reports first: its bytes come first.
        let earlier = self.progress.wait(self.span.start);
        let mut status = lock(&self.progress.status);
        match (earlier, result) {
            (Ok(()), Ok(())) => {
                debug_assert_eq!(status.written, self.span.start, "nothing else was written");
                status.written = status.written.max(self.span.end);
            }
            // The writer failed before: that is what it reports.
            (Err(_), _) => {}
            (Ok(()), Err(e)) => {
                let message = format!(
                    "the {} bytes of records at offset {} were not written: {e}",
                    self.span.end - self.span.start,
                    self.span.start
                );
                status.failed.get_or_insert((e.kind(), message));
            }
        }
        self.progress.changed.notify_all();
    }
}

impl Drop for DetachedTicket {
    fn drop(&mut self) {
        if !self.finished {
            self.report(Err(std::io::Error::other(
                "the detached write was abandoned",
            )));
        }
    }
}

impl JournalWriter {
    /// Reserves `entries`, contiguously, at the journal's end, to be written
    /// by the returned [`DetachedWrite`] (in a forked child process, say)
    /// while this writer takes further records; their offsets come after.
    /// The records buffered so far are written first, by the detached write.
    /// Records are handed to the file again once the [`DetachedTicket`]
    /// reports the write done: a `flush` waits for it. `None` for a journal
    /// in memory (write the entries as usual).
    ///
    /// An earlier detached write may still be out: this one is placed after
    /// it, and whoever writes this one must wait until that one is written
    /// (see [`JournalWriter::detached_out`]).
    ///
    /// Bulk data the entries borrow is read by the detached write, not here:
    /// it must not change until then (a forked child has its own copy).
    pub fn detach_write<'e>(
        &self,
        entries: &'e [JournalEntry<'_>],
    ) -> Result<Option<(DetachedWrite<'e>, DetachedTicket)>, JournalError> {
        let shared = &*self.shared;
        let mut guard = lock(&shared.state);
        let state = &mut *guard;
        state.poisoned(&shared.name)?;
        let Some(progress) = shared.progress.clone() else {
            return Ok(None);
        };
        let Output::Io(io) = &state.output else {
            return Ok(None);
        };
        let file = io
            .direct
            .try_clone()
            .map_err(|e| self.io_error("cannot duplicate the journal's handle", e))?;
        // Encoded first: an encoding error leaves the writer as it was.
        let start = state.batch_start;
        let buffered = state.batch.len() as u64;
        let mut at = start + buffered;
        let mut pieces: Vec<Piece<'e>> = Vec::with_capacity(entries.len() + 1);
        let mut small = Vec::new();
        for entry in entries {
            let bulk = entry.bulk_data().filter(|b| b.len() >= SPLIT_MIN);
            let split = match bulk {
                Some(bulk) => format::encode_split(entry, bulk, &mut state.arena.0, at)
                    .map_err(|e| encode_error(&shared.name, entry, e))?,
                None => None,
            };
            match split {
                Some(split) => {
                    if !small.is_empty() {
                        pieces.push(Piece::Encoded(std::mem::take(&mut small)));
                    }
                    at += split.len() as u64;
                    pieces.push(Piece::Split(split));
                }
                None => {
                    // Small records are gathered into one piece.
                    let before = small.len();
                    let base = at - before as u64;
                    format::append_entry(&mut small, entry, &mut state.arena.0, base)
                        .map_err(|e| encode_error(&shared.name, entry, e))?;
                    at += (small.len() - before) as u64;
                }
            }
        }
        if !small.is_empty() {
            pieces.push(Piece::Encoded(small));
        }
        // The file position must be where the buffered records start: after
        // what was queued to the I/O thread (waited for here) and after an
        // earlier detached write (not waited for here: whoever writes this
        // one waits, so that the program goes on meanwhile).
        if !detached_out(state, &progress) {
            if let Err((_, message)) = progress.wait(start) {
                state.failed = Some(message);
                state.poisoned(&shared.name)?;
            }
        }
        if buffered > 0 {
            pieces.insert(0, Piece::Encoded(std::mem::take(&mut state.batch)));
        }
        state.batch_start = at;
        state.reserved_to = Some(at);
        let span = RecordSpan { start, end: at };
        Ok(Some((
            DetachedWrite { pieces, file, span },
            DetachedTicket {
                progress,
                span,
                finished: false,
            },
        )))
    }

    /// Whether a detached write's bytes are not all written yet.
    pub fn detached_out(&self) -> bool {
        match &self.shared.progress {
            Some(progress) => detached_out(&lock(&self.shared.state), progress),
            None => false,
        }
    }
}

/// Whether the bytes of the last detached write of `state` are not all
/// written yet.
pub(super) fn detached_out(state: &State, progress: &IoProgress) -> bool {
    state
        .reserved_to
        .is_some_and(|end| lock(&progress.status).written < end)
}
