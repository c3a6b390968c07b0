//! One writer per journal (issue 13): while a run writes a journal, a
//! second run on it and a compaction of it are refused, naming the writer's
//! pid, and change nothing; readers are not held up.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{fixture, text, wasnap};

#[test]
fn a_second_writer_and_a_compaction_are_refused_while_a_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("shared.journal");
    let j = journal.to_str().unwrap();
    let limits = fixture("limits.wasm");
    // The first run journals, then waits on standard input.
    let mut first = wasnap(dir.path())
        .args(["run", "--journal", j, &limits, "read"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(first.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "reading\n");
    let before = std::fs::read(&journal).unwrap();

    let second = wasnap(dir.path())
        .args(["run", "--journal", j, &limits, "read"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2), "{}", text(&second.stderr));
    let holder = format!("being written by process {}", first.id());
    assert!(
        text(&second.stderr).contains(&holder),
        "{}",
        text(&second.stderr)
    );

    let compact = wasnap(dir.path())
        .args(["journal", "compact", j])
        .output()
        .unwrap();
    assert_ne!(compact.status.code(), Some(0), "{}", text(&compact.stdout));
    assert!(
        text(&compact.stderr).contains(&holder),
        "{}",
        text(&compact.stderr)
    );
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        before,
        "a refused command changed the journal"
    );

    // Readers are never held up.
    let verify = wasnap(dir.path())
        .args(["journal", "verify", j])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stderr));

    drop(first.stdin.take());
    let done = first.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));

    // The lock went with its writer.
    let after = wasnap(dir.path())
        .args(["run", "--journal", j, &limits, "read"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stderr));
}
