//! Replay: read a journal, follow its live timeline
//! ([`wasnap_journal::timeline`]), hand every live effect to the host's
//! [`Reapplier`], check the module's identity, and — when resuming —
//! collect the memory and thread state of the last live snapshot.

use wasnap_journal::memory::{MemoryError, MemoryImage};
use wasnap_journal::timeline::{Timeline, TimelineBuilder, UnknownSnapshot};
use wasnap_journal::{JournalEntry, JournalReader, ReadError, ThreadStateV1};
use wasnap_wasi::{Errno, Reapplier, SysError, Trap, WasiCtx};

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Print recorded writes to standard output and error again.
    pub replay_stdio: bool,
    /// Replay even if the journal was recorded for another module.
    pub force: bool,
    /// SHA-256 of the module about to run, checked against `InitModuleV1`.
    pub module_hash: Option<[u8; 32]>,
    /// Stop at the last complete snapshot of the live timeline and collect
    /// what resuming from it needs (memory, thread state).
    pub resume: bool,
}

/// What resuming from a snapshot needs, collected by [`replay`].
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// Offset of the `SnapshotV1` marker record.
    pub marker_offset: u64,
    /// Linear memory at the snapshot.
    pub memory: Vec<u8>,
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
    /// journal has a complete one.
    pub resume: Option<ResumePoint>,
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

/// The live timeline of the journal behind `reader` (one pass; the reader
/// is rewound afterwards).
fn timeline_of(reader: &mut JournalReader) -> Result<Timeline, ReplayError> {
    let mut builder = TimelineBuilder::default();
    reader.rewind();
    while let Some(record) = reader.read_next()? {
        builder
            .observe(record.start, &record.entry)
            .map_err(|source| ReplayError::Timeline {
                journal: reader.name().to_owned(),
                source,
            })?;
    }
    reader.rewind();
    Ok(builder.finish())
}

/// Replays every live record of `reader` into `ctx`.
pub fn replay(
    ctx: &mut WasiCtx,
    reader: &mut JournalReader,
    options: &ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    let journal = reader.name().to_owned();
    let timeline = timeline_of(reader)?;
    let stop_at = if options.resume {
        timeline.last_marker()
    } else {
        None
    };
    let mapping = reader.buffer().clone();
    let mut summary = ReplaySummary {
        journal: journal.clone(),
        lost_records: timeline.lost_records(),
        ..ReplaySummary::default()
    };
    let mut reapplier = Reapplier::new(ctx, Some(&mapping), options.replay_stdio);
    let mut image = MemoryImage::new();
    let mut thread = None;
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
    while let Some(record) = reader.read_next()? {
        let offset = record.start;
        if !timeline.is_live(offset) {
            continue;
        }
        summary.records += 1;
        let entry = record.entry;
        if stop_at.is_some() {
            match &entry {
                JournalEntry::UpdateMemoryRegionV1(region) => {
                    image.apply(region).map_err(|source| ReplayError::Memory {
                        journal: journal.clone(),
                        offset,
                        source,
                    })?;
                    continue;
                }
                JournalEntry::ThreadStateV1(t) => {
                    thread = Some(wasnap_journal::field::IntoOwned::into_owned(t.clone()));
                    continue;
                }
                JournalEntry::SnapshotV1(_) if Some(offset) == stop_at => {
                    if let Some(thread) = thread.take() {
                        summary.resume = Some(ResumePoint {
                            marker_offset: offset,
                            memory: std::mem::take(&mut image).into_bytes(),
                            thread,
                        });
                    }
                    break;
                }
                _ => {}
            }
        }
        reapplier
            .apply(&entry)
            .map_err(|error| failed(offset, entry.kind().name(), error))?;
        if let JournalEntry::InitModuleV1(init) = &entry {
            summary.runs += 1;
            if let (Some(running), false) = (options.module_hash, options.force) {
                if running != init.wasm_hash {
                    return Err(ReplayError::ModuleMismatch {
                        journal: journal.clone(),
                        recorded: hex(&init.wasm_hash),
                        running: hex(&running),
                    });
                }
            }
        }
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
