//! Restoring linear memory from a snapshot's [`MemoryLayers`]: the memory
//! is replaced by fresh zero pages, the mapped regions' pages are mapped
//! copy-on-write from the journal file over it (`MAP_PRIVATE | MAP_FIXED`),
//! and the other regions are copied in journal order. Resume then costs
//! what the program touches, not the size of its heap; the program's writes
//! land in private copies and never reach the journal.
//!
//! Invariants: every mapping stays inside `[base, base + size)`, the part
//! of the linear memory the engine made accessible; a file range is mapped
//! only when the file holds all of it (so a truncated journal is a typed
//! error here, not a SIGBUS later, unless another process truncates it
//! while the program runs: docs/format.md says what happens then).

use wasnap_journal::memory::{MemoryLayers, RestoreStep};

/// What restoring memory did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreFigures {
    /// Bytes mapped from journal files.
    pub mapped_bytes: u64,
    /// Bytes copied (compressed, small or unaligned regions, memory journals).
    pub copied_bytes: u64,
}

/// Restores `layers` over the `size` accessible bytes of linear memory at
/// `base` (page-aligned; `size >= layers.len()`).
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
    }
    let mut figures = RestoreFigures::default();
    for step in layers.steps() {
        match step {
            RestoreStep::Map {
                start,
                len,
                file,
                offset,
            } => {
                let file_len = file
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
