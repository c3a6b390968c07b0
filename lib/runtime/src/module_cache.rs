//! Compiled modules cached on disk, keyed by the module's hash and the
//! engine, so that a second start skips compilation.
//!
//! A cache file is `WSNPMOD1`, a CRC32C (u32 LE) of the artifact, four zero
//! bytes, then wasmer's serialized artifact. A file that fails the check is
//! ignored and rewritten; the cache never makes a start fail.

use std::fs;
use std::path::{Path, PathBuf};

use wasmer::{Engine, Module};

const MAGIC: &[u8; 8] = b"WSNPMOD1";
const HEADER: usize = 16;

/// Where compiled modules come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache: no compilation.
    Hit,
    /// Compiled, then stored.
    Compiled,
    /// Compiled; caching is off or the store failed.
    Uncached,
}

/// Why a module could not be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The bytes are not WebAssembly.
    #[error("not a WebAssembly module (it does not start with the `\\0asm` magic)")]
    NotWasm,
    /// The engine refused the module.
    #[error("invalid WebAssembly module: {0}")]
    Invalid(String),
}

/// The on-disk cache of compiled modules.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: Option<PathBuf>,
}

impl ModuleCache {
    /// A cache in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> ModuleCache {
        ModuleCache {
            dir: Some(dir.into()),
        }
    }

    /// No caching.
    pub fn disabled() -> ModuleCache {
        ModuleCache { dir: None }
    }

    /// `$WASNAP_CACHE_DIR`, else `$XDG_CACHE_HOME/wasnap/modules`, else
    /// `$HOME/.cache/wasnap/modules`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("WASNAP_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(Path::new(&dir).join("wasnap/modules"));
        }
        std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/wasnap/modules"))
    }

    fn key(engine: &Engine, wasm: &[u8]) -> String {
        let module = blake3::hash(wasm);
        let mut hasher = blake3::Hasher::new();
        hasher.update(engine.deterministic_id().as_bytes());
        hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.update(b"wasmer 7.4.2");
        let engine_key = hasher.finalize();
        format!(
            "{}-{}.module",
            &module.to_hex()[..32],
            &engine_key.to_hex()[..12]
        )
    }

    /// Loads the compiled module for `wasm`, compiling and storing it if the
    /// cache has none.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(Module, CacheOutcome), CompileError> {
        if !wasm.starts_with(b"\0asm") {
            return Err(CompileError::NotWasm);
        }
        let Some(dir) = &self.dir else {
            return Ok((compile(engine, wasm)?, CacheOutcome::Uncached));
        };
        let path = dir.join(Self::key(engine, wasm));
        if let Some(module) = Self::load(engine, &path) {
            return Ok((module, CacheOutcome::Hit));
        }
        let module = compile(engine, wasm)?;
        let outcome = match Self::store(&module, dir, &path) {
            Ok(()) => CacheOutcome::Compiled,
            Err(e) => {
                tracing::warn!(
                    "could not cache the compiled module in {}: {e}",
                    dir.display()
                );
                CacheOutcome::Uncached
            }
        };
        Ok((module, outcome))
    }

    fn load(engine: &Engine, path: &Path) -> Option<Module> {
        let bytes = fs::read(path).ok()?;
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
        let artifact = &bytes[HEADER..];
        if crc32c::crc32c(artifact) != crc {
            tracing::warn!("ignoring damaged cache file {}", path.display());
            return None;
        }
        // SAFETY: the artifact was written by `store` below from a module
        // this engine configuration compiled (the file name keys the engine),
        // and its checksum matches, so it is wasmer's own serialization.
        unsafe { Module::deserialize(engine, artifact.to_vec()) }.ok()
    }

    fn store(module: &Module, dir: &Path, path: &Path) -> std::io::Result<()> {
        let artifact = module.serialize().map_err(std::io::Error::other)?;
        fs::create_dir_all(dir)?;
        let mut bytes = Vec::with_capacity(HEADER + artifact.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&crc32c::crc32c(&artifact).to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&artifact);
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("module"),
            std::process::id()
        ));
        fs::write(&tmp, &bytes)?;
        fs::rename(&tmp, path)
    }
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Module, CompileError> {
    Module::new(engine, wasm).map_err(|e| CompileError::Invalid(e.to_string()))
}
