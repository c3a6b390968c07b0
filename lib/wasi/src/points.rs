//! Snapshot points: the imports a prepared module can be unwound from, and
//! the hook that decides what happens there.
//!
//! The host only calls the hook; capturing and restoring snapshots is the
//! work of `wasnap-runtime`, whose snapshot control implements
//! [`SnapshotPoints`]. A host without snapshots uses [`NoSnapshots`].

use wasmer::{Instance, StoreMut};

use crate::ctx::WasiCtx;
use crate::errno::Errno;

/// Whether the import `name` (of `wasi_snapshot_preview1`) is a snapshot
/// point: `wasnap prepare` instruments exactly these (a runtime test keeps
/// the two lists equal).
#[inline]
pub fn is_point(name: &str) -> bool {
    // A match, so that the check folds away in each import shim.
    matches!(
        name,
        "fd_read"
            | "fd_write"
            | "poll_oneoff"
            | "environ_get"
            | "environ_sizes_get"
            | "clock_time_get"
            | "sched_yield"
    )
}

/// The import at a snapshot point, as the hook sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// The import's name in `wasi_snapshot_preview1`.
    pub name: &'static str,
    /// The call reads standard input (`fd_read` of a descriptor that is the
    /// program's standard input).
    pub reads_stdin: bool,
    /// The call waits on standard input (`poll_oneoff` subscribing to it);
    /// computed only when [`SnapshotPoints::wants_idle`] says so.
    pub waits_on_stdin: bool,
}

/// An error from the hook; it traps the guest.
pub type PointError = Box<dyn std::error::Error + Send + Sync>;

/// What happens at snapshot points.
pub trait SnapshotPoints: Send + 'static {
    /// Finds what the hook needs in a new instance (its exports).
    fn attach(&mut self, store: &mut StoreMut<'_>, instance: &Instance);

    /// Whether `poll_oneoff` should find out if it waits on standard input
    /// (it costs a look at the subscriptions).
    fn wants_idle(&self) -> bool;

    /// Called when the guest enters the snapshot point `point`, before the
    /// call does anything. `Ok(true)`: the import must return at once (the
    /// guest is being unwound); `Ok(false)`: do the call's real work.
    fn at_point(
        &mut self,
        store: &mut StoreMut<'_>,
        ctx: &mut WasiCtx,
        point: Point,
    ) -> Result<bool, PointError>;

    /// The guest asked for a snapshot (`wasnap.snapshot` or WASIX's
    /// `proc_snapshot`). Returns the errno to give back once done: `0` when
    /// taken, [`Errno::Notsup`] when snapshots are not armed.
    fn explicit(&mut self, store: &mut StoreMut<'_>, ctx: &mut WasiCtx) -> Result<u16, PointError>;
}

/// A host without snapshots: every snapshot point is an ordinary call, and
/// explicit requests are answered `NOTSUP`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSnapshots;

impl SnapshotPoints for NoSnapshots {
    fn attach(&mut self, _: &mut StoreMut<'_>, _: &Instance) {}

    fn wants_idle(&self) -> bool {
        false
    }

    fn at_point(
        &mut self,
        _: &mut StoreMut<'_>,
        _: &mut WasiCtx,
        _: Point,
    ) -> Result<bool, PointError> {
        Ok(false)
    }

    fn explicit(&mut self, _: &mut StoreMut<'_>, _: &mut WasiCtx) -> Result<u16, PointError> {
        Ok(Errno::Notsup as u16)
    }
}
