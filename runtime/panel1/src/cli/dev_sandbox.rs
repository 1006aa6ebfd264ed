//! The sandbox of the author-facing commands (`adapter check`, `run`,
//! `test`, `conformance`): the compile budget, the compiler (Cranelift, or
//! Winch for a faster edit → rerun loop) and the compiled-artifact cache,
//! on by default so a second run of the same component skips compiling.
use super::compile::{sandbox_config, CompileArgs};
use clap::Args;
use panel1_sandbox::{ArtifactStore, CodeGen, LoadedAdapter, Sandbox, SandboxError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The cache keeps at most this much compiled code; the least recently
/// written artifacts go first (a JS or Python component compiles to
/// 30–60 MB).
const CACHE_MAX_BYTES: u64 = 2 << 30;

#[derive(Args, Clone, Debug)]
pub struct DevArgs {
    #[command(flatten)]
    pub budget: CompileArgs,
    /// Compiler: `cranelift` (optimized code; what Panel1 servers use) or
    /// `winch` (wasmtime's baseline compiler: compiles several times faster
    /// into slower code, with the same fuel, memory and deadline limits).
    #[arg(
        long,
        env = "PANEL1_COMPILER",
        default_value = "cranelift",
        value_name = "NAME"
    )]
    pub compiler: CodeGen,
    /// Compiled-artifact cache [default: $XDG_CACHE_HOME/panel1/artifacts
    /// or ~/.cache/panel1/artifacts]: an unchanged component is not compiled
    /// again.
    #[arg(long, env = "PANEL1_ARTIFACT_DIR", value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Compile every time; read and write no cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl DevArgs {
    pub fn sandbox(&self) -> Result<Sandbox, SandboxError> {
        Sandbox::new(sandbox_config(self.budget.budget(), self.compiler))
    }

    /// The cache directory, or `None` with `--no-cache` (or no home).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.artifacts.clone().or_else(default_cache_dir)
    }

    /// Read, check and compile (or take from the cache) one component.
    pub fn load(&self, sandbox: &Sandbox, file: &Path) -> Result<Arc<LoadedAdapter>, LoadError> {
        let bytes = std::fs::read(file).map_err(|e| LoadError::Read {
            path: file.display().to_string(),
            source: e,
        })?;
        let invalid = |e: SandboxError| LoadError::Invalid {
            path: file.display().to_string(),
            message: e.to_string(),
        };
        let Some(dir) = self.cache_dir() else {
            return sandbox.load(&bytes).map_err(invalid);
        };
        let store = ArtifactStore::open(&dir).map_err(|e| LoadError::Cache {
            dir: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let loaded = sandbox
            .load_with_artifacts(&bytes, &store)
            .map_err(invalid)?;
        // Best effort: a full disk must not fail the run.
        let _ = store.prune(CACHE_MAX_BYTES);
        Ok(loaded)
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("panel1").join("artifacts"))
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("artifact cache {dir}: {message} (--no-cache runs without it)")]
    Cache { dir: String, message: String },
}

/// The config key under which a dev shell finds its script. The shells
/// hide it from the adapter's own `config.get`/`config.all`, and recordings
/// leave it out.
pub const SCRIPT_KEY: &str = "panel1.dev.script";

/// A development run: the component is a dev shell (`./build.sh --dev` in a
/// JS or Python project) and `--script` the adapter source it evaluates on
/// every call, so an edit needs no component rebuild.
#[derive(Args, Clone, Debug, Default)]
pub struct ScriptArgs {
    /// The adapter script a dev shell runs (`.dev/adapter.js` or
    /// `.dev/adapter.json`, written by `./build.sh --dev`); the component
    /// given is that project's `.dev/shell.wasm`. For development only:
    /// servers run real builds.
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
}

impl ScriptArgs {
    /// The script's text, if one was given.
    pub fn read(&self) -> Result<Option<String>, LoadError> {
        let Some(path) = &self.script else {
            return Ok(None);
        };
        std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| LoadError::Read {
                path: path.display().to_string(),
                source: e,
            })
    }
}

/// Hand `script` to the dev shell through the call's config.
pub fn with_script(context: &mut panel1_sandbox::HostContext, script: Option<&str>) {
    if let Some(text) = script {
        context.config.insert(SCRIPT_KEY.into(), text.into());
    }
}
