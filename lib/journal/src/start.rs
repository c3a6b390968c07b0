//! Where the next run of a journal starts: the one rule behind `wasnap run
//! --journal`, the runtime's resume and `wasnap journal inspect`.
//!
//! A *run* starts at an `InitModuleV1` record and lasts until the next one;
//! records after a resumed snapshot continue the run that took it. Over the
//! live records of the journal (see [`crate::timeline`]), in order:
//! - no run at all: the program starts fresh;
//! - the last run exited (`ProcessExitV1`): the program starts afresh, from
//!   `_start`, over the files the journal restores;
//! - the last run did not exit (it was killed, or stopped after a snapshot)
//!   and took a snapshot: it *resumes* from its last snapshot marker; the
//!   records after the marker are re-executed deterministically (inputs
//!   served from the journal, effects checked against it), then it goes on
//!   live;
//! - the last run did not exit and took no snapshot: it resumes from its
//!   start, re-executing every record of the run.
//!
//! Positions are `(journal, offset)` pairs, so that read-only base journals
//! followed by the process's own journal form one history.

use crate::JournalEntry;

/// A record's place in a history made of several journals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Index of the journal in the history (bases first).
    pub journal: usize,
    /// Offset of the record in that journal.
    pub offset: u64,
}

/// Where the next run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPoint {
    /// The history holds no run.
    Fresh,
    /// The last run exited with `exit_code`: start afresh from `_start`
    /// over the restored files.
    Afresh {
        /// The exit code of the last run.
        exit_code: u32,
    },
    /// The last run did not exit and took no snapshot: replay everything
    /// before its `InitModuleV1` at `run`, then re-execute it from `_start`.
    FromStart {
        /// Where the run's `InitModuleV1` is.
        run: Position,
        /// The arguments and environment the run saw.
        environment: Option<(Vec<String>, Vec<String>)>,
    },
    /// The last run did not exit: restore its snapshot whose marker is at
    /// `marker`, then re-execute the records after it.
    FromSnapshot {
        /// Where the run's `InitModuleV1` is.
        run: Position,
        /// Where the marker is.
        marker: Position,
        /// The arguments and environment the run saw.
        environment: Option<(Vec<String>, Vec<String>)>,
    },
}

impl StartPoint {
    /// Whether the next run continues the last one (re-executing its tail).
    pub fn resumes(&self) -> bool {
        matches!(
            self,
            StartPoint::FromStart { .. } | StartPoint::FromSnapshot { .. }
        )
    }

    /// The first record that is re-executed rather than re-applied: every
    /// live record at or after it (the marker itself excluded) is the tail.
    pub fn tail_from(&self) -> Option<Position> {
        match self {
            StartPoint::Fresh | StartPoint::Afresh { .. } => None,
            StartPoint::FromStart { run, .. } => Some(*run),
            StartPoint::FromSnapshot { marker, .. } => Some(*marker),
        }
    }
}

/// Finds the [`StartPoint`] over live records given in history order.
#[derive(Debug, Clone, Default)]
pub struct StartPlanner {
    run: Option<Position>,
    environment: Option<(Vec<String>, Vec<String>)>,
    exit_code: Option<u32>,
    marker: Option<Position>,
    /// An older version's resume record was seen: the run that follows
    /// resumed from this marker.
    resumed_from: Option<Position>,
    tail_records: u64,
}

impl StartPlanner {
    /// A planner that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the live record at `position` into account. Records on lost
    /// timelines must not be given. A resume record (`ResumedFromSnapshotV1`,
    /// written by older versions) names a marker in its own journal.
    pub fn observe(&mut self, position: Position, entry: &JournalEntry<'_>) {
        self.tail_records += 1;
        match entry {
            JournalEntry::InitModuleV1(_) => {
                self.run = Some(position);
                self.environment = None;
                self.exit_code = None;
                self.marker = self.resumed_from.take();
                if self.marker.is_none() {
                    self.tail_records = 1;
                }
            }
            JournalEntry::EnvironmentV1(e) if self.environment.is_none() => {
                self.environment = Some((e.args.clone(), e.env.clone()));
            }
            JournalEntry::ProcessExitV1(e) => self.exit_code = Some(e.exit_code),
            JournalEntry::SnapshotV1(_) => {
                self.marker = Some(position);
                self.tail_records = 0;
            }
            // An older version's resume: the run that follows (it recorded
            // its own InitModuleV1) started from that marker.
            JournalEntry::ResumedFromSnapshotV1(r) => {
                self.resumed_from = Some(Position {
                    journal: position.journal,
                    offset: r.snapshot_offset,
                })
            }
            _ => {}
        }
    }

    /// Live records after the start point that a resume re-executes (for
    /// a snapshot, the records after its marker).
    pub fn tail_records(&self) -> u64 {
        match self.finish() {
            StartPoint::FromStart { .. } | StartPoint::FromSnapshot { .. } => self.tail_records,
            StartPoint::Fresh | StartPoint::Afresh { .. } => 0,
        }
    }

    /// Where the next run starts.
    pub fn finish(&self) -> StartPoint {
        match (self.run, self.exit_code, self.marker) {
            (None, _, _) => StartPoint::Fresh,
            (Some(_), Some(exit_code), _) => StartPoint::Afresh { exit_code },
            (Some(run), None, None) => StartPoint::FromStart {
                run,
                environment: self.environment.clone(),
            },
            (Some(run), None, Some(marker)) => StartPoint::FromSnapshot {
                run,
                marker,
                environment: self.environment.clone(),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{EnvironmentV1, InitModuleV1, ProcessExitV1, SnapshotV1};

    fn at(offset: u64) -> Position {
        Position { journal: 0, offset }
    }

    fn plan(entries: &[JournalEntry<'static>]) -> StartPoint {
        let mut planner = StartPlanner::new();
        for (i, e) in entries.iter().enumerate() {
            planner.observe(at(i as u64 * 10), e);
        }
        planner.finish()
    }

    fn init() -> JournalEntry<'static> {
        InitModuleV1 { wasm_hash: [1; 32] }.into()
    }

    fn env(arg: &str) -> JournalEntry<'static> {
        EnvironmentV1 {
            args: vec![arg.to_owned()],
            env: Vec::new(),
        }
        .into()
    }

    fn exit() -> JournalEntry<'static> {
        ProcessExitV1 { exit_code: 3 }.into()
    }

    fn marker() -> JournalEntry<'static> {
        SnapshotV1 {
            since_epoch_ns: 0,
            trigger: 1,
        }
        .into()
    }

    #[test]
    fn one_meaning_per_journal_state() {
        assert_eq!(plan(&[]), StartPoint::Fresh);
        assert_eq!(
            plan(&[init(), env("a"), marker(), exit()]),
            StartPoint::Afresh { exit_code: 3 }
        );
        assert_eq!(
            plan(&[init(), env("a")]),
            StartPoint::FromStart {
                run: at(0),
                environment: Some((vec!["a".into()], vec![]))
            }
        );
        assert_eq!(
            plan(&[init(), env("a"), marker(), env("ignored")]),
            StartPoint::FromSnapshot {
                run: at(0),
                marker: at(20),
                environment: Some((vec!["a".into()], vec![]))
            }
        );
    }

    #[test]
    fn only_the_last_run_counts() {
        // A finished run with a snapshot, then an unfinished one without.
        let point = plan(&[init(), env("a"), marker(), exit(), init(), env("b")]);
        assert_eq!(point.tail_from(), Some(at(40)));
        assert!(point.resumes());
        let mut planner = StartPlanner::new();
        for (i, e) in [init(), env("b"), marker(), env("x"), env("y")]
            .iter()
            .enumerate()
        {
            planner.observe(at(i as u64), e);
        }
        assert_eq!(planner.tail_records(), 2, "the records after the marker");
    }
}
