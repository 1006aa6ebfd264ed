//! `panel1 adapter sdk --lang rust|js|python|c --out DIR`: the source tree of
//! one SDK package, written from what this binary embeds for `adapter new`
//! (the same helper files, the same released WIT), so the packages need no
//! checkout and no helper exists twice. `sdk/package.sh` turns the trees
//! into a .crate, an npm tarball, a wheel and a C tarball
//! (docs/sdk-packages.md).
use super::files::{self, Template};
use super::{check_target, io, Lang, ScaffoldError, EXIT_REFUSED};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// The SDK packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SdkLang {
    /// The `panel1-sdk` crate, with the released WIT in wit/.
    Rust,
    /// The `@panel1/sdk` npm package (panel1.js; `sdk/package.sh` adds the
    /// TypeScript declarations).
    Js,
    /// The `panel1_sdk` Python distribution (module `panel1_http`).
    Python,
    /// The C helpers: panel1.h, panel1.c, json.c, libc/ and the world.
    C,
}

#[derive(Args)]
#[command(
    after_help = "sdk/package.sh builds the packages from these trees; see docs/sdk-packages.md.\n\nExit codes:\n  0  the tree was written\n  2  the directory was refused, or --lang is unknown (nothing written)"
)]
pub struct SdkArgs {
    /// Which package.
    #[arg(long, value_enum)]
    lang: SdkLang,
    /// Where to write its source tree. It must not exist, or be an empty
    /// directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

macro_rules! sdk_template {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/sdk/",
            $path
        ))
    };
}

/// The version of every SDK package: the Rust SDK's (sdk/rust/Cargo.toml).
pub fn version() -> &'static str {
    const MANIFEST: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../sdk/rust/Cargo.toml"
    ));
    MANIFEST
        .lines()
        .find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
        .expect("sdk/rust/Cargo.toml has a version")
}

/// The packaged crate's rewrites of the SDK sources (`(file, from, to)`, as
/// `files::SDK_REWRITES`): the WIT is read from the crate's own wit/, and
/// the world follows the `secrets-reveal` feature, which also gates
/// `secrets::reveal`.
pub const CRATE_REWRITES: &[(&str, &str, &str)] = &[
    (
        "lib.rs",
        "    wit_bindgen::generate!({\n        path: \"../../wit/v0.1.0\",\n        world: \"panel1:provisioning/provisioning@0.1.0\",\n",
        "    // The full released world with the `secrets-reveal` feature, else
    // wit/world.wit's, which leaves `secrets-reveal` out (a macro, because
    // `generate!` takes its world as a literal).
    #[cfg(feature = \"secrets-reveal\")]
    macro_rules! panel1_world {
        ({ $($options:tt)* }) => {
            wit_bindgen::generate!({ path: \"wit\", world: \"panel1:provisioning/provisioning@0.1.0\", $($options)* });
        };
    }
    #[cfg(not(feature = \"secrets-reveal\"))]
    macro_rules! panel1_world {
        ({ $($options:tt)* }) => {
            wit_bindgen::generate!({ path: \"wit\", world: \"panel1:sdk/adapter@0.1.0\", $($options)* });
        };
    }
    panel1_world!({
",
    ),
    (
        "random.rs",
        "path: \"../../wit/v0.1.0/deps/random\",",
        "path: \"wit/deps/random\",",
    ),
    (
        "secrets.rs",
        "/// Prefer [`placeholder`].\npub fn reveal(",
        "/// Prefer [`placeholder`]. Needs the crate's `secrets-reveal` feature.\n#[cfg(feature = \"secrets-reveal\")]\npub fn reveal(",
    ),
];

fn file(path: impl Into<String>, text: impl Into<String>) -> Template {
    Template {
        path: path.into(),
        text: text.into(),
        executable: false,
    }
}

/// The text of `path` in a new `lang` project (before name substitution).
fn scaffold_file(lang: Lang, path: &str) -> String {
    files::project(lang)
        .into_iter()
        .find(|t| t.path == path)
        .unwrap_or_else(|| panic!("the {} scaffold has {path}", lang.name()))
        .text
}

/// A scaffold's world and the released WIT, as `wit/` of a package. The
/// world's comments name the project; here it is any adapter.
fn wit(lang: Lang) -> Vec<Template> {
    let world = scaffold_file(lang, "wit/world.wit").replace("{{name}}", "the adapter");
    let mut out = vec![file("wit/world.wit", world)];
    out.extend(files::WIT.iter().map(|(p, t)| file(*p, *t)));
    out
}

/// Every file of the `lang` package's source tree.
pub fn package(lang: SdkLang) -> Vec<Template> {
    let mut out = match lang {
        SdkLang::Rust => {
            let mut out = vec![
                file("Cargo.toml", sdk_template!("rust/Cargo.toml")),
                file("README.md", sdk_template!("rust/README.md")),
                file("wit/world.wit", sdk_template!("rust/world.wit")),
            ];
            out.extend(files::WIT.iter().map(|(p, t)| file(*p, *t)));
            out.extend(files::SDK.iter().map(|(name, text)| {
                file(
                    format!("src/{name}"),
                    files::rewritten(CRATE_REWRITES, name, text),
                )
            }));
            out
        }
        SdkLang::Js => {
            // The TypeScript world: its declarations (types/) are what
            // panel1.d.ts refers to; it imports what panel1.js imports.
            let mut out = wit(Lang::Ts);
            out.extend([
                file("package.json", sdk_template!("js/package.json")),
                file("README.md", sdk_template!("js/README.md")),
                file("panel1.js", scaffold_file(Lang::Js, "panel1.js")),
            ]);
            out
        }
        SdkLang::Python => vec![
            file("pyproject.toml", sdk_template!("python/pyproject.toml")),
            file("README.md", sdk_template!("python/README.md")),
            file(
                "panel1_http.py",
                scaffold_file(Lang::Python, "panel1_http.py"),
            ),
        ],
        SdkLang::C => {
            let mut out = wit(Lang::C);
            out.push(file("README.md", sdk_template!("c/README.md")));
            for path in [
                "panel1.h",
                "panel1.c",
                "json.c",
                "libc/stdlib.h",
                "libc/string.h",
                "libc/libc.c",
            ] {
                out.push(file(path, scaffold_file(Lang::C, path)));
            }
            out
        }
    };
    for t in &mut out {
        t.text = t.text.replace("{{version}}", version());
    }
    out
}

/// Write the tree of `lang` into `dir` (absent or empty).
pub fn write(lang: SdkLang, dir: &Path) -> Result<usize, ScaffoldError> {
    check_target(dir)?;
    let files = package(lang);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    super::write_files(dir, &files)?;
    Ok(files.len())
}

pub fn run(args: SdkArgs) -> u8 {
    match write(args.lang, &args.out) {
        Ok(n) => {
            println!(
                "wrote {} ({:?} SDK {}, {n} files)",
                args.out.display(),
                args.lang,
                version()
            );
            super::super::super::EXIT_OK
        }
        Err(e) => {
            eprintln!("panel1: {e}");
            EXIT_REFUSED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crate_rewrite_applies() {
        for (file, from, _) in CRATE_REWRITES {
            let (_, original) = files::SDK.iter().find(|(f, _)| f == file).unwrap();
            assert!(
                original.contains(from),
                "sdk/rust/src/{file} no longer contains `{from}`"
            );
            assert!(!files::rewritten(CRATE_REWRITES, file, original).contains(from));
        }
    }

    #[test]
    fn packages_are_standalone_and_versioned() {
        assert!(version().split('.').count() == 3, "{}", version());
        for lang in [SdkLang::Rust, SdkLang::Js, SdkLang::Python, SdkLang::C] {
            let files = package(lang);
            for t in &files {
                assert!(!t.text.contains("{{"), "{lang:?} {}: unfilled", t.path);
                assert!(!t.text.contains("../../wit"), "{lang:?} {}", t.path);
            }
            let manifest = files
                .iter()
                .find(|t| ["Cargo.toml", "package.json", "pyproject.toml"].contains(&&*t.path));
            if let Some(m) = manifest {
                assert!(m.text.contains(version()), "{lang:?}: {}", m.path);
            }
            if lang != SdkLang::Python {
                let world = files.iter().find(|t| t.path == "wit/world.wit").unwrap();
                assert!(
                    world
                        .text
                        .lines()
                        .filter(|l| l.trim_start().starts_with("import"))
                        .all(|l| !l.contains("secrets-reveal")),
                    "{lang:?}"
                );
            }
        }
    }
}
