//! `wasnap run --journal`: record, replay in a fresh process, survive a
//! kill -9, replay read-only base journals, leave host mounts to the host.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Output, Stdio};

use common::{fixture, text, wasnap};

fn run(cache: &Path, args: &[&str]) -> Output {
    wasnap(cache).arg("run").args(args).output().unwrap()
}

fn from_descriptors(out: &str) -> String {
    out[out.find("descriptors:").unwrap()..].to_owned()
}

#[test]
fn a_fresh_process_replays_the_tree_and_descriptors_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("tree.journal");
    let j = journal.to_str().unwrap();
    let first = run(
        dir.path(),
        &["--journal", j, &fixture("tree.wasm"), "build"],
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let second = run(dir.path(), &["--journal", j, &fixture("tree.wasm"), "dump"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert_eq!(from_descriptors(&text(&first.stdout)), text(&second.stdout));
    // Both runs are in the journal, each starting with the module and env.
    let inspect = wasnap(dir.path())
        .args(["journal", "inspect", j])
        .output()
        .unwrap();
    let summary = text(&inspect.stdout);
    assert!(
        summary.contains("InitModuleV1                              2"),
        "{summary}"
    );
    assert!(
        summary.contains("EnvironmentV1                             2"),
        "{summary}"
    );
    assert!(
        summary.contains("ProcessExitV1                             2"),
        "{summary}"
    );
}

#[test]
fn a_journal_of_another_module_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    assert_eq!(
        run(dir.path(), &["--journal", j, &fixture("hello.wasm")])
            .status
            .code(),
        Some(0)
    );
    let refused = run(dir.path(), &["--journal", j, &fixture("tree.wasm")]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("recorded for another module")
            && stderr.contains("--force")
            && stderr.contains(j),
        "{stderr}"
    );
    let forced = run(
        dir.path(),
        &[
            "--journal",
            j,
            "--force",
            &fixture("probe.wasm"),
            "/",
            "read:tmp/hello.txt",
        ],
    );
    assert_eq!(
        text(&forced.stdout),
        "read:tmp/hello.txt -> ok written inside the sandbox\n"
    );
}

#[test]
fn stdout_is_not_printed_again_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let hello = fixture("hello.wasm");
    let first = run(dir.path(), &["--journal", j, &hello, "x"]);
    let again = run(dir.path(), &["--journal", j, &hello, "x"]);
    assert_eq!(first.stdout, again.stdout);
    let replayed = run(dir.path(), &["--journal", j, "--replay-stdio", &hello, "x"]);
    assert_eq!(text(&replayed.stdout), text(&first.stdout).repeat(3));
}

#[test]
fn a_read_only_base_journal_serves_many_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let b = base.to_str().unwrap();
    let tree = fixture("tree.wasm");
    assert_eq!(
        run(dir.path(), &["--journal", b, &tree, "build"])
            .status
            .code(),
        Some(0)
    );
    let size = std::fs::metadata(&base).unwrap().len();
    for n in 0..2 {
        let own = dir.path().join(format!("run{n}"));
        let out = run(
            dir.path(),
            &[
                "--journal-readonly",
                b,
                "--journal",
                own.to_str().unwrap(),
                &tree,
                "dump",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("/tmp/t/sub/new.txt file size=11"),
            "{}",
            text(&out.stdout)
        );
        assert!(own.exists());
    }
    assert_eq!(
        std::fs::metadata(&base).unwrap().len(),
        size,
        "the base journal was written to"
    );
    let missing = run(
        dir.path(),
        &[
            "--journal-readonly",
            dir.path().join("nope").to_str().unwrap(),
            &tree,
            "dump",
        ],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("nope"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn effects_on_host_mounts_are_left_to_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let mount = format!("{}::/data", host.path().display());
    let probe = fixture("probe.wasm");
    let out = run(
        dir.path(),
        &[
            "--journal",
            j,
            "--dir",
            &mount,
            &probe,
            "/data",
            "write:out.txt",
            "mkdir:made",
        ],
    );
    assert_eq!(
        text(&out.stdout),
        "write:out.txt -> ok \nmkdir:made -> ok \n",
        "{}",
        text(&out.stderr)
    );
    // The host changes behind the journal's back; replay must not undo that.
    std::fs::remove_file(host.path().join("out.txt")).unwrap();
    std::fs::remove_dir(host.path().join("made")).unwrap();
    let out = run(
        dir.path(),
        &[
            "-v",
            "--journal",
            j,
            "--dir",
            &mount,
            &probe,
            "/data",
            "stat:out.txt",
        ],
    );
    assert_eq!(text(&out.stdout), "stat:out.txt -> errno 44\n");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("host-mount effects left to the host"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cannot reopen out.txt on a host mount"),
        "{stderr}"
    );
    assert!(!host.path().join("made").exists());
}

#[test]
fn kill_9_then_the_same_command_resumes_exactly_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("ticks.journal");
    let j = journal.to_str().unwrap();
    let ticker = fixture("ticker.wasm");
    const N: usize = 60;
    let n = N.to_string();
    let mut child = wasnap(dir.path())
        .args(["run", "--journal", j, &ticker, "run", &n])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    // Kill it after the 25th acknowledgement.
    while seen.iter().filter(|&&b| b == b'\n').count() < 25 {
        assert_eq!(
            stdout.read(&mut byte).unwrap(),
            1,
            "the program ended early"
        );
        seen.push(byte[0]);
    }
    child.kill().unwrap(); // SIGKILL
    stdout.read_to_end(&mut seen).unwrap();
    child.wait().unwrap();
    // A torn tail, as if the kill had landed in the middle of a record.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    file.write_all(&[0x67, 0, 0x40, 0, 0, 0, 0, 0, 1, 2, 3])
        .unwrap();
    drop(file);

    // The same command resumes the killed run: what it prints completes what
    // was printed, with no line twice and none missing.
    let resumed = run(dir.path(), &["--journal", j, &ticker, "run", &n]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let mut expected: String = (0..N).map(|i| format!("ack {i}\n")).collect();
    expected.push_str(&format!("all {N} files checked, 0 bad\n"));
    let whole = [seen, resumed.stdout].concat();
    assert_eq!(text(&whole), expected);

    // The run has exited: the next command starts afresh over its files.
    let check = run(dir.path(), &["--journal", j, &ticker, "check"]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    assert!(
        text(&check.stderr).contains("starting it afresh"),
        "{}",
        text(&check.stderr)
    );
    let out = text(&check.stdout);
    let files: usize = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(files, N, "{out}");
    assert!(out.ends_with("bad 0 earlier checks 0\n"), "{out}");
    // The torn tail was cut off and the check run's own effects recorded.
    let again = run(dir.path(), &["--journal", j, &ticker, "check"]);
    assert!(
        text(&again.stdout).ends_with("bad 0 earlier checks 1\n"),
        "{}",
        text(&again.stdout)
    );
    let verify = wasnap(dir.path())
        .args(["journal", "verify", j])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
}
