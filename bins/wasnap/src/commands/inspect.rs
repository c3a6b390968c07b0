//! `wasnap journal inspect` and `wasnap journal verify`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use serde_json::json;
use wasnap_journal::start::{Position, StartPlanner, StartPoint};
use wasnap_journal::timeline::{Timeline, TimelineBuilder, UnknownSnapshot};
use wasnap_journal::{EntryKind, JournalEntry, ReadError, SnapshotTrigger};

use super::open_reader;
use crate::exit;

/// Entries and record bytes of one kind.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    entries: u64,
    bytes: u64,
}

/// What a pass over a journal found.
#[derive(Debug)]
struct Summary {
    version: Option<u32>,
    module_hash: Option<String>,
    per_kind: BTreeMap<EntryKind, Tally>,
    snapshots: Vec<(u64, String, u64)>,
    records: u64,
    valid_end: u64,
    file_len: u64,
    error: Option<ReadError>,
    /// The live timeline, or the resume that names no snapshot.
    timeline: Result<Timeline, UnknownSnapshot>,
    /// Where `wasnap run --journal` would start, and the records it would
    /// re-execute.
    start: (StartPoint, u64),
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            version: None,
            module_hash: None,
            per_kind: BTreeMap::new(),
            snapshots: Vec::new(),
            records: 0,
            valid_end: 0,
            file_len: 0,
            error: None,
            timeline: Ok(Timeline::default()),
            start: (StartPoint::Fresh, 0),
        }
    }
}

/// Reads every record, calling `each` on it, and tallies what it saw.
fn scan(
    path: &Path,
    mut each: impl FnMut(u64, u64, &JournalEntry<'_>) -> Result<()>,
) -> Result<Summary> {
    let mut reader = open_reader(path)?;
    if reader.buffer().is_empty() {
        // Zero bytes hold no segment start: nothing to verify or inspect.
        anyhow::bail!("{} is empty: not a journal", path.display());
    }
    let mut summary = Summary {
        file_len: reader.buffer().len() as u64,
        ..Summary::default()
    };
    let mut timeline = Ok(TimelineBuilder::default());
    let mut planner = StartPlanner::new();
    loop {
        match reader.read_next() {
            Ok(Some(record)) => {
                each(record.start, record.end, &record.entry)?;
                if let Ok(builder) = &mut timeline {
                    if let Err(e) = builder.observe(record.start, &record.entry) {
                        timeline = Err(e);
                    }
                }

                let tally = summary.per_kind.entry(record.entry.kind()).or_default();
                tally.entries += 1;
                tally.bytes += record.end - record.start;
                summary.records += 1;
                match &record.entry {
                    JournalEntry::InitModuleV1(init) => {
                        summary.module_hash =
                            Some(init.wasm_hash.iter().map(|b| format!("{b:02x}")).collect());
                    }
                    JournalEntry::SnapshotV1(snapshot) => {
                        let trigger = SnapshotTrigger::from_u8(snapshot.trigger).map_or_else(
                            || format!("unknown({})", snapshot.trigger),
                            |t| t.name().to_owned(),
                        );
                        summary
                            .snapshots
                            .push((record.start, trigger, snapshot.since_epoch_ns));
                    }
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(error) => {
                summary.error = Some(error);
                break;
            }
        }
    }
    summary.version = reader.format_version();
    summary.valid_end = reader.position();
    summary.timeline = timeline.map(TimelineBuilder::finish);
    // Where the next run starts: over the live records only (a cut can
    // lose records that came before it).
    if let Ok(timeline) = &summary.timeline {
        reader.rewind();
        while let Ok(Some(record)) = reader.read_next() {
            if !timeline.is_live(record.start) {
                continue;
            }
            let at = Position {
                journal: 0,
                offset: record.start,
            };
            planner.observe(at, &record.entry);
        }
    }
    summary.start = (planner.finish(), planner.tail_records());
    Ok(summary)
}

/// Where the next `wasnap run --journal` starts, in words.
fn next_run_text((start, tail): &(StartPoint, u64)) -> String {
    match start {
        StartPoint::Fresh => "starts the program fresh (no run recorded)".to_owned(),
        StartPoint::Afresh { exit_code } => format!(
            "starts the program afresh over the restored files (the last run exited with {exit_code})"
        ),
        StartPoint::FromStart { run, .. } => format!(
            "resumes the unfinished run that starts at offset {}: re-executes {tail} records from `_start`",
            run.offset
        ),
        StartPoint::FromSnapshot { marker, .. } => format!(
            "resumes from the snapshot at offset {}, then re-executes {tail} records",
            marker.offset
        ),
    }
}

/// Where the next `wasnap run --journal` starts, as JSON.
fn next_run_json((start, tail): &(StartPoint, u64)) -> serde_json::Value {
    match start {
        StartPoint::Fresh => json!({ "start": "fresh" }),
        StartPoint::Afresh { exit_code } => {
            json!({ "start": "afresh", "last_exit_code": exit_code })
        }
        StartPoint::FromStart { run, .. } => json!({
            "start": "resume", "run_offset": run.offset, "snapshot_offset": null, "records_to_replay": tail
        }),
        StartPoint::FromSnapshot { run, marker, .. } => json!({
            "start": "resume", "run_offset": run.offset, "snapshot_offset": marker.offset, "records_to_replay": tail
        }),
    }
}

/// `wasnap journal inspect PATH [--entries] [--json]`.
pub fn inspect(path: &Path, entries: bool, json: bool) -> Result<u8> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary = scan(path, |start, end, entry| {
        if entries {
            if json {
                let line =
                    json!({ "offset": start, "length": end - start, "entry": entry.to_json() });
                writeln!(out, "{line}")?;
            } else {
                writeln!(out, "{start:>12}  {:>8}  {entry}", end - start)?;
            }
        }
        Ok(())
    })?;
    if json {
        let kinds: serde_json::Map<String, serde_json::Value> = summary
            .per_kind
            .iter()
            .map(|(kind, t)| {
                (
                    kind.name().to_owned(),
                    json!({ "entries": t.entries, "bytes": t.bytes }),
                )
            })
            .collect();
        let report = json!({
            "path": path.display().to_string(),
            "format_version": summary.version,
            "module_hash": summary.module_hash,
            "records": summary.records,
            "bytes": summary.file_len,
            "kinds": kinds,
            "snapshots": summary.snapshots.iter().map(|(offset, trigger, ns)| json!({
                "offset": offset, "trigger": trigger, "since_epoch_ns": ns
            })).collect::<Vec<_>>(),
            "error": summary.error.as_ref().map(|e| json!({ "offset": e.offset, "message": e.kind.to_string() })),
            "next_run": next_run_json(&summary.start),
            "timeline": match &summary.timeline {
                Ok(t) => json!({
                    "lost_records": t.lost_records(),
                    "lost_ranges": t.lost_ranges().iter().map(|r| json!([r.start, r.end])).collect::<Vec<_>>(),
                    "resume_snapshot_offset": t.last_marker(),
                }),
                Err(e) => json!({ "error": e.to_string() }),
            },
        });
        writeln!(out, "{report}")?;
    } else {
        if entries {
            writeln!(out)?;
        }
        writeln!(out, "journal         {}", path.display())?;
        writeln!(
            out,
            "format version  {}",
            summary
                .version
                .map_or_else(|| "-".to_owned(), |v| v.to_string())
        )?;
        writeln!(
            out,
            "module hash     {}",
            summary.module_hash.as_deref().unwrap_or("-")
        )?;
        writeln!(
            out,
            "records         {} in {} bytes",
            summary.records, summary.file_len
        )?;
        if !summary.per_kind.is_empty() {
            writeln!(
                out,
                "\n{:<32} {:>10} {:>14}",
                "entry kind", "entries", "bytes"
            )?;
            for (kind, t) in &summary.per_kind {
                writeln!(out, "{:<32} {:>10} {:>14}", kind.name(), t.entries, t.bytes)?;
            }
        }
        if !summary.snapshots.is_empty() {
            writeln!(out, "\nsnapshots")?;
            for (offset, trigger, ns) in &summary.snapshots {
                let lost = match &summary.timeline {
                    Ok(t) if !t.is_live(*offset) => "  (lost timeline)",
                    _ => "",
                };
                writeln!(
                    out,
                    "  at offset {offset:<12} trigger {trigger:<14} time {ns} ns since the epoch{lost}"
                )?;
            }
        }
        match &summary.timeline {
            Ok(t) => {
                if t.lost_records() > 0 {
                    writeln!(
                        out,
                        "\nlost timelines  {} records left behind by resumes",
                        t.lost_records()
                    )?;
                }
            }
            Err(e) => writeln!(out, "\ntimeline        damaged: {e}")?,
        }
        writeln!(out, "next run        {}", next_run_text(&summary.start))?;
    }
    out.flush()?;
    drop(out);
    if let Some(error) = summary.error {
        eprintln!("wasnap: {error}");
        return Ok(exit::DAMAGED);
    }
    Ok(exit::OK)
}

/// `wasnap journal verify PATH`.
pub fn verify(path: &Path) -> Result<u8> {
    let summary = scan(path, |_, _, _| Ok(()))?;
    match summary.error {
        None => {
            println!(
                "{}: ok, {} records, {} bytes, format version {}",
                path.display(),
                summary.records,
                summary.file_len,
                summary
                    .version
                    .map_or_else(|| "-".to_owned(), |v| v.to_string())
            );
            Ok(exit::OK)
        }
        Some(error) => {
            eprintln!("wasnap: {error}");
            eprintln!(
                "wasnap: {} intact records before offset {}",
                summary.records, summary.valid_end
            );
            Ok(exit::DAMAGED)
        }
    }
}
