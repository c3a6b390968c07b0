//! args, environment, clocks, randomness, exit, signals, yield.

use crate::abi::{clockid, signal};
use crate::ctx::WasiCtx;
use crate::effects::InputRequest;
use crate::errno::{Errno, SysResult, Trap};
use crate::memory::GuestMemory;
use wasnap_journal::{self as journal, JournalEntry};

fn sizes(strings: &[String]) -> (u32, u32) {
    let count = strings.len() as u32;
    let bytes = strings.iter().map(|s| s.len() as u32 + 1).sum();
    (count, bytes)
}

/// Writes a `char**` array and the NUL-terminated strings it points to.
fn write_strings(mem: &GuestMemory, strings: &[String], ptrs: u32, buf: u32) -> SysResult {
    let (count, bytes) = sizes(strings);
    mem.check_range(ptrs, u64::from(count) * 4)?;
    mem.check_range(buf, bytes.into())?;
    let mut at = buf;
    for (i, s) in strings.iter().enumerate() {
        mem.write_u32(ptrs + 4 * i as u32, at)?;
        mem.write_bytes(at, s.as_bytes())?;
        mem.write_u8(at + s.len() as u32, 0)?;
        at += s.len() as u32 + 1;
    }
    Ok(())
}

impl WasiCtx {
    /// Journals the program's exit and commits the journal.
    pub fn record_exit(&mut self, code: u32) -> SysResult {
        if let Some(recorder) = &mut self.recorder {
            recorder.record_untimed(JournalEntry::ProcessExitV1(journal::ProcessExitV1 {
                exit_code: code,
            }))?;
            recorder.commit_output()?;
        }
        Ok(())
    }

    /// `args_sizes_get`: the number of arguments and the bytes their strings take.
    pub fn args_sizes_get(&mut self, mem: &GuestMemory, argc: u32, buf_size: u32) -> SysResult {
        let (count, bytes) = sizes(&self.args);
        mem.write_u32(argc, count)?;
        mem.write_u32(buf_size, bytes)
    }

    /// `args_get`: writes the argument pointers to `argv` and the strings to `buf`.
    pub fn args_get(&mut self, mem: &GuestMemory, argv: u32, argv_buf: u32) -> SysResult {
        write_strings(mem, &self.args, argv, argv_buf)
    }

    /// `environ_sizes_get`: the number of variables and the bytes their strings take.
    pub fn environ_sizes_get(&mut self, mem: &GuestMemory, count: u32, buf_size: u32) -> SysResult {
        let (n, bytes) = sizes(&self.env);
        mem.write_u32(count, n)?;
        mem.write_u32(buf_size, bytes)
    }

    /// `environ_get`: writes the `KEY=VALUE` pointers and strings.
    pub fn environ_get(&mut self, mem: &GuestMemory, environ: u32, environ_buf: u32) -> SysResult {
        write_strings(mem, &self.env, environ, environ_buf)
    }

    /// `clock_res_get`: the resolution of a clock.
    pub fn clock_res_get(&mut self, mem: &GuestMemory, id: u32, out: u32) -> SysResult {
        match id {
            clockid::REALTIME
            | clockid::MONOTONIC
            | clockid::PROCESS_CPUTIME_ID
            | clockid::THREAD_CPUTIME_ID => mem.write_u64(out, self.clock.resolution()),
            _ => Err(Errno::Inval.into()),
        }
    }

    /// `clock_time_get`: the time of a clock, in nanoseconds.
    pub fn clock_time_get(
        &mut self,
        mem: &GuestMemory,
        id: u32,
        _precision: u64,
        out: u32,
    ) -> SysResult {
        if !matches!(
            id,
            clockid::REALTIME
                | clockid::MONOTONIC
                | clockid::PROCESS_CPUTIME_ID
                | clockid::THREAD_CPUTIME_ID
        ) {
            return Err(Errno::Inval.into());
        }
        mem.check_range(out, 8)?;
        // An input: journaled, and served from the journal on replay.
        let read = self.input(InputRequest::Clock { clock_id: id }, |ctx| {
            let time_ns = ctx.read_clock(id);
            Ok(JournalEntry::ClockReadV1(journal::ClockReadV1 {
                clock_id: id,
                time_ns,
            }))
        })?;
        match read {
            JournalEntry::ClockReadV1(c) => mem.write_u64(out, c.time_ns),
            _ => Err(Errno::Io.into()),
        }
    }

    /// `random_get`: fills a buffer with random bytes.
    pub fn random_get(&mut self, mem: &GuestMemory, buf: u32, len: u32) -> SysResult {
        // Check the whole range first, so that a bad pointer fills nothing.
        mem.check_range(buf, len.into())?;
        if !self.recording() {
            let mut chunk = vec![0u8; (len as usize).min(64 * 1024)];
            let mut done = 0u32;
            while done < len {
                let n = ((len - done) as usize).min(chunk.len());
                self.random.fill(&mut chunk[..n]).map_err(|_| Errno::Io)?;
                mem.write_bytes(buf + done, &chunk[..n])?;
                done += n as u32;
            }
            return Ok(());
        }
        // An input: journaled, and served from the journal on replay.
        let bytes = self.input(InputRequest::Random { len }, |ctx| {
            let mut data = vec![0u8; len as usize];
            ctx.random.fill(&mut data).map_err(|_| Errno::Io)?;
            Ok(JournalEntry::RandomBytesV1(journal::RandomBytesV1 {
                data: data.into(),
            }))
        })?;
        match bytes {
            JournalEntry::RandomBytesV1(r) => mem.write_bytes(buf, &r.data),
            _ => Err(Errno::Io.into()),
        }
    }

    /// `proc_exit`: ends the program (journals the exit, then traps with the code).
    pub fn proc_exit(&mut self, code: u32) -> SysResult {
        self.record_exit(code)?;
        let _ = self.stdout.flush();
        let _ = self.stderr.flush();
        Err(Trap::Exit(code).into())
    }

    /// Signals whose default action ignores them (or stops the process,
    /// which a WASI process cannot do) succeed and do nothing; the others end
    /// the program as if killed by the signal.
    pub fn proc_raise(&mut self, sig: u8) -> SysResult {
        match sig {
            signal::NONE => Ok(()),
            signal::CHLD | signal::CONT | signal::URG | signal::WINCH => Ok(()),
            signal::STOP | signal::TSTP | signal::TTIN | signal::TTOU => Ok(()),
            s if s <= signal::LAST => {
                let _ = self.stdout.flush();
                Err(Trap::Signal(s).into())
            }
            _ => Err(Errno::Inval.into()),
        }
    }

    /// `sched_yield`: yields (a no-op for one thread).
    pub fn sched_yield(&mut self) -> SysResult {
        std::thread::yield_now();
        Ok(())
    }
}
