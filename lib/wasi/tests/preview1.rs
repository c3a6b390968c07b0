//! The preview1 suite fixture (every function, success and error paths) on
//! each kind of mount, plus the library's own seams: stat through the
//! context, injected clocks and randomness, traps.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use common::run;
use wasnap_wasi::fs::{resolve, Target};
use wasnap_wasi::{ExitStatus, ManualClock, SeededRandom, WasiCtx};

/// The number of checks in suite.c; a run that stops early shows fewer.
const SUITE_CHECKS: usize = 289;

fn assert_suite_passed(stdout: &str, status: &ExitStatus) {
    assert_eq!(
        stdout.lines().last().unwrap_or_default(),
        format!("suite: {SUITE_CHECKS} passed, 0 failed"),
        "suite output:\n{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert_eq!(*status, ExitStatus::Exited(0));
}

fn file_size(ctx: &WasiCtx, mount: usize, path: &str) -> Option<u64> {
    let m = &ctx.mounts()[mount];
    let resolved = resolve(m, &m.root(), path, true).ok()?;
    m.stat(&resolved).ok().map(|s| s.size)
}

#[test]
fn suite_passes_on_the_memory_root() {
    let out = run("suite.wasm", &["/"], |b| b.env("SUITE", "yes"));
    assert_suite_passed(&out.stdout, &out.status);
    // The library's view of the guest's tree after the run.
    let ctx = out.instance.ctx();
    assert_eq!(file_size(ctx, 0, "suite/pollfile"), Some(3));
    assert_eq!(file_size(ctx, 0, "suite/p"), Some(0));
    assert_eq!(file_size(ctx, 0, "suite/missing"), None);
    let m = &ctx.mounts()[0];
    let rd = resolve(m, &m.root(), "suite/rd", false).unwrap();
    let Target::Entry { .. } = rd.target else {
        panic!("rd is an entry")
    };
}

#[test]
fn suite_passes_on_a_host_mount_and_stays_inside_it() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("mounted");
    fs::create_dir(&root).unwrap();
    let out = run("suite.wasm", &["/host"], |b| {
        b.env("SUITE", "yes").host_dir(&root, "/host", false)
    });
    assert_suite_passed(&out.stdout, &out.status);
    // The effects are on the host, inside the mount and nowhere else.
    assert_eq!(fs::read(root.join("suite/pollfile")).unwrap(), b"abc");
    assert_eq!(
        fs::read_link(root.join("suite/up")).unwrap().to_str(),
        Some("../..")
    );
    let outside: Vec<_> = fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec!["mounted"]);
}

#[test]
fn suite_passes_on_a_seeded_copy_and_the_host_is_not_written() {
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("seed.txt"), "from the host\n").unwrap();
    let out = run("suite.wasm", &["/seed"], |b| {
        b.env("SUITE", "yes").seeded_dir(host.path(), "/seed")
    });
    assert_suite_passed(&out.stdout, &out.status);
    let names: Vec<_> = fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["seed.txt"]);
    let ctx = out.instance.ctx();
    assert_eq!(file_size(ctx, 1, "seed.txt"), Some(14));
    assert_eq!(file_size(ctx, 1, "suite/pollfile"), Some(3));
}

#[test]
fn a_read_only_mount_refuses_changes_with_rofs() {
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("data.txt"), "read me\n").unwrap();
    let out = run(
        "probe.wasm",
        &[
            "/ro",
            "read:data.txt",
            "write:data.txt",
            "write:new.txt",
            "mkdir:dir",
        ],
        |b| b.host_dir(host.path(), "/ro", true),
    );
    assert_eq!(
        out.stdout,
        "read:data.txt -> ok read me\nwrite:data.txt -> errno 69\nwrite:new.txt -> errno 69\nmkdir:dir -> errno 69\n"
    );
    assert_eq!(
        fs::read_to_string(host.path().join("data.txt")).unwrap(),
        "read me\n"
    );
    assert!(!host.path().join("new.txt").exists());
}

#[test]
fn host_symlinks_leading_out_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(outer.path().join("secret"), "outside\n").unwrap();
    fs::write(root.join("inside.txt"), "inside\n").unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret"), root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../secret", root.join("rel")).unwrap();
    std::os::unix::fs::symlink("../rel", root.join("sub/chain")).unwrap();
    std::os::unix::fs::symlink("../inside.txt", root.join("sub/ok")).unwrap();
    let out = run(
        "probe.wasm",
        &[
            "/r",
            "read:abs",
            "read:rel",
            "read:sub/chain",
            "read:sub/ok",
            "read:../secret",
            "read:sub/../../secret",
            "write:rel",
            "stat:rel",
        ],
        |b| b.host_dir(&root, "/r", false),
    );
    assert_eq!(
        out.stdout,
        "read:abs -> errno 76\n\
         read:rel -> errno 76\n\
         read:sub/chain -> errno 76\n\
         read:sub/ok -> ok inside\n\
         read:../secret -> errno 76\n\
         read:sub/../../secret -> errno 76\n\
         write:rel -> errno 76\n\
         stat:rel -> errno 76\n"
    );
    assert_eq!(
        fs::read_to_string(outer.path().join("secret")).unwrap(),
        "outside\n"
    );
}

#[test]
fn clocks_and_randomness_are_injectable() {
    let with = |seed: u64| {
        run("clock_random.wasm", &[], |b| {
            b.clock(ManualClock {
                realtime: 1_700_000_000_000_000_000,
                monotonic: 5_000,
                tick: 1,
            })
            .random(SeededRandom(seed))
        })
        .stdout
    };
    let first = with(7);
    assert_eq!(first, with(7), "same clock and seed, same output");
    assert_ne!(first, with(8), "the seed reaches random_get");
    // The builder reads the real-time clock once (the mounts' creation
    // time), so the guest's first reading is the second tick.
    assert!(
        first.starts_with("realtime 1700000000000000002\nmonotonic 5001\nresolution 1\n"),
        "{first}"
    );
}

#[test]
fn a_bad_guest_pointer_traps_instead_of_returning_an_errno() {
    let out = run("trap.wasm", &["oob"], |b| b);
    match out.status {
        ExitStatus::Trapped { message, backtrace } => {
            assert!(
                message.contains("out of bounds: 64 bytes at 0xfffffff0"),
                "{message}"
            );
            assert!(!backtrace.is_empty());
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(!out.stdout.contains("instead of trapping"));
}

#[test]
fn exit_codes_and_signals() {
    assert_eq!(
        run("trap.wasm", &["exit"], |b| b).status,
        ExitStatus::Exited(42)
    );
    assert_eq!(
        run("trap.wasm", &["raise"], |b| b).status,
        ExitStatus::Signaled(15)
    );
    assert_eq!(
        run("trap.wasm", &["none"], |b| b).status,
        ExitStatus::Exited(0)
    );
    let unreachable = run("trap.wasm", &["unreachable"], |b| b).status;
    let ExitStatus::Trapped { backtrace, .. } = unreachable else {
        panic!("{unreachable:?}")
    };
    assert!(backtrace[0].contains("deepest"), "{backtrace:?}");
    assert!(
        backtrace.iter().any(|f| f.contains("crash_here")),
        "{backtrace:?}"
    );
}
