//! Whole large files (modules, cached artifacts) read into memory that the
//! kernel backs with huge pages where it allows (transparent huge pages in
//! `madvise` mode): tens of megabytes then cost tens of page faults instead
//! of thousands.

use std::io::Read;
use std::path::Path;

/// The huge page size this aims at (x86-64, aarch64 with 4 KiB pages).
const HUGE_PAGE: usize = 2 << 20;

/// The whole file at `path`.
pub(crate) fn read_whole(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len()).unwrap_or(0);
    // One more byte than the file holds: reading sees the end without
    // growing the vector.
    let mut bytes = Vec::with_capacity(len.saturating_add(1));
    advise_huge_pages(&mut bytes);
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Asks the kernel to back the whole huge pages inside `bytes`'s spare
/// capacity with huge pages (a hint: refused or ignored, nothing changes).
fn advise_huge_pages(bytes: &mut Vec<u8>) {
    let start = bytes.as_mut_ptr() as usize + bytes.len();
    let end = bytes.as_mut_ptr() as usize + bytes.capacity();
    let from = start.next_multiple_of(HUGE_PAGE);
    let to = end / HUGE_PAGE * HUGE_PAGE;
    if to <= from {
        return;
    }
    // SAFETY: `[from, to)` lies inside the vector's allocation, in its spare
    // capacity (nothing refers to it); MADV_HUGEPAGE changes only how the
    // kernel backs those pages, not the mapping or any byte of it.
    let _ = unsafe {
        rustix::mm::madvise(
            from as *mut std::ffi::c_void,
            to - from,
            rustix::mm::Advice::LinuxHugepage,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_whole_small_and_large() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for len in [0usize, 1, 4096, (5 << 20) + 7] {
            let path = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4099) as u8).collect();
            std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                read_whole(&path).unwrap_or_else(|e| panic!("{e}")) == data,
                "{len}"
            );
        }
        assert!(read_whole(&dir.path().join("missing")).is_err());
    }
}
