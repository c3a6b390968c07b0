//! CRC32C of many short inputs at once.
//!
//! The hardware `crc32` instruction has a latency of three cycles but
//! issues one per cycle, so one small record's checksum waits on itself
//! (a 96-byte record: twelve dependent steps). Checksums of three records
//! computed in lockstep keep the unit busy: this is what lets a reader
//! verify records ahead of where it is for a third of the cost.
//!
//! Every input here is a whole number of 8-byte words (records are padded to
//! 8); a ragged end is still handled, by the `crc32c` crate.

// The one use of `unsafe`: calling the SSE4.2 function after checking at run
// time that the CPU has SSE4.2.
#![allow(unsafe_code)]

/// Writes the CRC32C of `inputs[i]` to `out[i]`. `out` must be as long as
/// `inputs`.
pub(crate) fn crc32c_each(inputs: &[&[u8]], out: &mut [u32]) {
    assert_eq!(inputs.len(), out.len(), "one checksum per input");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            let mut groups = inputs.chunks_exact(3);
            let mut outs = out.chunks_exact_mut(3);
            for (group, results) in (&mut groups).zip(&mut outs) {
                // SAFETY: the CPU supports SSE4.2 (checked just above), the
                // only requirement of this function.
                let crcs = unsafe { x86::crc32c_three(group[0], group[1], group[2]) };
                results.copy_from_slice(&crcs);
            }
            for (input, result) in groups.remainder().iter().zip(outs.into_remainder()) {
                *result = crc32c::crc32c(input);
            }
            return;
        }
    }
    for (input, result) in inputs.iter().zip(out.iter_mut()) {
        *result = crc32c::crc32c(input);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::_mm_crc32_u64;

    fn word(bytes: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(bytes);
        u64::from_le_bytes(w)
    }

    /// The checksums of three inputs, their common length in lockstep, then
    /// each one's rest alone.
    #[target_feature(enable = "sse4.2")]
    pub(super) fn crc32c_three(a: &[u8], b: &[u8], c: &[u8]) -> [u32; 3] {
        let common = a.len().min(b.len()).min(c.len()) & !7;
        let (mut ra, mut rb, mut rc) = (u64::from(!0u32), u64::from(!0u32), u64::from(!0u32));
        let words = a[..common]
            .chunks_exact(8)
            .zip(b[..common].chunks_exact(8))
            .zip(c[..common].chunks_exact(8));
        for ((wa, wb), wc) in words {
            ra = _mm_crc32_u64(ra, word(wa));
            rb = _mm_crc32_u64(rb, word(wb));
            rc = _mm_crc32_u64(rc, word(wc));
        }
        // The register holds the complement of the checksum so far;
        // `crc32c_append` continues from a checksum.
        let finish = |register: u64, rest: &[u8]| {
            let crc = !(register as u32);
            if rest.is_empty() {
                crc
            } else {
                crc32c::crc32c_append(crc, rest)
            }
        };
        [
            finish(ra, &a[common..]),
            finish(rb, &b[common..]),
            finish(rc, &c[common..]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_checksum_matches_the_one_at_a_time_checksum() {
        let data: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        // Lengths that are and are not multiples of 8, equal and unequal,
        // empty, and counts that leave a remainder after groups of three.
        let lengths = [0usize, 8, 96, 96, 96, 13, 4000, 7, 64, 1, 72, 800, 96, 3];
        for count in 0..=lengths.len() {
            let inputs: Vec<&[u8]> = lengths[..count]
                .iter()
                .enumerate()
                .map(|(i, &len)| &data[i * 17..i * 17 + len])
                .collect();
            let mut out = vec![0u32; count];
            crc32c_each(&inputs, &mut out);
            for (input, crc) in inputs.iter().zip(&out) {
                assert_eq!(*crc, crc32c::crc32c(input), "length {}", input.len());
            }
        }
    }
}
