//! The byte-range model of a file's contents.

use super::*;

/// File contents: what the journal knows of them.
///
/// Invariant: `ranges` holds the known byte ranges `[start, end)`, sorted,
/// non-overlapping and non-adjacent; `bytes[start..end]` holds each range's
/// bytes (bytes outside the ranges mean nothing). Writing costs the length
/// written plus a logarithmic range update, whatever the file's size.
#[derive(Clone, Default)]
pub struct Contents {
    /// Bytes before this offset that no write covers are the file's original
    /// (unknown) bytes. `Some(0)` for a file the journal created or cut to
    /// zero; `None` when no truncation ever happened.
    pub original_until: Option<u64>,
    bytes: Vec<u8>,
    ranges: BTreeMap<u64, u64>,
    /// The size, when the journal knows it.
    pub size: Option<u64>,
}

impl PartialEq for Contents {
    fn eq(&self, other: &Self) -> bool {
        self.original_until == other.original_until
            && self.size == other.size
            && self.known().eq(other.known())
    }
}

impl Eq for Contents {}

impl std::fmt::Debug for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contents")
            .field("original_until", &self.original_until)
            .field(
                "known",
                &self
                    .known()
                    .map(|(start, bytes)| (start, bytes.len()))
                    .collect::<Vec<_>>(),
            )
            .field("size", &self.size)
            .finish()
    }
}

impl Contents {
    pub(super) fn created() -> Self {
        Contents {
            original_until: Some(0),
            size: Some(0),
            ..Contents::default()
        }
    }

    /// The known bytes, by offset.
    pub fn known(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.ranges
            .iter()
            .map(|(&start, &end)| (start, &self.bytes[start as usize..end as usize]))
    }

    pub(super) fn written_end(&self) -> u64 {
        self.ranges.values().next_back().copied().unwrap_or(0)
    }

    /// Removes `[from, to)` from the known ranges.
    pub(super) fn forget(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        let mut touched: Vec<(u64, u64)> = Vec::new();
        if let Some((&start, &end)) = self.ranges.range(..from).next_back() {
            if end > from {
                touched.push((start, end));
            }
        }
        touched.extend(self.ranges.range(from..to).map(|(&s, &e)| (s, e)));
        for (start, end) in touched {
            self.ranges.remove(&start);
            if start < from {
                self.ranges.insert(start, from);
            }
            if end > to {
                self.ranges.insert(to, end);
            }
        }
    }

    /// Marks `[from, to)` known, merging with neighbours.
    pub(super) fn cover(&mut self, from: u64, to: u64) {
        self.forget(from, to);
        let (mut start, mut end) = (from, to);
        if let Some((&before, &before_end)) = self.ranges.range(..from).next_back() {
            if before_end == from {
                self.ranges.remove(&before);
                start = before;
            }
        }
        if let Some(after_end) = self.ranges.remove(&to) {
            end = after_end;
        }
        self.ranges.insert(start, end);
    }

    /// Makes `bytes` reach `end`, refusing what the model cannot hold
    /// rather than asking the allocator for it.
    fn reach(&mut self, end: u64) -> Result<(), StateError> {
        let too_large = StateError::TooLarge {
            size: end,
            limit: MAX_MODEL_FILE,
        };
        if end > MAX_MODEL_FILE {
            return Err(too_large);
        }
        let end = usize::try_from(end).map_err(|_| too_large.clone())?;
        if self.bytes.len() < end {
            self.bytes
                .try_reserve(end - self.bytes.len())
                .map_err(|_| too_large)?;
            self.bytes.resize(end, 0);
        }
        Ok(())
    }

    pub(super) fn put(&mut self, offset: u64, data: &[u8]) -> Result<(), StateError> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(StateError::TooLarge {
                size: u64::MAX,
                limit: MAX_MODEL_FILE,
            })?;
        self.reach(end)?;
        self.bytes[offset as usize..end as usize].copy_from_slice(data);
        self.cover(offset, end);
        Ok(())
    }

    pub(super) fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), StateError> {
        if data.is_empty() {
            return Ok(());
        }
        self.put(offset, data)?;
        let end = offset + data.len() as u64;
        if let Some(size) = self.size {
            if end > size {
                self.size = Some(end);
                // Bytes between the old size and the write are zeros: known.
                if offset > size {
                    self.fill_zeros(size, offset)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn fill_zeros(&mut self, from: u64, to: u64) -> Result<(), StateError> {
        if to > from {
            self.reach(to)?;
            self.bytes[from as usize..to as usize].fill(0);
            self.cover(from, to);
        }
        Ok(())
    }

    pub(super) fn set_size(&mut self, size: u64) -> Result<(), StateError> {
        // Refused before anything changes.
        if size > MAX_MODEL_FILE {
            return Err(StateError::TooLarge {
                size,
                limit: MAX_MODEL_FILE,
            });
        }
        let old = self.size;
        self.forget(size, u64::MAX);
        self.bytes.truncate(size as usize);
        self.original_until = Some(self.original_until.map_or(size, |cut| cut.min(size)));
        // Growing past the old size (or past the original bytes' cut) adds
        // zeros that are known.
        let zeros_from = match old {
            Some(old) => old.min(size),
            None => self.original_until.unwrap_or(size),
        };
        self.size = Some(size);
        let known_from = zeros_from.max(self.original_until.unwrap_or(0));
        if size > known_from {
            for (from, to) in self.gaps(known_from, size) {
                self.fill_zeros(from, to)?;
            }
        }
        Ok(())
    }

    /// Ranges in `[from, to)` no known bytes cover.
    pub(super) fn gaps(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = from;
        let first = self.ranges.range(..from).next_back().map(|(&s, &e)| (s, e));
        for (start, end) in first
            .into_iter()
            .chain(self.ranges.range(from..to).map(|(&s, &e)| (s, e)))
        {
            if end <= at {
                continue;
            }
            if start > at {
                gaps.push((at, start.min(to)));
            }
            at = at.max(end);
        }
        if at < to {
            gaps.push((at, to));
        }
        gaps
    }

    pub(super) fn allocate(&mut self, offset: u64, len: u64) -> Result<(), StateError> {
        let end = offset.saturating_add(len);
        match self.size {
            Some(size) if end > size => self.set_size(end),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn known(c: &Contents) -> Vec<(u64, Vec<u8>)> {
        c.known().map(|(at, bytes)| (at, bytes.to_vec())).collect()
    }

    #[test]
    fn adjacent_writes_merge_into_one_range() {
        let mut c = Contents::created();
        c.write(0, b"abc").unwrap();
        c.write(3, b"def").unwrap();
        assert_eq!(known(&c), vec![(0, b"abcdef".to_vec())]);
        assert_eq!(c.size, Some(6));
    }

    #[test]
    fn a_write_past_the_end_of_a_created_file_knows_the_zeros() {
        let mut c = Contents::created();
        c.write(4, b"x").unwrap();
        assert_eq!(known(&c), vec![(0, b"\0\0\0\0x".to_vec())]);
        assert_eq!(c.size, Some(5));
    }

    #[test]
    fn a_file_that_existed_before_knows_only_what_was_written() {
        let mut c = Contents::default();
        c.write(10, b"hi").unwrap();
        c.write(2, b"yo").unwrap();
        assert_eq!(known(&c), vec![(2, b"yo".to_vec()), (10, b"hi".to_vec())]);
        assert_eq!(c.size, None, "the original size is unknown");
        assert_eq!(c.gaps(0, 12), vec![(0, 2), (4, 10)]);
    }

    #[test]
    fn truncation_forgets_and_growth_adds_known_zeros() {
        let mut c = Contents::default();
        c.write(0, b"abcdef").unwrap();
        c.set_size(2).unwrap();
        assert_eq!(known(&c), vec![(0, b"ab".to_vec())]);
        assert_eq!(c.original_until, Some(2));
        c.set_size(4).unwrap();
        assert_eq!(known(&c), vec![(0, b"ab\0\0".to_vec())]);
        c.allocate(0, 6).unwrap();
        assert_eq!(c.size, Some(6));
        c.allocate(0, 1).unwrap();
        assert_eq!(c.size, Some(6), "allocate never shrinks");
    }

    #[test]
    fn equality_ignores_bytes_outside_the_known_ranges() {
        let mut a = Contents::created();
        a.write(0, b"abcd").unwrap();
        a.set_size(2).unwrap();
        let mut b = Contents::created();
        b.write(0, b"ab").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_huge_file_is_refused_not_allocated() {
        let mut c = Contents::created();
        let tib = 1u64 << 40;
        assert_eq!(
            c.set_size(tib),
            Err(StateError::TooLarge {
                size: tib,
                limit: MAX_MODEL_FILE
            })
        );
        assert!(matches!(
            c.write(tib, b"x"),
            Err(StateError::TooLarge { .. })
        ));
        assert!(matches!(
            c.write(u64::MAX - 1, b"xyz"),
            Err(StateError::TooLarge { .. })
        ));
        assert!(matches!(
            c.allocate(0, tib),
            Err(StateError::TooLarge { .. })
        ));
        // Nothing changed on the way.
        assert_eq!(c, Contents::created());
    }
}
