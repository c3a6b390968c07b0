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

/// The region entry for `bytes` at `start` as snapshots and compaction store
/// it: as they are where resume can map them (page-aligned, whole pages, at
/// least [`MAPPED_REGION_MIN_LEN`](crate::MAPPED_REGION_MIN_LEN): see
/// [`is_mapped_region`](crate::is_mapped_region)), LZ4-compressed (when that
/// is smaller) otherwise. [`compressed`] turns a stored region into an
/// archive's.
pub fn stored_region(start: u64, bytes: Cow<'_, [u8]>) -> UpdateMemoryRegionV1<'_> {
    let region = UpdateMemoryRegionV1 {
        start,
        end: start + bytes.len() as u64,
        compression: MemoryCompression::None.as_u8(),
        data: bytes,
    };
    if crate::format::is_mappable(start, region.end - start) {
        region
    } else {
        compressed_region(start, &region.data)
    }
}

/// `region` LZ4-compressed when that is smaller (for archives: resume then
/// copies it instead of mapping it); a compressed region stays as it is.
pub fn compressed(
    region: UpdateMemoryRegionV1<'_>,
) -> Result<UpdateMemoryRegionV1<'static>, MemoryError> {
    if region.compression != MemoryCompression::None.as_u8() {
        return Ok(crate::field::IntoOwned::into_owned(region));
    }
    let bytes = region_bytes(&region)?;
    Ok(compressed_region(region.start, &bytes))
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

/// Where the data of a memory region lies in a journal file that can be
/// mapped.
#[derive(Debug, Clone)]
pub struct FileSpan {
    /// The journal file.
    pub file: std::sync::Arc<std::fs::File>,
    /// Offset of the region's data in the file.
    pub offset: u64,
}

/// A journal's buffer, and the file it maps if it maps one (see
/// `JournalReader::backing`).
#[derive(Debug, Clone)]
pub struct Backing {
    buffer: shared_buffer::OwnedBuffer,
    file: Option<std::sync::Arc<std::fs::File>>,
}

impl Backing {
    pub(crate) fn new(
        buffer: shared_buffer::OwnedBuffer,
        file: Option<std::sync::Arc<std::fs::File>>,
    ) -> Self {
        Self { buffer, file }
    }

    /// `bytes` (the data of an entry read from this buffer) as a slice of
    /// the buffer that outlives the reader, and where it lies in the journal
    /// file when the buffer maps one. `None` when `bytes` is not in the
    /// buffer (an entry copied for alignment).
    pub fn share(&self, bytes: &[u8]) -> Option<(shared_buffer::OwnedBuffer, Option<FileSpan>)> {
        let all = self.buffer.as_slice();
        let from = (bytes.as_ptr() as usize).checked_sub(all.as_ptr() as usize)?;
        if from.checked_add(bytes.len())? > all.len() {
            return None;
        }
        let shared = self.buffer.slice(from..from + bytes.len());
        let span = self.file.as_ref().map(|file| FileSpan {
            file: std::sync::Arc::clone(file),
            offset: from as u64,
        });
        Some((shared, span))
    }
}

/// Where one layer's bytes come from.
#[derive(Debug, Clone)]
pub enum LayerSource {
    /// Pages of a journal file, mapped copy-on-write by whoever restores.
    Mapped(FileSpan),
    /// Bytes to copy: a slice of a journal's buffer, or decompressed data.
    Bytes(shared_buffer::OwnedBuffer),
}

/// One memory region as restore sees it: `[start, end)` comes from `source`.
#[derive(Debug, Clone)]
pub struct Layer {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Where the bytes come from.
    pub source: LayerSource,
}

/// One step of restoring memory (see [`MemoryLayers::steps`]).
#[derive(Debug, Clone, Copy)]
pub enum RestoreStep<'a> {
    /// Map `len` bytes of `file` at `offset` over memory at `start`
    /// (page-aligned, whole pages).
    Map {
        /// Where in memory.
        start: u64,
        /// How many bytes (whole pages).
        len: u64,
        /// The journal file.
        file: &'a std::fs::File,
        /// Offset in the file of the first byte (page-aligned).
        offset: u64,
    },
    /// Copy `bytes` into memory at `start`.
    Copy {
        /// Where in memory.
        start: u64,
        /// What to copy.
        bytes: &'a [u8],
    },
}

/// Pages of mapped memory (resume maps whole pages).
const PAGE: u64 = crate::format::PAGE_LEN;

/// A memory image as the journal's regions in order, later ones winning
/// byte by byte, without copying them: resume maps the mappable regions
/// from the journal file and copies the rest (see [`RestoreStep`]).
#[derive(Debug, Clone, Default)]
pub struct MemoryLayers {
    layers: Vec<Layer>,
    len: u64,
}

impl MemoryLayers {
    /// No memory written.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a region. `shared` is the region's data as a slice of the
    /// journal's buffer and `file` where that lies in a mappable journal
    /// file (see `JournalReader::share`); without them an uncompressed
    /// region's data is copied. A region is mapped when it is uncompressed,
    /// page-aligned in memory and in the file, and whole pages long.
    pub fn push(
        &mut self,
        region: &UpdateMemoryRegionV1<'_>,
        shared: Option<(shared_buffer::OwnedBuffer, Option<FileSpan>)>,
    ) -> Result<(), MemoryError> {
        let (start, end) = (region.start, region.end);
        let uncompressed = region.compression == MemoryCompression::None.as_u8();
        let source = match shared {
            Some((_, Some(span)))
                if uncompressed
                    && start.is_multiple_of(PAGE)
                    && (end.saturating_sub(start)).is_multiple_of(PAGE)
                    && span.offset.is_multiple_of(PAGE)
                    && end >= start
                    && end <= MAX_MEMORY
                    && region.data.len() as u64 == end - start =>
            {
                LayerSource::Mapped(span)
            }
            Some((buffer, _)) if uncompressed => {
                region_bytes(region)?;
                LayerSource::Bytes(buffer)
            }
            _ => LayerSource::Bytes(shared_buffer::OwnedBuffer::from_bytes(
                region_bytes(region)?.into_owned(),
            )),
        };
        self.len = self.len.max(end);
        self.layers.push(Layer { start, end, source });
        Ok(())
    }

    /// From address 0 to the end of the highest region written.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no region was written.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Bytes that restoring maps instead of copying (counting overlaps once
    /// per layer).
    pub fn mapped_bytes(&self) -> u64 {
        self.layers
            .iter()
            .filter(|l| matches!(l.source, LayerSource::Mapped(_)))
            .map(|l| l.end - l.start)
            .sum()
    }

    /// How to restore the image over memory that is zero (the caller zeroes
    /// it first): the mapped pages that no later region overwrote entirely
    /// (merged when they follow each other in one file), then the copies in
    /// journal order, leaving out pages a later mapped region replaces.
    pub fn steps(&self) -> Vec<RestoreStep<'_>> {
        const NONE: u32 = u32::MAX;
        let pages = self.len.div_ceil(PAGE) as usize;
        // The last mapped layer covering each page.
        let mut owner = vec![NONE; pages];
        for (i, layer) in self.layers.iter().enumerate() {
            if let LayerSource::Mapped(_) = layer.source {
                owner[(layer.start / PAGE) as usize..(layer.end / PAGE) as usize].fill(i as u32);
            }
        }
        let mut steps: Vec<RestoreStep<'_>> = Vec::new();
        let mut page = 0;
        while page < pages {
            let i = owner[page];
            if i == NONE {
                page += 1;
                continue;
            }
            let layer = &self.layers[i as usize];
            let LayerSource::Mapped(span) = &layer.source else {
                unreachable!("owners are mapped layers");
            };
            let first = page;
            while page < pages && owner[page] == i {
                page += 1;
            }
            let start = first as u64 * PAGE;
            steps.push(RestoreStep::Map {
                start,
                len: (page - first) as u64 * PAGE,
                file: &span.file,
                offset: span.offset + (start - layer.start),
            });
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let LayerSource::Bytes(bytes) = &layer.source else {
                continue;
            };
            let bytes = bytes.as_slice();
            // Split the copy where pages belong to later mapped layers.
            let mut at = layer.start;
            while at < layer.end {
                let page = (at / PAGE) as usize;
                let page_end = ((page as u64 + 1) * PAGE).min(layer.end);
                let keep = owner[page] == NONE || owner[page] < i as u32;
                if keep {
                    // Extend over following pages kept too.
                    let mut end = page_end;
                    while end < layer.end {
                        let next = (end / PAGE) as usize;
                        if !(owner[next] == NONE || owner[next] < i as u32) {
                            break;
                        }
                        end = ((next as u64 + 1) * PAGE).min(layer.end);
                    }
                    steps.push(RestoreStep::Copy {
                        start: at,
                        bytes: &bytes[(at - layer.start) as usize..(end - layer.start) as usize],
                    });
                    at = end;
                } else {
                    at = page_end;
                }
            }
        }
        steps
    }
}
