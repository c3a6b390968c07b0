//! Bad bytes: truncation at every offset, every single-byte flip, wrong magic,
//! newer versions, unknown tags, corrupted sizes, torn tails and recovery.
//! Each scenario runs on a file and on an in-memory buffer.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use tracing_test::traced_test;
use wasnap_journal::{
    JournalEntry, JournalError, ReadErrorKind, ReadJournal, Recovery, TailDamage, WriteJournal,
    FORMAT_VERSION, MAGIC,
};

/// A small journal of mixed entries (a few hundred bytes each at most).
fn mixed_entries() -> Vec<JournalEntry<'static>> {
    one_of_each(11, 24).into_iter().step_by(4).collect()
}

/// Builds one record by hand, following docs/format.md.
fn raw_record(tag: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = (u64::from(tag) | ((payload.len() as u64) << 16))
        .to_le_bytes()
        .to_vec();
    out.extend_from_slice(payload);
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out
}

#[test]
fn truncation_at_every_offset_yields_exactly_the_complete_records() {
    let entries = mixed_entries();
    let bytes = journal_bytes(&entries);
    let ends = record_ends(&bytes);
    assert_eq!(ends.len(), entries.len());
    for storage in STORAGES {
        let scratch = Scratch::new();
        for cut in 0..=bytes.len() {
            let complete = ends.iter().filter(|&&end| end <= cut as u64).count();
            let clean_cut =
                cut == 0 || ends.contains(&(cut as u64)) || cut == first_record_start(&bytes);

            let mut strict = reader_over(storage, &scratch, &bytes[..cut]);
            let (read, error) = read_until_error(&mut strict);
            assert_eq!(read, entries[..complete], "{storage:?} cut at {cut}");
            match error {
                None => assert!(clean_cut, "{storage:?}: cut at {cut} went unnoticed"),
                Some(e) => {
                    assert!(!clean_cut, "{storage:?}: clean cut at {cut} reported {e}");
                    assert!(e.is_torn_tail(), "{storage:?}: cut at {cut}: {e}");
                }
            }

            let mut tolerant = reader_over(storage, &scratch, &bytes[..cut])
                .with_recovery(Recovery::StopAtTornTail);
            let (read, error) = read_until_error(&mut tolerant);
            assert!(
                error.is_none(),
                "{storage:?}: tolerant read of cut {cut}: {error:?}"
            );
            assert_eq!(
                read,
                entries[..complete],
                "{storage:?} tolerant cut at {cut}"
            );
            assert_eq!(tolerant.torn_tail().is_some(), !clean_cut);
        }
    }
}

/// Offset of the first entry record: magic plus header record.
fn first_record_start(bytes: &[u8]) -> usize {
    let header = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let size = (header >> 16) as usize;
    8 + 8 + size.div_ceil(8) * 8 + 8
}

#[test]
fn every_single_byte_flip_is_detected() {
    let entries = mixed_entries();
    let bytes = journal_bytes(&entries);
    for storage in STORAGES {
        let scratch = Scratch::new();
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                let mut reader = reader_over(storage, &scratch, &damaged);
                let (read, error) = read_until_error(&mut reader);
                assert!(
                    error.is_some(),
                    "{storage:?}: flip {flip:#x} at {at} went undetected"
                );
                assert_eq!(
                    read,
                    entries[..read.len()],
                    "{storage:?}: flip at {at} yielded a wrong entry"
                );
            }
        }
    }
}

#[test]
fn not_a_journal_is_bad_magic_at_offset_zero() {
    for storage in STORAGES {
        let scratch = Scratch::new();
        let mut reader = reader_over(storage, &scratch, b"#!/bin/sh\necho not a journal\n");
        let error = reader.read_next().unwrap_err();
        assert_eq!((error.offset, &error.kind), (0, &ReadErrorKind::BadMagic));
        assert!(
            error.to_string().contains("not a wasnap journal"),
            "{error}"
        );
        if storage == Storage::File {
            assert!(
                error.journal.ends_with("reader.journal"),
                "the error names the file: {error}"
            );
        }
    }
}

#[test]
fn a_newer_format_version_is_refused_with_both_versions_named() {
    let mut bytes = MAGIC.to_vec();
    let mut header = (FORMAT_VERSION + 1).to_le_bytes().to_vec();
    header.extend_from_slice(&[0; 4]);
    bytes.extend(raw_record(0, &header));
    for storage in STORAGES {
        let scratch = Scratch::new();
        let error = reader_over(storage, &scratch, &bytes)
            .read_next()
            .unwrap_err();
        assert_eq!(error.offset, 8);
        assert_eq!(
            error.kind,
            ReadErrorKind::UnsupportedVersion {
                found: FORMAT_VERSION + 1,
                supported: FORMAT_VERSION
            }
        );
        // And a journal that cannot be read is never appended to.
        let refused = journal_over(storage, &scratch, &bytes).unwrap_err();
        assert!(
            matches!(refused, JournalError::Read(ref e) if matches!(e.kind, ReadErrorKind::UnsupportedVersion { .. }))
        );
    }
}

#[test]
fn an_intact_record_with_an_unknown_tag_is_reported_with_its_offset() {
    let mut bytes = journal_bytes(&mixed_entries()[..2]);
    let offset = bytes.len() as u64;
    bytes.extend(raw_record(0x0FFF, &[1, 2, 3, 4, 5, 6, 7, 8]));
    for storage in STORAGES {
        let scratch = Scratch::new();
        let mut reader = reader_over(storage, &scratch, &bytes);
        let (read, error) = read_until_error(&mut reader);
        assert_eq!(read.len(), 2);
        let error = error.unwrap();
        assert_eq!(
            (error.offset, error.kind),
            (offset, ReadErrorKind::UnknownTag { tag: 0x0FFF })
        );
    }
}

#[test]
fn an_intact_record_whose_payload_fails_validation_is_reported() {
    let mut bytes = journal_bytes(&[]);
    let offset = bytes.len() as u64;
    // A FileDescriptorWriteV1 (tag 103) payload whose data pointer points far away.
    bytes.extend(raw_record(103, &[0xFF; 24]));
    for storage in STORAGES {
        let scratch = Scratch::new();
        let error = reader_over(storage, &scratch, &bytes)
            .read_next()
            .unwrap_err();
        assert_eq!(error.offset, offset);
        assert!(
            matches!(
                error.kind,
                ReadErrorKind::InvalidPayload {
                    kind: "FileDescriptorWriteV1",
                    ..
                }
            ),
            "{error}"
        );
    }
}

#[test]
fn a_corrupted_size_in_the_middle_is_size_past_end_not_a_torn_tail() {
    let entries = mixed_entries();
    let bytes = journal_bytes(&entries);
    let ends = record_ends(&bytes);
    let victim = ends[1] as usize; // start of the third record
    let mut damaged = bytes.clone();
    damaged[victim + 6] = 0x7F; // a huge size
    for storage in STORAGES {
        let scratch = Scratch::new();
        let mut reader = reader_over(storage, &scratch, &damaged);
        let (read, error) = read_until_error(&mut reader);
        assert_eq!(read, entries[..2]);
        let error = error.unwrap();
        assert_eq!(error.offset, victim as u64);
        assert!(
            matches!(error.kind, ReadErrorKind::SizePastEnd { .. }),
            "{error}"
        );
        // Tolerant mode does not hide corruption in the middle.
        let mut tolerant =
            reader_over(storage, &scratch, &damaged).with_recovery(Recovery::StopAtTornTail);
        assert!(read_until_error(&mut tolerant).1.is_some());
    }
}

#[test]
fn concatenated_journals_read_as_one() {
    let entries = mixed_entries();
    let (first, second) = entries.split_at(5);
    let mut bytes = journal_bytes(first);
    bytes.extend(journal_bytes(second));
    for storage in STORAGES {
        let scratch = Scratch::new();
        let (read, error) = read_until_error(&mut reader_over(storage, &scratch, &bytes));
        assert!(error.is_none(), "{error:?}");
        assert_eq!(read, entries);
    }
}

#[traced_test]
#[test]
fn torn_tail_is_truncated_on_reopen_and_appending_continues() {
    let entries = mixed_entries();
    let bytes = journal_bytes(&entries);
    let ends = record_ends(&bytes);
    // Cut in the middle of the last record.
    let cut = (ends[ends.len() - 2] as usize + bytes.len()) / 2;
    let extra = one_of_each(99, 100);
    for storage in STORAGES {
        let scratch = Scratch::new();
        let mut journal = journal_over(storage, &scratch, &bytes[..cut]).unwrap();
        for entry in &extra[..3] {
            journal.write(entry).unwrap();
        }
        journal.flush().unwrap();
        journal.restart().unwrap();
        let (read, error) = read_until_error(journal.reader());
        assert!(error.is_none(), "{storage:?}: {error:?}");
        let mut expected = entries[..entries.len() - 1].to_vec();
        expected.extend_from_slice(&extra[..3]);
        assert_eq!(read, expected, "{storage:?}");
        if storage == Storage::File {
            // The file on disk, reopened cold, agrees.
            let on_disk = std::fs::read(scratch.path("journal.journal")).unwrap();
            let (read, error) =
                read_until_error(&mut reader_over(Storage::Memory, &scratch, &on_disk));
            assert!(error.is_none());
            assert_eq!(read, expected);
        }
    }
    assert!(logs_contain("truncating the torn tail of the journal"));
    assert!(logs_contain(&format!("offset={}", ends[ends.len() - 2])));
}

#[test]
fn a_journal_torn_inside_its_magic_starts_over() {
    for storage in STORAGES {
        let scratch = Scratch::new();
        let mut journal = journal_over(storage, &scratch, &MAGIC[..5]).unwrap();
        let entry = mixed_entries().remove(0);
        journal.write(&entry).unwrap();
        journal.flush().unwrap();
        journal.restart().unwrap();
        let (read, error) = read_until_error(journal.reader());
        assert!(error.is_none(), "{error:?}");
        assert_eq!(read, vec![entry]);
    }
}

#[test]
fn corruption_in_the_middle_refuses_the_open_and_leaves_the_file_alone() {
    let bytes = journal_bytes(&mixed_entries());
    let ends = record_ends(&bytes);
    let mut damaged = bytes.clone();
    damaged[ends[1] as usize + 9] ^= 0x40;
    for storage in STORAGES {
        let scratch = Scratch::new();
        let error = journal_over(storage, &scratch, &damaged).unwrap_err();
        match &error {
            JournalError::Read(e) => {
                assert_eq!(e.offset, ends[1]);
                assert!(matches!(e.kind, ReadErrorKind::CrcMismatch { .. }), "{e}");
            }
            other => panic!("unexpected error {other}"),
        }
        if storage == Storage::File {
            assert!(error.to_string().contains("journal.journal"), "{error}");
            assert_eq!(
                std::fs::read(scratch.path("journal.journal")).unwrap(),
                damaged
            );
        }
    }
}

#[test]
fn a_zeroed_tail_from_a_lost_write_is_a_torn_tail() {
    let mut bytes = journal_bytes(&mixed_entries());
    bytes.extend_from_slice(&[0; 4096]);
    for storage in STORAGES {
        let scratch = Scratch::new();
        let error = read_until_error(&mut reader_over(storage, &scratch, &bytes))
            .1
            .unwrap();
        assert_eq!(
            error.kind,
            ReadErrorKind::TornTail {
                cause: TailDamage::ZeroHeader
            }
        );
    }
}

#[test]
fn a_failing_disk_poisons_the_writer_instead_of_leaving_a_hole() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let Ok(journal) = wasnap_journal::Journal::open("/dev/full", Default::default()) else {
        return;
    };
    let entry = mixed_entries().remove(0);
    journal.write(&entry).unwrap();
    let first = journal.flush().unwrap_err();
    assert!(first.to_string().contains("/dev/full"), "{first}");
    let second = journal.write(&entry).unwrap_err();
    assert!(matches!(second, JournalError::Poisoned { .. }), "{second}");
}

/// A journal of small records, then one large write record torn in its
/// payload, which holds `payload` (cut to `keep` bytes).
fn torn_write_over(payload: &[u8], keep: usize) -> (Vec<JournalEntry<'static>>, Vec<u8>) {
    let entries = mixed_entries();
    let mut bytes = journal_bytes(&entries);
    let big: JournalEntry<'static> = wasnap_journal::FileDescriptorWriteV1 {
        fd: 7,
        offset: 0,
        data: payload.to_vec().into(),
    }
    .into();
    let whole = journal_bytes(&[big]);
    // The record after the magic and header record of that one-entry journal.
    let header_end = MAGIC.len() + 24;
    let record = &whole[header_end..];
    bytes.extend_from_slice(&record[..keep.min(record.len() - 1)]);
    (entries, bytes)
}

#[test]
fn a_torn_record_whose_payload_is_a_journal_is_a_torn_tail() {
    // A guest copying a journal file: the torn payload is full of records
    // that check out. They are inside the torn record, and do not count.
    let inner = journal_bytes(&one_of_each(5, 200));
    let (entries, bytes) = torn_write_over(&inner, inner.len() / 2);
    for storage in STORAGES {
        let scratch = Scratch::new();
        let (read, error) = read_until_error(&mut reader_over(storage, &scratch, &bytes));
        assert_eq!(read, entries, "{storage:?}");
        let error = error.unwrap();
        assert!(error.is_torn_tail(), "{storage:?}: {error}");
        // And the journal reopens for appending.
        let journal = journal_over(storage, &scratch, &bytes);
        assert!(journal.is_ok(), "{storage:?}: {:?}", journal.err());
    }
}

#[test]
fn a_torn_record_of_sixteen_mebibytes_is_a_torn_tail() {
    let data: Vec<u8> = (0..16 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (entries, bytes) = torn_write_over(&data, 12 << 20);
    let scratch = Scratch::new();
    let (read, error) = read_until_error(&mut reader_over(Storage::Memory, &scratch, &bytes));
    assert_eq!(read, entries);
    assert!(error.unwrap().is_torn_tail());
    // Zeros (a payload of zero pages) too.
    let (_, zeros) = torn_write_over(&vec![0u8; 16 << 20], 12 << 20);
    let (_, error) = read_until_error(&mut reader_over(Storage::Memory, &scratch, &zeros));
    assert!(error.unwrap().is_torn_tail());
}

#[test]
fn a_flipped_byte_in_the_last_record_is_damage_not_a_torn_tail() {
    // The last record is often a snapshot marker: treating its damage as a
    // torn tail would silently drop the snapshot and restart the program.
    let entries = mixed_entries();
    let bytes = journal_bytes(&entries);
    let ends = record_ends(&bytes);
    let last = ends[ends.len() - 2] as usize;
    for at in [last + 9, bytes.len() - 9] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        for storage in STORAGES {
            let scratch = Scratch::new();
            let (read, error) = read_until_error(
                &mut reader_over(storage, &scratch, &damaged)
                    .with_recovery(Recovery::StopAtTornTail),
            );
            assert_eq!(read, entries[..entries.len() - 1], "{storage:?}");
            let error = error.unwrap();
            assert_eq!(error.offset, last as u64);
            assert!(
                matches!(error.kind, ReadErrorKind::CrcMismatch { .. }),
                "{storage:?} at {at}: {error}"
            );
        }
    }
    // A last record whose final pages never reached the disk (zeros from
    // the trailer on) is a torn tail.
    let mut lost = bytes.clone();
    let len = lost.len();
    lost[len - 8..].fill(0);
    let scratch = Scratch::new();
    let (_, error) = read_until_error(&mut reader_over(Storage::Memory, &scratch, &lost));
    assert!(error.unwrap().is_torn_tail());
}

/// A second pass does not verify checksums again, but only for records a
/// pass read in order from the start: records skipped by a seek are
/// verified when they are first read.
#[test]
fn checksums_skipped_by_a_seek_are_verified_after_a_rewind() {
    let entries = mixed_entries();
    let bytes = journal_bytes(&entries);
    let ends = record_ends(&bytes);
    for storage in STORAGES {
        let scratch = Scratch::new();
        // Damage the payload of the first entry record (after the header).
        let first = first_record_start(&bytes);
        let mut damaged = bytes.clone();
        damaged[first + 9] ^= 0x10;
        let mut reader = reader_over(storage, &scratch, &damaged);
        // Start reading after it: the later records are fine.
        let second = *ends.iter().find(|&&e| e as usize > first).unwrap();
        reader.seek(second);
        assert!(reader.read_next().unwrap().is_some());
        reader.rewind();
        let (read, error) = read_until_error(&mut reader);
        assert!(read.is_empty(), "{storage:?}");
        assert!(
            matches!(
                error.map(|e| e.kind),
                Some(ReadErrorKind::CrcMismatch { .. })
            ),
            "{storage:?}: the damaged record was not checked"
        );
        // And an intact journal read twice gives the same entries.
        let mut reader = reader_over(storage, &scratch, &bytes);
        let once = read_until_error(&mut reader);
        reader.rewind();
        let twice = read_until_error(&mut reader);
        assert_eq!(once.0, entries);
        assert_eq!(twice.0, entries);
    }
}

/// Readers verify checksums ahead of the cursor, three records at a time:
/// damage anywhere in a long run of small records (first, middle and last
/// of a group of three, the last record of a run checked together, the
/// journal's last record) still stops the reader at exactly that record,
/// after every record before it, and a rewind reads the same again.
#[test]
fn damage_inside_a_run_checked_ahead_stops_at_that_record() {
    let entries: Vec<JournalEntry<'static>> = (0..200u64)
        .map(|i| {
            wasnap_journal::FileDescriptorWriteV1 {
                fd: 3,
                offset: i * 64,
                data: std::borrow::Cow::Owned(vec![i as u8; 64]),
            }
            .into()
        })
        .collect();
    let bytes = journal_bytes(&entries);
    let ends = record_ends(&bytes);
    let starts: Vec<u64> = std::iter::once(first_record_start(&bytes) as u64)
        .chain(ends.iter().copied())
        .collect();
    for storage in STORAGES {
        let scratch = Scratch::new();
        for damaged_index in [0usize, 1, 2, 3, 46, 47, 48, 100, 199] {
            let mut damaged = bytes.clone();
            damaged[starts[damaged_index] as usize + 20] ^= 0x04;
            let mut reader = reader_over(storage, &scratch, &damaged);
            for pass in 0..2 {
                let (read, error) = read_until_error(&mut reader);
                assert_eq!(read, entries[..damaged_index], "{storage:?} pass {pass}");
                let error = error.expect("the damage is found");
                assert!(
                    matches!(error.kind, ReadErrorKind::CrcMismatch { .. }),
                    "{storage:?}: {error}"
                );
                assert_eq!(
                    error.offset, starts[damaged_index],
                    "{storage:?} pass {pass}"
                );
                reader.rewind();
            }
        }
    }
}

/// A seek to an offset that is not a record boundary, inside records already
/// verified, reads an error, never an entry: checksums are skipped only along
/// the boundaries they were verified through. Here each record's data holds
/// a whole record with a wrong checksum, which only its checksum gives away.
#[test]
fn a_seek_off_the_boundaries_of_verified_records_is_an_error() {
    let one = journal_bytes(&[wasnap_journal::CloseFileDescriptorV1 { fd: 9 }.into()]);
    let mut inner = one[first_record_start(&one)..].to_vec();
    let crc_at = inner.len() - 8;
    inner[crc_at] ^= 0xff;
    let entries: Vec<JournalEntry<'static>> = (0..40u64)
        .map(|i| {
            wasnap_journal::FileDescriptorWriteV1 {
                fd: 3,
                offset: i,
                data: std::borrow::Cow::Owned(inner.clone()),
            }
            .into()
        })
        .collect();
    let bytes = journal_bytes(&entries);
    let ends = record_ends(&bytes);
    let boundaries: std::collections::HashSet<u64> = ends.iter().copied().collect();
    for storage in STORAGES {
        let scratch = Scratch::new();
        let mut reader = reader_over(storage, &scratch, &bytes);
        let (all, error) = read_until_error(&mut reader);
        assert_eq!((all.len(), error.map(|e| e.to_string())), (40, None));
        let mut tried = 0;
        for offset in (ends[0]..*ends.last().unwrap()).step_by(8) {
            if boundaries.contains(&offset) {
                continue;
            }
            tried += 1;
            reader.seek(offset);
            if let Ok(record) = reader.read_next() {
                panic!(
                    "{storage:?}: a seek to {offset} read {:?}",
                    record.map(|r| r.entry.into_owned())
                );
            }
        }
        assert!(tried > 100, "{tried}");
    }
}
