//! The SDK packages as an author gets them: `sdk/package.sh` (with this
//! build's `panel1`) writes the .crate, the npm tarball, the wheel and the C
//! tarball into a temporary directory outside the repository; then each is
//! installed into a fresh project there and shown to work:
//!   Rust    an adapter depending on the unpacked crate builds for
//!           wasm32-wasip2, `adapter check` accepts it and it imports no
//!           `secrets-reveal`; `secrets::reveal` needs the crate's feature,
//!           and with it the component imports `secrets-reveal`;
//!   npm     `npm install` of the tarball; `tsc` type-checks a file using
//!           it and rejects a wrong use;
//!   Python  `pip install` of the wheel into a venv installs panel1_http.py;
//!   C       the tarball's helpers and world build the C starter with the
//!           scaffold's build.sh, and `adapter check` accepts it.
//! Needs what the scaffold test needs (cargo with wasm32-wasip2, node/npm,
//! python3 with venv, clang/lld and the C tools that .ci/run installs): a
//! missing tool fails the test, it is never skipped.
#[path = "support/outside.rs"]
mod outside;

use outside::{assert_standalone, repo, temp, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// Run `cmd`, failing the test with `what` and its output if it fails (or
/// cannot start: a missing tool).
fn ok(what: &str, cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(o.status.success(), "{what}: {}", text(&o));
    o
}

fn panel1(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(args)
        .output()
        .expect("run panel1")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

fn untar(archive: &Path, into: &Path) {
    ok(
        "untar",
        Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(into),
    );
}

/// `adapter check` of `wasm`: its report, and its imports.
fn check(wasm: &Path) -> (Value, Vec<String>) {
    let o = panel1(&["adapter", "check", wasm.to_str().unwrap()]);
    assert!(o.status.success(), "adapter check: {}", text(&o));
    let report: Value = serde_json::from_slice(&o.stdout).expect("check JSON");
    let imports = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    (report, imports)
}

fn reveals(imports: &[String]) -> bool {
    imports.iter().any(|i| i.contains("secrets-reveal"))
}

/// The four packages in `out`; returns their version.
fn package(out: &Path) -> String {
    let o = ok(
        "sdk/package.sh",
        Command::new("bash")
            .arg(repo().join("sdk/package.sh"))
            .arg(out)
            .env("PANEL1_BIN", env!("CARGO_BIN_EXE_panel1")),
    );
    let names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}\n{}", text(&o));
    let crate_name = names
        .iter()
        .find(|n| n.ends_with(".crate"))
        .expect("a .crate");
    let ver = crate_name
        .strip_prefix("panel1-sdk-")
        .and_then(|n| n.strip_suffix(".crate"))
        .unwrap()
        .to_string();
    for expected in [
        format!("panel1-sdk-{ver}.tgz"),
        format!("panel1_sdk-{ver}-py3-none-any.whl"),
        format!("panel1-sdk-c-{ver}.tar.gz"),
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    ver
}

/// Cargo's output for the Rust checks, kept across runs (outside the
/// checkout) so the SDK's dependencies compile once.
fn cargo_target() -> PathBuf {
    std::env::temp_dir().join("panel1-sdk-packages-cargo-target")
}

fn cargo_build(project: &Path) -> Output {
    Command::new("cargo")
        .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
        .current_dir(project)
        .env("CARGO_TARGET_DIR", cargo_target())
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .expect("run cargo (is Rust installed?)")
}

fn built(krate: &str) -> PathBuf {
    cargo_target().join(format!("wasm32-wasip2/release/{krate}.wasm"))
}

const REVEAL_PROBE: &str = r#"use panel1_sdk::*;

struct Probe;
impl Adapter for Probe {
    fn info() -> AdapterInfo {
        AdapterInfo::named("reveal-probe", "0.1.0")
    }
    fn test_connection(_req: TestRequest) -> Result<ConnectionInfo, AdapterError> {
        let token = secrets::reveal("token").map_err(|_| permanent("no token"))?;
        Err(permanent(format!("{} bytes", token.len())))
    }
}
export_adapter!(Probe);
"#;

/// The Rust starter's release profile, so both projects share the compiled
/// dependencies in `cargo_target()`.
const PROFILE: &str =
    "[profile.release]\nopt-level = \"s\"\nlto = true\nstrip = true\ncodegen-units = 1\n";

fn probe_project(dir: &Path, sdk: &Path, features: &str) {
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"reveal-probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\npanel1-sdk = {{ path = \"{}\"{features} }}\n\n{PROFILE}\n[workspace]\n",
            sdk.display()
        ),
    );
    write(&dir.join("src/lib.rs"), REVEAL_PROBE);
}

fn rust(root: &Path, out: &Path, ver: &str) {
    untar(&out.join(format!("panel1-sdk-{ver}.crate")), root);
    let sdk = root.join(format!("panel1-sdk-{ver}"));
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "wit/world.wit",
        "wit/deps/panel1-provisioning/provisioning.wit",
        "wit/deps/http/http.wit",
    ] {
        assert!(sdk.join(f).is_file(), "the crate lacks {f}");
    }
    assert_standalone(&sdk, &[]);

    // The Rust starter of `adapter new`, on the packaged crate instead of
    // its vendored copy (and without the project's own WIT).
    let project = root.join("sdk-rust");
    let o = panel1(&[
        "adapter",
        "new",
        "sdk-rust",
        "--lang",
        "rust",
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "adapter new: {}", text(&o));
    std::fs::remove_dir_all(project.join("panel1-sdk")).unwrap();
    std::fs::remove_dir_all(project.join("wit")).unwrap();
    let manifest = read(&project.join("Cargo.toml"));
    let path_dep = format!("panel1-sdk = {{ path = \"{}\" }}", sdk.display());
    let patched = manifest.replace("panel1-sdk = { path = \"panel1-sdk\" }", &path_dep);
    assert_ne!(manifest, patched, "the Rust scaffold's Cargo.toml changed");
    write(&project.join("Cargo.toml"), &patched);
    let o = cargo_build(&project);
    assert!(o.status.success(), "the starter on the crate: {}", text(&o));
    let (report, imports) = check(&built("sdk_rust"));
    assert_eq!(report["adapter"]["name"], "sdk-rust");
    assert!(!reveals(&imports), "{imports:?}");
    assert!(imports
        .iter()
        .any(|i| i.starts_with("wasi:http/outgoing-handler")));
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );

    // `secrets::reveal` is not there without the feature...
    let probe = root.join("reveal-probe");
    probe_project(&probe, &sdk, "");
    let o = cargo_build(&probe);
    assert!(!o.status.success(), "reveal built without the feature");
    assert!(text(&o).contains("reveal"), "{}", text(&o));
    // ...and with it the component imports `secrets-reveal`.
    probe_project(&probe, &sdk, ", features = [\"secrets-reveal\"]");
    let o = cargo_build(&probe);
    assert!(o.status.success(), "reveal with the feature: {}", text(&o));
    let (_, imports) = check(&built("reveal_probe"));
    assert!(reveals(&imports), "{imports:?}");
}

const GOOD_TS: &str = r#"import { adapterExports, invalidInput, isAdapterError, permanent, placeholder, request, statusError, transportError, Deadline, TAGS } from '@panel1/sdk';
import type { Adapter, AdapterError, Response } from '@panel1/sdk';

const e: AdapterError = invalidInput('bad');
export const known: boolean = isAdapterError(e) && TAGS.has(e.tag);
export type DeadlineType = Deadline;

export function version(host: string): number {
  try {
    const r: Response = request('GET', `https://${host}/version`, {
      headers: { authorization: placeholder('token') },
      timeoutMs: 5000,
    });
    if (!r.ok) throw statusError(r, 'version');
    return r.status;
  } catch (err) {
    throw transportError('version', err);
  }
}

export const adapter: Adapter = adapterExports({
  info: (): never => {
    throw permanent('unused');
  },
});
"#;

fn tsconfig(file: &str) -> String {
    format!(
        r#"{{
  "compilerOptions": {{
    "target": "es2022", "module": "esnext", "moduleResolution": "bundler",
    "lib": ["es2022", "esnext.disposable"], "types": [], "strict": true, "noEmit": true
  }},
  "files": ["{file}"]
}}
"#
    )
}

fn npm(root: &Path, out: &Path, ver: &str) {
    let project = root.join("npm");
    write(
        &project.join("package.json"),
        r#"{ "name": "sdk-npm-probe", "version": "0.0.0", "private": true, "type": "module" }"#,
    );
    // The TypeScript the scaffold pins.
    let ts_pkg: Value = serde_json::from_str(&read(
        &repo().join("runtime/panel1/templates/scaffold/ts/package.json"),
    ))
    .unwrap();
    let typescript = ts_pkg["devDependencies"]["typescript"].as_str().unwrap();
    ok(
        "npm install",
        Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--prefer-offline",
                "--loglevel=error",
            ])
            .arg(out.join(format!("panel1-sdk-{ver}.tgz")))
            .arg(format!("typescript@{typescript}"))
            .current_dir(&project),
    );
    let installed = project.join("node_modules/@panel1/sdk");
    for f in [
        "panel1.d.ts",
        "types/adapter.d.ts",
        "wit/world.wit",
        "wit/deps/panel1-provisioning/provisioning.wit",
        "README.md",
    ] {
        assert!(installed.join(f).is_file(), "the npm package lacks {f}");
    }
    // The runtime code is the JS scaffold's helper, unchanged.
    assert_eq!(
        read(&installed.join("panel1.js")),
        read(&repo().join("runtime/panel1/templates/scaffold/js/panel1.js"))
    );
    assert_standalone(&installed, &[]);

    write(&project.join("good.ts"), GOOD_TS);
    write(&project.join("tsconfig.json"), &tsconfig("good.ts"));
    let tsc = project.join("node_modules/.bin/tsc");
    ok(
        "tsc on a good use",
        Command::new(&tsc).current_dir(&project),
    );
    // A wrong option of a helper, and a variant the WIT does not have (the
    // types come from types/, not `any`).
    let bad = format!(
        "{GOOD_TS}\nexport const wrong = request('GET', 'https://x/', {{ timeoutMs: 'soon' }});\nexport const nope: AdapterError = {{ tag: 'no-such-case', val: 'x' }};\n"
    );
    write(&project.join("bad.ts"), &bad);
    write(&project.join("tsconfig.bad.json"), &tsconfig("bad.ts"));
    let o = Command::new(&tsc)
        .args(["-p", "tsconfig.bad.json"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(!o.status.success(), "a wrong use type-checked");
    let says = text(&o);
    assert_eq!(says.matches("bad.ts(").count(), 2, "{says}");
    assert!(says.contains("no-such-case"), "{says}");
}

fn python(root: &Path, out: &Path, ver: &str) {
    let venv = root.join("venv");
    ok(
        "python3 -m venv",
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
    );
    let py = venv.join("bin/python");
    ok(
        "pip install the wheel",
        Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "--no-index"])
            .arg(out.join(format!("panel1_sdk-{ver}-py3-none-any.whl"))),
    );
    let o = ok(
        "pip show",
        Command::new(&py).args(["-m", "pip", "show", "panel1_sdk"]),
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("Version: {ver}")),
        "{}",
        text(&o)
    );
    // Found and compiled, not imported: it imports componentize-py's
    // bindings, which exist only inside a component.
    let o = ok(
        "find and compile panel1_http",
        Command::new(&py).args([
            "-c",
            "import importlib.util, py_compile\nspec = importlib.util.find_spec('panel1_http')\npy_compile.compile(spec.origin, doraise=True)\nprint(spec.origin)",
        ]),
    );
    let origin = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(origin.starts_with(&venv), "{}", origin.display());
    assert_eq!(
        read(&origin),
        read(&repo().join("runtime/panel1/templates/scaffold/python/panel1_http.py"))
    );
    let o = Command::new(&py)
        .args(["-c", "import panel1_http"])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o).contains("componentize_py_types"),
        "{}",
        text(&o)
    );
}

fn c(root: &Path, out: &Path, ver: &str) {
    untar(&out.join(format!("panel1-sdk-c-{ver}.tar.gz")), root);
    let sdk = root.join(format!("panel1-sdk-c-{ver}"));
    assert_standalone(&sdk, &[]);
    // The C starter of `adapter new` with its helpers and world replaced by
    // the package's; its build.sh is the scaffold's build.
    let project = root.join("sdk-c");
    let o = panel1(&[
        "adapter",
        "new",
        "sdk-c",
        "--lang",
        "c",
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "adapter new: {}", text(&o));
    for f in ["panel1.h", "panel1.c", "json.c"] {
        std::fs::remove_file(project.join(f)).unwrap();
    }
    std::fs::remove_dir_all(project.join("libc")).unwrap();
    std::fs::remove_dir_all(project.join("wit")).unwrap();
    ok(
        "copy the C package",
        Command::new("cp")
            .args(["-R", "panel1.h", "panel1.c", "json.c", "libc", "wit"])
            .arg(&project)
            .current_dir(&sdk),
    );
    ok(
        "build.sh with the C package",
        Command::new(project.join("build.sh")).current_dir(root),
    );
    let (report, imports) = check(&project.join("sdk-c.wasm"));
    assert_eq!(report["adapter"]["name"], "sdk-c");
    assert!(!reveals(&imports), "{imports:?}");
    assert!(
        imports.iter().all(|i| !i.starts_with("wasi:cli")),
        "{imports:?}"
    );
}

/// One package's install-and-use check: (temp root, packages dir, version).
type Check = fn(&Path, &Path, &str);

#[test]
fn sdk_packages_install_and_work_without_a_checkout() {
    let root = temp("sdk-packages");
    let out = root.join("packages");
    let started = Instant::now();
    let ver = package(&out);
    let mut lap = Instant::now();
    eprintln!("packaged {ver} in {:.1} s", started.elapsed().as_secs_f64());
    let checks: [(&str, Check); 4] = [("rust", rust), ("npm", npm), ("python", python), ("c", c)];
    for (name, f) in checks {
        f(&root, &out, &ver);
        eprintln!(
            "{name}: installed and checked in {:.1} s",
            lap.elapsed().as_secs_f64()
        );
        lap = Instant::now();
    }
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&root);
}
