//! Replay: read a history (read-only base journals, then the process's own
//! journal), follow each journal's live timeline
//! ([`wasnap_journal::timeline`]), decide where the next run starts
//! ([`wasnap_journal::start`]), hand every live effect before that point to
//! the host's [`Reapplier`], and collect what a resume needs: the memory
//! and thread state of the snapshot it restores, and the tail it
//! re-executes.

use wasnap_journal::memory::{MemoryError, MemoryLayers};
use wasnap_journal::start::{Position, StartPlanner, StartPoint};
use wasnap_journal::timeline::{Timeline, TimelineBuilder, UnknownSnapshot};
use wasnap_journal::{JournalEntry, JournalReader, ReadError, ThreadStateV1};
use wasnap_wasi::{Errno, Reapplier, SysError, Trap, WasiCtx};

use crate::tail::TailRecord;

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Print recorded writes to standard output and error again.
    pub replay_stdio: bool,
    /// Replay even if the journal was recorded for another module.
    pub force: bool,
    /// SHA-256 of the module about to run, checked against `InitModuleV1`.
    pub module_hash: Option<[u8; 32]>,
    /// Stop where the next run starts (see [`StartPoint`]) and collect what
    /// resuming needs; otherwise re-apply every live record.
    pub resume: bool,
    /// The last journal of the history is the process's own (its tail can
    /// be cut off by `--on-divergence live`); the others are read-only.
    pub last_is_own: bool,
}

/// What resuming from a snapshot needs, collected by [`replay`].
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// Offset of the `SnapshotV1` marker record.
    pub marker_offset: u64,
    /// Linear memory at the snapshot: the regions to map or copy.
    pub memory: MemoryLayers,
    /// Globals and unwind buffer at the snapshot.
    pub thread: ThreadStateV1<'static>,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// The journal's name (its path, or `<memory>`).
    pub journal: String,
    /// Live records replayed.
    pub records: u64,
    /// Records skipped because they belong to lost timelines.
    pub lost_records: u64,
    /// `InitModuleV1` records seen: one per recorded run.
    pub runs: u64,
    /// File bytes written into memory mounts from the mapping, not copied.
    pub zero_copy_bytes: u64,
    /// File bytes copied into memory mounts.
    pub copied_bytes: u64,
    /// Effects on host mounts, not re-applied.
    pub host_effects_skipped: u64,
    /// Entries about things replay cannot restore (sockets, pipes), skipped.
    pub unsupported_skipped: u64,
    /// Descriptors on host mounts that could not be reopened.
    pub warnings: Vec<String>,
    /// With [`ReplayOptions::resume`]: the snapshot to resume from, if the
    /// journal has a complete one and the run that took it did not exit.
    pub resume: Option<ResumePoint>,
}

/// What replaying a whole history found.
#[derive(Debug, Clone)]
pub struct History {
    /// One summary per journal, in order.
    pub summaries: Vec<ReplaySummary>,
    /// Where the next run starts.
    pub start: StartPoint,
    /// With [`ReplayOptions::resume`] and a snapshot to resume from: its
    /// memory and thread state.
    pub resume: Option<ResumePoint>,
    /// With [`ReplayOptions::resume`] and a run to resume: the live records
    /// after the start point, which the program re-executes.
    pub tail: Vec<TailRecord>,
    /// The latest reading of each clock the journal holds (by clock id):
    /// a resumed program's clocks must not go back below them.
    pub clock_floors: std::collections::BTreeMap<u32, u64>,
}

/// Why a journal cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// A record could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A resume names a snapshot the journal does not hold.
    #[error("the journal {journal} is damaged: {source}")]
    Timeline {
        /// The journal's name.
        journal: String,
        /// The resume at fault.
        source: UnknownSnapshot,
    },
    /// The journal was recorded for another module.
    #[error("the journal {journal} was recorded for another module (journal: {recorded}, module: {running}); pass --force to replay it anyway")]
    ModuleMismatch {
        /// The journal's name.
        journal: String,
        /// Hex SHA-256 of the module the journal was recorded for.
        recorded: String,
        /// Hex SHA-256 of the module about to run.
        running: String,
    },
    /// An effect that succeeded when recorded fails now.
    #[error(
        "the journal {journal} cannot be replayed: {entry} at offset {offset} failed with {errno}"
    )]
    Apply {
        /// The journal's name.
        journal: String,
        /// The record's offset.
        offset: u64,
        /// The entry kind's name.
        entry: &'static str,
        /// What the host said.
        errno: Errno,
    },
    /// Re-applying an effect stopped the host.
    #[error("the journal {journal} cannot be replayed: {entry} at offset {offset}: {trap}")]
    Trap {
        /// The journal's name.
        journal: String,
        /// The record's offset.
        offset: u64,
        /// The entry kind's name.
        entry: &'static str,
        /// Why.
        trap: Box<Trap>,
    },
    /// A snapshot's memory region is malformed.
    #[error(
        "the journal {journal} cannot be resumed: the memory region at offset {offset}: {source}"
    )]
    Memory {
        /// The journal's name.
        journal: String,
        /// The record's offset.
        offset: u64,
        /// What is wrong with it.
        source: MemoryError,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Each journal's live timeline and where the next run starts, in one pass;
/// a second pass over the live records only when a `TimelineCutV1` lost
/// records the planner had already seen. Every run's module is checked
/// against `module_hash`.
fn plan(
    readers: &mut [JournalReader],
    options: &ReplayOptions,
) -> Result<(Vec<Timeline>, StartPoint), ReplayError> {
    let mut timelines = Vec::with_capacity(readers.len());
    let mut planner = StartPlanner::new();
    let mut cut = false;
    for (journal, reader) in readers.iter_mut().enumerate() {
        let name = reader.name().to_owned();
        let mut builder = TimelineBuilder::default();
        reader.rewind();
        while let Some(record) = reader.read_next()? {
            builder
                .observe(record.start, &record.entry)
                .map_err(|source| ReplayError::Timeline {
                    journal: name.clone(),
                    source,
                })?;
            cut |= matches!(record.entry, JournalEntry::TimelineCutV1(_));
            observe(
                &mut planner,
                journal,
                &record.entry,
                record.start,
                options,
                &name,
            )?;
        }
        timelines.push(builder.finish());
    }
    if cut {
        planner = StartPlanner::new();
        for (journal, (reader, timeline)) in readers.iter_mut().zip(&timelines).enumerate() {
            let name = reader.name().to_owned();
            reader.rewind();
            while let Some(record) = reader.read_next()? {
                if timeline.is_live(record.start) {
                    observe(
                        &mut planner,
                        journal,
                        &record.entry,
                        record.start,
                        options,
                        &name,
                    )?;
                }
            }
        }
    }
    for reader in readers.iter_mut() {
        reader.rewind();
    }
    Ok((timelines, planner.finish()))
}

/// Feeds one record to the start planner, checking a run's module.
fn observe(
    planner: &mut StartPlanner,
    journal: usize,
    entry: &JournalEntry<'_>,
    offset: u64,
    options: &ReplayOptions,
    name: &str,
) -> Result<(), ReplayError> {
    if let JournalEntry::InitModuleV1(init) = entry {
        if let (Some(running), false) = (options.module_hash, options.force) {
            if running != init.wasm_hash {
                return Err(ReplayError::ModuleMismatch {
                    journal: name.to_owned(),
                    recorded: hex(&init.wasm_hash),
                    running: hex(&running),
                });
            }
        }
    }
    planner.observe(Position { journal, offset }, entry);
    Ok(())
}

/// What to do with one journal's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Re-apply every live record.
    Everything,
    /// Re-apply records before `offset`; the rest is the tail.
    Before(u64),
    /// Re-apply records before the marker at `offset`, collecting the
    /// snapshot's memory and thread state; records after it are the tail.
    AtMarker(u64),
    /// Every live record is the tail.
    Nothing,
}

/// Replays a history into `ctx`: read-only bases first, the process's own
/// journal last.
pub fn replay_history(
    ctx: &mut WasiCtx,
    readers: &mut [JournalReader],
    options: &ReplayOptions,
) -> Result<History, ReplayError> {
    let (timelines, start) = plan(readers, options)?;
    let tail_from = if options.resume {
        start.tail_from()
    } else {
        None
    };
    let mut history = History {
        summaries: Vec::new(),
        start: start.clone(),
        resume: None,
        tail: Vec::new(),
        clock_floors: Default::default(),
    };
    let mut image = MemoryLayers::new();
    let mut thread = None;
    for (journal, (reader, timeline)) in readers.iter_mut().zip(&timelines).enumerate() {
        let cut = match (tail_from, &start) {
            (None, _) => Cut::Everything,
            (Some(p), _) if journal < p.journal => Cut::Everything,
            (Some(p), StartPoint::FromSnapshot { .. }) if journal == p.journal => {
                Cut::AtMarker(p.offset)
            }
            (Some(p), _) if journal == p.journal => Cut::Before(p.offset),
            (Some(_), _) => Cut::Nothing,
        };
        let own = options.last_is_own && journal + 1 == timelines.len();
        let summary = replay_journal(
            ctx,
            reader,
            timeline,
            (cut, own),
            options,
            &mut image,
            &mut thread,
            &mut history,
        )?;
        history.summaries.push(summary);
    }
    Ok(history)
}

/// Replays one journal of a history (see [`replay_history`]).
#[allow(clippy::too_many_arguments)]
fn replay_journal(
    ctx: &mut WasiCtx,
    reader: &mut JournalReader,
    timeline: &Timeline,
    (cut, own): (Cut, bool),
    options: &ReplayOptions,
    image: &mut MemoryLayers,
    thread: &mut Option<ThreadStateV1<'static>>,
    history: &mut History,
) -> Result<ReplaySummary, ReplayError> {
    let journal = reader.name().to_owned();
    let mapping = reader.buffer().clone();
    let backing = reader.backing();
    let mut summary = ReplaySummary {
        journal: journal.clone(),
        lost_records: timeline.lost_records(),
        ..ReplaySummary::default()
    };
    let mut reapplier = Reapplier::new(ctx, Some(&mapping), options.replay_stdio);
    let failed = |offset: u64, entry: &'static str, error: SysError| match error {
        SysError::Errno(errno) => ReplayError::Apply {
            journal: journal.clone(),
            offset,
            entry,
            errno,
        },
        SysError::Trap(trap) => ReplayError::Trap {
            journal: journal.clone(),
            offset,
            entry,
            trap: Box::new(trap),
        },
    };
    reader.rewind();
    while let Some(record) = reader.read_next()? {
        let offset = record.start;
        if !timeline.is_live(offset) {
            continue;
        }
        if let JournalEntry::ClockReadV1(c) = &record.entry {
            let floor = history.clock_floors.entry(c.clock_id).or_default();
            *floor = (*floor).max(c.time_ns);
        }
        let in_tail = match cut {
            Cut::Everything => false,
            Cut::Before(at) => offset >= at,
            Cut::AtMarker(at) => offset > at,
            Cut::Nothing => true,
        };
        if in_tail {
            history.tail.push(TailRecord {
                journal: journal.clone(),
                own,
                offset,
                entry: record.entry.into_owned(),
            });
            continue;
        }
        summary.records += 1;
        let entry = record.entry;
        match &entry {
            JournalEntry::UpdateMemoryRegionV1(region) => {
                image
                    .push(region, backing.share(&region.data))
                    .map_err(|source| ReplayError::Memory {
                        journal: journal.clone(),
                        offset,
                        source,
                    })?;
            }
            JournalEntry::ThreadStateV1(t) => {
                *thread = Some(wasnap_journal::field::IntoOwned::into_owned(t.clone()));
            }
            JournalEntry::SnapshotV1(_) if cut == Cut::AtMarker(offset) => {
                if let Some(thread) = thread.take() {
                    history.resume = Some(ResumePoint {
                        marker_offset: offset,
                        memory: std::mem::take(image),
                        thread,
                    });
                }
            }
            JournalEntry::InitModuleV1(_) => summary.runs += 1,
            _ => {}
        }
        reapplier
            .apply(&entry)
            .map_err(|error| failed(offset, entry.kind().name(), error))?;
    }
    let counts = reapplier
        .finish()
        .map_err(|error| failed(reader.position(), "FileDescriptorWriteV1", error))?;
    summary.zero_copy_bytes = counts.zero_copy_bytes;
    summary.copied_bytes = counts.copied_bytes;
    summary.host_effects_skipped = counts.host_effects_skipped;
    summary.unsupported_skipped = counts.unsupported_skipped;
    summary.warnings = counts.warnings;
    Ok(summary)
}

/// Replays one journal into `ctx` (see [`replay_history`]); with
/// [`ReplayOptions::resume`], the summary carries the snapshot to resume
/// from, if there is one.
pub fn replay(
    ctx: &mut WasiCtx,
    reader: &mut JournalReader,
    options: &ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    let mut history = replay_history(ctx, std::slice::from_mut(reader), options)?;
    let mut summary = history.summaries.pop().unwrap_or_default();
    summary.resume = history.resume;
    Ok(summary)
}
