//! Why a process could not be loaded or started.

use std::path::{Path, PathBuf};

use crate::module_cache::CompileError;
use crate::policy::PolicyError;
use crate::replay::ReplayError;
use crate::snapshot::SnapshotError;

/// Why a program could not be loaded or a process started. Each message
/// names the file or journal and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The module file could not be read.
    #[error("cannot read module {}: {source}", path.display())]
    ReadModule {
        /// The module's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The load-time rewrite failed (the module is malformed).
    #[error("cannot load {module}: {source}")]
    Rewrite {
        /// The module's name.
        module: String,
        /// Why.
        source: wasnap_prepare::globals::PrepareError,
    },
    /// The module does not compile.
    #[error("cannot load {module}: {source}")]
    Compile {
        /// The module's name.
        module: String,
        /// Why.
        source: CompileError,
    },
    /// The module does not fit the host (imports, `_start`, memory) or
    /// could not be instantiated.
    #[error("cannot run {module}: {source}")]
    Instantiate {
        /// The module's name.
        module: String,
        /// Why.
        source: wasnap_wasi::LoadError,
    },
    /// A journal could not be opened.
    #[error("cannot open journal {journal}: {source}")]
    OpenJournal {
        /// The journal's path or name.
        journal: String,
        /// Why.
        source: wasnap_journal::JournalError,
    },
    /// A journal could not be replayed.
    #[error(transparent)]
    Replay(Box<ReplayError>),
    /// Journaling could not start.
    #[error("cannot start journaling into {journal}: {source}")]
    Recording {
        /// The journal's name.
        journal: String,
        /// Why.
        source: wasnap_wasi::Trap,
    },
    /// The snapshot policy cannot work.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Snapshots were asked for without a journal to write them to.
    #[error("snapshots need a journal to write to (--journal)")]
    SnapshotsNeedJournal,
    /// Snapshots were asked for a module that was not prepared.
    #[error("{module} cannot be snapshotted: it lacks Binaryen's asyncify exports; prepare it with `wasnap prepare {module} -o PREPARED.wasm` and run PREPARED.wasm")]
    NotPrepared {
        /// The module's name.
        module: String,
    },
    /// The module file changed while its journals were replayed against
    /// the hash the cache remembered for it.
    #[error("{module} changed while it was loading (after the cache vouched for it); run again")]
    ModuleChanged {
        /// The module file.
        module: String,
    },
    /// The journal's snapshot could not be restored.
    #[error("cannot resume {module} from its journal: {source}")]
    Restore {
        /// The module's name.
        module: String,
        /// Why.
        source: SnapshotError,
    },
    /// The Ctrl-C handler could not be installed.
    #[error("cannot install the Ctrl-C handler: {0}")]
    Signal(std::io::Error),
}

impl From<ReplayError> for ProcessError {
    fn from(error: ReplayError) -> Self {
        ProcessError::Replay(Box::new(error))
    }
}

impl ProcessError {
    /// The same error naming the module by its path.
    pub(crate) fn with_module(self, path: &Path) -> ProcessError {
        let module = path.display().to_string();
        match self {
            ProcessError::Rewrite { source, .. } => ProcessError::Rewrite { module, source },
            ProcessError::Compile { source, .. } => ProcessError::Compile { module, source },
            other => other,
        }
    }
}
