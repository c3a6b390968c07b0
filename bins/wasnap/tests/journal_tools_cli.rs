//! `wasnap journal export|import|filter|repair|tail|extract`, end to end.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use wasnap_journal::memory::compressed_region;
use wasnap_journal::{
    FileDescriptorWriteV1, Journal, JournalEntry, JournalOptions, JournalReader,
    ResumedFromSnapshotV1, SnapshotV1, UpdateMemoryRegionV1, WriteJournal,
};

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden/v2-all-entries.journal")
}

fn wasnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .args(args)
        .output()
        .unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn entries_of(path: &Path) -> Vec<JournalEntry<'static>> {
    let mut reader = JournalReader::open(path).unwrap();
    reader
        .read_all_owned()
        .unwrap()
        .into_iter()
        .map(|r| r.entry)
        .collect()
}

fn write(fd: u32, offset: u64, data: &str) -> JournalEntry<'static> {
    FileDescriptorWriteV1 {
        fd,
        offset,
        data: Cow::Owned(data.as_bytes().to_vec()),
    }
    .into()
}

fn append(path: &Path, entries: &[JournalEntry<'_>]) {
    let journal = Journal::open(path, JournalOptions::default()).unwrap();
    for entry in entries {
        journal.write(entry).unwrap();
    }
    journal.commit().unwrap();
    drop(journal);
    // The writer lock goes with the last descriptor of the journal's open
    // file, and another test's child holds copies of this process's
    // descriptors between its fork and its exec: wait for that moment to
    // pass before a command here takes the lock.
    let file = std::fs::File::open(path).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while wasnap_journal::lock::lock_for_writing(&file, path).is_err() {
        assert!(std::time::Instant::now() < deadline, "the lock stayed held");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn export_import_export_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    let rebuilt = dir.path().join("rebuilt.journal");
    let second = dir.path().join("second.jsonl");
    assert_eq!(
        wasnap(&["journal", "export", s(&golden()), "-o", s(&first)])
            .status
            .code(),
        Some(0)
    );
    let out = wasnap(&["journal", "import", s(&first), s(&rebuilt)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        wasnap(&["journal", "export", s(&rebuilt), "-o", s(&second)])
            .status
            .code(),
        Some(0)
    );
    let (a, b) = (
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
    );
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_eq!(entries_of(&rebuilt), entries_of(&golden()));
    // Stdout export is the same bytes.
    assert_eq!(wasnap(&["journal", "export", s(&golden())]).stdout, a);
}

#[test]
fn import_names_the_line_of_bytes_that_are_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("latin1.jsonl");
    let good = write(3, 0, "ok").to_json().to_string();
    let mut bytes = format!("{good}\n{good}\n").into_bytes();
    bytes.extend_from_slice(b"{\"type\":\"caf\xe9\"}\n");
    std::fs::write(&input, bytes).unwrap();
    let destination = dir.path().join("out.journal");
    let out = wasnap(&["journal", "import", s(&input), s(&destination)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("latin1.jsonl:3: not UTF-8 (byte 13"),
        "{stderr}"
    );
    assert!(!destination.exists());
}

#[test]
fn import_refuses_a_bad_line_by_number_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.jsonl");
    let good = write(3, 0, "ok").to_json().to_string();
    std::fs::write(
        &input,
        format!("{good}\n{{\"type\":\"CloseFileDescriptorV1\"}}\n"),
    )
    .unwrap();
    let destination = dir.path().join("out.journal");
    let out = wasnap(&["journal", "import", s(&input), s(&destination)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.jsonl:2:") && stderr.contains("\"fd\""),
        "{stderr}"
    );
    assert!(!destination.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files were left behind");
}

#[test]
fn filter_drops_categories_and_guards_its_destination() {
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("filtered.journal");
    let out = wasnap(&[
        "journal",
        "filter",
        s(&golden()),
        s(&destination),
        "--drop",
        "memory",
        "threads",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let kept = entries_of(&destination);
    let expected: Vec<_> = entries_of(&golden())
        .into_iter()
        .filter(|e| {
            !matches!(
                e.category(),
                wasnap_journal::Category::Memory | wasnap_journal::Category::Threads
            )
        })
        .collect();
    assert_eq!(kept, expected);
    assert!(text(&out.stderr).contains(&format!("kept {} of", expected.len())));

    let again = wasnap(&[
        "journal",
        "filter",
        s(&golden()),
        s(&destination),
        "--drop",
        "memory",
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("already exists"));

    let bogus = wasnap(&[
        "journal",
        "filter",
        s(&golden()),
        s(&dir.path().join("x")),
        "--drop",
        "bogus",
    ]);
    assert_eq!(bogus.status.code(), Some(2));
    assert!(text(&bogus.stderr).contains("unknown category \"bogus\""));
    assert!(!dir.path().join("x").exists());

    let missing = wasnap(&[
        "journal",
        "filter",
        s(&dir.path().join("nope")),
        s(&dir.path().join("y")),
        "--drop",
        "memory",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(!dir.path().join("nope").exists() && !dir.path().join("y").exists());
}

#[test]
fn repair_cuts_a_torn_tail_and_refuses_corruption_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(golden()).unwrap();
    let all = entries_of(&golden());

    let torn = dir.path().join("torn.journal");
    std::fs::write(&torn, &bytes[..bytes.len() - 3]).unwrap();
    let out = wasnap(&["journal", "repair", s(&torn)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("torn tail"));
    assert_eq!(
        wasnap(&["journal", "verify", s(&torn)]).status.code(),
        Some(0)
    );
    assert_eq!(entries_of(&torn), all[..all.len() - 1]);
    // Repairing an intact journal changes nothing.
    let before = std::fs::read(&torn).unwrap();
    assert_eq!(
        wasnap(&["journal", "repair", s(&torn)]).status.code(),
        Some(0)
    );
    assert_eq!(std::fs::read(&torn).unwrap(), before);

    let corrupt = dir.path().join("corrupt.journal");
    let mut reader = JournalReader::open(golden()).unwrap();
    let third = reader.read_all_owned().unwrap()[2].start as usize;
    let mut damaged = bytes.clone();
    damaged[third + 9] ^= 0x55;
    std::fs::write(&corrupt, &damaged).unwrap();
    let out = wasnap(&["journal", "repair", s(&corrupt)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--truncate-at-corruption"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&corrupt).unwrap(),
        damaged,
        "refused repair modified the file"
    );
    let out = wasnap(&["journal", "repair", s(&corrupt), "--truncate-at-corruption"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(entries_of(&corrupt), all[..2]);

    let not_journal = dir.path().join("notes.txt");
    std::fs::write(&not_journal, "plain text, long enough to look at").unwrap();
    let out = wasnap(&[
        "journal",
        "repair",
        s(&not_journal),
        "--truncate-at-corruption",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        std::fs::read(&not_journal).unwrap(),
        b"plain text, long enough to look at"
    );
}

fn tail_offsets(path: &Path, watermark: &Path) -> Vec<serde_json::Value> {
    let out = wasnap(&[
        "journal",
        "tail",
        s(path),
        "--json",
        "--watermark",
        s(watermark),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["entry"].clone())
        .collect()
}

#[test]
fn tail_with_a_watermark_neither_repeats_nor_skips_across_appends_and_a_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("live.journal");
    let watermark = dir.path().join("tail.mark");
    let batch = |from: u64, to: u64| {
        (from..to)
            .map(|i| write(3, i, &format!("line {i}")))
            .collect::<Vec<_>>()
    };
    let json_of = |from: u64, to: u64| {
        batch(from, to)
            .iter()
            .map(JournalEntry::to_json)
            .collect::<Vec<_>>()
    };

    append(&journal, &batch(0, 5));
    let seen = tail_offsets(&journal, &watermark);
    assert_eq!(seen, json_of(0, 5));

    append(&journal, &batch(5, 8));
    let seen = tail_offsets(&journal, &watermark);
    assert_eq!(seen, json_of(5, 8));

    // Replace the file the way compaction does (a new file renamed over the
    // old one), keeping the records the tail has seen, then append more.
    let replacement = dir.path().join("replacement.journal");
    append(&replacement, &batch(3, 8));
    std::fs::rename(&replacement, &journal).unwrap();
    append(&journal, &batch(8, 10));
    let seen = tail_offsets(&journal, &watermark);
    assert_eq!(seen, json_of(8, 10));

    // Nothing new: nothing printed.
    assert!(tail_offsets(&journal, &watermark).is_empty());
}

#[test]
fn tail_follow_prints_records_as_they_are_appended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("follow.journal");
    append(&path, &[write(3, 0, "first")]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .args([
            "journal",
            "tail",
            s(&path),
            "--follow",
            "--json",
            "--interval",
            "20",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Lines arrive through a channel so that a silent tail fails the test
    // instead of hanging it.
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut next_line = || {
        let line = receiver.recv_timeout(Duration::from_secs(20));
        if line.is_err() {
            let _ = child.kill();
        }
        line.expect("tail printed nothing within 20 s")
    };
    assert!(next_line().contains("Zmlyc3Q="), "first record"); // base64("first")
    let writer = Journal::open(&path, JournalOptions::default()).unwrap();
    for i in 1..4u64 {
        writer.write(&write(3, i, "more")).unwrap();
        writer.commit().unwrap();
        let line = next_line();
        assert!(line.contains(&format!("\"offset\":{i}")), "{line}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn tail_follow_survives_writer_restarts_that_cut_torn_tails() {
    // Each round a writer opens the journal (cutting the torn tail the last
    // round left, so the file shrinks under the follower), appends, and
    // leaves a torn record behind. At 1 ms polling a mapped reader would die
    // of SIGBUS; this one must print every record once, in order.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restarts.journal");
    append(&path, &[write(3, 0, "r0")]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .args([
            "journal",
            "tail",
            s(&path),
            "--follow",
            "--json",
            "--interval",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let rounds = 80u64;
    let per_round = 10u64;
    let mut offset = 1u64;
    for _ in 0..rounds {
        let batch: Vec<_> = (offset..offset + per_round)
            .map(|i| write(3, i, "row"))
            .collect();
        append(&path, &batch);
        offset += per_round;
        // A torn record: an intact header and part of its payload.
        let torn = journal_bytes_of(&write(3, 999_999, &"x".repeat(4000)));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, &torn[..torn.len() / 2]).unwrap();
        drop(file);
        std::thread::sleep(Duration::from_millis(2));
    }
    append(&path, &[write(3, offset, "last")]);
    let mut seen = Vec::new();
    while seen.len() as u64 <= offset {
        match receiver.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                let value: serde_json::Value = serde_json::from_str(&line).unwrap();
                seen.push(value["entry"]["offset"].as_u64().unwrap());
            }
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the follower stopped after {} records ({}): {}",
                    seen.len(),
                    out.status,
                    text(&out.stderr)
                );
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        seen,
        (0..=offset).collect::<Vec<_>>(),
        "records repeated or skipped"
    );
}

/// The bytes of one record for `entry` (as a journal would append it).
fn journal_bytes_of(entry: &JournalEntry<'_>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.journal");
    append(&path, std::slice::from_ref(entry));
    let bytes = std::fs::read(&path).unwrap();
    // After the magic (8) and the header record (24).
    bytes[32..].to_vec()
}

#[test]
fn extract_memory_rebuilds_the_image_at_each_snapshot_and_follows_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.journal");
    let region = |start: u64, byte: u8, len: usize| -> JournalEntry<'static> {
        compressed_region(start, &vec![byte; len]).into()
    };
    let snapshot = |trigger: u8| -> JournalEntry<'static> {
        SnapshotV1 {
            since_epoch_ns: 1,
            trigger,
        }
        .into()
    };
    let journal = Journal::open(&path, JournalOptions::default()).unwrap();
    journal.write(&region(0, 0xAA, 4096)).unwrap();
    let raw: JournalEntry<'static> = UpdateMemoryRegionV1 {
        start: 100,
        end: 104,
        compression: 0,
        data: Cow::Owned(vec![1, 2, 3, 4]),
    }
    .into();
    journal.write(&raw).unwrap();
    let first_snapshot = journal.write(&snapshot(1)).unwrap();
    // A timeline that is later abandoned: this write must not survive.
    journal.write(&region(0, 0xEE, 16)).unwrap();
    journal
        .write(
            &ResumedFromSnapshotV1 {
                snapshot_offset: first_snapshot.start,
            }
            .into(),
        )
        .unwrap();
    journal.write(&region(8192, 0xBB, 10)).unwrap();
    journal.write(&snapshot(4)).unwrap();
    journal.commit().unwrap();
    drop(journal);

    let first = dir.path().join("first.bin");
    let out = wasnap(&[
        "journal",
        "extract",
        "memory",
        s(&path),
        s(&first),
        "--snapshot",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut expected = vec![0xAA; 4096];
    expected[100..104].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(std::fs::read(&first).unwrap(), expected);

    let last = dir.path().join("last.bin");
    assert_eq!(
        wasnap(&["journal", "extract", "memory", s(&path), s(&last)])
            .status
            .code(),
        Some(0)
    );
    expected.resize(8192, 0);
    expected.extend_from_slice(&[0xBB; 10]);
    assert_eq!(std::fs::read(&last).unwrap(), expected);

    let out = wasnap(&[
        "journal",
        "extract",
        "memory",
        s(&path),
        s(&dir.path().join("x.bin")),
        "--snapshot",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("has 2 snapshot(s)"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("x.bin").exists());
}

fn summary_of(path: &Path) -> wasnap_journal::state::Summary {
    let mut reader = JournalReader::open(path).unwrap();
    let records = reader
        .read_all_owned()
        .unwrap()
        .into_iter()
        .map(|r| (r.start, r.entry));
    wasnap_journal::state::replay(records)
        .unwrap()
        .end
        .summary()
}

#[test]
fn compact_shrinks_a_journal_of_overwrites_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("overwrites.journal");
    let open = |fd: u32, path: &str| -> JournalEntry<'static> {
        wasnap_journal::OpenFileDescriptorV1 {
            fd,
            dirfd: 3,
            dirflags: 0,
            path: Cow::Owned(path.to_owned()),
            o_flags: 1,
            fs_rights_base: u64::MAX,
            fs_rights_inheriting: u64::MAX,
            fs_flags: 0,
        }
        .into()
    };
    let mut entries = vec![open(5, "data.bin"), open(6, "log.txt")];
    for round in 0..50u64 {
        for block in 0..20u64 {
            entries.push(write(
                5,
                block * 100,
                &format!("round {round:03} block {block:02} {}", "x".repeat(70)),
            ));
        }
        entries.push(write(6, round * 8, "logline\n"));
    }
    append(&source, &entries);
    let before = std::fs::metadata(&source).unwrap().len();

    let compacted = dir.path().join("compacted.journal");
    let out = wasnap(&["journal", "compact", s(&source), s(&compacted)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("bytes"), "{}", text(&out.stdout));
    let after = std::fs::metadata(&compacted).unwrap().len();
    assert!(after * 10 < before, "{before} -> {after}");
    assert_eq!(summary_of(&compacted), summary_of(&source));

    // In place: the same result, and the source replaced atomically.
    let out = wasnap(&["journal", "compact", s(&source)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(&source).unwrap(),
        std::fs::read(&compacted).unwrap()
    );
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 2, "temporary files were left behind");
}

#[test]
fn compact_refuses_what_it_cannot_model_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("sockets.journal");
    append(
        &source,
        &[wasnap_journal::SocketOpenV1 {
            af: 1,
            ty: 1,
            pt: 0,
            fd: 7,
        }
        .into()],
    );
    let before = std::fs::read(&source).unwrap();
    let out = wasnap(&["journal", "compact", s(&source)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("SocketOpenV1"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&source).unwrap(), before);

    let missing = dir.path().join("missing.journal");
    let out = wasnap(&[
        "journal",
        "compact",
        s(&missing),
        s(&dir.path().join("out.journal")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!missing.exists() && !dir.path().join("out.journal").exists());
}
