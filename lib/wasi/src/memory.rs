//! Every access to guest linear memory goes through [`GuestMemory`], which
//! checks bounds and turns an out-of-bounds pointer into a [`Trap`] (never an
//! errno and never a host panic).

use wasmer::MemoryView;

use crate::abi::layout::IOVEC_SIZE;
use crate::errno::{SysResult, Trap};

/// A bounds-checked window on the guest's linear memory for one syscall.
pub struct GuestMemory<'a> {
    view: MemoryView<'a>,
}

/// One `iovec`: a guest buffer.
#[derive(Debug, Clone, Copy)]
pub struct IoVec {
    /// The buffer's guest address.
    pub ptr: u32,
    /// Length in bytes.
    pub len: u32,
}

impl<'a> GuestMemory<'a> {
    /// Checked access through `view`.
    pub fn new(view: MemoryView<'a>) -> GuestMemory<'a> {
        GuestMemory { view }
    }

    /// Size of linear memory in bytes.
    pub fn size(&self) -> u64 {
        self.view.data_size()
    }

    fn check(&self, ptr: u64, len: u64) -> SysResult<()> {
        let size = self.size();
        match ptr.checked_add(len) {
            Some(end) if end <= size => Ok(()),
            _ => Err(Trap::OutOfBounds {
                ptr,
                len,
                memory_size: size,
            }
            .into()),
        }
    }

    fn fault(&self, ptr: u32, len: u64) -> Trap {
        Trap::OutOfBounds {
            ptr: ptr.into(),
            len,
            memory_size: self.size(),
        }
    }

    /// Traps unless `[ptr, ptr + len)` lies inside memory. Once checked,
    /// offsets inside the range cannot overflow `u32` (memory is at most
    /// 4 GiB).
    pub fn check_range(&self, ptr: u32, len: u64) -> SysResult<()> {
        self.check(ptr.into(), len)
    }

    /// Copies `len` bytes at `ptr` out of guest memory.
    pub fn read_bytes(&self, ptr: u32, len: u32) -> SysResult<Vec<u8>> {
        self.check(ptr.into(), len.into())?;
        let mut buf = vec![0u8; len as usize];
        self.view
            .read(ptr.into(), &mut buf)
            .map_err(|_| self.fault(ptr, len.into()))?;
        Ok(buf)
    }

    /// Fills `buf` from guest memory at `ptr`.
    pub fn read_into(&self, ptr: u32, buf: &mut [u8]) -> SysResult<()> {
        self.check(ptr.into(), buf.len() as u64)?;
        self.view
            .read(ptr.into(), buf)
            .map_err(|_| self.fault(ptr, buf.len() as u64))?;
        Ok(())
    }

    /// Writes `data` into guest memory at `ptr`.
    pub fn write_bytes(&self, ptr: u32, data: &[u8]) -> SysResult<()> {
        self.check(ptr.into(), data.len() as u64)?;
        self.view
            .write(ptr.into(), data)
            .map_err(|_| self.fault(ptr, data.len() as u64))?;
        Ok(())
    }

    /// Reads a byte.
    pub fn read_u8(&self, ptr: u32) -> SysResult<u8> {
        let mut b = [0u8; 1];
        self.read_into(ptr, &mut b)?;
        Ok(b[0])
    }

    /// Reads a little-endian u16.
    pub fn read_u16(&self, ptr: u32) -> SysResult<u16> {
        let mut b = [0u8; 2];
        self.read_into(ptr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian u32.
    pub fn read_u32(&self, ptr: u32) -> SysResult<u32> {
        let mut b = [0u8; 4];
        self.read_into(ptr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian u64.
    pub fn read_u64(&self, ptr: u32) -> SysResult<u64> {
        let mut b = [0u8; 8];
        self.read_into(ptr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a byte.
    pub fn write_u8(&self, ptr: u32, v: u8) -> SysResult<()> {
        self.write_bytes(ptr, &[v])
    }

    /// Writes a little-endian u32.
    pub fn write_u32(&self, ptr: u32, v: u32) -> SysResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Writes a little-endian u64.
    pub fn write_u64(&self, ptr: u32, v: u64) -> SysResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// A guest string (a path or a symlink target): checked bounds, then
    /// UTF-8 (invalid UTF-8 is `ILSEQ` for the guest, not a trap).
    pub fn read_string(&self, ptr: u32, len: u32) -> SysResult<String> {
        let bytes = self.read_bytes(ptr, len)?;
        String::from_utf8(bytes).map_err(|_| crate::errno::Errno::Ilseq.into())
    }

    /// Reads an array of `iovec`s, checking every buffer lies inside memory.
    pub fn read_iovecs(&self, iovs: u32, count: u32) -> SysResult<Vec<IoVec>> {
        let total = u64::from(count) * u64::from(IOVEC_SIZE);
        self.check(iovs.into(), total)?;
        let mut out = Vec::with_capacity(count as usize);
        for i in 0..count {
            let at = iovs + i * IOVEC_SIZE;
            let iov = IoVec {
                ptr: self.read_u32(at)?,
                len: self.read_u32(at + 4)?,
            };
            self.check(iov.ptr.into(), iov.len.into())?;
            out.push(iov);
        }
        Ok(out)
    }

    /// Gathers the bytes of `ciovec`s (for writes), at most `limit` of them:
    /// a write may be short, and many buffers naming the same memory must
    /// not make the host allocate more than the guest could mean.
    pub fn gather(&self, iovs: &[IoVec], limit: usize) -> SysResult<Vec<u8>> {
        let total = iovs
            .iter()
            .map(|v| v.len as usize)
            .fold(0usize, usize::saturating_add)
            .min(limit);
        let mut data = Vec::with_capacity(total);
        for iov in iovs {
            let start = data.len();
            if start == total {
                break;
            }
            // An empty buffer among others is skipped, not an end.
            let take = (iov.len as usize).min(total - start);
            data.resize(start + take, 0);
            self.read_into(iov.ptr, &mut data[start..])?;
        }
        Ok(data)
    }

    /// Scatters `data` into `iovec`s in order (for reads); `data` is never
    /// longer than their total length.
    pub fn scatter(&self, iovs: &[IoVec], data: &[u8]) -> SysResult<()> {
        let mut rest = data;
        for iov in iovs {
            if rest.is_empty() {
                break;
            }
            let n = rest.len().min(iov.len as usize);
            self.write_bytes(iov.ptr, &rest[..n])?;
            rest = &rest[n..];
        }
        Ok(())
    }
}

/// Total length of a list of `iovec`s, saturating (a guest can describe more
/// than 4 GiB with overlapping buffers).
pub fn iovecs_len(iovs: &[IoVec]) -> usize {
    iovs.iter()
        .fold(0usize, |acc, v| acc.saturating_add(v.len as usize))
}

impl GuestMemory<'_> {
    /// Writes a 16-bit flags value (`roflags`).
    pub fn write_u16_flags(&self, ptr: u32, v: u16) -> SysResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }
}
