//! The wasnap command line.

mod inspect;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, shared by every subcommand.
pub mod exit {
    /// Success: the journal is intact.
    pub const OK: u8 = 0;
    /// The journal is damaged or invalid (the message names the offset).
    pub const DAMAGED: u8 = 1;
    /// Usage error, or the journal could not be opened (missing, unreadable).
    pub const ERROR: u8 = 2;
}

const EXIT_CODES: &str = "Exit codes:
  0  success (for verify: every record is intact)
  1  the journal is damaged or is not a journal; the message names the offset
  2  usage error, or the file could not be opened";

/// Run WebAssembly programs that use WASI, journal their effects, and work
/// with journals.
#[derive(Debug, Parser)]
#[command(name = "wasnap", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Look inside journals.
    #[command(subcommand)]
    Journal(JournalCommand),
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// Summarize a journal: format version, module hash, entries and bytes per
    /// kind, snapshots.
    #[command(after_help = EXIT_CODES)]
    Inspect {
        /// The journal file (never created or modified).
        path: PathBuf,
        /// List every record with its offset.
        #[arg(long)]
        entries: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every record of a journal: exit 0 when intact; otherwise name the
    /// first bad offset and what is wrong.
    #[command(after_help = EXIT_CODES)]
    Verify {
        /// The journal file (never created or modified).
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Journal(JournalCommand::Inspect {
            path,
            entries,
            json,
        }) => inspect::inspect(&path, entries, json),
        Command::Journal(JournalCommand::Verify { path }) => inspect::verify(&path),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("wasnap: {error:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
