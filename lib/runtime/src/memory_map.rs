//! Restoring linear memory from a snapshot's [`MemoryLayers`]: the memory
//! is replaced by fresh zero pages, then the journal's page-aligned regions
//! are either mapped copy-on-write from the journal file over it
//! (`MAP_PRIVATE | MAP_FIXED`, [`MemoryRestore::Map`]) or read into it
//! ([`MemoryRestore::Copy`]), and the other regions are copied in journal
//! order. The program's writes never reach the journal either way.
//!
//! The two ways trade differently. Mapping costs nothing up front and a
//! page fault per page the program touches (a copy of the page on its first
//! write); copying costs a read of the whole image up front, on two
//! threads, into memory the kernel may back with 2 MiB pages, and nothing
//! after. A program that writes most of its heap after resuming (a garbage
//! collector's full collection does) resumes faster copied; one that
//! touches a little of a large heap, mapped. [`MemoryRestore::Auto`] copies
//! images up to [`COPY_AT_MOST`] and maps larger ones.
//!
//! Invariants: every mapping and copy stays inside `[base, base + size)`,
//! the part of the linear memory the engine made accessible; a file range
//! is used only when the file holds all of it (so a truncated journal is a
//! typed error here, not a SIGBUS later, unless another process truncates
//! it while a mapped program runs: docs/format.md says what happens then).

use std::os::unix::fs::FileExt as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasnap_journal::memory::{MemoryLayers, RestoreStep};

/// How resume puts a snapshot's memory back (see the module's
/// documentation for the trade).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemoryRestore {
    /// Copy images up to [`COPY_AT_MOST`], map larger ones.
    #[default]
    Auto,
    /// Map page-aligned regions copy-on-write from the journal file.
    Map,
    /// Read every region into fresh memory.
    Copy,
}

/// The largest image [`MemoryRestore::Auto`] copies: reading it takes a
/// few milliseconds on two threads, about what a program pays in faults
/// for writing a third of its pages when they are mapped.
pub const COPY_AT_MOST: u64 = 64 << 20;

impl MemoryRestore {
    /// Whether an image of `len` bytes is mapped (otherwise copied).
    pub fn maps(self, len: u64) -> bool {
        match self {
            MemoryRestore::Auto => len > COPY_AT_MOST,
            MemoryRestore::Map => true,
            MemoryRestore::Copy => false,
        }
    }
}

/// What restoring memory did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreFigures {
    /// Bytes mapped from journal files.
    pub mapped_bytes: u64,
    /// Bytes copied (compressed, small or unaligned regions, memory journals).
    pub copied_bytes: u64,
}

/// Restores `layers` over the `size` accessible bytes of linear memory at
/// `base` (page-aligned; `size >= layers.len()`), mapping the mappable
/// regions when `map` is true and reading them otherwise.
///
/// # Safety
///
/// `[base, base + size)` must be the accessible part of a linear memory
/// this thread owns exclusively for the call (no references into it are
/// alive), backed by a private mapping that may be replaced.
pub(crate) unsafe fn restore(
    base: *mut u8,
    size: usize,
    layers: &MemoryLayers,
    map: bool,
) -> Result<RestoreFigures, String> {
    if !(base as usize).is_multiple_of(crate::dirty::PAGE)
        || !size.is_multiple_of(crate::dirty::PAGE)
    {
        return Err("linear memory is not page-aligned".to_owned());
    }
    if layers.len() > size as u64 {
        return Err(format!(
            "the snapshot's memory ({} bytes) does not fit the memory ({size} bytes)",
            layers.len()
        ));
    }
    let rw = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
    let fixed = rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::FIXED;
    if size > 0 {
        // SAFETY: replaces the accessible memory by fresh zero pages of the
        // same protection; the caller guarantees nothing refers into it.
        unsafe { rustix::mm::mmap_anonymous(base.cast(), size, rw, fixed) }
            .map_err(|e| format!("cannot clear linear memory: {e}"))?;
        if !map {
            // Advice only: where the kernel cannot, the copy lands in small
            // pages.
            // SAFETY: advises on the range just mapped; no contents change.
            let _ = unsafe {
                rustix::mm::madvise(base.cast(), size, rustix::mm::Advice::LinuxHugepage)
            };
        }
    }
    let mut figures = RestoreFigures::default();
    let steps = layers.steps();
    if !map {
        // Mapped regions never overlap one another: read them all, in
        // parallel, before the copies that may overwrite them.
        let reads: Vec<Read<'_>> = steps
            .iter()
            .filter_map(|step| match *step {
                RestoreStep::Map {
                    start,
                    len,
                    file,
                    offset,
                } => Some(Read {
                    start,
                    len,
                    file,
                    offset,
                }),
                RestoreStep::Copy { .. } => None,
            })
            .collect();
        for read in &reads {
            read.check(size)?;
        }
        // SAFETY: every read lies inside `[base, base + size)` (checked
        // above) and the reads are disjoint; the caller owns the memory.
        unsafe { read_all(base, &reads) }?;
        figures.copied_bytes += reads.iter().map(|r| r.len).sum::<u64>();
    }
    for step in steps {
        match step {
            RestoreStep::Map {
                start,
                len,
                file,
                offset,
            } => {
                if !map {
                    continue; // read above
                }
                Read {
                    start,
                    len,
                    file,
                    offset,
                }
                .check(size)?;
                // SAFETY: `start + len <= size` (checked), so the mapping
                // replaces pages of the accessible memory only; the file
                // holds the whole range (checked), and MAP_PRIVATE keeps the
                // program's writes out of it.
                unsafe {
                    rustix::mm::mmap(
                        base.add(start as usize).cast(),
                        len as usize,
                        rw,
                        fixed,
                        file,
                        offset,
                    )
                }
                .map_err(|e| {
                    format!("cannot map the memory region at file offset {offset}: {e}")
                })?;
                figures.mapped_bytes += len;
            }
            RestoreStep::Copy { start, bytes } => {
                let end = start
                    .checked_add(bytes.len() as u64)
                    .filter(|end| *end <= size as u64)
                    .ok_or_else(|| format!("the memory region at {start} lies past memory"))?;
                // SAFETY: `[start, end)` is inside the accessible memory
                // (checked); `bytes` is journal data, not linear memory.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        base.add(start as usize),
                        (end - start) as usize,
                    )
                };
                figures.copied_bytes += end - start;
            }
        }
    }
    Ok(figures)
}

/// A region read from the journal file into memory.
struct Read<'a> {
    start: u64,
    len: u64,
    file: &'a std::fs::File,
    offset: u64,
}

impl Read<'_> {
    /// Whether the file holds the whole region and memory has room for it.
    fn check(&self, size: usize) -> Result<(), String> {
        let (start, len, offset) = (self.start, self.len, self.offset);
        let file_len = self
            .file
            .metadata()
            .map_err(|e| format!("cannot read the journal's length: {e}"))?
            .len();
        let in_file = offset.checked_add(len).is_some_and(|end| end <= file_len);
        let in_memory = start.checked_add(len).is_some_and(|end| end <= size as u64);
        if !in_file || !in_memory {
            return Err(format!(
                "the memory region at file offset {offset} ({len} bytes) lies past the end of the journal ({file_len} bytes) or of memory"
            ));
        }
        Ok(())
    }
}

/// Pieces the reads are split into, so that two threads share the work.
const PIECE: u64 = 2 << 20;

/// Below this many bytes one thread reads everything (a thread costs more
/// to start than it would save).
const ONE_THREAD_BELOW: u64 = 4 << 20;

/// Reads every region into memory at `base`, on this thread and a helper.
///
/// # Safety
///
/// Every region must lie inside memory the caller owns exclusively for the
/// call, and the regions must not overlap.
unsafe fn read_all(base: *mut u8, reads: &[Read<'_>]) -> Result<(), String> {
    // Pieces as (read, offset within it, length).
    let pieces: Vec<(usize, u64, u64)> = reads
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            (0..r.len)
                .step_by(PIECE as usize)
                .map(move |at| (i, at, PIECE.min(r.len - at)))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let base = base as usize;
    let work = || -> Result<(), String> {
        loop {
            let Some(&(i, at, len)) = pieces.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(());
            };
            let read = &reads[i];
            let start = base + (read.start + at) as usize;
            // SAFETY: inside the caller's memory (the caller's contract);
            // pieces are disjoint and each is taken by one thread only
            // (the counter hands each index out once).
            let into = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, len as usize) };
            read.file
                .read_exact_at(into, read.offset + at)
                .map_err(|e| {
                    format!(
                        "cannot read the memory region at file offset {}: {e}",
                        read.offset
                    )
                })?;
        }
    };
    let total: u64 = reads.iter().map(|r| r.len).sum();
    if total < ONE_THREAD_BELOW {
        return work();
    }
    std::thread::scope(|scope| {
        let helper = scope.spawn(work);
        let mine = work();
        let theirs = helper
            .join()
            .unwrap_or_else(|_| Err("the thread reading memory panicked".to_owned()));
        mine.and(theirs)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::borrow::Cow;

    use wasnap_journal::memory::{compressed_region, MemoryImage};
    use wasnap_journal::{
        Journal, JournalEntry, JournalOptions, JournalReader, UpdateMemoryRegionV1, WriteJournal,
    };

    use super::*;

    const PAGE: usize = crate::dirty::PAGE;

    fn raw_region(start: usize, bytes: Vec<u8>) -> JournalEntry<'static> {
        UpdateMemoryRegionV1 {
            start: start as u64,
            end: (start + bytes.len()) as u64,
            compression: 0,
            data: Cow::Owned(bytes),
        }
        .into()
    }

    /// Regions over 9 MiB of memory (enough for both threads to read):
    /// mapped ones, a later one over part of an earlier one, an unaligned
    /// one and a compressed one (copied either way).
    fn regions() -> Vec<JournalEntry<'static>> {
        let mib = 1 << 20;
        vec![
            raw_region(0, (0..5 * mib).map(|i| (i / 7) as u8).collect()),
            raw_region(6 * mib, (0..3 * mib).map(|i| (i / 3) as u8).collect()),
            raw_region(mib, vec![0xAB; 2 * mib]),
            raw_region(4 * mib + 100, vec![0xCD; 3000]),
            compressed_region((7 * mib + 5 * PAGE) as u64, &[0xEF; 4 * PAGE]).into(),
        ]
    }

    /// A journal of `entries` in `dir`, its layers (sharing the file) and
    /// the image applying them in order gives.
    fn journal(
        dir: &std::path::Path,
        entries: &[JournalEntry<'static>],
    ) -> (std::path::PathBuf, MemoryLayers, MemoryImage) {
        let path = dir.join("m.journal");
        let journal = Journal::open(&path, JournalOptions::default()).unwrap();
        for entry in entries {
            journal.write(entry).unwrap();
        }
        journal.flush().unwrap();
        drop(journal);
        let mut reader = JournalReader::open(&path).unwrap();
        let backing = reader.backing();
        let (mut layers, mut image) = (MemoryLayers::new(), MemoryImage::new());
        while let Some(record) = reader.read_next().unwrap() {
            if let JournalEntry::UpdateMemoryRegionV1(region) = &record.entry {
                layers.push(region, backing.share(&region.data)).unwrap();
                image.apply(region).unwrap();
            }
        }
        (path, layers, image)
    }

    /// Fresh private memory of `size` bytes, filled with junk that a
    /// restore must clear.
    fn junk_memory(size: usize) -> *mut u8 {
        let rw = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
        // SAFETY: a fresh anonymous mapping, at an address the kernel picks.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                size,
                rw,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .unwrap()
        .cast::<u8>();
        // SAFETY: the mapping is `size` bytes, ours alone.
        unsafe { std::ptr::write_bytes(base, 0x5A, size) };
        base
    }

    #[test]
    fn mapping_and_reading_give_the_image_in_journal_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, layers, image) = journal(dir.path(), &regions());
        let before = std::fs::read(&path).unwrap();
        let size = (layers.len() as usize).next_multiple_of(PAGE) + 4 * PAGE;
        let mut by_map = RestoreFigures::default();
        for map in [true, false] {
            let base = junk_memory(size);
            // SAFETY: `base` is `size` bytes of private memory, ours alone.
            let figures = unsafe { restore(base, size, &layers, map) }.unwrap();
            // SAFETY: as above; the restore is done.
            let memory = unsafe { std::slice::from_raw_parts_mut(base, size) };
            let expected = image.as_bytes();
            assert!(memory[..expected.len()] == *expected, "map: {map}");
            assert!(
                memory[expected.len()..].iter().all(|b| *b == 0),
                "map: {map}"
            );
            if map {
                assert!(figures.mapped_bytes >= 8 << 20, "{figures:?}");
                by_map = figures;
            } else {
                // What was mapped is read instead.
                assert_eq!(figures.mapped_bytes, 0);
                assert_eq!(
                    figures.copied_bytes,
                    by_map.mapped_bytes + by_map.copied_bytes
                );
            }
            // The program writes everywhere; the journal does not change.
            memory.fill(0x11);
            assert!(std::fs::read(&path).unwrap() == before, "map: {map}");
            // SAFETY: unmaps what junk_memory mapped; nothing refers to it.
            unsafe { rustix::mm::munmap(base.cast(), size) }.unwrap();
        }
    }

    #[test]
    fn a_journal_cut_short_is_an_error_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let mib = 1 << 20;
        let entries = [raw_region(0, vec![3; 6 * mib])];
        let (path, layers, _) = journal(dir.path(), &entries);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(3 * mib as u64).unwrap();
        let size = 8 * mib;
        for map in [true, false] {
            let base = junk_memory(size);
            // SAFETY: `base` is `size` bytes of private memory, ours alone.
            let error = unsafe { restore(base, size, &layers, map) }.unwrap_err();
            assert!(error.contains("past the end of the journal"), "{error}");
            // SAFETY: unmaps what junk_memory mapped; nothing refers to it.
            unsafe { rustix::mm::munmap(base.cast(), size) }.unwrap();
        }
    }

    #[test]
    fn auto_copies_up_to_its_limit() {
        assert!(!MemoryRestore::Auto.maps(COPY_AT_MOST));
        assert!(MemoryRestore::Auto.maps(COPY_AT_MOST + 1));
        assert!(MemoryRestore::Map.maps(0));
        assert!(!MemoryRestore::Copy.maps(u64::MAX));
    }
}
