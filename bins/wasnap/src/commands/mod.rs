//! The `wasnap journal …` subcommands, one file each, and what they share.

pub mod compact;
pub mod export;
pub mod extract;
pub mod filter;
pub mod inspect;
pub mod prepare;
pub mod repair;
pub mod run;
pub mod tail;

use std::path::Path;

use anyhow::{bail, Context, Result};
use wasnap_journal::{Journal, JournalError, JournalOptions, JournalReader, WriteJournal};

/// Opens a journal for reading. A missing or unreadable file is an error
/// naming it (and nothing is created); bad bytes are reported by the reads.
pub fn open_reader(path: &Path) -> Result<JournalReader> {
    match JournalReader::open(path) {
        Ok(reader) => Ok(reader),
        Err(JournalError::Io { source, .. }) => {
            Err(source).with_context(|| format!("cannot open journal {}", path.display()))
        }
        Err(other) => Err(other.into()),
    }
}

/// Refuses to overwrite `destination` unless `force`.
pub fn check_destination(destination: &Path, force: bool) -> Result<()> {
    if destination.exists() && !force {
        bail!(
            "{} already exists (pass --force to replace it)",
            destination.display()
        );
    }
    Ok(())
}

/// Builds a journal at `destination` atomically: `fill` writes into a
/// temporary journal beside it, which is synced and renamed over
/// `destination` only if `fill` succeeds. On any error nothing is created or
/// replaced.
pub fn write_journal_atomically<T>(
    destination: &Path,
    fill: impl FnOnce(&Journal) -> Result<T>,
) -> Result<T> {
    let directory = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    remove_stale_temporaries(directory);
    let temporary = tempfile::Builder::new()
        .prefix(".wasnap-")
        .suffix(".journal.tmp")
        .tempfile_in(directory)
        .with_context(|| format!("cannot create a temporary file in {}", directory.display()))?;
    let journal = Journal::open(temporary.path(), JournalOptions::default())?;
    let value = fill(&journal)?;
    journal.flush()?;
    journal.writer().sync()?;
    drop(journal);
    temporary.persist(destination).with_context(|| {
        format!(
            "cannot move the new journal into place at {}",
            destination.display()
        )
    })?;
    if let Ok(dir) = std::fs::File::open(directory) {
        // Make the rename itself durable.
        let _ = dir.sync_all();
    }
    Ok(value)
}

/// Removes the temporary journals a killed compaction (or import, filter,
/// repair) left in `directory`. One still being written is held under its
/// writer's lock and stays; one whose lock can be taken has no writer.
fn remove_stale_temporaries(directory: &Path) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(".wasnap-") && name.ends_with(".journal.tmp")) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() && std::fs::remove_file(&path).is_ok() {
            tracing::info!(path = %path.display(), "removed a temporary journal left by a killed command");
        }
    }
}
