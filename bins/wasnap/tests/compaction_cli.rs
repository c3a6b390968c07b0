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
    // `after` counts from the run's start (its journal created), not from
    // the spawn: compiling the module first takes longer on a busy machine.
    let spawned = std::time::Instant::now();
    while !journal.exists() && spawned.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
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

/// `kill -9` at random moments of an in-place compaction, 100 times
/// (`WASNAP_COMPACTION_KILLS` for more): the journal is always either the
/// original, byte for byte, or the whole compaction (the rename is the
/// only step that changes it); the next compaction removes what the killed
/// one left and gives the same result.
#[test]
fn kill_9_during_compaction_leaves_the_original_or_the_whole_result() {
    let rounds: u64 = std::env::var("WASNAP_COMPACTION_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.journal");
    let run = wasnap(dir.path())
        .arg("run")
        .arg("--journal")
        .arg(&original)
        .args([
            "--snapshot-on",
            "explicit",
            &fixture("explicit.async.wasm"),
            "3",
            "4",
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let original_bytes = std::fs::read(&original).unwrap();
    let reference = dir.path().join("reference.journal");
    compact(dir.path(), &original, &reference);
    let compacted_bytes = std::fs::read(&reference).unwrap();
    assert_ne!(original_bytes, compacted_bytes);

    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let journal = work.join("j.journal");
    let mut moments = common::Moments(0x9e37_79b9_7f4a_7c15);
    let (mut intact, mut replaced, mut finished) = (0, 0, 0);
    for round in 0..rounds {
        std::fs::write(&journal, &original_bytes).unwrap();
        let mut child = wasnap(&work)
            .args(["journal", "compact"])
            .arg(&journal)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(moments.below(250_000)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        finished += u32::from(status.success());
        let now = std::fs::read(&journal).unwrap();
        if now == original_bytes {
            intact += 1;
        } else {
            assert!(
                now == compacted_bytes,
                "round {round}: the journal is neither the original nor the compaction ({} bytes)",
                now.len()
            );
            replaced += 1;
        }
        // The next compaction cleans up and completes.
        compact(&work, &journal, &journal);
        let left: Vec<String> = std::fs::read_dir(&work)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "j.journal")
            .collect();
        assert!(left.is_empty(), "round {round}: left behind: {left:?}");
        let again = std::fs::read(&journal).unwrap();
        assert!(
            again == compacted_bytes,
            "round {round}: the next compaction differs"
        );
    }
    println!("{rounds} kills: {intact} left the original, {replaced} the whole compaction ({finished} had finished)");
    assert!(
        intact > 0,
        "no kill landed before the rename: the test proves nothing"
    );
}
