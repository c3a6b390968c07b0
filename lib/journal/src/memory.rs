//! Linear memory as the journal describes it: regions written by
//! `UpdateMemoryRegionV1` entries, later writes winning byte by byte.

use std::borrow::Cow;

use crate::entry::{MemoryCompression, UpdateMemoryRegionV1};

/// Why a memory region entry could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// `start > end`, or `end` beyond 64-bit memory.
    #[error("memory region {start}..{end} is inverted or larger than the address space")]
    BadRange {
        /// First byte of the region.
        start: u64,
        /// One past the last byte of the region.
        end: u64,
    },
    /// A compression byte this build does not know.
    #[error("memory region {start}..{end} uses unknown compression {compression}")]
    UnknownCompression {
        /// First byte of the region.
        start: u64,
        /// One past the last byte of the region.
        end: u64,
        /// The compression byte.
        compression: u8,
    },
    /// The data is not as long as the region.
    #[error("memory region {start}..{end} holds {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// First byte of the region.
        start: u64,
        /// One past the last byte of the region.
        end: u64,
        /// What was expected.
        expected: u64,
        /// What was found.
        actual: u64,
    },
    /// The compressed data is damaged.
    #[error("memory region {start}..{end} does not decompress: {message}")]
    Corrupt {
        /// First byte of the region.
        start: u64,
        /// One past the last byte of the region.
        end: u64,
        /// What went wrong.
        message: String,
    },
}

/// The largest memory a wasm32 module can have (4 GiB); regions beyond it are
/// refused rather than allocated.
pub const MAX_MEMORY: u64 = 1 << 32;

/// The bytes of a region entry, decompressed.
pub fn region_bytes<'e>(
    region: &'e UpdateMemoryRegionV1<'_>,
) -> Result<Cow<'e, [u8]>, MemoryError> {
    let (start, end) = (region.start, region.end);
    if end < start || end > MAX_MEMORY {
        return Err(MemoryError::BadRange { start, end });
    }
    let expected = end - start;
    let bytes = match MemoryCompression::from_u8(region.compression) {
        Some(MemoryCompression::None) => Cow::Borrowed(region.data.as_ref()),
        Some(MemoryCompression::Lz4Block) => Cow::Owned(
            lz4_flex::block::decompress(&region.data, expected as usize).map_err(|e| {
                MemoryError::Corrupt {
                    start,
                    end,
                    message: e.to_string(),
                }
            })?,
        ),
        _ => {
            return Err(MemoryError::UnknownCompression {
                start,
                end,
                compression: region.compression,
            })
        }
    };
    if bytes.len() as u64 != expected {
        return Err(MemoryError::SizeMismatch {
            start,
            end,
            expected,
            actual: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// A region entry for `bytes` at `start`, LZ4-compressed when that is
/// smaller.
pub fn compressed_region(start: u64, bytes: &[u8]) -> UpdateMemoryRegionV1<'static> {
    let compressed = lz4_flex::block::compress(bytes);
    let (compression, data) = if compressed.len() < bytes.len() {
        (MemoryCompression::Lz4Block, compressed)
    } else {
        (MemoryCompression::None, bytes.to_vec())
    };
    UpdateMemoryRegionV1 {
        start,
        end: start + bytes.len() as u64,
        compression: compression.as_u8(),
        data: Cow::Owned(data),
    }
}

/// A memory image: the bytes every applied region wrote, zero elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryImage {
    bytes: Vec<u8>,
}

impl MemoryImage {
    /// An empty image.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a region into the image, growing it as needed.
    pub fn apply(&mut self, region: &UpdateMemoryRegionV1<'_>) -> Result<(), MemoryError> {
        let bytes = region_bytes(region)?;
        let (start, end) = (region.start as usize, region.end as usize);
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[start..end].copy_from_slice(&bytes);
        Ok(())
    }

    /// The image: from address 0 to the end of the highest region written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The image's bytes, without a copy.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
