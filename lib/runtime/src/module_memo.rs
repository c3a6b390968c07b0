//! What a module file hashes to, and that a cached artifact passed its MAC,
//! remembered by the file's identity: a later start of the same, unchanged
//! module file neither reads nor hashes it (CPython's module is 25 MB: its
//! BLAKE3 and SHA-256 were a third of a cached load), and an unchanged
//! artifact is checked against damage with CRC32C instead of its keyed
//! BLAKE3 (38 MB for CPython: 13 ms on two threads against 2 ms).
//!
//! A file is "the same, unchanged" when its device, inode, size, mtime and
//! ctime all match what was seen when its bytes were checked — the rule
//! git's index and build tools use. Writing a file sets its mtime and ctime
//! to now, and ctime cannot be set back by its owner. Two guards close the
//! gaps that rule leaves:
//!
//! - *Racy writes*: a write within the file system's timestamp granularity
//!   of the check could leave both times unchanged. Facts are therefore
//!   remembered only for a file whose mtime and ctime are [`SETTLE`] in the
//!   past, and whose identity did not change while it was checked.
//! - *Forgery*: a memo is MAC'd under the module cache's secret key, like the
//!   artifacts; one that does not verify is ignored.
//!
//! A memo is `DIR/ids/DEV-INO.id`: [`MAGIC`], a 32-byte keyed BLAKE3 MAC of
//! the body, then the body: device, inode, size, mtime and ctime (seconds,
//! nanoseconds) and the kind of facts as little-endian words, then 64 bytes
//! of facts (a module: its BLAKE3 and SHA-256; an artifact: its CRC32C).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"WSNPID01";
const MAC_LEN: usize = 32;
/// Seven words of identity, one of kind, 64 bytes of facts.
const BODY_LEN: usize = 8 * 8 + FACTS_LEN;
const FACTS_LEN: usize = 64;
const FILE_LEN: usize = MAGIC.len() + MAC_LEN + BODY_LEN;

/// How old a file's last change must be for its hashes to be remembered.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// What identifies a file's contents without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileIdentity {
    pub(crate) fn of(meta: &fs::Metadata) -> FileIdentity {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the file last changed at least [`SETTLE`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let limit = now.saturating_sub(SETTLE);
        let at = |(secs, nanos): (i64, i64)| {
            u64::try_from(secs)
                .ok()
                .zip(u32::try_from(nanos).ok())
                .map(|(s, n)| Duration::new(s, n))
        };
        [self.mtime, self.ctime]
            .into_iter()
            .all(|time| at(time).is_some_and(|t| t <= limit))
    }

    fn words(&self) -> [u64; 7] {
        [
            self.dev,
            self.ino,
            self.size,
            self.mtime.0 as u64,
            self.mtime.1 as u64,
            self.ctime.0 as u64,
            self.ctime.1 as u64,
        ]
    }

    fn file_name(&self) -> String {
        format!("{:x}-{:x}.id", self.dev, self.ino)
    }
}

/// The two hashes of a module's bytes: BLAKE3 (the cache's key) and SHA-256
/// (what the journal's `InitModuleV1` records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ModuleHashes {
    pub blake3: [u8; 32],
    pub sha256: [u8; 32],
}

/// What a memo says about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Facts {
    /// A module file: the hashes of its bytes.
    Module(ModuleHashes),
    /// A cached artifact whose MAC verified: the CRC32C of its bytes after
    /// the cache file's header.
    Artifact { crc32c: u32 },
}

impl Facts {
    fn kind(&self) -> u64 {
        match self {
            Facts::Module(_) => 1,
            Facts::Artifact { .. } => 2,
        }
    }

    fn encode(&self) -> [u8; FACTS_LEN] {
        let mut out = [0u8; FACTS_LEN];
        match self {
            Facts::Module(hashes) => {
                out[..32].copy_from_slice(&hashes.blake3);
                out[32..].copy_from_slice(&hashes.sha256);
            }
            Facts::Artifact { crc32c } => out[..4].copy_from_slice(&crc32c.to_le_bytes()),
        }
        out
    }

    fn decode(kind: u64, bytes: &[u8]) -> Option<Facts> {
        let facts = match kind {
            1 => Facts::Module(ModuleHashes {
                blake3: bytes[..32].try_into().ok()?,
                sha256: bytes[32..64].try_into().ok()?,
            }),
            2 => Facts::Artifact {
                crc32c: u32::from_le_bytes(bytes[..4].try_into().ok()?),
            },
            _ => return None,
        };
        // Encoding is canonical: what decodes must encode to the same bytes.
        (facts.encode()[..] == bytes[..FACTS_LEN]).then_some(facts)
    }
}

fn body(identity: &FileIdentity, facts: &Facts) -> [u8; BODY_LEN] {
    let mut body = [0u8; BODY_LEN];
    let words = identity.words().into_iter().chain([facts.kind()]);
    for (slot, word) in body.chunks_exact_mut(8).zip(words) {
        slot.copy_from_slice(&word.to_le_bytes());
    }
    body[64..].copy_from_slice(&facts.encode());
    body
}

/// The facts remembered for the file `identity` names, if a memo under
/// `dir` matches it exactly and carries a valid MAC under `key`.
pub(crate) fn recall(dir: &Path, key: &[u8; 32], identity: &FileIdentity) -> Option<Facts> {
    let bytes = fs::read(dir.join("ids").join(identity.file_name())).ok()?;
    if bytes.len() != FILE_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let body = &bytes[MAGIC.len() + MAC_LEN..];
    let mac = blake3::Hash::from_bytes(bytes[MAGIC.len()..MAGIC.len() + MAC_LEN].try_into().ok()?);
    // `blake3::Hash` compares in constant time.
    if blake3::keyed_hash(key, body) != mac {
        tracing::warn!(
            "the memo for {:?} failed its integrity check; checking the file in full",
            identity
        );
        return None;
    }
    let kind = u64::from_le_bytes(body[56..64].try_into().ok()?);
    let facts = Facts::decode(kind, &body[64..])?;
    // The memo is for this very file state (not only this inode).
    (body[..] == self::body(identity, &facts)[..]).then_some(facts)
}

/// Remembers `facts` for the file `identity` names, if it has settled
/// (returns whether it did). `identity` must be what the file was both
/// before and after the facts were established.
pub(crate) fn remember(
    dir: &Path,
    key: &[u8; 32],
    identity: &FileIdentity,
    facts: &Facts,
    now: SystemTime,
) -> std::io::Result<bool> {
    if !identity.settled(now) {
        return Ok(false);
    }
    let ids = dir.join("ids");
    fs::create_dir_all(&ids)?;
    let body = body(identity, facts);
    let mut bytes = Vec::with_capacity(FILE_LEN);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(blake3::keyed_hash(key, &body).as_bytes());
    bytes.extend_from_slice(&body);
    let path = ids.join(identity.file_name());
    // Written aside and renamed in: a reader sees a whole memo or none.
    let tmp = ids.join(format!(
        ".{}.tmp{}",
        identity.file_name(),
        std::process::id()
    ));
    fs::write(&tmp, &bytes)?;
    fs::rename(&tmp, &path)?;
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hashes() -> Facts {
        Facts::Module(ModuleHashes {
            blake3: [7; 32],
            sha256: [9; 32],
        })
    }

    fn identity_of(path: &Path) -> FileIdentity {
        FileIdentity::of(&fs::metadata(path).unwrap())
    }

    /// A module file just written in `dir`, and its identity.
    fn module_in(dir: &Path) -> (std::path::PathBuf, FileIdentity) {
        let module = dir.join("m.wasm");
        fs::write(&module, b"\0asm").unwrap();
        let identity = identity_of(&module);
        (module, identity)
    }

    #[test]
    fn a_settled_file_is_recalled_and_a_changed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("m.wasm");
        fs::write(&module, b"\0asm one").unwrap();
        let key = [3u8; 32];
        let identity = identity_of(&module);
        let later = SystemTime::now() + SETTLE + Duration::from_secs(1);
        assert!(remember(dir.path(), &key, &identity, &hashes(), later).unwrap());
        assert_eq!(recall(dir.path(), &key, &identity), Some(hashes()));
        // Other facts about the same file replace them.
        let artifact = Facts::Artifact {
            crc32c: 0xdead_beef,
        };
        assert!(remember(dir.path(), &key, &identity, &artifact, later).unwrap());
        assert_eq!(recall(dir.path(), &key, &identity), Some(artifact));
        // Another key: the MAC does not verify.
        assert_eq!(recall(dir.path(), &[4; 32], &identity), None);
        // The file rewritten (same length): its identity changes.
        std::thread::sleep(Duration::from_millis(20));
        fs::write(&module, b"\0asm two").unwrap();
        assert_eq!(recall(dir.path(), &key, &identity_of(&module)), None);
    }

    #[test]
    fn a_file_changed_moments_ago_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let (_, identity) = module_in(dir.path());
        let key = [3u8; 32];
        assert!(!remember(dir.path(), &key, &identity, &hashes(), SystemTime::now()).unwrap());
        assert_eq!(recall(dir.path(), &key, &identity), None);
    }

    #[test]
    fn a_tampered_memo_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (_, identity) = module_in(dir.path());
        let key = [3u8; 32];
        let later = SystemTime::now() + SETTLE + Duration::from_secs(1);
        assert!(remember(dir.path(), &key, &identity, &hashes(), later).unwrap());
        let memo = dir.path().join("ids").join(identity.file_name());
        let mut bytes = fs::read(&memo).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&memo, &bytes).unwrap();
        assert_eq!(recall(dir.path(), &key, &identity), None);
    }
}
