//! [`Process`]: the whole protocol in one place. Starting a process opens
//! its journals, replays the read-only bases and then its own journal,
//! decides once where to resume, starts recording, instantiates the module
//! and restores the snapshot; running it arms the snapshot policy and runs
//! `_start` to its end or to the snapshot it stops after.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmer::sys::NativeEngineExt as _;
use wasnap_journal::{
    Durability, Journal, JournalOptions, JournalReader, JournalWriter, OwnedBuffer, Recovery,
    SnapshotTrigger,
};
use wasnap_wasi::{ExitStatus, WasiCtx};

use crate::error::ProcessError;
use crate::instance::{self, Instance};
use crate::limits::{Deadline, LimitedTunables, Limits, MemoryLimit};
use crate::memory_map::{MemoryRestore, RestoreFigures};
use crate::policy::SnapshotPolicy;
use crate::program::Program;
use crate::recorder::JournalRecorder;
use crate::replay::{replay_history, ReplayOptions, ReplaySummary};
use crate::snapshot::{SnapshotControl, SnapshotError, SnapshotStats};
use crate::tail::{OnDivergence, TailReplayer};
use wasnap_journal::start::StartPoint;

/// The journal a process records into (and resumes from).
#[derive(Debug)]
pub enum JournalTarget {
    /// A journal file, created if missing; a torn tail is cut off.
    File(PathBuf),
    /// A journal in memory (see [`Journal::in_memory`] and
    /// [`Journal::from_buffer`]).
    Memory(Journal),
}

/// A journal replayed before the process's own, and never written.
#[derive(Debug, Clone)]
pub enum BaseJournal {
    /// A journal file.
    File(PathBuf),
    /// A journal's bytes.
    Buffer(OwnedBuffer),
}

/// How to start a process.
#[derive(Debug, Default)]
pub struct ProcessOptions {
    /// Record every effect here; replay what it holds first, and resume
    /// from its last snapshot.
    pub journal: Option<JournalTarget>,
    /// Replayed in order before `journal` (one base can serve many runs).
    pub bases: Vec<BaseJournal>,
    /// Print recorded output again while replaying.
    pub replay_stdio: bool,
    /// Replay journals recorded for another module.
    pub force: bool,
    /// When to snapshot.
    pub policy: SnapshotPolicy,
    /// What a resumed program does when it diverges from its journal.
    pub on_divergence: OnDivergence,
    /// Bounds on memory and time.
    pub limits: Limits,
    /// How a resume puts the snapshot's memory back.
    pub memory_restore: MemoryRestore,
}

/// Where a process resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Offset of the snapshot marker it resumed from.
    pub marker_offset: u64,
    /// Bytes of linear memory restored.
    pub memory_bytes: u64,
    /// Of those, bytes mapped from the journal and bytes copied.
    pub figures: RestoreFigures,
}

/// What starting a process did.
#[derive(Debug, Clone)]
pub struct StartReport {
    /// One summary per journal replayed (bases first), including journals
    /// that held nothing.
    pub replays: Vec<ReplaySummary>,
    /// Where the run starts (see [`StartPoint`]).
    pub start: StartPoint,
    /// Records the program re-executes before it goes live.
    pub tail_records: u64,
    /// The snapshot the process resumed from, if any.
    pub resumed: Option<Resumed>,
    /// Where the time to start went.
    pub timings: StartTimings,
}

/// Where the time to start a process went (`wasnap run -v` prints it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartTimings {
    /// Opening the journals: locking, cutting a torn tail, mapping.
    pub open: Duration,
    /// Reading and validating the journals, planning the start, and
    /// replaying the filesystem and descriptors.
    pub replay: Duration,
    /// Instantiating the module.
    pub instantiate: Duration,
    /// Restoring memory and globals (mapping and copying).
    pub restore: Duration,
    /// Whether opening and replaying ran while the module loaded (see
    /// [`Process::load_and_start`]), so that their time hid in the load's.
    pub beside_load: bool,
}

/// How a run went.
#[derive(Debug)]
pub struct RunReport {
    /// How the program ended.
    pub status: ExitStatus,
    /// Figures of every snapshot the run took, in order.
    pub snapshots: Vec<SnapshotStats>,
    /// The process's journal, flushed (a memory journal's bytes are what a
    /// later process resumes from).
    pub journal: Option<Journal>,
    /// The largest memory size (bytes) the program asked for and the
    /// memory limit refused, if it did.
    pub memory_refused: Option<u64>,
    /// After a restore: how long the rewind into the snapshot point took.
    pub rewind: Option<Duration>,
    /// Why the kernel did not track written pages, if it was asked and
    /// said no (snapshots then compare memory).
    pub tracking_refused: Option<String>,
}

/// A started process: replayed, restored, ready to run.
pub struct Process {
    timeout: Option<Duration>,
    memory_limit: Option<Arc<MemoryLimit>>,
    name: String,
    instance: Instance,
    journal: Option<(JournalWriter, JournalReader)>,
    policy: SnapshotPolicy,
    report: StartReport,
}

/// Refuses what no journal should see: a module wasnap cannot run, a
/// policy that cannot work, snapshots without a journal or of a module not
/// prepared for them. Returns the policy as it will run.
fn refuse(
    program: &Program,
    policy: &SnapshotPolicy,
    has_journal: bool,
) -> Result<SnapshotPolicy, ProcessError> {
    let name = program.label().to_owned();
    wasnap_wasi::instance::check_module(program.module()).map_err(|source| {
        ProcessError::Instantiate {
            module: name.clone(),
            source,
        }
    })?;
    let policy = policy.clone().checked()?;
    if policy.takes_snapshots() {
        if !has_journal {
            return Err(ProcessError::SnapshotsNeedJournal);
        }
        if !program.snapshottable() {
            return Err(ProcessError::NotPrepared { module: name });
        }
    }
    Ok(policy)
}

/// A start after its journals were replayed, before instantiation: what
/// the module itself is needed for comes after.
struct Replayed {
    /// The process's own journal (its reader was read last).
    journal: Option<(JournalWriter, JournalReader)>,
    /// The snapshot to restore.
    resume_point: Option<crate::replay::ResumePoint>,
    report: StartReport,
    limits: Limits,
    memory_restore: MemoryRestore,
}

impl Replayed {
    /// Opens the journals of `options`, replays them into `ctx` (checking
    /// that they were recorded for the module with `module_hash`, which
    /// messages call `label`), decides where the run starts and starts
    /// recording.
    fn replay(
        ctx: &mut WasiCtx,
        options: ProcessOptions,
        module_hash: [u8; 32],
        label: &str,
    ) -> Result<Replayed, ProcessError> {
        // One history: the read-only bases, then the process's own journal.
        let opening = std::time::Instant::now();
        let mut readers = options
            .bases
            .iter()
            .map(open_base)
            .collect::<Result<Vec<_>, _>>()?;
        let writer = match options.journal {
            None => None,
            Some(target) => {
                let (writer, reader) = open_target(target)?.split();
                readers.push(reader);
                Some(writer)
            }
        };
        let replay_options = ReplayOptions {
            replay_stdio: options.replay_stdio,
            force: options.force,
            module_hash: Some(module_hash),
            resume: true,
            last_is_own: writer.is_some(),
        };
        let mut timings = StartTimings {
            open: opening.elapsed(),
            ..StartTimings::default()
        };
        let replaying = std::time::Instant::now();
        let history = replay_history(ctx, &mut readers, &replay_options)?;
        timings.replay = replaying.elapsed();
        let report = StartReport {
            replays: history.summaries,
            start: history.start.clone(),
            tail_records: history.tail.len() as u64,
            resumed: None,
            timings,
        };
        for (&clock_id, &floor) in &history.clock_floors {
            ctx.raise_clock_floor(clock_id, floor);
        }
        let recording_failed = |writer: &JournalWriter, source| ProcessError::Recording {
            journal: writer.name().to_owned(),
            source,
        };
        match (&history.start, &writer) {
            (StartPoint::FromStart { .. } | StartPoint::FromSnapshot { .. }, _) => {
                // The run goes on: it re-executes its tail against the
                // journal, then records behind it. Re-executed from `_start`,
                // it sees the arguments and environment it started with;
                // resumed from a snapshot, it had read its arguments already,
                // and reads the environment of the command that resumes it
                // (what `--snapshot-on first-environ` is for).
                if let StartPoint::FromStart {
                    environment: Some((args, env)),
                    ..
                } = &history.start
                {
                    ctx.set_environment(args.clone(), env.clone());
                }
                let live = writer.clone().map(JournalRecorder::continuing);
                ctx.set_recorder(Box::new(TailReplayer::new(
                    history.tail,
                    live,
                    options.on_divergence,
                )));
            }
            (StartPoint::Fresh | StartPoint::Afresh { .. }, Some(writer)) => {
                let recorder =
                    JournalRecorder::start(writer.clone(), module_hash, ctx.args(), ctx.env())
                        .map_err(|source| recording_failed(writer, source))?;
                ctx.set_recorder(Box::new(recorder));
            }
            (StartPoint::Fresh | StartPoint::Afresh { .. }, None) => {}
        }
        // The process's own journal was read last.
        let journal = match writer {
            Some(writer) => readers.pop().map(|reader| (writer, reader)),
            None => None,
        };
        let resume_point = match (&history.start, history.resume) {
            (StartPoint::FromSnapshot { marker, .. }, None) => {
                return Err(ProcessError::Restore {
                    module: label.to_owned(),
                    source: SnapshotError::Mismatch(format!(
                        "the snapshot at offset {} has no thread state before its marker",
                        marker.offset
                    )),
                })
            }
            (_, point) => point,
        };
        Ok(Replayed {
            journal,
            resume_point,
            report,
            limits: options.limits,
            memory_restore: options.memory_restore,
        })
    }
}

fn open_base(base: &BaseJournal) -> Result<JournalReader, ProcessError> {
    match base {
        BaseJournal::File(path) => Ok(JournalReader::open(path)
            .map_err(|source| ProcessError::OpenJournal {
                journal: path.display().to_string(),
                source,
            })?
            .with_recovery(Recovery::StopAtTornTail)),
        BaseJournal::Buffer(buffer) => {
            Ok(JournalReader::from_buffer(buffer.clone()).with_recovery(Recovery::StopAtTornTail))
        }
    }
}

fn open_target(target: JournalTarget) -> Result<Journal, ProcessError> {
    match target {
        JournalTarget::File(path) => Journal::open(
            &path,
            JournalOptions {
                durability: Durability::None,
            },
        )
        .map_err(|source| ProcessError::OpenJournal {
            journal: path.display().to_string(),
            source,
        }),
        JournalTarget::Memory(mut journal) => {
            // Its reader sees what was written since it was made.
            journal
                .reader()
                .restart()
                .map_err(|source| ProcessError::OpenJournal {
                    journal: wasnap_journal::MEMORY_NAME.to_owned(),
                    source,
                })?;
            Ok(journal)
        }
    }
}

impl Process {
    /// Starts `program` over `ctx`: checks the module and the policy,
    /// replays the base journals and the process's journal, starts
    /// recording, instantiates the module and restores the last snapshot
    /// (if the journal holds a complete one).
    pub fn start(
        program: &Program,
        mut ctx: WasiCtx,
        options: ProcessOptions,
    ) -> Result<Process, ProcessError> {
        // Everything that can be refused is refused before a journal is
        // touched.
        let policy = refuse(program, &options.policy, options.journal.is_some())?;
        let replayed = Replayed::replay(&mut ctx, options, program.hash(), program.label())?;
        Process::instantiate(program, ctx, policy, replayed)
    }

    /// Loads the module at `path` (through `cache`) and starts it, as
    /// [`Program::load`] and [`start`](Self::start) would. A process that
    /// only replays read-only bases (no journal of its own, which is all a
    /// replay could touch) and whose module file is one the cache knows
    /// unchanged replays its bases while the module loads, on two threads:
    /// a resume from a base then costs the longer of the two, not both.
    /// The refusals `start` makes first come after the replay here; the
    /// bases are only read.
    pub fn load_and_start(
        path: &std::path::Path,
        cache: &crate::module_cache::ModuleCache,
        mut ctx: WasiCtx,
        options: ProcessOptions,
    ) -> Result<(Program, Process), ProcessError> {
        let known = (options.journal.is_none() && !options.bases.is_empty())
            .then(|| Program::known_hash(path, cache))
            .flatten();
        let Some(hash) = known else {
            let program = Program::load(path, cache)?;
            let process = Process::start(&program, ctx, options)?;
            return Ok((program, process));
        };
        let label = path.display().to_string();
        let (unchecked_policy, has_journal) = (options.policy.clone(), options.journal.is_some());
        let (program, replayed) = std::thread::scope(|scope| {
            let loading = scope.spawn(|| Program::load(path, cache));
            let replayed = Replayed::replay(&mut ctx, options, hash, &label);
            let program = loading
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (program, replayed)
        });
        let program = program?;
        if program.hash() != hash {
            // The file changed after the cache vouched for it: the bases
            // were checked against another module.
            return Err(ProcessError::ModuleChanged { module: label });
        }
        let policy = refuse(&program, &unchecked_policy, has_journal)?;
        let mut replayed = replayed?;
        replayed.report.timings.beside_load = true;
        let process = Process::instantiate(&program, ctx, policy, replayed)?;
        Ok((program, process))
    }

    /// Instantiates `program` after its journals were replayed, and
    /// restores the snapshot the replay chose (if any).
    fn instantiate(
        program: &Program,
        ctx: WasiCtx,
        policy: SnapshotPolicy,
        replayed: Replayed,
    ) -> Result<Process, ProcessError> {
        let name = program.label().to_owned();
        let Replayed {
            journal,
            resume_point,
            mut report,
            limits,
            memory_restore,
        } = replayed;
        let mut engine = program.engine().clone();
        let memory_limit = limits.max_memory.map(MemoryLimit::new);
        if let Some(limit) = &memory_limit {
            // The clone shares the compiled code; only how memories are
            // made differs (see `limits`).
            engine.set_tunables(LimitedTunables::new(limit.clone()));
        }
        let store = wasmer::Store::new(engine);
        let instantiating = std::time::Instant::now();
        let mut instance =
            match Instance::with_points(store, program.module(), ctx, SnapshotControl::default()) {
                Ok(instance) => instance,
                Err(source) => {
                    // A run that does not start leaves no records (its
                    // start was only buffered): the journal stays as it was.
                    if let Some((writer, _)) = &journal {
                        writer.discard_buffered();
                    }
                    return Err(ProcessError::Instantiate {
                        module: name,
                        source,
                    });
                }
            };
        report.timings.instantiate = instantiating.elapsed();
        if let Some(point) = resume_point {
            let restoring = std::time::Instant::now();
            let track_writes = policy.takes_snapshots();
            let figures = instance::restore(
                &mut instance,
                &point.memory,
                &point.thread,
                memory_restore,
                track_writes,
            )
            .map_err(|source| ProcessError::Restore {
                module: name.clone(),
                source,
            })?;
            report.timings.restore = restoring.elapsed();
            report.resumed = Some(Resumed {
                marker_offset: point.marker_offset,
                memory_bytes: point.memory.len(),
                figures,
            });
        }
        Ok(Process {
            name,
            instance,
            journal,
            policy,
            report,
            timeout: limits.timeout,
            memory_limit,
        })
    }

    /// What starting did: replays and the resume point.
    pub fn report(&self) -> &StartReport {
        &self.report
    }

    /// The process state (descriptors, mounts), as replay left it.
    pub fn ctx(&self) -> &WasiCtx {
        self.instance.ctx()
    }

    /// Arms the snapshot policy and runs the program to its end, or to the
    /// snapshot it stops after.
    ///
    /// With the sigint trigger, the process takes over Ctrl-C: the next
    /// snapshot point snapshots and stops; if none comes within the
    /// policy's grace, the journal is flushed and the whole process exits
    /// with 130, as a shell expects of SIGINT.
    pub fn run(mut self) -> Result<RunReport, ProcessError> {
        let writer = self.journal.as_ref().map(|(writer, _)| writer.clone());
        let mut sigint_done = None;
        let mut sigint = None;
        if self.policy.has(SnapshotTrigger::Sigint) {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&flag))
                .map_err(ProcessError::Signal)?;
            let done = Arc::new(AtomicBool::new(false));
            let watched = Arc::clone(&done);
            let watched_flag = Arc::clone(&flag);
            let grace = self.policy.sigint_grace;
            let watchdog_writer = writer.clone();
            std::thread::spawn(move || {
                sigint_watchdog(&watched_flag, &watched, grace, watchdog_writer)
            });
            sigint = Some(flag);
            sigint_done = Some(done);
        }
        self.instance.points_mut().arm(&self.policy, sigint);
        let deadline = self.timeout.map(|timeout| {
            let name = self.name.clone();
            let writer = writer.clone();
            let on_stuck = Box::new(move || {
                eprintln!(
                    "wasnap: {name} timed out after {:.1} s (--timeout) while in a host call; exiting",
                    timeout.as_secs_f64()
                );
                if let Some(writer) = writer {
                    let _ = writer.flush();
                }
                std::process::exit(wasnap_wasi::instance::TIMEOUT_EXIT);
            });
            (
                timeout,
                Deadline::arm(timeout, self.instance.store.interrupter(), on_stuck),
            )
        });
        let mut status = instance::run(&mut self.instance, writer.as_ref());
        if let Some((timeout, deadline)) = deadline {
            // An interrupt is a trap; after the deadline, it is the timeout.
            if deadline.disarm() && matches!(status, ExitStatus::Trapped { .. }) {
                status = ExitStatus::TimedOut(timeout);
            }
        }
        if let Some(done) = sigint_done {
            done.store(true, Ordering::SeqCst);
        }
        // The last snapshot reaches the disk before the run reports; if it
        // cannot, the run did not end well, whatever the program did.
        if let Err(e) = self.instance.points_mut().wait_for_disk() {
            status = ExitStatus::Trapped {
                message: format!("the last snapshot is not on disk: {e}"),
                backtrace: Vec::new(),
            };
        }
        let journal = match self.journal {
            Some((writer, reader)) => {
                // Best effort: a journal that cannot be flushed already
                // stopped the program with a trap naming it.
                let _ = writer.flush();
                Some(Journal::recombine(writer, reader))
            }
            None => None,
        };
        Ok(RunReport {
            status,
            snapshots: self.instance.points().stats().to_vec(),
            journal,
            memory_refused: self.memory_limit.as_ref().and_then(|l| l.refused()),
            rewind: self.instance.points().restore_rewind(),
            tracking_refused: self.instance.points().tracking_refused().map(str::to_owned),
        })
    }

    /// The program's label (its path), as messages use it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// After Ctrl-C, gives the program `grace` to reach a snapshot point;
/// otherwise says so, flushes the journal and exits (130, as for SIGINT).
fn sigint_watchdog(
    flag: &AtomicBool,
    done: &AtomicBool,
    grace: Duration,
    writer: Option<JournalWriter>,
) {
    while !flag.load(Ordering::SeqCst) {
        if done.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if done.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "wasnap: Ctrl-C: the program reached no snapshot point within {:.1} s; exiting without a snapshot",
        grace.as_secs_f64()
    );
    if let Some(writer) = writer {
        let _ = writer.flush();
    }
    std::process::exit(130);
}
