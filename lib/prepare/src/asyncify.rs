//! Binaryen's asyncify: what a prepared module exports, which imports are
//! snapshot points, and preparing a module with `wasm-opt`.

use std::path::{Path, PathBuf};
use std::process::Command;

use wasmparser::{Parser, Payload};

/// The exports asyncify adds; a module with all of them can be snapshotted.
pub const EXPORTS: [&str; 5] = [
    "asyncify_start_unwind",
    "asyncify_stop_unwind",
    "asyncify_start_rewind",
    "asyncify_stop_rewind",
    "asyncify_get_state",
];

/// Imports at which a snapshot can be taken: the blocking and periodic WASI
/// calls, and the explicit snapshot requests (wasnap's own and WASIX's).
pub const SNAPSHOT_POINTS: [&str; 9] = [
    "wasi_snapshot_preview1.fd_read",
    "wasi_snapshot_preview1.fd_write",
    "wasi_snapshot_preview1.poll_oneoff",
    "wasi_snapshot_preview1.environ_get",
    "wasi_snapshot_preview1.environ_sizes_get",
    "wasi_snapshot_preview1.clock_time_get",
    "wasi_snapshot_preview1.sched_yield",
    "wasnap.snapshot",
    "wasix_32v1.proc_snapshot",
];

/// Why a module could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AsyncifyError {
    /// The input does not parse.
    #[error("not a valid WebAssembly module: {0}")]
    Parse(String),
    /// No `wasm-opt` to run.
    #[error("wasm-opt (Binaryen) was not found: install Debian's `binaryen`, put wasm-opt on PATH, or name it with --wasm-opt / $WASM_OPT")]
    NoWasmOpt,
    /// `wasm-opt` could not be started.
    #[error("cannot run {path}: {source}")]
    Spawn {
        /// The program tried.
        path: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// `wasm-opt` ran and failed.
    #[error("wasm-opt failed ({status}): {stderr}")]
    Failed {
        /// Its exit status.
        status: String,
        /// What it printed on standard error.
        stderr: String,
    },
    /// The output lacks what asyncify adds.
    #[error("wasm-opt produced a module without the asyncify exports")]
    NoExports,
}

/// Whether the module exports everything asyncify adds.
pub fn has_asyncify(wasm: &[u8]) -> Result<bool, AsyncifyError> {
    let mut found = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::ExportSection(reader) =
            payload.map_err(|e| AsyncifyError::Parse(e.to_string()))?
        {
            for export in reader {
                let export = export.map_err(|e| AsyncifyError::Parse(e.to_string()))?;
                if EXPORTS.contains(&export.name) {
                    found += 1;
                }
            }
        }
    }
    Ok(found == EXPORTS.len())
}

/// `$WASM_OPT` if set, else `wasm-opt` on PATH.
pub fn find_wasm_opt() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WASM_OPT") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("wasm-opt"))
        .find(|p| p.is_file())
}

/// Sizes before and after preparation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareReport {
    /// Size of the input module.
    pub input_bytes: u64,
    /// Size of the prepared module.
    pub output_bytes: u64,
}

/// Runs `wasm-opt --asyncify`, restricted to [`SNAPSHOT_POINTS`], on
/// `input`, writing `output`, and checks the result has the exports.
pub fn prepare(
    input: &Path,
    output: &Path,
    wasm_opt: &Path,
) -> Result<PrepareReport, AsyncifyError> {
    let result = Command::new(wasm_opt)
        .arg("-O2")
        // Keep the name section, so that traps still name functions.
        .arg("-g")
        .arg("--enable-mutable-globals")
        .arg("--asyncify")
        .arg(format!(
            "--pass-arg=asyncify-imports@{}",
            SNAPSHOT_POINTS.join(",")
        ))
        .arg(input)
        .arg("-o")
        .arg(output)
        .output()
        .map_err(|source| AsyncifyError::Spawn {
            path: wasm_opt.to_owned(),
            source,
        })?;
    if !result.status.success() {
        return Err(AsyncifyError::Failed {
            status: result.status.to_string(),
            stderr: String::from_utf8_lossy(&result.stderr).trim().to_owned(),
        });
    }
    let prepared = std::fs::read(output).map_err(|source| AsyncifyError::Spawn {
        path: output.to_owned(),
        source,
    })?;
    if !has_asyncify(&prepared)? {
        return Err(AsyncifyError::NoExports);
    }
    let input_bytes = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
    Ok(PrepareReport {
        input_bytes,
        output_bytes: prepared.len() as u64,
    })
}
