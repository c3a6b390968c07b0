//! Compaction valid on real journals (issue 13): whatever it emits, replay
//! applies. A program that exited with descriptors open; a program killed
//! mid-run without a snapshot (its whole run is kept, to be re-executed);
//! and one killed between interval snapshots: each compacted journal
//! restores the same descriptors and tree, or resumes to the same output.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{fixture, text, wasnap};

fn compact(dir: &Path, from: &Path, to: &Path) {
    let out = wasnap(dir)
        .args(["journal", "compact"])
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_compacted_journal_restores_open_descriptors_and_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("tree.journal");
    let tree = fixture("tree.wasm");
    let built = wasnap(dir.path())
        .arg("run")
        .arg("--journal")
        .arg(&journal)
        .args([&tree, "build"])
        .output()
        .unwrap();
    assert_eq!(built.status.code(), Some(0), "{}", text(&built.stderr));
    let compacted = dir.path().join("compacted.journal");
    compact(dir.path(), &journal, &compacted);
    let dump = |j: &Path| {
        let out = wasnap(dir.path())
            .arg("run")
            .arg("--journal-readonly")
            .arg(j)
            .args([&tree, "dump"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let original = dump(&journal);
    let restored = dump(&compacted);
    // Two descriptors the program left open, with their positions.
    assert!(
        original.contains("pos=3") && original.contains("pos=11"),
        "{original}"
    );
    // Times the program set are kept exactly; times changes set implicitly
    // become the compacted journal's last effect time (see the README).
    let explicit = "trunc.txt file size=10 links=1 mtime=2000000007000000";
    assert!(
        original.contains(explicit) && restored.contains(explicit),
        "{restored}"
    );
    assert_eq!(without_mtimes(&restored), without_mtimes(&original));
}

fn without_mtimes(dump: &str) -> String {
    dump.lines()
        .map(|line| {
            line.split(' ')
                .filter(|word| !word.starts_with("mtime="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `args` with `--journal J`, kills it after `after`, compacts J, then
/// finishes the run once from a copy of J and once from the compaction:
/// both print the same.
fn killed_compacted_and_resumed(args: &[&str], after: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("killed.journal");
    let j = journal.to_str().unwrap();
    let mut child = wasnap(dir.path())
        .args(["run", "--journal", j])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    child.kill().unwrap();
    child.wait().unwrap();
    let copy = dir.path().join("copy.journal");
    std::fs::copy(&journal, &copy).unwrap();
    let compacted = dir.path().join("compacted.journal");
    compact(dir.path(), &journal, &compacted);
    let finish = |j: &Path| {
        let out = wasnap(dir.path())
            .arg("run")
            .arg("--journal")
            .arg(j)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let from_copy = finish(&copy);
    assert!(!from_copy.is_empty());
    assert_eq!(finish(&compacted), from_copy);
}

#[test]
fn a_run_killed_without_a_snapshot_compacts_and_resumes_identically() {
    killed_compacted_and_resumed(
        &[&fixture("ticker.wasm"), "run", "300"],
        Duration::from_millis(300),
    );
}

#[test]
fn a_run_killed_between_snapshots_compacts_and_resumes_identically() {
    killed_compacted_and_resumed(
        &[
            "--snapshot-on",
            "interval",
            "--snapshot-interval",
            "30ms",
            &fixture("ticker.async.wasm"),
            "run",
            "300",
        ],
        Duration::from_millis(400),
    );
}

#[test]
fn a_temporary_left_by_a_killed_compaction_is_removed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.journal");
    let run = wasnap(dir.path())
        .arg("run")
        .arg("--journal")
        .arg(&journal)
        .args([&fixture("tree.wasm"), "build"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    // What a compaction killed before its rename leaves behind.
    let leftover = dir.path().join(".wasnap-AbCdEf.journal.tmp");
    std::fs::write(&leftover, b"WSNPJRNL partial").unwrap();
    // One being written right now (its writer holds the lock) stays.
    let busy = dir.path().join(".wasnap-busy00.journal.tmp");
    let held = std::fs::File::create(&busy).unwrap();
    held.lock().unwrap();

    compact(dir.path(), &journal, &dir.path().join("c.journal"));
    assert!(!leftover.exists(), "the stale temporary stayed");
    assert!(busy.exists(), "a temporary still being written was removed");
    drop(held);
}
