//! Compaction: the canonical entries that rebuild a state.

use super::*;

/// The pages of memory worth writing: 64 KiB pages holding a non-zero byte,
/// adjacent ones merged.
pub(super) const MEMORY_PAGE: usize = 64 * 1024;

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
        // Nodes the journal only looked at (opened to read, listed) need
        // nothing: opening them again could only fail (a read-only mount,
        // a directory opened without O_DIRECTORY, a root opened by "").
        let mut original_nodes: Vec<(&Location, NodeId)> = self
            .names
            .iter()
            .filter(|(location, id)| self.nodes[*id].original.as_ref() == Some(*location))
            .filter(|(_, id)| self.nodes[*id].changed())
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
        let parking = parking_numbers(&groups);
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
        for (rank, (id, _)) in groups.iter().enumerate() {
            if let Some(node) = node_of(id) {
                if deleted_original(node) {
                    let parked = parking[rank];
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
        for (rank, (id, _)) in groups.iter().enumerate() {
            if let Some(node) = node_of(id) {
                if !deleted_original(node) {
                    self.push_open(
                        &mut out,
                        parking[rank],
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
        for (rank, (id, fds)) in groups.iter().enumerate() {
            if let Target::Root(original) | Target::Stdio(original) = self.descriptions[id].target {
                if !fds.contains(&original) {
                    out.push(
                        DuplicateFileDescriptorV1 {
                            original_fd: original,
                            copied_fd: parking[rank],
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
        for (rank, (id, fds)) in groups.iter().enumerate() {
            self.push_placement(&mut out, *id, fds, parking[rank]);
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
            out.push(stored_region(start as u64, Cow::Owned(image[start..end].to_vec())).into());
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
    pub(super) fn push_node(
        &self,
        out: &mut Vec<JournalEntry<'static>>,
        id: NodeId,
        location: &Location,
    ) {
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
    pub(super) fn push_open(
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
    pub(super) fn any_root(&self) -> u32 {
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
    pub(super) fn descriptor_groups(&self) -> Vec<(DescriptionId, Vec<u32>)> {
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
    pub(super) fn push_placement(
        &self,
        out: &mut Vec<JournalEntry<'static>>,
        id: DescriptionId,
        fds: &[u32],
        parked: u32,
    ) {
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
                        original_fd: parked,
                        copied_fd: fds[0],
                        cloexec: false,
                    }
                    .into(),
                );
                out.push(CloseFileDescriptorV1 { fd: parked }.into());
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

/// Where each description (of `groups`, in order) waits while descriptor
/// numbers are rebuilt: a number derived from the lowest descriptor it will
/// end up at, so that the same state always compacts to the same entries;
/// when two would share one (descriptors equal modulo the parking range),
/// the later takes the next free number below.
pub(super) fn parking_numbers(groups: &[(DescriptionId, Vec<u32>)]) -> Vec<u32> {
    let range = SCRATCH_FD - SCRATCH_FLOOR - 1;
    let mut taken = BTreeSet::new();
    groups
        .iter()
        .map(|(_, fds)| {
            let mut slot = fds[0] % range;
            while !taken.insert(slot) {
                slot = (slot + 1) % range;
            }
            SCRATCH_FD - 1 - slot
        })
        .collect()
}

pub(super) fn open_entry(fd: u32, location: &Location, o_flags: u16) -> JournalEntry<'static> {
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
pub(super) fn push_contents(
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

pub(super) fn push_times(
    out: &mut Vec<JournalEntry<'static>>,
    fd: u32,
    times: Option<(u64, u64, u16)>,
) {
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

/// Why a journal could not be compacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset}: {error}")]
pub struct CompactError {
    /// The record at fault.
    pub offset: u64,
    /// Why it cannot be compacted.
    pub error: StateError,
}

/// A compacted journal, ready to write: the canonical entries that rebuild
/// the state at the last snapshot (or at the end), the snapshot marker, and
/// the records that followed it. A resume among those that went back to the
/// last snapshot must point at the marker's new offset:
/// [`Compacted::write_to`] does that.
#[derive(Debug)]
pub struct Compacted {
    /// Entries that rebuild the state, in an order replay applies.
    pub state_entries: Vec<JournalEntry<'static>>,
    /// The last snapshot marker, if the journal had one.
    pub marker: Option<SnapshotV1>,
    /// The records after that marker, unchanged.
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
        // Alignment is the writer's to add again where it is needed.
        if let JournalEntry::PaddingV1(_) = entry {
            continue;
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
    /// Compresses the memory regions of the state (for an archive: smaller,
    /// but resume copies them instead of mapping them from the file).
    pub fn compress_memory(&mut self) -> Result<(), MemoryError> {
        for entry in &mut self.state_entries {
            if let JournalEntry::UpdateMemoryRegionV1(region) = entry {
                *region = crate::memory::compressed(region.clone())?;
            }
        }
        Ok(())
    }

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::sample::*;
    use super::*;

    #[test]
    fn compacted_entries_rebuild_the_same_state() {
        let original = state_of(vec![
            mkdir("d"),
            create(4, "d/f"),
            write(4, 0, b"first"),
            write(4, 0, b"FIRST"),
            create(5, "g"),
            close(5),
            write(1, 0, b"out"),
        ]);
        let rebuilt = state_of(original.to_entries());
        assert_eq!(rebuilt.summary(), original.summary());
    }

    #[test]
    fn a_file_cut_to_zero_over_a_name_that_may_have_existed_can_move() {
        // O_CREAT | O_TRUNC over an unknown name (Lua's io.open(p, "w")),
        // written, then renamed: the old name is gone, the new one holds
        // exactly what was written, whether or not the old name existed.
        let rename: JournalEntry<'static> = PathRenameV1 {
            old_fd: ROOT,
            old_path: "w.txt".to_owned().into(),
            new_fd: ROOT,
            new_path: "moved.txt".to_owned().into(),
        }
        .into();
        let original = state_of(vec![
            open(4, "w.txt", O_CREAT | O_TRUNC),
            write(4, 0, b"all known"),
            close(4),
            rename,
        ]);
        let rebuilt = state_of(original.to_entries());
        assert_eq!(rebuilt.summary(), original.summary());
        let moved = (ROOT, "moved.txt".to_owned());
        assert!(rebuilt.names.contains_key(&moved));
        assert!(!rebuilt.names.contains_key(&(ROOT, "w.txt".to_owned())));

        // Bytes it held before are unknown: such a file still cannot move.
        let unknown: JournalEntry<'static> = PathRenameV1 {
            old_fd: ROOT,
            old_path: "old.txt".to_owned().into(),
            new_fd: ROOT,
            new_path: "elsewhere.txt".to_owned().into(),
        }
        .into();
        let mut replayer = Replayer::new();
        let mut refused = None;
        for (offset, entry) in records(vec![open(4, "old.txt", 0), close(4), unknown]) {
            if let Err(e) = replayer.apply(offset, &entry) {
                refused = Some(e);
            }
        }
        assert!(
            matches!(refused, Some(StateError::Unsupported(_))),
            "{refused:?}"
        );
    }

    #[test]
    fn overwritten_bytes_leave_no_trace() {
        let state = state_of(vec![
            create(4, "f"),
            write(4, 0, b"aaaa"),
            write(4, 0, b"bbbb"),
        ]);
        let written: usize = state
            .to_entries()
            .iter()
            .map(|e| match e {
                JournalEntry::FileDescriptorWriteV1(w) if w.fd != 1 => w.data.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(written, 4);
    }

    #[test]
    fn compaction_keeps_the_tail_after_the_last_snapshot() {
        let compacted = compact(records(vec![mkdir("a"), marker(), mkdir("b")])).unwrap();
        assert!(compacted.marker.is_some());
        assert_eq!(compacted.tail, vec![mkdir("b")]);
    }
}
