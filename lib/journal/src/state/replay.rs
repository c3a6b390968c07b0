//! Entries applied in journal order, following the live timeline.

use super::*;
use crate::timeline::{TimelineStep, TimelineTracker};

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
    timeline: TimelineTracker,
    /// The state at each snapshot marker, by the marker's offset.
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
        let step = self
            .timeline
            .observe(offset, entry)
            .map_err(|e| invalid(entry.kind(), e.to_string()))?;
        match step {
            TimelineStep::Continues => self.state.apply(entry),
            TimelineStep::Snapshot => {
                self.state.apply(entry)?;
                self.snapshots.insert(offset, self.state.clone());
                Ok(())
            }
            TimelineStep::Cut { .. } => Err(StateError::Unsupported(
                "TimelineCutV1 applied one record at a time (replay the whole journal)",
            )),
            TimelineStep::Resumed { marker, .. } => {
                let saved = self.snapshots.get(&marker).ok_or_else(|| {
                    invalid(entry.kind(), format!("no snapshot at offset {marker}"))
                })?;
                self.state = saved.clone();
                self.state.apply(entry)
            }
        }
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
    // A cut loses records it follows: find the live timeline first.
    let records: Vec<(u64, JournalEntry<'e>)> = records.into_iter().collect();
    let timeline = crate::timeline::Timeline::scan(records.iter().map(|(o, e)| (*o, e.reborrow())))
        .map_err(|e| {
            (
                e.resume_offset,
                invalid(EntryKind::ResumedFromSnapshotV1, e.to_string()),
            )
        })?;
    let mut replayer = Replayer::new();
    let mut at_last_snapshot: Option<(u64, State)> = None;
    let mut tail = Vec::new();
    // The last run: the state before its InitModuleV1, its records, and
    // whether it exited. A run that neither exited nor snapshotted is
    // resumed by re-executing it from its start, so all of it is tail.
    let mut run: Option<(State, Vec<(u64, JournalEntry<'static>)>)> = None;
    let mut run_exited = false;
    for (offset, entry) in records {
        // Records a cut lost, and the cut itself, are history only.
        if !timeline.is_live(offset) || matches!(entry, JournalEntry::TimelineCutV1(_)) {
            continue;
        }
        if matches!(entry, JournalEntry::InitModuleV1(_)) {
            run = Some((replayer.state.clone(), Vec::new()));
            run_exited = false;
        }
        replayer.apply(offset, &entry).map_err(|e| (offset, e))?;
        match &entry {
            JournalEntry::SnapshotV1(_) => {
                at_last_snapshot = Some((offset, replayer.state.clone()));
                tail.clear();
                // The snapshot, not the run's start, is where it resumes.
                run = None;
            }
            JournalEntry::ProcessExitV1(_) => run_exited = true,
            _ => {}
        }
        if !matches!(entry, JournalEntry::SnapshotV1(_)) {
            let owned = entry.into_owned();
            if let Some((_, records)) = &mut run {
                records.push((offset, owned.clone()));
            }
            tail.push((offset, owned));
        }
    }
    let end = replayer.state;
    Ok(match (run, run_exited, at_last_snapshot) {
        // A snapshot of an earlier run stays the last snapshot (its marker
        // is kept ahead of the run).
        (Some((before, records)), false, snapshot) => Replayed {
            state: before,
            tail: records,
            last_snapshot_offset: snapshot.map(|(offset, _)| offset),
            end,
        },
        (_, _, Some((offset, at))) => Replayed {
            state: at,
            tail,
            last_snapshot_offset: Some(offset),
            end,
        },
        (_, _, None) => Replayed {
            state: end.clone(),
            tail: Vec::new(),
            last_snapshot_offset: None,
            end,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::sample::*;
    use super::*;

    #[test]
    fn a_resume_returns_the_state_to_its_marker() {
        // marker at 20; the file written after it belongs to a lost timeline.
        let entries = vec![mkdir("kept"), marker(), mkdir("lost"), resumed(20)];
        let state = state_of(entries);
        assert!(state.names.contains_key(&(ROOT, "kept".to_owned())));
        assert!(!state.names.contains_key(&(ROOT, "lost".to_owned())));
    }

    #[test]
    fn replay_splits_at_the_last_marker() {
        let replayed = replay(records(vec![mkdir("a"), marker(), mkdir("b")])).unwrap();
        assert_eq!(replayed.last_snapshot_offset, Some(20));
        assert_eq!(replayed.tail.len(), 1);
        assert!(!replayed.state.names.contains_key(&(ROOT, "b".to_owned())));
        assert!(replayed.end.names.contains_key(&(ROOT, "b".to_owned())));
    }

    #[test]
    fn a_cut_loses_the_records_of_the_diverged_run() {
        let cut: JournalEntry<'static> = TimelineCutV1 { from_offset: 20 }.into();
        let replayed = replay(records(vec![
            mkdir("kept"),
            mkdir("lost"),
            cut,
            mkdir("after"),
        ]))
        .unwrap();
        let names: Vec<_> = replayed.end.names.keys().map(|(_, p)| p.clone()).collect();
        assert_eq!(names, vec!["after".to_owned(), "kept".to_owned()]);
        // One record at a time, a cut cannot be followed.
        let mut replayer = Replayer::new();
        assert!(replayer
            .apply(10, &TimelineCutV1 { from_offset: 0 }.into())
            .is_err());
    }

    #[test]
    fn a_resume_from_nowhere_is_reported_with_its_offset() {
        let (offset, error) = replay(records(vec![mkdir("a"), resumed(10)])).unwrap_err();
        assert_eq!(offset, 20);
        assert!(error.to_string().contains("offset 10"), "{error}");
    }
}
