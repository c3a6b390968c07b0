//! Path calls: `path_*`.

use crate::abi::{fdflags, lookupflags, oflags, rights};
use crate::ctx::WasiCtx;
use crate::errno::{Errno, SysResult};
use crate::fd::{Descriptor, Handle};
use crate::fs::ops::{OpenRequest, Opened};
use crate::memory::GuestMemory;

use super::fd::{resolved_times, times_from_flags, write_filestat};
use super::join_guest;
use wasnap_journal::{self as journal, JournalEntry};

fn follow(flags: u32) -> bool {
    flags & lookupflags::SYMLINK_FOLLOW != 0
}

impl WasiCtx {
    /// `path_create_directory`: creates a directory.
    pub fn path_create_directory(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        path: u32,
        path_len: u32,
    ) -> SysResult {
        let path = mem.read_string(path, path_len)?;
        let now = self.now();
        let (mount, resolved) = self.resolve_at(fd, &path, false, rights::PATH_CREATE_DIRECTORY)?;
        self.mounts[mount].mkdir(&resolved, now)?;
        self.record(JournalEntry::CreateDirectoryV1(
            journal::CreateDirectoryV1 {
                fd,
                path: path.as_str().into(),
            },
        ))
    }

    /// `path_filestat_get`: the attributes of a path.
    pub fn path_filestat_get(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        flags: u32,
        path: u32,
        path_len: u32,
        out: u32,
    ) -> SysResult {
        let path = mem.read_string(path, path_len)?;
        let (mount, resolved) =
            self.resolve_at(fd, &path, follow(flags), rights::PATH_FILESTAT_GET)?;
        let stat = self.mounts[mount].stat(&resolved)?;
        write_filestat(mem, out, &stat)
    }

    /// `path_filestat_set_times`: sets the times of a path.
    #[allow(clippy::too_many_arguments)]
    pub fn path_filestat_set_times(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        flags: u32,
        path: u32,
        path_len: u32,
        atim: u64,
        mtim: u64,
        fst: u16,
    ) -> SysResult {
        let path = mem.read_string(path, path_len)?;
        let now = self.now();
        let (a, m) = times_from_flags(fst, atim, mtim, now)?;
        let (mount, resolved) =
            self.resolve_at(fd, &path, follow(flags), rights::PATH_FILESTAT_SET_TIMES)?;
        self.mounts[mount].stat(&resolved)?;
        self.mounts[mount].set_times(&resolved, a, m, now)?;
        let (atim, mtim, fst_flags) = resolved_times(a, m);
        self.record(JournalEntry::PathSetTimesV1(journal::PathSetTimesV1 {
            fd,
            flags,
            path: path.as_str().into(),
            atim,
            mtim,
            fst_flags,
        }))
    }

    /// `path_link`: makes a hard link.
    #[allow(clippy::too_many_arguments)]
    pub fn path_link(
        &mut self,
        mem: &GuestMemory,
        old_fd: u32,
        old_flags: u32,
        old_path: u32,
        old_len: u32,
        new_fd: u32,
        new_path: u32,
        new_len: u32,
    ) -> SysResult {
        let old_path = mem.read_string(old_path, old_len)?;
        let new_path = mem.read_string(new_path, new_len)?;
        let now = self.now();
        let (from_mount, from) = self.resolve_at(
            old_fd,
            &old_path,
            follow(old_flags),
            rights::PATH_LINK_SOURCE,
        )?;
        let (to_mount, to) = self.resolve_at(new_fd, &new_path, false, rights::PATH_LINK_TARGET)?;
        if from_mount != to_mount {
            return Err(Errno::Xdev.into());
        }
        self.mounts[from_mount].link(&from, &to, now)?;
        self.record(JournalEntry::CreateHardLinkV1(journal::CreateHardLinkV1 {
            old_fd,
            old_path: old_path.as_str().into(),
            old_flags,
            new_fd,
            new_path: new_path.as_str().into(),
        }))
    }

    /// `path_open`: opens or creates a file or directory and returns its new descriptor.
    #[allow(clippy::too_many_arguments)]
    pub fn path_open(
        &mut self,
        mem: &GuestMemory,
        dirfd: u32,
        dirflags: u32,
        path: u32,
        path_len: u32,
        oflags: u16,
        rights_base: u64,
        rights_inheriting: u64,
        fdflags: u16,
        fd_out: u32,
    ) -> SysResult {
        let path = mem.read_string(path, path_len)?;
        mem.check_range(fd_out, 4)?;
        let fd = self.open_path(
            dirfd,
            dirflags,
            &path,
            oflags,
            rights_base,
            rights_inheriting,
            fdflags,
        )?;
        mem.write_u32(fd_out, fd)?;
        self.record(JournalEntry::OpenFileDescriptorV1(
            journal::OpenFileDescriptorV1 {
                fd,
                dirfd,
                dirflags,
                path: path.as_str().into(),
                o_flags: oflags,
                fs_rights_base: rights_base,
                fs_rights_inheriting: rights_inheriting,
                fs_flags: fdflags,
            },
        ))
    }

    /// `path_open` without the guest memory: opens and returns the new
    /// descriptor (the lowest free number). Replay uses it too.
    pub(crate) fn open_path(
        &mut self,
        dirfd: u32,
        dirflags: u32,
        path: &str,
        oflags: u16,
        rights_base: u64,
        rights_inheriting: u64,
        fdflags: u16,
    ) -> Result<u32, crate::errno::SysError> {
        if oflags & !oflags::ALL != 0 || fdflags & !fdflags::ALL != 0 {
            return Err(Errno::Inval.into());
        }
        let now = self.now();
        let (mount, parent_dir, parent_path) = self.dir_of(dirfd, rights::PATH_OPEN)?;
        let parent_inheriting = self.fds.get(dirfd)?.inheriting;
        let mut needed = rights::PATH_OPEN;
        if oflags & oflags::CREAT != 0 {
            needed |= rights::PATH_CREATE_FILE;
        }
        if oflags & oflags::TRUNC != 0 {
            needed |= rights::PATH_FILESTAT_SET_SIZE;
        }
        self.fds.get(dirfd)?.require(needed)?;
        let resolved =
            crate::fs::resolve(&self.mounts[mount], &parent_dir, path, follow(dirflags))?;
        let write_rights = rights::FD_WRITE
            | rights::FD_DATASYNC
            | rights::FD_ALLOCATE
            | rights::FD_FILESTAT_SET_SIZE;
        let request = OpenRequest {
            create: oflags & oflags::CREAT != 0,
            exclusive: oflags & oflags::EXCL != 0,
            truncate: oflags & oflags::TRUNC != 0,
            directory: oflags & oflags::DIRECTORY != 0,
            read: rights_base & (rights::FD_READ | rights::FD_READDIR) != 0,
            write: rights_base & write_rights != 0 || fdflags & fdflags::APPEND != 0,
        };
        let opened = self.mounts[mount].open(&resolved, request, now)?;
        let guest_path = join_guest(&parent_path, path);
        let inheriting = rights_inheriting & parent_inheriting;
        let desc = match opened {
            Opened::File(file) => Descriptor::new(
                Handle::File {
                    mount,
                    file,
                    pos: 0,
                    guest_path,
                },
                rights_base & parent_inheriting & rights::FILE,
                inheriting,
                fdflags,
            ),
            Opened::Dir(dir) => Descriptor::new(
                Handle::Dir {
                    mount,
                    dir,
                    preopen: false,
                    guest_path,
                },
                rights_base & parent_inheriting & rights::DIRECTORY,
                inheriting,
                fdflags,
            ),
        };
        Ok(self.fds.insert(desc)?)
    }

    /// `path_readlink`: the target of a symbolic link.
    pub fn path_readlink(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        path: u32,
        path_len: u32,
        buf: u32,
        buf_len: u32,
        bufused: u32,
    ) -> SysResult {
        let path = mem.read_string(path, path_len)?;
        let (mount, resolved) = self.resolve_at(fd, &path, false, rights::PATH_READLINK)?;
        let target = self.mounts[mount].readlink(&resolved)?;
        let n = target.len().min(buf_len as usize);
        mem.write_bytes(buf, &target.as_bytes()[..n])?;
        mem.write_u32(bufused, n as u32)
    }

    /// `path_remove_directory`: removes an empty directory.
    pub fn path_remove_directory(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        path: u32,
        path_len: u32,
    ) -> SysResult {
        let path = mem.read_string(path, path_len)?;
        let now = self.now();
        let (mount, resolved) = self.resolve_at(fd, &path, false, rights::PATH_REMOVE_DIRECTORY)?;
        self.mounts[mount].rmdir(&resolved, now)?;
        self.record(JournalEntry::RemoveDirectoryV1(
            journal::RemoveDirectoryV1 {
                fd,
                path: path.as_str().into(),
            },
        ))
    }

    /// `path_rename`: renames a file or directory.
    #[allow(clippy::too_many_arguments)]
    pub fn path_rename(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        old_path: u32,
        old_len: u32,
        new_fd: u32,
        new_path: u32,
        new_len: u32,
    ) -> SysResult {
        let old_path = mem.read_string(old_path, old_len)?;
        let new_path = mem.read_string(new_path, new_len)?;
        let now = self.now();
        let (from_mount, from) =
            self.resolve_at(fd, &old_path, false, rights::PATH_RENAME_SOURCE)?;
        let (to_mount, to) =
            self.resolve_at(new_fd, &new_path, false, rights::PATH_RENAME_TARGET)?;
        if from_mount != to_mount {
            return Err(Errno::Xdev.into());
        }
        self.mounts[from_mount].rename(&from, &to, now)?;
        self.record(JournalEntry::PathRenameV1(journal::PathRenameV1 {
            old_fd: fd,
            old_path: old_path.as_str().into(),
            new_fd,
            new_path: new_path.as_str().into(),
        }))
    }

    /// `path_symlink`: creates a symbolic link.
    pub fn path_symlink(
        &mut self,
        mem: &GuestMemory,
        old_path: u32,
        old_len: u32,
        fd: u32,
        new_path: u32,
        new_len: u32,
    ) -> SysResult {
        let target = mem.read_string(old_path, old_len)?;
        let new_path = mem.read_string(new_path, new_len)?;
        let now = self.now();
        let (mount, resolved) = self.resolve_at(fd, &new_path, false, rights::PATH_SYMLINK)?;
        self.mounts[mount].symlink(&target, &resolved, now)?;
        self.record(JournalEntry::CreateSymbolicLinkV1(
            journal::CreateSymbolicLinkV1 {
                target: target.as_str().into(),
                fd,
                new_path: new_path.as_str().into(),
            },
        ))
    }

    /// `path_unlink_file`: removes a name that is not a directory.
    pub fn path_unlink_file(
        &mut self,
        mem: &GuestMemory,
        fd: u32,
        path: u32,
        path_len: u32,
    ) -> SysResult {
        let path = mem.read_string(path, path_len)?;
        let now = self.now();
        let (mount, resolved) = self.resolve_at(fd, &path, false, rights::PATH_UNLINK_FILE)?;
        self.mounts[mount].unlink(&resolved, now)?;
        self.record(JournalEntry::UnlinkFileV1(journal::UnlinkFileV1 {
            fd,
            path: path.as_str().into(),
        }))
    }
}
