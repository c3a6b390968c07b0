//! `wasnap journal extract memory PATH OUT [--snapshot N]`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use wasnap_journal::memory::MemoryImage;
use wasnap_journal::timeline::{TimelineStep, TimelineTracker};
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
    let mut timeline = TimelineTracker::new();
    loop {
        let record = match reader.read_next() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(error) => {
                eprintln!("wasnap: {error}");
                return Ok(exit::DAMAGED);
            }
        };
        let step = match timeline.observe(record.start, &record.entry) {
            Ok(step) => step,
            Err(e) => {
                eprintln!("wasnap: {}: {e}", path.display());
                return Ok(exit::DAMAGED);
            }
        };
        match step {
            TimelineStep::Continues => {
                if let JournalEntry::UpdateMemoryRegionV1(region) = &record.entry {
                    if let Err(e) = image.apply(region) {
                        eprintln!("wasnap: {}: offset {}: {e}", path.display(), record.start);
                        return Ok(exit::DAMAGED);
                    }
                }
            }
            TimelineStep::Snapshot => {
                at_snapshot.insert(record.start, image.clone());
                snapshots.push((record.start, image.clone()));
                if Some(snapshots.len()) == snapshot {
                    break;
                }
            }
            TimelineStep::Resumed { marker, .. } => {
                if let Some(saved) = at_snapshot.get(&marker) {
                    image = saved.clone();
                }
            }
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
