//! A state in comparable form.

use super::*;

/// What a descriptor refers to, without the model's internal ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSummary {
    /// A preopened directory, named by its original number.
    Root(u32),
    /// Standard stream 0, 1 or 2.
    Stdio(u32),
    /// A node that has names: its first name.
    Named(Location),
    /// A node with no name left.
    Nameless(NodeSummary),
    /// Nothing (the description is gone).
    Closed,
}

/// A node without the model's internal ids or bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSummary {
    /// File, directory or symlink, with what is known of it; `None` for a
    /// name that existed before and that the journal did not change: it is
    /// whatever the world holds, and what the model guessed of its kind
    /// from how it was opened (a directory opened without O_DIRECTORY looks
    /// like a file) is not state the journal made.
    pub kind: Option<NodeKind>,
    /// Where it was before the journal began, if it existed then.
    pub original: Option<Location>,
    /// Last times set: (atim, mtim, fst_flags) as WASI gives them.
    pub times: Option<(u64, u64, u16)>,
}

/// One descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorSummary {
    /// What it refers to.
    pub target: TargetSummary,
    /// The lowest descriptor sharing this one's description.
    pub shares_with: u32,
    /// The file position.
    pub position: u64,
    /// WASI `fdflags`.
    pub flags: u16,
    /// Base and inheriting rights.
    pub rights: (u64, u64),
}

/// A state in comparable form: two journals that replay to equal summaries
/// leave a program in the same place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// SHA-256 of the module of the last run.
    pub module: Option<[u8; 32]>,
    /// Arguments and environment of the last run.
    pub environment: Option<(Vec<String>, Vec<String>)>,
    /// The last value set of each clock.
    pub clocks: BTreeMap<u32, u64>,
    /// The exit code, if the program exited.
    pub exit_code: Option<u32>,
    /// Memory, without trailing zeros.
    pub memory: Vec<u8>,
    /// Thread states, by thread id.
    pub threads: BTreeMap<u32, ThreadStateV1<'static>>,
    /// Output and inputs, kept as they are, in order.
    pub passthrough: Vec<JournalEntry<'static>>,
    /// The last snapshot marker applied.
    pub last_snapshot: Option<SnapshotV1>,
    /// Every name, with its node and the first name of that node (names that
    /// share a first name are hard links of each other).
    pub names: BTreeMap<Location, (NodeSummary, Location)>,
    /// Paths that existed before the journal and no longer do.
    pub removed: BTreeSet<Location>,
    /// Every open descriptor.
    pub descriptors: BTreeMap<u32, DescriptorSummary>,
}

impl State {
    pub(super) fn node_summary(&self, id: NodeId) -> NodeSummary {
        let node = &self.nodes[&id];
        let as_found = node.original.is_some() && !node.changed();
        NodeSummary {
            kind: (!as_found).then(|| node.kind.clone()),
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
        // A name that existed before and that the journal only looked at
        // (read, listed, opened) is not something the journal made: its
        // state is whatever the world holds. Unless a descriptor is still
        // open on it, it is left out (compaction leaves it out too).
        let open_nodes: BTreeSet<NodeId> = self
            .descriptions
            .values()
            .filter_map(|d| match d.target {
                Target::Node(node) => Some(node),
                Target::Root(_) | Target::Stdio(_) => None,
            })
            .collect();
        let names = self
            .names
            .iter()
            .filter(|(location, id)| {
                let node = &self.nodes[*id];
                node.original.as_ref() != Some(*location)
                    || node.changed()
                    || open_nodes.contains(*id)
            })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::sample::*;
    use super::*;

    #[test]
    fn hard_links_share_a_first_name_and_descriptors_their_description() {
        let link: JournalEntry<'static> = CreateHardLinkV1 {
            old_fd: ROOT,
            old_flags: 0,
            old_path: "f".into(),
            new_fd: ROOT,
            new_path: "g".into(),
        }
        .into();
        let summary = state_of(vec![create(4, "f"), link]).summary();
        let first = |name: &str| summary.names[&(ROOT, name.to_owned())].1.clone();
        assert_eq!(first("f"), first("g"));
        let fd = &summary.descriptors[&4];
        assert_eq!(fd.target, TargetSummary::Named((ROOT, "f".to_owned())));
        assert_eq!(fd.shares_with, 4);
    }

    #[test]
    fn different_histories_to_the_same_place_summarize_equal() {
        let direct = state_of(vec![create(4, "f"), write(4, 0, b"ab"), close(4)]);
        let roundabout = state_of(vec![
            create(4, "f"),
            write(4, 0, b"xy"),
            write(4, 0, b"ab"),
            close(4),
        ]);
        assert_eq!(direct.summary(), roundabout.summary());
        assert_ne!(direct.summary(), State::new().summary());
    }
}
