//! Snapshots and resume through `wasnap run`: every resumed run's output
//! (which includes the files it wrote, read back) is compared byte for byte
//! with an uninterrupted run.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{fixture, run_with_input as run, spawn_run as spawn, text};

const INPUT: &[u8] = b"first line\nsecond, longer line of input\nthird\n";

#[test]
fn snapshot_at_first_stdin_then_resume_in_a_fresh_process_equals_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("resume.async.wasm");
    let whole = run(dir.path(), &[&module], INPUT);
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));

    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    // The first run sees no input at all: it stops at the snapshot.
    let first = run(
        dir.path(),
        &[
            "--journal",
            j,
            "--snapshot-on",
            "first-stdin",
            "--stop-after-snapshot",
            &module,
        ],
        b"",
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(
        text(&first.stderr).contains("snapshot written"),
        "{}",
        text(&first.stderr)
    );
    assert_eq!(text(&first.stdout), "ready: heap-2703969902\n");
    let second = run(dir.path(), &["--journal", j, &module], INPUT);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert_eq!(
        format!("{}{}", text(&first.stdout), text(&second.stdout)),
        text(&whole.stdout)
    );
    // Files written after the resume are read back in the output.
    assert!(
        text(&second.stdout).contains("/tmp/out-2.txt: third"),
        "{}",
        text(&second.stdout)
    );
}

#[test]
fn chained_explicit_snapshots_resume_any_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("explicit.async.wasm");
    let journal = dir.path().join("chain");
    let j = journal.to_str().unwrap();
    let continuous_journal = dir.path().join("continuous");
    let whole = run(
        dir.path(),
        &[
            "--journal",
            continuous_journal.to_str().unwrap(),
            "--snapshot-on",
            "explicit",
            &module,
            "5",
        ],
        b"",
    );
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));
    assert!(
        text(&whole.stdout).ends_with("finished\n"),
        "{}",
        text(&whole.stdout)
    );
    assert!(
        !text(&whole.stdout).contains("no snapshot"),
        "{}",
        text(&whole.stdout)
    );

    let mut pieces = String::new();
    for _ in 0..5 {
        let out = run(
            dir.path(),
            &[
                "--journal",
                j,
                "--snapshot-on",
                "explicit",
                "--stop-after-snapshot",
                &module,
                "5",
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("snapshot written"),
            "{}",
            text(&out.stderr)
        );
        pieces.push_str(&text(&out.stdout));
    }
    let last = run(dir.path(), &["--journal", j, &module, "5"], b"");
    pieces.push_str(&text(&last.stdout));
    assert_eq!(pieces, text(&whole.stdout));
}

#[test]
fn a_64_mib_heap_survives_intact() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("explicit.async.wasm");
    let journal = dir.path().join("big");
    let j = journal.to_str().unwrap();
    let whole_journal = dir.path().join("whole");
    let whole = run(
        dir.path(),
        &[
            "--journal",
            whole_journal.to_str().unwrap(),
            "--snapshot-on",
            "explicit",
            &module,
            "2",
            "64",
        ],
        b"",
    );
    let first = run(
        dir.path(),
        &[
            "--journal",
            j,
            "--snapshot-on",
            "explicit",
            "--stop-after-snapshot",
            &module,
            "2",
            "64",
        ],
        b"",
    );
    let second = run(
        dir.path(),
        &[
            "-v",
            "--journal",
            j,
            "--snapshot-on",
            "explicit",
            &module,
            "2",
            "64",
        ],
        b"",
    );
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert_eq!(
        format!("{}{}", text(&first.stdout), text(&second.stdout)),
        text(&whole.stdout)
    );
    // Each step writes every page of the heap, so each of the two
    // snapshots stores it once (as it is, for resume to map), and no more.
    let len = std::fs::metadata(&journal).unwrap().len();
    assert!(len > 2 * (64 << 20) && len < 2 * (66 << 20), "{len}");
    // The resume mapped the heap from the journal instead of copying it.
    let stderr = text(&second.stderr);
    let mapped: u64 = stderr
        .split(" mapped from the journal")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no mapped figure in: {stderr}"));
    assert!(mapped >= 64 << 20, "{stderr}");
}

/// Runs `args`, expecting wasnap to refuse (exit 2) with `needle` in the
/// message.
fn refused(cache: &Path, args: &[&str], needle: &str) {
    let out = run(cache, args, b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
}

#[test]
fn refusals_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let prepared = fixture("resume.async.wasm");
    refused(
        dir.path(),
        &[
            "--journal",
            j,
            "--snapshot-on",
            "explicit",
            &fixture("explicit.wasm"),
        ],
        "wasnap prepare",
    );
    refused(
        dir.path(),
        &["--snapshot-on", "first-stdin", &prepared],
        "--journal",
    );
    refused(
        dir.path(),
        &["--journal", j, "--snapshot-on", "whenever", &prepared],
        "first-stdin",
    );
    refused(
        dir.path(),
        &["--journal", j, "--snapshot-on", "interval", &prepared],
        "--snapshot-interval",
    );

    // A snapshot of one module does not resume another.
    let snap = dir.path().join("snap");
    let s = snap.to_str().unwrap();
    run(
        dir.path(),
        &[
            "--journal",
            s,
            "--snapshot-on",
            "explicit",
            "--stop-after-snapshot",
            &fixture("explicit.async.wasm"),
        ],
        b"",
    );
    refused(
        dir.path(),
        &["--journal", s, &prepared],
        "recorded for another module",
    );
}

/// Reads `ack N` lines until `count` were seen.
fn wait_for_acks(
    child: &mut std::process::Child,
    count: usize,
) -> std::io::Lines<std::io::BufReader<std::process::ChildStdout>> {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = 0;
    while seen < count {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with("ack ") {
            seen += 1;
        }
    }
    lines
}

#[test]
fn first_environ_fires_before_the_environment_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("hello.async.wasm");
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let whole = run(dir.path(), &["--env", "GREETING=Hi", &module, "x"], b"");
    let first = run(
        dir.path(),
        &[
            "--journal",
            j,
            "--snapshot-on",
            "first-environ",
            "--stop-after-snapshot",
            &module,
            "x",
        ],
        b"",
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(
        text(&first.stdout),
        "",
        "nothing runs before the environment is read"
    );
    let second = run(
        dir.path(),
        &["--journal", j, "--env", "GREETING=Hi", &module, "x"],
        b"",
    );
    assert_eq!(second.stdout, whole.stdout, "{}", text(&second.stderr));
}

/// Runs `module ARGS` with `--snapshot-on idle --stop-after-snapshot`
/// while standard input stays open and empty, then resumes it with `input`.
/// Returns the outputs of both runs.
fn idle_then_resume(module: &str, args: &[&str], input: &[u8]) -> (Output, Output) {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let mut first_args = vec![
        "--journal",
        j,
        "--snapshot-on",
        "idle",
        "--stop-after-snapshot",
        module,
    ];
    first_args.extend_from_slice(args);
    let mut child = spawn(dir.path(), &first_args);
    let _stdin = child.stdin.take().unwrap();
    let first = child.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(
        text(&first.stderr).contains("snapshot written"),
        "{}",
        text(&first.stderr)
    );
    let mut second_args = vec!["--journal", j, module];
    second_args.extend_from_slice(args);
    let second = run(dir.path(), &second_args, input);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    (first, second)
}

#[test]
fn idle_fires_when_input_is_awaited_but_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("resume.async.wasm");
    let whole = run(dir.path(), &[&module], INPUT);
    let (first, second) = idle_then_resume(&module, &[], INPUT);
    assert_eq!(
        format!("{}{}", text(&first.stdout), text(&second.stdout)),
        text(&whole.stdout)
    );
}

#[test]
fn idle_fires_when_a_poll_waits_on_empty_input() {
    let (first, second) =
        idle_then_resume(&fixture("stdin_poll.async.wasm"), &["10000"], b"poll me\n");
    assert_eq!(text(&first.stdout), "");
    assert_eq!(text(&second.stdout), "POLL ME\n");
}

#[test]
fn periodic_snapshots_survive_kill_9_and_resume_to_the_same_end() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("ticker.async.wasm");
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let whole = run(dir.path(), &[&module, "run", "60"], b"");
    let last_line = text(&whole.stdout).lines().last().unwrap().to_owned();
    assert_eq!(last_line, "all 60 files checked, 0 bad");

    let mut child = spawn(
        dir.path(),
        &[
            "--journal",
            j,
            "--snapshot-interval",
            "50ms",
            &module,
            "run",
            "60",
        ],
    );
    // A moment that varies from run to run: after 12 to 27 acknowledgements.
    let acks = 12 + (std::process::id() as usize % 16);
    let _rest = wait_for_acks(&mut child, acks);
    child.kill().unwrap();
    child.wait().unwrap();
    let inspect = Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .args(["journal", "inspect", j])
        .output()
        .unwrap();
    assert!(
        text(&inspect.stdout).contains("trigger interval"),
        "no periodic snapshot was taken: {}",
        text(&inspect.stdout)
    );

    let resumed = run(
        dir.path(),
        &[
            "--journal",
            j,
            "--snapshot-interval",
            "50ms",
            &module,
            "run",
            "60",
        ],
        b"",
    );
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_eq!(text(&resumed.stdout).lines().last().unwrap(), last_line);
    assert!(
        !text(&resumed.stdout).contains("ack 0\n"),
        "the resumed run started over: {}",
        text(&resumed.stdout)
    );
}

#[test]
fn ctrl_c_snapshots_at_the_next_point_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("ticker.async.wasm");
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let mut child = spawn(
        dir.path(),
        &[
            "--journal",
            j,
            "--snapshot-on",
            "sigint",
            &module,
            "run",
            "60",
        ],
    );
    let rest = wait_for_acks(&mut child, 10);
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    drop(rest);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("snapshot written"), "{stderr}");
    let resumed = run(dir.path(), &["--journal", j, &module, "run", "60"], b"");
    assert_eq!(
        text(&resumed.stdout).lines().last().unwrap(),
        "all 60 files checked, 0 bad"
    );
    assert!(!text(&resumed.stdout).contains("ack 0\n"));
}

#[test]
fn ctrl_c_without_a_snapshot_point_says_so_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let mut child = spawn(
        dir.path(),
        &[
            "--journal",
            journal.to_str().unwrap(),
            "--snapshot-on",
            "sigint",
            "--sigint-grace",
            "300ms",
            &fixture("ticker.async.wasm"),
            "spin",
        ],
    );
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "spinning");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(
        text(&out.stderr).contains("reached no snapshot point within 0.3 s"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_compacted_snapshot_journal_resumes_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("explicit.async.wasm");
    let journal = dir.path().join("j");
    let compacted = dir.path().join("j.compact");
    let j = journal.to_str().unwrap();
    for _ in 0..2 {
        let out = run(
            dir.path(),
            &[
                "--journal",
                j,
                "--snapshot-on",
                "explicit",
                "--stop-after-snapshot",
                &module,
                "4",
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let compact = Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .args(["journal", "compact", j, compacted.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(compact.status.code(), Some(0), "{}", text(&compact.stderr));
    assert!(
        std::fs::metadata(&compacted).unwrap().len() < std::fs::metadata(&journal).unwrap().len()
    );
    let from_original = run(
        dir.path(),
        &["--journal", j, "--snapshot-on", "explicit", &module, "4"],
        b"",
    );
    let from_compacted = run(
        dir.path(),
        &[
            "--journal",
            compacted.to_str().unwrap(),
            "--snapshot-on",
            "explicit",
            &module,
            "4",
        ],
        b"",
    );
    assert_eq!(
        from_original.status.code(),
        Some(0),
        "{}",
        text(&from_original.stderr)
    );
    assert_eq!(
        from_compacted.stdout,
        from_original.stdout,
        "{}",
        text(&from_compacted.stderr)
    );
    assert!(
        text(&from_original.stdout).starts_with("step 2:"),
        "{}",
        text(&from_original.stdout)
    );
}
