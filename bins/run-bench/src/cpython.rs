//! CPython's start-up: a script importing about 200 standard-library
//! modules, then reading standard input
//! (fixtures/third-party/scripts/imports.py), started cold (the unprepared
//! interpreter, compiled module cached as a second start finds it) against
//! resumed from a snapshot taken at its first read of standard input (the
//! prepared interpreter, the snapshot journal as a read-only base).
//!
//! Needs fixtures/third-party/build.sh to have unpacked CPython, and
//! Binaryen's wasm-opt to prepare it (once per run of the benchmark).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasnap_journal::SnapshotTrigger;
use wasnap_runtime::{
    BaseJournal, JournalTarget, ModuleCache, Process, ProcessOptions, Program, SnapshotPolicy,
};
use wasnap_wasi::stdio::InputStream;
use wasnap_wasi::{BufferInput, ExitStatus, SharedOutput, WasiCtx};

fn third_party() -> PathBuf {
    std::env::var_os("WASNAP_THIRD_PARTY_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wasnap/third-party"))
        })
        .expect("HOME or WASNAP_THIRD_PARTY_DIR")
}

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/third-party/scripts")
}

/// Standard input from a buffer that notes when the program first read it:
/// everything after that instant is the program's own work on its input
/// (for this script: finishing, then CPython shutting down), which a cold
/// start and a resume both do.
struct FirstRead {
    input: BufferInput,
    at: Arc<Mutex<Option<Instant>>>,
}

impl InputStream for FirstRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut at = self.at.lock().expect("first-read clock");
        at.get_or_insert_with(Instant::now);
        drop(at);
        self.input.read(buf)
    }

    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        self.input.wait_readable(timeout)
    }
}

/// The interpreter's context: the library read-only at /usr/local/lib, the
/// scripts at /s, PYTHONHOME, and `input` on standard input. The returned
/// cell holds when the program first read standard input.
fn timed_ctx(input: &[u8]) -> (WasiCtx, Arc<Mutex<Option<Instant>>>) {
    let at = Arc::new(Mutex::new(None));
    let stdin = FirstRead {
        input: BufferInput::new(input.to_vec()),
        at: at.clone(),
    };
    let ctx = WasiCtx::builder()
        .args(["python3", "/s/imports.py"])
        .env("PYTHONHOME", "/usr/local")
        .host_dir(third_party().join("python/lib"), "/usr/local/lib", true)
        .host_dir(scripts(), "/s", true)
        .stdin(stdin)
        .stdout(SharedOutput::default())
        .build()
        .expect("context");
    (ctx, at)
}

fn ctx(input: &[u8]) -> WasiCtx {
    timed_ctx(input).0
}

/// How long the program ran after it first read standard input (it must
/// have read it).
fn after_first_read(at: &Mutex<Option<Instant>>, ended: Instant) -> Duration {
    let at = at
        .lock()
        .expect("first-read clock")
        .expect("the script reads standard input");
    ended.duration_since(at)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `repeat` starts of `module` (from the cache) with `options()`, run to the
/// end: each whole run, and each run's work after its first read of stdin.
fn timed_runs(
    module: &Path,
    cache: &ModuleCache,
    repeat: usize,
    options: impl Fn() -> ProcessOptions,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut whole, mut after_stdin) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let started = Instant::now();
        let (ctx, first_read) = timed_ctx(b"hi\n");
        let (_program, process) = Process::load_and_start(module, cache, ctx, options())
            .expect("python loads from the cache and starts (or resumes)");
        let report = process.run().expect("runs");
        let ended = Instant::now();
        assert_eq!(report.status, ExitStatus::Exited(0));
        whole.push(ended.duration_since(started));
        after_stdin.push(after_first_read(&first_read, ended));
    }
    (whole, after_stdin)
}

pub fn run(json: bool, repeat: usize) {
    let python = third_party().join("python/bin/python3.11.wasm");
    if !python.is_file() {
        eprintln!(
            "{} is missing: run fixtures/third-party/build.sh",
            python.display()
        );
        std::process::exit(2);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = ModuleCache::new(dir.path().join("modules"));
    let wasm_opt = wasnap_prepare::asyncify::find_wasm_opt().expect("wasm-opt (Binaryen) on PATH");
    let prepared_path = dir.path().join("python.async.wasm");
    eprintln!("preparing CPython for snapshots (asyncify, about half a minute)…");
    wasnap_prepare::asyncify::prepare(&python, &prepared_path, &wasm_opt).expect("prepare");
    eprintln!("compiling both interpreters…");
    let cold_program = Program::load(&python, &cache).expect("python loads");
    let prepared = Program::load(&prepared_path, &cache).expect("prepared python loads");

    // Cold: from _start (compiled module from the cache, as on a second start).
    let (cold, cold_after_stdin) = timed_runs(&python, &cache, repeat, ProcessOptions::default);
    drop(cold_program);

    // The prepared interpreter started cold, only to measure what its
    // snapshot instrumentation (asyncify) costs in the work after stdin.
    let (_, prepared_after_stdin) =
        timed_runs(&prepared_path, &cache, repeat, ProcessOptions::default);

    // The snapshot at the first read of standard input.
    let journal = dir.path().join("imports.journal");
    let policy = SnapshotPolicy {
        stop_after: true,
        ..SnapshotPolicy::on([SnapshotTrigger::FirstStdin])
    };
    let options = ProcessOptions {
        journal: Some(JournalTarget::File(journal.clone())),
        policy,
        ..ProcessOptions::default()
    };
    let report = Process::start(&prepared, ctx(b""), options)
        .expect("starts")
        .run()
        .expect("runs");
    assert_eq!(report.status, ExitStatus::Snapshotted);
    let memory = report.snapshots.last().map_or(0, |s| s.memory_bytes);
    drop(report);
    let journal_bytes = std::fs::metadata(&journal).map_or(0, |m| m.len());

    // Resume: load (cache), replay the base, restore, run to the end.
    let resume_options = || ProcessOptions {
        bases: vec![BaseJournal::File(journal.clone())],
        ..ProcessOptions::default()
    };
    let (resumed, resumed_after_stdin) = timed_runs(&prepared_path, &cache, repeat, resume_options);
    // Where one resume's time goes.
    let starting = Instant::now();
    let (program, process) =
        Process::load_and_start(&prepared_path, &cache, ctx(b"hi\n"), resume_options())
            .expect("prepared loads from the cache and resumes");
    let start = starting.elapsed();
    let load = program.load_report().elapsed;
    let timings = process.report().timings;
    let resumed_memory = process
        .report()
        .resumed
        .map(|r| r.figures)
        .unwrap_or_default();
    let running = Instant::now();
    let report = process.run().expect("runs");
    let run = running.elapsed();
    assert_eq!(report.status, ExitStatus::Exited(0));
    let breakdown = format!(
        "module load {:.1} ms, journal open {:.1} ms, journal read + filesystem replay {:.1} ms{}, \
         instantiation {:.1} ms, memory restore {:.1} ms ({:.1} MB mapped, {:.1} MB copied), \
         rewind + run to the end {:.1} ms (rewind {:.1} ms)",
        ms(load),
        ms(timings.open),
        ms(timings.replay),
        if timings.beside_load { " (while the module loaded)" } else { "" },
        ms(timings.instantiate),
        ms(timings.restore),
        resumed_memory.mapped_bytes as f64 / 1e6,
        resumed_memory.copied_bytes as f64 / 1e6,
        ms(run),
        report.rewind.map_or(0.0, ms)
    );
    // Until the program runs again at its snapshot point: everything before
    // the rest of its own work (CPython finishing the script and shutting
    // down, which a cold start does too).
    let running_again = start + report.rewind.unwrap_or_default();
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    // wasnap's share of a resume: everything before the program's first read
    // of standard input (load, replay, restore, rewind), per run.
    let before_stdin: Vec<Duration> = resumed
        .iter()
        .zip(&resumed_after_stdin)
        .map(|(whole, after)| whole.saturating_sub(*after))
        .collect();
    let (cold, resumed) = (best(&cold), best(&resumed));
    let (cold_after_stdin, prepared_after_stdin, resumed_after_stdin) = (
        best(&cold_after_stdin),
        best(&prepared_after_stdin),
        best(&resumed_after_stdin),
    );
    let before_stdin = best(&before_stdin);
    let speedup = cold.as_secs_f64() / resumed.as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({"case": "cpython imports", "cold_ms": ms(cold), "resume_ms": ms(resumed),
                "speedup": speedup, "journal_bytes": journal_bytes, "memory_bytes": memory,
                "cold_after_stdin_ms": ms(cold_after_stdin),
                "prepared_cold_after_stdin_ms": ms(prepared_after_stdin), "resume_after_stdin_ms": ms(resumed_after_stdin),
                "resume_before_stdin_ms": ms(before_stdin),
                "one_resume": breakdown, "one_resume_running_again_ms": ms(running_again)})
        );
    } else {
        println!("CPython 3.11, importing 201 standard-library modules, then reading stdin");
        println!(
            "  cold start (unprepared, compiled module cached): {:>8.1} ms",
            ms(cold)
        );
        println!(
            "  resume from the first-stdin snapshot:            {:>8.1} ms",
            ms(resumed)
        );
        println!(
            "  speedup: {speedup:.1}x (target: at least 25x, resume at most 40 ms); snapshot journal {:.1} MB for {:.1} MB of memory",
            journal_bytes as f64 / 1e6,
            memory as f64 / 1e6
        );
        println!("  (best of {repeat}; both include loading the module from the cache)");
        println!(
            "  the program's own work after its first read of stdin (finishing the script, shutting CPython down): \
             cold {:.1} ms, prepared cold {:.1} ms (the snapshot instrumentation's cost), resumed {:.1} ms; \
             a resume cannot end sooner than that",
            ms(cold_after_stdin),
            ms(prepared_after_stdin),
            ms(resumed_after_stdin)
        );
        println!(
            "  wasnap's share of a resume (until the program reads stdin): {:.1} ms",
            ms(before_stdin)
        );
        println!("  one resume: {breakdown}");
        println!(
            "  one resume was running again at its snapshot point after {:.1} ms",
            ms(running_again)
        );
    }
}
