//! Snapshot figures: pause vs heap size and dirty fraction, journal bytes
//! per snapshot, and resume vs cold start.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasnap_journal::{Durability, Journal, JournalOptions, JournalReader, Recovery};
use wasnap_wasi::replay::{replay, ReplayOptions};
use wasnap_wasi::{BufferInput, ExitStatus, SharedOutput, WasiCtx, WasiInstance};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/wasi")
        .join(name)
}

struct Program {
    engine: wasmer::Engine,
    module: wasmer::Module,
    hash: [u8; 32],
}

fn load(name: &str) -> Program {
    let wasm = std::fs::read(fixture(name)).expect("fixture");
    let prepared = wasnap_snapshot::globals::export_mutable_globals(&wasm)
        .expect("rewrite")
        .wasm;
    let engine = wasmer::Engine::default();
    let module = wasmer::Module::new(&engine, &prepared).expect("compiles");
    Program {
        engine,
        module,
        hash: wasnap_wasi::record::module_hash(&wasm),
    }
}

fn ctx(name: &str, args: &[String]) -> WasiCtx {
    WasiCtx::builder()
        .arg(name)
        .args(args.iter().cloned())
        .stdin(BufferInput::new(Vec::new()))
        .stdout(SharedOutput::default())
        .build()
        .expect("context")
}

fn instance(program: &Program, ctx: WasiCtx) -> WasiInstance {
    WasiInstance::new(
        wasmer::Store::new(program.engine.clone()),
        &program.module,
        ctx,
    )
    .expect("instance")
}

fn fresh_journal(path: &Path) -> wasnap_journal::JournalWriter {
    let _ = std::fs::remove_file(path);
    Journal::open(
        path,
        JournalOptions {
            durability: Durability::None,
        },
    )
    .expect("journal")
    .split()
    .0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run(json: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("snap.journal");
    let dirty = load("dirty.async.wasm");
    if !json {
        println!("snapshot pause (unwind end to journal synced) by heap size and share of memory changed since the previous snapshot:");
        println!(
            "  {:>8} {:>8} {:>12} {:>14} {:>16} {:>14}",
            "heap", "changed", "first pause", "later pauses", "journal/snapshot", "regions"
        );
    }
    for heap in [16u64, 64, 256] {
        for percent in [1.0f64, 10.0, 100.0] {
            let args = vec![heap.to_string(), percent.to_string(), "4".to_string()];
            let mut c = ctx("dirty.wasm", &args);
            c.start_recording(fresh_journal(&path), dirty.hash)
                .expect("recording");
            let mut i = instance(&dirty, c);
            i.snapshot_control().explicit = true;
            assert_eq!(i.run().expect("run"), ExitStatus::Exited(0));
            let stats = i.snapshot_control().stats.clone();
            let later: Vec<_> = stats[1..].to_vec();
            let mut pauses: Vec<Duration> = later.iter().map(|s| s.pause).collect();
            pauses.sort();
            let median = pauses[pauses.len() / 2];
            let bytes = later.iter().map(|s| s.journal_bytes).sum::<u64>() / later.len() as u64;
            let regions = later.iter().map(|s| s.regions).sum::<usize>() / later.len();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"case": "snapshot pause", "heap_mib": heap, "changed_percent": percent,
                        "first_pause_ms": ms(stats[0].pause), "later_pause_median_ms": ms(median),
                        "journal_bytes_per_snapshot": bytes, "regions_per_snapshot": regions,
                        "memory_bytes": stats[0].memory_bytes})
                );
            } else {
                println!(
                    "  {:>5} MiB {:>7}% {:>9.1} ms {:>11.1} ms {:>13.2} MB {:>14}",
                    heap,
                    percent,
                    ms(stats[0].pause),
                    ms(median),
                    bytes as f64 / 1e6,
                    regions
                );
            }
        }
    }

    // Resume vs cold start of a program with a heavy start-up phase.
    let startup = load("startup.async.wasm");
    let args = vec!["40".to_string()];
    let mut cold_times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut i = instance(&startup, ctx("startup.wasm", &args));
        assert_eq!(i.run().expect("run"), ExitStatus::Exited(0));
        cold_times.push(started.elapsed());
    }
    let mut c = ctx("startup.wasm", &args);
    c.start_recording(fresh_journal(&path), startup.hash)
        .expect("recording");
    let mut i = instance(&startup, c);
    i.snapshot_control().first_stdin = true;
    i.snapshot_control().stop_after = true;
    assert_eq!(i.run().expect("run"), ExitStatus::Snapshotted);
    drop(i);
    let mut resume_times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mut c = ctx("startup.wasm", &args);
        let mut reader = JournalReader::open(&path)
            .expect("reader")
            .with_recovery(Recovery::StopAtTornTail);
        let options = ReplayOptions {
            resume: true,
            module_hash: Some(startup.hash),
            ..Default::default()
        };
        let point = replay(&mut c, &mut reader, &options)
            .expect("replay")
            .resume
            .expect("snapshot");
        let mut i = instance(&startup, c);
        i.restore(point.memory, &point.thread).expect("restore");
        assert_eq!(i.run().expect("run"), ExitStatus::Exited(0));
        resume_times.push(started.elapsed());
    }
    let cold = cold_times.iter().min().copied().unwrap_or_default();
    let resume = resume_times.iter().min().copied().unwrap_or_default();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if json {
        println!(
            "{}",
            serde_json::json!({"case": "resume vs cold start", "cold_ms": ms(cold), "resume_ms": ms(resume),
                "speedup": cold.as_secs_f64() / resume.as_secs_f64(), "journal_bytes": size})
        );
    } else {
        println!("resume vs cold start (startup.wasm: 40 rounds over a 32 MiB index, then a read; best of 3, compiled module shared):");
        println!("  cold start {:>8.1} ms   resume {:>8.1} ms   {:.1}x faster (target: at least 20x)   journal {:.2} MB", ms(cold), ms(resume), cold.as_secs_f64() / resume.as_secs_f64(), size as f64 / 1e6);
    }
}
