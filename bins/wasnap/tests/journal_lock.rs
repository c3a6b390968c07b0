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
    // Repair (which cuts torn tails) is a writer too.
    let repair = wasnap(dir.path())
        .args(["journal", "repair", j])
        .output()
        .unwrap();
    assert_ne!(repair.status.code(), Some(0), "{}", text(&repair.stdout));
    assert!(
        text(&repair.stderr).contains(&holder),
        "{}",
        text(&repair.stderr)
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

#[test]
fn fifos_devices_and_empty_files_are_not_journals() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let limits = fixture("limits.wasm");
    // Each must answer at once (a FIFO opened for reading would block).
    for args in [
        vec!["journal", "verify", fifo.to_str().unwrap()],
        vec!["journal", "inspect", fifo.to_str().unwrap()],
        vec![
            "run",
            "--journal-readonly",
            fifo.to_str().unwrap(),
            &limits,
            "resize",
            "1",
        ],
        vec![
            "run",
            "--journal",
            fifo.to_str().unwrap(),
            &limits,
            "resize",
            "1",
        ],
        vec!["journal", "verify", "/dev/null"],
        vec!["journal", "compact", fifo.to_str().unwrap()],
        vec!["journal", "repair", fifo.to_str().unwrap()],
    ] {
        let out = wasnap(dir.path())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("not a journal: a journal is a regular file"),
            "{args:?}: {err}"
        );
    }
    let empty = dir.path().join("empty.journal");
    std::fs::write(&empty, b"").unwrap();
    for command in ["verify", "inspect"] {
        let out = wasnap(dir.path())
            .args(["journal", command, empty.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command}");
        assert!(
            text(&out.stderr).contains("is empty: not a journal"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn log_lines_carry_no_colour_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("torn.journal");
    let j = journal.to_str().unwrap();
    let limits = fixture("limits.wasm");
    let first = wasnap(dir.path())
        .args(["run", "--journal", j, &limits, "resize", "1"])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    // A torn tail makes the next writer log a warning.
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(&[0x2a, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&journal, &bytes).unwrap();
    let second = wasnap(dir.path())
        .args(["run", "--journal", j, &limits, "resize", "1"])
        .output()
        .unwrap();
    let err = text(&second.stderr);
    assert!(err.contains("torn tail"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour escapes on a pipe: {err:?}");
}

#[test]
fn a_run_that_does_not_start_leaves_the_journal_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("kept.journal");
    let j = journal.to_str().unwrap();
    let limits = fixture("limits.wasm");
    let first = wasnap(dir.path())
        .args(["run", "--journal", j, &limits, "resize", "1"])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let before = std::fs::read(&journal).unwrap();

    // A start function that traps (the module cannot start at all).
    let wat = r#"(module
        (memory (export "memory") 1)
        (func $boom unreachable)
        (start $boom)
        (func (export "_start")))"#;
    let trapping = dir.path().join("trapping.wasm");
    std::fs::write(&trapping, wasmer::wat2wasm(wat.as_bytes()).unwrap()).unwrap();
    let trapped = wasnap(dir.path())
        .args(["run", "--force", "--journal", j, trapping.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(trapped.status.code(), Some(2), "{}", text(&trapped.stderr));
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        before,
        "the start-function trap left records"
    );

    // A memory limit below what the module starts with: refused the same way.
    let limited = wasnap(dir.path())
        .args([
            "run",
            "--max-memory",
            "64K",
            "--journal",
            j,
            &limits,
            "resize",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(limited.status.code(), Some(2), "{}", text(&limited.stderr));
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        before,
        "the refused run left records"
    );

    // The journal still serves the next run.
    let next = wasnap(dir.path())
        .args(["run", "--journal", j, &limits, "resize", "1"])
        .output()
        .unwrap();
    assert_eq!(next.status.code(), Some(0), "{}", text(&next.stderr));
}
