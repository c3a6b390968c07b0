//! `wasnap journal compact SRC [DST]`: keep only what is needed to reach the
//! same state (see `wasnap_journal::state`).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use wasnap_journal::state;

use super::{check_destination, open_reader, write_journal_atomically};
use crate::exit;

/// Journals at least this large show progress on a terminal.
const PROGRESS_FROM: u64 = 32 << 20;

/// Compacts `source` into `destination` (or in place), through a temporary
/// file that is synced and renamed over the destination; with `compress`,
/// memory is LZ4-compressed.
pub fn compact(
    source: &Path,
    destination: Option<&Path>,
    force: bool,
    compress: bool,
) -> Result<u8> {
    let destination = destination.unwrap_or(source);
    if destination != source {
        check_destination(destination, force)?;
    }
    // A journal being written is refused: its writer would go on appending
    // to what compaction replaces (or read past). Held until the end, so
    // no writer starts meanwhile.
    wasnap_journal::lock::require_regular_file(source)?;
    let lock =
        std::fs::File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
    wasnap_journal::lock::lock_for_writing(&lock, source)?;
    let started = Instant::now();
    let mut reader = open_reader(source)?;
    let total = reader.buffer().len() as u64;
    let show_progress = total >= PROGRESS_FROM && std::io::stderr().is_terminal();
    let mut last_percent = u64::MAX;
    let mut damage = None;
    let records = std::iter::from_fn(|| match reader.read_next() {
        Ok(Some(record)) => {
            if show_progress {
                let percent = record.end * 100 / total.max(1);
                if percent != last_percent {
                    last_percent = percent;
                    eprint!(
                        "\rcompacting {}: {percent:>3}% of {} MB",
                        source.display(),
                        total >> 20
                    );
                    let _ = std::io::stderr().flush();
                }
            }
            Some((record.start, record.entry.into_owned()))
        }
        Ok(None) => None,
        Err(error) => {
            damage = Some(error);
            None
        }
    });
    let compacted = state::compact(records);
    if show_progress {
        eprintln!();
    }
    if let Some(error) = damage {
        eprintln!("wasnap: {error}");
        eprintln!("wasnap: nothing was written (run `wasnap journal repair` first)");
        return Ok(exit::DAMAGED);
    }
    let mut compacted = match compacted {
        Ok(compacted) => compacted,
        Err(error) => {
            eprintln!("wasnap: {}: cannot compact: {error}", source.display());
            eprintln!("wasnap: nothing was written");
            return Ok(exit::DAMAGED);
        }
    };
    if compress {
        compacted
            .compress_memory()
            .with_context(|| format!("{}: cannot compress memory", source.display()))?;
    }
    let entries = write_journal_atomically(destination, |journal| {
        Ok(compacted.write_to(journal.writer())?)
    })?;
    let after = std::fs::metadata(destination)
        .with_context(|| format!("cannot read {}", destination.display()))?
        .len();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} -> {}: {total} -> {after} bytes ({:.1}% of the original), {entries} entries, {:.1} MB/s",
        source.display(),
        destination.display(),
        after as f64 * 100.0 / total.max(1) as f64,
        total as f64 / 1e6 / seconds.max(1e-9),
    );
    Ok(exit::OK)
}
