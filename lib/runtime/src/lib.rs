//! wasnap's runtime: the process lifecycle on top of the WASI host
//! (`wasnap-wasi`) and the journal (`wasnap-journal`).
//!
//! - [`Program`]: a module loaded once (globals rewrite, hash, compiled
//!   through the [`ModuleCache`]);
//! - [`Process`]: the protocol in one place — open the journals, replay the
//!   read-only bases and the process's own journal, decide where to resume,
//!   start recording, instantiate, restore the snapshot, then run under a
//!   [`SnapshotPolicy`];
//! - [`replay`]: following a journal's live timeline into a fresh context;
//! - [`recorder`]: the journal behind the host's effect seam;
//! - [`snapshot`]: snapshot points, capture and restore by asyncify;
//! - [`module_cache`]: compiled modules cached on disk.
//!
//! Snapshot a program into a journal held in memory, then resume it in a
//! second process from the journal's bytes; the two runs together print
//! what one uninterrupted run prints:
//!
//! ```
//! use wasnap_journal::{Journal, SnapshotTrigger};
//! use wasnap_runtime::{JournalTarget, ModuleCache, Process, ProcessOptions, Program, SnapshotPolicy};
//! use wasnap_wasi::{ExitStatus, SharedOutput, WasiCtx};
//!
//! // A prepared fixture: it asks for a snapshot after each of 3 steps.
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/wasi/explicit.async.wasm");
//! let program = Program::load(path.as_ref(), &ModuleCache::disabled())?;
//! let explicit = SnapshotPolicy::on([SnapshotTrigger::Explicit]);
//! // Starts the program on an in-memory journal; returns the process and
//! // what it will print.
//! let start = |journal: Journal, policy: SnapshotPolicy| -> Result<_, Box<dyn std::error::Error>> {
//!     let out = SharedOutput::default();
//!     let ctx = WasiCtx::builder().args(["explicit", "3"]).stdout(out.clone()).build()?;
//!     let options = ProcessOptions {
//!         journal: Some(JournalTarget::Memory(journal)),
//!         policy,
//!         ..ProcessOptions::default()
//!     };
//!     Ok((Process::start(&program, ctx, options)?, out))
//! };
//!
//! // First process: runs up to its first snapshot and stops.
//! let stop = SnapshotPolicy { stop_after: true, ..explicit.clone() };
//! let (first, first_out) = start(Journal::in_memory(), stop)?;
//! let report = first.run()?;
//! assert_eq!(report.status, ExitStatus::Snapshotted);
//! let mut journal = report.journal.expect("a journal");
//! journal.reader().restart()?;
//! let bytes = journal.reader().buffer().clone();
//!
//! // Second process, from the same bytes: resumes after the snapshot.
//! let (second, second_out) = start(Journal::from_buffer(bytes)?, explicit.clone())?;
//! assert!(second.report().resumed.is_some());
//! assert_eq!(second.run()?.status, ExitStatus::Exited(0));
//!
//! // The same program, uninterrupted.
//! let (whole, whole_out) = start(Journal::in_memory(), explicit)?;
//! assert_eq!(whole.run()?.status, ExitStatus::Exited(0));
//!
//! let resumed = [first_out.contents(), second_out.contents()].concat();
//! assert_eq!(resumed, whole_out.contents());
//! assert!(String::from_utf8(resumed)?.ends_with("finished\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod dirty;
mod error;
pub mod forked_write;
mod instance;
mod large_read;
pub mod limits;
pub mod memory_map;
pub mod module_cache;
mod module_memo;
mod parallel_hash;
pub mod policy;
mod process;
mod program;
pub mod recorder;
pub mod replay;
pub mod snapshot;
pub mod tail;

pub use error::ProcessError;
pub use instance::Instance;
pub use limits::{Limits, MemoryLimit};
pub use memory_map::{MemoryRestore, RestoreFigures, COPY_AT_MOST};
pub use module_cache::{CacheOutcome, CompileError, ModuleCache};
pub use policy::{PolicyError, SnapshotPolicy};
pub use process::{
    BaseJournal, JournalTarget, Process, ProcessOptions, Resumed, RunReport, StartReport,
    StartTimings,
};
pub use program::{LoadReport, Program};
pub use recorder::{module_hash, JournalRecorder};
pub use replay::{ReplayError, ReplayOptions, ReplaySummary, ResumePoint};
pub use snapshot::{DirtyTracking, SnapshotControl, SnapshotError, SnapshotStats, SnapshotWrite};
pub use tail::OnDivergence;
