//! BLAKE3 (and CRC32C) of large inputs on two threads: the left subtree of BLAKE3's
//! tree here, the right one on a helper thread, joined at the root. The
//! tree mode makes this the very hash a single pass computes (the tests
//! compare them); it halves the wall time of hashing a module or a cached
//! artifact of tens of megabytes.

use blake3::hazmat::{left_subtree_len, merge_subtrees_root, HasherExt, Mode};
use blake3::Hasher;

/// Inputs shorter than this are hashed in one pass (a thread costs more).
const SPLIT_MIN: usize = 1 << 20;

/// `blake3::hash(data)`.
pub(crate) fn hash(data: &[u8]) -> blake3::Hash {
    split(data, Hasher::new, Mode::Hash).unwrap_or_else(|| blake3::hash(data))
}

/// `blake3::keyed_hash(key, data)`.
pub(crate) fn keyed_hash(key: &[u8; 32], data: &[u8]) -> blake3::Hash {
    split(data, || Hasher::new_keyed(key), Mode::KeyedHash(key))
        .unwrap_or_else(|| blake3::keyed_hash(key, data))
}

/// `crc32c::crc32c(data)`: the two halves on two threads, combined.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    if data.len() < SPLIT_MIN {
        return crc32c::crc32c(data);
    }
    let (left, right) = data.split_at(data.len() / 2);
    let (left_crc, right_crc) = std::thread::scope(|scope| {
        let right_crc = std::thread::Builder::new()
            .name("wasnap-hash".into())
            .spawn_scoped(scope, || crc32c::crc32c(right));
        let left_crc = crc32c::crc32c(left);
        let right_crc = match right_crc.ok().map(|t| t.join()) {
            Some(Ok(crc)) => crc,
            Some(Err(_)) | None => crc32c::crc32c(right),
        };
        (left_crc, right_crc)
    });
    crc32c::crc32c_combine(left_crc, right_crc, right.len())
}

/// The hash of `data` from its two subtrees (hashers from `new`, root in
/// `mode`), or `None` where it is not worth a thread or none could start.
fn split(data: &[u8], new: impl Fn() -> Hasher + Sync, mode: Mode<'_>) -> Option<blake3::Hash> {
    if data.len() < SPLIT_MIN {
        return None;
    }
    // The largest whole power-of-two number of chunks before the end.
    let left_len = usize::try_from(left_subtree_len(data.len() as u64)).ok()?;
    let (left, right) = data.split_at(left_len);
    let new = &new;
    let (left_cv, right_cv) = std::thread::scope(|scope| {
        let right_cv = std::thread::Builder::new()
            .name("wasnap-hash".into())
            .spawn_scoped(scope, move || {
                new()
                    .set_input_offset(left_len as u64)
                    .update(right)
                    .finalize_non_root()
            });
        let left_cv = new().update(left).finalize_non_root();
        (left_cv, right_cv.ok().and_then(|t| t.join().ok()))
    });
    Some(merge_subtrees_root(&left_cv, &right_cv?, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_threads_give_the_one_pass_hash() {
        let key = [7u8; 32];
        for len in [
            0usize,
            1,
            1024,
            SPLIT_MIN - 1,
            SPLIT_MIN,
            SPLIT_MIN + 1,
            SPLIT_MIN + 1025,
            3 * SPLIT_MIN + 333,
            (8 << 20) + 4096,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 1021) as u8).collect();
            assert_eq!(hash(&data), blake3::hash(&data), "{len}");
            assert_eq!(crc32c(&data), crc32c::crc32c(&data), "{len}");
            assert_eq!(
                keyed_hash(&key, &data),
                blake3::keyed_hash(&key, &data),
                "{len}"
            );
        }
    }
}
