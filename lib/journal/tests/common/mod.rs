//! Helpers shared by the journal tests: every scenario runs on a file and on
//! an in-memory buffer.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use wasnap_journal::field::SampleGen;
use wasnap_journal::{
    EntryKind, Journal, JournalEntry, JournalOptions, JournalReader, OwnedBuffer, ReadJournal,
    WriteJournal,
};

/// Where a test's journal lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    File,
    Memory,
}

pub const STORAGES: [Storage; 2] = [Storage::File, Storage::Memory];

/// A place for test files that is removed when dropped.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A reader over `bytes`, stored as `storage` says.
pub fn reader_over(storage: Storage, scratch: &Scratch, bytes: &[u8]) -> JournalReader {
    match storage {
        Storage::File => {
            let path = scratch.path("reader.journal");
            std::fs::write(&path, bytes).unwrap();
            JournalReader::open(&path).unwrap()
        }
        Storage::Memory => JournalReader::from_buffer(OwnedBuffer::from_bytes(bytes.to_vec())),
    }
}

/// A journal (opened for appending) over `bytes`.
pub fn journal_over(
    storage: Storage,
    scratch: &Scratch,
    bytes: &[u8],
) -> Result<Journal, wasnap_journal::JournalError> {
    match storage {
        Storage::File => {
            let path = scratch.path("journal.journal");
            std::fs::write(&path, bytes).unwrap();
            Journal::open(&path, JournalOptions::default())
        }
        Storage::Memory => Journal::from_buffer(OwnedBuffer::from_bytes(bytes.to_vec())),
    }
}

/// A new, empty journal.
pub fn new_journal(storage: Storage, scratch: &Scratch) -> Journal {
    match storage {
        Storage::File => {
            Journal::open(scratch.path("new.journal"), JournalOptions::default()).unwrap()
        }
        Storage::Memory => Journal::in_memory(),
    }
}

/// One sample entry of every kind, deterministic for a seed.
pub fn one_of_each(seed: u64, max_len: usize) -> Vec<JournalEntry<'static>> {
    EntryKind::ALL
        .iter()
        .map(|&kind| {
            JournalEntry::sample(
                kind,
                &mut SampleGen::new(seed ^ u64::from(kind.tag()), max_len),
            )
        })
        .collect()
}

/// The bytes of a journal holding `entries`.
pub fn journal_bytes(entries: &[JournalEntry<'_>]) -> Vec<u8> {
    let mut journal = Journal::in_memory();
    for entry in entries {
        journal.write(entry).unwrap();
    }
    journal.flush().unwrap();
    journal.restart().unwrap();
    journal.reader().buffer().to_vec()
}

/// Every entry the reader yields, owned, until the end or the first error.
pub fn read_until_error(
    reader: &mut JournalReader,
) -> (
    Vec<JournalEntry<'static>>,
    Option<wasnap_journal::ReadError>,
) {
    let mut out = Vec::new();
    loop {
        match reader.read_next() {
            Ok(Some(record)) => out.push(record.entry.into_owned()),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Record end offsets of a journal's bytes (offsets where a cut is clean).
pub fn record_ends(bytes: &[u8]) -> Vec<u64> {
    let mut reader = JournalReader::from_buffer(OwnedBuffer::from_bytes(bytes.to_vec()));
    let mut ends = Vec::new();
    while let Some(record) = reader.read_next().unwrap() {
        ends.push(record.end);
    }
    ends
}
