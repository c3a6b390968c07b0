//! The state a journal replays to: the reference model of what each entry
//! means, and the source of compaction.
//!
//! Meaning of the entries (the runtime's replay must agree):
//! - paths are relative to a directory descriptor; a descriptor the journal
//!   never opened is a *root* (a preopened directory) and names itself;
//!   paths are resolved lexically (`.` and `..` inside the root);
//! - a file or directory the journal did not create *existed before it*: its
//!   contents are unknown, and only what the journal did to it is modelled;
//! - `FileDescriptorWriteV1` writes `data` at `offset` and leaves the
//!   descriptor's position at `offset + len` (a runtime journals a `pwrite`
//!   as the write followed by a seek back);
//! - descriptors 0–2 are standard streams until the journal closes or
//!   replaces them; writes to a standard stream are output, not state;
//! - `ResumedFromSnapshotV1` returns the whole state to what it was at that
//!   snapshot's marker: what happened in between is a lost timeline.
//!
//! Not modelled, and refused by compaction: sockets, pipes, event
//! descriptors, epoll, `ChangeDirectoryV1`, and renaming or hard-linking
//! something that existed before the journal began (its contents are
//! unknown, so it cannot be recreated elsewhere).
//!
//! The module, by concern:
//! - `contents`: the byte-range model of a file's contents;
//! - `model`: lookups in the filesystem and descriptor model;
//! - `apply`: what each entry does to the model (one exhaustive match);
//! - `replay`: entries applied in order, following the live timeline
//!   ([`crate::timeline`]);
//! - `compact`: the canonical entries that rebuild a state;
//! - `summary`: a state in comparable form.

mod apply;
mod compact;
mod contents;
mod model;
mod replay;
mod summary;

pub use compact::{compact, CompactError, Compacted};
pub use contents::Contents;
pub use replay::{replay, Replayed, Replayer};
pub use summary::{DescriptorSummary, NodeSummary, Summary, TargetSummary};

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::entry::*;
use crate::memory::{stored_region, MemoryError, MemoryImage};

/// Why an entry cannot be applied to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The entry kind is outside what the model covers.
    #[error("{0} entries are not supported by compaction")]
    Unsupported(&'static str),
    /// The entry contradicts the state (it could not have succeeded).
    #[error("{kind}: {message}")]
    Invalid {
        /// The entry kind's name.
        kind: &'static str,
        /// What it contradicts.
        message: String,
    },
    /// A memory region is malformed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A file grows past what the model holds in memory (its bytes are kept
    /// densely): refused, never asked of the allocator.
    #[error(
        "a file of {size} bytes is larger than the {limit} bytes the journal model holds in memory"
    )]
    TooLarge {
        /// The size the journal asks for.
        size: u64,
        /// [`MAX_MODEL_FILE`].
        limit: u64,
    },
}

/// The largest file the journal model (compaction, extract, inspect)
/// holds: 4 GiB.
pub const MAX_MODEL_FILE: u64 = 4 << 30;

fn invalid(kind: EntryKind, message: impl Into<String>) -> StateError {
    StateError::Invalid {
        kind: kind.name(),
        message: message.into(),
    }
}

/// WASI `oflags` bits.
const O_CREAT: u16 = 1;
const O_DIRECTORY: u16 = 2;
const O_EXCL: u16 = 4;
const O_TRUNC: u16 = 8;

/// Descriptor numbers compaction uses for a moment while it rebuilds files;
/// chosen far above anything a program gets. Numbers from `SCRATCH_FLOOR` up
/// are never taken for roots.
const SCRATCH_FD: u32 = u32::MAX - 1;
const SCRATCH_FLOOR: u32 = u32::MAX - 65_536;

/// A path: the root descriptor it hangs from, and its normalized components
/// joined by `/` (empty for the root itself).
pub type Location = (u32, String);

type NodeId = u64;

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file and what is known of its bytes.
    File(Contents),
    /// A directory.
    Directory,
    /// A symbolic link and its target.
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: NodeKind,
    /// Where it was before the journal began, if it existed then.
    original: Option<Location>,
    /// Last times set: (atim, mtim, fst_flags) as WASI gives them.
    times: Option<(u64, u64, u16)>,
}

/// What a descriptor refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Target {
    /// A preopened directory: the root named by its original number.
    Root(u32),
    /// Standard stream 0, 1 or 2.
    Stdio(u32),
    /// A file, directory or symlink node.
    Node(NodeId),
}

/// An open file description; descriptors made by duplication share one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Description {
    target: Target,
    position: u64,
    flags: u16,
    rights_base: u64,
    rights_inheriting: u64,
    /// How it was opened (dirfd, path, lookup flags, oflags) for nodes.
    opened_as: Option<(u32, String, u32, u16)>,
}

type DescriptionId = u64;

/// Everything the model tracks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    module: Option<[u8; 32]>,
    environment: Option<(Vec<String>, Vec<String>)>,
    clocks: BTreeMap<u32, u64>,
    exit_code: Option<u32>,
    memory: MemoryImage,
    threads: BTreeMap<u32, ThreadStateV1<'static>>,
    nodes: HashMap<NodeId, Node>,
    next_node: NodeId,
    names: BTreeMap<Location, NodeId>,
    /// Paths that existed before the journal and no longer do.
    removed: BTreeSet<Location>,
    descriptors: BTreeMap<u32, DescriptionId>,
    descriptions: HashMap<DescriptionId, Description>,
    next_description: DescriptionId,
    /// Roots and standard streams that were closed or moved away.
    closed_originals: BTreeSet<u32>,
    /// Descriptor numbers the journal has given out (so not originals).
    used: BTreeSet<u32>,
    /// Entries kept as they are: output and inputs, in order.
    passthrough: Vec<JournalEntry<'static>>,
    /// The last snapshot marker applied.
    last_snapshot: Option<SnapshotV1>,
}

/// Splits and normalizes `path` below `base` (lexically, clamped at the root).
fn join(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        base.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        None
    } else {
        Some(path.rsplit_once('/').map_or("", |(parent, _)| parent))
    }
}

/// Entries for the unit tests of this module's parts.
#[cfg(test)]
pub(crate) mod sample {
    use super::*;

    /// Descriptor 3: the first preopened directory (a root).
    pub const ROOT: u32 = 3;

    pub fn open(fd: u32, path: &str, o_flags: u16) -> JournalEntry<'static> {
        OpenFileDescriptorV1 {
            fd,
            dirfd: ROOT,
            dirflags: 0,
            path: path.to_owned().into(),
            o_flags,
            fs_rights_base: u64::MAX,
            fs_rights_inheriting: u64::MAX,
            fs_flags: 0,
        }
        .into()
    }

    pub fn create(fd: u32, path: &str) -> JournalEntry<'static> {
        open(fd, path, O_CREAT | O_EXCL)
    }

    pub fn write(fd: u32, offset: u64, data: &[u8]) -> JournalEntry<'static> {
        FileDescriptorWriteV1 {
            fd,
            offset,
            data: data.to_vec().into(),
        }
        .into()
    }

    pub fn close(fd: u32) -> JournalEntry<'static> {
        CloseFileDescriptorV1 { fd }.into()
    }

    pub fn mkdir(path: &str) -> JournalEntry<'static> {
        CreateDirectoryV1 {
            fd: ROOT,
            path: path.to_owned().into(),
        }
        .into()
    }

    pub fn marker() -> JournalEntry<'static> {
        SnapshotV1 {
            since_epoch_ns: 1,
            trigger: SnapshotTrigger::Explicit.as_u8(),
        }
        .into()
    }

    pub fn resumed(snapshot_offset: u64) -> JournalEntry<'static> {
        ResumedFromSnapshotV1 { snapshot_offset }.into()
    }

    /// Numbers entries with increasing offsets (10, 20, …).
    pub fn records(entries: Vec<JournalEntry<'static>>) -> Vec<(u64, JournalEntry<'static>)> {
        entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| (10 * (i as u64 + 1), e))
            .collect()
    }

    /// The state `entries` replay to (at the end).
    pub fn state_of(entries: Vec<JournalEntry<'static>>) -> State {
        let mut replayer = Replayer::new();
        for (offset, entry) in records(entries) {
            replayer
                .apply(offset, &entry)
                .unwrap_or_else(|e| panic!("offset {offset}: {e}"));
        }
        replayer.state().clone()
    }
}
