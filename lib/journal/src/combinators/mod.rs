//! Journals that wrap or join journals. Each implements [`WriteJournal`]
//! and/or [`ReadJournal`] over any inner journal, so they compose:
//! `Counting::new(Filtered::new(reader, drop))` counts what a filter lets
//! through.
//!
//! [`WriteJournal`]: crate::WriteJournal
//! [`ReadJournal`]: crate::ReadJournal

mod buffered;
mod counting;
mod filter;
mod null;
mod pipe;
mod printing;
mod recombined;
mod transaction;
mod unsupported;

pub use buffered::BufferedJournal;
pub use counting::{Counting, Counts, KindCount};
pub use filter::{CategorySet, Filtered};
pub use null::NullJournal;
pub use pipe::{pipe, PipeReader, PipeWriter};
pub use printing::{PrintFormat, Printing};
pub use recombined::Recombined;
pub use transaction::Transaction;
pub use unsupported::UnsupportedJournal;
