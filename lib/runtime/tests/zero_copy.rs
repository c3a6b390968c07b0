//! Replaying a journal that wrote a large file serves the file from the
//! journal's mapping: the process's anonymous memory stays flat.
//! (One test in its own binary, so no other test's allocations interfere.)
#![allow(clippy::unwrap_used)]

mod common;

use common::{captured, program, run_ctx, run_process};
use wasnap_journal::{JournalReader, Recovery};
use wasnap_runtime::replay::{replay, ReplayOptions};
use wasnap_runtime::{JournalTarget, ProcessOptions};
use wasnap_wasi::ExitStatus;

const MIB: u64 = 64;

fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn replaying_a_large_file_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.journal");
    {
        let (ctx, _) = captured("bigfile.wasm", &["write", &MIB.to_string()]);
        let options = ProcessOptions {
            journal: Some(JournalTarget::File(path.clone())),
            ..ProcessOptions::default()
        };
        let report = run_process(&program("bigfile.wasm"), ctx, options);
        assert_eq!(report.status, ExitStatus::Exited(0));
    }
    assert!(std::fs::metadata(&path).unwrap().len() > MIB << 20);

    let (mut ctx, out) = captured("bigfile.wasm", &["check", &MIB.to_string()]);
    let mut reader = JournalReader::open(&path)
        .unwrap()
        .with_recovery(Recovery::StopAtTornTail);
    let before = rss_anon_kib();
    let summary = replay(&mut ctx, &mut reader, &ReplayOptions::default()).unwrap();
    let grown_kib = rss_anon_kib().saturating_sub(before);
    assert_eq!(summary.zero_copy_bytes, MIB << 20, "{summary:?}");
    assert!(
        grown_kib < 8 * 1024,
        "anonymous memory grew by {grown_kib} KiB while replaying a {MIB} MiB file"
    );

    // And the file reads back intact from the mapping.
    let (status, _) = run_ctx("bigfile.wasm", ctx);
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(
        String::from_utf8(out.contents()).unwrap(),
        format!("checked {MIB} MiB, 0 bad bytes\n")
    );
}
