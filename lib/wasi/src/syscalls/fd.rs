//! Descriptor calls: `fd_*`.

use std::io::{Read, Write};

use crate::abi::{advice, fdflags, fstflags, layout, rights, whence};
use crate::ctx::WasiCtx;
use crate::errno::{Errno, SysResult};
use crate::fd::{Descriptor, Handle};
use crate::fs::{FileRef, Resolved, Stat, Target};
use crate::memory::{iovecs_len, GuestMemory};
use wasnap_journal::{self as journal, JournalEntry};

/// Longest single read or write the host performs; longer requests are
/// served short, which every caller must handle anyway.
pub(crate) const MAX_IO: usize = 16 << 20;

pub(crate) fn write_filestat(mem: &GuestMemory, ptr: u32, s: &Stat) -> SysResult {
    let mut b = [0u8; layout::FILESTAT_SIZE];
    b[0..8].copy_from_slice(&s.dev.to_le_bytes());
    b[8..16].copy_from_slice(&s.ino.to_le_bytes());
    b[16] = s.filetype;
    b[24..32].copy_from_slice(&s.nlink.to_le_bytes());
    b[32..40].copy_from_slice(&s.size.to_le_bytes());
    b[40..48].copy_from_slice(&s.atim.to_le_bytes());
    b[48..56].copy_from_slice(&s.mtim.to_le_bytes());
    b[56..64].copy_from_slice(&s.ctim.to_le_bytes());
    mem.write_bytes(ptr, &b)
}

/// The times actually set, as a journal entry states them: explicit values
/// (the `*_NOW` flags resolved), so that replay sets the same times.
pub(crate) fn resolved_times(atim: Option<u64>, mtim: Option<u64>) -> (u64, u64, u16) {
    let mut flags = 0;
    if atim.is_some() {
        flags |= fstflags::ATIM;
    }
    if mtim.is_some() {
        flags |= fstflags::MTIM;
    }
    (atim.unwrap_or(0), mtim.unwrap_or(0), flags)
}

/// Decodes `fstflags` into the times to set (`None`: leave alone).
pub(crate) fn times_from_flags(
    flags: u16,
    atim: u64,
    mtim: u64,
    now: u64,
) -> Result<(Option<u64>, Option<u64>), Errno> {
    if flags & !(fstflags::ATIM | fstflags::ATIM_NOW | fstflags::MTIM | fstflags::MTIM_NOW) != 0 {
        return Err(Errno::Inval);
    }
    if (flags & fstflags::ATIM != 0 && flags & fstflags::ATIM_NOW != 0)
        || (flags & fstflags::MTIM != 0 && flags & fstflags::MTIM_NOW != 0)
    {
        return Err(Errno::Inval);
    }
    let a = if flags & fstflags::ATIM_NOW != 0 {
        Some(now)
    } else if flags & fstflags::ATIM != 0 {
        Some(atim)
    } else {
        None
    };
    let m = if flags & fstflags::MTIM_NOW != 0 {
        Some(now)
    } else if flags & fstflags::MTIM != 0 {
        Some(mtim)
    } else {
        None
    };
    Ok((a, m))
}

/// The errno for a file operation on a descriptor that is not a regular
/// file: `BADF` for directories (as wasmtime), `SPIPE` for streams.
fn not_a_file(handle: &Handle) -> Errno {
    match handle {
        Handle::Dir { .. } => Errno::Badf,
        _ => Errno::Spipe,
    }
}

fn stdio_stat(filetype: u8) -> Stat {
    Stat {
        dev: 0,
        ino: 0,
        filetype,
        nlink: 1,
        size: 0,
        atim: 0,
        mtim: 0,
        ctim: 0,
    }
}

impl WasiCtx {
    /// The filetype the guest sees. Standard streams are character devices
    /// only when the host's are terminals (so the guest's `isatty` tells the
    /// truth); otherwise their type is unknown, as wasmtime reports.
    pub(crate) fn filetype_of(&self, handle: &Handle) -> u8 {
        let terminal = match handle {
            Handle::Stdin => self.stdin.is_terminal(),
            Handle::Stdout => self.stdout.is_terminal(),
            Handle::Stderr => self.stderr.is_terminal(),
            other => return other.filetype(),
        };
        if terminal {
            crate::abi::filetype::CHARACTER_DEVICE
        } else {
            crate::abi::filetype::UNKNOWN
        }
    }

    /// `fd_advise`: checks the advice and the descriptor; the advice itself changes nothing.
    pub fn fd_advise(&mut self, fd: u32, _offset: u64, _len: u64, advice: u8) -> SysResult {
        let desc = self.fds.get(fd)?;
        if advice > advice::NOREUSE {
            return Err(Errno::Inval.into());
        }
        match desc.handle {
            Handle::File { .. } => desc.require(rights::FD_ADVISE)?,
            Handle::Dir { .. } => return Err(Errno::Badf.into()),
            _ => return Err(Errno::Spipe.into()),
        }
        self.now();
        self.record(JournalEntry::FileDescriptorAdviseV1(
            journal::FileDescriptorAdviseV1 {
                fd,
                offset: _offset,
                len: _len,
                advice,
            },
        ))
    }

    /// `fd_allocate`: makes sure the file is at least `offset + len` bytes long.
    pub fn fd_allocate(&mut self, fd: u32, offset: u64, len: u64) -> SysResult {
        let now = self.now();
        let desc = self.fds.get(fd)?;
        let Handle::File { mount, file, .. } = &desc.handle else {
            return Err(not_a_file(&desc.handle).into());
        };
        if !desc.writable() {
            return Err(Errno::Badf.into());
        }
        if len == 0 {
            return Err(Errno::Inval.into());
        }
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= i64::MAX as u64)
            .ok_or(Errno::Fbig)?;
        let m = &mut self.mounts[*mount];
        if m.file_size(file)? < end {
            // Out of room is `NOSPC` for an allocation (`FBIG` for a resize).
            m.set_len(file, end, now).map_err(|e| match e {
                Errno::Fbig => Errno::Nospc,
                other => other,
            })?;
        }
        self.record(JournalEntry::FileDescriptorAllocateV1(
            journal::FileDescriptorAllocateV1 { fd, offset, len },
        ))
    }

    /// `fd_close`: closes a descriptor.
    pub fn fd_close(&mut self, fd: u32) -> SysResult {
        let desc = self.fds.remove(fd)?;
        self.release(desc.handle);
        self.now();
        self.record(JournalEntry::CloseFileDescriptorV1(
            journal::CloseFileDescriptorV1 { fd },
        ))
    }

    /// Replays a journaled `DuplicateFileDescriptorV1` (WASIX's `fd_dup2`,
    /// and how compaction moves a parked descriptor into place): `to`
    /// becomes a second descriptor on what `from` refers to, with its
    /// position, rights and flags, replacing whatever `to` held. WASI
    /// preview1 cannot share a description, so the two positions move
    /// apart from here on (compaction closes `from` at once).
    pub fn duplicate_for_replay(&mut self, from: u32, to: u32) -> SysResult {
        let desc = self.fds.get(from)?;
        let handle = match &desc.handle {
            Handle::Stdin => Handle::Stdin,
            Handle::Stdout => Handle::Stdout,
            Handle::Stderr => Handle::Stderr,
            Handle::File {
                mount,
                file,
                pos,
                guest_path,
            } => {
                let file = match file {
                    FileRef::Mem(ino) => FileRef::Mem(*ino),
                    FileRef::Host(f) => FileRef::Host(f.try_clone()?),
                };
                Handle::File {
                    mount: *mount,
                    file,
                    pos: *pos,
                    guest_path: guest_path.clone(),
                }
            }
            Handle::Dir {
                mount,
                dir,
                preopen,
                guest_path,
            } => Handle::Dir {
                mount: *mount,
                dir: dir.clone(),
                preopen: *preopen,
                guest_path: guest_path.clone(),
            },
            Handle::Listener(l) => Handle::Listener(l.try_clone()?),
            Handle::Stream(s) => Handle::Stream(s.try_clone()?),
        };
        let copy = Descriptor::new(handle, desc.rights, desc.inheriting, desc.flags);
        // The copy holds what it refers to, as an open does.
        match &copy.handle {
            Handle::File {
                mount,
                file: FileRef::Mem(ino),
                ..
            } => {
                if let Some(m) = self.mounts.get_mut(*mount).and_then(|m| m.mem()) {
                    m.retain(*ino);
                }
            }
            Handle::Dir { mount, dir, .. } => {
                if let Some(m) = self.mounts.get_mut(*mount) {
                    m.retain_dir(dir);
                }
            }
            _ => {}
        }
        if let Some(old) = self.fds.insert_at(to, copy) {
            self.release(old.handle);
        }
        Ok(())
    }

    /// Lets go of what a closed (or replaced) descriptor held.
    pub(crate) fn release(&mut self, handle: Handle) {
        match handle {
            Handle::File { mount, file, .. } => {
                if let Some(m) = self.mounts.get_mut(mount) {
                    m.release_file(&file);
                }
            }
            Handle::Dir { mount, dir, .. } => {
                if let Some(m) = self.mounts.get_mut(mount) {
                    m.release_dir(&dir);
                }
            }
            _ => {}
        }
    }

    /// `fd_datasync`: flushes a file's data.
    pub fn fd_datasync(&mut self, fd: u32) -> SysResult {
        self.sync(fd, true)
    }

    /// `fd_sync`: flushes a file's data and metadata.
    pub fn fd_sync(&mut self, fd: u32) -> SysResult {
        self.sync(fd, false)
    }

    fn sync(&mut self, fd: u32, data_only: bool) -> SysResult {
        let desc = self.fds.get(fd)?;
        match &desc.handle {
            Handle::File { mount, file, .. } => Ok(self.mounts[*mount].sync(file, data_only)?),
            Handle::Dir { .. } => Ok(()),
            Handle::Stdout => Ok(self.stdout.flush()?),
            Handle::Stderr => Ok(self.stderr.flush()?),
            _ => Err(Errno::Inval.into()),
        }
    }

    /// `fd_fdstat_get`: file type, flags and rights of a descriptor.
    pub fn fd_fdstat_get(&mut self, mem: &GuestMemory, fd: u32, out: u32) -> SysResult {
        let desc = self.fds.get(fd)?;
        let mut b = [0u8; layout::FDSTAT_SIZE];
        b[0] = self.filetype_of(&desc.handle);
        b[2..4].copy_from_slice(&desc.flags.to_le_bytes());
        b[8..16].copy_from_slice(&desc.rights.to_le_bytes());
        b[16..24].copy_from_slice(&desc.inheriting.to_le_bytes());
        mem.write_bytes(out, &b)
    }

    /// `fd_fdstat_set_flags`: sets a descriptor's `fdflags`.
    pub fn fd_fdstat_set_flags(&mut self, fd: u32, flags: u16) -> SysResult {
        if flags & !fdflags::ALL != 0 {
            return Err(Errno::Inval.into());
        }
        let desc = self.fds.get_mut(fd)?;
        desc.require(rights::FD_FDSTAT_SET_FLAGS)?;
        match &desc.handle {
            Handle::Stream(s) => s.set_nonblocking(flags & fdflags::NONBLOCK != 0)?,
            Handle::Listener(l) => l.set_nonblocking(flags & fdflags::NONBLOCK != 0)?,
            _ => {}
        }
        desc.flags = flags;
        self.now();
        self.record(JournalEntry::FileDescriptorSetFlagsV1(
            journal::FileDescriptorSetFlagsV1 { fd, flags },
        ))
    }

    /// `fd_fdstat_set_rights`: narrows a descriptor's rights (never widens them).
    pub fn fd_fdstat_set_rights(&mut self, fd: u32, base: u64, inheriting: u64) -> SysResult {
        let desc = self.fds.get_mut(fd)?;
        if base & !desc.rights != 0 || inheriting & !desc.inheriting != 0 {
            return Err(Errno::Notcapable.into());
        }
        desc.rights = base;
        desc.inheriting = inheriting;
        self.now();
        self.record(JournalEntry::FileDescriptorSetRightsV1(
            journal::FileDescriptorSetRightsV1 {
                fd,
                fs_rights_base: base,
                fs_rights_inheriting: inheriting,
            },
        ))
    }

    /// `fd_filestat_get`: the attributes of an open file.
    pub fn fd_filestat_get(&mut self, mem: &GuestMemory, fd: u32, out: u32) -> SysResult {
        let desc = self.fds.get(fd)?;
        let stat = match &desc.handle {
            Handle::File { mount, file, .. } => {
                desc.require(rights::FD_FILESTAT_GET)?;
                self.mounts[*mount].file_stat(file)?
            }
            Handle::Dir { mount, dir, .. } => self.mounts[*mount].stat_dir(dir)?,
            other => stdio_stat(self.filetype_of(other)),
        };
        write_filestat(mem, out, &stat)
    }

    /// `fd_filestat_set_size`: truncates or extends an open file.
    pub fn fd_filestat_set_size(&mut self, fd: u32, size: u64) -> SysResult {
        let now = self.now();
        let desc = self.fds.get(fd)?;
        match &desc.handle {
            Handle::File { mount, file, .. } => {
                if !desc.writable() {
                    return Err(Errno::Badf.into());
                }
                if size > i64::MAX as u64 {
                    return Err(Errno::Fbig.into());
                }
                self.mounts[*mount].set_len(file, size, now)?;
            }
            Handle::Dir { .. } => return Err(Errno::Badf.into()),
            _ => return Err(Errno::Inval.into()),
        }
        self.record(JournalEntry::FileDescriptorSetSizeV1(
            journal::FileDescriptorSetSizeV1 { fd, size },
        ))
    }

    /// `fd_filestat_set_times`: sets an open file's access and modification times.
    pub fn fd_filestat_set_times(
        &mut self,
        fd: u32,
        atim: u64,
        mtim: u64,
        flags: u16,
    ) -> SysResult {
        let now = self.now();
        let (a, m) = times_from_flags(flags, atim, mtim, now)?;
        let desc = self.fds.get(fd)?;
        match &desc.handle {
            Handle::File { mount, file, .. } => {
                self.mounts[*mount].file_set_times(file, a, m, now)?;
            }
            Handle::Dir { mount, dir, .. } => {
                let resolved = Resolved {
                    target: Target::SelfDir(dir.clone()),
                    must_be_dir: false,
                };
                self.mounts[*mount].set_times(&resolved, a, m, now)?;
            }
            _ => return Err(Errno::Badf.into()),
        }
        let (atim, mtim, fst_flags) = resolved_times(a, m);
        self.record(JournalEntry::FileDescriptorSetTimesV1(
            journal::FileDescriptorSetTimesV1 {
                fd,
                atim,
                mtim,
                fst_flags,
            },
        ))
    }

    /// `fd_pread`: reads at an offset without moving the position.
    pub fn fd_pread(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nread: u32,
    ) -> SysResult {
        let iovs = mem.read_iovecs(iovs, iovs_len)?;
        let desc = self.fds.get(fd)?;
        let Handle::File { mount, .. } = &desc.handle else {
            return Err(not_a_file(&desc.handle).into());
        };
        if !desc.readable() {
            return Err(Errno::Badf.into());
        }
        let total = iovecs_len(&iovs).min(MAX_IO);
        let journaled = self.mounts[*mount].is_memory();
        let read_at = |ctx: &mut WasiCtx| -> SysResult<Vec<u8>> {
            let Handle::File { mount, file, .. } = &ctx.fds.get(fd)?.handle else {
                return Err(Errno::Badf.into());
            };
            let mut buf = vec![0u8; total];
            let n = ctx.mounts[*mount].read_at(file, offset, &mut buf)?;
            buf.truncate(n);
            Ok(buf)
        };
        // Journaled files read the same on replay; host files are inputs.
        let data = if journaled || !self.recording() {
            read_at(self)?
        } else {
            self.input_read(fd, total, read_at)?
        };
        mem.scatter(&iovs, &data)?;
        mem.write_u32(nread, data.len() as u32)
    }

    /// `fd_pwrite`: writes at an offset without moving the position.
    pub fn fd_pwrite(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        offset: u64,
        nwritten: u32,
    ) -> SysResult {
        let now = self.now();
        let iovs = mem.read_iovecs(iovs, iovs_len)?;
        let data = mem.gather(&iovs, MAX_IO)?;
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|e| e > i64::MAX as u64)
        {
            return Err(Errno::Fbig.into());
        }
        let desc = self.fds.get(fd)?;
        let Handle::File { pos, .. } = &desc.handle else {
            return Err(not_a_file(&desc.handle).into());
        };
        if !desc.writable() {
            return Err(Errno::Badf.into());
        }
        let pos = *pos;
        let external = self.recording() && self.leaves_the_process(fd);
        // Written to the host once already: checked, not written again
        // (unless the program diverged here and went on live).
        let replayed = if external && self.replaying() {
            self.replay_external(JournalEntry::FileDescriptorWriteV1(
                journal::FileDescriptorWriteV1 {
                    fd,
                    offset,
                    data: data.as_slice().into(),
                },
            ))?
        } else {
            None
        };
        let n = if let Some(written) = replayed {
            let JournalEntry::FileDescriptorWriteV1(w) = written else {
                return Err(Errno::Io.into());
            };
            w.data.len()
        } else {
            if external {
                self.commit_output()?;
            }
            let Handle::File { mount, file, .. } = &self.fds.get(fd)?.handle else {
                return Err(Errno::Badf.into());
            };
            let n = self.mounts[*mount].write_at(file, offset, &data, now)?;
            // Journaled as a write, which leaves the position after the
            // data, and (unless that is where it was) a seek back.
            self.record(JournalEntry::FileDescriptorWriteV1(
                journal::FileDescriptorWriteV1 {
                    fd,
                    offset,
                    data: data[..n].into(),
                },
            ))?;
            n
        };
        mem.write_u32(nwritten, n as u32)?;
        if pos == offset + n as u64 {
            return Ok(());
        }
        self.record(JournalEntry::FileDescriptorSeekV1(
            journal::FileDescriptorSeekV1 {
                fd,
                offset: pos as i64,
                whence: whence::SET,
            },
        ))
    }

    /// `fd_prestat_get`: describes a preopened directory.
    pub fn fd_prestat_get(&mut self, mem: &GuestMemory, fd: u32, out: u32) -> SysResult {
        match &self.fds.get(fd)?.handle {
            Handle::Dir {
                preopen: true,
                mount,
                ..
            } => {
                let len = self.mounts[*mount].guest_path.len() as u32;
                let mut b = [0u8; layout::PRESTAT_SIZE];
                b[4..8].copy_from_slice(&len.to_le_bytes()); // tag 0: a directory
                mem.write_bytes(out, &b)
            }
            _ => Err(Errno::Badf.into()),
        }
    }

    /// `fd_prestat_dir_name`: the guest path of a preopened directory.
    pub fn fd_prestat_dir_name(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        path: u32,
        len: u32,
    ) -> SysResult {
        match &self.fds.get(fd)?.handle {
            Handle::Dir {
                preopen: true,
                mount,
                ..
            } => {
                let name = self.mounts[*mount].guest_path.as_bytes();
                if (len as usize) < name.len() {
                    return Err(Errno::Nametoolong.into());
                }
                mem.write_bytes(path, name)
            }
            _ => Err(Errno::Badf.into()),
        }
    }

    /// `fd_read`: reads into the guest's buffers and moves the position.
    pub fn fd_read(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        nread: u32,
    ) -> SysResult {
        let iovs = mem.read_iovecs(iovs, iovs_len)?;
        let total = iovecs_len(&iovs).min(MAX_IO);
        let desc = self.fds.get(fd)?;
        if !desc.readable() {
            return Err(Errno::Badf.into());
        }
        // Journaled files read the same on replay; standard input, sockets
        // and host files are inputs.
        let journaled = match &desc.handle {
            Handle::File { mount, .. } => self.mounts[*mount].is_memory(),
            _ => false,
        };
        let data = if journaled || !self.recording() {
            self.read_now(fd, total)?
        } else {
            let replayed = self.replaying();
            let data = self.input_read(fd, total, |ctx| ctx.read_now(fd, total))?;
            if replayed {
                // The read is not performed again, but it moved the position.
                if let Handle::File { pos, .. } = &mut self.fds.get_mut(fd)?.handle {
                    *pos += data.len() as u64;
                }
            }
            data
        };
        mem.scatter(&iovs, &data)?;
        mem.write_u32(nread, data.len() as u32)
    }

    /// Reads up to `total` bytes from `fd` now, moving its position.
    fn read_now(&mut self, fd: u32, total: usize) -> SysResult<Vec<u8>> {
        let WasiCtx {
            fds, mounts, stdin, ..
        } = self;
        let desc = fds.get_mut(fd)?;
        let mut buf;
        let n = match &mut desc.handle {
            Handle::File {
                mount, file, pos, ..
            } => {
                let m = &mut mounts[*mount];
                let avail = m.file_size(file)?.saturating_sub(*pos);
                buf = vec![0u8; total.min(avail as usize)];
                let n = m.read_at(file, *pos, &mut buf)?;
                *pos += n as u64;
                n
            }
            Handle::Stdin => {
                buf = vec![0u8; total.min(64 * 1024)];
                if buf.is_empty() {
                    0
                } else {
                    stdin.read(&mut buf)?
                }
            }
            Handle::Stream(s) => {
                buf = vec![0u8; total.min(64 * 1024)];
                s.read(&mut buf)?
            }
            Handle::Dir { .. } => return Err(Errno::Badf.into()),
            _ => return Err(Errno::Badf.into()),
        };
        buf.truncate(n);
        Ok(buf)
    }

    /// `fd_write`: writes the guest's buffers and moves the position.
    pub fn fd_write(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        iovs: u32,
        iovs_len: u32,
        nwritten: u32,
    ) -> SysResult {
        let now = self.now();
        let iovs = mem.read_iovecs(iovs, iovs_len)?;
        let data = mem.gather(&iovs, MAX_IO)?;
        if !self.fds.get(fd)?.writable() {
            return Err(Errno::Badf.into());
        }
        if self.recording() && self.leaves_the_process(fd) {
            if self.replaying() {
                // Seen outside once already: checked, not written again
                // (unless the program diverged here and went on live).
                let written = self.replay_external(JournalEntry::FileDescriptorWriteV1(
                    journal::FileDescriptorWriteV1 {
                        fd,
                        offset: 0,
                        data: data.as_slice().into(),
                    },
                ))?;
                if let Some(written) = written {
                    let JournalEntry::FileDescriptorWriteV1(w) = written else {
                        return Err(Errno::Io.into());
                    };
                    if let Handle::File { pos, .. } = &mut self.fds.get_mut(fd)?.handle {
                        *pos = w.offset + w.data.len() as u64;
                    }
                    return mem.write_u32(nwritten, w.data.len() as u32);
                }
            }
            if matches!(self.fds.get(fd)?.handle, Handle::Stdout | Handle::Stderr) {
                // Output is journaled before it is seen (then a crash can
                // lose it, never repeat it), and committed with it.
                self.record(JournalEntry::FileDescriptorWriteV1(
                    journal::FileDescriptorWriteV1 {
                        fd,
                        offset: 0,
                        data: data.as_slice().into(),
                    },
                ))?;
                self.commit_output()?;
                match self.fds.get(fd)?.handle {
                    Handle::Stdout => self.stdout.write_all(&data)?,
                    _ => self.stderr.write_all(&data)?,
                }
                return mem.write_u32(nwritten, data.len() as u32);
            }
            self.commit_output()?;
        }
        let WasiCtx {
            fds,
            mounts,
            stdout,
            stderr,
            ..
        } = self;
        let desc = fds.get_mut(fd)?;
        if !desc.writable() {
            return Err(Errno::Badf.into());
        }
        let append = desc.flags & fdflags::APPEND != 0;
        let mut at = 0;
        let n = match &mut desc.handle {
            Handle::File {
                mount, file, pos, ..
            } => {
                let m = &mut mounts[*mount];
                if append {
                    *pos = m.file_size(file)?;
                }
                if pos
                    .checked_add(data.len() as u64)
                    .is_none_or(|e| e > i64::MAX as u64)
                {
                    return Err(Errno::Fbig.into());
                }
                let n = m.write_at(file, *pos, &data, now)?;
                at = *pos;
                *pos += n as u64;
                n
            }
            Handle::Stdout => {
                stdout.write_all(&data)?;
                data.len()
            }
            Handle::Stderr => {
                stderr.write_all(&data)?;
                data.len()
            }
            Handle::Stream(s) => s.write(&data)?,
            _ => return Err(Errno::Badf.into()),
        };
        mem.write_u32(nwritten, n as u32)?;
        self.record(JournalEntry::FileDescriptorWriteV1(
            journal::FileDescriptorWriteV1 {
                fd,
                offset: at,
                data: data[..n].into(),
            },
        ))
    }

    /// `fd_readdir`: directory entries from the cookie on, as many as fit.
    pub fn fd_readdir(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        buf: u32,
        buf_len: u32,
        cookie: u64,
        bufused: u32,
    ) -> SysResult {
        let desc = self.fds.get(fd)?;
        let Handle::Dir { mount, dir, .. } = &desc.handle else {
            return Err(Errno::Notdir.into());
        };
        desc.require(rights::FD_READDIR)?;
        let entries = self.mounts[*mount].readdir(dir)?;
        let mut out = Vec::with_capacity((buf_len as usize).min(64 * 1024));
        for (index, entry) in entries
            .iter()
            .enumerate()
            .skip(cookie.min(usize::MAX as u64) as usize)
        {
            if out.len() >= buf_len as usize {
                break;
            }
            let mut header = [0u8; layout::DIRENT_SIZE];
            header[0..8].copy_from_slice(&(index as u64 + 1).to_le_bytes());
            header[8..16].copy_from_slice(&entry.ino.to_le_bytes());
            header[16..20].copy_from_slice(&(entry.name.len() as u32).to_le_bytes());
            header[20] = entry.filetype;
            out.extend_from_slice(&header);
            out.extend_from_slice(entry.name.as_bytes());
        }
        // A last entry that does not fit is cut: the caller sees a full
        // buffer and asks again with a larger one.
        out.truncate(buf_len as usize);
        mem.write_bytes(buf, &out)?;
        mem.write_u32(bufused, out.len() as u32)
    }

    /// `fd_renumber`: moves a descriptor onto another number, closing what was there.
    pub fn fd_renumber(&mut self, from: u32, to: u32) -> SysResult {
        self.fds.get(from)?;
        self.fds.get(to)?;
        if from == to {
            return Ok(());
        }
        let desc = self.fds.remove(from)?;
        if let Some(old) = self.fds.insert_at(to, desc) {
            self.release(old.handle);
        }
        self.now();
        self.record(JournalEntry::RenumberFileDescriptorV1(
            journal::RenumberFileDescriptorV1 {
                from_fd: from,
                to_fd: to,
            },
        ))
    }

    /// `fd_seek`: moves the position and returns it.
    pub fn fd_seek(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        offset: i64,
        whence: u8,
        out: u32,
    ) -> SysResult {
        let desc = self.fds.get_mut(fd)?;
        let needed = if offset == 0 && whence == whence::CUR {
            rights::FD_TELL
        } else {
            rights::FD_SEEK | rights::FD_TELL
        };
        let Handle::File {
            mount, file, pos, ..
        } = &mut desc.handle
        else {
            return Err(not_a_file(&desc.handle).into());
        };
        if desc.rights & needed == 0 {
            return Err(Errno::Notcapable.into());
        }
        let base = match whence {
            whence::SET => 0i128,
            whence::CUR => *pos as i128,
            whence::END => self.mounts[*mount].file_size(file)? as i128,
            _ => return Err(Errno::Inval.into()),
        };
        let new = base + offset as i128;
        if new < 0 || new > i64::MAX as i128 {
            return Err(Errno::Inval.into());
        }
        let moved = *pos != new as u64;
        *pos = new as u64;
        mem.write_u64(out, new as u64)?;
        if moved {
            // Journaled as an absolute position: replay needs no file size.
            self.now();
            self.record(JournalEntry::FileDescriptorSeekV1(
                journal::FileDescriptorSeekV1 {
                    fd,
                    offset: new as i64,
                    whence: whence::SET,
                },
            ))?;
        }
        Ok(())
    }

    /// `fd_tell`: the current position.
    pub fn fd_tell(&mut self, mem: &GuestMemory, fd: u32, out: u32) -> SysResult {
        let desc = self.fds.get(fd)?;
        match &desc.handle {
            Handle::File { pos, .. } => {
                desc.require(rights::FD_TELL)?;
                mem.write_u64(out, *pos)
            }
            Handle::Dir { .. } => Err(Errno::Badf.into()),
            _ => Err(Errno::Spipe.into()),
        }
    }

    /// Whether writing to `fd` is seen outside the process: standard
    /// streams, sockets, files of host mounts.
    fn leaves_the_process(&self, fd: u32) -> bool {
        match self.fds.get(fd).map(|d| &d.handle) {
            Ok(Handle::File { mount, .. }) => {
                self.mounts.get(*mount).is_some_and(|m| !m.is_memory())
            }
            Ok(Handle::Dir { .. }) | Err(_) => false,
            Ok(_) => true,
        }
    }
}
