//! Helpers shared by the CLI tests: fixtures, and `wasnap` processes with a
//! module cache of their own.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The path of a guest program in fixtures/wasi.
pub fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/wasi")
        .join(name)
        .display()
        .to_string()
}

/// A `wasnap` command that caches compiled modules in `cache`.
pub fn wasnap(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasnap"));
    cmd.env("WASNAP_CACHE_DIR", cache);
    cmd
}

/// Starts `wasnap run ARGS` with all three streams piped.
pub fn spawn_run(cache: &Path, args: &[&str]) -> Child {
    wasnap(cache)
        .arg("run")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `wasnap run ARGS` with `stdin` as its whole input.
pub fn run_with_input(cache: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = spawn_run(cache, args);
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
