//! `panel1 adapter new` as an author uses it: the real binary writes a
//! project into a temporary directory outside the repository, the project's
//! own build script builds it (installing its dependencies from crates.io,
//! npm or PyPI), then `adapter check` and `adapter conformance --provider
//! whm` judge the component. Every conformance check must pass. Needs cargo
//! with the wasm32-wasip2 target (adapters/build.sh adds it), node/npm,
//! python3 and, for C, Debian's clang and lld (the C build script installs
//! its pinned wit-bindgen and wasm-tools into ~/.cache/panel1/tools once;
//! .ci/run does that up front): a missing toolchain fails the test, it is
//! never skipped.
#[path = "support/outside.rs"]
mod outside;

use outside::{assert_standalone, temp, text};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The compile budget the CLI is given here: this test judges the projects,
/// not the budget (tests/bombs.rs and upload_bomb.rs trip that), and a
/// 14-40 MB JS or Python component compiled while the other languages build
/// on the same two cores can outlast the default 60 s.
const COMPILE_TIMEOUT_MS: &str = "600000";

fn panel1(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(args)
        .env("PANEL1_COMPILE_TIMEOUT_MS", COMPILE_TIMEOUT_MS)
        .output()
        .expect("run panel1")
}

/// Held while a test compiles and runs its component (see `scaffold_to_green`).
static COMPILING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn build(project: &Path) -> Output {
    Command::new(project.join("build.sh"))
        .current_dir(project.parent().unwrap())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .expect("run build.sh")
}

/// `panel1 adapter test test/scenario.toml --json` in the project.
fn adapter_test(project: &Path) -> Value {
    adapter_test_with(project, &[])
}

fn adapter_test_with(project: &Path, more: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(["adapter", "test", "test/scenario.toml", "--json"])
        .args(more)
        .env("PANEL1_COMPILE_TIMEOUT_MS", COMPILE_TIMEOUT_MS)
        .current_dir(project)
        .output()
        .expect("run panel1");
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("adapter test JSON ({e}): {}", text(&o)))
}

/// The names of the steps `adapter test --json` reports as failed.
fn failed_steps(doc: &Value) -> Vec<&str> {
    doc["scenarios"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["passed"] == false)
        .filter_map(|s| s["name"].as_str())
        .collect()
}

/// The edit loop of a JS, TS or Python project: `./build.sh --dev` builds
/// the dev shell once and bundles the source; the shell runs the scenario
/// green; after an edit to `source` (`edit` = what, into what), the next
/// `--dev` build reuses the shell and the edited source is what runs:
/// terminating a missing account now fails, and only that step.
fn dev_loop(project: &Path, source: &str, script: &str, edit: (&str, &str)) {
    let dev = |first: bool| {
        let o = Command::new(project.join("build.sh"))
            .arg("--dev")
            .current_dir(project)
            .output()
            .expect("run build.sh --dev");
        assert!(o.status.success(), "build.sh --dev: {}", text(&o));
        assert_eq!(
            text(&o).contains("building the dev shell"),
            first,
            "the shell is built once: {}",
            text(&o)
        );
    };
    let run = || {
        adapter_test_with(
            project,
            &["--component", ".dev/shell.wasm", "--script", script],
        )
    };
    dev(true);
    let doc = run();
    assert_eq!(doc["summary"]["passed"], 7, "dev shell: {doc:#}");
    let path = project.join(source);
    let good = std::fs::read_to_string(&path).unwrap();
    let bad = good.replacen(edit.0, edit.1, 1);
    assert_ne!(good, bad, "{source} changed: update this test");
    std::fs::write(&path, bad).unwrap();
    let started = Instant::now();
    dev(false);
    let doc = run();
    eprintln!(
        "{source}: edit -> scenario result on the dev shell in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(doc["summary"]["failed"], 1, "after the edit: {doc:#}");
    assert_eq!(
        failed_steps(&doc),
        ["terminating an account WHM does not have succeeds"]
    );
    // Without its script the shell says what is missing.
    let o = panel1(&[
        "adapter",
        "check",
        project.join(".dev/shell.wasm").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no script"), "{}", text(&o));
}

/// Scaffold, build, check and run the suite; returns the seconds from
/// `adapter new` to the green conformance report. `more` then looks at the
/// built project and the `adapter check` report.
fn scaffold_to_green(lang: &str, more: impl FnOnce(&Path, &Value)) -> f64 {
    let root = temp(&format!("scaffold-{lang}"));
    let name = format!("starter-{lang}");
    let project = root.join(&name);
    let started = Instant::now();
    let o = panel1(&[
        "adapter",
        "new",
        &name,
        "--lang",
        lang,
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "adapter new: {}", text(&o));
    assert!(project.join("README.md").is_file() && project.join(".gitignore").is_file());
    let world = std::fs::read_to_string(project.join("wit/world.wit")).unwrap();
    assert!(
        world
            .lines()
            .filter(|l| l.trim_start().starts_with("import"))
            .all(|l| !l.contains("secrets-reveal")),
        "{world}"
    );
    assert_standalone(&project, &["target", "node_modules", ".venv"]);

    // The project's own one-command build, dependencies included; in its own
    // cargo target directory, not this test's.
    let build = build(&project);
    assert!(build.status.success(), "{lang} build.sh: {}", text(&build));
    let wasm = project.join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    let wasm = wasm.to_str().unwrap();

    // One language at a time from here: `check` and `conformance` compile
    // the component under the CLI's compile budget, and the JS, TS and
    // Python components (14-40 MB) compiled at once on two shared cores
    // could outlast it.
    let _compiling = COMPILING.lock().unwrap_or_else(|p| p.into_inner());
    let check = panel1(&["adapter", "check", wasm]);
    assert!(check.status.success(), "adapter check: {}", text(&check));
    let report: Value = serde_json::from_slice(&check.stdout).expect("check JSON");
    let imports: Vec<&str> = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        imports.iter().all(|i| !i.contains("secrets-reveal")),
        "{lang} imports secrets-reveal: {imports:?}"
    );
    assert!(imports
        .iter()
        .any(|i| i.starts_with("wasi:http/outgoing-handler")));
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert_eq!(report["adapter"]["name"], name.as_str());

    let conf = panel1(&[
        "adapter",
        "conformance",
        wasm,
        "--provider",
        "whm",
        "--json",
    ]);
    let doc: Value = serde_json::from_slice(&conf.stdout)
        .unwrap_or_else(|e| panic!("conformance JSON ({e}): {}", text(&conf)));
    let checks = doc["components"][0]["checks"]
        .as_array()
        .expect("checks")
        .clone();
    let failed: Vec<&Value> = checks.iter().filter(|c| c["result"] != "pass").collect();
    assert!(failed.is_empty(), "{lang}: checks not passed: {failed:#?}");
    assert_eq!(
        checks.len(),
        14,
        "{lang}: every check reported: {checks:#?}"
    );
    assert!(conf.status.success(), "conformance: {}", text(&conf));

    // The project's own offline test: its scenario over recorded WHM
    // exchanges, every step passing.
    let doc = adapter_test(&project);
    assert_eq!(doc["summary"]["failed"], 0, "{lang}: {doc:#}");
    assert_eq!(doc["summary"]["passed"], 7, "{lang}: {doc:#}");
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{lang}: adapter new -> green conformance in {secs:.1} s");
    more(&project, &report);
    let _ = std::fs::remove_dir_all(&root);
    secs
}

#[test]
fn a_rust_project_builds_and_passes_conformance() {
    let secs = scaffold_to_green("rust", |project, _| {
        // The scenario is a real check: a provider answering otherwise than
        // recorded (here createacct refused) fails exactly that step.
        let fixture = project.join("test/provision.fixture.json");
        let good = std::fs::read_to_string(&fixture).unwrap();
        let bad = good.replacen(r#"result\":1"#, r#"result\":0"#, 1);
        assert_ne!(good, bad, "the provision fixture changed: update this test");
        std::fs::write(&fixture, bad).unwrap();
        let doc = adapter_test(project);
        assert_eq!(doc["summary"]["failed"], 1, "{doc:#}");
        assert_eq!(failed_steps(&doc), ["provision looks first, then creates"]);
    });
    // The issue's goal is 2 minutes on a machine to itself; builds here
    // share two cores, so only a runaway fails.
    assert!(secs < Duration::from_secs(600).as_secs_f64());
}

#[test]
fn a_js_project_builds_and_passes_conformance() {
    let secs = scaffold_to_green("js", |project, _| {
        dev_loop(
            project,
            "adapter.js",
            ".dev/adapter.js",
            ("r.ok || /does not exist/i", "r.ok || /no such account/i"),
        );
    });
    assert!(secs < Duration::from_secs(900).as_secs_f64());
}

#[test]
fn refusals_exit_2_and_write_nothing() {
    let root = temp("refusals");
    let target = root.join("p");
    let t = target.to_str().unwrap();
    for (args, says) in [
        (
            vec!["adapter", "new", "Bad-Name", "--lang", "rust", "--dir", t],
            "not a valid adapter name",
        ),
        (
            vec!["adapter", "new", "ok", "--lang", "cobol", "--dir", t],
            "cobol",
        ),
    ] {
        let o = panel1(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{}",
            text(&o)
        );
        assert!(!target.exists(), "{args:?} wrote {}", target.display());
    }
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("mine.txt"), "keep").unwrap();
    let o = panel1(&["adapter", "new", "ok", "--lang", "js", "--dir", t]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an empty directory"));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        1,
        "a staging dir was left"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_python_project_builds_and_passes_conformance() {
    let secs = scaffold_to_green("python", |project, _| {
        dev_loop(
            project,
            "app.py",
            ".dev/adapter.json",
            (
                "ok or \"does not exist\" in",
                "ok or \"no such account\" in",
            ),
        );
    });
    assert!(secs < Duration::from_secs(900).as_secs_f64());
}

#[test]
fn a_ts_project_builds_and_passes_conformance_and_a_type_error_fails_its_build() {
    let secs = scaffold_to_green("ts", |project, _| {
        dev_loop(
            project,
            "adapter.ts",
            ".dev/adapter.js",
            ("r.ok || /does not exist/i", "r.ok || /no such account/i"),
        );
        // The types come from the WIT: a field the WIT does not have (here a
        // typo in connection-info's `server-version`) must stop the build
        // before componentize-js, leaving no component behind.
        assert!(project
            .join("types/interfaces/panel1-provisioning-types.d.ts")
            .is_file());
        let src = project.join("adapter.ts");
        let good = std::fs::read_to_string(&src).unwrap();
        let bad = good.replacen("{ serverVersion:", "{ serverVersio:", 1);
        assert_ne!(good, bad, "adapter.ts changed: update this test");
        std::fs::write(&src, bad).unwrap();
        let wasm = project.join("starter-ts.wasm");
        std::fs::remove_file(&wasm).unwrap();
        let o = build(project);
        assert!(!o.status.success(), "a type error built: {}", text(&o));
        let out = text(&o);
        assert!(
            out.contains("serverVersio") && out.contains("tsc found errors"),
            "{out}"
        );
        assert!(
            !wasm.exists(),
            "a component was written despite the type error"
        );
    });
    assert!(secs < Duration::from_secs(900).as_secs_f64());
}

#[test]
fn a_c_project_builds_and_passes_conformance() {
    let secs = scaffold_to_green("c", |project, report| {
        // No libc and no engine inside: only the world's imports (no
        // wasi:cli, which a libc would pull in) and a small component.
        let imports = report["imports"].as_array().unwrap();
        assert!(
            imports
                .iter()
                .filter_map(Value::as_str)
                .all(|i| !i.starts_with("wasi:cli")),
            "{imports:?}"
        );
        let size = std::fs::metadata(project.join("starter-c.wasm"))
            .unwrap()
            .len();
        assert!(size < 300_000, "{size} bytes");
    });
    // The issue's goal is 2 minutes; as for Rust, only a runaway fails here
    // (the tools are installed once, by .ci/run or the first build).
    assert!(secs < Duration::from_secs(600).as_secs_f64());
}
