//! `wasnap run`: run a WASI command module.

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wasnap_journal::{
    Durability, Journal, JournalOptions, JournalReader, Recovery, SnapshotTrigger,
};
use wasnap_wasi::replay::{replay, ReplayOptions, ReplaySummary};
use wasnap_wasi::{CacheOutcome, ExitStatus, ModuleCache, WasiCtx, WasiInstance};

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
    /// Journal every effect into PATH (created if missing). If PATH
    /// already holds records, they are replayed first: journaled mounts
    /// and descriptors come back as the last run left them.
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// Replay PATH without writing to it, before --journal's records (one
    /// base journal can serve many runs). Repeatable.
    #[arg(long = "journal-readonly", value_name = "PATH")]
    pub journal_readonly: Vec<PathBuf>,
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

/// Parses a snapshot trigger name.
pub fn parse_trigger(name: &str) -> Result<SnapshotTrigger, String> {
    match name {
        "first-stdin" => Ok(SnapshotTrigger::FirstStdin),
        "first-environ" => Ok(SnapshotTrigger::FirstEnviron),
        "idle" => Ok(SnapshotTrigger::Idle),
        "interval" => Ok(SnapshotTrigger::Interval),
        "sigint" => Ok(SnapshotTrigger::Sigint),
        "explicit" => Ok(SnapshotTrigger::Explicit),
        other => Err(format!(
            "`{other}`: the snapshot triggers are first-stdin, first-environ, idle, interval, sigint, explicit"
        )),
    }
}

fn read_module(path: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read module {}", path.display()))?;
    Ok(bytes)
}

/// After Ctrl-C, gives the program `grace` to reach a snapshot point;
/// otherwise says so, flushes the journal and exits (130, as for SIGINT).
fn sigint_watchdog(
    flag: &AtomicBool,
    done: &AtomicBool,
    grace: Duration,
    writer: Option<wasnap_journal::JournalWriter>,
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

fn report_replay(options: &RunOptions, path: &Path, summary: &ReplaySummary) {
    for warning in &summary.warnings {
        eprintln!("wasnap: {}: {warning}", path.display());
    }
    if options.verbose {
        eprintln!(
            "wasnap: replayed {} records of {} ({} runs): {} bytes served from the journal, {} copied, {} host-mount effects left to the host, {} entries skipped",
            summary.records,
            path.display(),
            summary.runs,
            summary.zero_copy_bytes,
            summary.copied_bytes,
            summary.host_effects_skipped,
            summary.unsupported_skipped
        );
    }
}

/// Runs the module; returns the exit code for the process.
pub fn run(options: RunOptions) -> Result<i32> {
    let module_path = &options.module;
    let wasm = read_module(module_path)?;
    let engine = wasmer::Engine::default();
    let cache = if options.no_cache {
        ModuleCache::disabled()
    } else {
        match options.cache_dir.clone().or_else(ModuleCache::default_dir) {
            Some(dir) => ModuleCache::new(dir),
            None => ModuleCache::disabled(),
        }
    };
    let started = std::time::Instant::now();
    // Every defined mutable global is exported at load time, so that a
    // snapshot can save `__stack_pointer` and friends without special link
    // flags. The journal identifies the module by its original bytes.
    let prepared = if wasm.starts_with(b"\0asm") {
        wasnap_snapshot::globals::export_mutable_globals(&wasm)
            .with_context(|| format!("cannot load {}", module_path.display()))?
            .wasm
    } else {
        wasm.clone()
    };
    let (module, outcome) = cache
        .load_or_compile(&engine, &prepared)
        .with_context(|| format!("cannot load {}", module_path.display()))?;
    if options.verbose {
        let how = match outcome {
            CacheOutcome::Hit => "loaded from the cache",
            CacheOutcome::Compiled => "compiled and cached",
            CacheOutcome::Uncached => "compiled (not cached)",
        };
        eprintln!(
            "wasnap: {} {how} in {:.1} ms",
            module_path.display(),
            started.elapsed().as_secs_f64() * 1e3
        );
    }

    let program_name = module_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("main.wasm")
        .to_owned();
    let mut builder = WasiCtx::builder()
        .arg(program_name)
        .args(options.args.iter().cloned());
    if options.env_inherit {
        for (key, value) in std::env::vars() {
            builder = builder.env(&key, &value);
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
    let mut ctx = builder.build()?;
    let hash = wasnap_wasi::record::module_hash(&wasm);
    let replay_options = ReplayOptions {
        replay_stdio: options.replay_stdio,
        force: options.force,
        module_hash: Some(hash),
        resume: false,
    };
    let mut triggers = options.snapshot_on.clone();
    if options.snapshot_interval.is_some() && !triggers.contains(&SnapshotTrigger::Interval) {
        triggers.push(SnapshotTrigger::Interval);
    }
    if triggers.contains(&SnapshotTrigger::Interval) && options.snapshot_interval.is_none() {
        bail!("--snapshot-on interval needs --snapshot-interval DURATION");
    }
    if !triggers.is_empty() && options.journal.is_none() {
        bail!("--snapshot-on needs --journal: a snapshot is written into the journal");
    }
    let mut resume_point = None;
    for path in &options.journal_readonly {
        let mut reader = JournalReader::open(path)
            .with_context(|| format!("cannot open journal {}", path.display()))?
            .with_recovery(Recovery::StopAtTornTail);
        let summary = replay(&mut ctx, &mut reader, &replay_options)?;
        report_replay(&options, path, &summary);
    }
    if let Some(path) = &options.journal {
        let journal = Journal::open(
            path,
            JournalOptions {
                durability: Durability::None,
            },
        )
        .with_context(|| format!("cannot open journal {}", path.display()))?;
        let (writer, mut reader) = journal.split();
        let resume_options = ReplayOptions {
            resume: true,
            ..replay_options.clone()
        };
        let mut summary = replay(&mut ctx, &mut reader, &resume_options)?;
        if summary.records > 0 {
            report_replay(&options, path, &summary);
        }
        resume_point = summary.resume.take();
        let resumed_from = resume_point.as_ref().map(|p| p.marker_offset);
        ctx.start_recording_after(writer, hash, resumed_from)
            .map_err(|e| {
                anyhow::anyhow!("cannot start journaling into {}: {e:?}", path.display())
            })?;
    }
    let store = wasmer::Store::new(engine);
    let mut instance = WasiInstance::new(store, &module, ctx)
        .with_context(|| format!("cannot run {}", module_path.display()))?;
    if let Some(point) = resume_point {
        if options.verbose {
            eprintln!(
                "wasnap: resuming from the snapshot at offset {} ({} bytes of memory)",
                point.marker_offset,
                point.memory.len()
            );
        }
        instance
            .restore(point.memory, &point.thread)
            .with_context(|| format!("cannot resume {} from its journal", module_path.display()))?;
    }
    let mut sigint_watch = None;
    if !triggers.is_empty() {
        if !instance.snapshottable() {
            bail!(
                "{} cannot be snapshotted: it lacks Binaryen's asyncify exports; prepare it with `wasnap prepare {} -o PREPARED.wasm` and run PREPARED.wasm",
                module_path.display(),
                module_path.display()
            );
        }
        let writer = instance.ctx().recorder.as_ref().map(|r| r.writer().clone());
        let control = instance.snapshot_control();
        control.first_stdin = triggers.contains(&SnapshotTrigger::FirstStdin);
        control.explicit = triggers.contains(&SnapshotTrigger::Explicit);
        control.first_environ = triggers.contains(&SnapshotTrigger::FirstEnviron);
        control.idle = triggers.contains(&SnapshotTrigger::Idle);
        control.interval = options.snapshot_interval;
        control.interval_from = Some(std::time::Instant::now());
        control.stop_after = options.stop_after_snapshot;
        if triggers.contains(&SnapshotTrigger::Sigint) {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&flag))
                .context("cannot install the Ctrl-C handler")?;
            control.sigint = Some(Arc::clone(&flag));
            let done = Arc::new(AtomicBool::new(false));
            let grace = options.sigint_grace;
            let watched = Arc::clone(&done);
            std::thread::spawn(move || sigint_watchdog(&flag, &watched, grace, writer));
            sigint_watch = Some(done);
        }
    }
    let status = instance.run()?;
    if let Some(done) = &sigint_watch {
        done.store(true, Ordering::SeqCst);
    }
    match &status {
        ExitStatus::Exited(_) => {}
        ExitStatus::Snapshotted => eprintln!(
            "wasnap: snapshot written to {}; stopped (run the same command to resume)",
            options
                .journal
                .as_deref()
                .unwrap_or(Path::new("the journal"))
                .display()
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
