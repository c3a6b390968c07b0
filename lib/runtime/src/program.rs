//! A module loaded for running: its globals exported (the load-time
//! rewrite), compiled or taken from the cache, and identified by the hash of
//! its original bytes (what `InitModuleV1` records).

use std::path::Path;
use std::time::{Duration, Instant};

use wasmer::{Engine, ExternType, Module};

use crate::error::ProcessError;
use crate::module_cache::{CacheOutcome, ModuleCache};
use crate::module_memo::{FileIdentity, ModuleHashes};
use crate::recorder::module_hash;

/// How a program was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadReport {
    /// Whether compilation was skipped.
    pub outcome: CacheOutcome,
    /// From the bytes to the compiled module.
    pub elapsed: Duration,
}

/// A compiled module, ready to start any number of processes.
pub struct Program {
    name: String,
    /// How messages name the program: its path when loaded from a file.
    label: String,
    engine: Engine,
    module: Module,
    hash: [u8; 32],
    load: LoadReport,
}

/// The name of the load-time rewrite (part of the cache's key): DWARF
/// sections left out (`wasnap_prepare::debug_sections`), then every mutable
/// global exported (`wasnap_prepare::globals`).
const REWRITE: &str = "no-debug-sections+export-mutable-globals";

/// The exports a module prepared with Binaryen's asyncify has.
const ASYNCIFY_EXPORTS: [&str; 4] = [
    "asyncify_start_unwind",
    "asyncify_stop_unwind",
    "asyncify_start_rewind",
    "asyncify_stop_rewind",
];

impl Program {
    /// Reads, rewrites and compiles the module at `path` (through `cache`).
    /// A module file unchanged since an earlier load that hashed it is not
    /// read at all when the cache holds its compiled form (see
    /// `module_memo`).
    pub fn load(path: &Path, cache: &ModuleCache) -> Result<Program, ProcessError> {
        let started = Instant::now();
        let name = Program::name_of(path);
        let read_error = |source| ProcessError::ReadModule {
            path: path.to_owned(),
            source,
        };
        let identity = std::fs::metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|meta| FileIdentity::of(&meta));
        // Whether the cache was asked for the module already (and had none).
        let mut looked_up = false;
        if let Some(hashes) = identity.as_ref().and_then(|id| cache.recall(id)) {
            looked_up = true;
            let engine = new_engine();
            let digest = blake3::Hash::from_bytes(hashes.blake3);
            if let Some(module) = cache.lookup_digest(&engine, &digest, REWRITE) {
                return Ok(Program {
                    name: name.to_owned(),
                    label: path.display().to_string(),
                    engine,
                    module,
                    hash: hashes.sha256,
                    load: LoadReport {
                        outcome: CacheOutcome::HitUnchanged,
                        elapsed: started.elapsed(),
                    },
                });
            }
        }
        let wasm = crate::large_read::read_whole(path).map_err(read_error)?;
        let (mut program, hashes) =
            Program::load_bytes(name, &wasm, cache, looked_up).map_err(|e| e.with_module(path))?;
        program.label = path.display().to_string();
        program.load.elapsed = started.elapsed();
        // Remembered only if the file did not change while it was hashed.
        let after = std::fs::metadata(path)
            .ok()
            .map(|meta| FileIdentity::of(&meta));
        if let Some(identity) = identity.filter(|id| after.as_ref() == Some(id)) {
            cache.remember(&identity, &hashes);
        }
        Ok(program)
    }

    /// What a program loaded from `path` is called (its `argv[0]` unless
    /// told otherwise): the file's name.
    pub fn name_of(path: &Path) -> &str {
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("main.wasm")
    }

    /// The SHA-256 of the module file at `path` (what journals name it
    /// by), if the cache remembers it for the file as it is now (see
    /// `module_memo`); nothing is read but the file's metadata.
    pub fn known_hash(path: &Path, cache: &ModuleCache) -> Option<[u8; 32]> {
        let meta = std::fs::metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file)?;
        cache.recall(&FileIdentity::of(&meta)).map(|h| h.sha256)
    }

    /// Rewrites and compiles `wasm` (through `cache`); `name` is how
    /// messages and the program's `argv[0]` call it.
    pub fn from_bytes(
        name: impl Into<String>,
        wasm: &[u8],
        cache: &ModuleCache,
    ) -> Result<Program, ProcessError> {
        Program::load_bytes(name, wasm, cache, false).map(|(program, _)| program)
    }

    /// [`from_bytes`](Self::from_bytes), with the hashes of `wasm`;
    /// `looked_up`: the cache has no compiled module for `wasm` (it was
    /// just asked), so it is not asked again.
    fn load_bytes(
        name: impl Into<String>,
        wasm: &[u8],
        cache: &ModuleCache,
        looked_up: bool,
    ) -> Result<(Program, ModuleHashes), ProcessError> {
        let name = name.into();
        let started = Instant::now();
        let engine = new_engine();
        // The journal identifies the module by the SHA-256 of its original
        // bytes: computed beside the load (a large module takes milliseconds
        // of each).
        let (sha256, loaded) = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| module_hash(wasm));
            let digest = crate::parallel_hash::hash(wasm);
            let loaded = Self::compile_cached(&name, wasm, &digest, &engine, cache, looked_up)
                .map(|(module, outcome)| (module, outcome, digest));
            (hashing.join(), loaded)
        });
        let (module, outcome, digest) = loaded?;
        let hashes = ModuleHashes {
            blake3: *digest.as_bytes(),
            sha256: sha256.unwrap_or_else(|_| module_hash(wasm)),
        };
        let program = Program {
            label: name.clone(),
            name,
            engine,
            module,
            hash: hashes.sha256,
            load: LoadReport {
                outcome,
                elapsed: started.elapsed(),
            },
        };
        Ok((program, hashes))
    }

    /// The compiled module, from the cache or compiled (and cached).
    ///
    /// Every defined mutable global is exported at load time, so that a
    /// snapshot can save `__stack_pointer` and friends without special link
    /// flags. The cache is keyed by the original bytes (`digest`, their
    /// BLAKE3) and the rewrite's name, so a hit skips the rewrite.
    fn compile_cached(
        name: &str,
        wasm: &[u8],
        digest: &blake3::Hash,
        engine: &Engine,
        cache: &ModuleCache,
        looked_up: bool,
    ) -> Result<(Module, CacheOutcome), ProcessError> {
        if !looked_up {
            if let Some(module) = cache.lookup_digest(engine, digest, REWRITE) {
                return Ok((module, CacheOutcome::Hit));
            }
        }
        let rewritten;
        let bytes = if wasm.starts_with(b"\0asm") {
            let rewrite_error = |source| ProcessError::Rewrite {
                module: name.to_owned(),
                source,
            };
            let stripped = wasnap_prepare::debug_sections::without_debug_sections(wasm)
                .map_err(rewrite_error)?;
            rewritten = wasnap_prepare::globals::export_mutable_globals(&stripped)
                .map_err(rewrite_error)?
                .wasm;
            &rewritten[..]
        } else {
            wasm
        };
        cache
            .compile_and_store_digest(engine, digest, REWRITE, bytes)
            .map_err(|source| ProcessError::Compile {
                module: name.to_owned(),
                source,
            })
    }

    /// The program's name: the file name of a loaded module (what `wasnap
    /// run` passes as `argv[0]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How messages name the program: the path it was loaded from.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The SHA-256 of the module's original bytes.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// How loading went.
    pub fn load_report(&self) -> LoadReport {
        self.load
    }

    /// Whether the module was prepared with asyncify (`wasnap prepare`), so
    /// that it can be snapshotted.
    pub fn snapshottable(&self) -> bool {
        ASYNCIFY_EXPORTS.iter().all(|name| {
            self.module
                .exports()
                .any(|e| e.name() == *name && matches!(e.ty(), ExternType::Function(_)))
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn module(&self) -> &Module {
        &self.module
    }
}

/// The engine modules compile for. With `WASNAP_PERFMAP` set, it writes
/// `/tmp/perf-PID.map` so that `perf report` names the guest's functions
/// (from the module's name section).
fn new_engine() -> Engine {
    if std::env::var_os("WASNAP_PERFMAP").is_some() {
        let mut compiler = wasmer::sys::Cranelift::default();
        wasmer::sys::CompilerConfig::enable_perfmap(&mut compiler);
        return Engine::from(compiler);
    }
    Engine::default()
}
