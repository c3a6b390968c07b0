//! Snapshots and resumes of the real programs (Lua, SQLite, QuickJS,
//! CPython), prepared for snapshots once per machine (see
//! common/programs.rs):
//!
//! - a snapshot at the first read of standard input, then one when input
//!   runs dry (idle), each stopping the process, resumed in a new process
//!   with more input: what the three processes print together is what one
//!   uninterrupted run prints;
//! - interval snapshots during CPU-heavy work, kill -9 at random moments,
//!   resume with the same command until it ends: byte-identical output.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use common::programs::{module_cache, Program};
use common::{text, wasnap};

/// The script (and its arguments) that answers lines of standard input.
fn lines_args(program: Program) -> Vec<&'static str> {
    match program {
        Program::Lua => vec!["s/lines.lua"],
        Program::QuickJs => vec!["--std", "s/lines.js"],
        Program::Python => vec!["s/lines.py"],
        Program::Sqlite => vec!["-batch", "w/lines.db"],
    }
}

/// Three pieces of input, one per process of the chain.
fn inputs(program: Program) -> [&'static str; 3] {
    match program {
        Program::Sqlite => [
            "create table t(x integer, name text);\n",
            "insert into t values (1, 'alpha'), (2, 'beta');\nselect sum(x), group_concat(name) from t;\n",
            "insert into t values (40, 'gamma');\nselect count(*), sum(x) from t;\n",
        ],
        _ => ["alpha\n", "beta gamma\n", "delta\nepsilon zeta\n"],
    }
}

/// `wasnap run BEFORE… <program's mounts> MODULE ARGS…` with standard input
/// holding `input` and left open (so a read past it waits: idle), or
/// closed after `input` with `close`.
fn run_chained(args: &[String], input: &str, close: bool) -> Output {
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer.write_all(input.as_bytes()).unwrap();
    let child = wasnap(&module_cache())
        .arg("run")
        .args(args)
        .stdin(reader)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if close {
        drop(writer);
        return child.wait_with_output().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    drop(writer);
    out
}

fn args_for(program: Program, module: &Path, w: &Path, before: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = before.iter().map(|s| (*s).to_owned()).collect();
    args.extend(program.run_args(w, true));
    args.push(module.display().to_string());
    args.extend(lines_args(program).into_iter().map(str::to_owned));
    args
}

fn snapshot_at_stdin_then_idle_and_resume(program: Program) {
    let Some(module) = program.prepared() else {
        return;
    };
    let [first, second, third] = inputs(program);
    let w = tempfile::tempdir().unwrap();

    let whole = run_chained(
        &args_for(program, &module, w.path(), &[]),
        &[first, second, third].concat(),
        true,
    );
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));

    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("chain.journal");
    let j = journal.to_str().unwrap();
    let at_stdin = args_for(
        program,
        &module,
        w.path(),
        &[
            "--journal",
            j,
            "--snapshot-on",
            "first-stdin",
            "--stop-after-snapshot",
        ],
    );
    let one = run_chained(&at_stdin, "", false);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    assert!(
        text(&one.stderr).contains("snapshot written"),
        "{}",
        text(&one.stderr)
    );

    let at_idle = args_for(
        program,
        &module,
        w.path(),
        &[
            "--journal",
            j,
            "--snapshot-on",
            "idle",
            "--stop-after-snapshot",
        ],
    );
    let two = run_chained(&at_idle, first, false);
    assert_eq!(two.status.code(), Some(0), "{}", text(&two.stderr));
    assert!(
        text(&two.stderr).contains("snapshot written"),
        "{}",
        text(&two.stderr)
    );

    // Chained again: an idle snapshot of the resumed process, resumed.
    let three = run_chained(&at_idle, second, false);
    assert_eq!(three.status.code(), Some(0), "{}", text(&three.stderr));
    assert!(
        text(&three.stderr).contains("snapshot written"),
        "{}",
        text(&three.stderr)
    );

    let last = args_for(program, &module, w.path(), &["--journal", j]);
    let four = run_chained(&last, third, true);
    assert_eq!(four.status.code(), Some(0), "{}", text(&four.stderr));

    let combined = [one.stdout, two.stdout, three.stdout, four.stdout].concat();
    assert_eq!(text(&combined), text(&whole.stdout), "{program:?}");
    assert!(!whole.stdout.is_empty());
}

#[test]
fn lua_snapshots_at_stdin_and_idle_resume_exactly() {
    snapshot_at_stdin_then_idle_and_resume(Program::Lua);
}

#[test]
fn sqlite_snapshots_at_stdin_and_idle_resume_exactly() {
    snapshot_at_stdin_then_idle_and_resume(Program::Sqlite);
}

#[test]
fn quickjs_snapshots_at_stdin_and_idle_resume_exactly() {
    snapshot_at_stdin_then_idle_and_resume(Program::QuickJs);
}

#[test]
fn cpython_snapshots_at_stdin_and_idle_resume_exactly() {
    snapshot_at_stdin_then_idle_and_resume(Program::Python);
}

/// The CPU-heavy script of each program.
fn soak_args(program: Program) -> Vec<&'static str> {
    match program {
        Program::Lua => vec!["s/soak.lua"],
        Program::QuickJs => vec!["--std", "s/soak.js"],
        Program::Python => vec!["s/soak.py"],
        Program::Sqlite => vec!["/tmp/soak.db", ".read s/soak.sql"],
    }
}

/// Interval snapshots, kill -9 at random moments (a bounded number), and
/// the same command again until the program ends: the output is what one
/// uninterrupted run prints.
fn killed_during_interval_snapshots_resumes_exactly(program: Program, seed: u64) {
    let Some(module) = program.prepared() else {
        return;
    };
    let w = tempfile::tempdir().unwrap();
    let mut plain: Vec<String> = program.run_args(w.path(), true);
    plain.push("--env".to_owned());
    plain.push("HOME=/tmp".to_owned());
    plain.push(module.display().to_string());
    plain.extend(soak_args(program).into_iter().map(str::to_owned));
    let plain_refs: Vec<&str> = plain.iter().map(String::as_str).collect();
    let whole = common::run_with_input(&module_cache(), &plain_refs, b"");
    assert!(whole.status.success(), "{}", text(&whole.stderr));

    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("soak.journal");
    let mut args = vec![
        "--journal",
        journal.to_str().unwrap(),
        "--snapshot-on",
        "interval",
        "--snapshot-interval",
        "40ms",
    ];
    args.extend_from_slice(&plain_refs);
    let mut moments = common::Moments(seed);
    let (printed, killed) = common::soak(&module_cache(), &args, &mut moments, 8);
    assert!(killed >= 4, "only {killed} kills landed");
    assert_eq!(
        text(&printed),
        text(&whole.stdout),
        "{program:?}, seed {seed:#x}"
    );
    let inspect = wasnap(&module_cache())
        .args(["journal", "inspect", journal.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        text(&inspect.stdout).contains("SnapshotV1"),
        "no snapshot was taken:\n{}",
        text(&inspect.stdout)
    );
}

#[test]
fn lua_killed_during_interval_snapshots_resumes_exactly() {
    killed_during_interval_snapshots_resumes_exactly(Program::Lua, 0x10a_5a09);
}

#[test]
fn sqlite_killed_during_interval_snapshots_resumes_exactly() {
    killed_during_interval_snapshots_resumes_exactly(Program::Sqlite, 0x5a1_5a09);
}

#[test]
fn quickjs_killed_during_interval_snapshots_resumes_exactly() {
    killed_during_interval_snapshots_resumes_exactly(Program::QuickJs, 0x915_5a09);
}

#[test]
fn cpython_killed_during_interval_snapshots_resumes_exactly() {
    killed_during_interval_snapshots_resumes_exactly(Program::Python, 0x9e7_5a09);
}
