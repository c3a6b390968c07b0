//! Snapshot and resume through the library, with a journal held in memory.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bytes_of, captured, program, run_process};
use wasnap_journal::{Journal, SnapshotTrigger};
use wasnap_runtime::{
    BaseJournal, JournalTarget, ModuleCache, Process, ProcessError, ProcessOptions, Program,
    SnapshotPolicy,
};
use wasnap_wasi::ExitStatus;

fn explicit() -> SnapshotPolicy {
    SnapshotPolicy::on([SnapshotTrigger::Explicit])
}

fn in_memory(journal: Journal, policy: SnapshotPolicy) -> ProcessOptions {
    ProcessOptions {
        journal: Some(JournalTarget::Memory(journal)),
        policy,
        ..ProcessOptions::default()
    }
}

#[test]
fn a_journal_in_memory_resumes_too() {
    let name = "explicit.async.wasm";
    let program = program(name);
    let (ctx, whole_out) = captured(name, &["3"]);
    let whole = run_process(&program, ctx, in_memory(Journal::in_memory(), explicit()));
    assert_eq!(whole.status, ExitStatus::Exited(0));
    assert_eq!(whole.snapshots.len(), 3, "one snapshot per step");

    // First run: stops at the first snapshot.
    let (ctx, first_out) = captured(name, &["3"]);
    let stop = SnapshotPolicy {
        stop_after: true,
        ..explicit()
    };
    let first = run_process(&program, ctx, in_memory(Journal::in_memory(), stop));
    assert_eq!(first.status, ExitStatus::Snapshotted);
    let bytes = bytes_of(&mut first.journal.unwrap());

    // Second run, from the journal's bytes as an embedder holds them.
    let (ctx, second_out) = captured(name, &["3"]);
    let journal = Journal::from_buffer(bytes).unwrap();
    let process = Process::start(&program, ctx, in_memory(journal, explicit())).unwrap();
    let resumed = process.report().resumed.expect("resumed from the snapshot");
    assert!(resumed.memory_bytes > 0);
    assert_eq!(process.run().unwrap().status, ExitStatus::Exited(0));

    let joined = [first_out.contents(), second_out.contents()].concat();
    assert_eq!(
        String::from_utf8(joined).unwrap(),
        String::from_utf8(whole_out.contents()).unwrap()
    );
}

#[test]
fn refusals_happen_before_the_journal_is_touched() {
    // A module that was not prepared cannot be snapshotted.
    let (ctx, _) = captured("explicit.wasm", &["1"]);
    let journal = Journal::in_memory();
    let writer = journal.writer().clone();
    let before = writer.end_offset();
    let error = Process::start(
        &program("explicit.wasm"),
        ctx,
        in_memory(journal, explicit()),
    )
    .err()
    .expect("refused");
    assert!(matches!(error, ProcessError::NotPrepared { .. }), "{error}");
    assert!(error.to_string().contains("wasnap prepare"), "{error}");
    assert_eq!(writer.end_offset(), before, "nothing was recorded");

    // Snapshots without a journal.
    let (ctx, _) = captured("explicit.async.wasm", &["1"]);
    let options = ProcessOptions {
        policy: explicit(),
        ..ProcessOptions::default()
    };
    let error = Process::start(&program("explicit.async.wasm"), ctx, options)
        .err()
        .expect("refused");
    assert!(
        matches!(error, ProcessError::SnapshotsNeedJournal),
        "{error}"
    );

    // The interval trigger without an interval.
    let (ctx, _) = captured("explicit.async.wasm", &["1"]);
    let options = in_memory(
        Journal::in_memory(),
        SnapshotPolicy::on([SnapshotTrigger::Interval]),
    );
    let error = Process::start(&program("explicit.async.wasm"), ctx, options)
        .err()
        .expect("refused");
    assert!(matches!(error, ProcessError::Policy(_)), "{error}");
}

/// A resume from a read-only base, of a module file the cache knows
/// unchanged, replays the base while the module loads, and prints what a
/// start in sequence prints; a base recorded for another module is refused
/// either way.
#[test]
fn a_base_replays_while_the_module_loads() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ModuleCache::new(dir.path().join("modules"));
    let path = dir.path().join("prog.wasm");
    let other = dir.path().join("other.wasm");
    std::fs::copy(common::fixture("explicit.async.wasm"), &path).unwrap();
    std::fs::copy(common::fixture("hello.wasm"), &other).unwrap();
    // Files changed moments ago are never vouched for (module_memo).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let program = Program::load(&path, &cache).unwrap();
    Program::load(&other, &cache).unwrap();
    assert!(Program::known_hash(&path, &cache).is_some());

    let base = dir.path().join("base.journal");
    let (ctx, _) = captured("prog.wasm", &["3"]);
    let stop = SnapshotPolicy {
        stop_after: true,
        ..explicit()
    };
    let options = ProcessOptions {
        journal: Some(JournalTarget::File(base.clone())),
        policy: stop,
        ..ProcessOptions::default()
    };
    assert_eq!(
        run_process(&program, ctx, options).status,
        ExitStatus::Snapshotted
    );
    let from_base = || ProcessOptions {
        bases: vec![BaseJournal::File(base.clone())],
        ..ProcessOptions::default()
    };

    let (ctx, in_sequence) = captured("prog.wasm", &["3"]);
    let process = Process::start(&program, ctx, from_base()).unwrap();
    assert!(!process.report().timings.beside_load);
    assert_eq!(process.run().unwrap().status, ExitStatus::Exited(0));
    let (ctx, beside) = captured("prog.wasm", &["3"]);
    let (_, process) = Process::load_and_start(&path, &cache, ctx, from_base()).unwrap();
    assert!(process.report().timings.beside_load);
    assert!(process.report().resumed.is_some(), "resumed from the base");
    assert_eq!(process.run().unwrap().status, ExitStatus::Exited(0));
    assert_eq!(beside.contents(), in_sequence.contents());
    // Resumed after the first step's snapshot, to the end.
    let text = String::from_utf8(beside.contents()).unwrap();
    assert!(
        !text.contains("step 0") && text.contains("step 2") && text.ends_with("finished\n"),
        "{text}"
    );

    // The base names another module than other.wasm.
    let (ctx, _) = captured("other.wasm", &[]);
    let error = Process::load_and_start(&other, &cache, ctx, from_base())
        .err()
        .expect("refused");
    assert!(matches!(error, ProcessError::Replay(_)), "{error}");
    let (ctx, _) = captured("other.wasm", &[]);
    let in_sequence = Process::start(&Program::load(&other, &cache).unwrap(), ctx, from_base())
        .err()
        .expect("refused");
    assert_eq!(error.to_string(), in_sequence.to_string());
}
