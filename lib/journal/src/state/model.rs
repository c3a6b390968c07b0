//! Lookups in the filesystem and descriptor model.

use super::*;

impl Node {
    /// Whether the journal changed a node that existed before (its contents
    /// or times are no longer simply unknown).
    pub(super) fn changed(&self) -> bool {
        self.times.is_some()
            || matches!(&self.kind, NodeKind::File(contents) if *contents != Contents::default())
    }
}

impl State {
    /// An empty state: nothing known, standard streams open.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn description(&self, fd: u32) -> Option<&Description> {
        self.descriptors
            .get(&fd)
            .and_then(|id| self.descriptions.get(id))
    }

    /// What `fd` refers to: its description, or the original root or stream
    /// it names if the journal never touched it.
    pub(super) fn target_of(&self, fd: u32) -> Option<Target> {
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
    pub(super) fn directory_of(&self, kind: EntryKind, fd: u32) -> Result<Location, StateError> {
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

    pub(super) fn resolve(
        &self,
        kind: EntryKind,
        fd: u32,
        path: &str,
    ) -> Result<Location, StateError> {
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
    pub(super) fn location_of(&self, node: NodeId) -> Option<Location> {
        self.names
            .iter()
            .find(|(_, n)| **n == node)
            .map(|(l, _)| l.clone())
    }

    /// Whether names below `location` exist now.
    pub(super) fn has_live_children(&self, location: &Location) -> bool {
        let prefix = format!("{}/", location.1);
        self.names
            .keys()
            .any(|(root, path)| *root == location.0 && path.starts_with(&prefix))
    }

    /// Whether the model knows names below `location` (then it is a directory).
    /// (Names below it that existed before and were deleted count too, unless
    /// it was itself deleted since.)
    pub(super) fn has_descendants(&self, location: &Location) -> bool {
        let prefix = format!("{}/", location.1);
        let below = |(root, path): &Location| *root == location.0 && path.starts_with(&prefix);
        self.has_live_children(location)
            || (!self.removed.contains(location) && self.removed.iter().any(below))
    }

    /// The node at `location`, creating a node for something that existed
    /// before the journal when the journal has not seen the path yet.
    pub(super) fn lookup(
        &mut self,
        location: &Location,
        assume: impl FnOnce() -> NodeKind,
    ) -> Option<NodeId> {
        if let Some(node) = self.names.get(location) {
            return Some(*node);
        }
        if self.removed.contains(location)
            || self.created_below_removed(location)
            || self.parent_is_new(location)
        {
            return None;
        }
        // A root itself (the empty path) is a directory, however it is
        // opened.
        let kind = if location.1.is_empty() || self.has_descendants(location) {
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
    pub(super) fn parent_is_new(&self, location: &Location) -> bool {
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

    pub(super) fn created_below_removed(&self, location: &Location) -> bool {
        let mut path = location.1.as_str();
        while let Some(up) = parent(path) {
            if self.removed.contains(&(location.0, up.to_owned())) {
                return true;
            }
            path = up;
        }
        false
    }

    pub(super) fn new_node(&mut self, kind: NodeKind, original: Option<Location>) -> NodeId {
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

    pub(super) fn existed_before(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_some_and(|n| n.original.is_some())
    }

    /// Takes a file that existed before (or may have: `O_CREAT` without
    /// `O_EXCL` over a name the model did not know) as the journal's own,
    /// when none of its original bytes are left (it was cut to zero, then
    /// written): its original name, at `from`, becomes a deletion and the
    /// node a file the journal created, free to be renamed. Whether it is
    /// adopted.
    pub(super) fn adopt(&mut self, node: NodeId, from: &Location) -> bool {
        let Some(entry) = self.nodes.get(&node) else {
            return false;
        };
        let fully_known = match &entry.kind {
            NodeKind::File(contents) => {
                contents.original_until == Some(0) && contents.size.is_some()
            }
            NodeKind::Directory | NodeKind::Symlink(_) => false,
        };
        if !fully_known || entry.original.as_ref() != Some(from) {
            return false;
        }
        self.removed.insert(from.clone());
        if let Some(entry) = self.nodes.get_mut(&node) {
            entry.original = None;
        }
        true
    }

    /// Removes a name; a node that existed before leaves a deletion behind.
    pub(super) fn unlink_name(&mut self, location: &Location) -> Option<NodeId> {
        let node = self.names.remove(location)?;
        if self.nodes.get(&node).and_then(|n| n.original.as_ref()) == Some(location) {
            self.removed.insert(location.clone());
        }
        self.collect(node);
        Some(node)
    }

    /// Drops a node nothing refers to any more.
    pub(super) fn collect(&mut self, node: NodeId) {
        let named = self.names.values().any(|n| *n == node);
        let open = self
            .descriptions
            .values()
            .any(|d| d.target == Target::Node(node));
        if !named && !open && !self.existed_before(node) {
            self.nodes.remove(&node);
        }
    }

    pub(super) fn close(&mut self, fd: u32) {
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
    pub(super) fn install(&mut self, fd: u32, description: Description) {
        self.used.insert(fd);
        let id = self.next_description;
        self.next_description += 1;
        self.descriptions.insert(id, description);
        self.descriptors.insert(fd, id);
    }

    /// The description behind `fd`, materialized if `fd` is an original root
    /// or stream (so that its position and flags can change).
    pub(super) fn description_mut(
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

    pub(super) fn file_of(
        &mut self,
        kind: EntryKind,
        fd: u32,
    ) -> Result<(NodeId, &mut Contents), StateError> {
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::sample::*;
    use super::*;

    #[test]
    fn paths_join_lexically_and_stay_below_the_root() {
        assert_eq!(join("a/b", "c/./d"), "a/b/c/d");
        assert_eq!(join("a/b", "../c"), "a/c");
        assert_eq!(join("a", "../../../x"), "x");
        assert_eq!(join("a", "/x/y"), "x/y");
        assert_eq!(parent("a/b/c"), Some("a/b"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }

    #[test]
    fn an_unknown_descriptor_is_a_root_that_names_itself() {
        let state = State::new();
        assert_eq!(state.target_of(7), Some(Target::Root(7)));
        assert_eq!(state.target_of(1), Some(Target::Stdio(1)));
        let location = state
            .resolve(EntryKind::CreateDirectoryV1, 7, "x/../y")
            .unwrap();
        assert_eq!(location, (7, "y".to_owned()));
    }

    #[test]
    fn paths_resolve_through_a_directory_descriptor() {
        let state = state_of(vec![mkdir("d"), open(5, "d", O_DIRECTORY)]);
        let location = state.resolve(EntryKind::UnlinkFileV1, 5, "f").unwrap();
        assert_eq!(location, (ROOT, "d/f".to_owned()));
    }

    #[test]
    fn closing_the_last_descriptor_of_an_unnamed_file_forgets_it() {
        let mut state = state_of(vec![create(4, "f"), write(4, 0, b"x")]);
        let node = state.names[&(ROOT, "f".to_owned())];
        state.unlink_name(&(ROOT, "f".to_owned()));
        assert!(state.nodes.contains_key(&node), "still open");
        state.close(4);
        assert!(!state.nodes.contains_key(&node));
    }
}
