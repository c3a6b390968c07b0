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
    /// The program's standard input.
    Stdin,
    /// The program's standard output.
    Stdout,
    /// The program's standard error.
    Stderr,
    /// A regular file, with this descriptor's own position.
    File {
        /// Index of the mount the file is on.
        mount: usize,
        /// The open file.
        file: FileRef,
        /// The position reads and writes start at.
        pos: u64,
        /// The path the guest opened it by (for messages and replay).
        guest_path: String,
    },
    /// A directory; `preopen` descriptors answer `fd_prestat_get`.
    Dir {
        /// Index of the mount the directory is on.
        mount: usize,
        /// The directory.
        dir: DirRef,
        /// Whether the host preopened it (a mount's root).
        preopen: bool,
        /// The path the guest knows it by.
        guest_path: String,
    },
    /// A listening TCP socket preopened by the host.
    Listener(std::net::TcpListener),
    /// A connected TCP socket returned by `sock_accept`.
    Stream(std::net::TcpStream),
}

impl Handle {
    /// The WASI `filetype` of what the descriptor refers to.
    pub fn filetype(&self) -> u8 {
        match self {
            Handle::Stdin | Handle::Stdout | Handle::Stderr => filetype::CHARACTER_DEVICE,
            Handle::File { .. } => filetype::REGULAR_FILE,
            Handle::Dir { .. } => filetype::DIRECTORY,
            Handle::Listener(_) | Handle::Stream(_) => filetype::SOCKET_STREAM,
        }
    }
}

/// An open descriptor: what it refers to, its rights and flags.
#[derive(Debug)]
pub struct Descriptor {
    /// What it refers to.
    pub handle: Handle,
    /// Base rights: what the descriptor may do.
    pub rights: u64,
    /// Rights that descriptors opened through it may have.
    pub inheriting: u64,
    /// WASI `fdflags`.
    pub flags: u16,
}

impl Descriptor {
    /// A descriptor over `handle`.
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

    /// Whether it may be read (`FD_READ`).
    pub fn readable(&self) -> bool {
        self.rights & rights::FD_READ != 0
    }

    /// Whether it may be written (`FD_WRITE`).
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

    /// The descriptor `fd`, or `BADF`.
    pub fn get(&self, fd: u32) -> Result<&Descriptor, Errno> {
        self.fds.get(&fd).ok_or(Errno::Badf)
    }

    /// The descriptor `fd`, to change it, or `BADF`.
    pub fn get_mut(&mut self, fd: u32) -> Result<&mut Descriptor, Errno> {
        self.fds.get_mut(&fd).ok_or(Errno::Badf)
    }

    /// Takes `fd` out of the table, or `BADF`.
    pub fn remove(&mut self, fd: u32) -> Result<Descriptor, Errno> {
        self.fds.remove(&fd).ok_or(Errno::Badf)
    }

    /// Whether `fd` is open.
    pub fn contains(&self, fd: u32) -> bool {
        self.fds.contains_key(&fd)
    }

    /// Every open descriptor, by number.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Descriptor)> {
        self.fds.iter().map(|(k, v)| (*k, v))
    }
}
