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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::entry::*;
use crate::memory::{compressed_region, MemoryError, MemoryImage};

/// Why an entry cannot be applied to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The entry kind is outside what the model covers.
    #[error("{0} entries are not supported by compaction")]
    Unsupported(&'static str),
    /// The entry contradicts the state (it could not have succeeded).
    #[error("{kind}: {message}")]
    Invalid { kind: &'static str, message: String },
    /// A memory region is malformed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

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

/// A path: the root descriptor it hangs from, and its normalized components
/// joined by `/` (empty for the root itself).
pub type Location = (u32, String);

type NodeId = u64;

/// File contents: what the journal knows of them.
///
/// Invariant: `ranges` holds the known byte ranges `[start, end)`, sorted,
/// non-overlapping and non-adjacent; `bytes[start..end]` holds each range's
/// bytes (bytes outside the ranges mean nothing). Writing costs the length
/// written plus a logarithmic range update, whatever the file's size.
#[derive(Clone, Default)]
pub struct Contents {
    /// Bytes before this offset that no write covers are the file's original
    /// (unknown) bytes. `Some(0)` for a file the journal created or cut to
    /// zero; `None` when no truncation ever happened.
    pub original_until: Option<u64>,
    bytes: Vec<u8>,
    ranges: BTreeMap<u64, u64>,
    /// The size, when the journal knows it.
    pub size: Option<u64>,
}

impl PartialEq for Contents {
    fn eq(&self, other: &Self) -> bool {
        self.original_until == other.original_until
            && self.size == other.size
            && self.known().eq(other.known())
    }
}

impl Eq for Contents {}

impl std::fmt::Debug for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contents")
            .field("original_until", &self.original_until)
            .field(
                "known",
                &self
                    .known()
                    .map(|(start, bytes)| (start, bytes.len()))
                    .collect::<Vec<_>>(),
            )
            .field("size", &self.size)
            .finish()
    }
}

impl Contents {
    fn created() -> Self {
        Contents {
            original_until: Some(0),
            size: Some(0),
            ..Contents::default()
        }
    }

    /// The known bytes, by offset.
    pub fn known(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.ranges
            .iter()
            .map(|(&start, &end)| (start, &self.bytes[start as usize..end as usize]))
    }

    fn written_end(&self) -> u64 {
        self.ranges.values().next_back().copied().unwrap_or(0)
    }

    /// Removes `[from, to)` from the known ranges.
    fn forget(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        let mut touched: Vec<(u64, u64)> = Vec::new();
        if let Some((&start, &end)) = self.ranges.range(..from).next_back() {
            if end > from {
                touched.push((start, end));
            }
        }
        touched.extend(self.ranges.range(from..to).map(|(&s, &e)| (s, e)));
        for (start, end) in touched {
            self.ranges.remove(&start);
            if start < from {
                self.ranges.insert(start, from);
            }
            if end > to {
                self.ranges.insert(to, end);
            }
        }
    }

    /// Marks `[from, to)` known, merging with neighbours.
    fn cover(&mut self, from: u64, to: u64) {
        self.forget(from, to);
        let (mut start, mut end) = (from, to);
        if let Some((&before, &before_end)) = self.ranges.range(..from).next_back() {
            if before_end == from {
                self.ranges.remove(&before);
                start = before;
            }
        }
        if let Some(after_end) = self.ranges.remove(&to) {
            end = after_end;
        }
        self.ranges.insert(start, end);
    }

    fn put(&mut self, offset: u64, data: &[u8]) {
        let end = offset as usize + data.len();
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[offset as usize..end].copy_from_slice(data);
        self.cover(offset, end as u64);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        self.put(offset, data);
        if let Some(size) = self.size {
            if end > size {
                self.size = Some(end);
                // Bytes between the old size and the write are zeros: known.
                if offset > size {
                    self.fill_zeros(size, offset);
                }
            }
        }
    }

    fn fill_zeros(&mut self, from: u64, to: u64) {
        if to > from {
            if self.bytes.len() < to as usize {
                self.bytes.resize(to as usize, 0);
            }
            self.bytes[from as usize..to as usize].fill(0);
            self.cover(from, to);
        }
    }

    fn set_size(&mut self, size: u64) {
        let old = self.size;
        self.forget(size, u64::MAX);
        self.bytes.truncate(size as usize);
        self.original_until = Some(self.original_until.map_or(size, |cut| cut.min(size)));
        // Growing past the old size (or past the original bytes' cut) adds
        // zeros that are known.
        let zeros_from = match old {
            Some(old) => old.min(size),
            None => self.original_until.unwrap_or(size),
        };
        self.size = Some(size);
        let known_from = zeros_from.max(self.original_until.unwrap_or(0));
        if size > known_from {
            for (from, to) in self.gaps(known_from, size) {
                self.fill_zeros(from, to);
            }
        }
    }

    /// Ranges in `[from, to)` no known bytes cover.
    fn gaps(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = from;
        let first = self.ranges.range(..from).next_back().map(|(&s, &e)| (s, e));
        for (start, end) in first
            .into_iter()
            .chain(self.ranges.range(from..to).map(|(&s, &e)| (s, e)))
        {
            if end <= at {
                continue;
            }
            if start > at {
                gaps.push((at, start.min(to)));
            }
            at = at.max(end);
        }
        if at < to {
            gaps.push((at, to));
        }
        gaps
    }

    fn allocate(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        match self.size {
            Some(size) if end > size => self.set_size(end),
            _ => {}
        }
    }
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    File(Contents),
    Directory,
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

impl Node {
    /// Whether the journal changed a node that existed before (its contents
    /// or times are no longer simply unknown).
    fn changed(&self) -> bool {
        self.times.is_some()
            || matches!(&self.kind, NodeKind::File(contents) if *contents != Contents::default())
    }
}

impl State {
    /// An empty state: nothing known, standard streams open.
    pub fn new() -> Self {
        Self::default()
    }

    fn description(&self, fd: u32) -> Option<&Description> {
        self.descriptors
            .get(&fd)
            .and_then(|id| self.descriptions.get(id))
    }

    /// What `fd` refers to: its description, or the original root or stream
    /// it names if the journal never touched it.
    fn target_of(&self, fd: u32) -> Option<Target> {
        match self.description(fd) {
            Some(description) => Some(description.target.clone()),
            None if self.closed_originals.contains(&fd)
                || self.used.contains(&fd)
                || fd >= SCRATCH_FLOOR =>
            {
                None
            }
            None if fd <= 2 => Some(Target::Stdio(fd)),
            None => Some(Target::Root(fd)),
        }
    }

    /// The directory location `fd` names, for resolving paths.
    fn directory_of(&self, kind: EntryKind, fd: u32) -> Result<Location, StateError> {
        match self.target_of(fd) {
            Some(Target::Root(root)) => Ok((root, String::new())),
            Some(Target::Node(node)) => {
                let is_dir = matches!(
                    self.nodes.get(&node).map(|n| &n.kind),
                    Some(NodeKind::Directory)
                );
                match self.location_of(node) {
                    Some(location) if is_dir => Ok(location),
                    _ => Err(invalid(
                        kind,
                        format!("descriptor {fd} is not an open directory"),
                    )),
                }
            }
            _ => Err(invalid(kind, format!("descriptor {fd} is not a directory"))),
        }
    }

    fn resolve(&self, kind: EntryKind, fd: u32, path: &str) -> Result<Location, StateError> {
        let (root, base) = self.directory_of(kind, fd)?;
        let joined = join(&base, path);
        // Paths are resolved lexically: one that goes through a known
        // symlink cannot be, and one through a file does not exist.
        let mut up = joined.as_str();
        while let Some(parent_path) = parent(up) {
            if parent_path.is_empty() {
                break;
            }
            if let Some(node) = self.names.get(&(root, parent_path.to_owned())) {
                match self.nodes.get(node).map(|n| &n.kind) {
                    Some(NodeKind::Symlink(_)) => {
                        return Err(StateError::Unsupported("a path through a symbolic link"))
                    }
                    Some(NodeKind::File(_)) => {
                        return Err(invalid(kind, format!("{parent_path} is not a directory")))
                    }
                    _ => {}
                }
            }
            up = parent_path;
        }
        Ok((root, joined))
    }

    /// One current name of a node (the first in order).
    fn location_of(&self, node: NodeId) -> Option<Location> {
        self.names
            .iter()
            .find(|(_, n)| **n == node)
            .map(|(l, _)| l.clone())
    }

    /// Whether names below `location` exist now.
    fn has_live_children(&self, location: &Location) -> bool {
        let prefix = format!("{}/", location.1);
        self.names
            .keys()
            .any(|(root, path)| *root == location.0 && path.starts_with(&prefix))
    }

    /// Whether the model knows names below `location` (then it is a directory).
    /// (Names below it that existed before and were deleted count too, unless
    /// it was itself deleted since.)
    fn has_descendants(&self, location: &Location) -> bool {
        let prefix = format!("{}/", location.1);
        let below = |(root, path): &Location| *root == location.0 && path.starts_with(&prefix);
        self.has_live_children(location)
            || (!self.removed.contains(location) && self.removed.iter().any(below))
    }

    /// The node at `location`, creating a node for something that existed
    /// before the journal when the journal has not seen the path yet.
    fn lookup(&mut self, location: &Location, assume: impl FnOnce() -> NodeKind) -> Option<NodeId> {
        if let Some(node) = self.names.get(location) {
            return Some(*node);
        }
        if self.removed.contains(location)
            || self.created_below_removed(location)
            || self.parent_is_new(location)
        {
            return None;
        }
        let kind = if self.has_descendants(location) {
            NodeKind::Directory
        } else {
            assume()
        };
        let id = self.new_node(kind, Some(location.clone()));
        self.names.insert(location.clone(), id);
        Some(id)
    }

    /// Whether an ancestor directory is one the journal created: then every
    /// name below it is known to the model, and an unseen one does not exist.
    fn parent_is_new(&self, location: &Location) -> bool {
        let mut path = location.1.as_str();
        while let Some(up) = parent(path) {
            if up.is_empty() {
                return false;
            }
            if self
                .names
                .get(&(location.0, up.to_owned()))
                .is_some_and(|n| !self.existed_before(*n))
            {
                return true;
            }
            path = up;
        }
        false
    }

    fn created_below_removed(&self, location: &Location) -> bool {
        let mut path = location.1.as_str();
        while let Some(up) = parent(path) {
            if self.removed.contains(&(location.0, up.to_owned())) {
                return true;
            }
            path = up;
        }
        false
    }

    fn new_node(&mut self, kind: NodeKind, original: Option<Location>) -> NodeId {
        let id = self.next_node;
        self.next_node += 1;
        self.nodes.insert(
            id,
            Node {
                kind,
                original,
                times: None,
            },
        );
        id
    }

    fn existed_before(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| n.original.is_some())
    }

    /// Removes a name; a node that existed before leaves a deletion behind.
    fn unlink_name(&mut self, location: &Location) -> Option<NodeId> {
        let node = self.names.remove(location)?;
        if self.nodes.get(&node).and_then(|n| n.original.as_ref()) == Some(location) {
            self.removed.insert(location.clone());
        }
        self.collect(node);
        Some(node)
    }

    /// Drops a node nothing refers to any more.
    fn collect(&mut self, node: NodeId) {
        let named = self.names.values().any(|n| *n == node);
        let open = self
            .descriptions
            .values()
            .any(|d| d.target == Target::Node(node));
        if !named && !open && !self.existed_before(node) {
            self.nodes.remove(&node);
        }
    }

    fn close(&mut self, fd: u32) {
        match self.descriptors.remove(&fd) {
            Some(id) => {
                // Closing a root or stream at its own number closes the original.
                if matches!(self.descriptions.get(&id).map(|d| &d.target), Some(Target::Root(o) | Target::Stdio(o)) if *o == fd)
                {
                    self.closed_originals.insert(fd);
                }
                if !self.descriptors.values().any(|d| *d == id) {
                    if let Some(description) = self.descriptions.remove(&id) {
                        if let Target::Node(node) = description.target {
                            self.collect(node);
                        }
                    }
                }
            }
            None => {
                if !self.used.contains(&fd) {
                    self.closed_originals.insert(fd);
                }
            }
        }
    }

    /// Puts a new description at `fd`, a free number the program was just given.
    fn install(&mut self, fd: u32, description: Description) {
        self.used.insert(fd);
        let id = self.next_description;
        self.next_description += 1;
        self.descriptions.insert(id, description);
        self.descriptors.insert(fd, id);
    }

    /// The description behind `fd`, materialized if `fd` is an original root
    /// or stream (so that its position and flags can change).
    fn description_mut(
        &mut self,
        kind: EntryKind,
        fd: u32,
    ) -> Result<&mut Description, StateError> {
        if !self.descriptors.contains_key(&fd) {
            let target = self
                .target_of(fd)
                .ok_or_else(|| invalid(kind, format!("descriptor {fd} is closed")))?;
            let id = self.next_description;
            self.next_description += 1;
            self.descriptions.insert(
                id,
                Description {
                    target,
                    position: 0,
                    flags: 0,
                    rights_base: u64::MAX,
                    rights_inheriting: u64::MAX,
                    opened_as: None,
                },
            );
            self.descriptors.insert(fd, id);
            self.used.insert(fd);
        }
        let id = self.descriptors[&fd];
        self.descriptions
            .get_mut(&id)
            .ok_or_else(|| invalid(kind, format!("descriptor {fd} has no description")))
    }

    fn file_of(&mut self, kind: EntryKind, fd: u32) -> Result<(NodeId, &mut Contents), StateError> {
        let Some(Target::Node(node)) = self.target_of(fd) else {
            return Err(invalid(kind, format!("descriptor {fd} is not a file")));
        };
        let entry = self
            .nodes
            .get_mut(&node)
            .ok_or_else(|| invalid(kind, format!("descriptor {fd} refers to nothing")))?;
        match &mut entry.kind {
            NodeKind::File(contents) => Ok((node, contents)),
            _ => Err(invalid(
                kind,
                format!("descriptor {fd} is not a regular file"),
            )),
        }
    }

    /// Applies one entry. `offset` is the record's offset, which snapshot
    /// markers and resumes refer to; `snapshots` keeps the state at each
    /// marker for resumes.
    fn apply(
        &mut self,
        entry: &JournalEntry<'_>,
        offset: u64,
        snapshots: &mut HashMap<u64, State>,
    ) -> Result<(), StateError> {
        let kind = entry.kind();
        match entry {
            JournalEntry::InitModuleV1(e) => self.module = Some(e.wasm_hash),
            JournalEntry::ProcessExitV1(e) => self.exit_code = Some(e.exit_code),
            JournalEntry::EnvironmentV1(e) => {
                self.environment = Some((e.args.clone(), e.env.clone()))
            }
            JournalEntry::ClockSetV1(e) => {
                self.clocks.insert(e.clock_id, e.time_ns);
            }
            JournalEntry::UpdateMemoryRegionV1(e) => self.memory.apply(e)?,
            JournalEntry::ThreadStateV1(e) => {
                self.threads
                    .insert(e.thread_id, e.clone().into_owned_state());
            }
            JournalEntry::ThreadExitV1(e) => {
                self.threads.remove(&e.thread_id);
            }
            JournalEntry::SnapshotV1(e) => {
                self.last_snapshot = Some(e.clone());
                snapshots.insert(offset, self.clone());
            }
            JournalEntry::ResumedFromSnapshotV1(e) => {
                let saved = snapshots.get(&e.snapshot_offset).ok_or_else(|| {
                    invalid(kind, format!("no snapshot at offset {}", e.snapshot_offset))
                })?;
                *self = saved.clone();
            }
            JournalEntry::OpenFileDescriptorV1(e) => self.open(e)?,
            JournalEntry::CloseFileDescriptorV1(e) => {
                if self.target_of(e.fd).is_none() {
                    return Err(invalid(kind, format!("descriptor {} is not open", e.fd)));
                }
                self.close(e.fd);
            }
            JournalEntry::FileDescriptorSeekV1(e) => {
                let size = match self.target_of(e.fd) {
                    Some(Target::Node(node)) => match self.nodes.get(&node).map(|n| &n.kind) {
                        Some(NodeKind::File(contents)) => contents.size,
                        _ => None,
                    },
                    _ => None,
                };
                let description = self.description_mut(kind, e.fd)?;
                let base = match e.whence {
                    0 => 0,
                    1 => description.position,
                    2 => size.ok_or_else(|| {
                        invalid(kind, "seek from the end of a file of unknown size")
                    })?,
                    other => return Err(invalid(kind, format!("unknown whence {other}"))),
                };
                description.position = base
                    .checked_add_signed(e.offset)
                    .ok_or_else(|| invalid(kind, "negative position"))?;
            }
            JournalEntry::FileDescriptorWriteV1(e) => match self.target_of(e.fd) {
                Some(Target::Stdio(stream)) => self.passthrough.push(
                    FileDescriptorWriteV1 {
                        fd: stream,
                        offset: e.offset,
                        data: Cow::Owned(e.data.to_vec()),
                    }
                    .into(),
                ),
                _ => {
                    let (_, contents) = self.file_of(kind, e.fd)?;
                    contents.write(e.offset, &e.data);
                    let end = e.offset + e.data.len() as u64;
                    self.description_mut(kind, e.fd)?.position = end;
                }
            },
            JournalEntry::FileDescriptorSetSizeV1(e) => {
                self.file_of(kind, e.fd)?.1.set_size(e.size)
            }
            JournalEntry::FileDescriptorAllocateV1(e) => {
                self.file_of(kind, e.fd)?.1.allocate(e.offset, e.len)
            }
            JournalEntry::FileDescriptorSetTimesV1(e) => {
                let Some(Target::Node(node)) = self.target_of(e.fd) else {
                    return Err(invalid(kind, format!("descriptor {} has no times", e.fd)));
                };
                self.set_times(node, e.atim, e.mtim, e.fst_flags);
            }
            JournalEntry::FileDescriptorSetFlagsV1(e) => {
                self.description_mut(kind, e.fd)?.flags = e.flags
            }
            JournalEntry::FileDescriptorSetRightsV1(e) => {
                let description = self.description_mut(kind, e.fd)?;
                description.rights_base = e.fs_rights_base;
                description.rights_inheriting = e.fs_rights_inheriting;
            }
            JournalEntry::FileDescriptorAdviseV1(e) => {
                self.target_of(e.fd)
                    .ok_or_else(|| invalid(kind, "closed descriptor"))?;
            }
            JournalEntry::RenumberFileDescriptorV1(e) => {
                // fd_renumber replaces an open descriptor.
                if self.target_of(e.to_fd).is_none() {
                    return Err(invalid(kind, format!("descriptor {} is not open", e.to_fd)));
                }
                self.description_mut(kind, e.from_fd)?;
                if e.from_fd != e.to_fd {
                    let id = *self
                        .descriptors
                        .get(&e.from_fd)
                        .ok_or_else(|| invalid(kind, "closed descriptor"))?;
                    // Moving a root or stream off its own number closes that number.
                    if matches!(self.descriptions.get(&id).map(|d| &d.target), Some(Target::Root(o) | Target::Stdio(o)) if *o == e.from_fd)
                    {
                        self.closed_originals.insert(e.from_fd);
                    }
                    if self.descriptors.get(&e.to_fd) == Some(&id) {
                        self.descriptors.remove(&e.from_fd);
                    } else {
                        if self.target_of(e.to_fd).is_some() {
                            self.close(e.to_fd);
                        }
                        self.descriptors.remove(&e.from_fd);
                        self.used.insert(e.to_fd);
                        self.descriptors.insert(e.to_fd, id);
                    }
                }
            }
            JournalEntry::DuplicateFileDescriptorV1(e) => {
                // The copy is a number the program was just given: free.
                if self.descriptors.contains_key(&e.copied_fd) {
                    return Err(invalid(
                        kind,
                        format!("descriptor {} is in use", e.copied_fd),
                    ));
                }
                self.description_mut(kind, e.original_fd)?;
                let id = self.descriptors[&e.original_fd];
                self.used.insert(e.copied_fd);
                self.descriptors.insert(e.copied_fd, id);
            }
            JournalEntry::CreateDirectoryV1(e) => {
                let location = self.resolve(kind, e.fd, &e.path)?;
                self.require_absent(kind, &location)?;
                let node = self.new_node(NodeKind::Directory, None);
                self.names.insert(location, node);
            }
            JournalEntry::RemoveDirectoryV1(e) => {
                let location = self.resolve(kind, e.fd, &e.path)?;
                let node = self
                    .lookup(&location, || NodeKind::Directory)
                    .ok_or_else(|| invalid(kind, format!("{} does not exist", location.1)))?;
                if !matches!(self.nodes[&node].kind, NodeKind::Directory) {
                    return Err(invalid(kind, format!("{} is not a directory", location.1)));
                }
                if self.has_live_children(&location) {
                    return Err(invalid(kind, format!("{} is not empty", location.1)));
                }
                self.unlink_name(&location);
            }
            JournalEntry::UnlinkFileV1(e) => {
                let location = self.resolve(kind, e.fd, &e.path)?;
                let node = self
                    .lookup(&location, || NodeKind::File(Contents::default()))
                    .ok_or_else(|| invalid(kind, format!("{} does not exist", location.1)))?;
                if matches!(self.nodes[&node].kind, NodeKind::Directory)
                    || self.has_descendants(&location)
                {
                    return Err(invalid(kind, format!("{} is a directory", location.1)));
                }
                self.unlink_name(&location);
            }
            JournalEntry::PathRenameV1(e) => {
                let from = self.resolve(kind, e.old_fd, &e.old_path)?;
                let to = self.resolve(kind, e.new_fd, &e.new_path)?;
                self.rename(kind, &from, &to)?;
            }
            JournalEntry::CreateHardLinkV1(e) => {
                let from = self.resolve(kind, e.old_fd, &e.old_path)?;
                let to = self.resolve(kind, e.new_fd, &e.new_path)?;
                let node = *self.names.get(&from).ok_or(StateError::Unsupported(
                    "CreateHardLinkV1 of something that existed before the journal",
                ))?;
                if self.existed_before(node) {
                    return Err(StateError::Unsupported(
                        "CreateHardLinkV1 of something that existed before the journal",
                    ));
                }
                if matches!(self.nodes[&node].kind, NodeKind::Directory) {
                    return Err(invalid(kind, format!("{} is a directory", from.1)));
                }
                self.require_absent(kind, &to)?;
                self.names.insert(to, node);
            }
            JournalEntry::CreateSymbolicLinkV1(e) => {
                let location = self.resolve(kind, e.fd, &e.new_path)?;
                self.require_absent(kind, &location)?;
                let node = self.new_node(NodeKind::Symlink(e.target.to_string()), None);
                self.names.insert(location, node);
            }
            JournalEntry::PathSetTimesV1(e) => {
                let location = self.resolve(kind, e.fd, &e.path)?;
                let node = self
                    .lookup(&location, || NodeKind::File(Contents::default()))
                    .ok_or_else(|| invalid(kind, format!("{} does not exist", location.1)))?;
                self.set_times(node, e.atim, e.mtim, e.fst_flags);
            }
            JournalEntry::TtySetV1(_)
            | JournalEntry::ClockReadV1(_)
            | JournalEntry::RandomBytesV1(_)
            | JournalEntry::InputReadV1(_)
            | JournalEntry::PollResultV1(_) => {
                self.passthrough.push(entry.clone().into_owned());
            }
            JournalEntry::ChangeDirectoryV1(_) => return Err(StateError::Unsupported(kind.name())),
            _ => return Err(StateError::Unsupported(kind.name())),
        }
        Ok(())
    }

    /// Creating `location` needs its parent directory to exist.
    fn require_parent(&self, kind: EntryKind, location: &Location) -> Result<(), StateError> {
        let Some(up) = parent(&location.1) else {
            return Err(invalid(kind, "cannot create the root"));
        };
        if up.is_empty() {
            return Ok(());
        }
        let up_location = (location.0, up.to_owned());
        let missing = || invalid(kind, format!("{up} does not exist"));
        match self.names.get(&up_location) {
            Some(node) => match self.nodes.get(node).map(|n| &n.kind) {
                Some(NodeKind::Directory) => Ok(()),
                _ => Err(invalid(kind, format!("{up} is not a directory"))),
            },
            None if self.removed.contains(&up_location)
                || self.created_below_removed(&up_location)
                || self.parent_is_new(&up_location) =>
            {
                Err(missing())
            }
            None => Ok(()),
        }
    }

    fn require_absent(&mut self, kind: EntryKind, location: &Location) -> Result<(), StateError> {
        self.require_parent(kind, location)?;
        // A known name below it means it exists, as a directory.
        if self.names.contains_key(location) || self.has_descendants(location) {
            return Err(invalid(kind, format!("{} already exists", location.1)));
        }
        Ok(())
    }

    fn set_times(&mut self, node: NodeId, atim: u64, mtim: u64, flags: u16) {
        if let Some(node) = self.nodes.get_mut(&node) {
            let (old_atim, old_mtim, old_flags) = node.times.unwrap_or((0, 0, 0));
            // fst_flags: 1 atim, 2 atim now, 4 mtim, 8 mtim now.
            let (atim, atim_flags) = if flags & 3 != 0 {
                (atim, flags & 3)
            } else {
                (old_atim, old_flags & 3)
            };
            let (mtim, mtim_flags) = if flags & 12 != 0 {
                (mtim, flags & 12)
            } else {
                (old_mtim, old_flags & 12)
            };
            node.times = Some((atim, mtim, atim_flags | mtim_flags));
        }
    }

    fn open(&mut self, e: &OpenFileDescriptorV1<'_>) -> Result<(), StateError> {
        let kind = EntryKind::OpenFileDescriptorV1;
        if self.descriptors.contains_key(&e.fd) {
            return Err(invalid(
                kind,
                format!("descriptor {} is already open", e.fd),
            ));
        }
        let location = self.resolve(kind, e.dirfd, &e.path)?;
        let wants_directory = e.o_flags & O_DIRECTORY != 0;
        if wants_directory && e.o_flags & (O_CREAT | O_TRUNC) != 0 {
            return Err(invalid(
                kind,
                "O_DIRECTORY cannot be combined with O_CREAT or O_TRUNC",
            ));
        }
        let create = e.o_flags & O_CREAT != 0;
        let exclusive = create && e.o_flags & O_EXCL != 0;
        if create && !self.names.contains_key(&location) {
            self.require_parent(kind, &location)?;
        }
        if !self.names.contains_key(&location) && self.has_descendants(&location) {
            // Known names below it: it exists, as a directory.
            if exclusive {
                return Err(invalid(kind, format!("{} already exists", location.1)));
            }
            if e.o_flags & O_TRUNC != 0 {
                return Err(invalid(kind, format!("{} is a directory", location.1)));
            }
        }
        let node = match self.names.get(&location) {
            Some(_) if exclusive => {
                return Err(invalid(kind, format!("{} already exists", location.1)));
            }
            Some(node) => *node,
            // Certainly new: O_EXCL succeeded, or the name is known to be free.
            None if create
                && (exclusive
                    || self.removed.contains(&location)
                    || self.created_below_removed(&location)
                    || self.parent_is_new(&location)) =>
            {
                let node = self.new_node(NodeKind::File(Contents::created()), None);
                self.names.insert(location.clone(), node);
                node
            }
            // Otherwise it existed before (or, with O_CREAT, may have): its
            // contents are unknown.
            None => {
                let assume = if wants_directory {
                    NodeKind::Directory
                } else {
                    NodeKind::File(Contents::default())
                };
                match self.lookup(&location, || assume) {
                    Some(node) => node,
                    None => return Err(invalid(kind, format!("{} does not exist", location.1))),
                }
            }
        };
        if e.o_flags & (O_CREAT | O_TRUNC) != 0
            && matches!(self.nodes[&node].kind, NodeKind::Directory)
        {
            return Err(invalid(kind, format!("{} is a directory", location.1)));
        }
        if e.o_flags & O_TRUNC != 0 {
            if let Some(entry) = self.nodes.get_mut(&node) {
                if let NodeKind::File(contents) = &mut entry.kind {
                    contents.set_size(0);
                }
            }
        }
        if wants_directory && !matches!(self.nodes[&node].kind, NodeKind::Directory) {
            return Err(invalid(kind, format!("{} is not a directory", location.1)));
        }
        self.install(
            e.fd,
            Description {
                target: Target::Node(node),
                position: 0,
                flags: e.fs_flags,
                rights_base: e.fs_rights_base,
                rights_inheriting: e.fs_rights_inheriting,
                opened_as: Some((e.dirfd, e.path.to_string(), e.dirflags, e.o_flags)),
            },
        );
        Ok(())
    }

    fn rename(
        &mut self,
        kind: EntryKind,
        from: &Location,
        to: &Location,
    ) -> Result<(), StateError> {
        let node = *self.names.get(from).ok_or(StateError::Unsupported(
            "PathRenameV1 of something that existed before the journal",
        ))?;
        if self.existed_before(node) {
            return Err(StateError::Unsupported(
                "PathRenameV1 of something that existed before the journal",
            ));
        }
        if from == to {
            return Ok(());
        }
        self.require_parent(kind, to)?;
        if !self.names.contains_key(to) && self.has_descendants(to) {
            // An existing directory the model knows only through its children.
            let live_children = self.has_live_children(to);
            let moving_dir = matches!(self.nodes[&node].kind, NodeKind::Directory);
            if live_children || !moving_dir {
                return Err(invalid(
                    kind,
                    format!("{} is a directory that cannot be replaced", to.1),
                ));
            }
            // An empty directory that existed before, replaced by ours.
            self.removed.insert(to.clone());
        }
        let is_dir = matches!(self.nodes[&node].kind, NodeKind::Directory);
        if is_dir && to.0 == from.0 && (to.1.starts_with(&format!("{}/", from.1))) {
            return Err(invalid(kind, "cannot move a directory into itself"));
        }
        if let Some(&existing) = self.names.get(to) {
            let existing_is_dir = matches!(self.nodes[&existing].kind, NodeKind::Directory);
            if existing_is_dir != is_dir {
                return Err(invalid(kind, format!("{} is of another kind", to.1)));
            }
            if existing_is_dir && self.has_live_children(to) {
                return Err(invalid(kind, format!("{} is not empty", to.1)));
            }
            self.unlink_name(to);
        }
        self.names.remove(from);
        self.names.insert(to.clone(), node);
        if is_dir {
            let prefix = format!("{}/", from.1);
            let moved: Vec<(Location, NodeId)> = self
                .names
                .iter()
                .filter(|((root, path), _)| *root == from.0 && path.starts_with(&prefix))
                .map(|(l, n)| (l.clone(), *n))
                .collect();
            for ((_, path), child) in moved {
                if self.existed_before(child) {
                    return Err(StateError::Unsupported(
                        "PathRenameV1 of something that existed before the journal",
                    ));
                }
                self.names.remove(&(from.0, path.clone()));
                self.names
                    .insert((to.0, format!("{}/{}", to.1, &path[prefix.len()..])), child);
            }
        }
        Ok(())
    }
}

trait IntoOwnedState {
    fn into_owned_state(self) -> ThreadStateV1<'static>;
}

impl IntoOwnedState for ThreadStateV1<'_> {
    fn into_owned_state(self) -> ThreadStateV1<'static> {
        ThreadStateV1 {
            thread_id: self.thread_id,
            call_stack: Cow::Owned(self.call_stack.into_owned()),
            memory_stack: Cow::Owned(self.memory_stack.into_owned()),
            globals: self.globals,
            stack_lower: self.stack_lower,
            stack_upper: self.stack_upper,
            guard_size: self.guard_size,
        }
    }
}

/// A journal's entries applied to the model, split where compaction needs.
#[derive(Debug)]
pub struct Replayed {
    /// The state at the last snapshot marker (or at the end, if none).
    pub state: State,
    /// Records after the last snapshot marker, kept as they are, with the
    /// offset of the snapshot a resume among them refers to.
    pub tail: Vec<(u64, JournalEntry<'static>)>,
    /// Offset of the last snapshot marker, if any.
    pub last_snapshot_offset: Option<u64>,
    /// The state after every entry.
    pub end: State,
}

/// Applies entries one at a time, remembering the state at each snapshot
/// marker for resumes.
#[derive(Debug, Default, Clone)]
pub struct Replayer {
    state: State,
    snapshots: HashMap<u64, State>,
}

impl Replayer {
    /// Starts from nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the entry recorded at `offset`, in place. After an error the
    /// state is unspecified (a caller that wants to try an entry clones the
    /// replayer first).
    pub fn apply(&mut self, offset: u64, entry: &JournalEntry<'_>) -> Result<(), StateError> {
        self.state.apply(entry, offset, &mut self.snapshots)
    }

    /// The state so far.
    pub fn state(&self) -> &State {
        &self.state
    }
}

/// Replays `records` (offset, entry) into the model.
pub fn replay<'e>(
    records: impl IntoIterator<Item = (u64, JournalEntry<'e>)>,
) -> Result<Replayed, (u64, StateError)> {
    let mut replayer = Replayer::new();
    let mut at_last_snapshot: Option<(u64, State)> = None;
    let mut tail = Vec::new();
    for (offset, entry) in records {
        replayer.apply(offset, &entry).map_err(|e| (offset, e))?;
        if matches!(entry, JournalEntry::SnapshotV1(_)) {
            at_last_snapshot = Some((offset, replayer.state.clone()));
            tail.clear();
        } else {
            tail.push((offset, entry.into_owned()));
        }
    }
    let end = replayer.state;
    Ok(match at_last_snapshot {
        Some((offset, at)) => Replayed {
            state: at,
            tail,
            last_snapshot_offset: Some(offset),
            end,
        },
        None => Replayed {
            state: end.clone(),
            tail: Vec::new(),
            last_snapshot_offset: None,
            end,
        },
    })
}

/// Descriptor numbers compaction uses for a moment while it rebuilds files;
/// chosen far above anything a program gets. Numbers from `SCRATCH_FLOOR` up
/// are never taken for roots.
const SCRATCH_FD: u32 = u32::MAX - 1;
const SCRATCH_FLOOR: u32 = u32::MAX - 65_536;

/// The pages of memory worth writing: 64 KiB pages holding a non-zero byte,
/// adjacent ones merged.
const MEMORY_PAGE: usize = 64 * 1024;

impl State {
    /// Entries that rebuild this state from nothing, in an order replay can
    /// apply. Renames, writes that were overwritten, descriptors that were
    /// closed, memory that was rewritten and old thread states leave no
    /// trace.
    ///
    /// Order: core; then the file system, built while every root is still at
    /// its original number (changes to what existed before, descriptors on
    /// things about to be deleted, deletions, new directories, files, links);
    /// every open node is opened at a parking number; then roots and streams
    /// that moved are parked too, closed ones are closed, and everything is
    /// renumbered into place; then memory, threads, kept output and inputs.
    pub fn to_entries(&self) -> Vec<JournalEntry<'static>> {
        let mut out: Vec<JournalEntry<'static>> = Vec::new();
        if let Some(hash) = self.module {
            out.push(InitModuleV1 { wasm_hash: hash }.into());
        }
        if let Some((args, env)) = &self.environment {
            out.push(
                EnvironmentV1 {
                    args: args.clone(),
                    env: env.clone(),
                }
                .into(),
            );
        }
        for (&clock_id, &time_ns) in &self.clocks {
            out.push(ClockSetV1 { clock_id, time_ns }.into());
        }
        // Output and inputs, while the standard streams are still in place.
        out.extend(self.passthrough.iter().cloned());

        // What existed before and still has its name: opened once, which
        // creates a file the journal may have created with O_CREAT and tells
        // replay the path exists; changed contents and times are restored
        // through that descriptor (such nodes cannot have moved: renaming them
        // is refused). Parents sort before children.
        let mut original_nodes: Vec<(&Location, NodeId)> = self
            .names
            .iter()
            .filter(|(location, id)| self.nodes[*id].original.as_ref() == Some(*location))
            .map(|(location, id)| (location, *id))
            .collect();
        original_nodes.sort();
        for (location, id) in &original_nodes {
            let node = &self.nodes[id];
            match &node.kind {
                NodeKind::File(contents) => {
                    // O_CREAT: replay works whether or not the file is there.
                    out.push(open_entry(SCRATCH_FD, location, O_CREAT));
                    push_contents(&mut out, SCRATCH_FD, contents, false);
                }
                _ => out.push(open_entry(SCRATCH_FD, location, O_DIRECTORY)),
            }
            push_times(&mut out, SCRATCH_FD, node.times);
            out.push(CloseFileDescriptorV1 { fd: SCRATCH_FD }.into());
        }
        let groups = self.descriptor_groups();
        let node_of = |id: &DescriptionId| match self.descriptions[id].target {
            Target::Node(node) => Some(node),
            _ => None,
        };
        let deleted_original = |node: NodeId| {
            self.nodes[&node]
                .original
                .as_ref()
                .is_some_and(|l| self.removed.contains(l))
        };
        // Descriptors on things that existed before and are deleted: opened
        // (parked) while the path still exists.
        for (id, fds) in groups.iter() {
            if let Some(node) = node_of(id) {
                if deleted_original(node) {
                    let parked = parking_fd(fds[0]);
                    self.push_open(
                        &mut out,
                        parked,
                        node,
                        &self.descriptions[id],
                        &HashMap::new(),
                    );
                    // Its name is about to go: restore changes through the descriptor.
                    if let NodeKind::File(contents) = &self.nodes[&node].kind {
                        push_contents(&mut out, parked, contents, false);
                        // Writing moved the position; put it back.
                        let position = self.descriptions[id].position as i64;
                        out.push(
                            FileDescriptorSeekV1 {
                                fd: parked,
                                offset: position,
                                whence: 0,
                            }
                            .into(),
                        );
                    }
                    push_times(&mut out, parked, self.nodes[&node].times);
                }
            }
        }
        // Deletions, deepest first.
        let mut removed: Vec<&Location> = self.removed.iter().collect();
        removed.sort_by_key(|(root, path)| {
            (
                std::cmp::Reverse(path.matches('/').count()),
                *root,
                path.clone(),
            )
        });
        for location in removed {
            let prefix = format!("{}/", location.1);
            let was_dir = self.nodes.values().any(|n| {
                n.original.as_ref() == Some(location) && matches!(n.kind, NodeKind::Directory)
            }) || self
                .removed
                .iter()
                .any(|(root, path)| *root == location.0 && path.starts_with(&prefix));
            let path = Cow::Owned(location.1.clone());
            if was_dir {
                out.push(
                    RemoveDirectoryV1 {
                        fd: location.0,
                        path,
                    }
                    .into(),
                );
            } else {
                // The journal may have created it with O_CREAT over nothing:
                // make sure there is something to unlink.
                out.push(open_entry(SCRATCH_FD, location, O_CREAT));
                out.push(CloseFileDescriptorV1 { fd: SCRATCH_FD }.into());
                out.push(
                    UnlinkFileV1 {
                        fd: location.0,
                        path,
                    }
                    .into(),
                );
            }
        }
        // New directories, parents first.
        let mut directories: Vec<&Location> = self
            .names
            .iter()
            .filter(|(_, id)| {
                !self.existed_before(**id) && matches!(self.nodes[*id].kind, NodeKind::Directory)
            })
            .map(|(l, _)| l)
            .collect();
        directories.sort_by_key(|(root, path)| (path.matches('/').count(), *root, path.clone()));
        for (root, path) in directories {
            out.push(
                CreateDirectoryV1 {
                    fd: *root,
                    path: Cow::Owned(path.clone()),
                }
                .into(),
            );
        }
        // New files and symlinks, under their first name; other names as links.
        let mut first_names: BTreeMap<NodeId, &Location> = BTreeMap::new();
        for (location, id) in &self.names {
            if !self.existed_before(*id) {
                first_names.entry(*id).or_insert(location);
            }
        }
        // In path order, so that equal states compact to equal journals.
        let mut by_location: Vec<(&Location, NodeId)> =
            first_names.iter().map(|(id, l)| (*l, *id)).collect();
        by_location.sort();
        for (location, id) in by_location {
            self.push_node(&mut out, id, location);
        }
        for (location, id) in &self.names {
            if let Some(first) = first_names.get(id) {
                if *first != location && !matches!(self.nodes[id].kind, NodeKind::Directory) {
                    out.push(
                        CreateHardLinkV1 {
                            old_fd: first.0,
                            old_path: Cow::Owned(first.1.clone()),
                            old_flags: 0,
                            new_fd: location.0,
                            new_path: Cow::Owned(location.1.clone()),
                        }
                        .into(),
                    );
                }
            }
        }
        // Open nodes that have no name any more: made under a scratch name,
        // opened, and unlinked again below.
        let mut scratch_names: HashMap<NodeId, Location> = HashMap::new();
        for (id, fds) in &groups {
            if let Some(node) = node_of(id) {
                if !self.existed_before(node)
                    && !first_names.contains_key(&node)
                    && !scratch_names.contains_key(&node)
                {
                    let location = (self.any_root(), format!(".wasnap-compact-fd{}", fds[0]));
                    self.push_node(&mut out, node, &location);
                    scratch_names.insert(node, location);
                }
            }
        }
        // Every other open node, parked.
        for (id, fds) in groups.iter() {
            if let Some(node) = node_of(id) {
                if !deleted_original(node) {
                    self.push_open(
                        &mut out,
                        parking_fd(fds[0]),
                        node,
                        &self.descriptions[id],
                        &scratch_names,
                    );
                }
            }
        }
        let mut scratch: Vec<&Location> = scratch_names.values().collect();
        scratch.sort();
        for location in scratch {
            let is_dir = self.nodes.iter().any(|(id, n)| {
                scratch_names.get(id) == Some(location) && matches!(n.kind, NodeKind::Directory)
            });
            let path = Cow::Owned(location.1.clone());
            out.push(if is_dir {
                RemoveDirectoryV1 {
                    fd: location.0,
                    path,
                }
                .into()
            } else {
                UnlinkFileV1 {
                    fd: location.0,
                    path,
                }
                .into()
            });
        }
        // Roots and streams that moved: parked.
        for (id, fds) in groups.iter() {
            if let Target::Root(original) | Target::Stdio(original) = self.descriptions[id].target {
                if !fds.contains(&original) {
                    out.push(
                        DuplicateFileDescriptorV1 {
                            original_fd: original,
                            copied_fd: parking_fd(fds[0]),
                            cloexec: false,
                        }
                        .into(),
                    );
                    out.push(CloseFileDescriptorV1 { fd: original }.into());
                }
            }
        }
        // Roots and streams that are closed.
        for &fd in &self.closed_originals {
            let moved = self
                .descriptions
                .values()
                .any(|d| d.target == Target::Root(fd) || d.target == Target::Stdio(fd));
            if !moved {
                out.push(CloseFileDescriptorV1 { fd }.into());
            }
        }
        // Everything into place.
        for (id, fds) in groups.iter() {
            self.push_placement(&mut out, *id, fds);
        }

        // Memory: non-zero pages.
        let image = self.memory.as_bytes();
        let mut page = 0;
        while page * MEMORY_PAGE < image.len() {
            let start = page * MEMORY_PAGE;
            if image[start..(start + MEMORY_PAGE).min(image.len())]
                .iter()
                .all(|b| *b == 0)
            {
                page += 1;
                continue;
            }
            let mut end = start;
            while end < image.len()
                && image[end..(end + MEMORY_PAGE).min(image.len())]
                    .iter()
                    .any(|b| *b != 0)
            {
                end = (end + MEMORY_PAGE).min(image.len());
            }
            out.push(compressed_region(start as u64, &image[start..end]).into());
            page = end.div_ceil(MEMORY_PAGE);
        }
        for thread in self.threads.values() {
            out.push(thread.clone().into());
        }
        if let Some(code) = self.exit_code {
            out.push(ProcessExitV1 { exit_code: code }.into());
        }
        out
    }

    /// Creates a new node at `location`: a file with its contents and times,
    /// a symlink, or a directory.
    fn push_node(&self, out: &mut Vec<JournalEntry<'static>>, id: NodeId, location: &Location) {
        let node = &self.nodes[&id];
        match &node.kind {
            NodeKind::File(contents) => {
                out.push(open_entry(SCRATCH_FD, location, O_CREAT | O_EXCL | O_TRUNC));
                push_contents(out, SCRATCH_FD, contents, true);
                push_times(out, SCRATCH_FD, node.times);
                out.push(CloseFileDescriptorV1 { fd: SCRATCH_FD }.into());
            }
            NodeKind::Symlink(target) => out.push(
                CreateSymbolicLinkV1 {
                    target: Cow::Owned(target.clone()),
                    fd: location.0,
                    new_path: Cow::Owned(location.1.clone()),
                }
                .into(),
            ),
            NodeKind::Directory => {
                if !self.names.contains_key(location) {
                    out.push(
                        CreateDirectoryV1 {
                            fd: location.0,
                            path: Cow::Owned(location.1.clone()),
                        }
                        .into(),
                    );
                }
            }
        }
        if !matches!(node.kind, NodeKind::File(_)) {
            if let Some((atim, mtim, fst_flags)) = node.times {
                out.push(
                    PathSetTimesV1 {
                        fd: location.0,
                        flags: 0,
                        path: Cow::Owned(location.1.clone()),
                        atim,
                        mtim,
                        fst_flags,
                    }
                    .into(),
                );
            }
        }
    }

    /// Opens node `node` as `fd` with the description's rights and flags.
    fn push_open(
        &self,
        out: &mut Vec<JournalEntry<'static>>,
        fd: u32,
        node: NodeId,
        description: &Description,
        scratch_names: &HashMap<NodeId, Location>,
    ) {
        let location = self
            .location_of(node)
            .or_else(|| self.nodes[&node].original.clone())
            .or_else(|| scratch_names.get(&node).cloned());
        let Some(location) = location else {
            return;
        };
        let o_flags = match self.nodes[&node].kind {
            NodeKind::Directory => O_DIRECTORY,
            NodeKind::File(_) if self.nodes[&node].original.is_some() => O_CREAT,
            _ => 0,
        };
        out.push(
            OpenFileDescriptorV1 {
                fd,
                dirfd: location.0,
                dirflags: 0,
                path: Cow::Owned(location.1.clone()),
                o_flags,
                fs_rights_base: description.rights_base,
                fs_rights_inheriting: description.rights_inheriting,
                fs_flags: description.flags,
            }
            .into(),
        );
    }

    /// A root to put scratch names under: the smallest root holding a name
    /// the journal created or changed (so equal states choose alike).
    fn any_root(&self) -> u32 {
        let relevant = self
            .names
            .iter()
            .filter(|(_, id)| {
                let node = &self.nodes[*id];
                node.original.is_none() || node.changed()
            })
            .map(|((root, _), _)| *root)
            .min();
        relevant
            .or_else(|| self.names.keys().map(|(root, _)| *root).min())
            .unwrap_or(3)
    }

    /// Open descriptions with the descriptors that share each, in order.
    fn descriptor_groups(&self) -> Vec<(DescriptionId, Vec<u32>)> {
        let mut groups: BTreeMap<DescriptionId, Vec<u32>> = BTreeMap::new();
        for (&fd, &id) in &self.descriptors {
            groups.entry(id).or_default().push(fd);
        }
        let mut groups: Vec<(DescriptionId, Vec<u32>)> = groups.into_iter().collect();
        groups.sort_by_key(|(_, fds)| fds[0]);
        groups
    }

    /// Moves one parked description to its descriptors (a root or stream
    /// that did not move stays), duplicates it to the others, and restores
    /// its position, flags and rights.
    fn push_placement(&self, out: &mut Vec<JournalEntry<'static>>, id: DescriptionId, fds: &[u32]) {
        let description = &self.descriptions[&id];
        let stays = match description.target {
            Target::Root(original) | Target::Stdio(original) => {
                fds.contains(&original).then_some(original)
            }
            Target::Node(_) => None,
        };
        let first = match stays {
            Some(original) => original,
            None => {
                out.push(
                    DuplicateFileDescriptorV1 {
                        original_fd: parking_fd(fds[0]),
                        copied_fd: fds[0],
                        cloexec: false,
                    }
                    .into(),
                );
                out.push(
                    CloseFileDescriptorV1 {
                        fd: parking_fd(fds[0]),
                    }
                    .into(),
                );
                fds[0]
            }
        };
        if description.position != 0 {
            out.push(
                FileDescriptorSeekV1 {
                    fd: first,
                    offset: description.position as i64,
                    whence: 0,
                }
                .into(),
            );
        }
        if matches!(description.target, Target::Root(_) | Target::Stdio(_))
            && (description.flags != 0
                || description.rights_base != u64::MAX
                || description.rights_inheriting != u64::MAX)
        {
            out.push(
                FileDescriptorSetFlagsV1 {
                    fd: first,
                    flags: description.flags,
                }
                .into(),
            );
            out.push(
                FileDescriptorSetRightsV1 {
                    fd: first,
                    fs_rights_base: description.rights_base,
                    fs_rights_inheriting: description.rights_inheriting,
                }
                .into(),
            );
        }
        for &other in fds {
            if other != first {
                out.push(
                    DuplicateFileDescriptorV1 {
                        original_fd: first,
                        copied_fd: other,
                        cloexec: false,
                    }
                    .into(),
                );
            }
        }
    }
}

/// Where a description waits while descriptor numbers are rebuilt: a number
/// derived from the lowest descriptor it will end up at, so that the same
/// state always compacts to the same entries.
fn parking_fd(first_fd: u32) -> u32 {
    SCRATCH_FD - 1 - first_fd % (SCRATCH_FD - SCRATCH_FLOOR - 1)
}

fn open_entry(fd: u32, location: &Location, o_flags: u16) -> JournalEntry<'static> {
    OpenFileDescriptorV1 {
        fd,
        dirfd: location.0,
        dirflags: 0,
        path: Cow::Owned(location.1.clone()),
        o_flags,
        fs_rights_base: u64::MAX,
        fs_rights_inheriting: u64::MAX,
        fs_flags: 0,
    }
    .into()
}

/// Writes that rebuild `contents` through `fd`: cut the original bytes where
/// they were cut, write what is known, and set the final size.
fn push_contents(
    out: &mut Vec<JournalEntry<'static>>,
    fd: u32,
    contents: &Contents,
    created: bool,
) {
    if let Some(cut) = contents.original_until {
        if cut > 0 || !created {
            out.push(FileDescriptorSetSizeV1 { fd, size: cut }.into());
        }
    }
    for (offset, bytes) in contents.known() {
        out.push(
            FileDescriptorWriteV1 {
                fd,
                offset,
                data: Cow::Owned(bytes.to_vec()),
            }
            .into(),
        );
    }
    if let Some(size) = contents.size {
        let reached = contents
            .written_end()
            .max(contents.original_until.unwrap_or(0));
        if size != reached {
            out.push(FileDescriptorSetSizeV1 { fd, size }.into());
        }
    }
}

fn push_times(out: &mut Vec<JournalEntry<'static>>, fd: u32, times: Option<(u64, u64, u16)>) {
    if let Some((atim, mtim, fst_flags)) = times {
        out.push(
            FileDescriptorSetTimesV1 {
                fd,
                atim,
                mtim,
                fst_flags,
            }
            .into(),
        );
    }
}

/// What a descriptor refers to, without the model's internal ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSummary {
    Root(u32),
    Stdio(u32),
    /// A node that has names: its first name.
    Named(Location),
    /// A node with no name left.
    Nameless(NodeSummary),
    Closed,
}

/// A node without the model's internal ids or bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSummary {
    pub kind: NodeKind,
    pub original: Option<Location>,
    pub times: Option<(u64, u64, u16)>,
}

/// One descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorSummary {
    pub target: TargetSummary,
    /// The lowest descriptor sharing this one's description.
    pub shares_with: u32,
    pub position: u64,
    pub flags: u16,
    pub rights: (u64, u64),
}

/// A state in comparable form: two journals that replay to equal summaries
/// leave a program in the same place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub module: Option<[u8; 32]>,
    pub environment: Option<(Vec<String>, Vec<String>)>,
    pub clocks: BTreeMap<u32, u64>,
    pub exit_code: Option<u32>,
    /// Memory, without trailing zeros.
    pub memory: Vec<u8>,
    pub threads: BTreeMap<u32, ThreadStateV1<'static>>,
    pub passthrough: Vec<JournalEntry<'static>>,
    pub last_snapshot: Option<SnapshotV1>,
    /// Every name, with its node and the first name of that node (names that
    /// share a first name are hard links of each other).
    pub names: BTreeMap<Location, (NodeSummary, Location)>,
    pub removed: BTreeSet<Location>,
    pub descriptors: BTreeMap<u32, DescriptorSummary>,
}

impl State {
    fn node_summary(&self, id: NodeId) -> NodeSummary {
        let node = &self.nodes[&id];
        NodeSummary {
            kind: node.kind.clone(),
            original: node.original.clone(),
            times: node.times,
        }
    }

    /// The state in comparable form.
    pub fn summary(&self) -> Summary {
        let mut memory = self.memory.as_bytes().to_vec();
        while memory.last() == Some(&0) {
            memory.pop();
        }
        let names = self
            .names
            .iter()
            .map(|(location, id)| {
                let first = self.location_of(*id).unwrap_or_else(|| location.clone());
                (location.clone(), (self.node_summary(*id), first))
            })
            .collect();
        let mut descriptors = BTreeMap::new();
        for (&fd, id) in &self.descriptors {
            let description = &self.descriptions[id];
            let shared = self
                .descriptors
                .values()
                .filter(|other| *other == id)
                .count()
                > 1;
            let untouched_original = matches!(description.target, Target::Root(o) | Target::Stdio(o) if o == fd)
                && !shared
                && description.position == 0
                && description.flags == 0
                && description.rights_base == u64::MAX
                && description.rights_inheriting == u64::MAX;
            if untouched_original {
                continue;
            }
            let target = match &description.target {
                Target::Root(root) => TargetSummary::Root(*root),
                Target::Stdio(stream) => TargetSummary::Stdio(*stream),
                Target::Node(node) => match self.location_of(*node) {
                    Some(location) => TargetSummary::Named(location),
                    None => TargetSummary::Nameless(self.node_summary(*node)),
                },
            };
            let shares_with = self
                .descriptors
                .iter()
                .find(|(_, other)| *other == id)
                .map_or(fd, |(other_fd, _)| *other_fd);
            descriptors.insert(
                fd,
                DescriptorSummary {
                    target,
                    shares_with,
                    position: description.position,
                    flags: description.flags,
                    rights: (description.rights_base, description.rights_inheriting),
                },
            );
        }
        for &fd in &self.closed_originals {
            if self.descriptors.contains_key(&fd) {
                continue;
            }
            descriptors.entry(fd).or_insert(DescriptorSummary {
                target: TargetSummary::Closed,
                shares_with: fd,
                position: 0,
                flags: 0,
                rights: (0, 0),
            });
        }
        Summary {
            module: self.module,
            environment: self.environment.clone(),
            clocks: self.clocks.clone(),
            exit_code: self.exit_code,
            memory,
            threads: self.threads.clone(),
            passthrough: self.passthrough.clone(),
            last_snapshot: self.last_snapshot.clone(),
            names,
            removed: self.removed.clone(),
            descriptors,
        }
    }
}

/// Why a journal could not be compacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset}: {error}")]
pub struct CompactError {
    /// The record at fault.
    pub offset: u64,
    pub error: StateError,
}

/// A compacted journal, ready to write: the canonical entries that rebuild
/// the state at the last snapshot (or at the end), the snapshot marker, and
/// the records that followed it. A resume among those that went back to the
/// last snapshot must point at the marker's new offset:
/// [`Compacted::write_to`] does that.
#[derive(Debug)]
pub struct Compacted {
    pub state_entries: Vec<JournalEntry<'static>>,
    pub marker: Option<SnapshotV1>,
    pub tail: Vec<JournalEntry<'static>>,
}

/// Compacts a journal given as (record offset, entry) pairs in order.
pub fn compact<'e>(
    records: impl IntoIterator<Item = (u64, JournalEntry<'e>)>,
) -> Result<Compacted, CompactError> {
    let replayed = replay(records).map_err(|(offset, error)| CompactError { offset, error })?;
    let mut tail = Vec::with_capacity(replayed.tail.len());
    for (offset, entry) in replayed.tail {
        if let JournalEntry::ResumedFromSnapshotV1(resumed) = &entry {
            if Some(resumed.snapshot_offset) != replayed.last_snapshot_offset {
                return Err(CompactError {
                    offset,
                    error: StateError::Unsupported(
                        "ResumedFromSnapshotV1 from a snapshot older than the last one",
                    ),
                });
            }
        }
        tail.push(entry);
    }
    Ok(Compacted {
        state_entries: replayed.state.to_entries(),
        marker: replayed
            .state
            .last_snapshot
            .clone()
            .filter(|_| replayed.last_snapshot_offset.is_some()),
        tail,
    })
}

impl Compacted {
    /// Every entry in order; resumes in the tail point at `marker_offset`.
    pub fn entries_with_marker_at(&self, marker_offset: u64) -> Vec<JournalEntry<'static>> {
        let mut all = self.state_entries.clone();
        all.extend(self.marker.clone().map(JournalEntry::from));
        for entry in &self.tail {
            all.push(match entry {
                JournalEntry::ResumedFromSnapshotV1(_) => ResumedFromSnapshotV1 {
                    snapshot_offset: marker_offset,
                }
                .into(),
                other => other.clone(),
            });
        }
        all
    }

    /// Writes the compacted journal to `journal`; returns the entry count.
    pub fn write_to(
        &self,
        journal: &impl crate::WriteJournal,
    ) -> Result<usize, crate::JournalError> {
        let spans = journal.write_batch(&self.state_entries)?;
        let mut count = spans.len();
        let mut marker_offset = 0;
        if let Some(marker) = &self.marker {
            marker_offset = journal.write(&marker.clone().into())?.start;
            count += 1;
        }
        for entry in &self.tail {
            match entry {
                JournalEntry::ResumedFromSnapshotV1(_) => journal.write(
                    &ResumedFromSnapshotV1 {
                        snapshot_offset: marker_offset,
                    }
                    .into(),
                )?,
                other => journal.write(other)?,
            };
            count += 1;
        }
        Ok(count)
    }
}
