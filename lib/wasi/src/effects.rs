//! Where a process's effects go, and where its inputs come from: the seam
//! between the WASI host and a journal.
//!
//! The host calls an [`EffectRecorder`] after each call that changed state
//! outside linear memory succeeded, and before anything leaves the process.
//! It also hands it every *input* (clock reads, random bytes, bytes read
//! from standard input, sockets and host files, poll results), so that a
//! resumed program can be re-executed against the journal. The host itself
//! knows nothing of journal files; `wasnap-runtime` implements the recorder.
//! With no recorder set, journaling costs one branch per call.
//!
//! Re-execution ("replaying"): while a recorder says
//! [`EffectRecorder::replaying`], the program is re-executing history:
//! inputs come from the journal ([`EffectRecorder::replay_input`]), effects
//! inside the sandbox are performed again and checked against the journal
//! ([`EffectRecorder::record`]), and effects that leave the process
//! (output, host files, sockets) are checked and *not* performed again
//! ([`EffectRecorder::replay_external`]). Any difference is a
//! [`Divergence`], which stops the program.

use wasnap_journal::{EntryKind, JournalEntry};

use crate::errno::Trap;

/// What an input call asks the journal for while replaying: the kind of the
/// input and what identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRequest {
    /// `clock_time_get` of this clock (`ClockReadV1`).
    Clock {
        /// The clock id.
        clock_id: u32,
    },
    /// `random_get` of this many bytes (`RandomBytesV1`).
    Random {
        /// Bytes asked for.
        len: u32,
    },
    /// A read from `fd` of at most `max` bytes (`InputReadV1`).
    Read {
        /// The descriptor read.
        fd: u32,
        /// The most the call can take.
        max: u64,
    },
    /// `poll_oneoff` with room for this many events (`PollResultV1`).
    Poll {
        /// Subscriptions, so at most this many events.
        subscriptions: u32,
    },
}

impl InputRequest {
    /// The entry kind that answers the request.
    pub fn kind(&self) -> EntryKind {
        match self {
            InputRequest::Clock { .. } => EntryKind::ClockReadV1,
            InputRequest::Random { .. } => EntryKind::RandomBytesV1,
            InputRequest::Read { .. } => EntryKind::InputReadV1,
            InputRequest::Poll { .. } => EntryKind::PollResultV1,
        }
    }

    /// Whether `entry` answers this request; otherwise what differs.
    pub fn answered_by(&self, entry: &JournalEntry<'_>) -> Result<(), String> {
        match (self, entry) {
            (InputRequest::Clock { clock_id }, JournalEntry::ClockReadV1(e)) => {
                if e.clock_id == *clock_id {
                    Ok(())
                } else {
                    Err(format!(
                        "clock {} read, clock {} journaled",
                        clock_id, e.clock_id
                    ))
                }
            }
            (InputRequest::Random { len }, JournalEntry::RandomBytesV1(e)) => {
                if e.data.len() as u64 == u64::from(*len) {
                    Ok(())
                } else {
                    Err(format!(
                        "{len} random bytes asked, {} journaled",
                        e.data.len()
                    ))
                }
            }
            (InputRequest::Read { fd, max }, JournalEntry::InputReadV1(e)) => {
                if e.fd != *fd {
                    Err(format!(
                        "a read of descriptor {fd}, descriptor {} journaled",
                        e.fd
                    ))
                } else if e.data.len() as u64 > *max {
                    Err(format!("room for {max} bytes, {} journaled", e.data.len()))
                } else {
                    Ok(())
                }
            }
            (InputRequest::Poll { subscriptions }, JournalEntry::PollResultV1(e)) => {
                if e.events.len() as u64 <= u64::from(*subscriptions) * 32 {
                    Ok(())
                } else {
                    Err(format!(
                        "{subscriptions} subscriptions, {} events journaled",
                        e.events.len() / 32
                    ))
                }
            }
            (request, entry) => Err(format!(
                "the program asked for {}, the journal holds {}",
                request.kind().name(),
                entry.kind().name()
            )),
        }
    }
}

/// A re-executed program did something other than what its journal holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the program diverged from its journal {journal} at record {index} (offset {offset}): the journal holds {expected}, the program made {made}: {detail}")]
pub struct Divergence {
    /// The journal's name.
    pub journal: String,
    /// Which record of the re-executed tail (0 is the first).
    pub index: u64,
    /// The record's offset in its journal.
    pub offset: u64,
    /// The journaled record's kind.
    pub expected: &'static str,
    /// What the program did instead (an entry kind, or the end of the
    /// program).
    pub made: String,
    /// What differed.
    pub detail: String,
}

/// What a recorder that does not replay answers when asked to.
fn not_replaying(made: EntryKind) -> Trap {
    Trap::Divergence(Box::new(Divergence {
        journal: String::new(),
        index: 0,
        offset: 0,
        expected: "nothing",
        made: made.name().to_owned(),
        detail: "this recorder does not replay".to_owned(),
    }))
}

/// Receives a running program's effects and inputs, in order.
///
/// Rules every implementation keeps:
/// - an effect arrives only after its call succeeded, and before the call
///   returns to the guest (output to standard streams is the exception: it
///   is recorded before it is written, so that what was seen is journaled);
/// - [`EffectRecorder::commit_output`] is called before anything leaves the
///   process (standard output and error, writes to host mounts, socket
///   sends): whatever an observer saw must survive a `kill -9`;
/// - an error stops the program (a trap): running on without recording
///   would lose data silently.
pub trait EffectRecorder: Send {
    /// Records one effect that happened at effect time `time_ns` (whole
    /// milliseconds of realtime, see [`crate::WasiCtx::now`]); while
    /// replaying, checks it against the journal instead.
    fn record(&mut self, time_ns: u64, entry: JournalEntry<'_>) -> Result<(), Trap>;
    /// Records an entry that carries no effect time (exit, inputs).
    fn record_untimed(&mut self, entry: JournalEntry<'_>) -> Result<(), Trap>;
    /// Hands every entry recorded so far to the operating system.
    fn commit_output(&mut self) -> Result<(), Trap>;

    /// Whether the program is re-executing journaled history now.
    fn replaying(&mut self) -> bool {
        false
    }
    /// While replaying: the effect time of the next effect.
    fn replay_time(&mut self) -> Option<u64> {
        None
    }
    /// While replaying: the journaled input that answers `request`, or
    /// `None` when the program diverged here and went on live (the caller
    /// then produces the input live).
    fn replay_input(
        &mut self,
        request: InputRequest,
    ) -> Result<Option<JournalEntry<'static>>, Trap> {
        Err(not_replaying(request.kind()))
    }
    /// While replaying: checks an effect that leaves the process (it is not
    /// performed again) and returns the journaled record. For writes, the
    /// descriptor and the bytes are compared, not the file offset, which
    /// the caller takes from the returned record. `None`: the program
    /// diverged here and went on live; the caller performs the effect.
    fn replay_external(
        &mut self,
        made: JournalEntry<'_>,
    ) -> Result<Option<JournalEntry<'static>>, Trap> {
        Err(not_replaying(made.kind()))
    }
}
