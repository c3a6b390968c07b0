//! `wasnap prepare`: make a module snapshottable with Binaryen's asyncify.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use wasnap_prepare::asyncify;

/// Prepares `input` into `output`; returns the exit code.
pub fn prepare(input: &Path, output: &Path, wasm_opt: Option<PathBuf>, force: bool) -> Result<u8> {
    let wasm =
        std::fs::read(input).with_context(|| format!("cannot read module {}", input.display()))?;
    if !wasm.starts_with(b"\0asm") {
        bail!(
            "{} is not a WebAssembly module (it does not start with the `\\0asm` magic)",
            input.display()
        );
    }
    super::check_destination(output, force)?;
    if asyncify::has_asyncify(&wasm).with_context(|| format!("cannot read {}", input.display()))? {
        eprintln!(
            "wasnap: {} already has the asyncify exports; copying it unchanged",
            input.display()
        );
        std::fs::write(output, &wasm)
            .with_context(|| format!("cannot write {}", output.display()))?;
        return Ok(crate::exit::OK);
    }
    let wasm_opt = wasm_opt
        .or_else(asyncify::find_wasm_opt)
        .ok_or(asyncify::AsyncifyError::NoWasmOpt)?;
    let report = asyncify::prepare(input, output, &wasm_opt)
        .with_context(|| format!("cannot prepare {}", input.display()))?;
    let growth = (report.output_bytes as f64 / report.input_bytes.max(1) as f64 - 1.0) * 100.0;
    println!(
        "prepared {}: {} bytes -> {} bytes ({growth:+.1}%), snapshot points: {}",
        output.display(),
        report.input_bytes,
        report.output_bytes,
        asyncify::SNAPSHOT_POINTS.join(", ")
    );
    Ok(crate::exit::OK)
}
