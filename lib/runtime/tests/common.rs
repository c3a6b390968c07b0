//! Helpers shared by the runtime's tests: fixtures as programs, captured
//! contexts, runs through [`Process`].

#![allow(dead_code)]

use std::path::PathBuf;

use wasnap_journal::Journal;
use wasnap_runtime::{JournalTarget, ModuleCache, Process, ProcessOptions, Program, RunReport};
use wasnap_wasi::{BufferInput, ExitStatus, SharedOutput, WasiCtx, WasiInstance};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/wasi")
        .join(name)
}

/// Fixture `name`, loaded as `wasnap run` loads modules (no cache).
pub fn program(name: &str) -> Program {
    Program::load(&fixture(name), &ModuleCache::disabled()).expect("fixture loads")
}

/// A context whose standard streams are captured; returns it with its
/// stdout buffer.
pub fn captured(name: &str, args: &[&str]) -> (WasiCtx, SharedOutput) {
    let stdout = SharedOutput::default();
    let ctx = WasiCtx::builder()
        .arg(name)
        .args(args.iter().copied())
        .stdin(BufferInput::new(Vec::new()))
        .stdout(stdout.clone())
        .stderr(SharedOutput::default())
        .build()
        .expect("context builds");
    (ctx, stdout)
}

/// Runs `program` over `ctx` through the runtime with `options`.
pub fn run_process(program: &Program, ctx: WasiCtx, options: ProcessOptions) -> RunReport {
    Process::start(program, ctx, options)
        .expect("process starts")
        .run()
        .expect("process runs")
}

/// Runs fixture `name` recording into a new in-memory journal; returns how
/// it ended and the journal (flushed).
pub fn record(name: &str, ctx: WasiCtx) -> (ExitStatus, Journal) {
    let options = ProcessOptions {
        journal: Some(JournalTarget::Memory(Journal::in_memory())),
        ..ProcessOptions::default()
    };
    let report = run_process(&program(name), ctx, options);
    (report.status, report.journal.expect("a journal"))
}

/// The bytes of a journal, as an embedder would hold them.
pub fn bytes_of(journal: &mut Journal) -> wasnap_journal::OwnedBuffer {
    journal.reader().restart().expect("restart");
    journal.reader().buffer().clone()
}

/// Runs fixture `name` on the bare host (no journal, no snapshots).
pub fn run_ctx(name: &str, ctx: WasiCtx) -> (ExitStatus, WasiInstance) {
    let wasm = std::fs::read(fixture(name)).expect("fixture exists");
    let engine = wasmer::Engine::default();
    let module = wasmer::Module::new(&engine, &wasm).expect("fixture compiles");
    let mut instance =
        WasiInstance::new(wasmer::Store::new(engine), &module, ctx).expect("instantiates");
    let status = instance.run();
    (status, instance)
}

pub fn module_hash(name: &str) -> [u8; 32] {
    wasnap_runtime::module_hash(&std::fs::read(fixture(name)).expect("fixture exists"))
}
