//! The 45 functions of `wasi_snapshot_preview1`, as methods of [`WasiCtx`].
//! Each takes the guest memory and the raw arguments, and returns `Ok(())`
//! for success, an errno for the guest, or a trap.
//!
//! Grouped by concern: `process` (args, env, clocks, random, exit, signals,
//! yield), `fd` (descriptor calls), `path` (path calls), `poll`
//! (`poll_oneoff`) and `sock` (sockets).

mod fd;
mod path;
mod poll;
mod process;
mod sock;

use crate::ctx::WasiCtx;
use crate::errno::Errno;
use crate::fd::Handle;
use crate::fs::{resolve, DirRef, Resolved};

impl WasiCtx {
    /// The mount and directory of a directory descriptor holding `needed`.
    pub(crate) fn dir_of(&self, fd: u32, needed: u64) -> Result<(usize, DirRef, String), Errno> {
        let desc = self.fds.get(fd)?;
        match &desc.handle {
            Handle::Dir {
                mount,
                dir,
                guest_path,
                ..
            } => {
                desc.require(needed)?;
                Ok((*mount, dir.clone(), guest_path.clone()))
            }
            _ => Err(Errno::Notdir),
        }
    }

    /// Resolves `path` relative to the directory descriptor `fd`.
    pub(crate) fn resolve_at(
        &self,
        fd: u32,
        path: &str,
        follow: bool,
        needed: u64,
    ) -> Result<(usize, Resolved), Errno> {
        let (mount, dir, _) = self.dir_of(fd, needed)?;
        let mount_ref = self.mounts.get(mount).ok_or(Errno::Badf)?;
        Ok((mount, resolve(mount_ref, &dir, path, follow)?))
    }
}

/// Joins a descriptor's guest path and a relative path, for display and for
/// reopening by path.
pub(crate) fn join_guest(base: &str, path: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}
