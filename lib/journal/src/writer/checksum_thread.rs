//! A thread that checksums the data of a record written straight from the
//! caller's buffer while the kernel copies that data into the file, so a
//! large append costs the copy, not the copy and then the checksum.
//!
//! The thread reads the caller's buffer without owning it: that is sound
//! because [`ChecksumThread::overlapped`] does not return (nor unwind) before
//! the thread has answered for that buffer.

#![allow(unsafe_code)]

use std::sync::mpsc::{self, Receiver, SyncSender};

/// One buffer to checksum: its address and length, and the checksum so far.
struct Job {
    addr: usize,
    len: usize,
    seed: u32,
}

/// The checksumming thread of one writer, started on its first large
/// direct write.
#[derive(Debug)]
pub(super) struct ChecksumThread {
    jobs: SyncSender<Job>,
    results: Receiver<u32>,
}

impl ChecksumThread {
    pub(super) fn spawn() -> std::io::Result<Self> {
        let (jobs, queued) = mpsc::sync_channel::<Job>(1);
        let (answer, results) = mpsc::sync_channel::<u32>(1);
        std::thread::Builder::new()
            .name("wasnap-journal-crc".to_owned())
            .spawn(move || {
                for job in queued {
                    // SAFETY: `overlapped` sent this job for a `&[u8]` it
                    // borrows for its whole call and waits for this answer
                    // before returning or unwinding, so the bytes are alive
                    // and unchanged (shared borrow) while they are read.
                    let data =
                        unsafe { std::slice::from_raw_parts(job.addr as *const u8, job.len) };
                    let crc = crc32c::crc32c_append(job.seed, data);
                    if answer.send(crc).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self { jobs, results })
    }

    /// Runs `work` here while the thread computes the CRC-32C of `data`
    /// from `seed`; returns what `work` returned and the checksum.
    pub(super) fn overlapped<R>(
        &self,
        seed: u32,
        data: &[u8],
        work: impl FnOnce() -> R,
    ) -> (R, u32) {
        let job = Job {
            addr: data.as_ptr() as usize,
            len: data.len(),
            seed,
        };
        if self.jobs.send(job).is_err() {
            // The thread is gone: checksum here.
            return (work(), crc32c::crc32c_append(seed, data));
        }
        /// Waits for the thread's answer, also when `work` unwinds: until
        /// then the thread may be reading `data`.
        struct Answer<'a> {
            results: &'a Receiver<u32>,
            crc: Option<u32>,
            answered: bool,
        }
        impl Answer<'_> {
            fn wait(&mut self) {
                if !self.answered {
                    // An error means the thread ended, so it reads nothing.
                    self.crc = self.results.recv().ok();
                    self.answered = true;
                }
            }
        }
        impl Drop for Answer<'_> {
            fn drop(&mut self) {
                self.wait();
            }
        }
        let mut answer = Answer {
            results: &self.results,
            crc: None,
            answered: false,
        };
        let result = work();
        answer.wait();
        let crc = answer
            .crc
            .unwrap_or_else(|| crc32c::crc32c_append(seed, data));
        (result, crc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_computes_the_same_checksum_as_here() {
        let thread = ChecksumThread::spawn().unwrap_or_else(|e| panic!("{e}"));
        for len in [0usize, 1, 7, 4096, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let (value, crc) = thread.overlapped(17, &data, || len * 2);
            assert_eq!(value, len * 2);
            assert_eq!(crc, crc32c::crc32c_append(17, &data));
        }
    }
}
