//! The live timeline of a journal: which records still count.
//!
//! The rule, declared here once and used by the reference model
//! ([`crate::state`]), compaction, `journal inspect`, `journal extract` and
//! the runtime's replay:
//! - a `SnapshotV1` record starting at offset `S` is a snapshot marker, a
//!   point a later run may resume from;
//! - a `ResumedFromSnapshotV1 { snapshot_offset: S }` record at offset `R`,
//!   where `S` is the offset of an earlier marker, says that a run resumed
//!   from that marker: every record that starts after `S` and before `R`
//!   belongs to a *lost timeline* (the state at `R` is the state at the
//!   marker), and the marker is again the last live one;
//! - a resume that names no earlier marker is damage
//!   ([`UnknownSnapshot`]);
//! - a `TimelineCutV1 { from_offset: D }` record at offset `R` says that a
//!   resumed program diverged at the record at `D` and went on live: every
//!   record that starts at or after `D` and before `R` belongs to a lost
//!   timeline, and markers among them no longer count.
//!
//! Lost ranges nest and overlap freely (a run may resume from a marker older
//! than a previous resume's); a record is live when no lost range holds it.

use std::collections::HashSet;
use std::ops::Range;

use crate::JournalEntry;

/// A `ResumedFromSnapshotV1` record names an offset where no earlier
/// snapshot marker starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ResumedFromSnapshotV1 at offset {resume_offset} names offset {snapshot_offset}, where no earlier snapshot marker starts")]
pub struct UnknownSnapshot {
    /// Offset of the resume record.
    pub resume_offset: u64,
    /// The offset it names.
    pub snapshot_offset: u64,
}

/// What one record means for the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineStep {
    /// An ordinary record: the timeline goes on.
    Continues,
    /// A snapshot marker: a point later runs may resume from.
    Snapshot,
    /// A run resumed from the marker at `marker`; the records in `lost`
    /// (by start offset) belong to a lost timeline.
    Resumed {
        /// Offset of the marker the run resumed from.
        marker: u64,
        /// Start offsets of the records that no longer count.
        lost: Range<u64>,
    },
    /// A resumed run diverged and went on live: the records in `lost` (by
    /// start offset) belong to a lost timeline.
    Cut {
        /// Start offsets of the records that no longer count.
        lost: Range<u64>,
    },
}

/// Follows the timeline one record at a time, in journal order.
#[derive(Debug, Clone, Default)]
pub struct TimelineTracker {
    markers: HashSet<u64>,
}

impl TimelineTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies the record at `offset`.
    pub fn observe(
        &mut self,
        offset: u64,
        entry: &JournalEntry<'_>,
    ) -> Result<TimelineStep, UnknownSnapshot> {
        match entry {
            JournalEntry::SnapshotV1(_) => {
                self.markers.insert(offset);
                Ok(TimelineStep::Snapshot)
            }
            JournalEntry::ResumedFromSnapshotV1(r) => {
                if self.markers.contains(&r.snapshot_offset) && r.snapshot_offset < offset {
                    Ok(TimelineStep::Resumed {
                        marker: r.snapshot_offset,
                        lost: r.snapshot_offset + 1..offset,
                    })
                } else {
                    Err(UnknownSnapshot {
                        resume_offset: offset,
                        snapshot_offset: r.snapshot_offset,
                    })
                }
            }
            JournalEntry::TimelineCutV1(c) => {
                let lost = c.from_offset.min(offset)..offset;
                self.markers.retain(|m| !lost.contains(m));
                Ok(TimelineStep::Cut { lost })
            }
            _ => Ok(TimelineStep::Continues),
        }
    }
}

/// A whole journal's timeline, found in one pass: the lost ranges and the
/// last live snapshot marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Lost ranges of start offsets, sorted by start and merged so that
    /// none overlap.
    lost: Vec<Range<u64>>,
    last_marker: Option<u64>,
    records: u64,
    lost_records: u64,
}

impl Timeline {
    /// Scans `(offset, entry)` pairs in journal order.
    pub fn scan<'e, I>(records: I) -> Result<Timeline, UnknownSnapshot>
    where
        I: IntoIterator<Item = (u64, JournalEntry<'e>)>,
    {
        let mut builder = TimelineBuilder::default();
        for (offset, entry) in records {
            builder.observe(offset, &entry)?;
        }
        Ok(builder.finish())
    }

    /// Whether the record starting at `offset` is on the live timeline.
    pub fn is_live(&self, offset: u64) -> bool {
        // `lost` is sorted and disjoint: the candidate is the last range
        // starting at or before `offset`.
        let index = self.lost.partition_point(|r| r.start <= offset);
        index == 0 || !self.lost[index - 1].contains(&offset)
    }

    /// The last complete snapshot marker on the live timeline: where a
    /// resume starts.
    pub fn last_marker(&self) -> Option<u64> {
        self.last_marker
    }

    /// The merged lost ranges (start offsets), in order.
    pub fn lost_ranges(&self) -> &[Range<u64>] {
        &self.lost
    }

    /// Records scanned.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Records on lost timelines.
    pub fn lost_records(&self) -> u64 {
        self.lost_records
    }
}

/// Builds a [`Timeline`] record by record (for callers that read the
/// journal themselves).
#[derive(Debug, Clone, Default)]
pub struct TimelineBuilder {
    tracker: TimelineTracker,
    /// Start offsets of the records seen, to count the lost ones at the end.
    offsets: Vec<u64>,
    lost: Vec<Range<u64>>,
    last_marker: Option<u64>,
    /// Live markers, in order (a cut can take the last ones away).
    markers: Vec<u64>,
}

impl TimelineBuilder {
    /// Takes the record at `offset` into account.
    pub fn observe(
        &mut self,
        offset: u64,
        entry: &JournalEntry<'_>,
    ) -> Result<(), UnknownSnapshot> {
        self.offsets.push(offset);
        match self.tracker.observe(offset, entry)? {
            TimelineStep::Continues => {}
            TimelineStep::Snapshot => {
                self.markers.push(offset);
                self.last_marker = Some(offset);
            }
            TimelineStep::Resumed { marker, lost } => {
                self.markers.retain(|m| !lost.contains(m));
                self.last_marker = Some(marker);
                self.lost.push(lost);
            }
            TimelineStep::Cut { lost } => {
                self.markers.retain(|m| !lost.contains(m));
                if self.last_marker.is_some_and(|m| lost.contains(&m)) {
                    self.last_marker = self.markers.last().copied();
                }
                self.lost.push(lost);
            }
        }
        Ok(())
    }

    /// The timeline of every record observed.
    pub fn finish(mut self) -> Timeline {
        self.lost.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(self.lost.len());
        for range in self.lost {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        let mut timeline = Timeline {
            lost: merged,
            last_marker: self.last_marker,
            records: self.offsets.len() as u64,
            lost_records: 0,
        };
        timeline.lost_records = self
            .offsets
            .iter()
            .filter(|&&offset| !timeline.is_live(offset))
            .count() as u64;
        timeline
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{InitModuleV1, ResumedFromSnapshotV1, SnapshotV1};

    fn marker() -> JournalEntry<'static> {
        SnapshotV1 {
            since_epoch_ns: 0,
            trigger: 1,
        }
        .into()
    }

    fn resumed(snapshot_offset: u64) -> JournalEntry<'static> {
        ResumedFromSnapshotV1 { snapshot_offset }.into()
    }

    fn other() -> JournalEntry<'static> {
        InitModuleV1 { wasm_hash: [0; 32] }.into()
    }

    #[test]
    fn a_journal_without_resumes_is_all_live() {
        let t = Timeline::scan([(10, other()), (20, marker()), (30, other())]).unwrap();
        assert_eq!(t.last_marker(), Some(20));
        assert!(t.is_live(10) && t.is_live(20) && t.is_live(30));
        assert_eq!(t.lost_records(), 0);
    }

    #[test]
    fn a_resume_loses_what_followed_its_marker() {
        let t = Timeline::scan([
            (10, marker()),
            (20, other()),
            (30, marker()),
            (40, other()),
            (50, resumed(10)),
            (60, other()),
        ])
        .unwrap();
        assert_eq!(t.last_marker(), Some(10));
        assert!(t.is_live(10));
        for lost in [20, 30, 40] {
            assert!(!t.is_live(lost), "{lost}");
        }
        assert!(t.is_live(50) && t.is_live(60));
        assert_eq!(t.lost_records(), 3);
    }

    #[test]
    fn nested_and_overlapping_resumes_merge() {
        let t = Timeline::scan([
            (10, marker()),
            (20, marker()),
            (30, other()),
            (40, resumed(20)),
            (50, other()),
            (60, resumed(10)),
            (70, marker()),
        ])
        .unwrap();
        assert_eq!(t.lost_ranges(), &[Range { start: 11, end: 60 }]);
        assert_eq!(t.last_marker(), Some(70));
        assert!(t.is_live(70) && t.is_live(60) && !t.is_live(40));
    }

    #[test]
    fn a_cut_loses_what_the_diverged_run_had_journaled() {
        let cut: JournalEntry<'static> = crate::TimelineCutV1 { from_offset: 30 }.into();
        let t = Timeline::scan([
            (10, marker()),
            (20, other()),
            (30, other()),
            (40, marker()),
            (50, cut),
            (60, other()),
        ])
        .unwrap();
        assert!(t.is_live(20) && !t.is_live(30) && !t.is_live(40) && t.is_live(50));
        assert_eq!(
            t.last_marker(),
            Some(10),
            "the marker in the cut no longer counts"
        );
        assert_eq!(t.lost_records(), 2);
    }

    #[test]
    fn a_resume_of_an_unknown_marker_is_damage() {
        let error = Timeline::scan([(10, other()), (20, resumed(10))]).unwrap_err();
        assert_eq!(
            error,
            UnknownSnapshot {
                resume_offset: 20,
                snapshot_offset: 10
            }
        );
        // A marker later in the journal does not count either.
        assert!(Timeline::scan([(10, resumed(20)), (20, marker())]).is_err());
    }
}
