//! The third-party programs (Lua, SQLite, QuickJS, CPython) as the tests
//! run them: where fixtures/third-party/build.sh put them, the mounts and
//! environment each needs, their prepared (asyncify) variants cached by
//! input hash, and the cases of fixtures/third-party/cases.
//!
//! Where the programs have not been built (a machine without clang), the
//! tests say so on stderr and pass, unless WASNAP_REQUIRE_THIRD_PARTY=1 (set
//! by .ci/run, which builds them), where a missing program fails.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use super::{run_with_input, text, wasnap};

/// The directory build.sh fills.
pub fn third_party_dir() -> PathBuf {
    std::env::var_os("WASNAP_THIRD_PARTY_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wasnap/third-party"))
        })
        .expect("HOME or WASNAP_THIRD_PARTY_DIR")
}

/// fixtures/third-party/scripts, mounted read-only at /s.
pub fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/third-party/scripts")
}

/// fixtures/third-party/cases.
pub fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/third-party/cases")
}

/// One of the four programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Lua,
    Sqlite,
    QuickJs,
    Python,
}

impl Program {
    pub const ALL: [Program; 4] = [
        Program::Lua,
        Program::Sqlite,
        Program::QuickJs,
        Program::Python,
    ];

    /// The name cases use for it, and its argv[0].
    pub fn name(self) -> &'static str {
        match self {
            Program::Lua => "lua",
            Program::Sqlite => "sqlite3",
            Program::QuickJs => "qjs",
            Program::Python => "python",
        }
    }

    pub fn from_name(name: &str) -> Option<Program> {
        Program::ALL.into_iter().find(|p| p.name() == name)
    }

    fn argv0(self) -> &'static str {
        match self {
            Program::Python => "python3",
            other => other.name(),
        }
    }

    fn file(self) -> &'static str {
        match self {
            Program::Lua => "lua.wasm",
            Program::Sqlite => "sqlite3.wasm",
            Program::QuickJs => "qjs.wasm",
            Program::Python => "python/bin/python3.11.wasm",
        }
    }

    /// The built module, or `None` (after saying so) where it is missing
    /// and not required.
    pub fn module(self) -> Option<PathBuf> {
        let path = third_party_dir().join(self.file());
        if path.is_file() {
            return Some(path);
        }
        let required = std::env::var("WASNAP_REQUIRE_THIRD_PARTY").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{} is missing: run fixtures/third-party/build.sh",
            path.display()
        );
        eprintln!(
            "skipped: {} is not built (run fixtures/third-party/build.sh)",
            path.display()
        );
        None
    }

    /// The module prepared for snapshots (`wasnap prepare`), made once per
    /// machine and kept beside the programs under the input's hash.
    pub fn prepared(self) -> Option<PathBuf> {
        let module = self.module()?;
        let bytes = std::fs::read(&module).unwrap();
        let dir = third_party_dir().join("prepared");
        std::fs::create_dir_all(&dir).unwrap();
        let key = fnv_hex(&bytes);
        let path = dir.join(format!("{}-{key}.async.wasm", self.name()));
        if path.is_file() {
            return Some(path);
        }
        // Several tests (threads and processes) may ask at once: one
        // prepares while the others wait on the lock, then find it made.
        let lock = std::fs::File::create(dir.join(format!(".{}.lock", self.name()))).unwrap();
        lock.lock().unwrap();
        if path.is_file() {
            return Some(path);
        }
        let tmp = dir.join(format!(".{}-{key}.{}.tmp", self.name(), std::process::id()));
        let out = wasnap(&dir)
            .arg("prepare")
            .arg(&module)
            .arg("-o")
            .arg(&tmp)
            .arg("--force")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "prepare {}: {}",
            self.name(),
            text(&out.stderr)
        );
        std::fs::rename(&tmp, &path).unwrap();
        drop(lock);
        Some(path)
    }

    /// What `wasnap run` needs before the module for this program: its
    /// argv[0], the scripts at /s, `w` (a host directory, or an in-memory
    /// copy of one with `journaled_w`), and CPython's library and
    /// environment.
    pub fn run_args(self, w: &Path, journaled_w: bool) -> Vec<String> {
        let mut args = vec![
            "--argv0".to_owned(),
            self.argv0().to_owned(),
            "--dir".to_owned(),
            format!("{}::/s:ro", scripts().display()),
            if journaled_w { "--dir-copy" } else { "--dir" }.to_owned(),
            format!("{}::/w", w.display()),
        ];
        if self == Program::Python {
            let lib = third_party_dir().join("python/lib");
            args.extend([
                "--dir".to_owned(),
                format!("{}::/usr/local/lib:ro", lib.display()),
                "--env".to_owned(),
                "PYTHONHOME=/usr/local".to_owned(),
                "--env".to_owned(),
                "PYTHONHASHSEED=0".to_owned(),
                "--env".to_owned(),
                "PYTHONDONTWRITEBYTECODE=1".to_owned(),
            ]);
        }
        args
    }
}

/// FNV-1a of `bytes`, as hex (a cache key, not a security check).
fn fnv_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}-{}", bytes.len())
}

/// A module cache shared by the third-party tests (CPython compiles once).
pub fn module_cache() -> PathBuf {
    let dir = third_party_dir().join("module-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One case of fixtures/third-party/cases.
pub struct Case {
    pub name: String,
    pub program: Program,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub stdin: Vec<u8>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: i32,
    /// Why the case is known to differ under wasnap, if it is.
    pub xfail: Option<String>,
}

/// The cases for `program`, by name.
pub fn cases(program: Program) -> Vec<Case> {
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(cases_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_default();
        let command = text(&read("command"));
        let mut lines = command.lines().map(str::to_owned);
        let Some(p) = lines.next().and_then(|n| Program::from_name(&n)) else {
            panic!("{}: bad command file", dir.display())
        };
        if p != program {
            continue;
        }
        cases.push(Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            program: p,
            args: lines.collect(),
            env: text(&read("env")).lines().map(str::to_owned).collect(),
            stdin: read("stdin"),
            stdout: read("stdout"),
            stderr: read("stderr"),
            status: text(&read("status")).trim().parse().unwrap(),
            xfail: dir
                .join("xfail")
                .is_file()
                .then(|| text(&read("xfail")).trim().to_owned()),
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

impl Case {
    /// `wasnap run` arguments for this case: `before` (journal options and
    /// the like) first, then the program's mounts, the case's environment,
    /// the module and the case's arguments.
    pub fn args(&self, module: &Path, w: &Path, journaled_w: bool, before: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = before.iter().map(|s| (*s).to_owned()).collect();
        args.extend(self.program.run_args(w, journaled_w));
        for kv in &self.env {
            args.push("--env".to_owned());
            args.push(kv.clone());
        }
        args.push(module.display().to_string());
        args.extend(self.args.iter().cloned());
        args
    }

    /// Runs the case under wasnap with a fresh `w`.
    pub fn run(&self, module: &Path, journaled_w: bool, before: &[&str]) -> Output {
        let w = tempfile::tempdir().unwrap();
        let args = self.args(module, w.path(), journaled_w, before);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with_input(&module_cache(), &args, &self.stdin)
    }
}
