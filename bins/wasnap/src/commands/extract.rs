//! `wasnap journal extract memory PATH OUT [--snapshot N]`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use wasnap_journal::memory::MemoryImage;
use wasnap_journal::JournalEntry;

use super::{check_destination, open_reader};
use crate::exit;

/// Writes the memory image as of snapshot `snapshot` (1-based, in journal
/// order; the last one by default) to `out`. Memory written on a timeline a
/// later run abandoned (between a snapshot and a resume from it) is not
/// part of any later snapshot's image.
pub fn extract_memory(path: &Path, out: &Path, snapshot: Option<usize>, force: bool) -> Result<u8> {
    check_destination(out, force)?;
    let mut reader = open_reader(path)?;
    let mut image = MemoryImage::new();
    // Images at each snapshot marker, for resumes that go back to one.
    let mut at_snapshot: HashMap<u64, MemoryImage> = HashMap::new();
    let mut snapshots: Vec<(u64, MemoryImage)> = Vec::new();
    loop {
        let record = match reader.read_next() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(error) => {
                eprintln!("wasnap: {error}");
                return Ok(exit::DAMAGED);
            }
        };
        match &record.entry {
            JournalEntry::UpdateMemoryRegionV1(region) => {
                if let Err(e) = image.apply(region) {
                    eprintln!("wasnap: {}: offset {}: {e}", path.display(), record.start);
                    return Ok(exit::DAMAGED);
                }
            }
            JournalEntry::SnapshotV1(_) => {
                at_snapshot.insert(record.start, image.clone());
                snapshots.push((record.start, image.clone()));
                if Some(snapshots.len()) == snapshot {
                    break;
                }
            }
            JournalEntry::ResumedFromSnapshotV1(resumed) => {
                match at_snapshot.get(&resumed.snapshot_offset) {
                    Some(saved) => image = saved.clone(),
                    None => {
                        eprintln!(
                        "wasnap: {}: offset {}: resumes from a snapshot at offset {} that is not in the journal",
                        path.display(),
                        record.start,
                        resumed.snapshot_offset
                    );
                        return Ok(exit::DAMAGED);
                    }
                }
            }
            _ => {}
        }
    }
    let chosen = match snapshot {
        None => snapshots.last(),
        Some(0) => bail!("snapshots are numbered from 1"),
        Some(n) => snapshots.get(n - 1),
    };
    let Some((offset, image)) = chosen else {
        bail!(
            "{} has {} snapshot(s); {} not found",
            path.display(),
            snapshots.len(),
            snapshot.map_or_else(
                || "a snapshot was".to_owned(),
                |n| format!("snapshot {n} was")
            )
        );
    };
    std::fs::write(out, image.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "{}: memory as of the snapshot at offset {offset}: {} bytes written to {}",
        path.display(),
        image.as_bytes().len(),
        out.display()
    );
    Ok(exit::OK)
}
