//! Snapshot figures: pause vs heap size and dirty fraction, journal bytes
//! per snapshot, and resume vs cold start.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasnap_journal::SnapshotTrigger;
use wasnap_runtime::{
    BaseJournal, JournalTarget, ModuleCache, Process, ProcessOptions, Program, RunReport,
    SnapshotPolicy,
};
use wasnap_wasi::{BufferInput, ExitStatus, SharedOutput, WasiCtx};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/wasi")
        .join(name)
}

fn load(name: &str) -> Program {
    Program::load(&fixture(name), &ModuleCache::disabled()).expect("fixture loads")
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

/// Runs `program` through the runtime, journaling into `journal` (if any)
/// under `policy`.
fn run_process(
    program: &Program,
    ctx: WasiCtx,
    journal: Option<&Path>,
    policy: SnapshotPolicy,
) -> RunReport {
    let options = ProcessOptions {
        journal: journal.map(|p| JournalTarget::File(p.to_owned())),
        policy,
        ..ProcessOptions::default()
    };
    Process::start(program, ctx, options)
        .expect("process starts")
        .run()
        .expect("process runs")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run(json: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("snap.journal");
    let dirty = load("dirty.async.wasm");
    if !json {
        println!("snapshot pause (unwind end to the journal handed to the OS; then synced to disk while the program runs) by heap size and share of memory changed since the previous snapshot:");
        println!(
            "  {:>8} {:>8} {:>12} {:>14} {:>14} {:>16} {:>8}  tracking, written by (first/later)",
            "heap",
            "changed",
            "first pause",
            "later pauses",
            "later on disk",
            "journal/snapshot",
            "regions"
        );
    }
    for heap in [16u64, 64, 256] {
        for percent in [1.0f64, 10.0, 100.0] {
            let args = vec![heap.to_string(), percent.to_string(), "4".to_string()];
            let _ = std::fs::remove_file(&path);
            let report = run_process(
                &dirty,
                ctx("dirty.wasm", &args),
                Some(&path),
                SnapshotPolicy::on([SnapshotTrigger::Explicit]),
            );
            assert_eq!(report.status, ExitStatus::Exited(0));
            let stats = report.snapshots;
            let later: Vec<_> = stats[1..].to_vec();
            let mut pauses: Vec<Duration> = later.iter().map(|s| s.pause).collect();
            pauses.sort();
            let median = pauses[pauses.len() / 2];
            let mut on_disk: Vec<Duration> = later.iter().filter_map(|s| s.on_disk_after).collect();
            on_disk.sort();
            let on_disk = on_disk.get(on_disk.len() / 2).copied().unwrap_or_default();
            let tracking = stats[0].tracking;
            let bytes = later.iter().map(|s| s.journal_bytes).sum::<u64>() / later.len() as u64;
            let regions = later.iter().map(|s| s.regions).sum::<usize>() / later.len();
            let by = |s: &wasnap_runtime::SnapshotStats| match s.written {
                wasnap_runtime::SnapshotWrite::InPause => "pause",
                wasnap_runtime::SnapshotWrite::ByChild => "child",
                wasnap_runtime::SnapshotWrite::BehindChild => "buffered",
            };
            let first_by = by(&stats[0]);
            let later_by = by(&later[later.len() / 2]);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"case": "snapshot pause", "heap_mib": heap, "changed_percent": percent,
                        "first_pause_ms": ms(stats[0].pause), "later_pause_median_ms": ms(median),
                        "later_on_disk_median_ms": ms(on_disk), "tracking": tracking.to_string(),
                        "journal_bytes_per_snapshot": bytes, "regions_per_snapshot": regions,
                        "memory_bytes": stats[0].memory_bytes,
                        "first_written_by": first_by, "later_written_by": later_by})
                );
            } else {
                println!(
                    "  {:>5} MiB {:>7}% {:>9.1} ms {:>11.1} ms {:>11.1} ms {:>13.2} MB {:>8}  {}, {first_by}/{later_by}",
                    heap,
                    percent,
                    ms(stats[0].pause),
                    ms(median),
                    ms(on_disk),
                    bytes as f64 / 1e6,
                    regions,
                    match tracking {
                        wasnap_runtime::DirtyTracking::Kernel => "kernel",
                        wasnap_runtime::DirtyTracking::Compare => "compare",
                    }
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
        let report = run_process(
            &startup,
            ctx("startup.wasm", &args),
            None,
            SnapshotPolicy::default(),
        );
        assert_eq!(report.status, ExitStatus::Exited(0));
        cold_times.push(started.elapsed());
    }
    let _ = std::fs::remove_file(&path);
    let snapshot = SnapshotPolicy {
        stop_after: true,
        ..SnapshotPolicy::on([SnapshotTrigger::FirstStdin])
    };
    let report = run_process(&startup, ctx("startup.wasm", &args), Some(&path), snapshot);
    assert_eq!(report.status, ExitStatus::Snapshotted);
    drop(report);
    // Resume from the snapshot journal as a read-only base (what a fleet
    // of runs sharing one base snapshot does): replay, restore, run.
    let mut resume_times = Vec::new();
    let mut start_times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let options = ProcessOptions {
            bases: vec![BaseJournal::File(path.clone())],
            ..ProcessOptions::default()
        };
        let process =
            Process::start(&startup, ctx("startup.wasm", &args), options).expect("process starts");
        start_times.push(started.elapsed());
        // Includes tearing the instance down (unmapping its memory).
        let report = process.run().expect("process runs");
        assert_eq!(report.status, ExitStatus::Exited(0));
        resume_times.push(started.elapsed());
    }
    let start_best = start_times.iter().min().copied().unwrap_or_default();
    let cold = cold_times.iter().min().copied().unwrap_or_default();
    let resume = resume_times.iter().min().copied().unwrap_or_default();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if json {
        println!(
            "{}",
            serde_json::json!({"case": "resume vs cold start", "cold_ms": ms(cold), "resume_ms": ms(resume),
                "speedup": cold.as_secs_f64() / resume.as_secs_f64(), "journal_bytes": size,
                "replay_and_restore_ms": ms(start_best)})
        );
    } else {
        println!("resume vs cold start (startup.wasm: 40 rounds over a 32 MiB index, then a read; best of 3, compiled module shared):");
        println!("  cold start {:>8.1} ms   resume {:>8.1} ms   {:.1}x faster (target: at least 50x)   journal {:.2} MB", ms(cold), ms(resume), cold.as_secs_f64() / resume.as_secs_f64(), size as f64 / 1e6);
        println!(
            "  of the resume: {:.1} ms to replay the journal and restore the snapshot (best of 3)",
            ms(start_best)
        );
    }
}
