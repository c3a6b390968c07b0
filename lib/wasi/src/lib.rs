//! wasnap's WASI host: every `wasi_snapshot_preview1` function on wasmer,
//! over a sandboxed virtual filesystem. Usable on its own (no journal, no
//! snapshots); `wasnap-runtime` builds the journaled, snapshotting process
//! on top of it.
//!
//! - [`abi`]: type codes and structure layouts of the ABI;
//! - [`errno`]: every errno and every mapping into it; errno vs trap;
//! - [`memory`]: the one bounds-checked door to guest memory;
//! - [`ctx`]: the process state, built by [`WasiCtxBuilder`];
//! - [`fs`]: mounts and the path resolver that enforces the sandbox;
//! - [`fd`]: the descriptor table;
//! - `syscalls`: the 45 functions, as methods of [`WasiCtx`];
//! - [`imports`]: the wasmer import object;
//! - [`instance`]: instantiate and run `_start`;
//! - [`effects`]: the seam where effects leave for a journal;
//! - [`points`]: the seam where snapshot points call a snapshot hook;
//! - [`reapply`]: journaled effects applied again to a fresh context.
//!
//! ```no_run
//! use wasnap_wasi::{WasiCtx, WasiInstance, ExitStatus};
//!
//! let engine = wasmer::Engine::default();
//! let module = wasmer::Module::new(&engine, std::fs::read("hello.wasm")?)?;
//! let ctx = WasiCtx::builder().arg("hello.wasm").build()?;
//! let mut instance = WasiInstance::new(wasmer::Store::new(engine), &module, ctx)?;
//! assert_eq!(instance.run(), ExitStatus::Exited(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Syscall signatures are fixed by the ABI, however many arguments it takes.
#![allow(clippy::too_many_arguments)]
#![warn(missing_docs)]

pub mod abi;
pub mod clock;
pub mod ctx;
pub mod effects;
pub mod errno;
pub mod fd;
pub mod fs;
pub mod imports;
pub mod instance;
pub mod memory;
pub mod points;
pub mod reapply;
pub mod stdio;
mod syscalls;

pub use clock::{Clock, ManualClock, OsRandom, RandomSource, SeededRandom, SystemClock};
pub use ctx::{BuildError, WasiCtx, WasiCtxBuilder};
pub use effects::EffectRecorder;
pub use errno::{Errno, SysError, Trap};
pub use instance::{ExitStatus, LoadError, WasiInstance};
pub use points::{NoSnapshots, Point, SnapshotPoints};
pub use reapply::{Reapplier, ReapplyCounts};
pub use stdio::{BufferInput, SharedOutput};
