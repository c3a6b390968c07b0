//! `wasnap journal extract memory PATH OUT [--snapshot N]`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use wasnap_journal::memory::MemoryImage;
use wasnap_journal::timeline::TimelineBuilder;
use wasnap_journal::JournalEntry;

use super::{check_destination, open_reader};
use crate::exit;

/// Writes the memory image as of snapshot `snapshot` (1-based, among the
/// snapshots of the live timeline, in journal order; the last one by
/// default) to `out`. Memory written on a timeline a later run abandoned
/// (after a snapshot it resumed from, or past a divergence it cut) is not
/// part of any later snapshot's image.
pub fn extract_memory(path: &Path, out: &Path, snapshot: Option<usize>, force: bool) -> Result<u8> {
    check_destination(out, force)?;
    let mut reader = open_reader(path)?;
    // First pass: the live timeline.
    let mut timeline = TimelineBuilder::default();
    loop {
        match reader.read_next() {
            Ok(Some(record)) => {
                if let Err(e) = timeline.observe(record.start, &record.entry) {
                    eprintln!("wasnap: {}: {e}", path.display());
                    return Ok(exit::DAMAGED);
                }
            }
            Ok(None) => break,
            Err(error) => {
                eprintln!("wasnap: {error}");
                return Ok(exit::DAMAGED);
            }
        }
    }
    let timeline = timeline.finish();
    // Second pass: the image, from live records only.
    reader.rewind();
    let mut image = MemoryImage::new();
    let mut snapshots: Vec<(u64, MemoryImage)> = Vec::new();
    while let Ok(Some(record)) = reader.read_next() {
        if !timeline.is_live(record.start) {
            continue;
        }
        match &record.entry {
            JournalEntry::UpdateMemoryRegionV1(region) => {
                if let Err(e) = image.apply(region) {
                    eprintln!("wasnap: {}: offset {}: {e}", path.display(), record.start);
                    return Ok(exit::DAMAGED);
                }
            }
            JournalEntry::SnapshotV1(_) => {
                snapshots.push((record.start, image.clone()));
                if Some(snapshots.len()) == snapshot {
                    break;
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
