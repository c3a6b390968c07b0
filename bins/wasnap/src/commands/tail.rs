//! `wasnap journal tail PATH [--follow] [--watermark FILE]`.
//!
//! The watermark remembers where the tail stopped: the file's identity, the
//! offset after the last record printed, and fingerprints (length and stored
//! checksum) of the last records printed. A restarted tail on the same file
//! continues at the offset after checking the fingerprint there; on a file
//! that was replaced (a compaction renames a new file over the old one) it
//! finds the last records it printed by their fingerprints and continues
//! after them. It is saved after every record printed, so a tail killed at
//! any moment repeats at most the one record it was printing.

use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use wasnap_journal::{JournalReader, Recovery};

use super::open_reader;
use crate::exit;

/// How many trailing fingerprints the watermark keeps.
const RECENT: usize = 8;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Watermark {
    inode: u64,
    offset: u64,
    recent: Vec<u64>,
}

impl Watermark {
    fn load(path: &Path) -> Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read watermark {}", path.display()))
            }
        };
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("watermark {} is not JSON", path.display()))?;
        let number = |key: &str| value.get(key).and_then(serde_json::Value::as_u64);
        let recent = value
            .get("recent")
            .and_then(serde_json::Value::as_array)
            .map(|items| items.iter().filter_map(serde_json::Value::as_u64).collect());
        match (number("inode"), number("offset"), recent) {
            (Some(inode), Some(offset), Some(recent)) => Ok(Some(Watermark {
                inode,
                offset,
                recent,
            })),
            _ => anyhow::bail!(
                "watermark {} is missing inode, offset or recent",
                path.display()
            ),
        }
    }

    /// Saves atomically (write beside, rename over).
    fn save(&self, path: &Path) -> Result<()> {
        let text = json!({ "inode": self.inode, "offset": self.offset, "recent": self.recent })
            .to_string();
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, text)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("cannot write watermark {}", path.display()))
    }
}

/// Identity of a record: its length and stored checksum.
fn fingerprint(buffer: &[u8], start: u64, end: u64) -> u64 {
    let end = end as usize;
    let crc = buffer
        .get(end - 8..end - 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    ((end as u64 - start) << 32) | u64::from(crc)
}

fn inode_of(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("cannot stat {}", path.display()))?
        .ino())
}

/// Where to continue in the journal `reader` reads, given a watermark.
fn locate(reader: &mut JournalReader, inode: u64, mark: &Watermark) -> Result<u64> {
    if mark.recent.is_empty() {
        return Ok(0);
    }
    // The same file, grown: the record before the offset must be the one we printed last.
    if mark.inode == inode {
        let buffer: &[u8] = reader.buffer();
        if let Some(&last) = mark.recent.last() {
            let length = last >> 32;
            if mark.offset >= length && mark.offset <= buffer.len() as u64 {
                let start = mark.offset - length;
                if fingerprint(buffer, start, mark.offset) == last {
                    return Ok(mark.offset);
                }
            }
        }
    }
    // A replaced or rewritten file: find our last records by fingerprint.
    let mut seen: Vec<(u64, u64)> = Vec::new();
    while let Some(record) = reader.read_next()? {
        let (start, end) = (record.start, record.end);
        seen.push((fingerprint(reader.buffer(), start, end), end));
    }
    reader.rewind();
    let mut best: Option<(usize, u64)> = None;
    for (index, &(fp, end)) in seen.iter().enumerate() {
        if Some(&fp) != mark.recent.last() {
            continue;
        }
        // Count how many of our recent fingerprints end here.
        let matched = mark
            .recent
            .iter()
            .rev()
            .zip(seen[..=index].iter().rev())
            .take_while(|(ours, theirs)| **ours == theirs.0)
            .count();
        if best.is_none_or(|(m, _)| matched >= m) {
            best = Some((matched, end));
        }
    }
    match best {
        Some((_, end)) => Ok(end),
        None => {
            eprintln!(
                "wasnap: the journal was replaced and the last record printed is no longer in it; starting from its first record"
            );
            Ok(0)
        }
    }
}

/// A tolerant reader of `path`. Following, the file is read rather than
/// mapped: a writer reopening it truncates its torn tail, which would take
/// mapped pages from under the reader (SIGBUS).
fn follow_reader(path: &Path, follow: bool) -> Result<JournalReader> {
    let reader = if follow {
        JournalReader::open_copied(path)?
    } else {
        open_reader(path)?
    };
    Ok(reader.with_recovery(Recovery::StopAtTornTail))
}

/// Prints the records of `path`, and with `follow` keeps printing new ones.
pub fn tail(
    path: &Path,
    follow: bool,
    json_output: bool,
    watermark: Option<&Path>,
    interval: Duration,
) -> Result<u8> {
    let mut mark = match watermark {
        Some(file) => Watermark::load(file)?.unwrap_or_default(),
        None => Watermark::default(),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut inode = inode_of(path)?;
    let mut reader = follow_reader(path, follow)?;
    let start = locate(&mut reader, inode, &mark)?;
    reader.seek(start);
    mark.inode = inode;
    mark.offset = start;
    loop {
        loop {
            let record = match reader.read_next() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(error) => {
                    out.flush()?;
                    eprintln!("wasnap: {error}");
                    return Ok(exit::DAMAGED);
                }
            };
            if json_output {
                let line = json!({ "offset": record.start, "entry": record.entry.to_json() });
                writeln!(out, "{line}")?;
            } else {
                writeln!(out, "{:>12}  {}", record.start, record.entry)?;
            }
            let (start, end) = (record.start, record.end);
            mark.recent.push(fingerprint(reader.buffer(), start, end));
            if mark.recent.len() > RECENT {
                mark.recent.remove(0);
            }
            mark.offset = end;
        }
        out.flush()?;
        // Once per batch, after what it names was printed: saving it per
        // record made a watermarked tail a hundred times slower.
        if let Some(file) = watermark {
            mark.save(file)?;
        }
        if !follow {
            return Ok(exit::OK);
        }
        std::thread::sleep(interval);
        let current = match inode_of(path) {
            Ok(current) => current,
            // Between a compaction's unlink and rename; look again later.
            Err(_) => continue,
        };
        if current != inode || std::fs::metadata(path).map_or(true, |m| m.len() < mark.offset) {
            inode = current;
            reader = follow_reader(path, follow)?;
            let start = locate(&mut reader, inode, &mark)?;
            reader.seek(start);
            mark.inode = inode;
        } else {
            reader.restart()?;
        }
    }
}
