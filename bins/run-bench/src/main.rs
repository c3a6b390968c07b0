//! Journaling overhead: runs fixtures/wasi/writer.wasm (200,000 lines of
//! about 60 bytes plus 300 small files, all into the journaled in-memory
//! root) with the journal off and on, alternating, and prints the best and
//! median wall times, their ratio, and the journal's size.
//!
//! With `--snapshots` it measures snapshots instead: the pause of a snapshot
//! against heap size and the fraction of memory changed since the previous
//! one, the journal bytes per snapshot, and resuming a program with a heavy
//! start-up phase against starting it cold.
//!
//! With `--resume`: re-executing a run from its journal against the run
//! itself, and the journaling overhead of CPU-heavy Lua and SQLite scripts.
//!
//! With `--cpython`: CPython importing about 200 modules, cold start
//! against resume from its first-stdin snapshot.
//!
//! With `--recovery`: the time to read and to reopen a journal torn inside
//! a large last record, against its size.
//!
//! usage: run-bench [--repeat N] [--lines N] [--files N] [--json] [--snapshots | --resume | --cpython | --recovery]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wasnap_runtime::{JournalTarget, ModuleCache, Process, ProcessOptions, Program};
use wasnap_wasi::{BufferInput, ExitStatus, SharedOutput, WasiCtx};

mod cpython;
mod recovery;
mod resume;
mod snapshots;

struct Args {
    repeat: usize,
    lines: u64,
    files: u64,
    json: bool,
    snapshots: bool,
    resume: bool,
    cpython: bool,
    recovery: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        repeat: 7,
        lines: 200_000,
        files: 300,
        json: false,
        snapshots: false,
        resume: false,
        cpython: false,
        recovery: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--repeat" => args.repeat = number("--repeat")?.max(1) as usize,
            "--lines" => args.lines = number("--lines")?,
            "--files" => args.files = number("--files")?,
            "--json" => args.json = true,
            "--snapshots" => args.snapshots = true,
            "--resume" => args.resume = true,
            "--cpython" => args.cpython = true,
            "--recovery" => args.recovery = true,
            "--help" | "-h" => {
                return Err(
                    "usage: run-bench [--repeat N] [--lines N] [--files N] [--json] [--snapshots | --resume | --cpython | --recovery]".into(),
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/wasi/writer.wasm")
}

/// One run through the runtime; returns its wall time (journal open to
/// exit, journal flushed) and the journal's size.
fn run_once(program: &Program, args: &Args, journal: Option<&std::path::Path>) -> (Duration, u64) {
    let ctx = WasiCtx::builder()
        .arg("writer.wasm")
        .arg(args.lines.to_string())
        .arg(args.files.to_string())
        .stdin(BufferInput::new(Vec::new()))
        .stdout(SharedOutput::default())
        .build()
        .expect("context");
    if let Some(path) = journal {
        let _ = std::fs::remove_file(path);
    }
    let started = Instant::now();
    let options = ProcessOptions {
        journal: journal.map(|p| JournalTarget::File(p.to_owned())),
        ..ProcessOptions::default()
    };
    let report = Process::start(program, ctx, options)
        .expect("process starts")
        .run()
        .expect("process runs");
    assert_eq!(report.status, ExitStatus::Exited(0));
    drop(report);
    let elapsed = started.elapsed();
    let size = journal
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    (elapsed, size)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if args.snapshots {
        snapshots::run(args.json);
        return;
    }
    if args.resume {
        resume::run(args.json, args.repeat);
        return;
    }
    if args.recovery {
        recovery::run(args.json);
        return;
    }
    if args.cpython {
        cpython::run(args.json, args.repeat.min(5));
        return;
    }
    let program = Program::load(&fixture(), &ModuleCache::disabled()).expect("writer.wasm loads");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.journal");
    // Warm up both paths once.
    run_once(&program, &args, None);
    run_once(&program, &args, Some(&path));
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..args.repeat {
        off.push(run_once(&program, &args, None).0);
        let (t, s) = run_once(&program, &args, Some(&path));
        on.push(t);
        size = s;
    }
    let best = |v: &Vec<Duration>| v.iter().min().copied().unwrap_or_default();
    let (off_best, on_best) = (best(&off), best(&on));
    let (off_med, on_med) = (median(off), median(on));
    let ratio_best = on_best.as_secs_f64() / off_best.as_secs_f64();
    let ratio_med = on_med.as_secs_f64() / off_med.as_secs_f64();
    let data = args.lines * 60 + args.files * 50;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "case": "journaling overhead, writer.wasm",
                "lines": args.lines, "files": args.files, "repeat": args.repeat,
                "off_best_ms": off_best.as_secs_f64() * 1e3, "on_best_ms": on_best.as_secs_f64() * 1e3,
                "off_median_ms": off_med.as_secs_f64() * 1e3, "on_median_ms": on_med.as_secs_f64() * 1e3,
                "overhead_best": ratio_best - 1.0, "overhead_median": ratio_med - 1.0,
                "journal_bytes": size,
            })
        );
    } else {
        println!("journaling overhead: writer.wasm, {} lines + {} files (~{:.1} MB of file data), {} runs each, alternating", args.lines, args.files, data as f64 / 1e6, args.repeat);
        println!(
            "  journal off   best {:>8.1} ms   median {:>8.1} ms",
            off_best.as_secs_f64() * 1e3,
            off_med.as_secs_f64() * 1e3
        );
        println!(
            "  journal on    best {:>8.1} ms   median {:>8.1} ms",
            on_best.as_secs_f64() * 1e3,
            on_med.as_secs_f64() * 1e3
        );
        println!(
            "  overhead      best {:>+7.1}%      median {:>+7.1}%   (target: at most +10%)",
            (ratio_best - 1.0) * 100.0,
            (ratio_med - 1.0) * 100.0
        );
        println!("  journal size  {:.2} MB", size as f64 / 1e6);
    }
}
