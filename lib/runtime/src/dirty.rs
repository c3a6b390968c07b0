//! Which pages of linear memory were written since the last snapshot, as
//! the kernel tracks them: userfaultfd in asynchronous write-protect mode
//! (`UFFD_FEATURE_WP_ASYNC`, Linux 6.7) marks every page write-protected; a
//! write clears the mark without a fault reaching us; the `PAGEMAP_SCAN`
//! ioctl on `/proc/self/pagemap` lists the pages whose mark is gone and
//! marks them again in the same call.
//!
//! Invariants:
//! - `[base, base + tracked)` is registered and was write-protected at the
//!   last [`DirtyTracker::take`] (or at [`DirtyTracker::start`]); a page in it
//!   reads as written exactly when something (the guest, a host call, the
//!   kernel) wrote it since;
//! - memory beyond `tracked` (grown since) is not tracked: `take` reports the
//!   pages of it that hold anything (present, not the shared zero page) and
//!   starts tracking it.
//!
//! Where the kernel says no (an older kernel, a seccomp filter, no
//! permission), [`DirtyTracker::start`] says why and the snapshot compares
//! memory against its previous copy instead (see `snapshot.rs`).

use std::fs::File;
use std::ops::Range;
use std::os::fd::{AsFd, OwnedFd};

use linux_raw_sys::general::{
    page_region, pm_scan_arg, uffdio_api, uffdio_range, uffdio_register, uffdio_writeprotect,
    PAGE_IS_PFNZERO, PAGE_IS_PRESENT, PAGE_IS_SWAPPED, PAGE_IS_WRITTEN, PM_SCAN_CHECK_WPASYNC,
    PM_SCAN_WP_MATCHING, UFFDIO_REGISTER_MODE_WP, UFFD_API, UFFD_FEATURE_WP_ASYNC,
    UFFD_FEATURE_WP_UNPOPULATED, UFFD_USER_MODE_ONLY,
};
use rustix::ioctl::{ioctl, Opcode, Updater};

/// `WASNAP_DIRTY_TRACKING=compare` turns the kernel's tracking off (the
/// snapshot then compares memory, as where the kernel cannot track): for
/// tests of the fallback, and to rule tracking out when hunting a bug.
pub const DISABLE_VAR: &str = "WASNAP_DIRTY_TRACKING";

/// Page size the kernel tracks.
pub const PAGE: usize = 4096;

/// `UFFDIO_WRITEPROTECT_MODE_WP`: set the write-protect mark.
const WRITEPROTECT_MODE_WP: u64 = 1;

/// `PAGEMAP_SCAN` = `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: Opcode = {
    const IOC_READ_WRITE: u32 = 3;
    let size = std::mem::size_of::<pm_scan_arg>() as u32;
    (IOC_READ_WRITE << 30 | size << 16 | (b'f' as u32) << 8 | 16) as Opcode
};

/// Regions asked for per `PAGEMAP_SCAN` call; the walk resumes where a
/// full buffer stopped it.
const REGIONS_PER_SCAN: usize = 512;

/// Write tracking of one linear memory by the kernel.
#[derive(Debug)]
pub struct DirtyTracker {
    uffd: OwnedFd,
    pagemap: File,
    base: usize,
    tracked: usize,
    scratch: Vec<page_region>,
}

fn errno(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// Opens a userfaultfd with the asynchronous write-protect features.
fn open_uffd() -> Result<OwnedFd, String> {
    let flags = rustix::mm::UserfaultfdFlags::CLOEXEC
        | rustix::mm::UserfaultfdFlags::NONBLOCK
        | rustix::mm::UserfaultfdFlags::from_bits_retain(UFFD_USER_MODE_ONLY);
    // Unpopulated pages marked too (Linux 6.4) keeps pages that were only
    // read from reading as written; without it tracking is still exact,
    // just coarser.
    let wanted = [
        u64::from(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED),
        u64::from(UFFD_FEATURE_WP_ASYNC),
    ];
    let mut last = String::new();
    for features in wanted {
        // SAFETY: the syscall only creates a descriptor.
        let uffd = unsafe { rustix::mm::userfaultfd(flags) }
            .map_err(|e| errno("userfaultfd() failed", e))?;
        let mut api = uffdio_api {
            api: u64::from(UFFD_API),
            features,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API reads and writes a `uffdio_api`.
        let handshake = unsafe {
            ioctl(
                uffd.as_fd(),
                Updater::<{ linux_raw_sys::ioctl::UFFDIO_API as Opcode }, uffdio_api>::new(
                    &mut api,
                ),
            )
        };
        match handshake {
            Ok(()) if api.features & u64::from(UFFD_FEATURE_WP_ASYNC) != 0 => return Ok(uffd),
            Ok(()) => last = "the kernel lacks UFFD_FEATURE_WP_ASYNC".to_owned(),
            Err(e) => last = errno("UFFDIO_API refused asynchronous write-protect", e),
        }
    }
    Err(last)
}

impl DirtyTracker {
    /// Starts tracking writes to the `len` bytes at `base` (page-aligned):
    /// from now on, [`take`](Self::take) reports the pages written. Says
    /// why when the kernel cannot track.
    pub fn start(base: *mut u8, len: usize) -> Result<Self, String> {
        if std::env::var_os(DISABLE_VAR).is_some_and(|v| v == "compare") {
            return Err(format!("turned off by {DISABLE_VAR}=compare"));
        }
        if !(base as usize).is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err("memory is not page-aligned".to_owned());
        }
        let uffd = open_uffd()?;
        let pagemap = File::open("/proc/self/pagemap")
            .map_err(|e| errno("cannot open /proc/self/pagemap", e))?;
        let mut tracker = Self {
            uffd,
            pagemap,
            base: base as usize,
            tracked: 0,
            scratch: Vec::with_capacity(REGIONS_PER_SCAN),
        };
        tracker.extend(len)?;
        // The scan must work too (Linux 6.7), or nothing is gained.
        tracker.scan(0..0, ScanFor::Written)?;
        Ok(tracker)
    }

    /// The memory's base address this tracker watches.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Registers and write-protects `[tracked, len)`.
    fn extend(&mut self, len: usize) -> Result<(), String> {
        if len <= self.tracked {
            return Ok(());
        }
        let range = uffdio_range {
            start: (self.base + self.tracked) as u64,
            len: (len - self.tracked) as u64,
        };
        let mut register = uffdio_register {
            range,
            mode: u64::from(UFFDIO_REGISTER_MODE_WP),
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER reads and writes a `uffdio_register`; the
        // range is mapped memory of this process (the linear memory).
        unsafe {
            ioctl(
                self.uffd.as_fd(),
                Updater::<{ linux_raw_sys::ioctl::UFFDIO_REGISTER as Opcode }, uffdio_register>::new(
                    &mut register,
                ),
            )
        }
        .map_err(|e| errno("UFFDIO_REGISTER (write-protect) refused the memory", e))?;
        let mut protect = uffdio_writeprotect {
            range,
            mode: WRITEPROTECT_MODE_WP,
        };
        // SAFETY: UFFDIO_WRITEPROTECT reads a `uffdio_writeprotect` (and the
        // kernel may write it back); the range was just registered.
        unsafe {
            ioctl(
                self.uffd.as_fd(),
                Updater::<
                    { linux_raw_sys::ioctl::UFFDIO_WRITEPROTECT as Opcode },
                    uffdio_writeprotect,
                >::new(&mut protect),
            )
        }
        .map_err(|e| errno("UFFDIO_WRITEPROTECT failed", e))?;
        self.tracked = len;
        Ok(())
    }

    /// The pages of the memory (now `len` bytes) that may differ from the
    /// last snapshot, as byte ranges from `base`, in order: pages written
    /// since the last call (marked again), and the pages of memory grown
    /// since that hold anything (then tracked too).
    pub fn take(&mut self, len: usize) -> Result<Vec<Range<usize>>, String> {
        let mut ranges = self.scan(0..self.tracked.min(len), ScanFor::Written)?;
        if len > self.tracked {
            let grown = self.tracked..len;
            ranges.extend(self.scan(grown, ScanFor::Populated)?);
            self.extend(len)?;
        }
        Ok(ranges)
    }

    /// Lists the pages of `range` (offsets from `base`) that match `what`;
    /// for written pages, marks them write-protected again.
    fn scan(&mut self, range: Range<usize>, what: ScanFor) -> Result<Vec<Range<usize>>, String> {
        let mut found: Vec<Range<usize>> = Vec::new();
        let end = (self.base + range.end) as u64;
        let mut start = (self.base + range.start) as u64;
        loop {
            self.scratch.clear();
            let (flags, inverted, mask, anyof, returned) = match what {
                ScanFor::Written => (
                    PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
                    0,
                    PAGE_IS_WRITTEN,
                    0,
                    PAGE_IS_WRITTEN,
                ),
                // Present or swapped, and not the shared zero page.
                ScanFor::Populated => (
                    0,
                    PAGE_IS_PFNZERO,
                    PAGE_IS_PFNZERO,
                    PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                    PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                ),
            };
            let mut arg = pm_scan_arg {
                size: std::mem::size_of::<pm_scan_arg>() as u64,
                flags: u64::from(flags),
                start,
                end,
                walk_end: 0,
                vec: self.scratch.as_mut_ptr() as u64,
                vec_len: REGIONS_PER_SCAN as u64,
                max_pages: 0,
                category_inverted: u64::from(inverted),
                category_mask: u64::from(mask),
                category_anyof_mask: u64::from(anyof),
                return_mask: u64::from(returned),
            };
            // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most `vec_len`
            // `page_region`s to `vec`, which has that capacity; it returns
            // how many it wrote.
            let filled = unsafe { rustix::ioctl::ioctl(self.pagemap.as_fd(), Scan(&mut arg)) }
                .map_err(|e| errno("PAGEMAP_SCAN failed", e))?;
            // SAFETY: the kernel initialised the first `filled` regions.
            unsafe { self.scratch.set_len(filled.min(REGIONS_PER_SCAN)) };
            for region in &self.scratch {
                let from = region.start as usize - self.base;
                let to = region.end as usize - self.base;
                match found.last_mut() {
                    Some(last) if last.end == from => last.end = to,
                    _ => found.push(from..to),
                }
            }
            if arg.walk_end == 0 || arg.walk_end >= end {
                return Ok(found);
            }
            start = arg.walk_end;
        }
    }
}

/// What a scan looks for.
#[derive(Debug, Clone, Copy)]
enum ScanFor {
    /// Pages written since they were last marked (and mark them again).
    Written,
    /// Pages that hold anything: present or swapped, not the zero page.
    Populated,
}

/// The `PAGEMAP_SCAN` ioctl: its argument is updated (`walk_end`) and its
/// result is the number of regions written.
struct Scan<'a>(&'a mut pm_scan_arg);

// SAFETY: the opcode is PAGEMAP_SCAN's, the argument is a pointer to a
// `pm_scan_arg` that lives for the call, and the result is the return value.
unsafe impl rustix::ioctl::Ioctl for Scan<'_> {
    type Output = usize;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        PAGEMAP_SCAN
    }

    fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        (self.0 as *mut pm_scan_arg).cast()
    }

    unsafe fn output_from_ptr(
        out: rustix::ioctl::IoctlOutput,
        _: *mut std::ffi::c_void,
    ) -> rustix::io::Result<usize> {
        Ok(out as usize)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An anonymous mapping standing in for linear memory.
    struct Mapping {
        ptr: *mut u8,
        len: usize,
    }

    impl Mapping {
        fn new(len: usize) -> Self {
            // SAFETY: a fresh private anonymous mapping, unmapped on drop.
            let ptr = unsafe {
                rustix::mm::mmap_anonymous(
                    std::ptr::null_mut(),
                    len,
                    rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                    rustix::mm::MapFlags::PRIVATE,
                )
            }
            .expect("mmap");
            Self {
                ptr: ptr.cast(),
                len,
            }
        }

        fn write(&self, at: usize, byte: u8) {
            assert!(at < self.len);
            // SAFETY: `at` is inside the mapping.
            unsafe { self.ptr.add(at).write_volatile(byte) }
        }

        fn read(&self, at: usize) -> u8 {
            assert!(at < self.len);
            // SAFETY: `at` is inside the mapping.
            unsafe { self.ptr.add(at).read_volatile() }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`, not used after this.
            let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
        }
    }

    fn pages(ranges: &[Range<usize>]) -> Vec<usize> {
        ranges
            .iter()
            .flat_map(|r| (r.start / PAGE)..(r.end / PAGE))
            .collect()
    }

    #[test]
    fn the_kernel_reports_exactly_the_pages_written() {
        let memory = Mapping::new(64 * PAGE);
        // Populated before tracking: the first take reports nothing.
        memory.write(3 * PAGE, 1);
        let mut tracker = match DirtyTracker::start(memory.ptr, 32 * PAGE) {
            Ok(t) => t,
            Err(why) => {
                // Not every kernel can: the fallback covers it.
                eprintln!("dirty tracking unavailable here: {why}");
                return;
            }
        };
        assert_eq!(
            pages(&tracker.take(32 * PAGE).unwrap()),
            Vec::<usize>::new()
        );
        memory.write(5 * PAGE + 7, 2);
        memory.write(6 * PAGE, 2);
        let _ = memory.read(9 * PAGE); // a read is not a write
        memory.write(31 * PAGE + 4095, 2);
        assert_eq!(pages(&tracker.take(32 * PAGE).unwrap()), vec![5, 6, 31]);
        // Marked again: nothing new.
        assert_eq!(
            pages(&tracker.take(32 * PAGE).unwrap()),
            Vec::<usize>::new()
        );
        // Growth: populated pages of the new part are reported once, then
        // tracked like the rest.
        memory.write(40 * PAGE, 3);
        memory.write(5 * PAGE, 3);
        assert_eq!(pages(&tracker.take(48 * PAGE).unwrap()), vec![5, 40]);
        memory.write(41 * PAGE, 4);
        assert_eq!(pages(&tracker.take(48 * PAGE).unwrap()), vec![41]);
    }
}
