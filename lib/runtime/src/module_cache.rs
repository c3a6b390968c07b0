//! Compiled modules cached on disk, keyed by the module's hash and the
//! engine, so that a second start skips compilation.
//!
//! The artifacts are native code, so the cache trusts nothing it did not
//! write itself: a cache file is `WSNPMOD2`, a 32-byte keyed BLAKE3 MAC of
//! the artifact, then wasmer's serialized artifact. The key is 32 random
//! bytes in `DIR/.key` (mode 0600) kept apart from the artifacts; the
//! directory is made private (0700). A file whose MAC does not verify — a
//! damaged or tampered artifact, or one from an older format — is a cache
//! miss with a warning, and is recompiled and rewritten; the cache never
//! makes a start fail and never hands unverified bytes to the engine.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wasmer::{Engine, Module};

use crate::module_memo::{self, Facts, FileIdentity, ModuleHashes};

const MAGIC: &[u8; 8] = b"WSNPMOD2";
const MAC_LEN: usize = 32;
const HEADER: usize = MAGIC.len() + MAC_LEN;
/// The MAC key's file, inside the cache directory.
const KEY_FILE: &str = ".key";

/// Where compiled modules come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache: no compilation.
    Hit,
    /// Loaded from the cache without reading the module file: it is
    /// unchanged since a load that hashed it.
    HitUnchanged,
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

    /// The artifact's file name: the module's bytes, what was done to them
    /// before compiling (`variant`), and the engine.
    /// `digest` is the BLAKE3 of the module's bytes.
    fn key(engine: &Engine, digest: &blake3::Hash, variant: &str) -> String {
        let mut module = blake3::Hasher::new();
        module.update(digest.as_bytes());
        module.update(variant.as_bytes());
        let module = module.finalize();
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
        if let Some(module) = self.lookup(engine, wasm, "") {
            return Ok((module, CacheOutcome::Hit));
        }
        self.compile_and_store(engine, wasm, "", wasm)
    }

    /// The cached module compiled from `wasm` after `variant` (a name for
    /// a rewrite of its bytes, `""` for none), if the cache holds one that
    /// passes its integrity check. Looking up costs a hash of `wasm`, not
    /// the rewrite.
    pub fn lookup(&self, engine: &Engine, wasm: &[u8], variant: &str) -> Option<Module> {
        self.lookup_digest(engine, &crate::parallel_hash::hash(wasm), variant)
    }

    /// [`lookup`](Self::lookup) by the BLAKE3 of the module's bytes.
    pub(crate) fn lookup_digest(
        &self,
        engine: &Engine,
        digest: &blake3::Hash,
        variant: &str,
    ) -> Option<Module> {
        let dir = self.dir.as_ref()?;
        let key = cache_key(dir).ok()?;
        Self::load(engine, &dir.join(Self::key(engine, digest, variant)), &key)
    }

    /// The hashes of the module file `identity` names, remembered from an
    /// earlier load of the same unchanged file (see `module_memo`).
    pub(crate) fn recall(&self, identity: &FileIdentity) -> Option<ModuleHashes> {
        let dir = self.dir.as_ref()?;
        let key = cache_key(dir).ok()?;
        match module_memo::recall(dir, &key, identity)? {
            Facts::Module(hashes) => Some(hashes),
            Facts::Artifact { .. } => None,
        }
    }

    /// Remembers the hashes of the module file `identity` names (what it
    /// was before and after they were computed); quietly does nothing when
    /// the file changed too recently or the cache is off or unusable.
    pub(crate) fn remember(&self, identity: &FileIdentity, hashes: &ModuleHashes) {
        let Some(dir) = &self.dir else { return };
        let Ok(key) = cache_key(dir) else { return };
        remember_quietly(dir, &key, identity, &Facts::Module(*hashes));
    }

    /// Compiles `compile` (the bytes `variant` made of `wasm`) and stores it
    /// under `wasm` and `variant`.
    pub fn compile_and_store(
        &self,
        engine: &Engine,
        wasm: &[u8],
        variant: &str,
        compile: &[u8],
    ) -> Result<(Module, CacheOutcome), CompileError> {
        let digest = crate::parallel_hash::hash(wasm);
        self.compile_and_store_digest(engine, &digest, variant, compile)
    }

    /// [`compile_and_store`](Self::compile_and_store) by the BLAKE3 of the
    /// module's bytes.
    pub(crate) fn compile_and_store_digest(
        &self,
        engine: &Engine,
        digest: &blake3::Hash,
        variant: &str,
        compile: &[u8],
    ) -> Result<(Module, CacheOutcome), CompileError> {
        if !compile.starts_with(b"\0asm") {
            return Err(CompileError::NotWasm);
        }
        let Some(dir) = &self.dir else {
            return Ok((self::compile(engine, compile)?, CacheOutcome::Uncached));
        };
        let key = match cache_key(dir) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(
                    "module cache {} unusable, compiling without it: {e}",
                    dir.display()
                );
                return Ok((self::compile(engine, compile)?, CacheOutcome::Uncached));
            }
        };
        let path = dir.join(Self::key(engine, digest, variant));
        let module = self::compile(engine, compile)?;
        let outcome = match Self::store(&module, dir, &path, &key) {
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

    fn load(engine: &Engine, path: &Path, key: &[u8; 32]) -> Option<Module> {
        let identity = |path: &Path| fs::metadata(path).ok().map(|m| FileIdentity::of(&m));
        let before = identity(path)?;
        let bytes = crate::large_read::read_whole(path).ok()?;
        if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        let artifact = &bytes[HEADER..];
        let dir = path.parent()?;
        // An artifact unchanged since its MAC verified is checked against
        // damage only (see `module_memo`); any other is checked in full.
        let remembered = match module_memo::recall(dir, key, &before) {
            Some(Facts::Artifact { crc32c }) => Some(crc32c),
            Some(Facts::Module(_)) | None => None,
        };
        let intact = match remembered {
            Some(crc) if crate::parallel_hash::crc32c(artifact) == crc => true,
            Some(_) | None => {
                let mac = crate::parallel_hash::keyed_hash(key, artifact);
                // `blake3::Hash` compares in constant time.
                let verified =
                    mac == blake3::Hash::from_bytes(bytes[MAGIC.len()..HEADER].try_into().ok()?);
                if verified && identity(path) == Some(before) {
                    let crc32c = crate::parallel_hash::crc32c(artifact);
                    remember_quietly(dir, key, &before, &Facts::Artifact { crc32c });
                }
                verified
            }
        };
        if !intact {
            tracing::warn!(
                "cached module {} failed its integrity check (damaged or not written by \
                 wasnap); recompiling",
                path.display()
            );
            return None;
        }
        // The artifact without a copy of its (tens of MB of) bytes.
        let artifact = bytes::Bytes::from_owner(bytes).slice(HEADER..);
        // SAFETY: the artifact carries a MAC under this cache's secret key
        // (verified now, or when its unchanged file was last checked, and
        // its CRC32C now), so `store` below wrote it from a module this
        // engine configuration compiled (the file name keys the engine): it
        // is wasmer's own serialization, not bytes from elsewhere. That is
        // also why its archive is not validated again (validation costs more
        // than the rest of a load: 56 ms for CPython's 35 MB).
        unsafe { Module::deserialize_unchecked(engine, artifact) }.ok()
    }

    fn store(module: &Module, dir: &Path, path: &Path, key: &[u8; 32]) -> std::io::Result<()> {
        let artifact = module.serialize().map_err(std::io::Error::other)?;
        let mut bytes = Vec::with_capacity(HEADER + artifact.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(crate::parallel_hash::keyed_hash(key, &artifact).as_bytes());
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

/// Remembers `facts` about the file `identity` names in the cache at `dir`;
/// a failure costs a later start the full check, so it is only logged.
fn remember_quietly(dir: &Path, key: &[u8; 32], identity: &FileIdentity, facts: &Facts) {
    if let Err(e) = module_memo::remember(dir, key, identity, facts, std::time::SystemTime::now()) {
        tracing::warn!("could not write a memo in {}: {e}", dir.display());
    }
}

/// Makes `dir` (private, 0700) and returns its MAC key, creating the key
/// when there is none. A key file others could read or write is replaced,
/// which invalidates every artifact signed with it.
fn cache_key(dir: &Path) -> std::io::Result<[u8; 32]> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    let path = dir.join(KEY_FILE);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o077 == 0 => {
            if let Ok(key) = <[u8; 32]>::try_from(fs::read(&path)?.as_slice()) {
                return Ok(key);
            }
            tracing::warn!(
                "replacing the malformed module cache key {}",
                path.display()
            );
        }
        Ok(_) => tracing::warn!(
            "replacing the module cache key {}: not a private file",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(std::io::Error::other)?;
    // Written aside and renamed in, so a reader sees a whole key or none.
    let tmp = dir.join(format!("{KEY_FILE}.tmp{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&key)?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(key)
}

fn compile(engine: &Engine, wasm: &[u8]) -> Result<Module, CompileError> {
    Module::new(engine, wasm).map_err(|e| CompileError::Invalid(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const WAT: &str = r#"(module (func (export "_start")))"#;

    #[test]
    fn a_tampered_artifact_is_a_miss_and_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path().join("modules"));
        let engine = Engine::default();
        let wasm = wasmer::wat2wasm(WAT.as_bytes()).unwrap();
        let (_, first) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(first, CacheOutcome::Compiled);
        let (_, second) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(second, CacheOutcome::Hit);

        let modules = dir.path().join("modules");
        let mode = fs::metadata(&modules).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let key_mode = fs::metadata(modules.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);

        // Flip one byte of the artifact: no checksum to fix up can make it
        // pass, since the MAC needs the key.
        let path = modules.join(ModuleCache::key(&engine, &blake3::hash(&wasm), ""));
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let (_, third) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(third, CacheOutcome::Compiled);
        let (_, fourth) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(fourth, CacheOutcome::Hit);

        // A new key (another machine's, say) invalidates every artifact.
        fs::remove_file(modules.join(KEY_FILE)).unwrap();
        let (_, fifth) = cache.load_or_compile(&engine, &wasm).unwrap();
        assert_eq!(fifth, CacheOutcome::Compiled);
    }

    /// An artifact whose memo says its MAC verified while its file is
    /// unchanged is checked by CRC32C alone; a CRC that does not match
    /// sends it back to the full check.
    #[test]
    fn an_unchanged_artifact_is_checked_by_its_remembered_crc() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("modules");
        let cache = ModuleCache::new(&modules);
        let engine = Engine::default();
        let wasm = wasmer::wat2wasm(WAT.as_bytes()).unwrap();
        cache.load_or_compile(&engine, &wasm).unwrap();
        let key = cache_key(&modules).unwrap();
        let path = modules.join(ModuleCache::key(&engine, &blake3::hash(&wasm), ""));
        // Spoil the MAC: only the memo can let this artifact through.
        let mut bytes = fs::read(&path).unwrap();
        bytes[MAGIC.len()] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let crc = crc32c::crc32c(&bytes[HEADER..]);
        let identity = FileIdentity::of(&fs::metadata(&path).unwrap());
        let later = std::time::SystemTime::now() + module_memo::SETTLE * 2;
        let remember = |crc32c: u32| {
            assert!(module_memo::remember(
                &modules,
                &key,
                &identity,
                &Facts::Artifact { crc32c },
                later
            )
            .unwrap());
        };
        remember(crc);
        assert!(ModuleCache::load(&engine, &path, &key).is_some());
        // A remembered CRC that does not match: the MAC decides, and fails.
        remember(crc ^ 1);
        assert!(ModuleCache::load(&engine, &path, &key).is_none());
    }
}
