//! Append and read-back throughput of wasnap's journal, Wasmer's
//! `LogFileJournal` (wasmer-journal 0.704.2) and a plain buffered file write of
//! the same data bytes, measured in one run on the same disk.
//!
//! MB/s counts the entries' data bytes (the bytes a program wrote), so the
//! three columns are comparable; the journal files also hold framing.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use wasmer_journal::{ReadableJournal, WritableJournal};
use wasnap_journal as wj;

/// Benchmark wasnap's journal against Wasmer's LogFileJournal and a raw write.
#[derive(Debug, Parser)]
#[command(name = "journal-bench")]
struct Args {
    /// Print one JSON object per case instead of a table.
    #[arg(long)]
    json: bool,
    /// Directory for the benchmark files (removed after each case).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Number of 64-byte file-write entries.
    #[arg(long, default_value_t = 1_000_000)]
    small: usize,
    /// Number of 1 MiB file-write entries.
    #[arg(long, default_value_t = 2_000)]
    large: usize,
    /// Number of mixed entries.
    #[arg(long, default_value_t = 100_000)]
    mixed: usize,
    /// Runs of each measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Measure only wasnap (for profiling); no ratios are printed.
    #[arg(long)]
    only_wasnap: bool,
    /// Number of 1 KiB overwrites in the compaction case (64 files of 256 KiB).
    #[arg(long, default_value_t = 200_000)]
    overwrites: usize,
}

/// Compaction throughput: a journal of overwrites, compacted (read, model,
/// re-emit, write); input MB/s and the size ratio.
fn run_compact(dir: &Path, overwrites: usize, json: bool) -> Result<()> {
    if overwrites == 0 {
        return Ok(());
    }
    let source = dir.join("overwrites.journal");
    let destination = dir.join("compacted.journal");
    let _ = std::fs::remove_file(&source);
    let _ = std::fs::remove_file(&destination);
    let block: Vec<u8> = (0..1024u32).map(|i| (i * 31) as u8).collect();
    {
        let journal = wj::Journal::open(&source, wj::JournalOptions::default())?;
        for fd in 0..64u32 {
            journal.writer().write(
                &wj::OpenFileDescriptorV1 {
                    fd: 10 + fd,
                    dirfd: 3,
                    dirflags: 0,
                    path: Cow::Owned(format!("file-{fd}")),
                    o_flags: 1,
                    fs_rights_base: u64::MAX,
                    fs_rights_inheriting: u64::MAX,
                    fs_flags: 0,
                }
                .into(),
            )?;
        }
        for i in 0..overwrites {
            let fd = 10 + (i % 64) as u32;
            let offset = ((i / 64) % 256) as u64 * 1024;
            journal.writer().write(
                &Op::Write {
                    fd,
                    offset,
                    data: &block,
                }
                .wasnap(),
            )?;
        }
        journal.writer().commit()?;
    }
    let before = std::fs::metadata(&source)?.len();
    let started = Instant::now();
    let mut reader = wj::JournalReader::open(&source)?;
    let mut failure = None;
    let records = std::iter::from_fn(|| match reader.read_next() {
        Ok(Some(record)) => Some((record.start, record.entry.into_owned())),
        Ok(None) => None,
        Err(e) => {
            failure = Some(e);
            None
        }
    });
    let compacted = wj::state::compact(records)?;
    if let Some(e) = failure {
        bail!("{e}");
    }
    {
        let journal = wj::Journal::open(&destination, wj::JournalOptions::default())?;
        compacted.write_to(journal.writer())?;
        journal.writer().sync()?;
    }
    let elapsed = started.elapsed();
    let after = std::fs::metadata(&destination)?.len();
    let mb_per_s = per_sec(before as f64 / 1e6, elapsed);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "case": "compact-overwrites",
                "overwrites": overwrites,
                "bytes_before": before,
                "bytes_after": after,
                "size_ratio": after as f64 / before as f64,
                "compact_mb_per_s": mb_per_s,
            })
        );
    } else {
        println!(
            "compact-overwrites {overwrites} overwrites: {before} -> {after} bytes (ratio {:.4}), {mb_per_s:.0} MB/s of input",
            after as f64 / before as f64
        );
    }
    std::fs::remove_file(&source)?;
    std::fs::remove_file(&destination)?;
    Ok(())
}

/// One entry, in a form both journals can be fed from.
#[derive(Clone, Copy)]
enum Op<'d> {
    Write {
        fd: u32,
        offset: u64,
        data: &'d [u8],
    },
    Close {
        fd: u32,
    },
    Mkdir {
        fd: u32,
        path: &'d str,
    },
    Rmdir {
        fd: u32,
        path: &'d str,
    },
    Memory {
        start: u64,
        data: &'d [u8],
    },
    Renumber {
        from: u32,
        to: u32,
    },
}

impl<'d> Op<'d> {
    /// The bytes the program wrote (file data, memory); paths do not count.
    fn data(&self) -> &'d [u8] {
        match self {
            Op::Write { data, .. } | Op::Memory { data, .. } => data,
            Op::Mkdir { .. } | Op::Rmdir { .. } | Op::Close { .. } | Op::Renumber { .. } => &[],
        }
    }

    fn data_len(&self) -> usize {
        self.data().len()
    }

    fn wasnap(&self) -> wj::JournalEntry<'d> {
        match *self {
            Op::Write { fd, offset, data } => wj::FileDescriptorWriteV1 {
                fd,
                offset,
                data: Cow::Borrowed(data),
            }
            .into(),
            Op::Close { fd } => wj::CloseFileDescriptorV1 { fd }.into(),
            Op::Mkdir { fd, path } => wj::CreateDirectoryV1 {
                fd,
                path: Cow::Borrowed(path),
            }
            .into(),
            Op::Rmdir { fd, path } => wj::RemoveDirectoryV1 {
                fd,
                path: Cow::Borrowed(path),
            }
            .into(),
            Op::Memory { start, data } => wj::UpdateMemoryRegionV1 {
                start,
                end: start + data.len() as u64,
                compression: 0,
                data: Cow::Borrowed(data),
            }
            .into(),
            Op::Renumber { from, to } => wj::RenumberFileDescriptorV1 {
                from_fd: from,
                to_fd: to,
            }
            .into(),
        }
    }

    fn wasmer(&self) -> wasmer_journal::JournalEntry<'d> {
        use wasmer_journal::JournalEntry as E;
        match *self {
            Op::Write { fd, offset, data } => E::FileDescriptorWriteV1 {
                fd,
                offset,
                data: Cow::Borrowed(data),
                is_64bit: false,
            },
            Op::Close { fd } => E::CloseFileDescriptorV1 { fd },
            Op::Mkdir { fd, path } => E::CreateDirectoryV1 {
                fd,
                path: Cow::Borrowed(path),
            },
            Op::Rmdir { fd, path } => E::RemoveDirectoryV1 {
                fd,
                path: Cow::Borrowed(path),
            },
            Op::Memory { start, data } => E::UpdateMemoryRegionV1 {
                region: start..start + data.len() as u64,
                compressed_data: Cow::Borrowed(data),
            },
            Op::Renumber { from, to } => E::RenumberFileDescriptorV1 {
                old_fd: from,
                new_fd: to,
            },
        }
    }
}

struct Case<'d> {
    name: &'static str,
    ops: Vec<Op<'d>>,
}

#[derive(Default, Clone, Copy)]
struct Timing {
    append: Duration,
    read: Duration,
    file_bytes: u64,
}

fn best_of(repeat: usize, mut run: impl FnMut() -> Result<Timing>) -> Result<Timing> {
    let mut best: Option<Timing> = None;
    for _ in 0..repeat.max(1) {
        let t = run()?;
        best = Some(match best {
            None => t,
            Some(b) => Timing {
                append: b.append.min(t.append),
                read: b.read.min(t.read),
                file_bytes: t.file_bytes,
            },
        });
    }
    best.context("no run")
}

fn run_wasnap(path: &Path, ops: &[Op<'_>]) -> Result<Timing> {
    let _ = std::fs::remove_file(path);
    let started = Instant::now();
    {
        let journal = wj::Journal::open(path, wj::JournalOptions::default())?;
        for op in ops {
            journal.writer().write(&op.wasnap())?;
        }
        journal.writer().commit()?;
    }
    let append = started.elapsed();

    let started = Instant::now();
    let mut reader = wj::JournalReader::open(path)?;
    let mut seen = 0usize;
    let mut bytes = 0usize;
    while let Some(record) = reader.read_next()? {
        seen += 1;
        bytes += record.entry.data_len();
    }
    let read = started.elapsed();
    check_count("wasnap", seen, bytes, ops)?;
    let file_bytes = std::fs::metadata(path)?.len();
    std::fs::remove_file(path)?;
    Ok(Timing {
        append,
        read,
        file_bytes,
    })
}

fn run_wasmer(path: &Path, ops: &[Op<'_>]) -> Result<Timing> {
    let _ = std::fs::remove_file(path);
    let started = Instant::now();
    {
        let journal = wasmer_journal::LogFileJournal::new(path)?;
        for op in ops {
            journal.write(op.wasmer())?;
        }
        journal.flush()?;
    }
    let append = started.elapsed();

    let started = Instant::now();
    let journal = wasmer_journal::LogFileJournal::new_readonly(path)?;
    let mut seen = 0usize;
    let mut bytes = 0usize;
    while let Some(record) = journal.read()? {
        seen += 1;
        bytes += match &record.record {
            wasmer_journal::JournalEntry::FileDescriptorWriteV1 { data, .. } => data.len(),
            wasmer_journal::JournalEntry::UpdateMemoryRegionV1 {
                compressed_data, ..
            } => compressed_data.len(),
            _ => 0,
        };
    }
    let read = started.elapsed();
    check_count("wasmer", seen, bytes, ops)?;
    let file_bytes = std::fs::metadata(path)?.len();
    std::fs::remove_file(path)?;
    Ok(Timing {
        append,
        read,
        file_bytes,
    })
}

/// The physical limit: the same data bytes through a 256 KiB buffered writer.
fn run_raw(path: &Path, ops: &[Op<'_>]) -> Result<Timing> {
    let _ = std::fs::remove_file(path);
    let started = Instant::now();
    {
        let mut out = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        for op in ops {
            out.write_all(op.data())?;
        }
        out.flush()?;
    }
    let append = started.elapsed();
    let started = Instant::now();
    let data = std::fs::read(path)?;
    let read = started.elapsed();
    let file_bytes = data.len() as u64;
    std::fs::remove_file(path)?;
    Ok(Timing {
        append,
        read,
        file_bytes,
    })
}

fn check_count(who: &str, seen: usize, bytes: usize, ops: &[Op<'_>]) -> Result<()> {
    let want_bytes: usize = ops.iter().map(Op::data_len).sum();
    if seen != ops.len() || bytes != want_bytes {
        bail!(
            "{who} read back {seen} entries / {bytes} data bytes, expected {} / {want_bytes}",
            ops.len()
        );
    }
    Ok(())
}

/// One implementation's figures as JSON.
fn timing_json(count: f64, data_mb: f64, t: Timing) -> serde_json::Value {
    serde_json::json!({
        "append_entries_per_s": per_sec(count, t.append),
        "append_mb_per_s": per_sec(data_mb, t.append),
        "read_entries_per_s": per_sec(count, t.read),
        "read_mb_per_s": per_sec(data_mb, t.read),
        "file_bytes": t.file_bytes,
    })
}

fn per_sec(count: f64, time: Duration) -> f64 {
    count / time.as_secs_f64().max(1e-9)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir(),
    };
    let scratch = tempfile::tempdir_in(&dir)
        .with_context(|| format!("cannot create a directory in {}", dir.display()))?;

    let small_data: Vec<u8> = (0..64u8).collect();
    let large_data: Vec<Vec<u8>> = (0..4u8)
        .map(|i| vec![i.wrapping_mul(37); 1 << 20])
        .collect();
    let mixed_write: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    let memory_page: Vec<u8> = (0..4096u32).map(|i| (i * 13) as u8).collect();
    let paths: Vec<String> = (0..64).map(|i| format!("/tmp/work/dir-{i}/sub")).collect();

    let mut cases = Vec::new();
    if args.small > 0 {
        cases.push(Case {
            name: "small-64B-writes",
            ops: (0..args.small)
                .map(|i| Op::Write {
                    fd: 3,
                    offset: i as u64 * 64,
                    data: &small_data,
                })
                .collect(),
        });
    }
    if args.large > 0 {
        cases.push(Case {
            name: "large-1MiB-writes",
            ops: (0..args.large)
                .map(|i| Op::Write {
                    fd: 4,
                    offset: (i as u64) << 20,
                    data: &large_data[i % large_data.len()],
                })
                .collect(),
        });
    }
    if args.mixed > 0 {
        cases.push(Case {
            name: "mixed",
            ops: (0..args.mixed)
                .map(|i| match i % 8 {
                    0..=2 => Op::Write {
                        fd: 3 + (i % 5) as u32,
                        offset: i as u64,
                        data: &mixed_write[..16 + (i * 131) % 4000],
                    },
                    3 => Op::Close {
                        fd: 3 + (i % 9) as u32,
                    },
                    4 => Op::Mkdir {
                        fd: 3,
                        path: &paths[i % paths.len()],
                    },
                    5 => Op::Rmdir {
                        fd: 3,
                        path: &paths[i % paths.len()],
                    },
                    6 => Op::Memory {
                        start: (i as u64 % 1024) * 4096,
                        data: &memory_page,
                    },
                    _ => Op::Renumber {
                        from: (i % 11) as u32 + 3,
                        to: (i % 13) as u32 + 3,
                    },
                })
                .collect(),
        });
    }

    run_compact(scratch.path(), args.overwrites, args.json)?;
    if !args.json {
        println!(
            "{:<18} {:>7} {:>10} {:>14} {:>11} {:>14} {:>11} {:>14}",
            "case",
            "who",
            "entries",
            "append e/s",
            "append MB/s",
            "read e/s",
            "read MB/s",
            "file bytes"
        );
    }
    for case in &cases {
        let count = case.ops.len() as f64;
        let data_mb = case.ops.iter().map(Op::data_len).sum::<usize>() as f64 / 1e6;
        let wasnap = best_of(args.repeat, || {
            run_wasnap(&scratch.path().join("wasnap.journal"), &case.ops)
        })?;
        if args.only_wasnap {
            println!(
                "{:<18} wasnap append {:.0} e/s {:.0} MB/s, read {:.0} e/s {:.0} MB/s",
                case.name,
                per_sec(count, wasnap.append),
                per_sec(data_mb, wasnap.append),
                per_sec(count, wasnap.read),
                per_sec(data_mb, wasnap.read)
            );
            continue;
        }
        let wasmer = best_of(args.repeat, || {
            run_wasmer(&scratch.path().join("wasmer.journal"), &case.ops)
        })?;
        let raw = best_of(args.repeat, || {
            run_raw(&scratch.path().join("raw.bin"), &case.ops)
        })?;
        let append_vs_wasmer = wasmer.append.as_secs_f64() / wasnap.append.as_secs_f64();
        let read_vs_wasmer = wasmer.read.as_secs_f64() / wasnap.read.as_secs_f64();
        let append_vs_raw = raw.append.as_secs_f64() / wasnap.append.as_secs_f64();
        if args.json {
            let json = serde_json::json!({
                "case": case.name,
                "entries": case.ops.len(),
                "data_mb": data_mb,
                "wasnap": timing_json(count, data_mb, wasnap),
                "wasmer": timing_json(count, data_mb, wasmer),
                "raw": {
                    "append_mb_per_s": per_sec(data_mb, raw.append),
                    "read_mb_per_s": per_sec(data_mb, raw.read),
                    "file_bytes": raw.file_bytes,
                },
                "ratio_append_wasnap_over_wasmer": append_vs_wasmer,
                "ratio_read_wasnap_over_wasmer": read_vs_wasmer,
                "ratio_append_wasnap_over_raw": append_vs_raw,
            });
            println!("{json}");
        } else {
            for (who, t) in [("wasnap", wasnap), ("wasmer", wasmer), ("raw", raw)] {
                println!(
                    "{:<18} {:>7} {:>10} {:>14.0} {:>11.0} {:>14.0} {:>11.0} {:>14}",
                    case.name,
                    who,
                    case.ops.len(),
                    per_sec(count, t.append),
                    per_sec(data_mb, t.append),
                    per_sec(count, t.read),
                    per_sec(data_mb, t.read),
                    t.file_bytes,
                );
            }
            println!(
                "{:<18} append wasnap/wasmer {append_vs_wasmer:.1}x, read wasnap/wasmer {read_vs_wasmer:.2}x, append wasnap/raw {:.0}%",
                "",
                append_vs_raw * 100.0
            );
        }
    }
    Ok(())
}
