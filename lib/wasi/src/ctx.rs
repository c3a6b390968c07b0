//! The host state of one WASI process, built by [`WasiCtxBuilder`].

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::abi::rights;
use crate::clock::{Clock, OsRandom, RandomSource, SystemClock};
use crate::effects::{EffectRecorder, InputRequest};
use crate::errno::SysResult;
use crate::fd::{Descriptor, FdTable, Handle};
use crate::fs::mem::{default_fs_limit, FsBudget, MemFs};
use crate::fs::{DirRef, Mount};
use crate::stdio::{HostStderr, HostStdin, HostStdout, InputStream, OutputStream};
use wasnap_journal::JournalEntry;

/// Everything a running guest's syscalls act on. Built by
/// [`WasiCtxBuilder`]; the syscalls are its methods.
pub struct WasiCtx {
    pub(crate) args: Vec<String>,
    /// `KEY=VALUE` strings, in order.
    pub(crate) env: Vec<String>,
    pub(crate) fds: FdTable,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) random: Box<dyn RandomSource>,
    pub(crate) stdin: Box<dyn InputStream>,
    pub(crate) stdout: Box<dyn OutputStream>,
    pub(crate) stderr: Box<dyn OutputStream>,
    /// Where effects are journaled (`None`: journaling is off, and costs a
    /// branch per state-changing call).
    pub(crate) recorder: Option<Box<dyn EffectRecorder>>,
    /// The time the current effect happens at (see [`WasiCtx::now`]).
    effect_time: u64,
    /// During replay: the recorded effect time, used instead of the clock.
    pub(crate) time_override: Option<u64>,
    /// Added to live readings of the monotonic and CPU-time clocks (by
    /// clock id), so that a resumed program never sees them go back.
    clock_offsets: [u64; 4],
    /// Whether the host mounts were last told that history is re-executed
    /// (their effects are then not performed again).
    host_effects_suppressed: bool,
}

impl WasiCtx {
    /// A builder with the defaults (see [`WasiCtxBuilder`]).
    pub fn builder() -> WasiCtxBuilder {
        WasiCtxBuilder::default()
    }

    /// The program's arguments (the first is its name).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The program's environment, as `KEY=VALUE` strings in order.
    pub fn env(&self) -> &[String] {
        &self.env
    }

    /// The descriptor table.
    pub fn fds(&self) -> &FdTable {
        &self.fds
    }

    /// The mounts, in the order of their preopened descriptors.
    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// The mounts, to change them from outside a syscall (tests, tools).
    pub fn mounts_mut(&mut self) -> &mut [Mount] {
        &mut self.mounts
    }

    /// Realtime from the context's clock, in nanoseconds.
    pub fn realtime(&mut self) -> u64 {
        self.clock.realtime()
    }

    /// Sends every later effect to `recorder` (see [`crate::effects`]).
    pub fn set_recorder(&mut self, recorder: Box<dyn EffectRecorder>) {
        self.recorder = Some(recorder);
    }

    /// Whether standard input has data (or end of file) ready now; `true`
    /// when that cannot be known.
    pub fn stdin_ready(&mut self) -> bool {
        self.stdin
            .wait_readable(Some(std::time::Duration::ZERO))
            .unwrap_or(true)
    }

    /// Flushes the standard output and error streams.
    pub fn flush_stdio(&mut self) {
        let _ = self.stdout.flush();
        let _ = self.stderr.flush();
    }

    /// The effect time: real time in whole milliseconds, for file times. It
    /// is what the journal records, so replay reproduces file times exactly.
    pub fn now(&mut self) -> u64 {
        let replayed = match (&mut self.recorder, self.time_override) {
            (_, Some(t)) => Some(t),
            (Some(recorder), None) => recorder.replay_time(),
            (None, None) => None,
        };
        let t = match replayed {
            Some(t) => t,
            None => self.clock.realtime() / 1_000_000 * 1_000_000,
        };
        self.effect_time = t;
        t
    }

    /// Journals an effect that just succeeded (no-op when not recording).
    pub(crate) fn record(&mut self, entry: JournalEntry<'_>) -> SysResult {
        match &mut self.recorder {
            Some(recorder) => Ok(recorder.record(self.effect_time, entry)?),
            None => Ok(()),
        }
    }

    /// Output commit before something leaves the process (no-op when not
    /// recording).
    pub(crate) fn commit_output(&mut self) -> SysResult {
        match &mut self.recorder {
            Some(recorder) => Ok(recorder.commit_output()?),
            None => Ok(()),
        }
    }

    /// Whether effects are being journaled.
    pub fn recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Whether the program is re-executing journaled history (see
    /// [`crate::effects`]). Called at every syscall: it also tells the host
    /// mounts whether to perform their effects.
    pub fn replaying(&mut self) -> bool {
        let replaying = match &mut self.recorder {
            Some(recorder) => recorder.replaying(),
            None => false,
        };
        if replaying != self.host_effects_suppressed {
            self.host_effects_suppressed = replaying;
            for mount in &mut self.mounts {
                mount.suppress_host_effects = replaying;
            }
        }
        replaying
    }

    /// An input the program receives: while replaying, the journaled one;
    /// otherwise `live` produces it and it is recorded.
    pub(crate) fn input(
        &mut self,
        request: InputRequest,
        live: impl FnOnce(&mut Self) -> SysResult<JournalEntry<'static>>,
    ) -> SysResult<JournalEntry<'static>> {
        if self.replaying() {
            if let Some(recorder) = &mut self.recorder {
                if let Some(entry) = recorder.replay_input(request)? {
                    return Ok(entry);
                }
            }
        }
        let entry = live(self)?;
        if let Some(recorder) = &mut self.recorder {
            recorder.record_untimed(entry.reborrow())?;
        }
        Ok(entry)
    }

    /// Bytes read from `fd` (at most `max`) as an input: while replaying,
    /// the journaled `InputReadV1`; otherwise what `read` returns, recorded.
    pub(crate) fn input_read(
        &mut self,
        fd: u32,
        max: usize,
        read: impl FnOnce(&mut Self) -> SysResult<Vec<u8>>,
    ) -> SysResult<Vec<u8>> {
        let request = InputRequest::Read {
            fd,
            max: max as u64,
        };
        let entry = self.input(request, |ctx| {
            Ok(JournalEntry::InputReadV1(wasnap_journal::InputReadV1 {
                fd,
                data: read(ctx)?.into(),
            }))
        })?;
        match entry {
            JournalEntry::InputReadV1(r) => Ok(r.data.into_owned()),
            _ => Err(crate::errno::Errno::Io.into()),
        }
    }

    /// While replaying: checks an effect that leaves the process (not
    /// performed again); returns the journaled record, or `None` when the
    /// program diverged and went on live (perform the effect then).
    pub(crate) fn replay_external(
        &mut self,
        made: JournalEntry<'_>,
    ) -> SysResult<Option<JournalEntry<'static>>> {
        match &mut self.recorder {
            Some(recorder) => Ok(recorder.replay_external(made)?),
            None => Err(crate::errno::Errno::Notsup.into()),
        }
    }

    /// Reads clock `clock_id` now (for `clock_time_get`): monotonic and
    /// CPU-time readings carry the offset [`WasiCtx::raise_clock_floor`] set.
    pub(crate) fn read_clock(&mut self, clock_id: u32) -> u64 {
        use crate::abi::clockid;
        let raw = match clock_id {
            clockid::REALTIME => return self.clock.realtime(),
            clockid::MONOTONIC => self.clock.monotonic(),
            _ => self.clock.process_cputime(),
        };
        let offset = self
            .clock_offsets
            .get(clock_id as usize)
            .copied()
            .unwrap_or(0);
        raw.saturating_add(offset)
    }

    /// Makes every later reading of clock `clock_id` (monotonic or CPU time)
    /// greater than `at_least_ns`: a resumed process starts its clocks anew,
    /// and the program must not see them go back.
    pub fn raise_clock_floor(&mut self, clock_id: u32, at_least_ns: u64) {
        use crate::abi::clockid;
        if clock_id == clockid::REALTIME || clock_id as usize >= self.clock_offsets.len() {
            return;
        }
        let now = self.read_clock(clock_id);
        if now <= at_least_ns {
            self.clock_offsets[clock_id as usize] += at_least_ns - now + 1;
        }
    }

    /// Replaces the arguments and environment (a resumed run sees the ones
    /// its journal recorded, not the new command line's).
    pub fn set_environment(&mut self, args: Vec<String>, env: Vec<String>) {
        self.args = args;
        self.env = env;
    }
}

/// Why a context could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A host directory could not be opened.
    #[error("cannot mount host directory {path}: {source}")]
    HostDir {
        /// The file's path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A host directory could not be copied into memory.
    #[error("cannot copy {path} into memory: {source}")]
    Seed {
        /// The file's path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A mount's guest path is empty or holds a NUL.
    #[error("invalid guest path {0:?}: it must be non-empty")]
    GuestPath(String),
    /// An environment variable's name is empty or holds `=`.
    #[error("invalid environment variable {0:?}: the name must be non-empty and contain no '='")]
    EnvName(String),
    /// The preopens do not fit in the descriptor table.
    #[error("too many preopened descriptors: the descriptor table is full")]
    DescriptorTableFull,
}

enum MountSpec {
    Memory {
        guest: String,
    },
    Host {
        host: PathBuf,
        guest: String,
        readonly: bool,
    },
    Seeded {
        host: PathBuf,
        guest: String,
    },
}

/// Builds a [`WasiCtx`]. Defaults: no arguments, empty environment, the
/// host's standard streams and clocks, OS randomness, and a journaled
/// in-memory root `/` holding an empty `/tmp`.
pub struct WasiCtxBuilder {
    args: Vec<String>,
    env: Vec<String>,
    mounts: Vec<MountSpec>,
    memory_root: bool,
    listeners: Vec<TcpListener>,
    clock: Option<Box<dyn Clock>>,
    random: Option<Box<dyn RandomSource>>,
    stdin: Option<Box<dyn InputStream>>,
    stdout: Option<Box<dyn OutputStream>>,
    stderr: Option<Box<dyn OutputStream>>,
    bad_env: Option<String>,
    max_fs_bytes: Option<u64>,
}

impl Default for WasiCtxBuilder {
    fn default() -> Self {
        WasiCtxBuilder {
            args: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            memory_root: true,
            listeners: Vec::new(),
            clock: None,
            random: None,
            stdin: None,
            stdout: None,
            stderr: None,
            bad_env: None,
            max_fs_bytes: None,
        }
    }
}

impl WasiCtxBuilder {
    /// Appends one argument (the first is the program name).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (a later value replaces an earlier one).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            self.bad_env.get_or_insert_with(|| key.to_owned());
            return self;
        }
        let prefix = format!("{key}=");
        self.env.retain(|kv| !kv.starts_with(&prefix));
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Whether to mount the journaled in-memory root at `/` (default: yes).
    pub fn memory_root(mut self, on: bool) -> Self {
        self.memory_root = on;
        self
    }

    /// Mounts an empty in-memory (journaled) directory at `guest`.
    pub fn memory_dir(mut self, guest: impl Into<String>) -> Self {
        self.mounts.push(MountSpec::Memory {
            guest: guest.into(),
        });
        self
    }

    /// Mounts the host directory `host` at `guest`.
    pub fn host_dir(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
        readonly: bool,
    ) -> Self {
        self.mounts.push(MountSpec::Host {
            host: host.into(),
            guest: guest.into(),
            readonly,
        });
        self
    }

    /// Mounts an in-memory copy of the host directory `host` at `guest`: the
    /// guest may change it, the host directory is never written.
    pub fn seeded_dir(mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        self.mounts.push(MountSpec::Seeded {
            host: host.into(),
            guest: guest.into(),
        });
        self
    }

    /// Preopens a listening socket (for `sock_accept`).
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// The clocks the guest reads (default: the host's).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Box::new(clock));
        self
    }

    /// Where `random_get` bytes come from (default: the OS).
    pub fn random(mut self, random: impl RandomSource + 'static) -> Self {
        self.random = Some(Box::new(random));
        self
    }

    /// The guest's standard input (default: the host's).
    pub fn stdin(mut self, stdin: impl InputStream + 'static) -> Self {
        self.stdin = Some(Box::new(stdin));
        self
    }

    /// The guest's standard output (default: the host's).
    pub fn stdout(mut self, stdout: impl OutputStream + 'static) -> Self {
        self.stdout = Some(Box::new(stdout));
        self
    }

    /// The guest's standard error (default: the host's).
    pub fn stderr(mut self, stderr: impl OutputStream + 'static) -> Self {
        self.stderr = Some(Box::new(stderr));
        self
    }

    /// The bytes the in-memory mounts may hold together (default:
    /// [`default_fs_limit`], a quarter of the machine's memory). Past it,
    /// writes fail with `NOSPC` and growing a file with `FBIG`.
    pub fn max_fs_bytes(mut self, bytes: u64) -> Self {
        self.max_fs_bytes = Some(bytes);
        self
    }

    /// Opens the mounts and builds the context.
    pub fn build(self) -> Result<WasiCtx, BuildError> {
        if let Some(bad) = self.bad_env {
            return Err(BuildError::EnvName(bad));
        }
        let mut clock = self
            .clock
            .unwrap_or_else(|| Box::new(SystemClock::default()));
        let now = clock.realtime();
        let mut fds = FdTable::default();
        let stdio = [
            (Handle::Stdin, rights::STDIO & !rights::FD_WRITE),
            (Handle::Stdout, rights::STDIO & !rights::FD_READ),
            (Handle::Stderr, rights::STDIO & !rights::FD_READ),
        ];
        for (handle, r) in stdio {
            fds.insert(Descriptor::new(handle, r, 0, 0))
                .map_err(|_| BuildError::DescriptorTableFull)?;
        }
        let budget = FsBudget::new(self.max_fs_bytes.unwrap_or_else(default_fs_limit));
        let mut mounts = Vec::new();
        let mut specs = Vec::new();
        if self.memory_root {
            specs.push(MountSpec::Memory { guest: "/".into() });
        }
        specs.extend(self.mounts);
        for (index, spec) in specs.into_iter().enumerate() {
            let dev = 0x7761_736e_0000 + index as u64;
            let mount = match spec {
                MountSpec::Memory { guest } => {
                    check_guest(&guest)?;
                    let mut mount = Mount::memory(guest.clone(), dev, now);
                    if let Some(m) = mount.mem() {
                        // An empty tree: charging it cannot fail.
                        let _ = m.set_budget(budget.clone());
                        if guest == "/" {
                            let _ = m.mkdir(crate::fs::mem::ROOT, "tmp", now);
                        }
                    }
                    mount
                }
                MountSpec::Host {
                    host,
                    guest,
                    readonly,
                } => {
                    check_guest(&guest)?;
                    Mount::host(guest, host.clone(), readonly)
                        .map_err(|source| BuildError::HostDir { path: host, source })?
                }
                MountSpec::Seeded { host, guest } => {
                    check_guest(&guest)?;
                    let mut mount = Mount::memory(guest, dev, now);
                    if let Some(m) = mount.mem() {
                        let _ = m.set_budget(budget.clone());
                        seed(m, crate::fs::mem::ROOT, &host, now).map_err(|source| {
                            BuildError::Seed {
                                path: host.clone(),
                                source,
                            }
                        })?;
                    }
                    mount
                }
            };
            let guest_path = mount.guest_path.clone();
            let root = mount.root();
            let index = mounts.len();
            mounts.push(mount);
            if let Some(m) = mounts[index].mem() {
                if let DirRef::Mem(ino) = root {
                    m.retain(ino);
                }
            }
            fds.insert(Descriptor::new(
                Handle::Dir {
                    mount: index,
                    dir: root,
                    preopen: true,
                    guest_path,
                },
                rights::DIRECTORY,
                rights::ALL,
                0,
            ))
            .map_err(|_| BuildError::DescriptorTableFull)?;
        }
        for listener in self.listeners {
            fds.insert(Descriptor::new(
                Handle::Listener(listener),
                rights::LISTENER,
                rights::SOCKET,
                0,
            ))
            .map_err(|_| BuildError::DescriptorTableFull)?;
        }
        Ok(WasiCtx {
            args: self.args,
            env: self.env,
            fds,
            mounts,
            clock,
            random: self.random.unwrap_or_else(|| Box::new(OsRandom)),
            stdin: self.stdin.unwrap_or_else(|| Box::new(HostStdin)),
            stdout: self.stdout.unwrap_or_else(|| Box::new(HostStdout)),
            stderr: self.stderr.unwrap_or_else(|| Box::new(HostStderr)),
            recorder: None,
            effect_time: now,
            time_override: None,
            host_effects_suppressed: false,
            clock_offsets: [0; 4],
        })
    }
}

fn check_guest(guest: &str) -> Result<(), BuildError> {
    if guest.is_empty() || guest.contains('\0') {
        return Err(BuildError::GuestPath(guest.to_owned()));
    }
    Ok(())
}

/// The access and modification times a seeded copy keeps.
struct SeededTimes {
    atim: u64,
    mtim: u64,
}

fn seeded_times(meta: &std::fs::Metadata) -> SeededTimes {
    use std::os::unix::fs::MetadataExt;
    let nanos = |secs: i64, nsecs: i64| {
        (secs.max(0) as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(nsecs.max(0) as u64)
    };
    SeededTimes {
        atim: nanos(meta.atime(), meta.atime_nsec()),
        mtim: nanos(meta.mtime(), meta.mtime_nsec()),
    }
}

/// Copies the host tree at `host` into the memory directory `dir`.
fn seed(fs: &mut MemFs, dir: u64, host: &Path, now: u64) -> std::io::Result<()> {
    let to_io = |e: crate::errno::Errno| std::io::Error::other(e.to_string());
    for entry in std::fs::read_dir(host)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let stat = seeded_times(&meta);
        if meta.is_dir() {
            let ino = fs.mkdir(dir, name, now).map_err(to_io)?;
            seed(fs, ino, &path, now)?;
            fs.set_times(ino, Some(stat.atim), Some(stat.mtim), now)
                .map_err(to_io)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            if let Some(target) = target.to_str() {
                fs.symlink(target, dir, name, now).map_err(to_io)?;
            }
        } else if meta.is_file() {
            let ino = fs.create_file(dir, name, now).map_err(to_io)?;
            let data = std::fs::read(&path)?;
            fs.write_at(ino, 0, &data, now).map_err(to_io)?;
            fs.set_times(ino, Some(stat.atim), Some(stat.mtim), now)
                .map_err(to_io)?;
        }
    }
    Ok(())
}
