//! `wasnap journal inspect|verify`, driven end to end through the binary.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../fixtures/golden/v{}-all-entries.journal",
        wasnap_journal::FORMAT_VERSION
    ))
}

fn wasnap(args: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .args(args)
        .arg(path)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn inspect_summarizes_the_golden_journal() {
    let out = wasnap(&["journal", "inspect"], &golden());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "format version  {}",
            wasnap_journal::FORMAT_VERSION
        )),
        "{stdout}"
    );
    let records = wasnap_journal::EntryKind::ALL.len();
    assert!(
        stdout.contains(&format!("records         {records} in")),
        "{stdout}"
    );
    assert!(stdout.contains("FileDescriptorWriteV1"), "{stdout}");
}

#[test]
fn inspect_json_and_entries_agree_with_the_library() {
    let out = wasnap(&["journal", "inspect", "--json", "--entries"], &golden());
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, entries) = lines.split_last().unwrap();
    let mut reader = wasnap_journal::JournalReader::open(golden()).unwrap();
    for line in entries {
        let record = reader.read_next().unwrap().unwrap();
        assert_eq!(line["offset"], record.start);
        assert_eq!(line["entry"], record.entry.to_json());
    }
    assert!(reader.read_next().unwrap().is_none());
    assert_eq!(summary["format_version"], wasnap_journal::FORMAT_VERSION);
    assert_eq!(summary["records"], entries.len());
    assert!(summary["error"].is_null());
}

#[test]
fn verify_accepts_an_intact_journal() {
    let out = wasnap(&["journal", "verify"], &golden());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok"));
}

#[test]
fn verify_names_the_offset_of_a_torn_tail_and_of_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(golden()).unwrap();
    let ends = {
        let mut reader = wasnap_journal::JournalReader::open(golden()).unwrap();
        let mut ends = Vec::new();
        while let Some(r) = reader.read_next().unwrap() {
            ends.push(r.end);
        }
        ends
    };

    let torn = dir.path().join("torn.journal");
    std::fs::write(&torn, &bytes[..bytes.len() - 5]).unwrap();
    let out = wasnap(&["journal", "verify"], &torn);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("torn tail"), "{stderr}");
    assert!(
        stderr.contains(&format!("offset {}", ends[ends.len() - 2])),
        "{stderr}"
    );

    let flipped = dir.path().join("flipped.journal");
    let mut damaged = bytes.clone();
    damaged[ends[3] as usize + 9] ^= 0x10;
    std::fs::write(&flipped, &damaged).unwrap();
    let out = wasnap(&["journal", "verify"], &flipped);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(
        stderr.contains(&format!("flipped.journal: offset {}", ends[3])),
        "{stderr}"
    );
    // Nothing was modified.
    assert_eq!(std::fs::read(&flipped).unwrap(), damaged);
}

#[test]
fn bad_input_gets_a_clear_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["inspect", "verify"] {
        let missing = dir.path().join("missing.journal");
        let out = wasnap(&["journal", sub], &missing);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains("missing.journal"),
            "{}",
            text(&out.stderr)
        );
        assert!(!missing.exists(), "{sub} created the missing journal");

        let not_journal = dir.path().join("notes.txt");
        std::fs::write(&not_journal, "hello, world\n").unwrap();
        let out = wasnap(&["journal", sub], &not_journal);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("not a wasnap journal"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_journal_from_a_newer_wasnap_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    // Magic, then a header record announcing format version 999 (docs/format.md).
    let mut bytes = wasnap_journal::MAGIC.to_vec();
    let mut record = 8u64.wrapping_shl(16).to_le_bytes().to_vec();
    record.extend_from_slice(&999u32.to_le_bytes());
    record.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32c_of(&record);
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(&[0; 4]);
    bytes.extend(record);
    let path = dir.path().join("future.journal");
    std::fs::write(&path, &bytes).unwrap();
    for sub in ["inspect", "verify", "export"] {
        let out = wasnap(&["journal", sub], &path);
        assert_eq!(out.status.code(), Some(1), "{sub}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("version 999 is newer"), "{sub}: {stderr}");
    }
}

/// CRC32C (Castagnoli), bitwise, so that this test does not share the
/// implementation it checks.
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn help_documents_the_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .args(["journal", "verify", "--help"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Exit codes"), "{stdout}");
}
