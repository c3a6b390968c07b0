//! Operations on resolved paths: create, remove, rename, link, open.
//! Each checks the mount is writable before it changes anything.

use super::{Backend, DirRef, FileRef, Mount, Node, Resolved, Target};
use crate::errno::Errno;

/// How `path_open` wants to open a path.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenRequest {
    /// Create the file if it does not exist (`O_CREAT`).
    pub create: bool,
    /// Fail if it exists (`O_EXCL`).
    pub exclusive: bool,
    /// Cut it to zero (`O_TRUNC`).
    pub truncate: bool,
    /// It must be a directory (`O_DIRECTORY`).
    pub directory: bool,
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
}

/// What `open` produced.
#[derive(Debug)]
pub enum Opened {
    /// A regular file.
    File(FileRef),
    /// A directory.
    Dir(DirRef),
}

fn entry(resolved: &Resolved) -> Option<(&DirRef, &str)> {
    match &resolved.target {
        Target::Entry { parent, name } => Some((parent, name.as_str())),
        Target::SelfDir(_) => None,
    }
}

impl Mount {
    /// Creates the directory a resolved path names.
    pub fn mkdir(&mut self, resolved: &Resolved, now: u64) -> Result<(), Errno> {
        if self.suppress_host_effects && !self.is_memory() {
            // Re-executing history: the host already holds this change.
            return Ok(());
        }
        let Some((parent, name)) = entry(resolved) else {
            return Err(Errno::Exist);
        };
        self.check_writable()?;
        match (&mut self.backend, parent) {
            (Backend::Mem(m), DirRef::Mem(dir)) => m.mkdir(*dir, name, now).map(|_| ()),
            (Backend::Host(h), DirRef::Host(dir)) => h.mkdir(dir, name),
            _ => Err(Errno::Badf),
        }
    }

    /// Removes the empty directory a resolved path names.
    pub fn rmdir(&mut self, resolved: &Resolved, now: u64) -> Result<(), Errno> {
        if self.suppress_host_effects && !self.is_memory() {
            // Re-executing history: the host already holds this change.
            return Ok(());
        }
        let Some((parent, name)) = entry(resolved) else {
            return Err(Errno::Inval);
        };
        self.check_writable()?;
        match (&mut self.backend, parent) {
            (Backend::Mem(m), DirRef::Mem(dir)) => m.rmdir(*dir, name, now),
            (Backend::Host(h), DirRef::Host(dir)) => h.rmdir(dir, name),
            _ => Err(Errno::Badf),
        }
    }

    /// Removes the non-directory a resolved path names.
    pub fn unlink(&mut self, resolved: &Resolved, now: u64) -> Result<(), Errno> {
        if self.suppress_host_effects && !self.is_memory() {
            // Re-executing history: the host already holds this change.
            return Ok(());
        }
        let Some((parent, name)) = entry(resolved) else {
            return Err(Errno::Isdir);
        };
        self.check_writable()?;
        let node = self.lookup(parent, name)?.ok_or(Errno::Noent)?;
        match node {
            Node::Dir(_) => return Err(Errno::Isdir),
            _ if resolved.must_be_dir => return Err(Errno::Notdir),
            _ => {}
        }
        match (&mut self.backend, parent) {
            (Backend::Mem(m), DirRef::Mem(dir)) => m.unlink(*dir, name, now),
            (Backend::Host(h), DirRef::Host(dir)) => h.unlink(dir, name),
            _ => Err(Errno::Badf),
        }
    }

    /// Creates a symbolic link at a resolved path.
    pub fn symlink(&mut self, target: &str, resolved: &Resolved, now: u64) -> Result<(), Errno> {
        if self.suppress_host_effects && !self.is_memory() {
            // Re-executing history: the host already holds this change.
            return Ok(());
        }
        let Some((parent, name)) = entry(resolved) else {
            return Err(Errno::Exist);
        };
        self.check_writable()?;
        // The creation policy (wasmtime's for preview1, stated in the
        // README): an absolute target is refused when the link is made, so
        // a guest cannot plant a link other host programs would follow to
        // an arbitrary host path. A relative target may climb out of the
        // mount (`../../etc/passwd`): it is stored as written, and wasnap
        // never follows it out (`fs::resolve` refuses with `NOTCAPABLE`).
        // A host program that follows such a link does so on its own terms.
        if target.starts_with('/') {
            return Err(Errno::Notcapable);
        }
        if target.is_empty() {
            return Err(Errno::Noent);
        }
        // The new name is never followed; with a trailing `/` it must be
        // a directory, which a link being created cannot be.
        if self.lookup(parent, name)?.is_some() {
            return Err(Errno::Exist);
        }
        if resolved.must_be_dir {
            return Err(Errno::Noent);
        }
        match (&mut self.backend, parent) {
            (Backend::Mem(m), DirRef::Mem(dir)) => m.symlink(target, *dir, name, now),
            (Backend::Host(h), DirRef::Host(dir)) => h.symlink(target, dir, name),
            _ => Err(Errno::Badf),
        }
    }

    /// The target of the symbolic link a resolved path names.
    pub fn readlink(&self, resolved: &Resolved) -> Result<String, Errno> {
        let Some((parent, name)) = entry(resolved) else {
            return Err(Errno::Inval);
        };
        match self.lookup(parent, name)? {
            Some(Node::Symlink(target)) => Ok(target),
            Some(_) => Err(Errno::Inval),
            None => Err(Errno::Noent),
        }
    }

    /// Makes a hard link.
    pub fn link(&mut self, from: &Resolved, to: &Resolved, now: u64) -> Result<(), Errno> {
        if self.suppress_host_effects && !self.is_memory() {
            // Re-executing history: the host already holds this change.
            return Ok(());
        }
        let Some((from_dir, from_name)) = entry(from) else {
            return Err(Errno::Perm);
        };
        let Some((to_dir, to_name)) = entry(to) else {
            return Err(Errno::Exist);
        };
        self.check_writable()?;
        match self.lookup(from_dir, from_name)? {
            None => return Err(Errno::Noent),
            Some(Node::Dir(_)) => return Err(Errno::Perm),
            // `file/` names a directory, which a file is not.
            Some(_) if from.must_be_dir => return Err(Errno::Notdir),
            Some(_) => {}
        }
        if self.lookup(to_dir, to_name)?.is_some() {
            return Err(Errno::Exist);
        }
        if to.must_be_dir {
            // A new name with a trailing `/` would be a directory, which a
            // hard link to a file cannot be (Linux and wasmtime: NOENT).
            return Err(Errno::Noent);
        }
        match (&mut self.backend, from_dir, to_dir) {
            (Backend::Mem(m), DirRef::Mem(a), DirRef::Mem(b)) => {
                m.link((*a, from_name), (*b, to_name), now)
            }
            (Backend::Host(h), DirRef::Host(a), DirRef::Host(b)) => {
                h.link((a, from_name), (b, to_name))
            }
            _ => Err(Errno::Badf),
        }
    }

    /// Renames within the mount.
    pub fn rename(&mut self, from: &Resolved, to: &Resolved, now: u64) -> Result<(), Errno> {
        if self.suppress_host_effects && !self.is_memory() {
            // Re-executing history: the host already holds this change.
            return Ok(());
        }
        let Some((from_dir, from_name)) = entry(from) else {
            return Err(Errno::Busy);
        };
        let Some((to_dir, to_name)) = entry(to) else {
            return Err(Errno::Busy);
        };
        self.check_writable()?;
        let source = self.lookup(from_dir, from_name)?.ok_or(Errno::Noent)?;
        let source_is_dir = matches!(source, Node::Dir(_));
        if !source_is_dir && (from.must_be_dir || to.must_be_dir) {
            return Err(Errno::Notdir);
        }
        match (&mut self.backend, from_dir, to_dir) {
            (Backend::Mem(m), DirRef::Mem(a), DirRef::Mem(b)) => {
                m.rename((*a, from_name), (*b, to_name), now)
            }
            (Backend::Host(h), DirRef::Host(a), DirRef::Host(b)) => {
                h.rename((a, from_name), (b, to_name))
            }
            _ => Err(Errno::Badf),
        }
    }

    /// Opens what `resolved` names, creating a file if asked to.
    pub fn open(
        &mut self,
        resolved: &Resolved,
        req: OpenRequest,
        now: u64,
    ) -> Result<Opened, Errno> {
        if req.create || req.truncate || req.write {
            // Opening a directory of a read-only mount for reading is fine;
            // asking to change anything is not.
            self.check_writable()?;
        }
        let (parent, name) = match &resolved.target {
            Target::SelfDir(dir) => return self.open_dir(dir.clone(), req),
            Target::Entry { parent, name } => (parent.clone(), name.clone()),
        };
        match self.lookup(&parent, &name)? {
            Some(Node::Dir(dir)) => self.open_dir(dir, req),
            Some(Node::Symlink(_)) => Err(if req.directory {
                Errno::Notdir
            } else {
                Errno::Loop
            }),
            Some(Node::Other(_)) => Err(Errno::Notsup),
            Some(Node::File) => {
                if req.create && req.exclusive {
                    return Err(Errno::Exist);
                }
                if req.directory || resolved.must_be_dir {
                    return Err(Errno::Notdir);
                }
                self.open_file(&parent, &name, false, req, now)
            }
            None => {
                if !req.create {
                    return Err(Errno::Noent);
                }
                if req.directory || resolved.must_be_dir {
                    return Err(Errno::Isdir);
                }
                self.open_file(&parent, &name, true, req, now)
            }
        }
    }

    fn open_dir(&mut self, dir: DirRef, req: OpenRequest) -> Result<Opened, Errno> {
        if req.create && req.exclusive {
            return Err(Errno::Exist);
        }
        if req.write || req.truncate {
            return Err(Errno::Isdir);
        }
        self.retain_dir(&dir);
        Ok(Opened::Dir(dir))
    }

    fn open_file(
        &mut self,
        parent: &DirRef,
        name: &str,
        create: bool,
        req: OpenRequest,
        now: u64,
    ) -> Result<Opened, Errno> {
        match (&mut self.backend, parent) {
            (Backend::Mem(m), DirRef::Mem(dir)) => {
                let ino = if create {
                    m.create_file(*dir, name, now)?
                } else {
                    m.entry_ino(*dir, name)?
                };
                if req.truncate && !create {
                    m.set_len(ino, 0, now)?;
                }
                m.retain(ino);
                Ok(Opened::File(FileRef::Mem(ino)))
            }
            (Backend::Host(h), DirRef::Host(dir)) => {
                // Re-executing history: the file is reopened as it is now,
                // never created or cut again.
                let replay = self.suppress_host_effects;
                let file = h.open_file(
                    dir,
                    name,
                    req.read,
                    req.write,
                    create && req.exclusive && !replay,
                    create && !replay,
                    req.truncate && !replay,
                )?;
                Ok(Opened::File(FileRef::Host(file)))
            }
            _ => Err(Errno::Badf),
        }
    }
}
