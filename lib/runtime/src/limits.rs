//! Bounds a guest cannot break: linear memory and wall-clock time. (The
//! bytes its in-memory files hold are bounded by the WASI context:
//! `WasiCtxBuilder::max_fs_bytes`.)
//!
//! - Memory: the engine's tunables wrap each linear memory the instance
//!   creates. A `memory.grow` past the limit fails as WebAssembly says a
//!   refused growth fails (it returns -1: allocators see "out of memory"),
//!   and the refusal is remembered so that the end of the run can say what
//!   happened ([`MemoryLimit::refused`]). A module whose memory starts above
//!   the limit does not instantiate.
//! - Time: a watchdog interrupts the running wasm at the deadline (wasmer's
//!   host interrupt: a signal to the thread, which traps in wasm code) and
//!   keeps interrupting until the run ends; the run ends as
//!   [`ExitStatus::TimedOut`](wasnap_wasi::ExitStatus::TimedOut). A guest
//!   blocked in a host call (a read from a terminal, say) is not in wasm code;
//!   see [`TIMEOUT_HARD_GRACE`].

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmer::sys::vm::{
    LinearMemory, MemoryError, MemoryStyle, TableStyle, VMMemory, VMMemoryDefinition, VMTable,
    VMTableDefinition,
};
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{MemoryType, Pages, TableType, WASM_PAGE_SIZE};

/// Limits on one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, in bytes (whole 64 KiB pages count; `None`: what the
    /// module declares, up to 4 GiB).
    pub max_memory: Option<u64>,
    /// Wall-clock time [`Process::run`](crate::Process::run) may take.
    pub timeout: Option<Duration>,
}

/// How long after the deadline a guest stuck in a host call (where the
/// interrupt cannot reach it) is given before `wasnap run` exits on its own
/// (the journal flushed first, as for Ctrl-C).
pub const TIMEOUT_HARD_GRACE: Duration = Duration::from_secs(2);

/// The memory limit of one process, and what it refused.
#[derive(Debug)]
pub struct MemoryLimit {
    max_pages: u64,
    /// The size, in bytes, of the largest growth refused (0: none).
    refused: AtomicU64,
}

impl MemoryLimit {
    /// A limit of `bytes` (rounded down to whole pages).
    pub fn new(bytes: u64) -> Arc<MemoryLimit> {
        Arc::new(MemoryLimit {
            max_pages: bytes / WASM_PAGE_SIZE as u64,
            refused: AtomicU64::new(0),
        })
    }

    /// The limit, in bytes.
    pub fn bytes(&self) -> u64 {
        self.max_pages * WASM_PAGE_SIZE as u64
    }

    /// The size in bytes the largest refused growth asked for, if any.
    pub fn refused(&self) -> Option<u64> {
        match self.refused.load(Ordering::Relaxed) {
            0 => None,
            bytes => Some(bytes),
        }
    }

    /// Whether growing from `current` by `delta` pages stays within it;
    /// records the refusal otherwise.
    fn allows(&self, current: Pages, delta: Pages) -> bool {
        let wanted = u64::from(current.0) + u64::from(delta.0);
        if wanted <= self.max_pages {
            return true;
        }
        self.refused
            .fetch_max(wanted * WASM_PAGE_SIZE as u64, Ordering::Relaxed);
        false
    }
}

/// The engine's tunables with every memory wrapped in the limit. Memory
/// styles are the base's, so compiled code (and the module cache) is the
/// same with or without a limit.
pub(crate) struct LimitedTunables {
    base: BaseTunables,
    limit: Arc<MemoryLimit>,
}

impl LimitedTunables {
    pub(crate) fn new(limit: Arc<MemoryLimit>) -> LimitedTunables {
        LimitedTunables {
            base: BaseTunables::new(),
            limit,
        }
    }

    fn check_minimum(&self, ty: &MemoryType) -> Result<(), MemoryError> {
        if u64::from(ty.minimum.0) > self.limit.max_pages {
            self.limit.allows(Pages(0), ty.minimum);
            return Err(MemoryError::MinimumMemoryTooLarge {
                min_requested: ty.minimum,
                max_allowed: Pages(self.limit.max_pages as u32),
            });
        }
        Ok(())
    }

    fn wrap(&self, memory: VMMemory) -> VMMemory {
        VMMemory(Box::new(LimitedMemory {
            inner: memory.0,
            limit: self.limit.clone(),
        }))
    }
}

impl Tunables for LimitedTunables {
    fn memory_style(&self, memory: &MemoryType) -> MemoryStyle {
        self.base.memory_style(memory)
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        self.check_minimum(ty)?;
        Ok(self.wrap(self.base.create_host_memory(ty, style)?))
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        self.check_minimum(ty)?;
        // SAFETY: the caller's guarantee on `vm_definition_location` is
        // passed on unchanged; the wrapper hands out the same definition.
        let memory = unsafe {
            self.base
                .create_vm_memory(ty, style, vm_definition_location)?
        };
        Ok(self.wrap(memory))
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.base.create_host_table(ty, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        // SAFETY: the caller's guarantee is passed on unchanged.
        unsafe { self.base.create_vm_table(ty, style, vm_definition_location) }
    }
}

/// A linear memory that refuses to grow past its limit; everything else is
/// the wrapped memory's.
#[derive(Debug)]
struct LimitedMemory {
    inner: Box<dyn LinearMemory + Send + Sync + 'static>,
    limit: Arc<MemoryLimit>,
}

impl LinearMemory for LimitedMemory {
    fn ty(&self) -> MemoryType {
        self.inner.ty()
    }

    fn size(&self) -> Pages {
        self.inner.size()
    }

    fn style(&self) -> MemoryStyle {
        self.inner.style()
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let current = self.inner.size();
        if !self.limit.allows(current, delta) {
            return Err(MemoryError::CouldNotGrow {
                current,
                attempted_delta: delta,
            });
        }
        self.inner.grow(delta)
    }

    fn grow_at_least(&mut self, min_size: u64) -> Result<(), MemoryError> {
        let pages = min_size.div_ceil(WASM_PAGE_SIZE as u64);
        let current = self.inner.size();
        let delta = Pages(
            pages
                .saturating_sub(u64::from(current.0))
                .min(u64::from(u32::MAX)) as u32,
        );
        if !self.limit.allows(current, delta) {
            return Err(MemoryError::CouldNotGrow {
                current,
                attempted_delta: delta,
            });
        }
        self.inner.grow_at_least(min_size)
    }

    fn reset(&mut self) -> Result<(), MemoryError> {
        self.inner.reset()
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.inner.vmmemory()
    }

    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Ok(Box::new(LimitedMemory {
            inner: self.inner.try_clone()?,
            limit: self.limit.clone(),
        }))
    }

    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Ok(Box::new(LimitedMemory {
            inner: self.inner.copy()?,
            limit: self.limit.clone(),
        }))
    }
}

/// Interrupts a run at its deadline, and again every few milliseconds
/// until it ends (an interrupt that lands while the guest is in a host call
/// is lost). Past [`TIMEOUT_HARD_GRACE`], `on_stuck` runs (the CLI exits).
pub(crate) struct Deadline {
    done: Arc<AtomicBool>,
    expired: Arc<AtomicBool>,
}

impl Deadline {
    pub(crate) fn arm(
        timeout: Duration,
        interrupter: wasmer::Interrupter,
        on_stuck: Box<dyn FnOnce() + Send>,
    ) -> Deadline {
        let done = Arc::new(AtomicBool::new(false));
        let expired = Arc::new(AtomicBool::new(false));
        let (watched, flag) = (done.clone(), expired.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if watched.load(Ordering::SeqCst) {
                    return;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                std::thread::sleep(left.min(Duration::from_millis(10)));
            }
            flag.store(true, Ordering::SeqCst);
            let hard = Instant::now() + TIMEOUT_HARD_GRACE;
            while !watched.load(Ordering::SeqCst) {
                if Instant::now() >= hard {
                    on_stuck();
                    return;
                }
                interrupter.interrupt();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Deadline { done, expired }
    }

    /// Stops the watchdog; whether the deadline had passed.
    pub(crate) fn disarm(self) -> bool {
        self.done.store(true, Ordering::SeqCst);
        self.expired.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_whole_pages_and_remembers_the_largest_refusal() {
        let limit = MemoryLimit::new(3 * WASM_PAGE_SIZE as u64 + 100);
        assert_eq!(limit.bytes(), 3 * WASM_PAGE_SIZE as u64);
        assert!(limit.allows(Pages(1), Pages(2)));
        assert_eq!(limit.refused(), None);
        assert!(!limit.allows(Pages(3), Pages(1)));
        assert!(!limit.allows(Pages(1), Pages(9)));
        assert!(!limit.allows(Pages(3), Pages(2)));
        assert_eq!(limit.refused(), Some(10 * WASM_PAGE_SIZE as u64));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod engine_tests {
    use super::*;
    use wasmer::sys::NativeEngineExt as _;

    const WAT: &str = r#"(module
        (memory (export "memory") 1)
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#;

    fn instance(limit: &Arc<MemoryLimit>) -> (wasmer::Store, wasmer::Instance) {
        let mut engine = wasmer::Engine::default();
        engine.set_tunables(LimitedTunables::new(limit.clone()));
        let mut store = wasmer::Store::new(engine);
        let module = wasmer::Module::new(&store, WAT).unwrap();
        let instance = wasmer::Instance::new(&mut store, &module, &wasmer::imports! {}).unwrap();
        (store, instance)
    }

    #[test]
    fn memory_grow_past_the_limit_returns_minus_one_and_is_remembered() {
        let limit = MemoryLimit::new(3 * WASM_PAGE_SIZE as u64);
        let (mut store, instance) = instance(&limit);
        let grow = instance
            .exports
            .get_typed_function::<i32, i32>(&store, "grow")
            .unwrap();
        assert_eq!(grow.call(&mut store, 2).unwrap(), 1, "within the limit");
        assert_eq!(grow.call(&mut store, 1).unwrap(), -1, "one page past it");
        assert_eq!(limit.refused(), Some(4 * WASM_PAGE_SIZE as u64));
        let memory = instance.exports.get_memory("memory").unwrap();
        assert_eq!(memory.view(&store).size(), Pages(3));
    }

    #[test]
    fn a_module_starting_above_the_limit_does_not_instantiate() {
        let limit = MemoryLimit::new(0);
        let mut engine = wasmer::Engine::default();
        engine.set_tunables(LimitedTunables::new(limit.clone()));
        let mut store = wasmer::Store::new(engine);
        let module = wasmer::Module::new(&store, WAT).unwrap();
        let err =
            wasmer::Instance::new(&mut store, &module, &wasmer::imports! {}).expect_err("refused");
        assert!(err.to_string().contains("memory"), "{err}");
        assert_eq!(limit.refused(), Some(WASM_PAGE_SIZE as u64));
    }
}
