//! Recording a program's effects into a journal (`--journal`): the
//! [`EffectRecorder`] the WASI host calls, over a [`JournalWriter`].
//!
//! Rules (beyond the ones [`EffectRecorder`] states):
//! - records are buffered and handed to the operating system at output
//!   commit, so effects inside the sandbox stay cheap;
//! - filesystem times come from the effect clock (milliseconds); a
//!   `ClockSetV1` entry records it whenever it moves, before the next effect,
//!   so replay reproduces times exactly.

use wasnap_journal::{ClockSetV1, EnvironmentV1, InitModuleV1, JournalEntry, JournalWriter};
use wasnap_wasi::reapply::EFFECT_CLOCK;
use wasnap_wasi::{EffectRecorder, Trap};

/// Writes a running program's effects to a journal.
pub struct JournalRecorder {
    writer: JournalWriter,
    last_time: Option<u64>,
}

impl JournalRecorder {
    /// Starts a new run's records: the module's hash, then the arguments
    /// and environment the program sees. (A resumed run writes no start of
    /// its own: see [`JournalRecorder::continuing`].)
    pub fn start(
        writer: JournalWriter,
        wasm_hash: [u8; 32],
        args: &[String],
        env: &[String],
    ) -> Result<JournalRecorder, Trap> {
        let mut recorder = JournalRecorder {
            writer,
            last_time: None,
        };
        recorder.record_untimed(InitModuleV1 { wasm_hash }.into())?;
        recorder.record_untimed(
            EnvironmentV1 {
                args: args.to_vec(),
                env: env.to_vec(),
            }
            .into(),
        )?;
        Ok(recorder)
    }

    /// Records into `writer` for a run that continues where the journal
    /// ends (a resumed run: its start is already journaled).
    pub fn continuing(writer: JournalWriter) -> JournalRecorder {
        JournalRecorder {
            writer,
            last_time: None,
        }
    }

    /// The journal written to.
    pub fn writer(&self) -> &JournalWriter {
        &self.writer
    }

    fn fail(&self, source: wasnap_journal::JournalError) -> Trap {
        Trap::Journal {
            journal: self.writer.name().to_owned(),
            source,
        }
    }
}

impl EffectRecorder for JournalRecorder {
    fn record(&mut self, time_ns: u64, entry: JournalEntry<'_>) -> Result<(), Trap> {
        if self.last_time != Some(time_ns) {
            let clock = JournalEntry::ClockSetV1(ClockSetV1 {
                clock_id: EFFECT_CLOCK,
                time_ns,
            });
            self.writer.write(&clock).map_err(|e| self.fail(e))?;
            self.last_time = Some(time_ns);
        }
        self.writer.write(&entry).map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn record_untimed(&mut self, entry: JournalEntry<'_>) -> Result<(), Trap> {
        self.writer.write(&entry).map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn commit_output(&mut self) -> Result<(), Trap> {
        self.writer.flush().map_err(|e| self.fail(e))?;
        Ok(())
    }
}

/// The SHA-256 of a module's bytes, as `InitModuleV1` records it.
pub fn module_hash(wasm: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(wasm).into()
}
