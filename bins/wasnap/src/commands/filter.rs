//! `wasnap journal filter SRC DST --drop CATEGORY…`.

use std::path::Path;

use anyhow::{anyhow, Result};
use wasnap_journal::combinators::{CategorySet, Counting, Filtered};
use wasnap_journal::{ReadJournal, WriteJournal};

use super::{check_destination, open_reader, write_journal_atomically};
use crate::exit;

/// Copies `source` to `destination` without the dropped categories.
pub fn filter(source: &Path, destination: &Path, drop: &[String], force: bool) -> Result<u8> {
    let categories =
        CategorySet::from_names(drop.iter().map(String::as_str)).map_err(|e| anyhow!(e))?;
    check_destination(destination, force)?;
    let mut reader = Counting::new(open_reader(source)?);
    let mut damage = None;
    let kept = write_journal_atomically(destination, |journal| {
        let output = Counting::new(Filtered::new(journal.writer().clone(), categories));
        loop {
            match reader.read_next() {
                Ok(Some(record)) => {
                    output.write(&record.entry)?;
                }
                Ok(None) => break,
                Err(error) => {
                    damage = Some(error);
                    anyhow::bail!("source damaged");
                }
            }
        }
        Ok(output.counts())
    });
    if let Some(error) = damage {
        eprintln!("wasnap: {error}");
        eprintln!("wasnap: nothing was written");
        return Ok(exit::DAMAGED);
    }
    let kept = kept?;
    let read = reader.counts();
    eprintln!(
        "wasnap: kept {} of {} entries ({} of {} bytes)",
        kept.entries(),
        read.entries(),
        kept.bytes(),
        read.bytes()
    );
    Ok(exit::OK)
}
