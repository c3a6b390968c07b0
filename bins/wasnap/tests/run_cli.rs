//! `wasnap run`, driven end to end through the binary: exit codes, stdio,
//! mounts, traps, bad modules, the module cache, sockets.
#![allow(clippy::unwrap_used)]

mod common;

use common::text;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/wasi")
        .join(name)
}

/// A `wasnap` command with its own module cache.
fn wasnap(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasnap"));
    cmd.env("WASNAP_CACHE_DIR", cache).env_remove("GREETING");
    cmd
}

fn run(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    wasnap(cache.path()).arg("run").args(args).output().unwrap()
}

fn wat_module(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, wasmer::wat2wasm(wat.as_bytes()).unwrap()).unwrap();
    path
}

#[test]
fn the_bundled_example_runs_with_args_env_and_exit_code() {
    let hello = fixture("hello.wasm");
    let out = run(&[
        "--env",
        "GREETING=Howdy",
        hello.to_str().unwrap(),
        "--",
        "--exit",
        "7",
        "last",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Howdy from wasnap!\narg 1: --exit\narg 2: 7\narg 3: last\nread back: written inside the sandbox\n"
    );
}

#[test]
fn env_inherit_passes_the_environment_and_env_wins() {
    let cache = tempfile::tempdir().unwrap();
    let hello = fixture("hello.wasm");
    let out = wasnap(cache.path())
        .args(["run", "--env-inherit"])
        .arg(&hello)
        .env("GREETING", "Inherited")
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).starts_with("Inherited from wasnap!"),
        "{}",
        text(&out.stdout)
    );
    let out = wasnap(cache.path())
        .args(["run", "--env"])
        .arg("GREETING=Explicit")
        .arg(&hello)
        .env("GREETING", "Inherited")
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).starts_with("Explicit from wasnap!"),
        "not inherited without --env-inherit"
    );
    let out = wasnap(cache.path())
        .args(["run", "--env-inherit", "--env", "GREETING=Wins"])
        .arg(&hello)
        .env("GREETING", "Inherited")
        .output()
        .unwrap();
    assert!(text(&out.stdout).starts_with("Wins from wasnap!"));
}

#[test]
fn stdin_passes_through_and_poll_waits_for_it() {
    let cache = tempfile::tempdir().unwrap();
    let mut child = wasnap(cache.path())
        .args(["run"])
        .arg(fixture("stdin_poll.wasm"))
        .arg("5000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stdin.write_all(b"first line\nsecond\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "FIRST LINE\nSECOND\n");
}

#[test]
fn poll_times_out_when_no_input_comes() {
    let cache = tempfile::tempdir().unwrap();
    let mut child = wasnap(cache.path())
        .args(["run"])
        .arg(fixture("stdin_poll.wasm"))
        .arg("200")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep stdin open and silent.
    let _stdin = child.stdin.take().unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "timeout\n");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn a_trap_prints_a_backtrace_and_exits_134() {
    let out = run(&[fixture("trap.wasm").to_str().unwrap(), "unreachable"]);
    assert_eq!(out.status.code(), Some(134));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("trap.wasm trapped: unreachable"),
        "{stderr}"
    );
    assert!(stderr.contains("wasm backtrace:"), "{stderr}");
    assert!(stderr.contains("deepest @ 0x"), "{stderr}");
    assert!(stderr.contains("crash_here"), "{stderr}");
    let out = run(&[fixture("trap.wasm").to_str().unwrap(), "oob"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(
        text(&out.stderr).contains("guest memory access out of bounds"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[fixture("trap.wasm").to_str().unwrap(), "raise"]);
    assert_eq!(out.status.code(), Some(128 + 15));
}

#[test]
fn an_exit_status_outside_wasi_range_is_never_success() {
    let trap = fixture("trap.wasm");
    let trap = trap.to_str().unwrap();
    for (status, code) in [("125", 125), ("126", 1), ("256", 1), ("1000", 1)] {
        let out = run(&[trap, "exit-status", status]);
        assert_eq!(out.status.code(), Some(code), "proc_exit({status})");
        if code == 1 {
            assert!(
                text(&out.stderr).contains(&format!("exited with status {status}, outside")),
                "{}",
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn a_non_utf8_environment_is_refused_by_name_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let cache = tempfile::tempdir().unwrap();
    let out = wasnap(cache.path())
        .args(["run", "--env-inherit"])
        .arg(fixture("hello.wasm"))
        .env_clear()
        .env("BAD_VALUE", std::ffi::OsStr::from_bytes(b"\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("BAD_VALUE") && text(&out.stderr).contains("not UTF-8"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_modules_get_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wasm");
    let out = run(&[missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("missing.wasm") && stderr.contains("No such file"),
        "{stderr}"
    );

    let text_file = dir.path().join("notes.wasm");
    std::fs::write(&text_file, "hello, not wasm").unwrap();
    let out = run(&[text_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("notes.wasm") && stderr.contains("not a WebAssembly module"),
        "{stderr}"
    );

    let corrupt = dir.path().join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm\x01\0\0\0\x01\xff\xff").unwrap();
    let out = run(&[corrupt.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("corrupt.wasm"),
        "{}",
        text(&out.stderr)
    );

    let reactor = wat_module(
        dir.path(),
        "reactor.wasm",
        r#"(module (memory (export "memory") 1) (func (export "_initialize")))"#,
    );
    let out = run(&[reactor.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("reactor.wasm") && stderr.contains("no `_start`"),
        "{stderr}"
    );

    let imports = wat_module(
        dir.path(),
        "imports.wasm",
        r#"(module
             (import "env" "host_magic" (func))
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (import "wasi_snapshot_preview1" "sock_open" (func))
             (memory (export "memory") 1)
             (func (export "_start")))"#,
    );
    let out = run(&[imports.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("imports.wasm"), "{stderr}");
    assert!(
        stderr.contains("env.host_magic, wasi_snapshot_preview1.sock_open"),
        "{stderr}"
    );
    assert!(!stderr.contains("fd_write"), "{stderr}");
}

/// A module printing `word` (three letters) and a newline.
fn printer(word: &str) -> String {
    format!(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 16) "{word}\n")
             (func (export "_start")
               (i32.store (i32.const 0) (i32.const 16))
               (i32.store (i32.const 4) (i32.const 4))
               (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    )
}

/// A module file unchanged since a load that hashed it is not read again;
/// rewritten in place with a program of the same length, it is.
#[test]
fn an_unchanged_module_file_is_not_hashed_again_and_a_rewritten_one_is() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = wat_module(dir.path(), "prog.wasm", &printer("one"));
    let start = || {
        let out = wasnap(cache.path())
            .args(["run", "-v"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    // Changed moments ago: hashed every time, never remembered.
    let (out, err) = start();
    assert_eq!(out, "one\n");
    assert!(err.contains("compiled and cached"), "{err}");
    let (_, err) = start();
    assert!(err.contains("loaded from the cache in"), "{err}");
    // Settled: the next load remembers its hashes, the one after uses them.
    std::thread::sleep(Duration::from_millis(2100));
    let (_, err) = start();
    assert!(err.contains("loaded from the cache in"), "{err}");
    let (out, err) = start();
    assert_eq!(out, "one\n");
    assert!(err.contains("file unchanged"), "{err}");
    // Rewritten in place, same length: the new program runs.
    let other_wat = printer("two");
    let other = wasmer::wat2wasm(other_wat.as_bytes()).unwrap();
    assert_eq!(
        other.len(),
        std::fs::metadata(&path).unwrap().len() as usize
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(&other)
        .unwrap();
    let (out, err) = start();
    assert_eq!(out, "two\n");
    assert!(err.contains("compiled and cached"), "{err}");
}

#[test]
fn a_second_start_loads_the_compiled_module_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let hello = fixture("hello.wasm");
    let first = wasnap(cache.path())
        .args(["run", "-v"])
        .arg(&hello)
        .output()
        .unwrap();
    assert!(
        text(&first.stderr).contains("compiled and cached"),
        "{}",
        text(&first.stderr)
    );
    let second = wasnap(cache.path())
        .args(["run", "-v"])
        .arg(&hello)
        .output()
        .unwrap();
    assert!(
        text(&second.stderr).contains("loaded from the cache"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(first.stdout, second.stdout);

    // A damaged cache file is ignored and rewritten, never fatal.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "module") {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let third = wasnap(cache.path())
        .args(["run", "-v"])
        .arg(&hello)
        .output()
        .unwrap();
    assert_eq!(third.status.code(), Some(0));
    assert!(
        text(&third.stderr).contains("compiled and cached")
            && text(&third.stderr).contains("failed its integrity check"),
        "{}",
        text(&third.stderr)
    );
    assert_eq!(third.stdout, first.stdout);

    let uncached = wasnap(cache.path())
        .args(["run", "-v", "--no-cache"])
        .arg(&hello)
        .output()
        .unwrap();
    assert!(
        text(&uncached.stderr).contains("compiled (not cached)"),
        "{}",
        text(&uncached.stderr)
    );
}

#[test]
fn dir_mounts_host_directories_and_dir_copy_never_writes_the_host() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in.txt"), "host file\n").unwrap();
    let spec = format!("{}::/data", host.path().display());
    let out = run(&[
        "--dir",
        &spec,
        fixture("probe.wasm").to_str().unwrap(),
        "/data",
        "read:in.txt",
        "write:out.txt",
    ]);
    assert_eq!(
        text(&out.stdout),
        "read:in.txt -> ok host file\nwrite:out.txt -> ok \n"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("out.txt")).unwrap(),
        "probe\n"
    );

    let ro = format!("{}::/data:ro", host.path().display());
    let out = run(&[
        "--dir",
        &ro,
        fixture("probe.wasm").to_str().unwrap(),
        "/data",
        "read:out.txt",
        "write:x.txt",
    ]);
    assert_eq!(
        text(&out.stdout),
        "read:out.txt -> ok probe\nwrite:x.txt -> errno 69\n"
    );

    let copy = format!("{}::/copy", host.path().display());
    let out = run(&[
        "--dir-copy",
        &copy,
        fixture("probe.wasm").to_str().unwrap(),
        "/copy",
        "write:in.txt",
        "read:in.txt",
        "write:new.txt",
    ]);
    assert_eq!(
        text(&out.stdout),
        "write:in.txt -> ok \nread:in.txt -> ok probe\nwrite:new.txt -> ok \n"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("in.txt")).unwrap(),
        "host file\n"
    );
    assert!(!host.path().join("new.txt").exists());
    assert!(!host.path().join("x.txt").exists());

    let out = run(&[
        "--dir",
        "/definitely/not/here",
        fixture("hello.wasm").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/definitely/not/here"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sockets_accept_receive_send_and_shut_down() {
    // Find a free port, then hand it to the guest's listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cache = tempfile::tempdir().unwrap();
    let journal = cache.path().join("echo.journal");
    let child = wasnap(cache.path())
        .args(["run", "--listen", &addr, "--journal"])
        .arg(&journal)
        .arg(fixture("echo_server.wasm"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match std::net::TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot connect to the guest: {e}"),
        }
    };
    stream.write_all(b"hello, guest").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "HELLO, GUEST");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "echoed 12 bytes\n");
    // What the guest received is journaled as input.
    let export = wasnap(cache.path())
        .args(["journal", "export"])
        .arg(&journal)
        .output()
        .unwrap();
    let received: Vec<u8> = text(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|e| e["type"] == "InputReadV1")
        .flat_map(|e| common::base64_decode(e["data"].as_str().unwrap()))
        .collect();
    assert_eq!(text(&received), "hello, guest");
}
