//! Mutation fuzzing of the three doors bytes come in through: the journal
//! reader, the JSON Lines importer, and replay into the reference model
//! (and compaction). Seeds are real journals; mutations flip bits, cut,
//! splice, duplicate, overwrite record headers with plausible sizes and
//! tags, and edit JSON text. The checks: nothing panics, reading is
//! deterministic, an accepted JSON entry round-trips through the binary
//! format, and a journal the model accepts compacts into one that replays
//! to the same state.
//!
//! Bounded in the test suite; for a long run:
//! `WASNAP_FUZZ_SECONDS=3600 cargo test --release -p wasnap-journal --test fuzz -- --nocapture`
//! (each target gets that long; the figures are printed).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use wasnap_journal::field::SampleGen;
use wasnap_journal::state::{compact, replay};
use wasnap_journal::*;

/// How long each target runs, or how many cases when no time is given.
fn budget() -> (Option<Duration>, u64) {
    let seconds = std::env::var("WASNAP_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    (seconds.map(Duration::from_secs), 20_000)
}

fn keep_going(started: Instant, cases: u64) -> bool {
    match budget() {
        (Some(limit), _) => started.elapsed() < limit,
        (None, count) => cases < count,
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One structural mutation of journal bytes.
fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.push(rng.next() as u8);
        return;
    }
    match rng.below(7) {
        0 => {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        1 => bytes.truncate(rng.below(bytes.len())),
        2 => {
            let at = rng.below(bytes.len());
            let len = rng.below(64);
            let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, junk);
        }
        3 => {
            // Duplicate a slice elsewhere (records that look right, misplaced).
            let from = rng.below(bytes.len());
            let to = (from + rng.below(256)).min(bytes.len());
            let copy = bytes[from..to].to_vec();
            let at = rng.below(bytes.len());
            bytes.splice(at..at, copy);
        }
        4 => {
            // A plausible header at an 8-aligned offset: a known tag, a size
            // near what follows.
            let at = rng.below(bytes.len() / 8) * 8;
            if at + 8 <= bytes.len() {
                let tag = EntryKind::ALL[rng.below(EntryKind::ALL.len())].tag();
                let size = rng.below(bytes.len() - at + 64) as u64;
                bytes[at..at + 8].copy_from_slice(&(u64::from(tag) | (size << 16)).to_le_bytes());
            }
        }
        5 => {
            let at = rng.below(bytes.len());
            let end = (at + rng.below(32)).min(bytes.len());
            bytes[at..end].fill(0);
        }
        _ => {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
        }
    }
}

fn read_all(bytes: &[u8], recovery: Recovery) -> (Vec<JournalEntry<'static>>, Option<String>) {
    let mut reader =
        JournalReader::from_buffer(OwnedBuffer::from_bytes(bytes.to_vec())).with_recovery(recovery);
    let (entries, error) = read_until_error(&mut reader);
    (entries, error.map(|e| e.to_string()))
}

#[test]
fn fuzz_the_reader() {
    let mut rng = Rng(0x5eed_0001);
    let seeds: Vec<Vec<u8>> = (0..8)
        .map(|s| journal_bytes(&one_of_each(s, 300)))
        .collect();
    let started = Instant::now();
    let mut cases = 0u64;
    let mut torn = 0u64;
    let mut damaged = 0u64;
    while keep_going(started, cases) {
        let mut bytes = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            mutate_bytes(&mut rng, &mut bytes);
        }
        let strict = read_all(&bytes, Recovery::Strict);
        assert_eq!(
            strict,
            read_all(&bytes, Recovery::Strict),
            "reading is not deterministic"
        );
        let tolerant = read_all(&bytes, Recovery::StopAtTornTail);
        // Tolerance changes only what a torn tail does: the records before
        // it are the same.
        assert_eq!(tolerant.0, strict.0);
        match (&strict.1, &tolerant.1) {
            (Some(_), None) => torn += 1,
            (Some(_), Some(_)) => damaged += 1,
            _ => {}
        }
        cases += 1;
    }
    println!(
        "reader: {cases} cases in {:.1} s ({torn} torn tails, {damaged} damaged)",
        started.elapsed().as_secs_f64()
    );
}

/// One edit of a JSON line's text.
fn mutate_json(rng: &mut Rng, line: &mut String) {
    let replacements = [
        "0",
        "-1",
        "18446744073709551615",
        "1e309",
        "null",
        "true",
        "\"\"",
        "[]",
        "{}",
        "\"AAAA\"",
        "\"!!\"",
        "4294967296",
        "65536",
    ];
    match rng.below(4) {
        0 if !line.is_empty() => {
            let at = rng.below(line.len());
            if line.is_char_boundary(at) {
                line.insert(
                    at,
                    ['"', ',', ':', '{', '}', '[', ']', '0', 'x'][rng.below(9)],
                );
            }
        }
        1 => {
            // Replace one value (after a colon) with something else.
            let colons: Vec<usize> = line.match_indices(':').map(|(i, _)| i).collect();
            if let Some(&at) = colons.get(rng.below(colons.len())) {
                let end = line[at + 1..]
                    .find([',', '}'])
                    .map_or(line.len(), |i| at + 1 + i);
                line.replace_range(at + 1..end, replacements[rng.below(replacements.len())]);
            }
        }
        2 => {
            // Drop a field.
            let commas: Vec<usize> = line.match_indices(',').map(|(i, _)| i).collect();
            if let Some(&at) = commas.get(rng.below(commas.len())) {
                let end = line[at + 1..]
                    .find(',')
                    .map_or(line.len() - 1, |i| at + 1 + i);
                line.replace_range(at..end, "");
            }
        }
        _ => {
            let at = rng.below(line.len().max(1));
            if line.is_char_boundary(at) {
                line.truncate(at);
            }
        }
    }
}

#[test]
fn fuzz_the_json_lines_importer() {
    let mut rng = Rng(0x5eed_0002);
    let lines: Vec<String> = (0..8)
        .flat_map(|s| one_of_each(s, 40))
        .map(|e| e.to_json().to_string())
        .collect();
    let started = Instant::now();
    let (mut cases, mut accepted) = (0u64, 0u64);
    while keep_going(started, cases) {
        let mut line = lines[rng.below(lines.len())].clone();
        for _ in 0..1 + rng.below(3) {
            mutate_json(&mut rng, &mut line);
        }
        cases += 1;
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let Ok(entry) = JournalEntry::from_json(&value) else {
            continue;
        };
        accepted += 1;
        // What the importer accepts, the journal stores and gives back.
        let bytes = journal_bytes(std::slice::from_ref(&entry));
        let (read, error) = read_all(&bytes, Recovery::Strict);
        assert!(error.is_none(), "{line}: {error:?}");
        assert_eq!(read, vec![entry], "{line}");
    }
    println!(
        "importer: {cases} cases in {:.1} s ({accepted} accepted and round-tripped)",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn fuzz_replay_and_compaction() {
    let mut rng = Rng(0x5eed_0003);
    let started = Instant::now();
    let (mut cases, mut modelled) = (0u64, 0u64);
    while keep_going(started, cases) {
        // A history of sample entries of random kinds, some repeated.
        let mut g = SampleGen::new(rng.next(), 64);
        let count = 1 + rng.below(24);
        let entries: Vec<JournalEntry<'static>> = (0..count)
            .map(|_| {
                let kind = EntryKind::ALL[rng.below(EntryKind::ALL.len())];
                JournalEntry::sample(kind, &mut g)
            })
            .collect();
        cases += 1;
        let records: Vec<(u64, JournalEntry<'static>)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (8 * (i as u64 + 1), e.clone()))
            .collect();
        let Ok(original) = replay(records.clone()) else {
            continue;
        };
        let Ok(compacted) = compact(records) else {
            continue;
        };
        modelled += 1;
        let all = compacted.entries_with_marker_at(0);
        let rebuilt: Vec<(u64, JournalEntry<'static>)> = all
            .into_iter()
            .enumerate()
            .map(|(i, e)| (8 * (i as u64 + 1), e))
            .collect();
        match replay(rebuilt.clone()) {
            Ok(again) => assert_eq!(again.end.summary(), original.end.summary()),
            Err((offset, e)) => {
                let show = |r: &[(u64, JournalEntry<'static>)]| {
                    r.iter()
                        .map(|(o, e)| format!("  {o}: {e}\n"))
                        .collect::<String>()
                };
                let original: Vec<_> = entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (8 * (i as u64 + 1), e.clone()))
                    .collect();
                panic!(
                    "a compacted history does not replay: {offset}: {e}\noriginal:\n{}compacted:\n{}",
                    show(&original),
                    show(&rebuilt)
                );
            }
        }
    }
    println!(
        "replay: {cases} histories in {:.1} s ({modelled} accepted by the model, compacted, \
         replayed to the same state)",
        started.elapsed().as_secs_f64()
    );
}
