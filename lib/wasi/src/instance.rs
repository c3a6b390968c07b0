//! Loading a module against the host, and running its `_start`.

use wasmer::{ExternType, FunctionEnv, Instance, Module, Store};

use crate::ctx::WasiCtx;
use crate::errno::Trap;
use crate::imports::{imports, WasiEnv, FUNCTIONS, MODULE};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// `_start` returned (code 0) or the program called `proc_exit`.
    Exited(u32),
    /// The program raised a signal that ends it (`proc_raise`).
    Signaled(u8),
    /// The program trapped: the message and the wasm backtrace.
    Trapped {
        message: String,
        backtrace: Vec<String>,
    },
    /// A snapshot was taken and the run stopped there (`--stop-after-snapshot`).
    Snapshotted,
}

impl ExitStatus {
    /// The process exit code a shell would see.
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(code) => *code as i32,
            ExitStatus::Signaled(sig) => 128 + i32::from(*sig),
            // As a native program that aborts (128 + SIGABRT).
            ExitStatus::Trapped { .. } => 134,
            ExitStatus::Snapshotted => 0,
        }
    }
}

/// Why a module cannot be instantiated or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("the module imports what wasnap does not provide: {}", .0.join(", "))]
    UnknownImports(Vec<String>),
    #[error("the module is not a WASI command: it exports no `_start` function")]
    NoStart,
    #[error("the module exports no memory named `memory`")]
    NoMemory,
    #[error("instantiation failed: {0}")]
    Instantiate(String),
}

/// A module instantiated against a [`WasiCtx`].
pub struct WasiInstance {
    pub store: Store,
    pub env: FunctionEnv<WasiEnv>,
    pub instance: Instance,
}

/// Names (`module.name`) of the module's imports this host cannot satisfy.
pub fn unknown_imports(module: &Module) -> Vec<String> {
    module
        .imports()
        .filter(|import| {
            let provided = (import.module() == MODULE && FUNCTIONS.contains(&import.name()))
                || crate::imports::EXPLICIT_SNAPSHOT.contains(&(import.module(), import.name()));
            !(provided && matches!(import.ty(), ExternType::Function(_)))
        })
        .map(|import| format!("{}.{}", import.module(), import.name()))
        .collect()
}

impl WasiInstance {
    /// Checks the module's imports and exports, then instantiates it.
    pub fn new(mut store: Store, module: &Module, ctx: WasiCtx) -> Result<WasiInstance, LoadError> {
        let unknown = unknown_imports(module);
        if !unknown.is_empty() {
            return Err(LoadError::UnknownImports(unknown));
        }
        let has_start = module
            .exports()
            .any(|e| e.name() == "_start" && matches!(e.ty(), ExternType::Function(_)));
        if !has_start {
            return Err(LoadError::NoStart);
        }
        let env = FunctionEnv::new(
            &mut store,
            WasiEnv {
                ctx,
                memory: None,
                snapshot: Default::default(),
            },
        );
        let import_object = imports(&mut store, &env);
        let instance = Instance::new(&mut store, module, &import_object)
            .map_err(|e| LoadError::Instantiate(e.to_string()))?;
        let memory = instance
            .exports
            .get_memory("memory")
            .map_err(|_| LoadError::NoMemory)?
            .clone();
        env.as_mut(&mut store).memory = Some(memory);
        let mut control = crate::snapshot::SnapshotControl::default();
        control.attach(&mut store, &instance);
        env.as_mut(&mut store).snapshot = control;
        Ok(WasiInstance {
            store,
            env,
            instance,
        })
    }

    /// Whether the module was prepared with asyncify (can be snapshotted).
    pub fn snapshottable(&self) -> bool {
        self.env.as_ref(&self.store).snapshot.asyncify.is_some()
    }

    /// Arms snapshot triggers.
    pub fn snapshot_control(&mut self) -> &mut crate::snapshot::SnapshotControl {
        &mut self.env.as_mut(&mut self.store).snapshot
    }

    /// Writes the snapshot whose unwind just finished; returns whether the
    /// program stops now (`--stop-after-snapshot`), else starts the rewind.
    fn take_snapshot(&mut self) -> Result<bool, crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        let started = std::time::Instant::now();
        let mut control = std::mem::take(&mut self.env.as_mut(&mut self.store).snapshot);
        let now = self.ctx_mut().clock.realtime();
        let captured = control.capture(&mut self.store, now);
        let outcome = captured.and_then(|(buf, entries)| {
            let ctx = &mut self.env.as_mut(&mut self.store).ctx;
            let recorder = ctx.recorder.as_mut().ok_or(SnapshotError::NoJournal)?;
            let journal_before = recorder.writer().end_offset();
            let mut regions = 0;
            let mut memory_bytes = 0;
            for entry in &entries {
                if let wasnap_journal::JournalEntry::UpdateMemoryRegionV1(r) = entry {
                    regions += 1;
                    memory_bytes = memory_bytes.max(r.end);
                }
                recorder
                    .record_untimed(entry.clone())
                    .map_err(|e| SnapshotError::Journal(format!("{e:?}")))?;
            }
            recorder
                .sync()
                .map_err(|e| SnapshotError::Journal(format!("{e:?}")))?;
            let journal_bytes = recorder.writer().end_offset() - journal_before;
            control.stats.push(crate::snapshot::SnapshotStats {
                pause: started.elapsed(),
                memory_bytes,
                regions,
                journal_bytes,
            });
            Ok(buf)
        });
        let result = match outcome {
            Ok(_) if control.stop_after => Ok(true),
            Ok(buf) => control.start_rewind(&mut self.store, buf).map(|()| false),
            Err(e) => Err(e),
        };
        self.env.as_mut(&mut self.store).snapshot = control;
        result
    }

    /// Restores memory and globals from a snapshot before [`WasiInstance::run`],
    /// which then continues where the snapshot was taken.
    pub fn restore(
        &mut self,
        image: Vec<u8>,
        thread: &wasnap_journal::ThreadStateV1<'_>,
    ) -> Result<(), crate::snapshot::SnapshotError> {
        let mut control = std::mem::take(&mut self.env.as_mut(&mut self.store).snapshot);
        let result = control.restore(&mut self.store, image, thread);
        self.env.as_mut(&mut self.store).snapshot = control;
        result
    }

    pub fn ctx(&self) -> &WasiCtx {
        &self.env.as_ref(&self.store).ctx
    }

    pub fn ctx_mut(&mut self) -> &mut WasiCtx {
        &mut self.env.as_mut(&mut self.store).ctx
    }

    /// Calls `_start` and reports how the program ended.
    pub fn run(&mut self) -> Result<ExitStatus, LoadError> {
        let start = self
            .instance
            .exports
            .get_function("_start")
            .map_err(|_| LoadError::NoStart)?
            .clone();
        let result = loop {
            let result = start.call(&mut self.store, &[]);
            let unwinding = matches!(
                self.env.as_ref(&self.store).snapshot.phase,
                crate::snapshot::Phase::Unwinding { .. }
            );
            if result.is_err() || !unwinding {
                break result;
            }
            // `_start` returned because a snapshot point unwound it.
            match self.take_snapshot() {
                Ok(true) => return Ok(ExitStatus::Snapshotted),
                Ok(false) => continue,
                Err(e) => {
                    return Ok(ExitStatus::Trapped {
                        message: e.to_string(),
                        backtrace: Vec::new(),
                    })
                }
            }
        };
        let status = match result {
            Ok(_) => {
                if let Err(crate::errno::SysError::Trap(trap)) = self.ctx_mut().record_exit(0) {
                    return Ok(ExitStatus::Trapped {
                        message: trap.to_string(),
                        backtrace: Vec::new(),
                    });
                }
                ExitStatus::Exited(0)
            }
            Err(error) => {
                let backtrace = error
                    .trace()
                    .iter()
                    .enumerate()
                    .map(|(i, frame)| {
                        let name = frame
                            .function_name()
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("<func {}>", frame.func_index()));
                        match frame.module_name() {
                            "<module>" | "" => {
                                format!("{i:>4}: {name} @ {:#x}", frame.module_offset())
                            }
                            module => {
                                format!("{i:>4}: {module}!{name} @ {:#x}", frame.module_offset())
                            }
                        }
                    })
                    .collect();
                match error.downcast::<Trap>() {
                    Ok(Trap::Exit(code)) => ExitStatus::Exited(code),
                    Ok(Trap::Signal(sig)) => ExitStatus::Signaled(sig),
                    Ok(other) => ExitStatus::Trapped {
                        message: other.to_string(),
                        backtrace,
                    },
                    Err(error) => ExitStatus::Trapped {
                        message: error.message(),
                        backtrace,
                    },
                }
            }
        };
        let ctx = self.ctx_mut();
        if let Some(recorder) = &mut ctx.recorder {
            let _ = recorder.commit_output();
        }
        let _ = ctx.stdout.flush();
        let _ = ctx.stderr.flush();
        Ok(status)
    }
}
