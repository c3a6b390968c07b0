//! `wasnap journal export` and `wasnap journal import`: JSON Lines, one entry
//! per line, byte strings in base64. export → import → export is identical.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use wasnap_journal::{JournalEntry, WriteJournal};

use super::{check_destination, open_reader, write_journal_atomically};
use crate::exit;

/// Writes every entry of `path` as one JSON line to `output` (or stdout).
pub fn export(path: &Path, output: Option<&Path>, force: bool) -> Result<u8> {
    let mut reader = open_reader(path)?;
    let mut write_lines = |out: &mut dyn Write| -> Result<Option<wasnap_journal::ReadError>> {
        loop {
            match reader.read_next() {
                Ok(Some(record)) => {
                    serde_json::to_writer(&mut *out, &record.entry.to_json())?;
                    out.write_all(b"\n")?;
                }
                Ok(None) => return Ok(None),
                Err(error) => return Ok(Some(error)),
            }
        }
    };
    let damage = match output {
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let damage = write_lines(&mut out)?;
            out.flush()?;
            damage
        }
        Some(output) => {
            check_destination(output, force)?;
            let directory = output
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut temporary = tempfile::NamedTempFile::new_in(directory).with_context(|| {
                format!("cannot create a temporary file in {}", directory.display())
            })?;
            let damage = {
                let mut out = BufWriter::new(temporary.as_file_mut());
                let damage = write_lines(&mut out)?;
                out.flush()?;
                damage
            };
            if damage.is_none() {
                temporary
                    .persist(output)
                    .with_context(|| format!("cannot write {}", output.display()))?;
            }
            damage
        }
    };
    match damage {
        None => Ok(exit::OK),
        Some(error) => {
            eprintln!("wasnap: {error}");
            if output.is_some() {
                eprintln!("wasnap: nothing was written");
            }
            Ok(exit::DAMAGED)
        }
    }
}

/// Builds the journal `destination` from the JSON Lines in `input` (`-` for
/// stdin). Every line is parsed before anything is written.
pub fn import(input: &Path, destination: &Path, force: bool) -> Result<u8> {
    check_destination(destination, force)?;
    let name = input.display().to_string();
    let reader: Box<dyn BufRead> = if input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(input).with_context(|| format!("cannot open {name}"))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut entries: Vec<JournalEntry<'static>> = Vec::new();
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("cannot read {name}"))?;
        // Every problem names its line, bytes that are not UTF-8 included.
        let line = match String::from_utf8(line) {
            Ok(line) => line,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                eprintln!(
                    "wasnap: {name}:{}: not UTF-8 (byte {} of the line is {:#04x}); JSON Lines are UTF-8",
                    index + 1,
                    at + 1,
                    e.as_bytes()[at]
                );
                eprintln!("wasnap: nothing was written");
                return Ok(exit::DAMAGED);
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| e.to_string())
            .and_then(|value| JournalEntry::from_json(&value).map_err(|e| e.to_string()));
        match parsed {
            Ok(entry) => entries.push(entry),
            Err(message) => {
                eprintln!("wasnap: {name}:{}: {message}", index + 1);
                eprintln!("wasnap: nothing was written");
                return Ok(exit::DAMAGED);
            }
        }
    }
    write_journal_atomically(destination, |journal| {
        journal.write_batch(&entries)?;
        Ok(())
    })?;
    eprintln!(
        "wasnap: imported {} entries into {}",
        entries.len(),
        destination.display()
    );
    Ok(exit::OK)
}
