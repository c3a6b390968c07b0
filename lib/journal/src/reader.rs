//! The read half (rx) of a journal: a cursor over a memory-mapped file or an
//! in-memory buffer that returns entries borrowing from that buffer.
//!
//! Invariant: `pos` always sits on a record boundary (or at a magic). A torn
//! tail seen in tolerant mode does not move it, so a restart after the writer
//! finished the record reads it whole.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rkyv::util::AlignedVec;
use shared_buffer::OwnedBuffer;

use crate::entry::{EntryKind, JournalEntry};
use crate::error::{JournalError, ReadError, ReadErrorKind};
use crate::format::{self, RawRecord, Step};
use crate::store::MemoryStore;

/// What to do at a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recovery {
    /// Report it as [`ReadErrorKind::TornTail`].
    #[default]
    Strict,
    /// End the journal there, cleanly. Every other kind of damage is still an
    /// error.
    StopAtTornTail,
}

/// One record read from a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// Offset of the record's first byte.
    pub start: u64,
    /// Offset just past the record's last byte.
    pub end: u64,
    /// Offset of the record's payload (where rkyv's archive begins). File
    /// data inside the payload can be served from the mapping from here.
    pub payload_offset: u64,
    /// The entry, borrowing from the reader's buffer.
    pub entry: JournalEntry<'a>,
}

/// Where the reader's bytes come from, and how a restart refreshes them.
#[derive(Debug)]
enum Source {
    /// A file, mapped again on restart (shared with the memory layers that
    /// map pages of it).
    File { file: Arc<File>, path: PathBuf },
    /// A memory journal that a writer may be appending to.
    Memory(Arc<MemoryStore>),
    /// A file read into memory (never mapped), read again on restart when
    /// its length changed: a writer that truncates the file cannot take
    /// pages from under this reader (a mapping would die of SIGBUS).
    Copied { file: File, path: PathBuf },
    /// Bytes that never change.
    Fixed,
}

/// The whole of `file`, read (not mapped); a file that shrinks meanwhile
/// just reads shorter.
fn read_whole(file: &File, path: &Path) -> Result<OwnedBuffer, JournalError> {
    use std::os::unix::fs::FileExt;
    let io = |source| JournalError::Io {
        path: path.to_owned(),
        what: "cannot read the journal",
        source,
    };
    let len = file.metadata().map_err(io)?.len();
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut filled = 0;
    while filled < bytes.len() {
        match file.read_at(&mut bytes[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    bytes.truncate(filled);
    Ok(OwnedBuffer::from_bytes(bytes))
}

/// The read half of a journal.
#[derive(Debug)]
pub struct JournalReader {
    name: String,
    source: Source,
    buf: OwnedBuffer,
    cursor: Cursor,
    recovery: Recovery,
}

/// Where the reader is. Kept apart from the buffer so that an entry borrowed
/// from the buffer can be returned while the cursor moves.
#[derive(Debug, Default)]
struct Cursor {
    pos: usize,
    expect_header: bool,
    version: Option<u32>,
    torn_tail: Option<ReadError>,
    /// Every record in this range of the current buffer, read in order from
    /// its start (a record boundary), passed its checksum: checked ahead of
    /// the cursor several at a time ([`format::verify_ahead`]), or read
    /// before. Reading them checks their structure but not their checksum
    /// again (after a rewind, too). A seek anywhere else than the start or
    /// the range's end forgets it.
    verified: std::ops::Range<usize>,
}

pub(crate) fn map_file(file: &File, path: &Path) -> Result<OwnedBuffer, JournalError> {
    let len = file
        .metadata()
        .map_err(|source| JournalError::Io {
            path: path.to_owned(),
            what: "cannot read the journal's metadata",
            source,
        })?
        .len();
    if len == 0 {
        // mmap refuses empty ranges.
        return Ok(OwnedBuffer::from_bytes(Vec::new()));
    }
    OwnedBuffer::from_file(file).map_err(|e| JournalError::Map {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Opens an existing regular file for reading (never creates it; a FIFO or
/// device is refused before it could block).
fn open_existing(path: &Path) -> Result<File, JournalError> {
    crate::lock::require_regular_file(path)?;
    File::open(path).map_err(|source| JournalError::Io {
        path: path.to_owned(),
        what: "cannot open the journal",
        source,
    })
}

impl JournalReader {
    /// Opens an existing journal file for reading. The file is never created.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        let path = path.as_ref();
        Self::from_file(open_existing(path)?, path)
    }

    pub(crate) fn from_file(file: File, path: &Path) -> Result<Self, JournalError> {
        let buf = map_file(&file, path)?;
        Ok(Self::new(
            path.display().to_string(),
            Source::File {
                file: Arc::new(file),
                path: path.to_owned(),
            },
            buf,
        ))
    }

    /// Opens an existing journal file for reading without mapping it: the
    /// bytes are read into memory, and read again by [`restart`] when the
    /// file's length changed. For readers that follow a file other
    /// processes write and may truncate (`journal tail --follow`), at the
    /// cost of a copy.
    ///
    /// [`restart`]: JournalReader::restart
    pub fn open_copied(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        let path = path.as_ref();
        let file = open_existing(path)?;
        let buf = read_whole(&file, path)?;
        Ok(Self::new(
            path.display().to_string(),
            Source::Copied {
                file,
                path: path.to_owned(),
            },
            buf,
        ))
    }

    /// A reader over bytes in memory that will not change.
    pub fn from_buffer(buf: OwnedBuffer) -> Self {
        Self::new(crate::MEMORY_NAME.to_owned(), Source::Fixed, buf)
    }

    pub(crate) fn from_store(store: Arc<MemoryStore>) -> Self {
        let buf = store.snapshot();
        Self::new(crate::MEMORY_NAME.to_owned(), Source::Memory(store), buf)
    }

    fn new(name: String, source: Source, buf: OwnedBuffer) -> Self {
        Self {
            name,
            source,
            buf,
            cursor: Cursor::default(),
            recovery: Recovery::Strict,
        }
    }

    /// Marks the records in `[0, end)` as verified: another reader of the
    /// same bytes checked them (a journal's open checks the whole file
    /// before its reader maps it again, holding the writer lock so that the
    /// bytes cannot change), and this one need not checksum them again.
    pub(crate) fn with_verified_prefix(mut self, end: u64) -> Self {
        let end = usize::try_from(end)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        self.cursor.verified = 0..end;
        self
    }

    /// Sets the recovery mode.
    pub fn with_recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    /// The journal's name in messages: its path, or `<memory>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format version of the segment being read, once its header was read.
    pub fn format_version(&self) -> Option<u32> {
        self.cursor.version
    }

    /// The offset of the next record.
    pub fn position(&self) -> u64 {
        self.cursor.pos as u64
    }

    /// The bytes currently visible to the reader (the whole mapping). Entries'
    /// `payload_offset`s index into it.
    pub fn buffer(&self) -> &OwnedBuffer {
        &self.buf
    }

    /// The reader's buffer and, for a mapped journal file, the file: what
    /// lets memory regions read from this buffer be mapped or shared
    /// instead of copied (see [`Backing::share`]). Take it before reading;
    /// it stays valid after [`restart`](Self::restart) maps the file again.
    ///
    /// [`Backing::share`]: crate::memory::Backing::share
    pub fn backing(&self) -> crate::memory::Backing {
        let file = match &self.source {
            Source::File { file, .. } if self.buf.is_mmapped() => Some(Arc::clone(file)),
            Source::File { .. } | Source::Memory(_) | Source::Copied { .. } | Source::Fixed => None,
        };
        crate::memory::Backing::new(self.buf.clone(), file)
    }

    /// In tolerant mode, the torn tail the reader stopped at, if any.
    pub fn torn_tail(&self) -> Option<&ReadError> {
        self.cursor.torn_tail.as_ref()
    }

    /// Moves the cursor to `offset`, which must be a record boundary the caller
    /// got from this journal (a `LogRecord::end`, a `position()`). Reading from
    /// an offset that is not a boundary yields an error, never an entry whose
    /// checksum does not match (bytes that hold a whole record with its
    /// checksum, such as a payload that is itself a journal, read as that
    /// record: a checksum cannot tell where it was written).
    pub fn seek(&mut self, offset: u64) {
        let pos = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        let pos = pos - pos % format::RECORD_ALIGN;
        // Records are taken as verified only along the chain of boundaries
        // the range was read through. The start and the range's end are on
        // it; any other offset may not be a boundary at all, and bytes read
        // from there must meet their checksum.
        if pos != 0 && pos != self.cursor.verified.end {
            self.cursor.verified = 0..0;
        }
        self.cursor.pos = pos;
        self.cursor.expect_header = false;
        self.cursor.torn_tail = None;
    }

    /// Moves the cursor back to the first record.
    pub fn rewind(&mut self) {
        self.seek(0);
    }

    /// Refreshes the view of the journal so that records appended since it was
    /// opened become visible. The cursor stays where it is.
    pub fn restart(&mut self) -> Result<(), JournalError> {
        match &self.source {
            Source::File { file, path } => {
                self.buf = map_file(file, path)?;
            }
            Source::Memory(store) => self.buf = store.snapshot(),
            Source::Copied { file, path } => {
                let len = file.metadata().map_or(0, |m| m.len());
                if len != self.buf.len() as u64 {
                    self.buf = read_whole(file, path)?;
                }
            }
            Source::Fixed => {}
        }
        self.cursor.pos = self.cursor.pos.min(self.buf.len());
        self.cursor.torn_tail = None;
        // A new view: nothing in it was verified.
        self.cursor.verified = 0..0;
        Ok(())
    }

    /// Reads the next record. The entry borrows from the journal's buffer
    /// (unless that buffer is not 8-aligned in memory, in which case the one
    /// payload is copied to an aligned scratch buffer and the entry owns it).
    pub fn read_next(&mut self) -> Result<Option<LogRecord<'_>>, ReadError> {
        self.read_next_where(&mut |_| true)
    }

    /// Reads the next record whose entry `keep` accepts; the others are
    /// validated and skipped.
    pub fn read_next_where(
        &mut self,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        let buf: &[u8] = &self.buf;
        loop {
            // The common case first: a plain record already verified.
            let fast =
                if self.cursor.expect_header || !self.cursor.verified.contains(&self.cursor.pos) {
                    None
                } else {
                    format::verified_record(buf, self.cursor.pos, self.cursor.verified.end)
                };
            let raw = match fast {
                Some(raw) => raw,
                None => match next_raw(buf, &mut self.cursor, &self.name, self.recovery)? {
                    Some(raw) => raw,
                    None => return Ok(None),
                },
            };
            let entry = decode(buf, &raw).map_err(|kind| ReadError {
                journal: self.name.clone(),
                offset: raw.start as u64,
                kind,
            })?;
            self.cursor.pos = raw.end;
            if keep(&entry) {
                return Ok(Some(LogRecord {
                    start: raw.start as u64,
                    end: raw.end as u64,
                    payload_offset: raw.payload.start as u64,
                    entry,
                }));
            }
        }
    }

    /// Reads every remaining record, detached from the buffer.
    pub fn read_all_owned(&mut self) -> Result<Vec<LogRecord<'static>>, ReadError> {
        let mut out = Vec::new();
        while let Some(record) = self.read_next()? {
            out.push(LogRecord {
                start: record.start,
                end: record.end,
                payload_offset: record.payload_offset,
                entry: record.entry.into_owned(),
            });
        }
        Ok(out)
    }
}

/// Finds the next entry record, handling magics and header records.
/// `Ok(None)` is the end (or, in tolerant mode, a torn tail).
#[inline(never)]
fn next_raw(
    buf: &[u8],
    cursor: &mut Cursor,
    name: &str,
    recovery: Recovery,
) -> Result<Option<RawRecord>, ReadError> {
    let error = |offset: usize, kind| ReadError {
        journal: name.to_owned(),
        offset: offset as u64,
        kind,
    };
    loop {
        let at = cursor.pos;
        let verified = cursor.verified.clone();
        if !verified.contains(&at) {
            let ahead = format::verify_ahead(buf, at);
            if ahead > at {
                cursor.verified = if verified.start <= at && at <= verified.end {
                    verified.start..ahead
                } else {
                    at..ahead
                };
            }
        }
        // Records read in order from the verified range's start extend it.
        let extend = |cursor: &mut Cursor, to: usize| {
            if cursor.verified.start <= at && at <= cursor.verified.end {
                cursor.verified.end = cursor.verified.end.max(to);
            }
        };
        let verified_to = if cursor.verified.start <= at {
            cursor.verified.end
        } else {
            0
        };
        match format::step(buf, at, cursor.expect_header, verified_to) {
            Ok(Step::End) => return Ok(None),
            Ok(Step::Magic { next }) => {
                extend(cursor, next);
                cursor.pos = next;
                cursor.expect_header = true;
            }
            Ok(Step::Header { version, next }) => {
                extend(cursor, next);
                cursor.version = Some(version);
                cursor.pos = next;
                cursor.expect_header = false;
            }
            Ok(Step::Record(raw)) => {
                extend(cursor, raw.end);
                return Ok(Some(raw));
            }
            Err(kind @ ReadErrorKind::TornTail { .. }) => {
                // A segment torn before its header record was complete is
                // torn at its magic: nothing of it is usable.
                if cursor.expect_header {
                    cursor.pos -= format::MAGIC.len();
                    cursor.expect_header = false;
                }
                let torn = error(cursor.pos, kind);
                if recovery == Recovery::StopAtTornTail {
                    cursor.torn_tail = Some(torn);
                    return Ok(None);
                }
                return Err(torn);
            }
            Err(kind) => return Err(error(cursor.pos, kind)),
        }
    }
}

/// Decodes a checked record's payload: known tag, rkyv validation.
fn decode<'b>(buf: &'b [u8], raw: &RawRecord) -> Result<JournalEntry<'b>, ReadErrorKind> {
    let Some(kind) = EntryKind::from_tag(raw.tag) else {
        return Err(ReadErrorKind::UnknownTag { tag: raw.tag });
    };
    let payload = &buf[raw.payload.clone()];
    let decoded = if payload.as_ptr().align_offset(format::RECORD_ALIGN) == 0 {
        JournalEntry::decode_payload(raw.tag, payload)
    } else {
        let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
        aligned.extend_from_slice(payload);
        JournalEntry::decode_payload(raw.tag, &aligned).map(|e| e.map(JournalEntry::into_owned))
    };
    match decoded {
        Ok(Some(entry)) => Ok(entry),
        Ok(None) => Err(ReadErrorKind::UnknownTag { tag: raw.tag }),
        Err(e) => Err(ReadErrorKind::InvalidPayload {
            kind: kind.name(),
            message: e.to_string(),
        }),
    }
}
