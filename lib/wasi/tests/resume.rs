//! Snapshot and resume through the library, with a journal held in memory.
#![allow(clippy::unwrap_used)]

mod common;

use common::{captured, module_hash};
use wasnap_journal::{Journal, JournalReader};
use wasnap_wasi::replay::{replay, ReplayOptions};
use wasnap_wasi::{ExitStatus, WasiInstance};

fn instance(name: &str, ctx: wasnap_wasi::WasiCtx) -> WasiInstance {
    let wasm = std::fs::read(common::fixture(name)).unwrap();
    let prepared = wasnap_snapshot::globals::export_mutable_globals(&wasm)
        .unwrap()
        .wasm;
    let engine = wasmer::Engine::default();
    let module = wasmer::Module::new(&engine, &prepared).unwrap();
    WasiInstance::new(wasmer::Store::new(engine), &module, ctx).unwrap()
}

#[test]
fn a_journal_in_memory_resumes_too() {
    let name = "explicit.async.wasm";
    let (mut ctx, whole_out) = captured(name, &["3"]);
    ctx.start_recording(Journal::in_memory().writer().clone(), module_hash(name))
        .unwrap();
    let mut whole = instance(name, ctx);
    whole.snapshot_control().explicit = true;
    assert_eq!(whole.run().unwrap(), ExitStatus::Exited(0));

    // First run: stops at the first snapshot.
    let journal = Journal::in_memory();
    let (writer, mut reader) = journal.split();
    let (mut ctx, first_out) = captured(name, &["3"]);
    ctx.start_recording(writer.clone(), module_hash(name))
        .unwrap();
    let mut first = instance(name, ctx);
    first.snapshot_control().explicit = true;
    first.snapshot_control().stop_after = true;
    assert_eq!(first.run().unwrap(), ExitStatus::Snapshotted);
    drop(first);
    writer.flush().unwrap();

    // The journal's bytes, as an embedder holds them.
    reader.restart().unwrap();
    let mut from_bytes = JournalReader::from_buffer(reader.buffer().clone());
    let (mut ctx, second_out) = captured(name, &["3"]);
    let options = ReplayOptions {
        module_hash: Some(module_hash(name)),
        resume: true,
        ..Default::default()
    };
    let point = replay(&mut ctx, &mut from_bytes, &options)
        .unwrap()
        .resume
        .expect("a complete snapshot");
    ctx.start_recording_after(
        Journal::in_memory().writer().clone(),
        module_hash(name),
        Some(point.marker_offset),
    )
    .unwrap();
    let mut second = instance(name, ctx);
    second.restore(point.memory, &point.thread).unwrap();
    second.snapshot_control().explicit = true;
    assert_eq!(second.run().unwrap(), ExitStatus::Exited(0));

    let joined = [first_out.contents(), second_out.contents()].concat();
    assert_eq!(
        String::from_utf8(joined).unwrap(),
        String::from_utf8(whole_out.contents()).unwrap()
    );
}
