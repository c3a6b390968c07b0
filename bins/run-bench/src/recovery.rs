//! Recovery time against journal size: a journal whose last record, one
//! large write, was torn at three quarters (as a `kill -9` during the
//! append leaves it), then read through in the tolerant mode (what
//! `journal verify` and `--journal-readonly` do) and reopened for appending
//! (validation plus truncation of the torn tail, what `run --journal` does).
//! The torn payload is either random bytes, zeros, or a journal of its own
//! (a guest copying a journal file). Cost should grow linearly: the ns per
//! byte column stays flat.

use std::path::Path;
use std::time::{Duration, Instant};

use wasnap_journal::{
    FileDescriptorWriteV1, Journal, JournalEntry, JournalOptions, JournalReader, Recovery,
    WriteJournal,
};

fn write_journal(path: &Path, payload: &[u8]) {
    let _ = std::fs::remove_file(path);
    let journal = Journal::open(path, JournalOptions::default()).expect("open");
    for i in 0..1000u64 {
        let small: JournalEntry<'_> = FileDescriptorWriteV1 {
            fd: 3,
            offset: i * 64,
            data: vec![i as u8; 64].into(),
        }
        .into();
        journal.write(&small).expect("write");
    }
    let big: JournalEntry<'_> = FileDescriptorWriteV1 {
        fd: 4,
        offset: 0,
        data: payload.to_vec().into(),
    }
    .into();
    journal.write(&big).expect("write");
    journal.flush().expect("flush");
    drop(journal);
    // Tear the big record at three quarters of its payload.
    let len = std::fs::metadata(path).expect("stat").len();
    let cut = len - (payload.len() as u64) / 4;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("reopen");
    file.set_len(cut).expect("truncate");
}

fn payload(kind: &str, bytes: usize) -> Vec<u8> {
    match kind {
        "random" => (0..bytes as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect(),
        "zeros" => vec![0; bytes],
        _ => {
            // Records of a journal of its own, repeated to the size.
            let dir = tempfile::tempdir().expect("temp dir");
            let inner = dir.path().join("inner.journal");
            let journal = Journal::open(&inner, JournalOptions::default()).expect("open");
            for i in 0..2000u64 {
                let e: JournalEntry<'_> = FileDescriptorWriteV1 {
                    fd: 5,
                    offset: i,
                    data: vec![(i % 251) as u8; 48].into(),
                }
                .into();
                journal.write(&e).expect("write");
            }
            journal.flush().expect("flush");
            drop(journal);
            let one = std::fs::read(&inner).expect("read");
            one.iter().copied().cycle().take(bytes).collect()
        }
    }
}

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..3).map(|_| f()).min().unwrap_or_default()
}

pub fn run(json: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    if !json {
        println!("recovery of a journal torn inside its last record (best of 3)");
        println!(
            "  {:>8} {:>9} {:>12} {:>10} {:>12} {:>10}",
            "payload", "MiB", "read ms", "ns/byte", "reopen ms", "ns/byte"
        );
    }
    for kind in ["random", "zeros", "journal"] {
        for mib in [1usize, 4, 16, 64] {
            let bytes = mib << 20;
            let path = dir.path().join(format!("{kind}-{mib}.journal"));
            write_journal(&path, &payload(kind, bytes));
            let torn = std::fs::read(&path).expect("read");
            let size = torn.len() as f64;
            let read = best(|| {
                let started = Instant::now();
                let mut reader = JournalReader::open(&path)
                    .expect("open")
                    .with_recovery(Recovery::StopAtTornTail);
                while reader.read_next().expect("tolerant read").is_some() {}
                assert!(reader.torn_tail().is_some(), "{kind}: not a torn tail");
                started.elapsed()
            });
            let reopen = best(|| {
                std::fs::write(&path, &torn).expect("restore");
                let started = Instant::now();
                let journal = Journal::open(&path, JournalOptions::default()).expect("reopen");
                let elapsed = started.elapsed();
                drop(journal);
                elapsed
            });
            let per_byte = |d: Duration| d.as_secs_f64() * 1e9 / size;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"case": "recovery", "payload": kind, "mib": mib,
                        "read_ms": read.as_secs_f64() * 1e3, "reopen_ms": reopen.as_secs_f64() * 1e3,
                        "read_ns_per_byte": per_byte(read), "reopen_ns_per_byte": per_byte(reopen)})
                );
            } else {
                println!(
                    "  {:>8} {:>9} {:>12.1} {:>10.2} {:>12.1} {:>10.2}",
                    kind,
                    mib,
                    read.as_secs_f64() * 1e3,
                    per_byte(read),
                    reopen.as_secs_f64() * 1e3,
                    per_byte(reopen)
                );
            }
        }
    }
}
