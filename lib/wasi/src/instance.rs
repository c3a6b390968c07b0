//! Instantiating a module against the host, calling its `_start`, and
//! turning how it ended into an [`ExitStatus`].
//!
//! This is the host's part of a run. Snapshots (unwinding at a snapshot
//! point, writing the snapshot, rewinding) are layered on top by
//! `wasnap-runtime`, which calls [`WasiInstance::call_start`] in a loop.

use wasmer::{ExternType, FunctionEnv, Instance, Module, RuntimeError, Store};

use crate::ctx::WasiCtx;
use crate::errno::{SysError, Trap};
use crate::imports::{imports, WasiEnv, EXPLICIT_SNAPSHOT, FUNCTIONS, MODULE};
use crate::points::{NoSnapshots, SnapshotPoints};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// `_start` returned (code 0) or the program called `proc_exit`.
    Exited(u32),
    /// The program raised a signal that ends it (`proc_raise`).
    Signaled(u8),
    /// The program trapped: the message and the wasm backtrace.
    Trapped {
        /// What went wrong.
        message: String,
        /// The wasm frames, innermost first, one line each.
        backtrace: Vec<String>,
    },
    /// A snapshot was taken and the run stopped there on purpose.
    Snapshotted,
    /// A resumed program did something other than its journal holds; it
    /// was stopped there.
    Diverged(Box<crate::effects::Divergence>),
    /// The run passed its time limit and was interrupted.
    TimedOut(std::time::Duration),
}

impl ExitStatus {
    /// The process exit code a shell would see. As in wasmtime, an exit
    /// status outside `0..126` (WASI's portable range; 126 and up belong to
    /// the shell and to signals) is refused: it becomes 1, never a success
    /// that the low 8 bits of 256 would make it.
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(code) if *code < INVALID_EXIT_STATUS => *code as i32,
            ExitStatus::Exited(_) => 1,
            ExitStatus::Signaled(sig) => 128 + i32::from(*sig),
            // As a native program that aborts (128 + SIGABRT).
            ExitStatus::Trapped { .. } => 134,
            ExitStatus::Snapshotted => 0,
            ExitStatus::Diverged(_) => DIVERGED_EXIT,
            ExitStatus::TimedOut(_) => TIMEOUT_EXIT,
        }
    }
}

/// The exit code of a run stopped at its time limit (as `timeout(1)`'s).
pub const TIMEOUT_EXIT: i32 = 124;

/// The first exit status WASI does not pass on (see [`ExitStatus::code`]).
pub const INVALID_EXIT_STATUS: u32 = 126;

/// The exit code of a run stopped by a [`crate::effects::Divergence`].
pub const DIVERGED_EXIT: i32 = 3;

/// Why a module cannot be instantiated or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Imports that no host function satisfies, as `module.name`.
    #[error("the module imports what wasnap does not provide: {}", .0.join(", "))]
    UnknownImports(Vec<String>),
    /// The module is not a command.
    #[error("the module is not a WASI command: it exports no `_start` function")]
    NoStart,
    /// No exported memory.
    #[error("the module exports no memory named `memory`")]
    NoMemory,
    /// The engine refused to instantiate (a start function trapped, a
    /// table or memory could not be created, …).
    #[error("instantiation failed: {0}")]
    Instantiate(#[source] Box<wasmer::InstantiationError>),
}

/// Names (`module.name`) of the module's imports this host cannot satisfy.
pub fn unknown_imports(module: &Module) -> Vec<String> {
    module
        .imports()
        .filter(|import| {
            let provided = (import.module() == MODULE && FUNCTIONS.contains(&import.name()))
                || EXPLICIT_SNAPSHOT.contains(&(import.module(), import.name()));
            !(provided && matches!(import.ty(), ExternType::Function(_)))
        })
        .map(|import| format!("{}.{}", import.module(), import.name()))
        .collect()
}

/// Checks what the host needs of a module before anything is instantiated:
/// every import provided, a `_start` function.
pub fn check_module(module: &Module) -> Result<(), LoadError> {
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
    Ok(())
}

/// A module instantiated against a [`WasiCtx`], with the snapshot-point
/// hook `P`.
pub struct WasiInstance<P: SnapshotPoints = NoSnapshots> {
    /// The store that owns the instance.
    pub store: Store,
    /// The host data behind the imports.
    pub env: FunctionEnv<WasiEnv<P>>,
    /// The engine's instance.
    pub instance: Instance,
}

impl WasiInstance<NoSnapshots> {
    /// Checks the module's imports and exports, then instantiates it
    /// without snapshots.
    pub fn new(store: Store, module: &Module, ctx: WasiCtx) -> Result<Self, LoadError> {
        WasiInstance::with_points(store, module, ctx, NoSnapshots)
    }
}

impl<P: SnapshotPoints> WasiInstance<P> {
    /// Checks the module's imports and exports, then instantiates it with
    /// the snapshot-point hook `points` (attached to the new instance).
    pub fn with_points(
        mut store: Store,
        module: &Module,
        ctx: WasiCtx,
        points: P,
    ) -> Result<Self, LoadError> {
        check_module(module)?;
        let env = FunctionEnv::new(
            &mut store,
            WasiEnv {
                ctx,
                memory: None,
                points,
            },
        );
        let import_object = imports(&mut store, &env);
        let instance = Instance::new(&mut store, module, &import_object)
            .map_err(|e| LoadError::Instantiate(Box::new(e)))?;
        let memory = instance
            .exports
            .get_memory("memory")
            .map_err(|_| LoadError::NoMemory)?
            .clone();
        env.as_mut(&mut store).memory = Some(memory);
        let mut env_mut = env.clone().into_mut(&mut store);
        let (data, mut store_mut) = env_mut.data_and_store_mut();
        data.points.attach(&mut store_mut, &instance);
        Ok(WasiInstance {
            store,
            env,
            instance,
        })
    }

    /// The process state.
    pub fn ctx(&self) -> &WasiCtx {
        &self.env.as_ref(&self.store).ctx
    }

    /// The process state, to change it.
    pub fn ctx_mut(&mut self) -> &mut WasiCtx {
        &mut self.env.as_mut(&mut self.store).ctx
    }

    /// The snapshot-point hook.
    pub fn points(&self) -> &P {
        &self.env.as_ref(&self.store).points
    }

    /// The snapshot-point hook, to change it.
    pub fn points_mut(&mut self) -> &mut P {
        &mut self.env.as_mut(&mut self.store).points
    }

    /// Calls `_start` once. A snapshot hook may have unwound it; the caller
    /// asks the hook.
    pub fn call_start(&mut self) -> Result<(), RuntimeError> {
        let start = self
            .instance
            .exports
            .get_function("_start")
            .map_err(|_| RuntimeError::user(Box::new(LoadError::NoStart)))?
            .clone();
        start.call(&mut self.store, &[]).map(drop)
    }

    /// Ends the run with what `_start` returned: journals a normal exit,
    /// commits the journal, flushes the standard streams.
    pub fn finish(&mut self, result: Result<(), RuntimeError>) -> ExitStatus {
        let status = match result {
            Ok(()) => match self.ctx_mut().record_exit(0) {
                Err(SysError::Trap(trap)) => ExitStatus::Trapped {
                    message: trap.to_string(),
                    backtrace: Vec::new(),
                },
                Ok(()) | Err(SysError::Errno(_)) => ExitStatus::Exited(0),
            },
            Err(error) => status_of_trap(error),
        };
        let ctx = self.ctx_mut();
        let _ = ctx.commit_output();
        ctx.flush_stdio();
        status
    }

    /// Calls `_start` and reports how the program ended (no snapshots).
    pub fn run(&mut self) -> ExitStatus {
        let result = self.call_start();
        self.finish(result)
    }
}

/// How a program that trapped (or exited through a trap) ended.
fn status_of_trap(error: RuntimeError) -> ExitStatus {
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
                "<module>" | "" => format!("{i:>4}: {name} @ {:#x}", frame.module_offset()),
                module => format!("{i:>4}: {module}!{name} @ {:#x}", frame.module_offset()),
            }
        })
        .collect();
    match error.downcast::<Trap>() {
        Ok(Trap::Exit(code)) => ExitStatus::Exited(code),
        Ok(Trap::Signal(sig)) => ExitStatus::Signaled(sig),
        Ok(Trap::Divergence(divergence)) => ExitStatus::Diverged(divergence),
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
