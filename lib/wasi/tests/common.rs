//! Helpers shared by the library tests: run a fixture against a context.

#![allow(dead_code)]

use std::path::PathBuf;

use wasnap_wasi::{BufferInput, ExitStatus, SharedOutput, WasiCtxBuilder, WasiInstance};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/wasi")
        .join(name)
}

pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub instance: WasiInstance,
}

/// Runs fixture `name` with `args` (after the program name), capturing the
/// standard streams; `configure` adds mounts, env, clocks.
pub fn run(
    name: &str,
    args: &[&str],
    configure: impl FnOnce(WasiCtxBuilder) -> WasiCtxBuilder,
) -> Outcome {
    let wasm = std::fs::read(fixture(name)).expect("fixture exists (run fixtures/wasi/build.sh)");
    let engine = wasmer::Engine::default();
    let module = wasmer::Module::new(&engine, &wasm).expect("fixture compiles");
    let stdout = SharedOutput::default();
    let stderr = SharedOutput::default();
    let builder = wasnap_wasi::WasiCtx::builder()
        .arg(name)
        .args(args.iter().copied())
        .stdin(BufferInput::new(Vec::new()))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    let ctx = configure(builder).build().expect("context builds");
    let mut instance =
        WasiInstance::new(wasmer::Store::new(engine), &module, ctx).expect("instantiates");
    let status = instance.run();
    Outcome {
        status,
        stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
        instance,
    }
}
