//! Where a process's effects go: the seam between the WASI host and a
//! journal.
//!
//! The host calls an [`EffectRecorder`] after each call that changed state
//! outside linear memory succeeded, and before anything leaves the process.
//! The host itself knows nothing of journal files; `wasnap-runtime`
//! implements the recorder over a journal writer. With no recorder set,
//! journaling costs one branch per state-changing call.

use wasnap_journal::JournalEntry;

use crate::errno::Trap;

/// Receives a running program's effects, in order.
///
/// Rules every implementation keeps:
/// - an entry arrives only after its call succeeded, and before the call
///   returns to the guest;
/// - [`EffectRecorder::commit_output`] is called before anything leaves the
///   process (standard output and error, writes to host mounts, socket
///   sends): whatever an observer saw must survive a `kill -9`;
/// - an error stops the program (a trap): running on without recording
///   would lose data silently.
pub trait EffectRecorder: Send {
    /// Records one effect that happened at effect time `time_ns` (whole
    /// milliseconds of realtime, see [`crate::WasiCtx::now`]).
    fn record(&mut self, time_ns: u64, entry: JournalEntry<'_>) -> Result<(), Trap>;
    /// Records an entry that carries no effect time (exit, identity).
    fn record_untimed(&mut self, entry: JournalEntry<'_>) -> Result<(), Trap>;
    /// Hands every entry recorded so far to the operating system.
    fn commit_output(&mut self) -> Result<(), Trap>;
}
