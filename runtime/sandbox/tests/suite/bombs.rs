//! Compile bombs are refused before anything is compiled, quickly; the
//! project's own guests fit the structural limits with room to spare; and
//! the child-process compiler turns a stuck, failing or crashing child into
//! a clear error.

use crate::bombs_kit as bombs;
use crate::support;
use panel1_sandbox::{
    census, ChildCompiler, CompileBudget, Compiler, ComponentLimits, Sandbox, SandboxConfig,
    SandboxError,
};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A sandbox whose "compiler" only leaves a mark: any component that gets
/// past the pre-check creates the marker file.
struct Guarded {
    sandbox: Sandbox,
    marker: PathBuf,
}

fn guarded() -> &'static Guarded {
    static GUARDED: OnceLock<Guarded> = OnceLock::new();
    GUARDED.get_or_init(|| {
        let marker =
            std::env::temp_dir().join(format!("panel1-bombs-compiled-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let child = ChildCompiler::new(
            "/bin/sh",
            vec![
                "-c".into(),
                format!("touch '{}'; exit 70", marker.display()).into(),
            ],
            CompileBudget::default(),
        );
        let sandbox = Sandbox::new(SandboxConfig {
            compiler: Compiler::ChildProcess(child),
            ..SandboxConfig::default()
        })
        .expect("sandbox");
        Guarded { sandbox, marker }
    })
}

/// The bomb is an invalid component whose message contains `expect`, it was
/// refused in under 2 s, and the compiler never ran.
fn refused(bytes: &[u8], expect: &str) -> Duration {
    let g = guarded();
    let started = Instant::now();
    let err = g.sandbox.load(bytes).expect_err("a bomb must not load");
    let elapsed = started.elapsed();
    assert!(matches!(err, SandboxError::InvalidComponent(_)), "{err}");
    assert!(
        err.to_string().contains(expect),
        "expected `{expect}` in: {err}"
    );
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}: {err}");
    assert!(!g.marker.exists(), "the compiler ran for: {err}");
    eprintln!("{} bytes refused in {elapsed:?}: {err}", bytes.len());
    elapsed
}

#[test]
fn a_million_empty_functions_are_refused_by_count() {
    let bomb = bombs::empty_functions(1_000_000);
    refused(
        &bomb,
        "functions (all core modules together) is over the limit of 50000",
    );
    // Just over the limit is refused as well; the limit is the limit.
    refused(&bombs::empty_functions(50_001), "over the limit of 50000");
}

#[test]
fn a_million_nested_blocks_are_refused() {
    // 3 MB of blocks in one function: its size trips first.
    refused(
        &bombs::nested_blocks(1_000_000),
        "a function body's size (bytes) is 3000002, over the limit of 2097152",
    );
    // A small function nested deeper than the limit trips the depth.
    refused(
        &bombs::nested_blocks(10_000),
        "control nesting depth in a function is 5001, over the limit of 5000",
    );
}

#[test]
fn huge_locals_are_refused() {
    refused(
        &bombs::many_locals(1_000_000),
        "a function's locals is 1000000, over the limit of 5000",
    );
}

#[test]
fn huge_data_segments_are_refused() {
    refused(
        &bombs::data(1, 40 << 20),
        "data segment bytes is over the limit of 33554432",
    );
}

#[test]
fn tables_and_memories_beyond_the_limits_are_refused() {
    refused(
        &bombs::table(10_000_000),
        "a table's initial size (elements) is 10000000, over the limit of 100000",
    );
    // 65 536 pages: a 4 GiB minimum, over the sandbox's 1 GiB per memory.
    refused(
        &bombs::data(65_536, 0),
        "declared minimum sizes add up to 4294967296 bytes, over the sandbox's memory limit of 1073741824",
    );
}

#[test]
fn many_modules_instances_and_types_are_refused() {
    refused(
        &bombs::modules(1_000),
        "core modules is over the limit of 64",
    );
    refused(
        &bombs::instances(10_000),
        "instances is over the limit of 256",
    );
    refused(
        &bombs::types(100_000),
        "type definitions is over the limit of 20000",
    );
}

#[test]
fn the_world_is_checked_before_compiling() {
    refused(
        &bombs::no_adapter_export(),
        "does not export the `panel1:provisioning/adapter` interface",
    );
    refused(
        &support::component("bad-import"),
        "evil:extras/raw-sockets@0.1.0",
    );
    // Malformed bytes are refused by the same pass.
    let mut truncated = support::component("reference");
    truncated.truncate(truncated.len() / 2);
    refused(&truncated, "malformed component");
}

#[test]
fn the_project_guests_fit_the_limits_twice_over() {
    let limits = ComponentLimits::default();
    for name in ["reference", "js-reference", "cpanel"] {
        let c = census(&support::component(name)).expect(name).census;
        let pairs = [
            ("functions", c.functions, limits.max_functions),
            ("code bytes", c.code_bytes, limits.max_code_bytes),
            (
                "largest function",
                c.largest_function_bytes,
                limits.max_function_bytes,
            ),
            ("locals", c.most_locals, limits.max_locals_per_function),
            ("control depth", c.deepest_control, limits.max_control_depth),
            ("data bytes", c.data_bytes, limits.max_data_bytes),
            ("table", c.largest_table_elements, limits.max_table_elements),
            ("element items", c.element_items, limits.max_element_items),
            ("globals", c.globals, limits.max_globals),
            ("modules", c.core_modules, limits.max_core_modules),
            (
                "components",
                c.nested_components,
                limits.max_nested_components,
            ),
            ("instances", c.instances, limits.max_instances),
            ("types", c.types, limits.max_types),
            (
                "imports/exports",
                c.imports_exports,
                limits.max_imports_exports,
            ),
            (
                "canonicals/aliases",
                c.canonicals_aliases,
                limits.max_canonicals_aliases,
            ),
        ];
        for (what, value, limit) in pairs {
            assert!(
                value * 2 <= limit,
                "{name}: {what} {value} is over half its limit {limit}"
            );
        }
        eprintln!("{name}: {c:?}");
    }
    // And the reference adapter still loads (compiled in process).
    let a = support::load("reference");
    assert_eq!(a.report.world_version, "0.1.0");
}

/// A child compiler running `script` under `budget`.
fn scripted(script: &str, budget: CompileBudget) -> Sandbox {
    let child = ChildCompiler::new("/bin/sh", vec!["-c".into(), script.into()], budget);
    Sandbox::new(SandboxConfig {
        compiler: Compiler::ChildProcess(child),
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

#[test]
fn a_child_past_its_time_budget_is_stopped() {
    let budget = CompileBudget {
        timeout: Duration::from_millis(300),
        ..CompileBudget::default()
    };
    let s = scripted("cat > /dev/null; sleep 30", budget);
    let started = Instant::now();
    let err = s.load(&bombs::empty_functions(1)).unwrap_err();
    assert!(
        err.to_string()
            .contains("compile budget: compiling took longer than 300 ms"),
        "{err}"
    );
    assert!(matches!(err, SandboxError::InvalidComponent(_)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_crashing_or_failing_child_is_a_clear_error() {
    let s = scripted("cat > /dev/null; kill -SEGV $$", CompileBudget::default());
    let err = s.load(&bombs::empty_functions(1)).unwrap_err();
    assert!(
        err.to_string()
            .contains("the compiler process crashed (signal 11)"),
        "{err}"
    );
    // Exit 3 is the compiler rejecting the component: its last line says why.
    let s = scripted(
        "cat > /dev/null; echo 'func 0 failed to validate' >&2; exit 3",
        CompileBudget::default(),
    );
    let err = s.load(&bombs::empty_functions(1)).unwrap_err();
    assert_eq!(
        err,
        SandboxError::InvalidComponent("func 0 failed to validate".into())
    );
    // A child that is not a compiler at all: an internal error, no panic.
    let s = scripted(
        "cat > /dev/null; echo not an artifact",
        CompileBudget::default(),
    );
    let err = s.load(&bombs::empty_functions(1)).unwrap_err();
    assert!(matches!(err, SandboxError::Internal(_)), "{err}");
    assert!(
        err.to_string().contains("loading the compiled artifact"),
        "{err}"
    );
}

#[test]
fn compiles_past_the_queue_are_refused_as_busy_at_once() {
    // One compile at a time, two may wait: of six at once, three are
    // refused without waiting (each compile takes its whole 1 s budget).
    let budget = CompileBudget {
        timeout: Duration::from_secs(1),
        max_parallel: 1,
        max_queued: 2,
        ..CompileBudget::default()
    };
    let s = std::sync::Arc::new(scripted("cat > /dev/null; sleep 30", budget));
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let err = s.load(&bombs::empty_functions(i + 1)).unwrap_err();
                (err, started.elapsed())
            })
        })
        .collect();
    let results: Vec<(SandboxError, Duration)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let busy: Vec<&(SandboxError, Duration)> = results
        .iter()
        .filter(|(e, _)| matches!(e, SandboxError::Busy(_)))
        .collect();
    assert_eq!(busy.len(), 3, "{results:?}");
    for (e, took) in busy {
        assert!(e.to_string().contains("the compiler is busy"), "{e}");
        assert!(*took < Duration::from_millis(500), "busy after {took:?}");
    }
    // The three that ran (one after another) met their budget.
    assert_eq!(
        results
            .iter()
            .filter(|(e, _)| e.to_string().contains("compile budget"))
            .count(),
        3,
        "{results:?}"
    );
}
