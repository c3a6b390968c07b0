//! Recording effects into a journal (`--journal`).
//!
//! Rules:
//! - an entry is written only after its call succeeded, and before the call
//!   returns to the guest;
//! - before anything leaves the process (standard output and error, writes to
//!   host mounts, socket sends), every entry so far is handed to the operating
//!   system ("output commit"): whatever an observer saw acknowledged survives
//!   a `kill -9`, while effects inside the sandbox stay buffered and cheap;
//! - filesystem times come from the effect clock (milliseconds); a
//!   `ClockSetV1` entry records it whenever it moves, before the next effect,
//!   so replay reproduces times exactly;
//! - a journal that cannot be written stops the program (a trap): running on
//!   without recording would lose data silently.

use wasnap_journal::{ClockSetV1, JournalEntry, JournalWriter};

use crate::errno::{SysResult, Trap};

/// The realtime clock id, as used in `ClockSetV1` to mark effect times.
pub const EFFECT_CLOCK: u32 = 0;

/// Writes a running program's effects to a journal.
pub struct Recorder {
    writer: JournalWriter,
    last_time: Option<u64>,
}

impl Recorder {
    pub fn new(writer: JournalWriter) -> Recorder {
        Recorder {
            writer,
            last_time: None,
        }
    }

    pub fn writer(&self) -> &JournalWriter {
        &self.writer
    }

    fn fail(&self, error: impl std::fmt::Display) -> Trap {
        Trap::Host(format!(
            "cannot write the journal {}: {error}",
            self.writer.name()
        ))
    }

    /// Records one effect that happened at effect time `time`.
    pub fn record(&mut self, time: u64, entry: JournalEntry<'_>) -> SysResult {
        if self.last_time != Some(time) {
            let clock = JournalEntry::ClockSetV1(ClockSetV1 {
                clock_id: EFFECT_CLOCK,
                time_ns: time,
            });
            self.writer.write(&clock).map_err(|e| self.fail(e))?;
            self.last_time = Some(time);
        }
        self.writer.write(&entry).map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Records an entry that carries no effect time (identity, exit).
    pub fn record_untimed(&mut self, entry: JournalEntry<'_>) -> SysResult {
        self.writer.write(&entry).map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Flushes and waits for the disk (a snapshot is complete only then).
    pub fn sync(&mut self) -> SysResult {
        self.writer.sync().map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Output commit: hands every recorded entry to the operating system.
    pub fn commit_output(&mut self) -> SysResult {
        self.writer.flush().map_err(|e| self.fail(e))?;
        Ok(())
    }
}

/// The SHA-256 of a module's bytes, as `InitModuleV1` records it.
pub fn module_hash(wasm: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(wasm).into()
}

impl crate::ctx::WasiCtx {
    /// Starts journaling into `writer`: the first records state the module's
    /// hash and the arguments and environment the program sees.
    pub fn start_recording(&mut self, writer: JournalWriter, wasm_hash: [u8; 32]) -> SysResult {
        self.start_recording_after(writer, wasm_hash, None)
    }

    /// As [`WasiCtx::start_recording`], for a run resumed from the snapshot
    /// whose marker starts at `resumed_from`: `ResumedFromSnapshotV1` comes
    /// first, so that later replays follow this timeline.
    pub fn start_recording_after(
        &mut self,
        writer: JournalWriter,
        wasm_hash: [u8; 32],
        resumed_from: Option<u64>,
    ) -> SysResult {
        let mut recorder = Recorder::new(writer);
        if let Some(snapshot_offset) = resumed_from {
            recorder.record_untimed(JournalEntry::ResumedFromSnapshotV1(
                wasnap_journal::ResumedFromSnapshotV1 { snapshot_offset },
            ))?;
        }
        recorder.record_untimed(JournalEntry::InitModuleV1(wasnap_journal::InitModuleV1 {
            wasm_hash,
        }))?;
        recorder.record_untimed(JournalEntry::EnvironmentV1(wasnap_journal::EnvironmentV1 {
            args: self.args.clone(),
            env: self.env.clone(),
        }))?;
        self.recorder = Some(recorder);
        Ok(())
    }
}
