//! Every entry kind survives encode → record → decode, JSON, and into_owned.
//! The kinds come from `EntryKind::ALL`, which the entry table generates, so
//! a newly declared entry is covered without touching this file.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use wasnap_journal::field::SampleGen;
use wasnap_journal::{EntryKind, JournalEntry, ReadJournal, WriteJournal};

#[test]
fn tags_are_unique_and_stable_lookups_work() {
    let mut tags: Vec<u16> = EntryKind::ALL.iter().map(|k| k.tag()).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags.len(), EntryKind::ALL.len(), "two kinds share a tag");
    for &kind in EntryKind::ALL {
        assert_ne!(kind.tag(), 0, "tag 0 is the header record");
        assert!(kind.tag() < 0x1000, "tags at or above 0x1000 are reserved");
        assert_eq!(EntryKind::from_tag(kind.tag()), Some(kind));
        assert_eq!(EntryKind::from_name(kind.name()), Some(kind));
    }
    assert!(EntryKind::ALL.len() >= 45, "the table lost entries");
}

#[test]
fn every_kind_round_trips_on_every_storage() {
    for storage in STORAGES {
        // Several samples per kind, including empty and long byte strings.
        for (seed, max_len) in [(1, 0), (2, 16), (3, 4096)] {
            let scratch = Scratch::new();
            let entries = one_of_each(seed, max_len);
            let mut journal = new_journal(storage, &scratch);
            let spans: Vec<_> = entries.iter().map(|e| journal.write(e).unwrap()).collect();
            journal.flush().unwrap();
            journal.restart().unwrap();
            let mut read = Vec::new();
            while let Some(record) = journal.read_next().unwrap() {
                read.push((record.start, record.end, record.entry.into_owned()));
            }
            assert_eq!(read.len(), entries.len(), "{storage:?}");
            for ((start, end, got), (want, span)) in
                read.into_iter().zip(entries.iter().zip(&spans))
            {
                assert_eq!(
                    &got,
                    want,
                    "{storage:?}: {:?} did not round-trip",
                    want.kind()
                );
                assert_eq!(
                    (start, end),
                    (span.start, span.end),
                    "{storage:?}: span of {:?}",
                    want.kind()
                );
            }
        }
    }
}

#[test]
fn read_entries_borrow_from_the_buffer() {
    let entry = JournalEntry::FileDescriptorWriteV1(wasnap_journal::FileDescriptorWriteV1 {
        fd: 3,
        offset: 0,
        data: b"zero-copy bytes".as_slice().into(),
    });
    let bytes = journal_bytes(&[entry]);
    let mut reader =
        wasnap_journal::JournalReader::from_buffer(wasnap_journal::OwnedBuffer::from_bytes(bytes));
    let base = reader.buffer().as_ptr() as usize;
    let len = reader.buffer().len();
    let record = reader.read_next().unwrap().unwrap();
    let JournalEntry::FileDescriptorWriteV1(write) = record.entry else {
        panic!("wrong kind");
    };
    let std::borrow::Cow::Borrowed(data) = write.data else {
        panic!("data was copied instead of borrowed");
    };
    let at = data.as_ptr() as usize;
    assert!(
        at >= base && at + data.len() <= base + len,
        "data does not point into the buffer"
    );
}

#[test]
fn every_kind_round_trips_through_json() {
    for entry in one_of_each(7, 64) {
        let json = entry.to_json();
        assert_eq!(json["type"], entry.kind().name());
        let back = JournalEntry::from_json(&json).unwrap();
        assert_eq!(back, entry, "{json}");
    }
}

#[test]
fn json_errors_name_the_problem() {
    use serde_json::json;
    let err = |v: serde_json::Value| JournalEntry::from_json(&v).unwrap_err().to_string();
    assert!(err(json!(3)).contains("object"));
    assert!(err(json!({"fd": 1})).contains("type"));
    assert!(err(json!({"type": "NoSuchV9"})).contains("NoSuchV9"));
    assert!(err(json!({"type": "CloseFileDescriptorV1"})).contains("\"fd\""));
    assert!(err(json!({"type": "CloseFileDescriptorV1", "fd": -1})).contains("fd"));
    assert!(err(json!({"type": "CloseFileDescriptorV1", "fd": 1, "extra": 2})).contains("extra"));
    assert!(err(json!({"type": "RandomBytesV1", "data": "!!"})).contains("base64"));
}

fn arb_entry() -> impl Strategy<Value = JournalEntry<'static>> {
    (0..EntryKind::ALL.len(), any::<u64>(), 0usize..600).prop_map(|(index, seed, max_len)| {
        JournalEntry::sample(EntryKind::ALL[index], &mut SampleGen::new(seed, max_len))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_entry_sequences_round_trip(entries in proptest::collection::vec(arb_entry(), 1..24)) {
        let bytes = journal_bytes(&entries);
        let mut reader = wasnap_journal::JournalReader::from_buffer(wasnap_journal::OwnedBuffer::from_bytes(bytes));
        let (read, error) = read_until_error(&mut reader);
        prop_assert!(error.is_none(), "{error:?}");
        prop_assert_eq!(read, entries.clone());
        for entry in &entries {
            prop_assert_eq!(&JournalEntry::from_json(&entry.to_json()).unwrap(), entry);
            prop_assert_eq!(&entry.clone().into_owned(), entry);
        }
    }
}

/// Entries with large data are written straight from the caller's buffer
/// (not through a batch); interleaved with small ones, at every alignment,
/// memory regions among them, they read back the same and in order, and
/// mapped regions still land on page boundaries.
#[test]
fn large_entries_written_directly_round_trip_in_order() {
    use std::borrow::Cow;
    use wasnap_journal::{ClockSetV1, FileDescriptorWriteV1, UpdateMemoryRegionV1};
    let big = |seed: u8, len: usize| -> Vec<u8> {
        (0..len).map(|i| seed.wrapping_add((i / 7) as u8)).collect()
    };
    let mut entries: Vec<JournalEntry<'static>> = Vec::new();
    for round in 0..12u32 {
        for small in 0..(round % 5) {
            entries.push(
                ClockSetV1 {
                    clock_id: small,
                    time_ns: u64::from(round),
                }
                .into(),
            );
        }
        entries.push(
            FileDescriptorWriteV1 {
                fd: 3,
                offset: u64::from(round),
                data: Cow::Owned(big(round as u8, 256 * 1024 + round as usize * 4099)),
            }
            .into(),
        );
        entries.push(
            UpdateMemoryRegionV1 {
                start: u64::from(round) * 65536,
                end: u64::from(round) * 65536 + 512 * 1024,
                compression: 0,
                data: Cow::Owned(big(round as u8 ^ 0x55, 512 * 1024)),
            }
            .into(),
        );
    }
    let scratch = Scratch::new();
    let path = scratch.path("direct.journal");
    let journal =
        wasnap_journal::Journal::open(&path, wasnap_journal::JournalOptions::default()).unwrap();
    let mut spans = Vec::new();
    for entry in &entries {
        spans.push(journal.write(entry).unwrap());
    }
    journal.flush().unwrap();
    drop(journal);
    let mut reader = wasnap_journal::JournalReader::open(&path).unwrap();
    let backing = reader.backing();
    let mut read = Vec::new();
    while let Some(record) = reader.read_next().unwrap() {
        if let JournalEntry::PaddingV1(_) = record.entry {
            continue;
        }
        if let JournalEntry::UpdateMemoryRegionV1(region) = &record.entry {
            let (_, span) = backing.share(&region.data).unwrap();
            assert_eq!(
                span.unwrap().offset % 4096,
                0,
                "a mapped region off its page"
            );
        }
        let at = read.len();
        assert_eq!(
            record.start, spans[at].start,
            "entry {at} is not where write said"
        );
        read.push(record.entry.into_owned());
    }
    assert!(read == entries, "entries differ after a direct write");
}
