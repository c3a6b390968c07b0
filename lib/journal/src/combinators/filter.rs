//! Dropping whole categories of entries.

use crate::{
    Category, JournalEntry, JournalError, LogRecord, ReadError, ReadJournal, RecordSpan,
    WriteJournal,
};

/// A set of categories (a bit per [`Category`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CategorySet(u16);

impl CategorySet {
    /// The empty set.
    pub const fn empty() -> Self {
        CategorySet(0)
    }

    const fn bit(category: Category) -> u16 {
        1 << (category as u16)
    }

    /// The set with `category` added.
    pub const fn with(self, category: Category) -> Self {
        CategorySet(self.0 | Self::bit(category))
    }

    /// Whether `category` is in the set.
    pub const fn contains(self, category: Category) -> bool {
        self.0 & Self::bit(category) != 0
    }

    /// Parses category names (`memory`, `threads`, `filesystem`, `stdio`,
    /// `core`, `snapshots`, `network`, `inputs`).
    pub fn from_names<'n>(names: impl IntoIterator<Item = &'n str>) -> Result<Self, String> {
        names.into_iter().try_fold(Self::empty(), |set, name| {
            Category::from_name(name)
                .map(|c| set.with(c))
                .ok_or_else(|| {
                    let known: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
                    format!("unknown category {name:?} (known: {})", known.join(", "))
                })
        })
    }
}

/// Wraps a journal and drops entries whose category is in `drop`, on the way
/// in (writes) and on the way out (reads).
#[derive(Debug, Clone)]
pub struct Filtered<J> {
    inner: J,
    drop: CategorySet,
}

impl<J> Filtered<J> {
    /// A filter over `inner` that drops the categories in `drop`.
    pub fn new(inner: J, drop: CategorySet) -> Self {
        Self { inner, drop }
    }

    /// Whether the filter lets `entry` through.
    pub fn keeps(&self, entry: &JournalEntry<'_>) -> bool {
        !self.drop.contains(entry.category())
    }

    /// The wrapped journal.
    pub fn into_inner(self) -> J {
        self.inner
    }
}

impl<J: WriteJournal> WriteJournal for Filtered<J> {
    fn write(&self, entry: &JournalEntry<'_>) -> Result<RecordSpan, JournalError> {
        if self.keeps(entry) {
            self.inner.write(entry)
        } else {
            Ok(RecordSpan::NOT_STORED)
        }
    }
    fn commit(&self) -> Result<(), JournalError> {
        self.inner.commit()
    }
    fn flush(&self) -> Result<(), JournalError> {
        self.inner.flush()
    }
}

impl<J: ReadJournal> ReadJournal for Filtered<J> {
    fn read_next_where(
        &mut self,
        keep: &mut dyn FnMut(&JournalEntry<'_>) -> bool,
    ) -> Result<Option<LogRecord<'_>>, ReadError> {
        let drop = self.drop;
        self.inner
            .read_next_where(&mut |entry| !drop.contains(entry.category()) && keep(entry))
    }
    fn restart(&mut self) -> Result<(), JournalError> {
        self.inner.restart()
    }
}
