//! Shared writers, restartable readers, durability modes.
#![allow(clippy::unwrap_used)]

mod common;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use common::*;
use wasnap_journal::{
    Durability, FileDescriptorWriteV1, Journal, JournalEntry, JournalOptions, JournalReader,
    WriteJournal,
};

const THREADS: u32 = 8;
const WRITES_PER_THREAD: u64 = 10_000;

fn payload(thread: u32, i: u64) -> Vec<u8> {
    let len = (i % 97) as usize;
    (0..len)
        .map(|j| (thread as u8).wrapping_mul(31) ^ (i as u8).wrapping_add(j as u8))
        .collect()
}

#[test]
fn eight_threads_of_ten_thousand_writes_all_arrive_intact() {
    for storage in STORAGES {
        let scratch = Scratch::new();
        let journal = new_journal(storage, &scratch);
        let (tx, mut rx) = journal.split();
        let spans: Vec<Vec<(u64, u64)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|thread| {
                    let tx = tx.clone();
                    scope.spawn(move || {
                        (0..WRITES_PER_THREAD)
                            .map(|i| {
                                let entry =
                                    JournalEntry::FileDescriptorWriteV1(FileDescriptorWriteV1 {
                                        fd: thread,
                                        offset: i,
                                        data: Cow::Owned(payload(thread, i)),
                                    });
                                let span = tx.write(&entry).unwrap();
                                (span.start, span.end)
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        tx.flush().unwrap();
        rx.restart().unwrap();

        let mut by_start: HashMap<u64, (u32, u64)> = HashMap::new();
        for (thread, thread_spans) in spans.iter().enumerate() {
            for (i, (start, _)) in thread_spans.iter().enumerate() {
                by_start.insert(*start, (thread as u32, i as u64));
            }
        }
        let mut next_expected = vec![0u64; THREADS as usize];
        let mut count = 0;
        while let Some(record) = rx.read_next().unwrap() {
            let JournalEntry::FileDescriptorWriteV1(write) = &record.entry else {
                panic!("{storage:?}: unexpected entry {:?}", record.entry.kind());
            };
            assert_eq!(
                write.data.as_ref(),
                payload(write.fd, write.offset).as_slice(),
                "{storage:?}"
            );
            // Each thread's records appear in its own program order.
            assert_eq!(
                write.offset, next_expected[write.fd as usize],
                "{storage:?}"
            );
            next_expected[write.fd as usize] += 1;
            // The span `write` returned is where the record really is.
            assert_eq!(
                by_start.get(&record.start),
                Some(&(write.fd, write.offset)),
                "{storage:?}"
            );
            let span = spans[write.fd as usize][write.offset as usize];
            assert_eq!(span, (record.start, record.end));
            count += 1;
        }
        assert_eq!(count, u64::from(THREADS) * WRITES_PER_THREAD, "{storage:?}");
    }
}

#[test]
fn a_restarted_reader_sees_records_appended_after_it_opened() {
    let entries = one_of_each(5, 40);
    for storage in STORAGES {
        let scratch = Scratch::new();
        let journal = new_journal(storage, &scratch);
        let (tx, mut rx) = journal.split();
        for entry in &entries[..10] {
            tx.write(entry).unwrap();
        }
        tx.flush().unwrap();
        rx.restart().unwrap();
        let (first, error) = read_until_error(&mut rx);
        assert!(error.is_none());
        assert_eq!(first, entries[..10]);

        // Appended after the reader reached the end: invisible until restart.
        for entry in &entries[10..] {
            tx.write(entry).unwrap();
        }
        tx.flush().unwrap();
        assert!(rx.read_next().unwrap().is_none(), "{storage:?}");
        rx.restart().unwrap();
        let (rest, error) = read_until_error(&mut rx);
        assert!(error.is_none());
        assert_eq!(rest, entries[10..], "{storage:?}");

        // Rejoined, the halves behave as one journal again.
        let mut journal = Journal::recombine(tx, rx);
        journal.reader().rewind();
        let (all, _) = read_until_error(journal.reader());
        assert_eq!(all, entries);
    }
}

#[test]
fn a_separate_reader_of_the_same_file_follows_a_writer() {
    let scratch = Scratch::new();
    let path = scratch.path("shared.journal");
    let journal = Journal::open(&path, JournalOptions::default()).unwrap();
    let entries = one_of_each(8, 300);
    journal.write(&entries[0]).unwrap();
    journal.commit().unwrap();
    let mut follower = JournalReader::open(&path).unwrap();
    assert_eq!(read_until_error(&mut follower).0, entries[..1]);
    for entry in &entries[1..] {
        journal.write(entry).unwrap();
    }
    journal.commit().unwrap();
    follower.restart().unwrap();
    assert_eq!(read_until_error(&mut follower).0, entries[1..]);
}

#[test]
fn durability_none_keeps_records_in_the_batch_until_flushed() {
    let scratch = Scratch::new();
    let path = scratch.path("none.journal");
    let options = JournalOptions {
        durability: Durability::None,
    };
    let journal = Journal::open(&path, options).unwrap();
    let entry = one_of_each(3, 10).remove(0);
    journal.write(&entry).unwrap();
    journal.commit().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "commit wrote despite Durability::None"
    );
    journal.flush().unwrap();
    let mut reader = JournalReader::open(&path).unwrap();
    assert_eq!(read_until_error(&mut reader).0, vec![entry.clone()]);
    // Dropping the last handle flushes, too.
    journal.write(&entry).unwrap();
    drop(journal);
    let mut reader = JournalReader::open(&path).unwrap();
    assert_eq!(read_until_error(&mut reader).0, vec![entry.clone(), entry]);
}

#[test]
fn every_durability_mode_makes_committed_records_readable() {
    let modes = [
        Durability::Flush,
        Durability::Fsync,
        Durability::GroupCommit(Duration::from_millis(2)),
    ];
    for durability in modes {
        let scratch = Scratch::new();
        let path = scratch.path("durable.journal");
        let journal = Journal::open(&path, JournalOptions { durability }).unwrap();
        let (tx, _rx) = journal.split();
        // Several committers at once: group commit must release every one.
        std::thread::scope(|scope| {
            for thread in 0..4u32 {
                let tx = tx.clone();
                scope.spawn(move || {
                    for i in 0..25u64 {
                        let entry = JournalEntry::FileDescriptorWriteV1(FileDescriptorWriteV1 {
                            fd: thread,
                            offset: i,
                            data: Cow::Owned(payload(thread, i)),
                        });
                        tx.write(&entry).unwrap();
                        tx.commit().unwrap();
                    }
                });
            }
        });
        // Read by a fresh reader: commit alone must have put them in the file.
        let mut reader = JournalReader::open(&path).unwrap();
        let (read, error) = read_until_error(&mut reader);
        assert!(error.is_none(), "{durability:?}: {error:?}");
        assert_eq!(read.len(), 100, "{durability:?}");
    }
}

#[test]
fn writer_handles_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<wasnap_journal::JournalWriter>();
    fn assert_send<T: Send>() {}
    assert_send::<wasnap_journal::JournalReader>();
    assert_send::<Journal>();
}
