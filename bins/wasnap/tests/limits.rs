//! Limits a guest cannot break (issue 11): memory, in-memory files, time,
//! and huge sizes asked of the filesystem and of journal tools. Each limit
//! gives its documented error and exit code; wasnap's own memory stays
//! bounded (its peak RSS is read while the guest holds at the limit).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{fixture, text, wasnap};

const MIB: u64 = 1 << 20;

/// Runs `wasnap run ARGS limits.wasm MODE…` with a `hold` at the end: waits
/// for "holding", reads the process's peak RSS, then lets it finish.
/// Returns (stdout, stderr, exit code, peak RSS in bytes).
fn run_holding(cache: &Path, args: &[&str]) -> (String, String, Option<i32>, u64) {
    let mut child = wasnap(cache)
        .arg("run")
        .args(args)
        .arg("hold")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        out.push_str(&line);
        if line == "holding\n" {
            break;
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    child.stdin.take().unwrap().write_all(b"").unwrap();
    let output = child.wait_with_output().unwrap();
    out.push_str(&text(&output.stdout));
    (
        out,
        text(&output.stderr),
        output.status.code(),
        peak_kib * 1024,
    )
}

#[test]
fn max_memory_refuses_growth_and_bounds_wasnap_itself() {
    let cache = tempfile::tempdir().unwrap();
    let limits = fixture("limits.wasm");
    // The baseline: the same program holding 1 MiB.
    let (_, _, code, baseline) = run_holding(cache.path(), &[&limits, "grow", "1"]);
    assert_eq!(code, Some(0));

    let (out, err, code, peak) = run_holding(
        cache.path(),
        &["--max-memory", "32M", &limits, "grow", "512"],
    );
    assert_eq!(code, Some(1), "{out}{err}");
    let got: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(got > 0 && got < 32, "{out}");
    assert!(
        err.contains("over --max-memory (33554432 bytes): memory.grow returned -1"),
        "{err}"
    );
    println!(
        "max-memory 32 MiB: guest got {got} MiB; wasnap peak RSS {} MiB (baseline {} MiB)",
        peak / MIB,
        baseline / MIB
    );
    assert!(
        peak < baseline + 48 * MIB,
        "wasnap's RSS grew past the limit: {} MiB over a {} MiB baseline",
        peak / MIB,
        baseline / MIB
    );

    // Without the limit the same program gets all it asks for (the limit
    // is what stopped it).
    let (out, _, code, _) = run_holding(cache.path(), &[&limits, "grow", "64"]);
    assert_eq!(
        (out.lines().next(), code),
        (Some("grow: 64 of 64 MiB"), Some(0))
    );
}

#[test]
fn max_fs_bytes_gives_enospc_and_bounds_wasnap_itself() {
    let cache = tempfile::tempdir().unwrap();
    let limits = fixture("limits.wasm");
    let (_, _, _, baseline) = run_holding(cache.path(), &[&limits, "fill", "1"]);
    let (out, err, code, peak) = run_holding(
        cache.path(),
        &["--max-fs-bytes", "24M", &limits, "fill", "512"],
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.starts_with("fill: 24 of 512 MiB, ENOSPC"), "{out}");
    println!(
        "max-fs-bytes 24 MiB: wasnap peak RSS {} MiB (baseline {} MiB)",
        peak / MIB,
        baseline / MIB
    );
    assert!(peak < baseline + 48 * MIB, "{} MiB", peak / MIB);

    // The default bound (a quarter of the machine) still refuses a 1 TiB
    // file asked for four ways: errors, never an abort.
    let run = wasnap(cache.path())
        .args(["run", &limits, "sparse"])
        .output()
        .unwrap();
    assert_eq!(
        text(&run.stdout),
        "ftruncate: EFBIG\nposix_fallocate: ENOSPC\npwrite: ENOSPC\nlseek+write: ENOSPC\nsize: 0\n",
        "{}",
        text(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(0));

    // A --dir-copy larger than the limit is refused with a message.
    let big = tempfile::tempdir().unwrap();
    std::fs::write(big.path().join("blob"), vec![7u8; 3 * MIB as usize]).unwrap();
    let run = wasnap(cache.path())
        .args(["run", "--max-fs-bytes", "1M", "--dir-copy"])
        .arg(format!("{}::/data", big.path().display()))
        .args([&limits, "resize", "1"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    assert!(text(&run.stderr).contains("space"), "{}", text(&run.stderr));
}

#[test]
fn timeout_interrupts_a_loop_and_a_blocked_read() {
    let cache = tempfile::tempdir().unwrap();
    let limits = fixture("limits.wasm");
    // A loop that makes no host call: the interrupt reaches it in wasm.
    let started = Instant::now();
    let run = wasnap(cache.path())
        .args(["run", "--timeout", "300ms", &limits, "spin"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(run.status.code(), Some(124), "{}", text(&run.stderr));
    assert!(
        text(&run.stderr).contains("timed out after 0.3 s (--timeout)"),
        "{}",
        text(&run.stderr)
    );
    assert!(took < Duration::from_secs(20), "{took:?}");

    // Blocked reading a pipe that stays open: stopped all the same.
    let mut child = wasnap(cache.path())
        .args(["run", "--timeout", "300ms", &limits, "read"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let output = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(output.status.code(), Some(124), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("timed out"),
        "{}",
        text(&output.stderr)
    );

    // A run that ends in time is not touched.
    let run = wasnap(cache.path())
        .args(["run", "--timeout", "30s", &limits, "grow", "1"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
}

#[test]
fn a_journal_describing_a_huge_file_is_refused_never_aborted_on() {
    let dir = tempfile::tempdir().unwrap();
    let limits = fixture("limits.wasm");
    let journal = dir.path().join("small.journal");
    let run = wasnap(dir.path())
        .arg("run")
        .arg("--journal")
        .arg(&journal)
        .args([&limits, "resize", "4096"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let export = wasnap(dir.path())
        .args(["journal", "export"])
        .arg(&journal)
        .output()
        .unwrap();
    let jsonl = text(&export.stdout);
    assert!(jsonl.contains("\"size\":4096"), "{jsonl}");
    let huge_jsonl = dir.path().join("huge.jsonl");
    std::fs::write(
        &huge_jsonl,
        jsonl.replace("\"size\":4096", "\"size\":1099511627776"),
    )
    .unwrap();
    let huge = dir.path().join("huge.journal");
    let import = wasnap(dir.path())
        .args(["journal", "import"])
        .arg(&huge_jsonl)
        .arg(&huge)
        .output()
        .unwrap();
    assert_eq!(import.status.code(), Some(0), "{}", text(&import.stderr));

    let compact = wasnap(dir.path())
        .args(["journal", "compact"])
        .arg(&huge)
        .arg(dir.path().join("compacted.journal"))
        .output()
        .unwrap();
    assert_eq!(compact.status.code(), Some(1), "{}", text(&compact.stderr));
    assert!(
        text(&compact.stderr).contains("larger than the 4294967296 bytes the journal model holds"),
        "{}",
        text(&compact.stderr)
    );

    let before = std::fs::read(&huge).unwrap();
    let replay = wasnap(dir.path())
        .arg("run")
        .arg("--journal")
        .arg(&huge)
        .args([&limits, "resize", "4096"])
        .output()
        .unwrap();
    assert_eq!(replay.status.code(), Some(2), "{}", text(&replay.stderr));
    assert!(
        text(&replay.stderr).contains("FileDescriptorSetSizeV1")
            && text(&replay.stderr).contains("FBIG"),
        "{}",
        text(&replay.stderr)
    );
    assert_eq!(
        std::fs::read(&huge).unwrap(),
        before,
        "a refused replay changed the journal"
    );
}
