//! The growable in-memory backing of a memory journal, shared by its writer
//! and its readers.
//!
//! Invariant: the logical bytes are `base[..base_len]` followed by `appended`;
//! `base_len` is a record boundary (a torn tail of the initial buffer is cut
//! off there), so appended records are always reachable.

use std::sync::{Mutex, PoisonError};

use shared_buffer::OwnedBuffer;

#[derive(Debug)]
struct Bytes {
    base: OwnedBuffer,
    base_len: usize,
    appended: Vec<u8>,
}

/// Bytes of a memory journal.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    bytes: Mutex<Bytes>,
}

impl MemoryStore {
    /// A store whose first `valid_len` bytes come from `base` (without copying).
    pub(crate) fn new(base: OwnedBuffer, valid_len: usize) -> Self {
        let base_len = valid_len.min(base.len());
        Self {
            bytes: Mutex::new(Bytes {
                base,
                base_len,
                appended: Vec::new(),
            }),
        }
    }

    /// The logical length.
    pub(crate) fn len(&self) -> usize {
        let bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.base_len + bytes.appended.len()
    }

    /// Appends a batch of whole records.
    pub(crate) fn append(&self, batch: &[u8]) {
        let mut bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.appended.extend_from_slice(batch);
    }

    /// An immutable view of everything written so far. Appended bytes are
    /// folded into a new base the first time they are seen, so each byte is
    /// copied once per snapshot that follows new appends.
    pub(crate) fn snapshot(&self) -> OwnedBuffer {
        let mut bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        if !bytes.appended.is_empty() {
            let mut joined = Vec::with_capacity(bytes.base_len + bytes.appended.len());
            joined.extend_from_slice(&bytes.base[..bytes.base_len]);
            joined.append(&mut bytes.appended);
            bytes.base_len = joined.len();
            bytes.base = OwnedBuffer::from_bytes(joined);
        }
        bytes.base.slice(..bytes.base_len)
    }
}
