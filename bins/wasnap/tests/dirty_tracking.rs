//! Dirty-page tracking is exact: a program writes random pages between
//! snapshots (from guest code, through `fd_read`, into memory grown since
//! the last snapshot). At every snapshot, the memory the journal restores
//! is the same whether the kernel tracked the written pages or the
//! snapshot compared the whole memory with its previous copy (the fallback,
//! exact by construction); so it is for a chain of resumes, each mapping
//! memory from the journal and tracking writes over the mapping; so it is
//! when every snapshot is written by a child process forked in the pause
//! while the program goes on writing pages; and every run ends with the
//! output of a run without snapshots.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{fixture, images_at_snapshots, text};

const STEPS: &str = "9";

/// How a run finds changed pages and writes its snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The kernel tracks written pages (where it can); small snapshots are
    /// written in the pause.
    Kernel,
    /// Memory is compared with its previous copy.
    Compare,
    /// The kernel tracks, and every snapshot is written by a child process
    /// while the program goes on writing pages.
    Child,
}

const MODES: [Mode; 3] = [Mode::Kernel, Mode::Compare, Mode::Child];

/// Runs `wasnap run ARGS` in `dir` in `mode`.
fn wasnap(dir: &Path, mode: Mode, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasnap"));
    command
        .current_dir(dir)
        .env("WASNAP_CACHE_DIR", dir.join("cache"))
        .env_remove("WASNAP_DIRTY_TRACKING")
        .env("WASNAP_SNAPSHOT_CHILD_MIN", "off")
        .arg("run")
        .args(args);
    match mode {
        Mode::Kernel => {}
        Mode::Compare => {
            command.env("WASNAP_DIRTY_TRACKING", "compare");
        }
        Mode::Child => {
            command.env("WASNAP_SNAPSHOT_CHILD_MIN", "0");
        }
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(at) => format!("first difference at byte {at} (page {})", at / 4096),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

#[test]
fn tracked_pages_restore_the_same_memory_as_comparing() {
    let module = fixture("pages.async.wasm");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(dir.path().join("data/input"), &data).unwrap();
    let mut kernel_seen = false;
    for seed in 1..=6u32 {
        let seed = seed.to_string();
        let program = [module.as_str(), &seed, STEPS, "/data/input"];
        let dir_arg = ["--dir", "data::/data"];
        // Without snapshots: the output every other run must print.
        let (code, expected, stderr) = wasnap(
            dir.path(),
            Mode::Kernel,
            &[&dir_arg[..], &program[..]].concat(),
        );
        assert_eq!(code, 0, "{stderr}");
        let mut per_mode = Vec::new();
        for mode in MODES {
            let journal = dir.path().join(format!("whole-{seed}-{mode:?}"));
            let j = journal.to_str().unwrap();
            let args = [
                &["-v", "--journal", j, "--snapshot-on", "explicit"][..],
                &dir_arg,
                &program,
            ]
            .concat();
            let (code, out, stderr) = wasnap(dir.path(), mode, &args);
            assert_eq!(code, 0, "{stderr}");
            assert_eq!(out, expected, "seed {seed}, {mode:?}");
            let tracked = stderr.contains("(written pages tracked by the kernel");
            match mode {
                Mode::Kernel => kernel_seen |= tracked,
                Mode::Compare => assert!(
                    !tracked && stderr.contains("(memory compared with the previous snapshot"),
                    "{stderr}"
                ),
                Mode::Child => assert_eq!(
                    stderr.matches("written by a child process").count(),
                    9,
                    "every snapshot written by a child: {stderr}"
                ),
            }
            per_mode.push(images_at_snapshots(&journal));
        }
        let compared = &per_mode[1];
        assert_eq!(compared.len(), 9, "one snapshot per step");
        for (mode, images) in MODES.iter().zip(&per_mode) {
            assert_eq!(images.len(), compared.len(), "{mode:?}");
            for (k, (a, b)) in images.iter().zip(compared).enumerate() {
                assert!(
                    a == b,
                    "seed {seed}, snapshot {k}: {mode:?} and compared memory differ: {}",
                    first_difference(a, b)
                );
            }
        }
        // A chain of resumes, each stopping after its snapshot: memory is
        // mapped from the journal and written over the mapping.
        for mode in MODES {
            let journal = dir.path().join(format!("chain-{seed}-{mode:?}"));
            let j = journal.to_str().unwrap();
            let args = [
                &[
                    "-v",
                    "--journal",
                    j,
                    "--snapshot-on",
                    "explicit",
                    "--stop-after-snapshot",
                ][..],
                &dir_arg,
                &program,
            ]
            .concat();
            let mut output = String::new();
            for round in 0..=9 {
                let (code, out, stderr) = wasnap(dir.path(), mode, &args);
                output.push_str(&out);
                if round > 0 && mode != Mode::Compare {
                    assert!(stderr.contains("mapped from the journal"), "{stderr}");
                }
                if code == 0 && round == 9 {
                    break;
                }
                assert_eq!(code, 0, "round {round}: {stderr}");
            }
            assert_eq!(
                output, expected,
                "seed {seed}, {mode:?}: the chain's output"
            );
            let chained = images_at_snapshots(&journal);
            assert_eq!(chained.len(), 9);
            for (k, (a, b)) in chained.iter().zip(compared).enumerate() {
                assert!(
                    a == b,
                    "seed {seed}, {mode:?}, snapshot {k} of the chain differs: {}",
                    first_difference(a, b)
                );
            }
        }
    }
    let required = std::env::var_os("WASNAP_REQUIRE_DIRTY_TRACKING").is_some();
    assert!(
        kernel_seen || !required,
        "the kernel did not track written pages (WASNAP_REQUIRE_DIRTY_TRACKING is set)"
    );
}
