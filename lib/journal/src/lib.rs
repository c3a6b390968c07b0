//! wasnap's journal: an append-only log of the effects a WebAssembly program
//! has on the outside world.
//!
//! - [`JournalEntry`]: one typed, versioned record per kind of effect,
//!   declared once in `entry.rs`;
//! - the record format (docs/format.md): magic, header record, then records of
//!   `[u16 tag | u48 size]`, an rkyv payload, and a CRC32C;
//! - [`Journal`]: a writer ([`JournalWriter`], buffered, thread-safe) and a
//!   reader ([`JournalReader`], zero-copy over an mmap or a buffer) that
//!   split apart and join back.
//!
//! Reading never trusts bytes: every problem is a [`ReadError`] carrying the
//! journal's name and the offset at fault.
//!
//! ```
//! use std::borrow::Cow;
//! use wasnap_journal::{FileDescriptorWriteV1, Journal, JournalEntry, ReadJournal, WriteJournal};
//!
//! let mut journal = Journal::in_memory();
//! let entry: JournalEntry = FileDescriptorWriteV1 { fd: 3, offset: 0, data: Cow::Borrowed(b"hello") }.into();
//! let span = journal.write(&entry)?;
//! journal.commit()?;
//! journal.restart()?;
//! let record = journal.read_next()?.expect("one record");
//! assert_eq!((record.start, record.end), (span.start, span.end));
//! assert_eq!(record.entry, entry);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Two modules use `unsafe`: one reads a caller's buffer from a helper thread
// (writer/checksum_thread.rs), one calls the CPU's CRC32C instruction
// (crc_lanes.rs); nothing else needs it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod declare;
pub mod combinators;
mod crc_lanes;
mod entry;
mod error;
pub mod field;
mod format;
mod journal;
pub mod lock;
pub mod memory;
mod reader;
pub mod start;
pub mod state;
mod store;
pub mod timeline;
mod writer;

pub use entry::*;
pub use error::{JournalError, JsonError, ReadError, ReadErrorKind, TailDamage};
pub use format::{
    is_mapped_region, FORMAT_VERSION, MAGIC, MAPPED_REGION_MIN_LEN, MAX_PAYLOAD_LEN, PAGE_LEN,
    RECORD_ALIGN,
};
pub use journal::{Journal, JournalOptions, ReadJournal, WriteJournal};
pub use reader::{JournalReader, LogRecord, Recovery};
pub use shared_buffer::OwnedBuffer;
pub use writer::{
    DetachedTicket, DetachedWrite, Durability, JournalWriter, RecordSpan, DEFAULT_BATCH_LIMIT,
};

/// The name memory journals go by in messages.
pub const MEMORY_NAME: &str = "<memory>";
