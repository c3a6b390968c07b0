//! Large snapshots written by a child process forked in the pause: a chain
//! of resumes from them prints what a run with pause-written snapshots
//! prints, and stores the memory a
//! pause-written snapshot stores; a child that fails (here: killed for
//! exceeding the file-size limit) fails the run with a message that says
//! so, leaves a torn tail, and the next run starts over cleanly.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{fixture, images_at_snapshots, text};

/// 64 MiB heap, 1% changed per step, 3 steps: the first snapshot stores the
/// whole heap (a child writes it), the later ones about 0.7 MB.
const PROGRAM: [&str; 4] = ["dirty.async.wasm", "64", "1", "3"];

fn run(
    dir: &Path,
    env: &[(&str, &str)],
    shell_prefix: Option<&str>,
    args: &[&str],
) -> (i32, String, String) {
    let module = fixture(PROGRAM[0]);
    let mut all: Vec<&str> = vec!["run"];
    all.extend_from_slice(args);
    all.push(&module);
    all.extend_from_slice(&PROGRAM[1..]);
    let mut command = match shell_prefix {
        // `sh -c 'PREFIX; exec wasnap "$@"' sh ARGS…`
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_wasnap"))
                .args(&all);
            c
        }
        None => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_wasnap"));
            c.args(&all);
            c
        }
    };
    command
        .current_dir(dir)
        .env("WASNAP_CACHE_DIR", dir.join("cache"))
        .env_remove("WASNAP_SNAPSHOT_CHILD_MIN")
        .env_remove("WASNAP_DIRTY_TRACKING");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn a_chain_of_resumes_from_snapshots_written_by_children_matches_snapshots_written_in_the_pause() {
    let dir = tempfile::tempdir().unwrap();
    // (The program asks for snapshots: it runs only where they are armed.)
    // The reference: every snapshot written in the pause.
    let reference = dir.path().join("in-pause.journal");
    let r = reference.to_str().unwrap();
    let (code, out, stderr) = run(
        dir.path(),
        &[("WASNAP_SNAPSHOT_CHILD_MIN", "off")],
        None,
        &["-v", "--journal", r, "--snapshot-on", "explicit"],
    );
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{stderr}");
    assert!(!stderr.contains("child process"), "{stderr}");
    let expected = out;

    // The same run as a chain of processes, each stopping after its
    // snapshot; the first snapshot (the whole heap) is written by a child.
    let chained = dir.path().join("chained.journal");
    let c = chained.to_str().unwrap();
    let args = [
        "-v",
        "--journal",
        c,
        "--snapshot-on",
        "explicit",
        "--stop-after-snapshot",
    ];
    let mut output = String::new();
    let mut by_child = 0;
    for round in 0..=3 {
        let (code, out, stderr) = run(dir.path(), &[], None, &args);
        assert_eq!(code, 0, "round {round}: {stderr}");
        output.push_str(&out);
        by_child += stderr.matches("written by a child process").count();
    }
    assert_eq!(output, expected);
    assert!(by_child >= 1, "the whole-heap snapshot went to a child");

    // Without stopping: the later snapshots follow the child's at once.
    let whole = dir.path().join("whole.journal");
    let w = whole.to_str().unwrap();
    let (code, out, stderr) = run(
        dir.path(),
        &[],
        None,
        &["-v", "--journal", w, "--snapshot-on", "explicit"],
    );
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{stderr}");
    assert!(stderr.contains("written by a child process"), "{stderr}");

    let want = images_at_snapshots(&reference);
    assert_eq!(want.len(), 3);
    for journal in [&chained, &whole] {
        let got = images_at_snapshots(journal);
        assert_eq!(got.len(), want.len(), "{}", journal.display());
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                a == b,
                "{}: snapshot {k} differs from the pause-written one",
                journal.display()
            );
        }
    }
}

#[test]
fn a_failed_child_fails_the_run_and_the_next_run_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let args = ["--journal", j, "--snapshot-on", "explicit"];
    // 16 MiB of file at most: the first snapshot (64 MiB) does not fit, and
    // the child writing it is killed by SIGXFSZ.
    let (code, out, stderr) = run(dir.path(), &[], Some("ulimit -f 32768"), &args);
    assert_ne!(code, 0, "the run failed: {stderr}");
    assert_eq!(out, "", "{stderr}");
    assert!(stderr.contains("snapshot writer process"), "{stderr}");
    assert!(stderr.contains("signal 25 (SIGXFSZ"), "{stderr}");
    let size = std::fs::metadata(&journal).unwrap().len();
    assert!(size <= 16 << 20, "{size}");

    // The torn snapshot is cut off; with no snapshot, the program starts over.
    let (code, out, stderr) = run(
        dir.path(),
        &[],
        None,
        &["-v", "--journal", j, "--snapshot-on", "explicit"],
    );
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{stderr}");
    let verify = Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .args(["journal", "verify", j])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert_eq!(images_at_snapshots(&journal).len(), 3);
}

/// The pids of `pid`'s children (Linux: /proc/PID/task/PID/children).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn killing_wasnap_while_its_child_writes_a_snapshot_leaves_a_journal_the_next_run_takes() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let module = fixture(PROGRAM[0]);
    // The same run each time: a 256 MiB heap, snapshots on request.
    let command = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wasnap"));
        c.current_dir(dir.path())
            .env("WASNAP_CACHE_DIR", dir.path().join("cache"))
            .env_remove("WASNAP_SNAPSHOT_CHILD_MIN")
            .args(["run", "--journal", j, "--snapshot-on", "explicit"])
            .args([module.as_str(), "256", "1", "3"]);
        c
    };
    let mut killed_mid_write = 0;
    for round in 0..3 {
        let _ = std::fs::remove_file(&journal);
        let mut child = command()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let writer = loop {
            let kids = children_of(child.id());
            if !kids.is_empty() || std::time::Instant::now() > deadline {
                break kids.first().copied();
            }
            if child.try_wait().unwrap().is_some() {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        let _ = child.kill();
        child.wait().unwrap();
        if writer.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            killed_mid_write += 1;
        }
        // At once: the lock may still be the orphaned writer's, which is
        // waited for, not refused.
        let again = command().output().unwrap();
        assert_eq!(
            (again.status.code(), text(&again.stdout).as_str()),
            (Some(0), "ok\n"),
            "round {round}: {}",
            text(&again.stderr)
        );
        let verify = Command::new(env!("CARGO_BIN_EXE_wasnap"))
            .args(["journal", "verify", j])
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "round {round}: {}",
            text(&verify.stderr)
        );
    }
    assert!(killed_mid_write >= 1, "no kill landed while a child wrote");
}
