//! The golden journal pins the byte format: one deterministic sample of every
//! entry kind, written by this build, must equal the committed fixture byte
//! for byte, and the fixture must read back as the committed JSON. A format
//! change therefore fails here until the version is bumped, docs/format.md is
//! updated, and the fixtures are regenerated on purpose with
//! `WASNAP_BLESS=1 cargo test -p wasnap-journal --test golden`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::*;
use wasnap_journal::{EntryKind, JournalReader, FORMAT_VERSION};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/golden")
        .join(name)
}

fn journal_name() -> String {
    format!("v{FORMAT_VERSION}-all-entries.journal")
}

fn json_name() -> String {
    format!("v{FORMAT_VERSION}-all-entries.jsonl")
}

fn expected_bytes() -> Vec<u8> {
    journal_bytes(&one_of_each(0x5EED, 48))
}

#[test]
fn the_golden_journal_matches_this_build_byte_for_byte() {
    let bytes = expected_bytes();
    if std::env::var_os("WASNAP_BLESS").is_some() {
        std::fs::write(fixture(&journal_name()), &bytes).unwrap();
        let mut reader = JournalReader::open(fixture(&journal_name())).unwrap();
        let mut lines = String::new();
        while let Some(record) = reader.read_next().unwrap() {
            lines.push_str(&serde_json::to_string(&record.entry.to_json()).unwrap());
            lines.push('\n');
        }
        std::fs::write(fixture(&json_name()), lines).unwrap();
    }
    let golden = std::fs::read(fixture(&journal_name()))
        .expect("the golden journal for this format version is missing: see this file's header");
    assert!(
        golden == bytes,
        "the encoding changed: bump FORMAT_VERSION, update docs/format.md and regenerate"
    );
}

#[test]
fn the_golden_journal_reads_back_as_the_golden_json() {
    let mut reader = JournalReader::open(fixture(&journal_name())).unwrap();
    let expected = std::fs::read_to_string(fixture(&json_name())).unwrap();
    let mut kinds = Vec::new();
    let mut lines = expected.lines();
    while let Some(record) = reader.read_next().unwrap() {
        let line = lines.next().expect("more records than JSON lines");
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record.entry.to_json(), json);
        assert_eq!(
            wasnap_journal::JournalEntry::from_json(&json).unwrap(),
            record.entry
        );
        kinds.push(record.entry.kind());
    }
    assert!(lines.next().is_none(), "more JSON lines than records");
    assert_eq!(
        kinds,
        EntryKind::ALL,
        "the golden journal must hold one entry of every kind"
    );
    assert_eq!(reader.format_version(), Some(FORMAT_VERSION));
}

#[test]
fn docs_format_md_lists_every_tag() {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/format.md"),
    )
    .unwrap();
    for kind in EntryKind::ALL {
        let row = format!("| {} | `{}` |", kind.tag(), kind.name());
        assert!(doc.contains(&row), "docs/format.md has no row {row:?}");
    }
    assert!(doc.contains(&format!("Format version: {FORMAT_VERSION}")));
}

/// Journals of older format versions stay readable: each older golden
/// journal reads back as its JSON, with the kinds that version had.
fn older_version_reads(version: u32, added_since: &[EntryKind]) {
    let mut reader =
        JournalReader::open(fixture(&format!("v{version}-all-entries.journal"))).unwrap();
    let expected =
        std::fs::read_to_string(fixture(&format!("v{version}-all-entries.jsonl"))).unwrap();
    let mut lines = expected.lines();
    let mut kinds = Vec::new();
    while let Some(record) = reader.read_next().unwrap() {
        let json: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(record.entry.to_json(), json);
        kinds.push(record.entry.kind());
    }
    assert!(lines.next().is_none());
    assert_eq!(reader.format_version(), Some(version));
    let then: Vec<EntryKind> = EntryKind::ALL
        .iter()
        .copied()
        .filter(|k| !added_since.contains(k))
        .collect();
    assert_eq!(kinds, then);
}

/// Version 1: before `TimelineCutV1` (version 2) and `PaddingV1` (3).
#[test]
fn version_1_journals_still_read() {
    older_version_reads(1, &[EntryKind::TimelineCutV1, EntryKind::PaddingV1]);
}

/// Version 2: before `PaddingV1` (version 3).
#[test]
fn version_2_journals_still_read() {
    older_version_reads(2, &[EntryKind::PaddingV1]);
}
