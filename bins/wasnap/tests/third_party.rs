//! Real third-party programs on `wasnap run`: the Lua interpreter and the
//! SQLite shell, built from registry sources by fixtures/third-party/build.sh
//! (nothing third-party is committed). Outputs are checked against known
//! answers.
//!
//! Where the programs have not been built (a machine without clang), these
//! tests say so on stderr and pass, unless WASNAP_REQUIRE_THIRD_PARTY=1 (set
//! by .ci/run, which builds them), where a missing program fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::text;

fn program(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("WASNAP_THIRD_PARTY_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wasnap/third-party"))
        })?;
    let path = dir.join(name);
    if path.is_file() {
        return Some(path);
    }
    let required = std::env::var("WASNAP_REQUIRE_THIRD_PARTY").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{} is missing: run fixtures/third-party/build.sh",
        path.display()
    );
    eprintln!(
        "skipped: {} is not built (run fixtures/third-party/build.sh)",
        path.display()
    );
    None
}

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/third-party/scripts")
}

fn run(args: &[&str], stdin: &str, cache: &Path) -> Output {
    common::run_with_input(cache, args, stdin.as_bytes())
}

#[test]
fn lua_runs_a_script_with_files_args_env_and_exit_code() {
    let Some(lua) = program("lua.wasm") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let mount = format!("{}::/scripts:ro", scripts().display());
    let out = run(
        &[
            "--dir",
            &mount,
            "--env",
            "LUA_TEST=from-host",
            lua.to_str().unwrap(),
            "/scripts/check.lua",
            "one",
            "two",
        ],
        "",
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "fib(25) = 75025\n\
         sorted: 3,6,22,25,41,44,63,66,82,85\n\
         pi ~ 3.141593\n\
         WASNAP-WASNAP\n\
         lengths: 3 5 5 3\n\
         lines read back: 3\n\
         renamed exists: true\n\
         removed: true\n\
         args: one two\n\
         env: from-host\n"
    );
}

#[test]
fn lua_reads_a_program_from_stdin() {
    let Some(lua) = program("lua.wasm") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let out = run(
        &[lua.to_str().unwrap(), "-"],
        "local s = 0\nfor i = 1, 100 do s = s + i * i end\nprint(s, 2^10, 7 // 2)\n",
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "338350\t1024.0\t3\n");
}

const SCHEMA: &str = "create table t(id integer primary key, name text, score real);\n\
    insert into t(name, score) values ('ada', 91.5), ('bob', 78), ('cy', 85.25);\n\
    create index by_score on t(score);\n";

const QUERIES: &str = "select count(*), sum(score) from t;\n\
    select name from t where score > 80 order by name;\n\
    select group_concat(name, ',') from (select name from t order by score desc);\n\
    with recursive c(x) as (select 1 union all select x + 1 from c where x < 100) select sum(x) from c;\n\
    select printf('%.3f', 2.0 / 3);\n";

const ANSWERS: &str = "3|254.75\nada\ncy\nada,cy,bob\n5050\n0.667\n";

#[test]
fn sqlite_answers_queries_in_memory_and_in_a_journaled_file() {
    let Some(sqlite) = program("sqlite3.wasm") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let sqlite = sqlite.to_str().unwrap();
    let out = run(
        &["--env", "HOME=/tmp", sqlite, "-batch"],
        &format!("{SCHEMA}{QUERIES}"),
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), ANSWERS);

    // A database file in the in-memory root, reopened within the run.
    let script = format!("{SCHEMA}.open /tmp/other.db\n.open /tmp/test.db\n{QUERIES}");
    let out = run(
        &["--env", "HOME=/tmp", sqlite, "-batch", "/tmp/test.db"],
        &script,
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), ANSWERS);
}

#[test]
fn sqlite_database_on_a_host_mount_persists_across_runs() {
    let Some(sqlite) = program("sqlite3.wasm") else {
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
    let Some(lua) = program("lua.wasm") else {
        return;
    };
    soak_real_program(&lua, &["/s/soak.lua"], 0x10a_0001);
}

#[test]
fn sqlite_reading_a_script_into_a_file_database_killed_anywhere_resumes_exactly() {
    let Some(sqlite) = program("sqlite3.wasm") else {
        return;
    };
    soak_real_program(&sqlite, &["/tmp/soak.db", ".read /s/soak.sql"], 0x5a1_0001);
}
