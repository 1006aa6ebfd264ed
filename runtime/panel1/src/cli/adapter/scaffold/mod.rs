//! `panel1 adapter new NAME --lang rust|js|ts|python|c [--dir PATH]`: a standalone
//! adapter project that builds with one command (`./build.sh` → NAME.wasm)
//! and needs nothing from a Panel1 checkout: the WIT, the narrowed world and
//! (Rust) the SDK come from this binary (see `files`). The sample adapter is
//! a starter for WHM API 1 that passes `adapter conformance --provider whm`.
mod files;
pub mod sdk;

use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Ts => "ts",
            Lang::Python => "python",
            Lang::C => "c",
        }
    }
}

/// Exit code of every refusal (bad name, bad directory, I/O): nothing is
/// written. clap refuses an unknown `--lang` with the same code.
pub const EXIT_REFUSED: u8 = 2;

/// The languages a project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust with the Panel1 SDK (vendored), cargo → wasm32-wasip2.
    Rust,
    /// JavaScript with componentize-js (npm) and a wasi:http helper.
    Js,
    /// TypeScript: types generated from the WIT (jco), checked by tsc, then
    /// componentize-js (npm); the JS project's wasi:http helper, typed.
    Ts,
    /// Python with componentize-py (PyPI) and a wasi:http helper.
    Python,
    /// C without libc: wit-bindgen's C bindings, clang/lld (Debian), a
    /// wasi:http helper and a small JSON reader.
    C,
}

#[derive(Args)]
#[command(
    after_help = "The project builds with ./build.sh into NAME.wasm; see its README.md.\n\nExit codes:\n  0  the project was written\n  2  NAME or the directory was refused, or --lang is unknown (nothing written)"
)]
pub struct NewArgs {
    /// The adapter's name: a-z, then a-z, 0-9 or `-` (at most 40
    /// characters; the name it is pushed under). Also the default directory.
    name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    lang: Lang,
    /// Where to write the project (default: ./NAME). It must not exist, or
    /// be an empty directory.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
}

/// Why no project was written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{0}` is not a valid adapter name: use a letter a-z, then a-z, 0-9 or `-`, not ending in `-`, at most 40 characters (the name the adapter is uploaded under)")]
    Name(String),
    #[error("{0} exists and is not an empty directory: choose another --dir or remove it")]
    NotEmpty(PathBuf),
    #[error("cannot write the project at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ScaffoldError + '_ {
    move |source| ScaffoldError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `name` is a lowercase identifier, usable as a crate, npm and file name.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = || ScaffoldError::Name(name.to_string());
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) || name.len() > 40 {
        return Err(bad());
    }
    // What the upload API accepts, so the project pushes under its name.
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(bad());
    }
    if name.ends_with('-') {
        return Err(bad());
    }
    Ok(())
}

/// The target is absent or an empty directory.
pub fn check_target(dir: &Path) -> Result<(), ScaffoldError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(ScaffoldError::NotEmpty(dir.to_path_buf())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // A file (or something unreadable) is in the way.
        Err(_) => Err(ScaffoldError::NotEmpty(dir.to_path_buf())),
    }
}

/// The project's files with `{{name}}` and `{{crate}}` (the name as a Rust
/// library file stem) filled in.
pub fn render(name: &str, lang: Lang) -> Vec<files::Template> {
    let krate = name.replace('-', "_");
    files::project(lang)
        .into_iter()
        .map(|mut t| {
            t.text = t
                .text
                .replace("{{name}}", name)
                .replace("{{crate}}", &krate);
            t
        })
        .collect()
}

/// Write the project: into a sibling staging directory first, renamed into
/// place at the end, so a failure leaves nothing behind.
pub fn create(name: &str, lang: Lang, dir: &Path) -> Result<usize, ScaffoldError> {
    check_name(name)?;
    check_target(dir)?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    // Unique per call: two projects of one name created at once (threads
    // of one process) must not share, and rename away, one staging dir.
    let stage = parent.join(format!(".{name}.new-{}", uuid::Uuid::new_v4().simple()));
    let written = write_all(&stage, name, lang).and_then(|n| {
        // An empty target directory is replaced by the rename.
        if dir.exists() {
            std::fs::remove_dir(dir).map_err(io(dir))?;
        }
        std::fs::rename(&stage, dir).map_err(io(dir))?;
        Ok(n)
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&stage);
    }
    written
}

fn write_all(stage: &Path, name: &str, lang: Lang) -> Result<usize, ScaffoldError> {
    let files = render(name, lang);
    write_files(stage, &files)?;
    Ok(files.len())
}

/// Write `files` under `dir`, creating directories as needed.
fn write_files(dir: &Path, files: &[files::Template]) -> Result<(), ScaffoldError> {
    for f in files {
        let path = dir.join(&f.path);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(io(p))?;
        }
        std::fs::write(&path, &f.text).map_err(io(&path))?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(io(&path))?;
        }
    }
    Ok(())
}

pub fn run(args: NewArgs) -> u8 {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    match create(&args.name, args.lang, &dir) {
        Ok(n) => {
            println!(
                "created {} ({} adapter `{}`, {n} files)\nnext:\n  cd {}\n  ./build.sh\n  panel1 adapter check {}.wasm\n  panel1 adapter conformance {}.wasm --provider whm",
                dir.display(),
                args.lang.name(),
                args.name,
                dir.display(),
                args.name,
                args.name
            );
            super::super::EXIT_OK
        }
        Err(e) => {
            eprintln!("panel1: {e}");
            EXIT_REFUSED
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
