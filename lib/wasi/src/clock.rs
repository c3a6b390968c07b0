//! Clocks and randomness, injectable: the seam deterministic replay needs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The guest's view of time. Times are nanoseconds.
pub trait Clock: Send {
    /// Wall-clock time since the Unix epoch.
    fn realtime(&mut self) -> u64;
    /// A monotonic time that never goes backwards.
    fn monotonic(&mut self) -> u64;
    /// CPU time used by the process (and, in preview1, by its one thread).
    fn process_cputime(&mut self) -> u64;
    /// Resolution of the clocks, in nanoseconds.
    fn resolution(&self) -> u64 {
        1
    }
    /// Waits for `duration` (`poll_oneoff` with clock subscriptions only).
    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// The host's clocks.
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn realtime(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }

    fn monotonic(&mut self) -> u64 {
        // Offset by one second so that 0 never appears as a monotonic time.
        self.start.elapsed().as_nanos() as u64 + 1_000_000_000
    }

    fn process_cputime(&mut self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// A clock that only moves when told to: for tests and replay.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Nanoseconds since the epoch.
    pub realtime: u64,
    /// Nanoseconds since an arbitrary start.
    pub monotonic: u64,
    /// Added to both clocks on every read, so that time always advances.
    pub tick: u64,
}

impl Clock for ManualClock {
    fn realtime(&mut self) -> u64 {
        self.realtime += self.tick;
        self.realtime
    }
    fn monotonic(&mut self) -> u64 {
        self.monotonic += self.tick;
        self.monotonic
    }
    fn process_cputime(&mut self) -> u64 {
        self.monotonic
    }
    fn sleep(&mut self, duration: Duration) {
        let nanos = duration.as_nanos() as u64;
        self.realtime += nanos;
        self.monotonic += nanos;
    }
}

/// Where `random_get` bytes come from.
pub trait RandomSource: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<()>;
}

/// The operating system's random number generator.
#[derive(Debug, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        getrandom::fill(buf).map_err(std::io::Error::other)
    }
}

/// A deterministic generator (xorshift64*), for tests and replay. Not for
/// secrets.
#[derive(Debug, Clone)]
pub struct SeededRandom(pub u64);

impl RandomSource for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0.max(1);
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}
