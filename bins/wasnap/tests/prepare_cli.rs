//! `wasnap prepare` (asyncify with wasm-opt) and the load-time export of
//! mutable globals. Needs Binaryen's wasm-opt (`.ci/run` installs it); where
//! it is missing these tests say so and pass, unless
//! WASNAP_REQUIRE_THIRD_PARTY=1.
#![allow(clippy::unwrap_used)]

mod common;

use common::text;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/wasi")
        .join(name)
}

fn wasnap(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .env("WASNAP_CACHE_DIR", cache)
        .args(args)
        .output()
        .unwrap()
}

fn have_wasm_opt() -> bool {
    if wasnap_prepare::asyncify::find_wasm_opt().is_some() {
        return true;
    }
    let required = std::env::var("WASNAP_REQUIRE_THIRD_PARTY").is_ok_and(|v| v == "1");
    assert!(!required, "wasm-opt is missing: install Debian's binaryen");
    eprintln!("skipped: wasm-opt (Binaryen) is not installed");
    false
}

#[test]
fn prepare_adds_asyncify_and_the_program_behaves_the_same() {
    if !have_wasm_opt() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello.async.wasm");
    let hello = fixture("hello.wasm");
    let prepared = wasnap(
        dir.path(),
        &[
            "prepare",
            hello.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        prepared.status.code(),
        Some(0),
        "{}",
        text(&prepared.stderr)
    );
    assert!(
        text(&prepared.stdout).contains("bytes ->"),
        "{}",
        text(&prepared.stdout)
    );
    assert!(wasnap_prepare::asyncify::has_asyncify(&std::fs::read(&out).unwrap()).unwrap());
    assert!(!wasnap_prepare::asyncify::has_asyncify(&std::fs::read(&hello).unwrap()).unwrap());

    let original = wasnap(dir.path(), &["run", hello.to_str().unwrap(), "a", "b"]);
    let async_run = wasnap(dir.path(), &["run", out.to_str().unwrap(), "a", "b"]);
    assert_eq!(original.stdout, async_run.stdout);

    // The output is not replaced without --force.
    let again = wasnap(
        dir.path(),
        &[
            "prepare",
            hello.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn prepare_explains_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    let missing = Command::new(env!("CARGO_BIN_EXE_wasnap"))
        .env("WASM_OPT", dir.path().join("no-such-wasm-opt"))
        .args([
            "prepare",
            fixture("hello.wasm").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("no-such-wasm-opt"),
        "{}",
        text(&missing.stderr)
    );
    assert!(!out.exists());

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "text").unwrap();
    let not_wasm = wasnap(
        dir.path(),
        &[
            "prepare",
            notes.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(not_wasm.status.code(), Some(2));
    assert!(
        text(&not_wasm.stderr).contains("notes.txt is not a WebAssembly module"),
        "{}",
        text(&not_wasm.stderr)
    );
}
