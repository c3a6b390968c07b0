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
