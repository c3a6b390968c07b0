//! Real third-party programs on `wasnap run`: the Lua interpreter, the
//! SQLite shell, QuickJS-ng's `qjs` and CPython 3.11, built or unpacked from
//! registry sources by fixtures/third-party/build.sh (nothing third-party is
//! committed).
//!
//! - The cases of fixtures/third-party/cases (files, stdin, errors, exit
//!   codes) print exactly what the same programs print natively: their
//!   expected outputs come from native builds (fixtures/third-party/
//!   reference.sh), never from wasnap.
//! - Journaled runs: a second run on the same journal, `journal verify`, and
//!   `journal compact` replaying to the same tree.
//!
//! Snapshots and kill -9 resumes of the same programs: third_party_resume.rs.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Output;

use common::programs::{cases, module_cache, scripts, Program};
use common::{fixture, text, wasnap};

fn run(args: &[&str], stdin: &str, cache: &Path) -> Output {
    common::run_with_input(cache, args, stdin.as_bytes())
}

/// Runs every case of `program` and compares stdout, stderr and the exit
/// code with the native reference; reports every difference at once.
fn cases_match_native(program: Program) {
    let Some(module) = program.module() else {
        return;
    };
    let mut failures = Vec::new();
    let cases = cases(program);
    assert!(cases.len() >= 3, "{program:?}: too few cases");
    for case in &cases {
        let out = case.run(&module, false, &[]);
        if let Some(reason) = &case.xfail {
            // Known to differ (see the case's xfail): it must still differ.
            let same = out.stdout == case.stdout
                && out.stderr == case.stderr
                && out.status.code() == Some(case.status);
            if same {
                failures.push(format!(
                    "{}: now matches the native run: remove its xfail",
                    case.name
                ));
            } else {
                eprintln!("{}: differs as expected: {reason}", case.name);
            }
            continue;
        }
        if out.stdout != case.stdout {
            failures.push(format!(
                "{}: stdout\n--- native\n{}--- wasnap\n{}",
                case.name,
                text(&case.stdout),
                text(&out.stdout)
            ));
        }
        if out.stderr != case.stderr {
            failures.push(format!(
                "{}: stderr\n--- native\n{}--- wasnap\n{}",
                case.name,
                text(&case.stderr),
                text(&out.stderr)
            ));
        }
        if out.status.code() != Some(case.status) {
            failures.push(format!(
                "{}: exit {:?}, natively {}\n{}",
                case.name,
                out.status.code(),
                case.status,
                text(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lua_cases_match_native_runs() {
    cases_match_native(Program::Lua);
}

#[test]
fn sqlite_cases_match_native_runs() {
    cases_match_native(Program::Sqlite);
}

#[test]
fn quickjs_cases_match_native_runs() {
    cases_match_native(Program::QuickJs);
}

#[test]
fn cpython_cases_match_native_runs() {
    cases_match_native(Program::Python);
}

/// The tree a journal of `program` restores: /w (journaled here: an
/// in-memory copy) and /tmp, as fixtures/wasi/tree.wasm lists them over the
/// journal, with the program's mounts (descriptor numbers follow them).
fn restored_tree(journal: &Path, program: Program, w: &Path) -> String {
    let out = wasnap(&module_cache())
        .arg("run")
        .arg("--journal-readonly")
        .arg(journal)
        .arg("--force")
        .args(program.run_args(w, true))
        .args([&fixture("tree.wasm"), "walk", "/w", "/tmp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Modification times a change set implicitly are not kept by
    // compaction (they become the time of its last effect; see the README):
    // compared are the names, kinds, sizes, links, targets and contents.
    text(&out.stdout)
        .lines()
        .map(|line| {
            line.split(' ')
                .filter(|word| !word.starts_with("mtime="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each case of `program`, journaled (its `w` an in-memory copy, so the
/// journal holds its files): a second run on the same journal starts afresh
/// over the restored files; `journal verify` finds the journal intact; its
/// compaction restores the same tree.
fn journaled_runs_verify_and_compact(program: Program) {
    let Some(module) = program.module() else {
        return;
    };
    // A case known to differ (a trap) has no exit to start afresh after.
    for case in cases(program).into_iter().filter(|c| c.xfail.is_none()) {
        let dir = tempfile::tempdir().unwrap();
        let w = tempfile::tempdir().unwrap();
        let journal = dir.path().join("run.journal");
        let j = journal.to_str().unwrap();
        let args = case.args(&module, w.path(), true, &["--journal", j]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let first = common::run_with_input(&module_cache(), &args, &case.stdin);
        assert_eq!(
            first.status.code(),
            Some(case.status),
            "{}: {}",
            case.name,
            text(&first.stderr)
        );
        // The second run starts over the files the first left (a database
        // that exists, say): what it prints is the program's business; it
        // must start and end as a program does, never be refused.
        let second = common::run_with_input(&module_cache(), &args, &case.stdin);
        let err = text(&second.stderr);
        assert!(err.contains("starting it afresh"), "{}: {err}", case.name);
        let complaints: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("wasnap:") && !l.contains("starting it afresh"))
            .collect();
        assert!(
            complaints.is_empty() && second.status.code().is_some(),
            "{}: the second run failed ({:?}): {err}",
            case.name,
            second.status.code()
        );

        let verify = wasnap(dir.path())
            .args(["journal", "verify", j])
            .output()
            .unwrap();
        assert_eq!(
            verify.status.code(),
            Some(0),
            "{}: {}",
            case.name,
            text(&verify.stdout)
        );

        let compacted = dir.path().join("compacted.journal");
        let compact = wasnap(dir.path())
            .args(["journal", "compact", j])
            .arg(&compacted)
            .output()
            .unwrap();
        assert_eq!(
            compact.status.code(),
            Some(0),
            "{}: {}",
            case.name,
            text(&compact.stderr)
        );
        assert_eq!(
            restored_tree(&compacted, program, w.path()),
            restored_tree(&journal, program, w.path()),
            "{}: the compacted journal restores another tree",
            case.name
        );
    }
}

#[test]
fn lua_journals_replay_verify_and_compact() {
    journaled_runs_verify_and_compact(Program::Lua);
}

#[test]
fn sqlite_journals_replay_verify_and_compact() {
    journaled_runs_verify_and_compact(Program::Sqlite);
}

#[test]
fn quickjs_journals_replay_verify_and_compact() {
    journaled_runs_verify_and_compact(Program::QuickJs);
}

#[test]
fn cpython_journals_replay_verify_and_compact() {
    journaled_runs_verify_and_compact(Program::Python);
}

/// The schema and queries of the SQLite cases, and the answers the native
/// shell gives to both (the sqlite-stdin case).
const SCHEMA: &str = include_str!("../../../fixtures/third-party/scripts/schema.sql");
const QUERIES: &str = include_str!("../../../fixtures/third-party/scripts/queries.sql");
const ANSWERS: &str = include_str!("../../../fixtures/third-party/cases/sqlite-stdin/stdout");

#[test]
fn sqlite_database_on_a_host_mount_persists_across_runs() {
    let Some(sqlite) = Program::Sqlite.module() else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mount = format!("{}::/data", data.path().display());
    let sqlite = sqlite.to_str().unwrap();
    let out = run(
        &[
            "--dir",
            &mount,
            "--env",
            "HOME=/tmp",
            sqlite,
            "-batch",
            "/data/scores.db",
        ],
        SCHEMA,
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(data.path().join("scores.db").metadata().unwrap().len() > 0);
    let out = run(
        &[
            "--dir",
            &mount,
            "--env",
            "HOME=/tmp",
            sqlite,
            "-batch",
            "/data/scores.db",
        ],
        QUERIES,
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), ANSWERS);
}

/// Kill -9 at random moments, resume with the same command, repeatedly:
/// the output is what one uninterrupted run prints.
fn soak_real_program(module: &Path, tail_args: &[&str], seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mount = format!("{}::/s:ro", scripts().display());
    let module = module.to_str().unwrap();
    let mut plain = vec!["--dir", mount.as_str(), "--env", "HOME=/tmp", module];
    plain.extend_from_slice(tail_args);
    let whole = run(&plain, "", dir.path());
    assert!(whole.status.success(), "{}", text(&whole.stderr));

    let journal = dir.path().join("soak.journal");
    let mut args = vec!["--journal", journal.to_str().unwrap()];
    args.extend_from_slice(&plain);
    let mut moments = common::Moments(seed);
    let (printed, killed) = common::soak(dir.path(), &args, &mut moments, 10);
    assert!(killed >= 5, "only {killed} kills landed");
    assert_eq!(text(&printed), text(&whole.stdout), "seed {seed}");
}

#[test]
fn lua_killed_anywhere_resumes_exactly() {
    let Some(lua) = Program::Lua.module() else {
        return;
    };
    soak_real_program(&lua, &["/s/soak.lua"], 0x10a_0001);
}

#[test]
fn sqlite_reading_a_script_into_a_file_database_killed_anywhere_resumes_exactly() {
    let Some(sqlite) = Program::Sqlite.module() else {
        return;
    };
    soak_real_program(&sqlite, &["/tmp/soak.db", ".read /s/soak.sql"], 0x5a1_0001);
}
