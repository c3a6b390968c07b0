//! What each entry does to the model.

use super::*;
use crate::field::IntoOwned;

impl State {
    /// Applies one entry. The timeline (a resume going back to a marker) is
    /// the [`Replayer`]'s concern, not the state's.
    pub(super) fn apply(&mut self, entry: &JournalEntry<'_>) -> Result<(), StateError> {
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
            // Alignment only; compaction writes its own where it is needed.
            JournalEntry::PaddingV1(_) => {}
            JournalEntry::UpdateMemoryRegionV1(e) => self.memory.apply(e)?,
            JournalEntry::ThreadStateV1(e) => {
                self.threads
                    .insert(e.thread_id, IntoOwned::into_owned(e.clone()));
            }
            JournalEntry::ThreadExitV1(e) => {
                self.threads.remove(&e.thread_id);
            }
            JournalEntry::SnapshotV1(e) => self.last_snapshot = Some(e.clone()),
            // The replayer has already put back the state of the marker, or
            // skipped the records a cut lost.
            JournalEntry::ResumedFromSnapshotV1(_) | JournalEntry::TimelineCutV1(_) => {}
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
                    contents.write(e.offset, &e.data)?;
                    let end = e.offset + e.data.len() as u64;
                    self.description_mut(kind, e.fd)?.position = end;
                }
            },
            JournalEntry::FileDescriptorSetSizeV1(e) => {
                self.file_of(kind, e.fd)?.1.set_size(e.size)?
            }
            JournalEntry::FileDescriptorAllocateV1(e) => {
                self.file_of(kind, e.fd)?.1.allocate(e.offset, e.len)?
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
            // Not modelled (see the module documentation): refused by name.
            JournalEntry::ChangeDirectoryV1(_)
            | JournalEntry::CreatePipeV1(_)
            | JournalEntry::CreateEventV1(_)
            | JournalEntry::EpollCreateV1(_)
            | JournalEntry::EpollCtlV1(_)
            | JournalEntry::SocketOpenV1(_)
            | JournalEntry::SocketBindV1(_)
            | JournalEntry::SocketListenV1(_)
            | JournalEntry::SocketConnectV1(_)
            | JournalEntry::SocketAcceptV1(_)
            | JournalEntry::SocketSendV1(_)
            | JournalEntry::SocketSendToV1(_)
            | JournalEntry::SocketSetOptionV1(_)
            | JournalEntry::SocketShutdownV1(_)
            | JournalEntry::SocketJoinMulticastV1(_)
            | JournalEntry::SocketLeaveMulticastV1(_) => {
                return Err(StateError::Unsupported(kind.name()))
            }
        }
        Ok(())
    }

    /// Creating `location` needs its parent directory to exist.
    pub(super) fn require_parent(
        &self,
        kind: EntryKind,
        location: &Location,
    ) -> Result<(), StateError> {
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

    pub(super) fn require_absent(
        &mut self,
        kind: EntryKind,
        location: &Location,
    ) -> Result<(), StateError> {
        self.require_parent(kind, location)?;
        // A known name below it means it exists, as a directory.
        if self.names.contains_key(location) || self.has_descendants(location) {
            return Err(invalid(kind, format!("{} already exists", location.1)));
        }
        Ok(())
    }

    pub(super) fn set_times(&mut self, node: NodeId, atim: u64, mtim: u64, flags: u16) {
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

    pub(super) fn open(&mut self, e: &OpenFileDescriptorV1<'_>) -> Result<(), StateError> {
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
                    contents.set_size(0)?;
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

    pub(super) fn rename(
        &mut self,
        kind: EntryKind,
        from: &Location,
        to: &Location,
    ) -> Result<(), StateError> {
        // A rename onto itself changes nothing, known or not.
        if from == to {
            return Ok(());
        }
        let node = *self.names.get(from).ok_or(StateError::Unsupported(
            "PathRenameV1 of something that existed before the journal",
        ))?;
        if self.existed_before(node) && !self.adopt(node, from) {
            return Err(StateError::Unsupported(
                "PathRenameV1 of something that existed before the journal",
            ));
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
        } else if !self.created_below_removed(to) && !self.parent_is_new(to) {
            // A name the model does not know, in a directory that existed
            // before the journal, may have named something then (the
            // journal need not have looked at it): the rename replaced
            // that, so the name counts as removed whether or not the model
            // saw it. (Compaction then removes it first, which changes
            // nothing where nothing was there.)
            self.removed.insert(to.clone());
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::sample::*;
    use super::*;

    fn try_state(entries: Vec<JournalEntry<'static>>) -> Result<State, StateError> {
        let mut replayer = Replayer::new();
        for (offset, entry) in records(entries) {
            replayer.apply(offset, &entry)?;
        }
        Ok(replayer.state().clone())
    }

    #[test]
    fn a_write_moves_the_position_to_its_end() {
        let state = state_of(vec![create(4, "f"), write(4, 2, b"abc")]);
        assert_eq!(state.description(4).unwrap().position, 5);
    }

    #[test]
    fn output_to_standard_streams_is_kept_not_modelled() {
        let state = state_of(vec![write(1, 0, b"hello")]);
        assert_eq!(state.passthrough, vec![write(1, 0, b"hello")]);
        assert!(state.names.is_empty());
    }

    #[test]
    fn entries_that_could_not_have_succeeded_are_invalid() {
        let closed = try_state(vec![close(9), close(9)]).unwrap_err();
        assert!(matches!(closed, StateError::Invalid { .. }), "{closed}");
        let twice = try_state(vec![mkdir("d"), mkdir("d")]).unwrap_err();
        assert!(twice.to_string().contains("CreateDirectoryV1"), "{twice}");
    }

    #[test]
    fn what_the_model_does_not_cover_is_refused_by_name() {
        let pipe: JournalEntry<'static> = CreatePipeV1 {
            read_fd: 4,
            write_fd: 5,
        }
        .into();
        assert_eq!(
            try_state(vec![pipe]).unwrap_err(),
            StateError::Unsupported("CreatePipeV1")
        );
    }
}
