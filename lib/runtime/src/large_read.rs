//! Whole large files (modules, cached artifacts), mapped from the page cache
//! instead of read into fresh memory: the kernel would zero every page of a
//! fresh buffer before copying into it (for CPython's 25 MB module and 38 MB
//! artifact, that zeroing was most of a cached load). Small files are read.
//!
//! A mapped file must not shrink while it is mapped: touching a page past its
//! new end raises SIGBUS. wasnap never truncates the files it maps (the cache
//! replaces an artifact by renaming a new file over it); a module file
//! truncated by another process while wasnap loads it can end the process
//! with SIGBUS (README, "Notes").

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

/// Files at least this long are mapped.
const MAP_FROM: u64 = 1 << 20;

/// A whole file's bytes: mapped (read-only, private) or read.
pub(crate) enum FileBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) => map,
            FileBytes::Read(bytes) => bytes,
        }
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// The whole file at `path`.
pub(crate) fn read_whole(path: &Path) -> std::io::Result<FileBytes> {
    let file = File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.len() < MAP_FROM {
        return std::fs::read(path).map(FileBytes::Read);
    }
    // The pages are populated up front (one call instead of a fault per few
    // pages): every caller reads the whole file (hashing, a MAC).
    //
    // SAFETY: the mapping is read-only and private; what it needs is that the
    // file not shrink while mapped (the module's documentation says who
    // could do that, and what follows).
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
    Ok(FileBytes::Mapped(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_whole_small_and_large() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for len in [0usize, 1, 4096, (1 << 20) - 1, 1 << 20, (5 << 20) + 7] {
            let path = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4099) as u8).collect();
            std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
            let read = read_whole(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(*read == data[..], "{len}");
            assert_eq!(
                matches!(read, FileBytes::Mapped(_)),
                len as u64 >= MAP_FROM,
                "{len}"
            );
        }
        assert!(read_whole(&dir.path().join("missing")).is_err());
        // A directory is refused, not mapped.
        assert!(read_whole(dir.path()).is_err());
    }
}
