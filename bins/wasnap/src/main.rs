//! The wasnap command line.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Exit codes, shared by every subcommand.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The input is damaged or invalid (the message names the offset or line).
    pub const DAMAGED: u8 = 1;
    /// Usage error, or a file could not be opened, read or written.
    pub const ERROR: u8 = 2;
}

const EXIT_CODES: &str = "Exit codes:
  0  success (for verify: every record is intact)
  1  the input is damaged or is not a journal; the message names the offset
     (or the line, for import), and nothing was written
  2  usage error, or a file could not be opened, read or written";

/// Run WebAssembly programs that use WASI, journal their effects, and work
/// with journals.
#[derive(Debug, Parser)]
#[command(name = "wasnap", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const RUN_EXIT_CODES: &str = "Exit codes:
  N    the program's own exit code (0 when `_start` returns); a status
       outside WASI's 0..126 exits 1 with a message (as in wasmtime), never 0
  134  the program trapped; the message and a wasm backtrace go to stderr
  128+S  the program raised signal S with proc_raise
  2    wasnap could not start the program (the message names the file and
       the problem: missing, not wasm, no `_start`, unknown imports)
  3    a resumed program did something other than its journal holds (the
       message names the record); the journal is left as it was
       (--on-divergence live cuts the journal's rest off and goes on instead)
  124  the run passed --timeout and was interrupted

Limits: --max-memory bounds linear memory (a memory.grow past it returns
-1, as WebAssembly specifies; wasnap says so when the run ends);
--max-fs-bytes bounds the bytes the in-memory mounts hold (ENOSPC / EFBIG
past it; default a quarter of the machine's memory); --timeout bounds the
run's wall-clock time (exit 124).

Journal: with --journal, a journal whose last run exited starts the program
afresh over the files it restores; one whose last run did not exit (killed,
or stopped after a snapshot) resumes it exactly: from its last snapshot, or
from `_start`, re-executing the rest of the journal against it, then live.

Snapshots: the kernel tracks the pages written between snapshots (userfaultfd
write-protect and PAGEMAP_SCAN; WASNAP_DIRTY_TRACKING=compare compares memory
instead). A snapshot storing 4 MiB or more is written by a child process
forked in the pause, so the program waits for the fork, not the write
(WASNAP_SNAPSHOT_CHILD_MIN=BYTES moves the threshold, `off` disables it).
-v prints each snapshot's pause and how it was found and written.

Filesystem: the guest sees a journaled in-memory root `/` (with `/tmp`),
plus each --dir (a host directory, read-write or `:ro`) and each --dir-copy
(an in-memory copy of a host directory; the host is never written). A guest
can never reach outside its mounts: `..` above a mount, absolute paths and
symbolic links leading out are refused, and host mounts are reached only
through directory descriptors, one name at a time, so a link swapped in
during an operation is never followed. A guest may create relative links
(even ones climbing out, which wasnap never follows) but not absolute ones.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a module snapshottable: apply Binaryen's asyncify (with a
    /// `wasm-opt` from PATH, $WASM_OPT or --wasm-opt), restricted to the
    /// imports that are snapshot points, and print the size growth.
    #[command(after_help = EXIT_CODES)]
    Prepare {
        /// The module to prepare (never modified).
        input: PathBuf,
        /// Where to write the prepared module.
        #[arg(short, long)]
        output: PathBuf,
        /// The wasm-opt to run.
        #[arg(long, value_name = "PATH")]
        wasm_opt: Option<PathBuf>,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Run a WASI command module (`wasi_snapshot_preview1`).
    #[command(after_help = RUN_EXIT_CODES)]
    Run(Box<commands::run::RunOptions>),
    /// Inspect, verify, convert, filter and repair journals.
    #[command(subcommand)]
    Journal(JournalCommand),
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// Summarize a journal: format version, module hash, entries and bytes per
    /// kind, snapshots.
    #[command(after_help = EXIT_CODES)]
    Inspect {
        /// The journal (never created or modified).
        path: PathBuf,
        /// List every record with its offset and length.
        #[arg(long)]
        entries: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every record: exit 0 when intact; otherwise name the first bad
    /// offset and what is wrong.
    #[command(after_help = EXIT_CODES)]
    Verify {
        /// The journal (never created or modified).
        path: PathBuf,
    },
    /// Write every entry as JSON Lines (one entry per line, byte strings in
    /// base64), to standard output or a file.
    #[command(after_help = EXIT_CODES)]
    Export {
        /// The journal (never created or modified).
        path: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Build a journal from JSON Lines as written by `export`. Every line is
    /// checked before anything is written.
    #[command(after_help = EXIT_CODES)]
    Import {
        /// The JSON Lines file, or `-` for standard input.
        input: PathBuf,
        /// The journal to create.
        destination: PathBuf,
        /// Replace the destination if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Copy a journal without some categories of entries.
    #[command(after_help = EXIT_CODES)]
    Filter {
        /// The journal to read.
        source: PathBuf,
        /// The journal to create (written to a temporary file, then renamed).
        destination: PathBuf,
        /// Categories to drop: core, memory, threads, snapshots, filesystem,
        /// stdio, network, inputs.
        #[arg(long, num_args = 1.., required = true, value_name = "CATEGORY")]
        drop: Vec<String>,
        /// Replace the destination if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Keep only what is needed to reach the same state: the latest bytes of
    /// memory and files, the descriptors still open, the thread state of the
    /// last snapshot, and every record after the last snapshot. Written to a
    /// temporary file, synced, then renamed over the destination.
    #[command(after_help = EXIT_CODES)]
    Compact {
        /// The journal to compact.
        source: PathBuf,
        /// Where to write the result (default: replace the source).
        destination: Option<PathBuf>,
        /// Replace the destination if it exists.
        #[arg(long)]
        force: bool,
        /// Compress memory with LZ4 (for archives: smaller, but a resume
        /// copies memory instead of mapping it from the journal).
        #[arg(long)]
        compress: bool,
    },
    /// Cut off a torn tail left by a crash. Corruption in the middle of the
    /// journal is refused unless --truncate-at-corruption.
    #[command(after_help = EXIT_CODES)]
    Repair {
        /// The journal to repair in place.
        path: PathBuf,
        /// Also drop everything from the first corrupt record on.
        #[arg(long)]
        truncate_at_corruption: bool,
    },
    /// Print records; with --follow, keep printing those a running program
    /// appends.
    #[command(after_help = EXIT_CODES)]
    Tail {
        /// The journal (never created or modified).
        path: PathBuf,
        /// Keep waiting for new records.
        #[arg(short, long)]
        follow: bool,
        /// Print JSON Lines instead of text.
        #[arg(long)]
        json: bool,
        /// Remember the position in this file, so that a restarted tail
        /// continues without repeating or skipping records, across appends
        /// and across a compaction that replaces the journal.
        #[arg(long, value_name = "FILE")]
        watermark: Option<PathBuf>,
        /// How often --follow looks for new records, in milliseconds.
        #[arg(long, default_value_t = 100, value_name = "MS")]
        interval: u64,
    },
    /// Extract state from a journal.
    #[command(subcommand)]
    Extract(ExtractCommand),
}

#[derive(Debug, Subcommand)]
enum ExtractCommand {
    /// Write the linear memory image as of a snapshot.
    #[command(after_help = EXIT_CODES)]
    Memory {
        /// The journal (never created or modified).
        path: PathBuf,
        /// The file to write the image to.
        output: PathBuf,
        /// Which snapshot, counting from 1 in journal order (default: the last).
        #[arg(long, value_name = "N")]
        snapshot: Option<usize>,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASNAP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, and never under NO_COLOR.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Journal(command) => command,
        Command::Prepare {
            input,
            output,
            wasm_opt,
            force,
        } => {
            return match commands::prepare::prepare(&input, &output, wasm_opt, force) {
                Ok(code) => ExitCode::from(code),
                Err(error) => {
                    eprintln!("wasnap: {}", error_chain(&error));
                    ExitCode::from(exit::ERROR)
                }
            };
        }
        Command::Run(options) => {
            return match commands::run::run(*options) {
                Ok(code) => ExitCode::from(code as u8),
                Err(error) => {
                    eprintln!("wasnap: {}", error_chain(&error));
                    ExitCode::from(exit::ERROR)
                }
            };
        }
    };
    let outcome = match command {
        JournalCommand::Inspect {
            path,
            entries,
            json,
        } => commands::inspect::inspect(&path, entries, json),
        JournalCommand::Verify { path } => commands::inspect::verify(&path),
        JournalCommand::Export {
            path,
            output,
            force,
        } => commands::export::export(&path, output.as_deref(), force),
        JournalCommand::Import {
            input,
            destination,
            force,
        } => commands::export::import(&input, &destination, force),
        JournalCommand::Filter {
            source,
            destination,
            drop,
            force,
        } => commands::filter::filter(&source, &destination, &drop, force),
        JournalCommand::Compact {
            source,
            destination,
            force,
            compress,
        } => commands::compact::compact(&source, destination.as_deref(), force, compress),
        JournalCommand::Repair {
            path,
            truncate_at_corruption,
        } => commands::repair::repair(&path, truncate_at_corruption),
        JournalCommand::Tail {
            path,
            follow,
            json,
            watermark,
            interval,
        } => commands::tail::tail(
            &path,
            follow,
            json,
            watermark.as_deref(),
            Duration::from_millis(interval),
        ),
        JournalCommand::Extract(ExtractCommand::Memory {
            path,
            output,
            snapshot,
            force,
        }) => commands::extract::extract_memory(&path, &output, snapshot, force),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("wasnap: {}", error_chain(&error));
            ExitCode::from(exit::ERROR)
        }
    }
}

/// An error and its causes, joined by ": ", leaving out a cause whose text
/// the message before it already ends with (many messages quote their
/// source, and the chain would say it twice).
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.is_empty() {
            message = text;
        } else if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

#[cfg(test)]
mod error_chain_tests {
    use super::*;

    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let quoted = anyhow::Error::new(io).context("cannot read module m.wasm: No such file");
        assert_eq!(
            error_chain(&quoted),
            "cannot read module m.wasm: No such file"
        );
        let plain = anyhow::anyhow!("disk on fire").context("cannot write j");
        assert_eq!(error_chain(&plain), "cannot write j: disk on fire");
    }
}
