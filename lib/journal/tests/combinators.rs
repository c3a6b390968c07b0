//! Every composable journal, alone and composed, on file and memory journals.
#![allow(clippy::unwrap_used)]

mod common;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use wasnap_journal::combinators::*;
use wasnap_journal::{
    Category, CloseFileDescriptorV1, FileDescriptorWriteV1, Journal, JournalEntry, JournalError,
    ReadJournal, RecordSpan, WriteJournal,
};

fn write_entry(fd: u32, data: &'static [u8]) -> JournalEntry<'static> {
    FileDescriptorWriteV1 {
        fd,
        offset: 0,
        data: Cow::Borrowed(data),
    }
    .into()
}

/// Reads everything left in `journal`, owned.
fn drain(journal: &mut impl ReadJournal) -> Vec<JournalEntry<'static>> {
    let mut out = Vec::new();
    while let Some(record) = journal.read_next().unwrap() {
        out.push(record.entry.into_owned());
    }
    out
}

#[test]
fn null_stores_nothing_and_unsupported_refuses_with_the_journal_named() {
    let entry = write_entry(3, b"x");
    let mut null = NullJournal;
    assert_eq!(null.write(&entry).unwrap(), RecordSpan::NOT_STORED);
    assert!(null.read_next().unwrap().is_none());

    let mut unsupported = UnsupportedJournal::new("base.journal");
    let error = unsupported.write(&entry).unwrap_err();
    assert!(matches!(error, JournalError::Unsupported { .. }));
    assert!(error.to_string().contains("base.journal"), "{error}");
    assert!(unsupported.read_next().unwrap().is_none());
}

#[test]
fn filter_drops_categories_on_write_and_on_read_for_every_storage() {
    let entries = one_of_each(21, 32);
    let drop = CategorySet::from_names(["memory", "threads", "stdio"]).unwrap();
    let kept: Vec<_> = entries
        .iter()
        .filter(|e| {
            !matches!(
                e.category(),
                Category::Memory | Category::Threads | Category::Stdio
            )
        })
        .cloned()
        .collect();
    assert!(kept.len() < entries.len() && !kept.is_empty());
    for storage in STORAGES {
        // On the way in.
        let scratch = Scratch::new();
        let filtered = Filtered::new(new_journal(storage, &scratch), drop);
        for entry in &entries {
            let span = filtered.write(entry).unwrap();
            assert_eq!(span.is_stored(), filtered.keeps(entry));
        }
        filtered.flush().unwrap();
        let mut journal = filtered.into_inner();
        journal.restart().unwrap();
        assert_eq!(drain(&mut journal), kept, "{storage:?} write side");

        // On the way out.
        let scratch = Scratch::new();
        let bytes = journal_bytes(&entries);
        let mut filtered = Filtered::new(reader_over(storage, &scratch, &bytes), drop);
        assert_eq!(drain(&mut filtered), kept, "{storage:?} read side");
    }
}

#[test]
fn stdio_writes_are_told_apart_from_file_writes() {
    let drop = CategorySet::empty().with(Category::Stdio);
    let mut journal = Filtered::new(BufferedJournal::new(), drop);
    journal.write(&write_entry(1, b"to stdout")).unwrap();
    journal.write(&write_entry(2, b"to stderr")).unwrap();
    journal.write(&write_entry(5, b"to a file")).unwrap();
    assert_eq!(drain(&mut journal), vec![write_entry(5, b"to a file")]);
    assert!(CategorySet::from_names(["bogus"])
        .unwrap_err()
        .contains("bogus"));
}

#[test]
fn count_tallies_entries_and_bytes_per_kind() {
    for storage in STORAGES {
        let scratch = Scratch::new();
        let counted = Counting::new(new_journal(storage, &scratch));
        let mut expected_bytes = 0;
        for i in 0..10u32 {
            let span = counted.write(&write_entry(i, b"0123456789")).unwrap();
            expected_bytes += span.end - span.start;
        }
        counted
            .write(&CloseFileDescriptorV1 { fd: 3 }.into())
            .unwrap();
        let counts = counted.counts();
        let writes = counts.per_kind[&wasnap_journal::EntryKind::FileDescriptorWriteV1];
        assert_eq!(writes.entries, 10);
        assert_eq!(writes.bytes, expected_bytes);
        assert_eq!(counts.entries(), 11);

        // Reading through a counter sees the same.
        counted.flush().unwrap();
        let mut journal = counted.into_inner();
        journal.restart().unwrap();
        let mut reading = Counting::new(journal);
        drain(&mut reading);
        assert_eq!(reading.counts().per_kind, counts.per_kind, "{storage:?}");
    }
}

/// A `Write` whose contents the test can look at.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn print_shows_text_and_json_and_passes_entries_on() {
    let entry = write_entry(4, b"hi");
    let text = Shared::default();
    let printing = Printing::new(
        BufferedJournal::new(),
        PrintFormat::Text,
        Box::new(text.clone()),
    );
    printing.write(&entry).unwrap();
    let line = String::from_utf8(text.0.lock().unwrap().clone()).unwrap();
    assert_eq!(line, "FileDescriptorWriteV1 data=\"aGk=\" fd=4 offset=0\n");
    assert_eq!(printing.into_inner().entries(), vec![entry.clone()]);

    let json = Shared::default();
    let bytes = journal_bytes(std::slice::from_ref(&entry));
    let scratch = Scratch::new();
    let mut printing = Printing::new(
        reader_over(Storage::Memory, &scratch, &bytes),
        PrintFormat::Json,
        Box::new(json.clone()),
    );
    assert_eq!(drain(&mut printing), vec![entry.clone()]);
    let printed: serde_json::Value = serde_json::from_slice(&json.0.lock().unwrap()).unwrap();
    assert_eq!(printed, entry.to_json());
}

#[test]
fn recombined_copies_from_one_journal_into_another() {
    let entries = one_of_each(4, 64);
    for storage in STORAGES {
        let scratch = Scratch::new();
        let source = reader_over(storage, &scratch, &journal_bytes(&entries));
        let destination = Journal::in_memory();
        let (tx, rx) = destination.split();
        let mut copier = Recombined::new(tx.clone(), source);
        while let Some(record) = copier.rx.read_next().unwrap() {
            copier.tx.write(&record.entry).unwrap();
        }
        copier.flush().unwrap();
        let mut copy = Journal::recombine(tx, rx);
        copy.restart().unwrap();
        assert_eq!(drain(&mut copy), entries, "{storage:?}");
    }
}

#[test]
fn buffered_journal_holds_entries_and_readers_see_later_writes() {
    let entries = one_of_each(6, 32);
    let journal = BufferedJournal::new();
    let mut reader = journal.clone();
    for (i, entry) in entries[..5].iter().enumerate() {
        assert_eq!(
            journal.write(entry).unwrap(),
            RecordSpan {
                start: i as u64,
                end: i as u64 + 1
            }
        );
    }
    assert_eq!(drain(&mut reader), entries[..5]);
    for entry in &entries[5..] {
        journal.write(entry).unwrap();
    }
    assert_eq!(drain(&mut reader), entries[5..]);
    reader.rewind();
    assert_eq!(drain(&mut reader), entries);
    assert_eq!(journal.len(), entries.len());
}

#[test]
fn pipe_carries_entries_between_threads_blocking_and_not() {
    let entries = one_of_each(9, 128);
    let (tx, mut rx) = pipe();
    // Non-blocking read on an empty pipe returns at once.
    assert!(rx.read_next().unwrap().is_none());
    assert!(rx
        .read_timeout(Duration::from_millis(10))
        .unwrap()
        .is_none());

    let sent = entries.clone();
    let producer = std::thread::spawn(move || {
        for entry in &sent {
            tx.write(entry).unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let mut received = Vec::new();
    while let Some(record) = rx.read_blocking().unwrap() {
        assert_eq!(record.start, received.len() as u64);
        received.push(record.entry.into_owned());
    }
    producer.join().unwrap();
    assert_eq!(received, entries);

    // Writing to a pipe whose reader is gone is an error, not a silent loss.
    let (tx, rx) = pipe();
    drop(rx);
    assert!(matches!(
        tx.write(&entries[0]).unwrap_err(),
        JournalError::Disconnected { .. }
    ));
}

#[test]
fn transaction_commits_contiguously_and_rolls_back() {
    for storage in STORAGES {
        let scratch = Scratch::new();
        let journal = new_journal(storage, &scratch);
        let (tx, mut rx) = journal.split();
        let transaction = Transaction::new(tx.clone());
        transaction.write(&write_entry(3, b"one")).unwrap();
        transaction.write(&write_entry(3, b"two")).unwrap();
        assert_eq!(transaction.rollback(), 2);
        transaction.write(&write_entry(4, b"three")).unwrap();
        // A direct write lands before the transaction: staged entries are not written yet.
        tx.write(&write_entry(9, b"direct")).unwrap();
        transaction.write(&write_entry(4, b"four")).unwrap();
        let spans = transaction.commit_staged().unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(
            spans[0].end, spans[1].start,
            "committed records are contiguous"
        );
        assert_eq!(transaction.staged(), 0);
        rx.restart().unwrap();
        assert_eq!(
            drain(&mut rx),
            vec![
                write_entry(9, b"direct"),
                write_entry(4, b"three"),
                write_entry(4, b"four")
            ],
            "{storage:?}"
        );
    }
}

#[test]
fn combinators_compose() {
    // Count what a filter lets through, printing it, on a buffered journal.
    let out = Shared::default();
    let journal = Counting::new(Filtered::new(
        Printing::new(
            BufferedJournal::new(),
            PrintFormat::Json,
            Box::new(out.clone()),
        ),
        CategorySet::empty().with(Category::Memory),
    ));
    for entry in one_of_each(12, 16) {
        journal.write(&entry).unwrap();
    }
    let expected = one_of_each(12, 16)
        .into_iter()
        .filter(|e| e.category() != Category::Memory)
        .count();
    assert_eq!(journal.counts().entries() as usize, expected);
    let printed = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(printed.lines().count(), expected);
}
