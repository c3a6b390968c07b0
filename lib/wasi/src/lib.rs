//! wasnap's WASI host: every `wasi_snapshot_preview1` function on wasmer,
//! over a sandboxed virtual filesystem.
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
//! - [`module_cache`]: compiled modules cached on disk.

// Syscall signatures are fixed by the ABI, however many arguments it takes.
#![allow(clippy::too_many_arguments)]

pub mod abi;
pub mod clock;
pub mod ctx;
pub mod errno;
pub mod fd;
pub mod fs;
pub mod imports;
pub mod instance;
pub mod memory;
pub mod module_cache;
pub mod record;
pub mod replay;
pub mod snapshot;
pub mod stdio;
mod syscalls;

pub use clock::{Clock, ManualClock, OsRandom, RandomSource, SeededRandom, SystemClock};
pub use ctx::{BuildError, WasiCtx, WasiCtxBuilder};
pub use errno::{Errno, Trap};
pub use instance::{ExitStatus, LoadError, WasiInstance};
pub use module_cache::{CacheOutcome, CompileError, ModuleCache};
pub use stdio::{BufferInput, SharedOutput};
