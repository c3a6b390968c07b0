//! Resume maps memory from the journal or reads it (`--restore-memory`):
//! either way the journal file never changes under a resumed program that
//! writes its memory, two resumes from one journal print the same, a
//! compressed (archived) journal is copied and resumes the same, and a
//! damaged or truncated memory record is an error naming the journal (or a
//! re-execution), never a crash.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{fixture, text};
use std::io::Write as _;
use wasnap_journal::{is_mapped_region, JournalEntry, JournalReader};

fn wasnap(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .current_dir(dir)
        .env("WASNAP_CACHE_DIR", dir.join("cache"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The number just before `marker` in `run -v`'s output.
fn figure_before(stderr: &str, marker: &str) -> u64 {
    stderr
        .split(marker)
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure before {marker:?} in: {stderr}"))
}

/// Bytes of memory a resume mapped from the journal (`run -v`).
fn mapped_bytes(stderr: &str) -> u64 {
    figure_before(stderr, " mapped from the journal")
}

/// Bytes of memory a resume copied (`run -v`).
fn copied_bytes(stderr: &str) -> u64 {
    figure_before(stderr, " copied)")
}

/// (offset in the file, length) of the data of the largest mapped region.
fn largest_mapped_region(journal: &Path) -> (u64, u64) {
    let mut reader = JournalReader::open(journal).unwrap();
    let backing = reader.backing();
    let mut best = (0, 0);
    while let Some(record) = reader.read_next().unwrap() {
        if let JournalEntry::UpdateMemoryRegionV1(region) = &record.entry {
            if is_mapped_region(&record.entry) && region.data.len() as u64 > best.1 {
                let (_, span) = backing.share(&region.data).unwrap();
                best = (span.unwrap().offset, region.data.len() as u64);
            }
        }
    }
    assert!(best.1 > 0, "the journal holds a mapped region");
    best
}

#[test]
fn resumes_map_or_copy_memory_without_touching_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("startup.async.wasm");
    let module = module.as_str();
    let expected = wasnap(dir.path(), &["run", module, "2"], b"hello\n");
    assert_eq!(
        expected.status.code(),
        Some(0),
        "{}",
        text(&expected.stderr)
    );
    let base = dir.path().join("base");
    let b = base.to_str().unwrap();
    let snap = wasnap(
        dir.path(),
        &[
            "run",
            "--journal",
            b,
            "--snapshot-on",
            "first-stdin",
            "--stop-after-snapshot",
            module,
            "2",
        ],
        b"",
    );
    assert_eq!(snap.status.code(), Some(0), "{}", text(&snap.stderr));
    let before = std::fs::read(&base).unwrap();
    // The 32 MiB index (a memory of about 33.5 MB, which `auto` copies)
    // comes from the file, mapped or read.
    for (how, mapped) in [("map", true), ("copy", false), ("auto", false)] {
        let resume = [
            "run",
            "-v",
            "--restore-memory",
            how,
            "--journal-readonly",
            b,
            module,
            "2",
        ];
        let first = wasnap(dir.path(), &resume, b"hello\n");
        let second = wasnap(dir.path(), &resume, b"hello\n");
        for out in [&first, &second] {
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{how}: {stderr}");
            assert_eq!(text(&out.stdout), text(&expected.stdout), "{how}");
            let (by_map, by_copy) = (mapped_bytes(&stderr), copied_bytes(&stderr));
            if mapped {
                assert!(by_map >= 32 << 20, "{how}: {stderr}");
            } else {
                assert!(by_map == 0 && by_copy >= 32 << 20, "{how}: {stderr}");
            }
        }
        // The program rewrote memory that came from the journal; the
        // journal is as it was.
        assert!(
            std::fs::read(&base).unwrap() == before,
            "{how}: the journal changed"
        );
    }

    // A flipped byte in the mapped data: damage, named, exit 2.
    let (offset, len) = largest_mapped_region(&base);
    let damaged = dir.path().join("damaged");
    let mut bytes = before.clone();
    bytes[(offset + len / 2) as usize] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let d = damaged.to_str().unwrap();
    let out = wasnap(
        dir.path(),
        &["run", "--journal-readonly", d, module, "2"],
        b"hello\n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(d), "{}", text(&out.stderr));

    // Cut in the middle of the mapped data: a torn tail, so no complete
    // snapshot; the program starts over and prints what it should. Never a
    // signal.
    let cut = dir.path().join("cut");
    std::fs::write(&cut, &before[..(offset + len / 2) as usize]).unwrap();
    let c = cut.to_str().unwrap();
    let out = wasnap(
        dir.path(),
        &["run", "--journal-readonly", c, module, "2"],
        b"hello\n",
    );
    assert!(
        out.status.code().is_some(),
        "ended by a signal: {:?}",
        out.status
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), text(&expected.stdout));
}

#[test]
fn an_archived_journal_is_copied_on_resume_and_resumes_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("explicit.async.wasm");
    let module = module.as_str();
    let whole_journal = dir.path().join("whole");
    let w = whole_journal.to_str().unwrap();
    let whole = wasnap(
        dir.path(),
        &[
            "run",
            "--journal",
            w,
            "--snapshot-on",
            "explicit",
            module,
            "2",
            "8",
        ],
        b"",
    );
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));
    let base = dir.path().join("base");
    let b = base.to_str().unwrap();
    let first = wasnap(
        dir.path(),
        &[
            "run",
            "--journal",
            b,
            "--snapshot-on",
            "explicit",
            "--stop-after-snapshot",
            module,
            "2",
            "8",
        ],
        b"",
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let archive = dir.path().join("archive");
    let a = archive.to_str().unwrap();
    let compact = wasnap(dir.path(), &["journal", "compact", "--compress", b, a], b"");
    assert_eq!(compact.status.code(), Some(0), "{}", text(&compact.stderr));
    // The heap is a repeating pattern: LZ4 pays.
    let (archived, stored) = (
        std::fs::metadata(&archive).unwrap().len(),
        std::fs::metadata(&base).unwrap().len(),
    );
    assert!(archived < stored / 4, "{archived} vs {stored}");
    let second = wasnap(
        dir.path(),
        &[
            "run",
            "-v",
            "--journal",
            a,
            "--snapshot-on",
            "explicit",
            module,
            "2",
            "8",
        ],
        b"",
    );
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert_eq!(
        mapped_bytes(&text(&second.stderr)),
        0,
        "{}",
        text(&second.stderr)
    );
    assert_eq!(
        format!("{}{}", text(&first.stdout), text(&second.stdout)),
        text(&whole.stdout)
    );
}
