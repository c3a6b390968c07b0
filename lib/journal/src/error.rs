//! Typed errors. Every read error names the journal and the byte offset of the
//! record at fault; none of them is ever a panic.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What exactly is wrong with the bytes at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The journal does not start with the wasnap magic.
    BadMagic,
    /// The header record announces a format newer than this build reads.
    UnsupportedVersion {
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A magic is not followed by a header record, or a header record appears
    /// without a magic before it.
    MisplacedHeader,
    /// The journal ends in the middle of a record (a crash while appending).
    /// Nothing valid follows; the tolerant recovery mode stops here cleanly.
    TornTail {
        /// How the torn tail was recognised.
        cause: TailDamage,
    },
    /// The record's checksum does not match its bytes, and valid records follow
    /// it: corruption in the middle of the journal.
    CrcMismatch {
        /// The checksum stored in the record.
        stored: u32,
        /// The checksum of the bytes as they are.
        computed: u32,
    },
    /// The record's size runs past the end of the journal, and valid records
    /// follow it: a corrupted size field.
    SizePastEnd {
        /// The size, in bytes.
        size: u64,
        /// Bytes available from there to the end.
        available: u64,
    },
    /// An all-zero record header (a never-written record), and valid records
    /// follow it.
    ZeroHeader,
    /// The reserved word of the record trailer is not zero.
    BadTrailer,
    /// The record is intact but its tag is not one this build knows: the
    /// journal was written by a newer wasnap.
    UnknownTag {
        /// The record tag.
        tag: u16,
    },
    /// The record is intact but its payload fails rkyv's validation.
    InvalidPayload {
        /// The entry kind's name.
        kind: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// How a torn tail was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TailDamage {
    /// Fewer than 8 bytes remain: a partial record header or magic.
    PartialHeader {
        /// Bytes available from there to the end.
        available: u64,
    },
    /// The record header was never written (all zeros).
    ZeroHeader,
    /// The record's stated size runs past the end of the journal.
    PastEnd {
        /// The size, in bytes.
        size: u64,
        /// Bytes available from there to the end.
        available: u64,
    },
    /// The last record is complete in length but its checksum does not match.
    CrcMismatch {
        /// The checksum stored in the record.
        stored: u32,
        /// The checksum of the bytes as they are.
        computed: u32,
    },
}

impl fmt::Display for TailDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TailDamage::PartialHeader { available } => {
                write!(f, "only {available} bytes of a record header")
            }
            TailDamage::ZeroHeader => write!(f, "a record header that was never written"),
            TailDamage::PastEnd { size, available } => write!(
                f,
                "a record of {size} payload bytes with only {available} bytes left"
            ),
            TailDamage::CrcMismatch { stored, computed } => write!(
                f,
                "a final record whose checksum does not match (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

impl fmt::Display for ReadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadErrorKind::BadMagic => write!(f, "not a wasnap journal (wrong magic)"),
            ReadErrorKind::UnsupportedVersion { found, supported } => write!(
                f,
                "journal format version {found} is newer than this wasnap supports (up to {supported}); upgrade wasnap"
            ),
            ReadErrorKind::MisplacedHeader => write!(f, "header record out of place"),
            ReadErrorKind::TornTail { cause } => write!(f, "torn tail: {cause}"),
            ReadErrorKind::CrcMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            ReadErrorKind::SizePastEnd { size, available } => write!(
                f,
                "record size {size} runs past the end of the journal ({available} bytes left)"
            ),
            ReadErrorKind::ZeroHeader => write!(f, "all-zero record header"),
            ReadErrorKind::BadTrailer => write!(f, "non-zero reserved word in the record trailer"),
            ReadErrorKind::UnknownTag { tag } => write!(
                f,
                "unknown entry tag {tag} (written by a newer wasnap?)"
            ),
            ReadErrorKind::InvalidPayload { kind, message } => {
                write!(f, "invalid {kind} payload: {message}")
            }
        }
    }
}

/// Bad bytes in a journal: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// The journal's path, or `<memory>`.
    pub journal: String,
    /// Byte offset of the record (or magic) at fault.
    pub offset: u64,
    /// What is wrong.
    pub kind: ReadErrorKind,
}

impl ReadError {
    /// True when the error is a torn tail, which recovery may cut off.
    pub fn is_torn_tail(&self) -> bool {
        matches!(self.kind, ReadErrorKind::TornTail { .. })
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: offset {}: {}", self.journal, self.offset, self.kind)
    }
}

impl std::error::Error for ReadError {}

/// Any failure of a journal operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The journal's bytes are bad.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An I/O operation on the journal's file failed.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file's path.
        path: PathBuf,
        /// The operation that failed.
        what: &'static str,
        #[source]
        /// The underlying error.
        source: io::Error,
    },
    /// Mapping the journal's file into memory failed.
    #[error("{}: cannot map the journal into memory: {message}", path.display())]
    Map {
        /// The file's path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An entry could not be serialized.
    #[error("{journal}: cannot serialize a {kind} entry: {message}")]
    Encode {
        /// The journal's name (its path, or `<memory>`).
        journal: String,
        /// The entry kind's name.
        kind: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A record is larger than the 48-bit size field allows.
    #[error("{journal}: a {kind} entry of {size} bytes exceeds the record size limit")]
    TooLarge {
        /// The journal's name (its path, or `<memory>`).
        journal: String,
        /// The entry kind's name.
        kind: &'static str,
        /// The size, in bytes.
        size: u64,
    },
    /// An earlier write failed; the writer refuses further records so that no
    /// record is written behind a hole.
    #[error("{journal}: the journal writer failed earlier and is closed: {message}")]
    Poisoned {
        /// The journal's name (its path, or `<memory>`).
        journal: String,
        /// What went wrong.
        message: String,
    },
    /// The journal does not support the operation (writing to a read-only
    /// journal, for example).
    #[error("{journal}: {operation} is not supported by this journal")]
    Unsupported {
        /// The journal's name (its path, or `<memory>`).
        journal: String,
        /// The operation asked for.
        operation: &'static str,
    },
    /// The path names something other than a regular file (a FIFO, a
    /// device, a directory): opening it could block or mean nothing.
    #[error("{}: not a journal: a journal is a regular file, this is {kind}", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// Another process holds the journal's writer lock: one writer at a
    /// time (see [`crate::lock`]).
    #[error(
        "{}: the journal is being written by {}; one writer at a time (a reader, or --journal-readonly, can look at it meanwhile)",
        path.display(),
        match holder { Some(pid) => format!("process {pid}"), None => "another process".to_owned() }
    )]
    Locked {
        /// The journal's path.
        path: PathBuf,
        /// The process holding the lock, when the kernel says.
        holder: Option<u32>,
    },
    /// A pipe's other end was dropped.
    #[error("{journal}: the other end of the pipe is gone")]
    Disconnected {
        /// The journal's name (its path, or `<memory>`).
        journal: String,
    },
}

/// A JSON object that is not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The value is not an object.
    #[error("an entry must be a JSON object")]
    NotAnObject,
    /// No `"type"`.
    #[error("the entry has no \"type\" string")]
    MissingType,
    /// A `"type"` that names no entry kind.
    #[error("unknown entry type {0:?}")]
    UnknownType(String),
    /// A field of the kind is missing.
    #[error("{kind} entry is missing field {field:?}")]
    MissingField {
        /// The entry kind's name.
        kind: String,
        /// The field's name.
        field: &'static str,
    },
    /// A field the kind does not have.
    #[error("{kind} entry has an unknown field {field:?}")]
    UnknownField {
        /// The entry kind's name.
        kind: String,
        /// The field's name.
        field: String,
    },
    /// A field whose value does not fit its type.
    #[error("{kind} entry, field {field:?}: {message}")]
    BadField {
        /// The entry kind's name.
        kind: String,
        /// The field's name.
        field: &'static str,
        /// What went wrong.
        message: String,
    },
}
