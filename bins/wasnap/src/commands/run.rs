//! `wasnap run`: run a WASI command module.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wasnap_journal::start::StartPoint;
use wasnap_journal::SnapshotTrigger;
use wasnap_runtime::{
    BaseJournal, CacheOutcome, JournalTarget, Limits, MemoryRestore, ModuleCache, OnDivergence,
    Process, ProcessOptions, Program, ReplaySummary, SnapshotPolicy,
};
use wasnap_wasi::{ExitStatus, WasiCtx};

/// A parsed `--dir` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSpec {
    pub host: PathBuf,
    pub guest: String,
    pub readonly: bool,
}

/// Parses `HOST[::GUEST][:ro|:rw]`. Without `::GUEST`, the guest sees the
/// directory under the name given for the host (as wasmtime does).
pub fn parse_dir(spec: &str) -> Result<DirSpec, String> {
    let (rest, readonly) = if let Some(rest) = spec.strip_suffix(":ro") {
        (rest, true)
    } else if let Some(rest) = spec.strip_suffix(":rw") {
        (rest, false)
    } else {
        (spec, false)
    };
    let (host, guest) = match rest.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (rest, rest),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("`{spec}`: expected HOST[::GUEST][:ro]"));
    }
    Ok(DirSpec {
        host: PathBuf::from(host),
        guest: guest.to_owned(),
        readonly,
    })
}

/// Parses `KEY=VALUE`.
pub fn parse_env(spec: &str) -> Result<(String, String), String> {
    match spec.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{spec}`: expected KEY=VALUE")),
    }
}

/// Everything `wasnap run` was asked to do (its command line).
#[derive(Debug, Default, clap::Args)]
pub struct RunOptions {
    /// The module (.wasm). Compiled modules are cached (see --cache-dir).
    pub module: PathBuf,
    /// Arguments for the program (after `--` if they start with `-`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Mount a host directory: HOST[::GUEST][:ro]. Without ::GUEST the
    /// guest sees it under the same name. Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]", value_parser = parse_dir)]
    pub dirs: Vec<DirSpec>,
    /// Mount an in-memory copy of a host directory: HOST[::GUEST]. The
    /// guest may change the copy; the host directory is never written.
    #[arg(long = "dir-copy", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    pub dir_copies: Vec<DirSpec>,
    /// The program's own name, its argv[0] [default: the module's file name].
    #[arg(long, value_name = "NAME")]
    pub argv0: Option<String>,
    /// Set an environment variable for the program. Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Pass wasnap's whole environment to the program (--env wins).
    #[arg(long)]
    pub env_inherit: bool,
    /// Preopen a listening TCP socket at ADDR (for sock_accept). Repeatable.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Where compiled modules are cached [default: $WASNAP_CACHE_DIR, or
    /// $XDG_CACHE_HOME/wasnap/modules, or ~/.cache/wasnap/modules].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the module every time; read and write no cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Report on stderr how the module was loaded and how long it took.
    #[arg(short, long)]
    pub verbose: bool,
    /// Journal every effect (and input) into PATH, created if missing. If
    /// PATH already holds a run that did not exit, it is resumed exactly
    /// (from its last snapshot or its start, re-executing the rest of the
    /// journal); if its last run exited, the program starts afresh over
    /// the files the journal restores.
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// Replay PATH without writing to it, before --journal's records; a
    /// run in PATH that did not exit (a base snapshot) is resumed, and
    /// continues into --journal. One base serves many runs. Repeatable.
    #[arg(long = "journal-readonly", value_name = "PATH")]
    pub journal_readonly: Vec<PathBuf>,
    /// When a resumed program does something other than its journal holds:
    /// stop (exit 3, the journal is left as it was), or cut the rest of the
    /// journal off and go on live from there.
    #[arg(long, value_name = "WHAT", value_enum, default_value = "stop")]
    pub on_divergence: DivergenceChoice,
    /// How a resume puts the snapshot's memory back. copy: read it into
    /// fresh memory (backed by 2 MiB pages where the kernel can), about
    /// 0.1 ms per MiB up front and nothing after; map: map it
    /// copy-on-write from the journal file, nothing up front and a page
    /// fault for each page the program touches (a copy on its first
    /// write); auto: copy up to 64 MiB, map larger memories.
    #[arg(long, value_name = "HOW", value_enum, default_value = "auto")]
    pub restore_memory: RestoreMemoryChoice,
    /// While replaying, print the recorded standard output and error again.
    #[arg(long)]
    pub replay_stdio: bool,
    /// Replay a journal even if it was recorded for another module.
    #[arg(long)]
    pub force: bool,
    /// Take a snapshot when TRIGGER fires (needs --journal and a module
    /// prepared with `wasnap prepare`). Repeatable. first-stdin: the first
    /// read from standard input; first-environ: the first read of the
    /// environment; idle: a read from standard input with none there;
    /// interval: see --snapshot-interval; sigint: Ctrl-C (then stop);
    /// explicit: the guest calls `wasnap.snapshot` or WASIX's
    /// `proc_snapshot`.
    #[arg(long = "snapshot-on", value_name = "TRIGGER", value_parser = parse_trigger)]
    pub snapshot_on: Vec<SnapshotTrigger>,
    /// Exit cleanly after the first snapshot.
    #[arg(long)]
    pub stop_after_snapshot: bool,
    /// Snapshot at the first snapshot point after each DURATION (500ms, 2s,
    /// 1m); arms the interval trigger.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub snapshot_interval: Option<Duration>,
    /// After Ctrl-C (with --snapshot-on sigint), how long to wait for a
    /// snapshot point before exiting without a snapshot.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub sigint_grace: Duration,
    /// Limit the program's linear memory to SIZE (64K, 256M, 2G; whole
    /// 64 KiB pages). A memory.grow past it returns -1 (the program sees
    /// out-of-memory) and wasnap says so when the run ends [default: what
    /// the module declares, up to 4 GiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,
    /// Limit the bytes the in-memory mounts (/, /tmp, --dir-copy) hold
    /// together to SIZE; past it, writes fail with ENOSPC and growing a
    /// file with EFBIG [default: a quarter of the machine's memory].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_fs_bytes: Option<u64>,
    /// Stop the program after DURATION (500ms, 30s, 5m): it is interrupted
    /// wherever it is and wasnap exits 124 with a message.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// `--on-divergence` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DivergenceChoice {
    /// Stop with a message naming the record (exit 3).
    #[default]
    Stop,
    /// Cut the journal's rest off (a lost timeline) and go on live.
    Live,
}

/// `--restore-memory` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RestoreMemoryChoice {
    /// Copy memories up to 64 MiB, map larger ones.
    #[default]
    Auto,
    /// Map copy-on-write from the journal file.
    Map,
    /// Read into fresh memory.
    Copy,
}

/// Parses a duration: a number with a unit (`ms`, `s`, `m`), e.g. `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a duration such as 500ms, 2s or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: the unit must be ms, s or m")),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("`{text}`: the duration must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a size: bytes, or a number with K, M, G or T (powers of 1024;
/// `KiB`, `MB`… are read the same way).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a size such as 4096, 64K, 256M or 2G"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let shift = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("`{text}`: the unit must be K, M, G or T")),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("`{text}`: the size must be at least one byte"));
    }
    Ok(bytes as u64)
}

/// Parses a snapshot trigger name (the names are declared once, by
/// [`SnapshotTrigger::name`]).
pub fn parse_trigger(name: &str) -> Result<SnapshotTrigger, String> {
    SnapshotTrigger::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = SnapshotTrigger::ALL.iter().map(|t| t.name()).collect();
        format!("`{name}`: the snapshot triggers are {}", names.join(", "))
    })
}

/// Prints what replaying a journal did: host-mount warnings always, the
/// counts with `-v`.
fn report_replay(options: &RunOptions, summary: &ReplaySummary) {
    for warning in &summary.warnings {
        eprintln!("wasnap: {}: {warning}", summary.journal);
    }
    if options.verbose && summary.records > 0 {
        eprintln!(
            "wasnap: replayed {} records of {} ({} runs): {} bytes served from the journal, {} copied, {} host-mount effects left to the host, {} entries skipped",
            summary.records,
            summary.journal,
            summary.runs,
            summary.zero_copy_bytes,
            summary.copied_bytes,
            summary.host_effects_skipped,
            summary.unsupported_skipped
        );
    }
}

/// The guest's context: arguments, environment, mounts, listeners.
fn context(options: &RunOptions, program_name: &str) -> Result<WasiCtx> {
    let mut builder = WasiCtx::builder()
        .arg(options.argv0.as_deref().unwrap_or(program_name))
        .args(options.args.iter().cloned());
    if options.env_inherit {
        for (key, value) in std::env::vars_os() {
            let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else {
                bail!(
                    "--env-inherit: the environment variable {} is not UTF-8, which WASI programs cannot be given; unset it or pass the others with --env",
                    key.to_string_lossy()
                );
            };
            builder = builder.env(key, value);
        }
    }
    for (key, value) in &options.env {
        builder = builder.env(key, value);
    }
    for dir in &options.dirs {
        if !dir.host.is_dir() {
            bail!("--dir {}: not a directory on the host", dir.host.display());
        }
        builder = builder.host_dir(&dir.host, &dir.guest, dir.readonly);
    }
    for dir in &options.dir_copies {
        if !dir.host.is_dir() {
            bail!(
                "--dir-copy {}: not a directory on the host",
                dir.host.display()
            );
        }
        builder = builder.seeded_dir(&dir.host, &dir.guest);
    }
    for addr in &options.listen {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("--listen {addr}: cannot listen"))?;
        if options.verbose {
            if let Ok(local) = listener.local_addr() {
                eprintln!("wasnap: listening on {local}");
            }
        }
        builder = builder.listener(listener);
    }
    if let Some(bytes) = options.max_fs_bytes {
        builder = builder.max_fs_bytes(bytes);
    }
    Ok(builder.build()?)
}

/// What `options` ask of the process.
fn process_options(options: &RunOptions) -> ProcessOptions {
    ProcessOptions {
        journal: options.journal.clone().map(JournalTarget::File),
        bases: options
            .journal_readonly
            .iter()
            .cloned()
            .map(BaseJournal::File)
            .collect(),
        replay_stdio: options.replay_stdio,
        force: options.force,
        on_divergence: match options.on_divergence {
            DivergenceChoice::Stop => OnDivergence::Stop,
            DivergenceChoice::Live => OnDivergence::Live,
        },
        policy: SnapshotPolicy {
            triggers: options.snapshot_on.clone(),
            interval: options.snapshot_interval,
            stop_after: options.stop_after_snapshot,
            sigint_grace: options.sigint_grace,
        },
        limits: Limits {
            max_memory: options.max_memory,
            timeout: options.timeout,
        },
        memory_restore: match options.restore_memory {
            RestoreMemoryChoice::Auto => MemoryRestore::Auto,
            RestoreMemoryChoice::Map => MemoryRestore::Map,
            RestoreMemoryChoice::Copy => MemoryRestore::Copy,
        },
    }
}

/// Runs the module; returns the exit code for the process.
pub fn run(options: RunOptions) -> Result<i32> {
    let module_path = &options.module;
    let cache = if options.no_cache {
        ModuleCache::disabled()
    } else {
        match options.cache_dir.clone().or_else(ModuleCache::default_dir) {
            Some(dir) => ModuleCache::new(dir),
            None => ModuleCache::disabled(),
        }
    };
    let ctx = context(&options, Program::name_of(module_path))?;
    let process_options = process_options(&options);
    let (program, process) = Process::load_and_start(module_path, &cache, ctx, process_options)?;
    if options.verbose {
        let load = program.load_report();
        let how = match load.outcome {
            CacheOutcome::Hit => "loaded from the cache",
            CacheOutcome::HitUnchanged => "loaded from the cache (file unchanged, not read again)",
            CacheOutcome::Compiled => "compiled and cached",
            CacheOutcome::Uncached => "compiled (not cached)",
        };
        eprintln!(
            "wasnap: {} {how} in {:.1} ms",
            module_path.display(),
            load.elapsed.as_secs_f64() * 1e3
        );
    }
    for summary in &process.report().replays {
        report_replay(&options, summary);
    }
    match &process.report().start {
        StartPoint::Afresh { exit_code } => eprintln!(
            "wasnap: the program's last run exited ({exit_code}); starting it afresh over the files its journal restores"
        ),
        StartPoint::FromStart { .. } if options.verbose => eprintln!(
            "wasnap: resuming the unfinished run from its start: re-executing {} journaled records",
            process.report().tail_records
        ),
        StartPoint::FromSnapshot { .. } if options.verbose => eprintln!(
            "wasnap: re-executing {} journaled records after the snapshot",
            process.report().tail_records
        ),
        StartPoint::Fresh | StartPoint::FromStart { .. } | StartPoint::FromSnapshot { .. } => {}
    }
    if let (Some(resumed), true) = (process.report().resumed, options.verbose) {
        eprintln!(
            "wasnap: resuming from the snapshot at offset {} ({} bytes of memory: {} mapped from the journal, {} copied)",
            resumed.marker_offset,
            resumed.memory_bytes,
            resumed.figures.mapped_bytes,
            resumed.figures.copied_bytes
        );
    }
    if options.verbose {
        let t = process.report().timings;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "wasnap: start: journal open {:.1} ms, journal read and filesystem replay {:.1} ms{}, instantiation {:.1} ms, memory restore {:.1} ms",
            ms(t.open),
            ms(t.replay),
            if t.beside_load { " (while the module loaded)" } else { "" },
            ms(t.instantiate),
            ms(t.restore)
        );
    }
    let report = process.run()?;
    if options.verbose {
        if let Some(rewind) = report.rewind {
            eprintln!(
                "wasnap: rewind into the snapshot point: {:.1} ms",
                rewind.as_secs_f64() * 1e3
            );
        }
        for (i, snapshot) in report.snapshots.iter().enumerate() {
            let on_disk = snapshot.on_disk_after.map_or(String::new(), |d| {
                format!(", on disk after {:.1} ms", d.as_secs_f64() * 1e3)
            });
            eprintln!(
                "wasnap: snapshot {}: paused {:.1} ms{on_disk}, {} memory regions, {} journal bytes ({}; {})",
                i + 1,
                snapshot.pause.as_secs_f64() * 1e3,
                snapshot.regions,
                snapshot.journal_bytes,
                snapshot.tracking,
                snapshot.written
            );
        }
        if let Some(why) = &report.tracking_refused {
            eprintln!("wasnap: the kernel does not track written pages here ({why}); snapshots compare memory instead");
        }
    }
    let status = report.status;
    if let (Some(asked), Some(limit)) = (report.memory_refused, options.max_memory) {
        if options.verbose || status.code() != 0 {
            eprintln!(
                "wasnap: {} asked for {asked} bytes of memory, over --max-memory ({} bytes): memory.grow returned -1",
                module_path.display(),
                limit / 65536 * 65536
            );
        }
    }
    match &status {
        ExitStatus::Exited(code) if *code >= wasnap_wasi::instance::INVALID_EXIT_STATUS => {
            eprintln!(
                "wasnap: {} exited with status {code}, outside WASI's 0..126: exiting 1",
                module_path.display()
            )
        }
        ExitStatus::Exited(_) => {}
        ExitStatus::Snapshotted => eprintln!(
            "wasnap: snapshot written to {}; stopped (run the same command to resume)",
            options
                .journal
                .as_deref()
                .unwrap_or(Path::new("the journal"))
                .display()
        ),
        ExitStatus::Diverged(divergence) => eprintln!(
            "wasnap: {}: {divergence}; the journal is left as it was",
            module_path.display()
        ),
        ExitStatus::TimedOut(after) => eprintln!(
            "wasnap: {} timed out after {:.1} s (--timeout)",
            module_path.display(),
            after.as_secs_f64()
        ),
        ExitStatus::Signaled(sig) => eprintln!(
            "wasnap: {} was ended by signal {sig}",
            module_path.display()
        ),
        ExitStatus::Trapped { message, backtrace } => {
            eprintln!("wasnap: {} trapped: {message}", module_path.display());
            if !backtrace.is_empty() {
                eprintln!("wasm backtrace:");
                for frame in backtrace {
                    eprintln!("{frame}");
                }
            }
        }
    }
    // The process exits next: its compiled code (tens of megabytes for a
    // large module) goes with it at once, quicker than unmapped piece by
    // piece. Everything that writes was dropped with the run.
    std::mem::forget(program);
    Ok(status.code())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dir_specs() {
        assert_eq!(
            parse_dir("data").unwrap(),
            DirSpec {
                host: "data".into(),
                guest: "data".into(),
                readonly: false
            }
        );
        assert_eq!(
            parse_dir("/srv/x::/data:ro").unwrap(),
            DirSpec {
                host: "/srv/x".into(),
                guest: "/data".into(),
                readonly: true
            }
        );
        assert_eq!(
            parse_dir("a::b:rw").unwrap(),
            DirSpec {
                host: "a".into(),
                guest: "b".into(),
                readonly: false
            }
        );
        assert!(parse_dir("::x").is_err());
        assert!(parse_dir("x::").is_err());
    }

    #[test]
    fn env_specs() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("noequals").is_err());
    }
}
