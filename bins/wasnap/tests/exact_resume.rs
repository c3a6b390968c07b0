//! Exact resume: a program killed at any moment, resumed with the same
//! command (any number of times, also while it re-executes its journal),
//! prints exactly what one uninterrupted run prints — no line twice, none
//! missing — and leaves the same files. Read positions survive snapshots,
//! a tampered journal is a divergence that names its record, and one base
//! snapshot serves many runs at once.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{
    account_for_the_write_in_flight, fixture, run_and_kill, run_with_input, soak, text, wasnap,
    Moments,
};

/// The input file the soak program reads, on a read-only host mount.
fn soak_input(dir: &Path, lines: usize) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let text: String = (0..lines)
        .map(|i| format!("line {i}: the quick brown fox {}\n", i * 7919 % 1000))
        .collect();
    std::fs::write(data.join("input.txt"), text).unwrap();
    data
}

/// Soaks `module` and compares with one uninterrupted run.
fn soak_module(module: &str, snapshot_args: &[&str], seed: u64, kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = soak_input(dir.path(), 60);
    let mount = format!("{}::/data:ro", data.display());
    let module = fixture(module);
    let whole = run_with_input(
        dir.path(),
        &["--dir", &mount, &module, "/data/input.txt"],
        b"",
    );
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    assert!(text(&whole.stdout).contains("done: 60 steps"));

    let journal = dir.path().join("soak.journal");
    let j = journal.to_str().unwrap();
    let mut args = vec!["--journal", j, "--dir", &mount];
    args.extend_from_slice(snapshot_args);
    args.extend([module.as_str(), "/data/input.txt"]);
    let mut moments = Moments(seed);
    let (printed, killed) = soak(dir.path(), &args, &mut moments, kills);
    assert!(
        killed + 3 >= kills,
        "only {killed} of {kills} kills landed before the program finished"
    );
    assert_eq!(
        text(&printed),
        text(&whole.stdout),
        "seed {seed}: killed and resumed output differs from one run"
    );
    let verify = wasnap(dir.path())
        .args(["journal", "verify", j])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}

#[test]
fn a_prepared_program_killed_anywhere_resumes_from_its_snapshots_exactly() {
    let interval = ["--snapshot-on", "interval", "--snapshot-interval", "15ms"];
    soak_module("soak.async.wasm", &interval, 0x5eed_0001, 15);
}

#[test]
fn an_unprepared_program_killed_anywhere_resumes_from_its_start_exactly() {
    soak_module("soak.wasm", &[], 0x5eed_0002, 15);
}

#[test]
fn a_kill_during_the_re_execution_itself_is_resumed_too() {
    // With no sleeps, a resumed run re-executes its tail and finishes within
    // milliseconds, so most kills land during the re-execution.
    let dir = tempfile::tempdir().unwrap();
    let data = soak_input(dir.path(), 40);
    let mount = format!("{}::/data:ro", data.display());
    let module = fixture("soak.wasm");
    let whole = run_with_input(
        dir.path(),
        &["--dir", &mount, &module, "/data/input.txt", "0"],
        b"",
    );
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let args = [
        "--journal",
        j,
        "--dir",
        &mount,
        &module,
        "/data/input.txt",
        "0",
    ];
    let mut moments = Moments(0x5eed_0003);
    let mut printed = Vec::new();
    let mut kills = 0;
    loop {
        let lines = if kills == 0 {
            20
        } else {
            moments.below(3) as usize
        };
        let (out, done) = run_and_kill(dir.path(), &args, lines, moments.below(4));
        printed.extend(out);
        if done || common::journal_says_exited(dir.path(), j) {
            break;
        }
        account_for_the_write_in_flight(dir.path(), j, &mut printed);
        kills += 1;
        assert!(kills < 50, "never finished");
    }
    assert!(kills >= 3, "only {kills} kills");
    let (got, want) = (text(&printed), text(&whole.stdout));
    if got != want {
        let got: Vec<&str> = got.lines().collect();
        let want: Vec<&str> = want.lines().collect();
        let at = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "differs at line {at} ({} lines printed, {} expected): printed {:?}, expected {:?}",
            got.len(),
            want.len(),
            &got[at.saturating_sub(1)..(at + 3).min(got.len())],
            &want[at.saturating_sub(1)..(at + 3).min(want.len())]
        );
    }
}

/// Runs `chunks.async.wasm` on `mount`, one snapshot-and-stop per chunk,
/// until it ends; returns all it printed.
fn chunk_by_chunk(dir: &Path, mount_flag: &str, mount: &str) -> String {
    let journal = dir.join("chunks.journal");
    let j = journal.to_str().unwrap();
    let module = fixture("chunks.async.wasm");
    let args = [
        "--journal",
        j,
        mount_flag,
        mount,
        "--snapshot-on",
        "explicit",
        "--stop-after-snapshot",
        &module,
        "/data/f.txt",
    ];
    let mut printed = String::new();
    for _ in 0..20 {
        let out = run_with_input(dir, &args, b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
        printed.push_str(&text(&out.stdout));
        if printed.ends_with("end\n") {
            return printed;
        }
    }
    panic!("never ended: {printed}");
}

#[test]
fn read_positions_survive_every_snapshot_on_journaled_and_host_mounts() {
    let content = "abcdefghijklmnopqrstuvwxyz0123456789";
    let expected: String = content
        .as_bytes()
        .chunks(7)
        .map(|c| format!("[{}]\n", String::from_utf8_lossy(c)))
        .chain(["end\n".to_owned()])
        .collect();
    for flag in ["--dir-copy", "--dir"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("f.txt"), content).unwrap();
        let mount = format!("{}::/data", data.display());
        assert_eq!(chunk_by_chunk(dir.path(), flag, &mount), expected, "{flag}");
    }
}

#[test]
fn a_journal_whose_input_was_edited_diverges_naming_the_record_or_goes_on_live() {
    let dir = tempfile::tempdir().unwrap();
    let data = soak_input(dir.path(), 14);
    let mount = format!("{}::/data:ro", data.display());
    let module = fixture("soak.wasm");
    let journal = dir.path().join("j");
    let j = journal.to_str().unwrap();
    let args = ["--journal", j, "--dir", &mount, &module, "/data/input.txt"];
    let (_, done) = run_and_kill(dir.path(), &args, 3, 0);
    assert!(!done);

    // Edit the bytes the program read from its input file.
    let export = wasnap(dir.path())
        .args(["journal", "export", j])
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", text(&export.stderr));
    let mut edited = String::new();
    let mut changed = false;
    for line in text(&export.stdout).lines() {
        let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
        let entry = &mut value;
        if !changed && entry["type"] == "InputReadV1" {
            let data = entry["data"].as_str().unwrap().to_owned();
            // Another letter at the same place: still base64, other bytes.
            let at = data.find(|c: char| c.is_ascii_lowercase()).unwrap();
            let mut bytes = data.into_bytes();
            bytes[at] = if bytes[at] == b'z' {
                b'y'
            } else {
                bytes[at] + 1
            };
            entry["data"] = serde_json::Value::from(String::from_utf8(bytes).unwrap());
            changed = true;
        }
        edited.push_str(&value.to_string());
        edited.push('\n');
    }
    assert!(changed, "no InputReadV1 to edit");
    let jsonl = dir.path().join("edited.jsonl");
    std::fs::write(&jsonl, edited).unwrap();
    let tampered = dir.path().join("tampered.journal");
    let import = wasnap(dir.path())
        .args(["journal", "import"])
        .arg(&jsonl)
        .arg(&tampered)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", text(&import.stderr));
    let before = std::fs::read(&tampered).unwrap();

    let t = tampered.to_str().unwrap();
    let resumed = run_with_input(
        dir.path(),
        &["--journal", t, "--dir", &mount, &module, "/data/input.txt"],
        b"",
    );
    assert_eq!(resumed.status.code(), Some(3), "{}", text(&resumed.stderr));
    let err = text(&resumed.stderr);
    assert!(
        err.contains("diverged") && err.contains("FileDescriptorWriteV1") && err.contains("offset"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&tampered).unwrap(),
        before,
        "the journal is left as it was"
    );

    // With --on-divergence live, the rest of the journal is cut off and the
    // program goes on live from the diverging call.
    let live = run_with_input(
        dir.path(),
        &[
            "--journal",
            t,
            "--on-divergence",
            "live",
            "--dir",
            &mount,
            &module,
            "/data/input.txt",
        ],
        b"",
    );
    assert!(live.status.success(), "{}", text(&live.stderr));
    assert!(
        text(&live.stderr).contains("going on live"),
        "{}",
        text(&live.stderr)
    );
    assert!(
        text(&live.stdout).contains("done: 14 steps"),
        "{}",
        text(&live.stdout)
    );
    let inspect = wasnap(dir.path())
        .args(["journal", "inspect", "--json", t])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&text(&inspect.stdout)).unwrap();
    assert!(
        report["timeline"]["lost_records"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["next_run"]["start"], "afresh", "{report}");
    // Compaction drops the lost records and the cut; the result replays.
    let compacted = dir.path().join("compacted.journal");
    let compact = wasnap(dir.path())
        .args(["journal", "compact", t])
        .arg(&compacted)
        .output()
        .unwrap();
    assert!(compact.status.success(), "{}", text(&compact.stderr));
    let again = run_with_input(
        dir.path(),
        &[
            "--journal",
            compacted.to_str().unwrap(),
            "--dir",
            &mount,
            &module,
            "/data/input.txt",
        ],
        b"",
    );
    assert!(again.status.success(), "{}", text(&again.stderr));

    // The untouched journal resumes fine.
    let fine = run_with_input(
        dir.path(),
        &["--journal", j, "--dir", &mount, &module, "/data/input.txt"],
        b"",
    );
    assert!(fine.status.success(), "{}", text(&fine.stderr));
}

#[test]
fn one_base_snapshot_serves_ten_runs_at_once_and_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let module = fixture("resume.async.wasm");
    let base = dir.path().join("base.journal");
    let b = base.to_str().unwrap();
    let made = run_with_input(
        dir.path(),
        &[
            "--journal",
            b,
            "--snapshot-on",
            "first-stdin",
            "--stop-after-snapshot",
            &module,
        ],
        b"",
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let base_bytes = std::fs::read(&base).unwrap();

    let runs: Vec<_> = (0..10)
        .map(|i| {
            let new = dir.path().join(format!("run{i}.journal"));
            let mut child = wasnap(dir.path())
                .args(["run", "--journal-readonly", b, "--journal"])
                .arg(&new)
                .arg(&module)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let input = format!("hello {i}\nline two of run {i}\n");
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            (input, child)
        })
        .collect();
    for (input, child) in runs {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let whole = run_with_input(dir.path(), &[&module], input.as_bytes());
        let joined = [made.stdout.clone(), out.stdout].concat();
        assert_eq!(text(&joined), text(&whole.stdout), "input {input:?}");
    }
    assert_eq!(
        std::fs::read(&base).unwrap(),
        base_bytes,
        "the base was written"
    );
}
