//! `poll_oneoff`: clock subscriptions (relative or absolute) and fd
//! read/write readiness. Regular files and directories are always ready;
//! standard input and sockets are waited on for real.

use std::os::fd::AsFd;
use std::time::Duration;

use crate::abi::{clockid, eventtype, layout, subclockflags};
use crate::ctx::WasiCtx;
use crate::effects::InputRequest;
use crate::errno::{Errno, SysResult};
use crate::fd::Handle;
use crate::memory::GuestMemory;
use wasnap_journal::{self as journal, JournalEntry};

struct Event {
    userdata: u64,
    error: Errno,
    kind: u8,
    nbytes: u64,
    flags: u16,
}

enum Sub {
    /// A clock that fires at this monotonic time (nanoseconds).
    Clock { userdata: u64, deadline: u64 },
    /// Waits on fd readiness.
    Wait { userdata: u64, kind: u8, fd: u32 },
}

/// The events as the ABI lays them out (`EVENT_SIZE` bytes each).
fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut bytes = vec![0u8; events.len() * layout::EVENT_SIZE];
    for (e, b) in events
        .iter()
        .zip(bytes.chunks_exact_mut(layout::EVENT_SIZE))
    {
        b[0..8].copy_from_slice(&e.userdata.to_le_bytes());
        b[8..10].copy_from_slice(&(e.error as u16).to_le_bytes());
        b[10] = e.kind;
        b[16..24].copy_from_slice(&e.nbytes.to_le_bytes());
        b[24..26].copy_from_slice(&e.flags.to_le_bytes());
    }
    bytes
}

/// Writes encoded events at `out` and their count at `nevents`.
fn write_events(mem: &GuestMemory, out: u32, events: &[u8], nevents: u32) -> SysResult {
    mem.write_bytes(out, events)?;
    mem.write_u32(nevents, (events.len() / layout::EVENT_SIZE) as u32)
}

fn poll_socket(
    fd: std::os::fd::BorrowedFd<'_>,
    write: bool,
    timeout: Option<Duration>,
) -> Result<bool, Errno> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let flags = if write { PollFlags::OUT } else { PollFlags::IN };
    let mut fds = [PollFd::new(&fd, flags)];
    let ts = timeout.map(|d| Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as _,
    });
    match poll(&mut fds, ts.as_ref()) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(Errno::from(std::io::Error::from(e))),
    }
}

impl WasiCtx {
    /// Whether the subscriptions include reading standard input (for the
    /// idle snapshot trigger). Unreadable subscriptions count as no.
    pub fn waits_on_stdin(&self, mem: &GuestMemory, subs: u32, nsubs: u32) -> bool {
        let Some(len) = nsubs.checked_mul(layout::SUBSCRIPTION_SIZE) else {
            return false;
        };
        let Ok(bytes) = mem.read_bytes(subs, len) else {
            return false;
        };
        bytes
            .chunks_exact(layout::SUBSCRIPTION_SIZE as usize)
            .any(|raw| {
                let fd = u32::from_le_bytes([raw[16], raw[17], raw[18], raw[19]]);
                raw[8] == eventtype::FD_READ
                    && matches!(self.fds.get(fd).map(|d| &d.handle), Ok(Handle::Stdin))
            })
    }

    /// `poll_oneoff`: waits for clocks and descriptors, and reports the events.
    pub fn poll_oneoff(
        &mut self,
        mem: &GuestMemory,
        subs: u32,
        out: u32,
        nsubs: u32,
        nevents: u32,
    ) -> SysResult {
        if nsubs == 0 {
            return Err(Errno::Inval.into());
        }
        mem.check_range(out, u64::from(nsubs) * layout::EVENT_SIZE as u64)?;
        mem.check_range(nevents, 4)?;
        if !self.recording() {
            let events = self.poll_now(mem, subs, nsubs)?;
            return write_events(mem, out, &events, nevents);
        }
        // An input: what became ready (and when) is journaled, and served
        // from the journal on replay, without waiting.
        let result = self.input(
            InputRequest::Poll {
                subscriptions: nsubs,
            },
            |ctx| {
                let events = ctx.poll_now(mem, subs, nsubs)?;
                Ok(JournalEntry::PollResultV1(journal::PollResultV1 {
                    events: events.into(),
                }))
            },
        )?;
        match result {
            JournalEntry::PollResultV1(p) => write_events(mem, out, &p.events, nevents),
            _ => Err(Errno::Io.into()),
        }
    }

    /// Waits as the subscriptions at `subs` ask; returns the events, encoded.
    fn poll_now(&mut self, mem: &GuestMemory, subs: u32, nsubs: u32) -> SysResult<Vec<u8>> {
        let bytes = mem.read_bytes(
            subs,
            nsubs
                .checked_mul(layout::SUBSCRIPTION_SIZE)
                .ok_or(Errno::Inval)?,
        )?;
        let start = self.clock.monotonic();
        let mut ready: Vec<Event> = Vec::new();
        let mut pending: Vec<Sub> = Vec::new();
        for raw in bytes.chunks_exact(layout::SUBSCRIPTION_SIZE as usize) {
            let u64_at =
                |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default());
            let u32_at =
                |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().unwrap_or_default());
            let userdata = u64_at(0);
            let kind = raw[8];
            match kind {
                eventtype::CLOCK => {
                    let id = u32_at(16);
                    let timeout = u64_at(24);
                    let flags = u16::from_le_bytes([raw[40], raw[41]]);
                    let deadline = match id {
                        clockid::REALTIME | clockid::MONOTONIC
                            if flags & subclockflags::ABSTIME != 0 =>
                        {
                            let now = if id == clockid::REALTIME {
                                self.clock.realtime()
                            } else {
                                start
                            };
                            start.saturating_add(timeout.saturating_sub(now))
                        }
                        clockid::REALTIME | clockid::MONOTONIC => start.saturating_add(timeout),
                        _ => {
                            ready.push(Event {
                                userdata,
                                error: Errno::Inval,
                                kind,
                                nbytes: 0,
                                flags: 0,
                            });
                            continue;
                        }
                    };
                    pending.push(Sub::Clock { userdata, deadline });
                }
                eventtype::FD_READ | eventtype::FD_WRITE => {
                    let fd = u32_at(16);
                    let write = kind == eventtype::FD_WRITE;
                    match self.fds.get(fd) {
                        Err(e) => ready.push(Event {
                            userdata,
                            error: e,
                            kind,
                            nbytes: 0,
                            flags: 0,
                        }),
                        Ok(desc) => match &desc.handle {
                            Handle::File {
                                mount, file, pos, ..
                            } => {
                                let size = self.mounts[*mount].file_size(file).unwrap_or(0);
                                let nbytes = if write { 0 } else { size.saturating_sub(*pos) };
                                ready.push(Event {
                                    userdata,
                                    error: Errno::Success,
                                    kind,
                                    nbytes,
                                    flags: 0,
                                });
                            }
                            Handle::Stdout | Handle::Stderr if write => ready.push(Event {
                                userdata,
                                error: Errno::Success,
                                kind,
                                nbytes: 0,
                                flags: 0,
                            }),
                            Handle::Stdin if !write => {
                                pending.push(Sub::Wait { userdata, kind, fd })
                            }
                            Handle::Stream(_) | Handle::Listener(_) => {
                                pending.push(Sub::Wait { userdata, kind, fd })
                            }
                            _ => ready.push(Event {
                                userdata,
                                error: Errno::Badf,
                                kind,
                                nbytes: 0,
                                flags: 0,
                            }),
                        },
                    }
                }
                _ => return Err(Errno::Inval.into()),
            }
        }

        loop {
            let now = self.clock.monotonic();
            // Fd subscriptions that are ready now.
            let waits: Vec<(u64, u8, u32)> = pending
                .iter()
                .filter_map(|s| match s {
                    Sub::Wait { userdata, kind, fd } => Some((*userdata, *kind, *fd)),
                    Sub::Clock { .. } => None,
                })
                .collect();
            let earliest = pending
                .iter()
                .filter_map(|s| match s {
                    Sub::Clock { deadline, .. } => Some(*deadline),
                    Sub::Wait { .. } => None,
                })
                .min();
            for &(userdata, kind, fd) in &waits {
                if self.fd_ready(fd, kind == eventtype::FD_WRITE, Some(Duration::ZERO))? {
                    ready.push(Event {
                        userdata,
                        error: Errno::Success,
                        kind,
                        nbytes: 1,
                        flags: 0,
                    });
                }
            }
            for s in &pending {
                if let Sub::Clock { userdata, deadline } = s {
                    if *deadline <= now {
                        ready.push(Event {
                            userdata: *userdata,
                            error: Errno::Success,
                            kind: eventtype::CLOCK,
                            nbytes: 0,
                            flags: 0,
                        });
                    }
                }
            }
            if !ready.is_empty() {
                return Ok(encode_events(&ready));
            }
            let remaining = earliest.map(|d| Duration::from_nanos(d.saturating_sub(now)));
            match waits.as_slice() {
                [] => match remaining {
                    Some(d) => self.clock.sleep(d),
                    None => return Err(Errno::Inval.into()),
                },
                // One descriptor: block on it until the earliest deadline.
                [(_, kind, fd)] => {
                    self.fd_ready(*fd, *kind == eventtype::FD_WRITE, remaining)?;
                }
                // Several: wait on the first in short slices, checking all.
                [(_, kind, fd), ..] => {
                    let slice = remaining.map_or(Duration::from_millis(5), |r| {
                        r.min(Duration::from_millis(5))
                    });
                    self.fd_ready(*fd, *kind == eventtype::FD_WRITE, Some(slice))?;
                }
            }
        }
    }

    /// Waits up to `timeout` for `fd` to be ready; a hang-up counts as ready.
    fn fd_ready(&mut self, fd: u32, write: bool, timeout: Option<Duration>) -> Result<bool, Errno> {
        let WasiCtx { fds, stdin, .. } = self;
        match &fds.get(fd)?.handle {
            Handle::Stdin => Ok(stdin.wait_readable(timeout)?),
            Handle::Stream(s) => poll_socket(s.as_fd(), write, timeout),
            Handle::Listener(l) => poll_socket(l.as_fd(), write, timeout),
            _ => Ok(true),
        }
    }
}
