//! Exact-resume figures: re-executing a journal's tail against the time the
//! original run took, and the journaling overhead of CPU-heavy real
//! programs (Lua, SQLite; where fixtures/third-party/build.sh built them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasnap_journal::{Journal, JournalEntry, WriteJournal};
use wasnap_runtime::{JournalTarget, ModuleCache, Process, ProcessOptions, Program};
use wasnap_wasi::{BufferInput, ExitStatus, SharedOutput, WasiCtx, WasiCtxBuilder};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Runs `program` over the context `build` makes, journaling into
/// `journal` if given; returns the wall time and what it printed.
fn timed(
    program: &Program,
    build: &dyn Fn() -> WasiCtxBuilder,
    journal: Option<Journal>,
) -> (Duration, Vec<u8>, Option<Journal>) {
    let out = SharedOutput::default();
    let ctx = build()
        .stdin(BufferInput::new(Vec::new()))
        .stdout(out.clone())
        .build()
        .expect("context");
    let started = Instant::now();
    let options = ProcessOptions {
        journal: journal.map(JournalTarget::Memory),
        ..ProcessOptions::default()
    };
    let report = Process::start(program, ctx, options)
        .expect("process starts")
        .run()
        .expect("process runs");
    let elapsed = started.elapsed();
    assert_eq!(report.status, ExitStatus::Exited(0), "{}", program.label());
    (elapsed, out.contents(), report.journal)
}

/// The same journal without its exit record: a run that was killed just
/// before it ended, which resuming re-executes whole.
fn without_exit(journal: &mut Journal) -> Journal {
    journal.reader().restart().expect("restart");
    let records = journal.reader().read_all_owned().expect("records");
    let cut = Journal::in_memory();
    for record in records {
        if !matches!(record.entry, JournalEntry::ProcessExitV1(_)) {
            cut.write(&record.entry).expect("write");
        }
    }
    cut.writer().flush().expect("flush");
    cut
}

/// Re-executing a whole run from its journal against running it.
fn tail_replay(json: bool) {
    let data = tempfile::tempdir().expect("temp dir");
    let input: String = (0..400)
        .map(|i| format!("line {i}: the quick brown fox {}\n", i * 7919 % 1000))
        .collect();
    std::fs::write(data.path().join("input.txt"), input).expect("input");
    let dir = data.path().to_owned();
    let build = move || {
        WasiCtx::builder()
            .args(["soak.wasm", "/data/input.txt", "0"])
            .host_dir(&dir, "/data", true)
    };
    let program = Program::load(&fixtures().join("wasi/soak.wasm"), &ModuleCache::disabled())
        .expect("soak.wasm");
    let (mut originals, mut replays) = (Vec::new(), Vec::new());
    let mut records = 0;
    for _ in 0..5 {
        let (original, whole, journal) = timed(&program, &build, Some(Journal::in_memory()));
        let mut cut = without_exit(&mut journal.expect("journal"));
        cut.reader().restart().expect("restart");
        records = cut.reader().read_all_owned().expect("records").len();
        let (replay, rest, _) = timed(&program, &build, Some(cut));
        assert!(rest.is_empty(), "a re-executed tail prints nothing again");
        assert!(!whole.is_empty());
        originals.push(original);
        replays.push(replay);
    }
    let (original, replay) = (median(originals), median(replays));
    let ratio = original.as_secs_f64() / replay.as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({"case": "tail replay vs original run", "program": "soak.wasm, 400 steps",
                "records": records, "original_ms": ms(original), "replay_ms": ms(replay), "speedup": ratio})
        );
    } else {
        println!("re-executing a run from its journal (soak.wasm, 400 steps, {records} records; median of 5):");
        println!(
            "  original run {:>8.1} ms   re-execution {:>8.1} ms   {:.2}x (target: at least 1x)",
            ms(original),
            ms(replay),
            ratio
        );
    }
}

/// Where fixtures/third-party/build.sh puts its programs.
fn third_party() -> Option<PathBuf> {
    let dir = std::env::var_os("WASNAP_THIRD_PARTY_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wasnap/third-party"))
        })?;
    dir.is_dir().then_some(dir)
}

/// Journal off vs on for one CPU-heavy real program, alternating.
fn overhead(name: &str, module: &Path, args: &[&str], repeat: usize, json: bool) {
    let program = Program::load(module, &ModuleCache::disabled()).expect("module");
    let scripts = fixtures().join("third-party/scripts");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let build = move || {
        WasiCtx::builder()
            .args(args.iter().cloned())
            .env("HOME", "/tmp")
            .host_dir(&scripts, "/s", true)
    };
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let mut outputs = Vec::new();
    timed(&program, &build, None);
    for _ in 0..repeat {
        let (t, out, _) = timed(&program, &build, None);
        off.push(t);
        outputs.push(out);
        let (t, out, _) = timed(&program, &build, Some(Journal::in_memory()));
        on.push(t);
        outputs.push(out);
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "{name}: outputs differ"
    );
    let (off, on) = (median(off), median(on));
    let overhead = on.as_secs_f64() / off.as_secs_f64() - 1.0;
    if json {
        println!(
            "{}",
            serde_json::json!({"case": "journaling overhead", "program": name, "off_ms": ms(off), "on_ms": ms(on), "overhead": overhead})
        );
    } else {
        println!(
            "  {name:<28} journal off {:>8.1} ms   on {:>8.1} ms   overhead {:>+6.1}% (target: at most +5%)",
            ms(off),
            ms(on),
            overhead * 100.0
        );
    }
}

pub fn run(json: bool, repeat: usize) {
    tail_replay(json);
    let Some(dir) = third_party() else {
        println!("skipped: Lua and SQLite are not built (run fixtures/third-party/build.sh)");
        return;
    };
    if !json {
        println!(
            "journaling overhead of CPU-heavy real programs (median of {repeat}, alternating):"
        );
    }
    overhead(
        "lua bench.lua",
        &dir.join("lua.wasm"),
        &["lua", "/s/bench.lua"],
        repeat,
        json,
    );
    overhead(
        "sqlite3 :memory: bench.sql",
        &dir.join("sqlite3.wasm"),
        &["sqlite3", ":memory:", ".read /s/bench.sql"],
        repeat,
        json,
    );
}
