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

use wasnap_journal::{JournalEntry, TimelineCutV1};
use wasnap_wasi::effects::{Divergence, InputRequest};
use wasnap_wasi::reapply::EFFECT_CLOCK;
use wasnap_wasi::{EffectRecorder, Trap};

use crate::recorder::JournalRecorder;

/// What a resumed program does when it diverges from its journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnDivergence {
    /// Stop with the divergence (the journal is left as it was).
    #[default]
    Stop,
    /// Cut the rest of the tail off (a `TimelineCutV1` record makes it a
    /// lost timeline) and go on live from the diverging call. Only a tail in
    /// the process's own journal can be cut; in a read-only base it stops.
    Live,
}

/// One record of the tail.
#[derive(Debug, Clone)]
pub struct TailRecord {
    /// The journal it is in (its name).
    pub journal: String,
    /// Whether that is the process's own journal (not a read-only base).
    pub own: bool,
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
    on_divergence: OnDivergence,
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
        | E::TimelineCutV1(_)
        | E::InitModuleV1(_)
        | E::EnvironmentV1(_)
        | E::PaddingV1(_) => false,
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
    pub fn new(
        tail: Vec<TailRecord>,
        live: Option<JournalRecorder>,
        on_divergence: OnDivergence,
    ) -> TailReplayer {
        TailReplayer {
            tail: tail.into(),
            index: 0,
            time: None,
            live,
            on_divergence,
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

    /// The program diverged at `record`: stops it (an error), or cuts the
    /// tail off and goes on live (`Ok`).
    fn diverged(&mut self, record: &TailRecord, made: String, detail: String) -> Result<(), Trap> {
        let divergence = Divergence {
            journal: record.journal.clone(),
            index: self.index - 1,
            offset: record.offset,
            expected: record.entry.kind().name(),
            made,
            detail,
        };
        match (&mut self.live, self.on_divergence, record.own) {
            (Some(live), OnDivergence::Live, true) => {
                live.record_untimed(
                    TimelineCutV1 {
                        from_offset: record.offset,
                    }
                    .into(),
                )?;
                live.commit_output()?;
                tracing::warn!("{divergence}; going on live, the rest of the journal is cut off");
                self.tail.clear();
                Ok(())
            }
            _ => Err(Trap::Divergence(Box::new(divergence))),
        }
    }

    /// Checks an effect the program made against the next record; `None`
    /// when it diverged and went on live.
    fn check(
        &mut self,
        made: &JournalEntry<'_>,
        offsets_matter: bool,
    ) -> Result<Option<JournalEntry<'static>>, Trap> {
        let Some(record) = self.next() else {
            // Cannot happen: callers ask `replaying` first.
            return Ok(None);
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
            return Ok(Some(record.entry));
        }
        let detail = format!(
            "journaled {}, made {}",
            describe(&record.entry),
            describe(made)
        );
        self.diverged(&record, made.kind().name().to_owned(), detail)?;
        Ok(None)
    }
}

impl EffectRecorder for TailReplayer {
    fn record(&mut self, time_ns: u64, entry: JournalEntry<'_>) -> Result<(), Trap> {
        if self.replaying() && self.check(&entry, true)?.is_some() {
            return Ok(());
        }
        match &mut self.live {
            Some(live) => live.record(time_ns, entry),
            None => Ok(()),
        }
    }

    fn record_untimed(&mut self, entry: JournalEntry<'_>) -> Result<(), Trap> {
        if self.replaying() && self.check(&entry, true)?.is_some() {
            return Ok(());
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

    fn replay_input(
        &mut self,
        request: InputRequest,
    ) -> Result<Option<JournalEntry<'static>>, Trap> {
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
            Ok(()) => Ok(Some(record.entry)),
            Err(detail) => {
                self.diverged(&record, request.kind().name().to_owned(), detail)?;
                Ok(None)
            }
        }
    }

    fn replay_external(
        &mut self,
        made: JournalEntry<'_>,
    ) -> Result<Option<JournalEntry<'static>>, Trap> {
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
            own: true,
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
        let mut r = TailReplayer::new(tail, None, OnDivergence::Stop);
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
        let mut r = TailReplayer::new(vec![record(40, write(1, b"yes"))], None, OnDivergence::Stop);
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
        let mut r = TailReplayer::new(vec![record(8, clock.clone())], None, OnDivergence::Stop);
        assert_eq!(
            r.replay_input(InputRequest::Clock { clock_id: 1 }).unwrap(),
            Some(clock.clone())
        );
        let mut r = TailReplayer::new(vec![record(8, clock)], None, OnDivergence::Stop);
        assert!(r.replay_input(InputRequest::Clock { clock_id: 0 }).is_err());
        let mut r = TailReplayer::new(vec![record(8, write(1, b"x"))], None, OnDivergence::Stop);
        assert!(r.replay_input(InputRequest::Random { len: 4 }).is_err());
    }

    #[test]
    fn external_writes_compare_bytes_not_offsets() {
        let journaled = FileDescriptorWriteV1 {
            fd: 5,
            offset: 4096,
            data: b"row".to_vec().into(),
        };
        let mut r = TailReplayer::new(
            vec![record(8, journaled.clone().into())],
            None,
            OnDivergence::Stop,
        );
        let back = r.replay_external(write(5, b"row")).unwrap();
        assert_eq!(back, Some(journaled.into()));
    }

    #[test]
    fn going_live_on_divergence_cuts_the_rest_of_the_tail_off() {
        let journal = wasnap_journal::Journal::in_memory();
        let writer = journal.writer().clone();
        let live = JournalRecorder::continuing(writer.clone());
        let tail = vec![record(40, write(1, b"yes")), record(80, write(1, b"more"))];
        let mut r = TailReplayer::new(tail, Some(live), OnDivergence::Live);
        r.record(0, write(1, b"no")).unwrap();
        assert!(!r.replaying(), "live after the divergence");
        writer.flush().unwrap();
        let mut journal = journal;
        journal.reader().restart().unwrap();
        let records = journal.reader().read_all_owned().unwrap();
        let kinds: Vec<_> = records.iter().map(|r| r.entry.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                TimelineCutV1 { from_offset: 40 }.into(),
                ClockSetV1 {
                    clock_id: 0,
                    time_ns: 0
                }
                .into(),
                write(1, b"no"),
            ],
            "the cut, then the diverging effect, recorded live"
        );
        // A tail in a read-only base cannot be cut: it stops.
        let mut base = record(40, write(1, b"yes"));
        base.own = false;
        let live = JournalRecorder::continuing(writer);
        let mut r = TailReplayer::new(vec![base], Some(live), OnDivergence::Live);
        assert!(matches!(
            r.record(0, write(1, b"no")),
            Err(Trap::Divergence(_))
        ));
    }
}
