//! Detached writes: records reserved at the journal's end and written by
//! someone else (a forked child, in the runtime) while the writer goes on.
#![allow(clippy::unwrap_used)]

mod common;

use std::borrow::Cow;
use std::time::Duration;

use common::*;
use wasnap_journal::memory::stored_region;
use wasnap_journal::{
    FileDescriptorWriteV1, Journal, JournalEntry, JournalOptions, JournalReader, SnapshotV1,
};

fn small(fd: u32, i: u64) -> JournalEntry<'static> {
    JournalEntry::FileDescriptorWriteV1(FileDescriptorWriteV1 {
        fd,
        offset: i,
        data: Cow::Owned(i.to_le_bytes().to_vec()),
    })
}

/// A snapshot-like run: a small record, two large regions (one mappable,
/// one not), a marker.
fn snapshot_entries(memory: &[u8]) -> Vec<JournalEntry<'_>> {
    vec![
        small(5, 1),
        JournalEntry::UpdateMemoryRegionV1(stored_region(0, Cow::Borrowed(&memory[..1 << 20]))),
        JournalEntry::UpdateMemoryRegionV1(stored_region(
            (1 << 20) + 8,
            Cow::Borrowed(&memory[(1 << 20) + 8..(3 << 20) + 8]),
        )),
        JournalEntry::SnapshotV1(SnapshotV1 {
            since_epoch_ns: 7,
            trigger: 0,
        }),
    ]
}

fn memory() -> Vec<u8> {
    (0..(4u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

fn all_entries(path: &std::path::Path) -> Vec<(u64, JournalEntry<'static>)> {
    let mut reader = JournalReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(record) = reader.read_next().unwrap() {
        out.push((record.start, record.entry.into_owned()));
    }
    out
}

#[test]
fn records_written_after_a_detached_write_land_after_it_and_wait_for_it() {
    let scratch = Scratch::new();
    let path = scratch.path("j");
    let journal = Journal::open(&path, JournalOptions::default()).unwrap();
    let writer = journal.writer().clone();
    writer.write(&small(1, 0)).unwrap();
    let memory = memory();
    let entries = snapshot_entries(&memory);
    let (mut detached, ticket) = writer.detach_write(&entries).unwrap().unwrap();
    let span = detached.span();
    assert_eq!(ticket.span(), span);
    let reserved_at = std::fs::metadata(&path).unwrap().len();
    assert_eq!(span.start, reserved_at, "reserved at the journal's end");
    assert!(span.end - span.start > 1 << 20);

    // The writer takes records at once; they are placed after the
    // reservation, and a flush waits for the detached bytes.
    let after = writer.write(&small(2, 0)).unwrap();
    assert_eq!(after.start, span.end);
    // A large record (one the writer would write straight from the
    // caller's buffer) is buffered too: it does not wait either.
    let large = {
        let writer = writer.clone();
        std::thread::spawn(move || {
            let entry = JournalEntry::FileDescriptorWriteV1(FileDescriptorWriteV1 {
                fd: 4,
                offset: 0,
                data: Cow::Owned(vec![0xa5; 1 << 20]),
            });
            writer.write(&entry).unwrap()
        })
    };
    for _ in 0..200 {
        if large.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        large.is_finished(),
        "a large write waited for the detached one"
    );
    assert!(large.join().unwrap().start > span.end);
    let flusher = {
        let writer = writer.clone();
        std::thread::spawn(move || {
            // More than a batch: the writer has to hand records to the file.
            for i in 0..20_000 {
                writer.write(&small(3, i)).unwrap();
            }
            writer.flush().unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !flusher.is_finished(),
        "the flush waited for the detached write"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        reserved_at,
        "nothing was written behind the reservation"
    );
    detached.write_out().unwrap();
    ticket.finish(Ok(()));
    flusher.join().unwrap();
    drop(journal);
    drop(writer);

    let read = all_entries(&path);
    // The record buffered before the detached write went first, in it.
    let mut want = vec![small(1, 0)];
    want.extend(snapshot_entries(&memory));
    let got: Vec<_> = read
        .iter()
        .filter(|(start, e)| *start >= span.start && e.kind().name() != "PaddingV1")
        .take(want.len())
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(got.len(), want.len());
    for (got, want) in got.iter().zip(&want) {
        assert!(got == want, "{} differs", want.kind().name());
    }
    assert_eq!(read.last().unwrap().1, small(3, 19_999));
}

#[test]
fn a_failed_detached_write_poisons_the_writer_and_leaves_a_torn_tail_the_next_open_cuts() {
    let scratch = Scratch::new();
    let path = scratch.path("j");
    let journal = Journal::open(&path, JournalOptions::default()).unwrap();
    let writer = journal.writer().clone();
    writer.write(&small(1, 0)).unwrap();
    writer.flush().unwrap();
    let memory = memory();
    let entries = snapshot_entries(&memory);
    let (mut detached, ticket) = writer.detach_write(&entries).unwrap().unwrap();
    // Half of it reaches the file, then the write of it fails.
    let span = detached.span();
    detached.write_out().unwrap();
    // (Its handle shares the writer's open file, and with it the lock.)
    drop(detached);
    let cut = span.start + (span.end - span.start) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    ticket.finish(Err(std::io::Error::from_raw_os_error(28)));
    writer.write(&small(2, 0)).unwrap();
    let error = writer.flush().unwrap_err().to_string();
    assert!(error.contains("were not written"), "{error}");
    assert!(error.contains(&format!("offset {}", span.start)), "{error}");
    drop(journal);
    drop(writer);

    let reopened = Journal::open(&path, JournalOptions::default()).unwrap();
    drop(reopened);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(
        len >= span.start && len < cut,
        "the torn record was cut: {len}"
    );
    let read = all_entries(&path);
    assert!(
        read.iter()
            .all(|(_, e)| e.kind().name() != "SnapshotV1"
                && e.kind().name() != "UpdateMemoryRegionV1")
    );
    assert!(read.iter().any(|(_, e)| *e == small(1, 0)));
}

#[test]
fn an_abandoned_ticket_poisons_the_writer() {
    let scratch = Scratch::new();
    let path = scratch.path("j");
    let journal = Journal::open(&path, JournalOptions::default()).unwrap();
    let writer = journal.writer().clone();
    let memory = memory();
    let entries = snapshot_entries(&memory);
    let (detached, ticket) = writer.detach_write(&entries).unwrap().unwrap();
    drop(detached);
    drop(ticket);
    writer.write(&small(2, 0)).unwrap();
    let error = writer.flush().unwrap_err().to_string();
    assert!(error.contains("abandoned"), "{error}");
}

#[test]
fn a_journal_in_memory_has_no_detached_writes() {
    let journal = Journal::in_memory();
    let memory = memory();
    let entries = snapshot_entries(&memory);
    assert!(journal.writer().detach_write(&entries).unwrap().is_none());
}

#[test]
fn a_second_detached_write_is_placed_after_an_earlier_one_still_out() {
    let scratch = Scratch::new();
    let path = scratch.path("j");
    let journal = Journal::open(&path, JournalOptions::default()).unwrap();
    let writer = journal.writer().clone();
    let memory = memory();
    let first = snapshot_entries(&memory[..(3 << 20) + 8]);
    let (mut write_a, ticket_a) = writer.detach_write(&first).unwrap().unwrap();
    writer.write(&small(7, 7)).unwrap();
    let second = vec![
        small(8, 8),
        JournalEntry::UpdateMemoryRegionV1(stored_region(
            1 << 20,
            Cow::Borrowed(&memory[1 << 20..2 << 20]),
        )),
    ];
    // Not blocked by the first, which nobody has written yet.
    let (mut write_b, ticket_b) = writer.detach_write(&second).unwrap().unwrap();
    assert!(writer.detached_out());
    assert_eq!(write_b.span().start, write_a.span().end);
    // The second's ticket reports only after the first's.
    let b_reported = std::thread::spawn(move || ticket_b.finish(Ok(())));
    write_a.write_out().unwrap();
    write_b.write_out().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!b_reported.is_finished(), "waits for the earlier ticket");
    assert!(writer.detached_out());
    ticket_a.finish(Ok(()));
    b_reported.join().unwrap();
    assert!(!writer.detached_out());
    writer.write(&small(9, 9)).unwrap();
    writer.flush().unwrap();
    drop((write_a, write_b, journal, writer));
    let names: Vec<String> = all_entries(&path)
        .into_iter()
        .filter(|(_, e)| e.kind().name() != "PaddingV1")
        .map(|(_, e)| match e {
            JournalEntry::FileDescriptorWriteV1(w) => format!("w{}", w.fd),
            other => other.kind().name().to_owned(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "w5",
            "UpdateMemoryRegionV1",
            "UpdateMemoryRegionV1",
            "SnapshotV1",
            "w7",
            "w8",
            "UpdateMemoryRegionV1",
            "w9"
        ]
    );
}
