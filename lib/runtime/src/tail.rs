//! Deterministic re-execution of a journal's tail: the records after the
//! point a resumed program restarts from (its last snapshot, or the start of
//! its run).
//!
//! The [`TailReplayer`] stands where the live [`JournalRecorder`] would:
//! while tail records remain, every input the program asks for is served
//! from them, every effect it makes is compared with the next one (and, if
//! it leaves the process, not performed again), and any difference stops
//! the program with a [`Divergence`] naming the record. Once the tail is
//! used up, the program is live: effects go to the recorder, which appends
//! behind the tail, so the journal reads as one uninterrupted run.

use std::collections::VecDeque;

use wasnap_journal::JournalEntry;
use wasnap_wasi::effects::{Divergence, InputRequest};
use wasnap_wasi::reapply::EFFECT_CLOCK;
use wasnap_wasi::{EffectRecorder, Trap};

use crate::recorder::JournalRecorder;

/// One record of the tail.
#[derive(Debug, Clone)]
pub struct TailRecord {
    /// The journal it is in (its name).
    pub journal: String,
    /// Its offset there.
    pub offset: u64,
    /// The entry.
    pub entry: JournalEntry<'static>,
}

/// Serves a tail, then records live.
pub struct TailReplayer {
    tail: VecDeque<TailRecord>,
    /// Records of the tail consumed so far.
    index: u64,
    /// The effect time the next effect happens at.
    time: Option<u64>,
    /// Where live records go (`None`: the process does not record).
    live: Option<JournalRecorder>,
}

/// Whether a tail record is something re-execution produces again.
/// Snapshot pieces (of a snapshot the crash cut short), identity records
/// and older versions' resume records are history, not effects.
fn is_reproduced(entry: &JournalEntry<'_>) -> bool {
    use JournalEntry as E;
    match entry {
        E::UpdateMemoryRegionV1(_)
        | E::ThreadStateV1(_)
        | E::SnapshotV1(_)
        | E::ResumedFromSnapshotV1(_)
        | E::InitModuleV1(_)
        | E::EnvironmentV1(_) => false,
        // Effect times are consumed by `replay_time`, not compared.
        E::ClockSetV1(_) => false,
        E::ProcessExitV1(_)
        | E::ThreadExitV1(_)
        | E::OpenFileDescriptorV1(_)
        | E::CloseFileDescriptorV1(_)
        | E::FileDescriptorSeekV1(_)
        | E::FileDescriptorWriteV1(_)
        | E::FileDescriptorSetSizeV1(_)
        | E::FileDescriptorSetTimesV1(_)
        | E::FileDescriptorSetFlagsV1(_)
        | E::FileDescriptorSetRightsV1(_)
        | E::FileDescriptorAdviseV1(_)
        | E::FileDescriptorAllocateV1(_)
        | E::RenumberFileDescriptorV1(_)
        | E::DuplicateFileDescriptorV1(_)
        | E::CreateDirectoryV1(_)
        | E::RemoveDirectoryV1(_)
        | E::UnlinkFileV1(_)
        | E::PathRenameV1(_)
        | E::CreateHardLinkV1(_)
        | E::CreateSymbolicLinkV1(_)
        | E::PathSetTimesV1(_)
        | E::ChangeDirectoryV1(_)
        | E::CreatePipeV1(_)
        | E::CreateEventV1(_)
        | E::EpollCreateV1(_)
        | E::EpollCtlV1(_)
        | E::TtySetV1(_)
        | E::SocketOpenV1(_)
        | E::SocketBindV1(_)
        | E::SocketListenV1(_)
        | E::SocketConnectV1(_)
        | E::SocketAcceptV1(_)
        | E::SocketSendV1(_)
        | E::SocketSendToV1(_)
        | E::SocketSetOptionV1(_)
        | E::SocketShutdownV1(_)
        | E::SocketJoinMulticastV1(_)
        | E::SocketLeaveMulticastV1(_)
        | E::ClockReadV1(_)
        | E::RandomBytesV1(_)
        | E::InputReadV1(_)
        | E::PollResultV1(_) => true,
    }
}

/// A short description of an entry for divergence messages.
fn describe(entry: &JournalEntry<'_>) -> String {
    match entry {
        JournalEntry::FileDescriptorWriteV1(w) => format!(
            "FileDescriptorWriteV1 of {} bytes to descriptor {} at offset {} ({:?})",
            w.data.len(),
            w.fd,
            w.offset,
            String::from_utf8_lossy(&w.data[..w.data.len().min(40)])
        ),
        other => {
            let json = other.to_json().to_string();
            if json.len() > 160 {
                format!("{}…", &json[..json.floor_char_boundary(160)])
            } else {
                json
            }
        }
    }
}

impl TailReplayer {
    /// Serves `tail` (in journal order), then records into `live`.
    pub fn new(tail: Vec<TailRecord>, live: Option<JournalRecorder>) -> TailReplayer {
        TailReplayer {
            tail: tail.into(),
            index: 0,
            time: None,
            live,
        }
    }

    /// Drops history records at the head, taking effect times from them.
    fn skip_history(&mut self) {
        while let Some(head) = self.tail.front() {
            match &head.entry {
                JournalEntry::ClockSetV1(c) if c.clock_id == EFFECT_CLOCK => {
                    self.time = Some(c.time_ns)
                }
                entry if is_reproduced(entry) => return,
                _ => {}
            }
            self.tail.pop_front();
            self.index += 1;
        }
    }

    /// The next record the program must reproduce.
    fn next(&mut self) -> Option<TailRecord> {
        self.skip_history();
        let record = self.tail.pop_front()?;
        self.index += 1;
        Some(record)
    }

    fn diverged(&self, record: &TailRecord, made: String, detail: String) -> Trap {
        Trap::Divergence(Box::new(Divergence {
            journal: record.journal.clone(),
            index: self.index - 1,
            offset: record.offset,
            expected: record.entry.kind().name(),
            made,
            detail,
        }))
    }

    /// Checks an effect the program made against the next record.
    fn check(
        &mut self,
        made: &JournalEntry<'_>,
        offsets_matter: bool,
    ) -> Result<JournalEntry<'static>, Trap> {
        let Some(record) = self.next() else {
            // Cannot happen: callers ask `replaying` first.
            return Ok(made.clone().into_owned());
        };
        let same = match (&record.entry, made) {
            (JournalEntry::FileDescriptorWriteV1(a), JournalEntry::FileDescriptorWriteV1(b))
                if !offsets_matter =>
            {
                a.fd == b.fd && a.data == b.data
            }
            (a, b) => a == b,
        };
        if same {
            Ok(record.entry)
        } else {
            Err(self.diverged(
                &record,
                made.kind().name().to_owned(),
                format!(
                    "journaled {}, made {}",
                    describe(&record.entry),
                    describe(made)
                ),
            ))
        }
    }
}

impl EffectRecorder for TailReplayer {
    fn record(&mut self, time_ns: u64, entry: JournalEntry<'_>) -> Result<(), Trap> {
        if self.replaying() {
            return self.check(&entry, true).map(drop);
        }
        match &mut self.live {
            Some(live) => live.record(time_ns, entry),
            None => Ok(()),
        }
    }

    fn record_untimed(&mut self, entry: JournalEntry<'_>) -> Result<(), Trap> {
        if self.replaying() {
            return self.check(&entry, true).map(drop);
        }
        match &mut self.live {
            Some(live) => live.record_untimed(entry),
            None => Ok(()),
        }
    }

    fn commit_output(&mut self) -> Result<(), Trap> {
        match &mut self.live {
            Some(live) if self.tail.is_empty() => live.commit_output(),
            _ => Ok(()),
        }
    }

    fn replaying(&mut self) -> bool {
        self.skip_history();
        !self.tail.is_empty()
    }

    fn replay_time(&mut self) -> Option<u64> {
        if self.replaying() {
            self.time
        } else {
            None
        }
    }

    fn replay_input(&mut self, request: InputRequest) -> Result<JournalEntry<'static>, Trap> {
        let Some(record) = self.next() else {
            return Err(Trap::Divergence(Box::new(Divergence {
                journal: String::new(),
                index: self.index,
                offset: 0,
                expected: "nothing",
                made: request.kind().name().to_owned(),
                detail: "the journal's tail is used up".to_owned(),
            })));
        };
        match request.answered_by(&record.entry) {
            Ok(()) => Ok(record.entry),
            Err(detail) => Err(self.diverged(&record, request.kind().name().to_owned(), detail)),
        }
    }

    fn replay_external(&mut self, made: JournalEntry<'_>) -> Result<JournalEntry<'static>, Trap> {
        self.check(&made, false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wasnap_journal::{ClockReadV1, ClockSetV1, FileDescriptorWriteV1, SnapshotV1};

    fn record(offset: u64, entry: JournalEntry<'static>) -> TailRecord {
        TailRecord {
            journal: "j".into(),
            offset,
            entry,
        }
    }

    fn write(fd: u32, data: &[u8]) -> JournalEntry<'static> {
        FileDescriptorWriteV1 {
            fd,
            offset: 0,
            data: data.to_vec().into(),
        }
        .into()
    }

    #[test]
    fn effects_are_checked_then_the_program_goes_live() {
        let tail = vec![
            record(
                8,
                ClockSetV1 {
                    clock_id: 0,
                    time_ns: 7,
                }
                .into(),
            ),
            record(16, write(1, b"a")),
            record(
                24,
                SnapshotV1 {
                    since_epoch_ns: 0,
                    trigger: 1,
                }
                .into(),
            ),
        ];
        let mut r = TailReplayer::new(tail, None);
        assert!(r.replaying());
        assert_eq!(r.replay_time(), Some(7));
        r.record(7, write(1, b"a")).unwrap();
        assert!(
            !r.replaying(),
            "a partial snapshot is history, not an effect"
        );
        assert_eq!(r.replay_time(), None);
        r.record(9, write(1, b"live")).unwrap();
    }

    #[test]
    fn a_different_effect_is_a_divergence_naming_the_record() {
        let mut r = TailReplayer::new(vec![record(40, write(1, b"yes"))], None);
        let Err(Trap::Divergence(d)) = r.record(0, write(1, b"no")) else {
            panic!("not a divergence")
        };
        assert_eq!(
            (d.index, d.offset, d.expected),
            (0, 40, "FileDescriptorWriteV1")
        );
        assert!(
            d.detail.contains("\"yes\"") && d.detail.contains("\"no\""),
            "{}",
            d.detail
        );
    }

    #[test]
    fn inputs_come_from_the_tail_and_must_match_the_request() {
        let clock: JournalEntry<'static> = ClockReadV1 {
            clock_id: 1,
            time_ns: 99,
        }
        .into();
        let mut r = TailReplayer::new(vec![record(8, clock.clone())], None);
        assert_eq!(
            r.replay_input(InputRequest::Clock { clock_id: 1 }).unwrap(),
            clock
        );
        let mut r = TailReplayer::new(vec![record(8, clock)], None);
        assert!(r.replay_input(InputRequest::Clock { clock_id: 0 }).is_err());
        let mut r = TailReplayer::new(vec![record(8, write(1, b"x"))], None);
        assert!(r.replay_input(InputRequest::Random { len: 4 }).is_err());
    }

    #[test]
    fn external_writes_compare_bytes_not_offsets() {
        let journaled = FileDescriptorWriteV1 {
            fd: 5,
            offset: 4096,
            data: b"row".to_vec().into(),
        };
        let mut r = TailReplayer::new(vec![record(8, journaled.clone().into())], None);
        let back = r.replay_external(write(5, b"row")).unwrap();
        assert_eq!(back, journaled.into());
    }
}
