//! Helpers shared by the CLI tests: fixtures, and `wasnap` processes with a
//! module cache of their own.
#![allow(dead_code, clippy::unwrap_used)]

pub mod programs;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The path of a guest program in fixtures/wasi.
pub fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/wasi")
        .join(name)
        .display()
        .to_string()
}

/// A `wasnap` command that caches compiled modules in `cache`.
pub fn wasnap(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasnap"));
    cmd.env("WASNAP_CACHE_DIR", cache);
    cmd
}

/// Starts `wasnap run ARGS` with all three streams piped.
pub fn spawn_run(cache: &Path, args: &[&str]) -> Child {
    wasnap(cache)
        .arg("run")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `wasnap run ARGS` with `stdin` as its whole input.
pub fn run_with_input(cache: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = spawn_run(cache, args);
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small deterministic generator for kill moments (xorshift).
pub struct Moments(pub u64);

impl Moments {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Runs `wasnap run ARGS`, killing it (SIGKILL) once it has printed
/// `lines` lines and then `extra_ms` more milliseconds have passed; returns
/// everything it printed and whether it ended by itself first.
pub fn run_and_kill(cache: &Path, args: &[&str], lines: usize, extra_ms: u64) -> (Vec<u8>, bool) {
    let mut child = wasnap(cache)
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    let mut ended = false;
    while seen.iter().filter(|&&b| b == b'\n').count() < lines {
        if stdout.read(&mut byte).unwrap() == 0 {
            ended = true;
            break;
        }
        seen.push(byte[0]);
    }
    if !ended {
        std::thread::sleep(Duration::from_millis(extra_ms));
        let _ = child.kill();
    }
    stdout.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    // A killed process never succeeds: success means it ended by itself
    // (maybe just before the kill).
    if ended && !status.success() {
        let mut err = String::new();
        let mut stderr = child.stderr.take().unwrap();
        stderr.read_to_string(&mut err).unwrap();
        panic!("the run failed ({status}): {err}");
    }
    (seen, status.success())
}

/// Everything the journal says was written to standard output, in order.
pub fn journaled_stdout(cache: &Path, journal: &str) -> (Vec<u8>, usize) {
    let export = wasnap(cache)
        .args(["journal", "export", journal])
        .output()
        .unwrap();
    let mut out = Vec::new();
    let mut last = 0;
    for line in text(&export.stdout).lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        if entry["type"] == "FileDescriptorWriteV1" && entry["fd"] == 1 {
            let data = base64_decode(entry["data"].as_str().unwrap());
            last = data.len();
            out.extend(data);
        }
    }
    (out, last)
}

/// Standard base64 (what `journal export` writes for bytes).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk.iter().fold(0u32, |n, &d| n << 6 | u32::from(d)) << (6 * (4 - chunk.len()));
        out.extend(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// Accounts for the one write a kill can catch in flight: output is
/// journaled before it is written, so a kill between the two loses that one
/// write (it is never repeated). Anything else the journal holds and the
/// terminal did not see, or the other way round, fails the test.
pub fn account_for_the_write_in_flight(cache: &Path, journal: &str, printed: &mut Vec<u8>) -> bool {
    let (journaled, last) = journaled_stdout(cache, journal);
    if journaled == *printed {
        return false;
    }
    assert!(
        journaled.len() == printed.len() + last && journaled.starts_with(printed),
        "the journal and the terminal disagree beyond the last write:\njournal:  {:?}\nprinted: {:?}",
        text(&journaled),
        text(printed)
    );
    printed.extend_from_slice(&journaled[printed.len()..]);
    true
}

/// Whether the journal's last run exited (a kill can land after the
/// program's end was journaled, while the process is tearing down).
pub fn journal_says_exited(cache: &Path, journal: &str) -> bool {
    let inspect = wasnap(cache)
        .args(["journal", "inspect", "--json", journal])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&text(&inspect.stdout)).unwrap();
    report["next_run"]["start"] == "afresh"
}

/// Runs `wasnap run ARGS` (which must start with `--journal PATH`) to its
/// end under kills at random moments, resuming with the same command;
/// returns all it printed, in order, with a write lost in flight counted as
/// printed, and how many kills landed.
pub fn soak(cache: &Path, args: &[&str], moments: &mut Moments, kills: usize) -> (Vec<u8>, usize) {
    let journal = args[1];
    let mut printed = Vec::new();
    let mut in_flight = 0;
    let mut killed = 0;
    for _ in 0..kills {
        // Kill after 0–3 more lines and 0–14 ms: inside a sleep, a write, a
        // snapshot, or the re-execution of the journal's tail.
        let lines = moments.below(4) as usize;
        let extra = moments.below(15);
        let (out, done) = run_and_kill(cache, args, lines, extra);
        printed.extend(out);
        if done || journal_says_exited(cache, journal) {
            return (printed, killed);
        }
        killed += 1;
        if account_for_the_write_in_flight(cache, journal, &mut printed) {
            in_flight += 1;
        }
    }
    // A kill that arrives while the journal is being written takes effect
    // when that write returns, just before the output: how often depends on
    // the machine's load, so it is reported, not bounded.
    eprintln!("{killed} kills, {in_flight} caught a write in flight");
    let (out, done) = run_and_kill(cache, args, usize::MAX, 0);
    assert!(done, "the last run did not finish");
    printed.extend(out);
    (printed, killed)
}

/// The memory image at each snapshot marker of a journal, trailing zeros
/// trimmed.
pub fn images_at_snapshots(journal: &Path) -> Vec<Vec<u8>> {
    let mut reader = wasnap_journal::JournalReader::open(journal).unwrap();
    let mut image = wasnap_journal::memory::MemoryImage::new();
    let mut images = Vec::new();
    while let Some(record) = reader.read_next().unwrap() {
        match &record.entry {
            wasnap_journal::JournalEntry::UpdateMemoryRegionV1(region) => {
                image.apply(region).unwrap()
            }
            wasnap_journal::JournalEntry::SnapshotV1(_) => {
                let mut bytes = image.as_bytes().to_vec();
                while bytes.last() == Some(&0) {
                    bytes.pop();
                }
                images.push(bytes);
            }
            _ => {}
        }
    }
    images
}
