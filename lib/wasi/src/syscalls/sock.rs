//! Socket calls on preopened listeners and the connections they accept.

use std::io::{Read, Write};
use std::net::Shutdown;

use crate::abi::{fdflags, rights, sock};
use crate::ctx::WasiCtx;
use crate::errno::{Errno, SysResult};
use crate::fd::{Descriptor, Handle};
use crate::memory::{iovecs_len, GuestMemory};

use super::fd::MAX_IO;

impl WasiCtx {
    /// `sock_accept`: accepts a connection on a preopened listener.
    pub fn sock_accept(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        flags: u16,
        fd_out: u32,
    ) -> SysResult {
        if flags & !fdflags::NONBLOCK != 0 {
            return Err(Errno::Inval.into());
        }
        let desc = self.fds.get(fd)?;
        let Handle::Listener(listener) = &desc.handle else {
            return Err(Errno::Notsock.into());
        };
        desc.require(rights::SOCK_ACCEPT)?;
        let (stream, _) = listener.accept()?;
        stream.set_nonblocking(flags & fdflags::NONBLOCK != 0)?;
        let new = self.fds.insert(Descriptor::new(
            Handle::Stream(stream),
            rights::SOCKET,
            0,
            flags,
        ))?;
        mem.write_u32(fd_out, new)
    }

    /// `sock_recv`: receives from a socket.
    #[allow(clippy::too_many_arguments)]
    pub fn sock_recv(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        flags: u16,
        nread: u32,
        oflags: u32,
    ) -> SysResult {
        if flags & !(sock::RECV_PEEK | sock::RECV_WAITALL) != 0 {
            return Err(Errno::Inval.into());
        }
        let iovs = mem.read_iovecs(iovs, iovs_len)?;
        let total = iovecs_len(&iovs).min(MAX_IO);
        if !matches!(self.fds.get(fd)?.handle, Handle::Stream(_)) {
            return Err(Errno::Notsock.into());
        }
        let receive = |ctx: &mut WasiCtx| -> SysResult<Vec<u8>> {
            let Handle::Stream(stream) = &mut ctx.fds.get_mut(fd)?.handle else {
                return Err(Errno::Notsock.into());
            };
            let mut buf = vec![0u8; total];
            let n = if flags & sock::RECV_PEEK != 0 {
                stream.peek(&mut buf)?
            } else if flags & sock::RECV_WAITALL != 0 {
                let mut got = 0;
                while got < buf.len() {
                    match stream.read(&mut buf[got..])? {
                        0 => break,
                        n => got += n,
                    }
                }
                got
            } else {
                stream.read(&mut buf)?
            };
            buf.truncate(n);
            Ok(buf)
        };
        // An input: journaled, and served from the journal on replay.
        let data = if self.recording() {
            self.input_read(fd, total, receive)?
        } else {
            receive(self)?
        };
        mem.scatter(&iovs, &data)?;
        mem.write_u32(nread, data.len() as u32)?;
        mem.write_u16_flags(oflags, 0)
    }

    /// `sock_send`: sends on a socket.
    pub fn sock_send(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        flags: u16,
        nwritten: u32,
    ) -> SysResult {
        if flags != 0 {
            return Err(Errno::Inval.into());
        }
        let iovs = mem.read_iovecs(iovs, iovs_len)?;
        let data = mem.gather(&iovs, MAX_IO)?;
        self.commit_output()?;
        let desc = self.fds.get_mut(fd)?;
        let Handle::Stream(stream) = &mut desc.handle else {
            return Err(Errno::Notsock.into());
        };
        let n = stream.write(&data)?;
        mem.write_u32(nwritten, n as u32)
    }

    /// `sock_shutdown`: shuts down one or both directions of a socket.
    /// The descriptor is checked before the flags: a closed one is `BADF`
    /// whatever `how` says.
    pub fn sock_shutdown(&mut self, fd: u32, how: u32) -> SysResult {
        let desc = self.fds.get(fd)?;
        let Handle::Stream(stream) = &desc.handle else {
            return Err(Errno::Notsock.into());
        };
        let how = match u8::try_from(how) {
            Ok(sock::SHUT_RD) => Shutdown::Read,
            Ok(sock::SHUT_WR) => Shutdown::Write,
            Ok(h) if h == sock::SHUT_RD | sock::SHUT_WR => Shutdown::Both,
            _ => return Err(Errno::Inval.into()),
        };
        stream.shutdown(how)?;
        Ok(())
    }
}
