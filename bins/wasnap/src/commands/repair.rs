//! `wasnap journal repair PATH`: cut off a torn tail.

use std::fs::OpenOptions;
use std::path::Path;

use anyhow::{Context, Result};
use wasnap_journal::{ReadErrorKind, Recovery};

use super::open_reader;
use crate::exit;

/// Truncates a torn tail. Corruption in the middle is refused unless
/// `truncate_at_corruption`, which drops everything from the first bad record.
pub fn repair(path: &Path, truncate_at_corruption: bool) -> Result<u8> {
    // A journal being written is refused: its writer would append after
    // what is cut, or a cut would land under a running program's mapping.
    // Held until the end, so no writer starts meanwhile.
    wasnap_journal::lock::require_regular_file(path)?;
    let lock =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    wasnap_journal::lock::lock_for_writing(&lock, path)?;
    let mut reader = open_reader(path)?.with_recovery(Recovery::StopAtTornTail);
    let length = reader.buffer().len() as u64;
    let mut records = 0u64;
    let cut = loop {
        match reader.read_next() {
            Ok(Some(_)) => records += 1,
            Ok(None) => match reader.torn_tail() {
                None => {
                    println!(
                        "{}: intact, {records} records; nothing to repair",
                        path.display()
                    );
                    return Ok(exit::OK);
                }
                Some(torn) => {
                    println!("{}: {torn}", path.display());
                    break torn.offset;
                }
            },
            Err(error)
                if matches!(
                    error.kind,
                    ReadErrorKind::BadMagic | ReadErrorKind::UnsupportedVersion { .. }
                ) =>
            {
                eprintln!("wasnap: {error}");
                eprintln!("wasnap: refusing to modify it");
                return Ok(exit::DAMAGED);
            }
            Err(error) => {
                if !truncate_at_corruption {
                    eprintln!("wasnap: {error}");
                    eprintln!(
                        "wasnap: this is corruption in the middle of the journal, not a torn tail; {records} intact records precede it. \
                         Pass --truncate-at-corruption to drop everything from offset {} on ({} bytes).",
                        error.offset,
                        length - error.offset
                    );
                    return Ok(exit::DAMAGED);
                }
                println!("{}: {error}", path.display());
                break error.offset;
            }
        }
    };
    drop(reader);
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {} for writing", path.display()))?;
    file.set_len(cut)
        .with_context(|| format!("cannot truncate {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    println!(
        "{}: truncated at offset {cut}, dropping {} bytes; {records} records kept",
        path.display(),
        length - cut
    );
    Ok(exit::OK)
}
