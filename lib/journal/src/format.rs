//! The bytes of a journal. docs/format.md is the prose version of this file;
//! the golden test pins both.
//!
//! ```text
//! journal  := segment+                  (concatenated journals stay readable)
//! segment  := MAGIC header-record record*
//! record   := header(8) payload(size) zero-pad(to 8) crc32c(4) reserved(4, zero)
//! header   := u64 LE = tag | size << 16  (u16 tag, u48 payload size)
//! ```
//!
//! Invariants:
//! - every record and every magic starts at an offset that is a multiple of 8,
//!   so payloads (8 bytes past a record start) are 8-aligned within the file,
//!   and so in memory when the buffer's base is 8-aligned (an mmap is);
//! - the CRC32C covers the record header, the payload and its padding;
//! - tag 0 is the header record (payload: u32 LE version, u32 LE flags); an
//!   all-zero header (tag 0, size 0) is never valid: it is a record that was
//!   never written.

use std::ops::Range;

use crate::entry::{EntryKind, JournalEntry};
use crate::error::{ReadErrorKind, TailDamage};

/// The first 8 bytes of every journal (and of every concatenated segment).
pub const MAGIC: [u8; 8] = *b"WSNPJRNL";
/// The format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 3;
/// The tag of the header record that follows each magic.
pub const HEADER_TAG: u16 = 0;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 8;
/// Size of a record trailer (checksum and reserved word).
pub const RECORD_TRAILER_LEN: usize = 8;
/// Alignment of records and payloads.
pub const RECORD_ALIGN: usize = 8;
/// Largest payload the 48-bit size field can describe.
pub const MAX_PAYLOAD_LEN: u64 = (1 << 48) - 1;

const HEADER_PAYLOAD_LEN: usize = 8;

/// Rounds a payload length up to the record alignment.
pub(crate) const fn padded_len(size: u64) -> u64 {
    size.div_ceil(RECORD_ALIGN as u64) * RECORD_ALIGN as u64
}

/// Total record length for a payload of `size` bytes.
pub(crate) const fn record_len(size: u64) -> u64 {
    RECORD_HEADER_LEN as u64 + padded_len(size) + RECORD_TRAILER_LEN as u64
}

/// Why a record could not be appended.
#[derive(Debug)]
pub(crate) enum EncodeError {
    Serialize(String),
    TooLarge(u64),
}

/// Appends the magic and a header record to `out`.
pub(crate) fn append_segment_start(out: &mut Vec<u8>) {
    debug_assert_eq!(out.len() % RECORD_ALIGN, 0);
    out.extend_from_slice(&MAGIC);
    let mut payload = [0u8; HEADER_PAYLOAD_LEN];
    payload[..4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    append_raw_record(out, HEADER_TAG, &payload);
}

/// Appends one record with an already-built payload.
fn append_raw_record(out: &mut Vec<u8>, tag: u16, payload: &[u8]) {
    let start = out.len();
    let header = u64::from(tag) | ((payload.len() as u64) << 16);
    out.extend_from_slice(&header.to_le_bytes());
    out.extend_from_slice(payload);
    finish_record(out, start);
}

/// Pads the record that starts at `start` and appends its trailer.
fn finish_record(out: &mut Vec<u8>, start: usize) {
    let unpadded = out.len();
    let size = (unpadded - start - RECORD_HEADER_LEN) as u64;
    out.resize(start + RECORD_HEADER_LEN + padded_len(size) as usize, 0);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// Page size of mapped memory regions: the payload of a mapped region
/// starts at a file offset that is a multiple of this.
pub const PAGE_LEN: u64 = 4096;
/// Uncompressed memory regions at least this long are written page-aligned
/// (see [`is_mapped_region`]); shorter ones are not worth a padding record.
pub const MAPPED_REGION_MIN_LEN: u64 = 64 * 1024;
/// The smallest padding record: header, the empty fill's 8-byte root, trailer.
const MIN_PADDING_RECORD_LEN: u64 = 24;

/// Whether `entry` is a memory region that resume can map from the file
/// instead of copying: uncompressed, starting on a page, a whole number of
/// pages, at least [`MAPPED_REGION_MIN_LEN`] long. The writer places the
/// payload of every such record on a page boundary of the file (a
/// `PaddingV1` record before it takes up the gap). Its data is the payload's
/// first bytes (rkyv writes a struct's only out-of-line field first).
pub fn is_mapped_region(entry: &JournalEntry<'_>) -> bool {
    match entry {
        JournalEntry::UpdateMemoryRegionV1(r) => {
            r.compression == crate::entry::MemoryCompression::None.as_u8()
                && r.end >= r.start
                && is_mappable(r.start, r.end - r.start)
                && r.data.len() as u64 == r.end - r.start
        }
        _ => false,
    }
}

/// Whether `len` bytes of memory at `start` are stored for mapping (the
/// shape half of [`is_mapped_region`]): on a page, whole pages, at least
/// [`MAPPED_REGION_MIN_LEN`].
pub fn is_mappable(start: u64, len: u64) -> bool {
    start.is_multiple_of(PAGE_LEN) && len.is_multiple_of(PAGE_LEN) && len >= MAPPED_REGION_MIN_LEN
}

/// Appends `entry` as one record: a zero header, the rkyv payload serialized
/// in place behind it, then the header backpatched with tag and size, padding
/// and the trailer. `base` is the journal offset of `out[0]`: a mapped
/// region (see [`is_mapped_region`]) is preceded by a `PaddingV1` record
/// that puts its payload on a page boundary. Returns where in `out` the
/// entry's record starts. On error `out` is left as it was.
pub(crate) fn append_entry(
    out: &mut Vec<u8>,
    entry: &JournalEntry<'_>,
    arena: &mut rkyv::ser::allocator::Arena,
    base: u64,
) -> Result<usize, EncodeError> {
    let rollback = out.len();
    append_alignment(out, entry, arena, base)?;
    let start = out.len();
    if let Err(e) = append_one(out, entry, arena) {
        out.truncate(rollback);
        return Err(e);
    }
    Ok(start)
}

/// Before a mapped region (see [`is_mapped_region`]) whose record would
/// start at journal offset `base + out.len()`: the `PaddingV1` record that
/// puts its payload on a page boundary, if one is needed.
fn append_alignment(
    out: &mut Vec<u8>,
    entry: &JournalEntry<'_>,
    arena: &mut rkyv::ser::allocator::Arena,
    base: u64,
) -> Result<(), EncodeError> {
    if !is_mapped_region(entry) {
        return Ok(());
    }
    let payload_at = base + out.len() as u64 + RECORD_HEADER_LEN as u64;
    let mut gap = (PAGE_LEN - payload_at % PAGE_LEN) % PAGE_LEN;
    if gap != 0 && gap < MIN_PADDING_RECORD_LEN {
        gap += PAGE_LEN;
    }
    if gap != 0 {
        let before = out.len();
        let fill = vec![0u8; (gap - MIN_PADDING_RECORD_LEN) as usize];
        let padding = JournalEntry::PaddingV1(crate::entry::PaddingV1 {
            fill: std::borrow::Cow::Owned(fill),
        });
        append_one(out, &padding, arena)?;
        debug_assert_eq!((out.len() - before) as u64, gap, "padding record length");
    }
    Ok(())
}

/// Entries whose bulk data is at least this long are written straight
/// from the caller's buffer instead of being copied into a batch.
pub(crate) const DIRECT_WRITE_MIN: usize = 256 * 1024;

/// A record encoded around its bulk data, which stays where the caller has
/// it: the bytes of the file are `head ‖ data ‖ tail`.
pub(crate) struct SplitRecord<'d> {
    /// Alignment padding (if any), the record header, and the payload
    /// bytes before the data.
    pub head: Vec<u8>,
    /// The entry's bulk data, not copied.
    pub data: &'d [u8],
    /// The payload bytes after the data, padding and trailer. The trailer's
    /// checksum is zero until [`SplitRecord::seal`] puts it in.
    pub tail: Vec<u8>,
    /// Where in `head` the entry's record starts.
    pub start: usize,
    /// CRC-32C of the record's bytes in `head` (from `start`): the trailer's
    /// checksum goes on from here over `data` and `tail`.
    pub head_crc: u32,
}

impl SplitRecord<'_> {
    /// Bytes the record (and its padding record) take in the journal.
    pub fn len(&self) -> usize {
        self.head.len() + self.data.len() + self.tail.len()
    }

    /// Where the checksum sits in `tail` (the trailer is the last 8 bytes).
    fn checksum_at(&self) -> usize {
        self.tail.len() - 8
    }

    /// The record's checksum, from `crc` (the checksum of its bytes up to
    /// the end of `data`) over the tail before its trailer.
    pub fn tail_checksum(&self, crc: u32) -> u32 {
        crc32c::crc32c_append(crc, &self.tail[..self.checksum_at()])
    }

    /// Puts `crc` (the record's checksum) into the trailer. Allocates
    /// nothing.
    pub fn set_checksum(&mut self, crc: u32) {
        let at = self.checksum_at();
        self.tail[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// rkyv's output with one slice left out: when the serializer writes
/// exactly `skip` (same address and length: the bulk field's bytes), the
/// position advances without copying them, and `split` marks the place.
struct GapWriter<'s> {
    bytes: Vec<u8>,
    skip: &'s [u8],
    split: Option<usize>,
}

impl rkyv::ser::Positional for GapWriter<'_> {
    fn pos(&self) -> usize {
        self.bytes.len() + self.split.map_or(0, |_| self.skip.len())
    }
}

impl<E> rkyv::ser::Writer<E> for GapWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        if self.split.is_none()
            && !bytes.is_empty()
            && std::ptr::eq(bytes.as_ptr(), self.skip.as_ptr())
            && bytes.len() == self.skip.len()
        {
            self.split = Some(self.bytes.len());
        } else {
            self.bytes.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// Encodes `entry` (whose record would start at journal offset `base`)
/// around its bulk data `bulk` (see [`JournalEntry::bulk_data`]). `None`
/// when the serializer did not write the data in one piece (then the
/// caller copies it as usual).
pub(crate) fn encode_split<'d>(
    entry: &JournalEntry<'_>,
    bulk: &'d [u8],
    arena: &mut rkyv::ser::allocator::Arena,
    base: u64,
) -> Result<Option<SplitRecord<'d>>, EncodeError> {
    let mut head = Vec::new();
    append_alignment(&mut head, entry, arena, base)?;
    let start = head.len();
    head.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    // The payload's positions count from the record start, as in a batch
    // (records start 8-aligned, so alignment is the same).
    let writer = GapWriter {
        bytes: std::mem::take(&mut head),
        skip: bulk,
        split: None,
    };
    let writer = entry
        .encode_payload_to(writer, arena)
        .map_err(|e| EncodeError::Serialize(e.to_string()))?;
    let Some(split) = writer.split else {
        return Ok(None);
    };
    let mut head = writer.bytes;
    let tail_payload = head.split_off(split);
    let size = (head.len() - start - RECORD_HEADER_LEN + bulk.len() + tail_payload.len()) as u64;
    if size > MAX_PAYLOAD_LEN {
        return Err(EncodeError::TooLarge(size));
    }
    let header = u64::from(entry.kind().tag()) | (size << 16);
    head[start..start + RECORD_HEADER_LEN].copy_from_slice(&header.to_le_bytes());
    let mut tail = tail_payload;
    tail.resize(tail.len() + (padded_len(size) - size) as usize, 0);
    // The trailer: a checksum filled in by `seal` (the costly pass over
    // the data is left to whoever writes it), and the reserved word.
    tail.extend_from_slice(&[0u8; 8]);
    let head_crc = crc32c::crc32c(&head[start..]);
    Ok(Some(SplitRecord {
        head,
        data: bulk,
        tail,
        start,
        head_crc,
    }))
}

fn append_one(
    out: &mut Vec<u8>,
    entry: &JournalEntry<'_>,
    arena: &mut rkyv::ser::allocator::Arena,
) -> Result<(), EncodeError> {
    let start = out.len();
    debug_assert_eq!(start % RECORD_ALIGN, 0, "records start 8-aligned");
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    if let Err(e) = entry.encode_payload(out, arena) {
        out.truncate(start);
        return Err(EncodeError::Serialize(e.to_string()));
    }
    let size = (out.len() - start - RECORD_HEADER_LEN) as u64;
    if size > MAX_PAYLOAD_LEN {
        out.truncate(start);
        return Err(EncodeError::TooLarge(size));
    }
    let header = u64::from(entry.kind().tag()) | (size << 16);
    out[start..start + RECORD_HEADER_LEN].copy_from_slice(&header.to_le_bytes());
    finish_record(out, start);
    Ok(())
}

/// A structurally valid record: its checksum matched.
#[derive(Debug, Clone)]
pub(crate) struct RawRecord {
    pub start: usize,
    pub tag: u16,
    pub payload: Range<usize>,
    pub end: usize,
}

/// What a record-level check found wrong.
enum Damage {
    /// Could be a torn tail; whether it is depends on what follows.
    Tail(TailDamage),
    /// The record is intact but its reserved trailer word is not zero.
    BadTrailer,
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// The magic as the little-endian word a reader sees at a record boundary.
const MAGIC_WORD: u64 = u64::from_le_bytes(MAGIC);

/// Checks the record at `pos`: length, checksum (unless the record ends at or
/// before `verified_to`: bytes this reader already checked), trailer. Does
/// not look at the tag's meaning or the payload's contents.
fn check_record(bytes: &[u8], pos: usize, verified_to: usize) -> Result<RawRecord, Damage> {
    let rest = &bytes[pos..];
    let available = rest.len() as u64;
    let Some(header_bytes) = rest.first_chunk::<RECORD_HEADER_LEN>() else {
        return Err(Damage::Tail(TailDamage::PartialHeader { available }));
    };
    let header = u64::from_le_bytes(*header_bytes);
    if header == 0 {
        return Err(Damage::Tail(TailDamage::ZeroHeader));
    }
    let tag = (header & 0xFFFF) as u16;
    let size = header >> 16;
    if record_len(size) > available {
        return Err(Damage::Tail(TailDamage::PastEnd {
            size,
            available: available - RECORD_HEADER_LEN as u64,
        }));
    }
    // Cannot overflow or go out of bounds: record_len(size) <= available.
    let covered = RECORD_HEADER_LEN + padded_len(size) as usize;
    let (checked, trailer) = rest[..covered + RECORD_TRAILER_LEN].split_at(covered);
    if pos + covered + RECORD_TRAILER_LEN > verified_to {
        let stored = read_u32(trailer, 0);
        let computed = crc32c::crc32c(checked);
        if stored != computed {
            return Err(Damage::Tail(TailDamage::CrcMismatch { stored, computed }));
        }
    }
    if read_u32(trailer, 4) != 0 {
        return Err(Damage::BadTrailer);
    }
    Ok(RawRecord {
        start: pos,
        tag,
        payload: pos + RECORD_HEADER_LEN..pos + RECORD_HEADER_LEN + size as usize,
        end: pos + covered + RECORD_TRAILER_LEN,
    })
}

/// The entry record at `pos` if it is whole and ends at or before
/// `verified_to` (its checksum already matched): the reader's common case,
/// decided without leaving the caller. Anything else (a magic, a header
/// record, damage, a record not yet verified) is `None`, for [`step`].
#[inline(always)]
pub(crate) fn verified_record(bytes: &[u8], pos: usize, verified_to: usize) -> Option<RawRecord> {
    let header = u64::from_le_bytes(*bytes.get(pos..)?.first_chunk::<RECORD_HEADER_LEN>()?);
    let tag = (header & 0xFFFF) as u16;
    let size = header >> 16;
    if pos == 0 || header == 0 || header == MAGIC_WORD || tag == HEADER_TAG {
        return None;
    }
    let covered = RECORD_HEADER_LEN as u64 + padded_len(size);
    let end = (pos as u64).checked_add(covered + RECORD_TRAILER_LEN as u64)?;
    if end > verified_to as u64 || end > bytes.len() as u64 {
        return None;
    }
    let (covered, end) = (covered as usize, end as usize);
    if read_u32(bytes, pos + covered + 4) != 0 {
        return None;
    }
    Some(RawRecord {
        start: pos,
        tag,
        payload: pos + RECORD_HEADER_LEN..pos + RECORD_HEADER_LEN + size as usize,
        end,
    })
}

/// How far ahead of a reader [`verify_ahead`] checks, at most: a bound on
/// the work done before the first record is returned.
const VERIFY_AHEAD_BYTES: usize = 64 * 1024;
/// How many records [`verify_ahead`] checks at most (a multiple of three:
/// checksums are computed three at a time).
const VERIFY_AHEAD_RECORDS: usize = 48;

/// Verifies the checksums of the records that follow `pos` (a record
/// boundary), several at once, ahead of a reader that will read them in
/// order. Returns the end of the unbroken run of whole records, from `pos`,
/// whose checksums match and whose reserved trailer word is zero; `pos`
/// itself when the thing at `pos` is not such a record (a magic, damage, the
/// end). What stops the run is left to [`step`], which names it.
#[inline(never)]
pub(crate) fn verify_ahead(bytes: &[u8], pos: usize) -> usize {
    let mut spans: [&[u8]; VERIFY_AHEAD_RECORDS] = [&[]; VERIFY_AHEAD_RECORDS];
    let mut stored = [0u32; VERIFY_AHEAD_RECORDS];
    let mut count = 0;
    let mut at = pos;
    while count < VERIFY_AHEAD_RECORDS && (count == 0 || at - pos < VERIFY_AHEAD_BYTES) {
        let Some(header) = bytes
            .get(at..)
            .and_then(|rest| rest.first_chunk::<RECORD_HEADER_LEN>())
        else {
            break;
        };
        let header = u64::from_le_bytes(*header);
        if at == 0 || header == 0 || header == MAGIC_WORD {
            break;
        }
        let size = header >> 16;
        if record_len(size) > (bytes.len() - at) as u64 {
            break;
        }
        // Cannot overflow or go out of bounds: record_len(size) fits.
        let covered = RECORD_HEADER_LEN + padded_len(size) as usize;
        if read_u32(bytes, at + covered + 4) != 0 {
            break;
        }
        spans[count] = &bytes[at..at + covered];
        stored[count] = read_u32(bytes, at + covered);
        count += 1;
        at += covered + RECORD_TRAILER_LEN;
    }
    let mut computed = [0u32; VERIFY_AHEAD_RECORDS];
    crate::crc_lanes::crc32c_each(&spans[..count], &mut computed[..count]);
    let mut end = pos;
    for (span, (stored, computed)) in spans[..count].iter().zip(stored.iter().zip(&computed)) {
        if stored != computed {
            break;
        }
        end += span.len() + RECORD_TRAILER_LEN;
    }
    end
}

/// The torn-tail rule: whether damage found at `pos` is the tail of a write
/// that was cut short (a crash, `kill -9`, a lost page), decided from the
/// structure at the end of the file alone, in time linear in what follows
/// `pos`, never by looking for record-like bytes (a payload may hold
/// anything, a journal included):
///
/// - fewer than 8 bytes left (a partial header): torn;
/// - an all-zero header: torn if every byte from there to the end is zero
///   (pages never written); otherwise corruption;
/// - an intact header (a known tag) whose record runs past the end: torn —
///   the file ends inside the record being written — unless the bytes after
///   it prove the size field was damaged instead: some later aligned
///   boundary closes the record with a checksum that matches once the size
///   is corrected (then it is corruption in the middle);
/// - a header with an unknown tag that runs past the end: corruption (a
///   writer only writes known tags, and writes headers whole);
/// - a record complete in length whose checksum does not match: corruption,
///   unless its trailer and everything after it are zero (a write whose
///   last pages were lost).
#[cold]
#[inline(never)]
pub(crate) fn is_torn_tail(bytes: &[u8], pos: usize, cause: &TailDamage) -> bool {
    let rest = &bytes[pos..];
    match cause {
        TailDamage::PartialHeader { .. } => true,
        TailDamage::ZeroHeader => rest.iter().all(|&b| b == 0),
        TailDamage::PastEnd { size, .. } => {
            let header = rest
                .first_chunk::<RECORD_HEADER_LEN>()
                .map_or(0, |h| u64::from_le_bytes(*h));
            let tag = (header & 0xFFFF) as u16;
            let known = tag == HEADER_TAG || EntryKind::from_tag(tag).is_some();
            known && !size_field_was_damaged(rest, header, *size)
        }
        TailDamage::CrcMismatch { .. } => {
            let size = rest
                .first_chunk::<RECORD_HEADER_LEN>()
                .map_or(0, |h| u64::from_le_bytes(*h) >> 16);
            let trailer_at = RECORD_HEADER_LEN + padded_len(size) as usize;
            rest.get(trailer_at..)
                .is_some_and(|after| after.iter().all(|&b| b == 0))
        }
    }
}

/// Whether the record at the start of `rest` (header `header`, stated size
/// `stated`, running past the end) is really an intact record whose size
/// field was damaged: some aligned boundary within `rest` has a zero
/// reserved word and a stored checksum equal to the checksum of the header
/// — with a size that ends the record there — and the bytes before it.
///
/// One pass, a constant amount of work per 8 bytes: CRC32C is affine, so
/// the checksum of (header with size `s` ‖ body) is the checksum of (header
/// with size 0 ‖ body), kept up to date as the body grows, XOR the linear
/// contribution of each set size bit, each kept up to date by one
/// "advance over 8 zero bytes" step (a 32×32 bit matrix, as byte tables).
fn size_field_was_damaged(rest: &[u8], header: u64, stated: u64) -> bool {
    let shift = ZeroShift::new();
    let zeros = crc32c::crc32c(&[0u8; RECORD_HEADER_LEN]);
    let tag_only = header & 0xFFFF;
    // crc(header with size 0 ‖ body so far)
    let mut base = crc32c::crc32c(&tag_only.to_le_bytes());
    // lin(e_i ‖ 0^len) for the 48 size bits (header bits 16..64)
    let mut bits: [u32; 48] =
        std::array::from_fn(|j| crc32c::crc32c(&(1u64 << (j + 16)).to_le_bytes()) ^ zeros);
    let mut len = 0usize;
    while RECORD_HEADER_LEN + len + RECORD_TRAILER_LEN <= rest.len() {
        let trailer = RECORD_HEADER_LEN + len;
        let stored = read_u32(rest, trailer);
        // A zero checksum is skipped: zero-filled bytes are the common
        // case, and a real one is 0 once in 2^32.
        if read_u32(rest, trailer + 4) == 0 && stored != 0 {
            let padded = len as u64;
            for size in padded.saturating_sub(RECORD_ALIGN as u64 - 1)..=padded {
                if size == stated || padded_len(size) != padded {
                    continue;
                }
                let mut crc = base;
                let mut rest_bits = size;
                while rest_bits != 0 {
                    let j = rest_bits.trailing_zeros() as usize;
                    crc ^= bits[j];
                    rest_bits &= rest_bits - 1;
                }
                if crc == stored {
                    return true;
                }
            }
        }
        let next = &rest[trailer..trailer + RECORD_ALIGN];
        base = crc32c::crc32c_append(base, next);
        for b in &mut bits {
            *b = shift.apply(*b);
        }
        len += RECORD_ALIGN;
    }
    false
}

/// The CRC32C register advanced over 8 zero bytes: a linear map, applied
/// as four byte tables.
struct ZeroShift([[u32; 256]; 4]);

impl ZeroShift {
    fn new() -> ZeroShift {
        let constant = crc32c::crc32c_append(0, &[0; 8]);
        let advance = |v: u32| crc32c::crc32c_append(v, &[0; 8]) ^ constant;
        let mut tables = [[0u32; 256]; 4];
        for (byte, table) in tables.iter_mut().enumerate() {
            for (b, entry) in table.iter_mut().enumerate() {
                *entry = advance((b as u32) << (8 * byte));
            }
        }
        ZeroShift(tables)
    }

    fn apply(&self, v: u32) -> u32 {
        let t = &self.0;
        t[0][(v & 0xFF) as usize]
            ^ t[1][((v >> 8) & 0xFF) as usize]
            ^ t[2][((v >> 16) & 0xFF) as usize]
            ^ t[3][(v >> 24) as usize]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod torn_tail_tests {
    use super::*;

    /// A journal's bytes: magic, header record, then records of `sizes`.
    fn records(sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        append_segment_start(&mut out);
        for (i, &size) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
            append_raw_record(&mut out, 1, &payload);
        }
        out
    }

    #[test]
    fn the_size_check_finds_the_true_end_of_a_record_with_a_damaged_size() {
        for size in [0usize, 1, 7, 8, 9, 100, 4095] {
            let bytes = records(&[24, size, 16]);
            let start = {
                let mut pos = MAGIC.len();
                pos += record_len(8) as usize; // the header record
                pos + record_len(24) as usize
            };
            let header = u64::from_le_bytes(bytes[start..start + 8].try_into().unwrap());
            // The real size proves itself; a bogus stated size does not matter.
            let bogus = 1u64 << 40;
            assert!(
                size_field_was_damaged(&bytes[start..], header, bogus),
                "size {size}"
            );
            // Cut inside the record: no boundary closes it.
            let cut = &bytes[start..start + 8 + size / 2];
            assert!(!size_field_was_damaged(cut, header, bogus), "size {size}");
        }
    }
}

/// One step of reading.
#[derive(Debug)]
pub(crate) enum Step {
    /// No more bytes.
    End,
    /// A magic; a header record must follow.
    Magic { next: usize },
    /// A header record.
    Header { version: u32, next: usize },
    /// An entry record (its tag is not yet checked against the known kinds).
    Record(RawRecord),
}

/// Reads the thing at `pos`. `expect_header` is true right after a magic.
/// `[0, verified_to)` holds whole records whose checksums this reader
/// already verified in the same buffer (a second pass does not pay for them
/// again). Errors carry the kind only; the caller adds the journal name and
/// `pos`.
pub(crate) fn step(
    bytes: &[u8],
    pos: usize,
    expect_header: bool,
    verified_to: usize,
) -> Result<Step, ReadErrorKind> {
    let rest = bytes.len() - pos;
    if rest == 0 {
        if expect_header {
            // The magic was written, its header record was not.
            return Err(ReadErrorKind::TornTail {
                cause: TailDamage::PartialHeader { available: 0 },
            });
        }
        return Ok(Step::End);
    }
    let first_word = bytes[pos..]
        .first_chunk::<8>()
        .map(|w| u64::from_le_bytes(*w));
    if first_word == Some(MAGIC_WORD) {
        if expect_header && pos != 0 {
            return Err(ReadErrorKind::MisplacedHeader);
        }
        return Ok(Step::Magic {
            next: pos + MAGIC.len(),
        });
    }
    if pos == 0 {
        // A journal must open with the magic; a short prefix of it is a
        // journal torn while its first bytes were being written.
        return if rest < MAGIC.len() && MAGIC.starts_with(bytes) {
            Err(ReadErrorKind::TornTail {
                cause: TailDamage::PartialHeader {
                    available: rest as u64,
                },
            })
        } else {
            Err(ReadErrorKind::BadMagic)
        };
    }
    let raw = match check_record(bytes, pos, verified_to) {
        Ok(raw) => raw,
        Err(Damage::BadTrailer) => return Err(ReadErrorKind::BadTrailer),
        Err(Damage::Tail(cause)) => {
            if is_torn_tail(bytes, pos, &cause) {
                return Err(ReadErrorKind::TornTail { cause });
            }
            return Err(match cause {
                TailDamage::PartialHeader { .. } | TailDamage::ZeroHeader => {
                    ReadErrorKind::ZeroHeader
                }
                TailDamage::PastEnd { size, available } => {
                    ReadErrorKind::SizePastEnd { size, available }
                }
                TailDamage::CrcMismatch { stored, computed } => {
                    ReadErrorKind::CrcMismatch { stored, computed }
                }
            });
        }
    };
    if raw.tag == HEADER_TAG {
        if !expect_header || raw.payload.len() != HEADER_PAYLOAD_LEN {
            return Err(ReadErrorKind::MisplacedHeader);
        }
        let version = read_u32(bytes, raw.payload.start);
        if version > FORMAT_VERSION || version == 0 {
            return Err(ReadErrorKind::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        return Ok(Step::Header {
            version,
            next: raw.end,
        });
    }
    if expect_header {
        return Err(ReadErrorKind::MisplacedHeader);
    }
    Ok(Step::Record(raw))
}
