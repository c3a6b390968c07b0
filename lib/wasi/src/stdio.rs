//! The standard streams: the host's, or buffers (tests, embedding).

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the guest's standard input comes from.
pub trait InputStream: Send {
    /// Reads up to `buf.len()` bytes; 0 at end of input. Blocks until data.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Waits up to `timeout` (forever with `None`) until a read would not
    /// block; `Ok(false)` on timeout.
    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool>;
    /// Whether this is a terminal (the guest's `isatty`).
    fn is_terminal(&self) -> bool {
        false
    }
}

/// Where the guest's standard output or error goes.
pub trait OutputStream: Send {
    /// Writes all of `data`.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Pushes buffered output out (default: nothing to do).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Whether this is a terminal (the guest's `isatty`).
    fn is_terminal(&self) -> bool {
        false
    }
}

/// The host's standard input.
#[derive(Debug, Default)]
pub struct HostStdin;

impl InputStream for HostStdin {
    fn is_terminal(&self) -> bool {
        io::IsTerminal::is_terminal(&io::stdin())
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::stdin().lock().read(buf)
    }

    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let stdin = io::stdin();
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        let ts = timeout.map(|d| Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: d.subsec_nanos() as _,
        });
        loop {
            match poll(&mut fds, ts.as_ref()) {
                Ok(n) => return Ok(n > 0),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The host's standard output (unbuffered: the guest's libc buffers).
#[derive(Debug, Default)]
pub struct HostStdout;

impl OutputStream for HostStdout {
    fn is_terminal(&self) -> bool {
        io::IsTerminal::is_terminal(&io::stdout())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(data)?;
        out.flush()
    }
}

/// The host's standard error.
#[derive(Debug, Default)]
pub struct HostStderr;

impl OutputStream for HostStderr {
    fn is_terminal(&self) -> bool {
        io::IsTerminal::is_terminal(&io::stderr())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        io::stderr().lock().write_all(data)
    }
}

/// Input from a byte buffer; always ready.
#[derive(Debug, Default)]
pub struct BufferInput {
    data: Vec<u8>,
    pos: usize,
}

impl BufferInput {
    /// Input that yields `data`, then end of file.
    pub fn new(data: impl Into<Vec<u8>>) -> BufferInput {
        BufferInput {
            data: data.into(),
            pos: 0,
        }
    }
}

impl InputStream for BufferInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }

    fn wait_readable(&mut self, _timeout: Option<Duration>) -> io::Result<bool> {
        Ok(true)
    }
}

/// Output collected into a shared buffer; clone it to read what was written.
#[derive(Debug, Default, Clone)]
pub struct SharedOutput(pub Arc<Mutex<Vec<u8>>>);

impl SharedOutput {
    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl OutputStream for SharedOutput {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("output buffer poisoned"))?
            .extend_from_slice(data);
        Ok(())
    }
}
