//! The descriptor table.
//!
//! Invariants: a new descriptor takes the lowest free number (so a journal can
//! record opens as "the next free number"); a descriptor's rights never grow
//! after it is created.

use std::collections::BTreeMap;

use crate::abi::{filetype, rights};
use crate::errno::Errno;
use crate::fs::{DirRef, FileRef};

/// Highest number of open descriptors (`MFILE` beyond).
pub const MAX_FDS: usize = 16_384;

/// What a descriptor refers to.
#[derive(Debug)]
pub enum Handle {
    Stdin,
    Stdout,
    Stderr,
    /// A regular file, with this descriptor's own position.
    File {
        mount: usize,
        file: FileRef,
        pos: u64,
        guest_path: String,
    },
    /// A directory; `preopen` descriptors answer `fd_prestat_get`.
    Dir {
        mount: usize,
        dir: DirRef,
        preopen: bool,
        guest_path: String,
    },
    /// A listening TCP socket preopened by the host.
    Listener(std::net::TcpListener),
    /// A connected TCP socket returned by `sock_accept`.
    Stream(std::net::TcpStream),
}

impl Handle {
    pub fn filetype(&self) -> u8 {
        match self {
            Handle::Stdin | Handle::Stdout | Handle::Stderr => filetype::CHARACTER_DEVICE,
            Handle::File { .. } => filetype::REGULAR_FILE,
            Handle::Dir { .. } => filetype::DIRECTORY,
            Handle::Listener(_) | Handle::Stream(_) => filetype::SOCKET_STREAM,
        }
    }
}

#[derive(Debug)]
pub struct Descriptor {
    pub handle: Handle,
    pub rights: u64,
    pub inheriting: u64,
    pub flags: u16,
}

impl Descriptor {
    pub fn new(handle: Handle, rights: u64, inheriting: u64, flags: u16) -> Descriptor {
        Descriptor {
            handle,
            rights,
            inheriting,
            flags,
        }
    }

    /// `NOTCAPABLE` unless every right in `needed` is held.
    pub fn require(&self, needed: u64) -> Result<(), Errno> {
        if self.rights & needed == needed {
            Ok(())
        } else {
            Err(Errno::Notcapable)
        }
    }

    pub fn readable(&self) -> bool {
        self.rights & rights::FD_READ != 0
    }

    pub fn writable(&self) -> bool {
        self.rights & rights::FD_WRITE != 0
    }
}

/// Descriptors by number.
#[derive(Debug, Default)]
pub struct FdTable {
    fds: BTreeMap<u32, Descriptor>,
}

impl FdTable {
    /// Inserts at the lowest free number.
    pub fn insert(&mut self, desc: Descriptor) -> Result<u32, Errno> {
        if self.fds.len() >= MAX_FDS {
            return Err(Errno::Mfile);
        }
        let mut fd = 0u32;
        for &used in self.fds.keys() {
            if used != fd {
                break;
            }
            fd += 1;
        }
        self.fds.insert(fd, desc);
        Ok(fd)
    }

    /// Puts `desc` at `fd`, returning what was there.
    pub fn insert_at(&mut self, fd: u32, desc: Descriptor) -> Option<Descriptor> {
        self.fds.insert(fd, desc)
    }

    pub fn get(&self, fd: u32) -> Result<&Descriptor, Errno> {
        self.fds.get(&fd).ok_or(Errno::Badf)
    }

    pub fn get_mut(&mut self, fd: u32) -> Result<&mut Descriptor, Errno> {
        self.fds.get_mut(&fd).ok_or(Errno::Badf)
    }

    pub fn remove(&mut self, fd: u32) -> Result<Descriptor, Errno> {
        self.fds.remove(&fd).ok_or(Errno::Badf)
    }

    pub fn contains(&self, fd: u32) -> bool {
        self.fds.contains_key(&fd)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Descriptor)> {
        self.fds.iter().map(|(k, v)| (*k, v))
    }
}
