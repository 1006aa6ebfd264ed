//! `panel1 adapter check|run` as a user runs them: real binary, real
//! components, exit codes and JSON output.
use serde_json::Value;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn component(name: &str) -> String {
    let dir = std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `just adapters` first",
        path.display()
    );
    path.display().to_string()
}

fn panel1(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(args)
        .output()
        .expect("run panel1")
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

const PROVISION: &str = r#"{"service":{"service_id":"s1"}}"#;

/// A loopback listener counting connections (it never answers).
fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (port, n)
}

#[test]
fn check_reports_a_valid_component() {
    let o = panel1(&["adapter", "check", &component("reference")]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = json_out(&o);
    assert_eq!(r["world_version"], "0.1.0");
    assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
    assert!(r["size_bytes"].as_u64().unwrap() > 1000);
    assert!(r["capabilities"]
        .as_array()
        .unwrap()
        .contains(&Value::from("http")));
    assert!(r["adapter"]["operations"]
        .as_array()
        .unwrap()
        .contains(&Value::from("provision")));
}

#[test]
fn check_warns_about_secrets_reveal_and_shows_the_log_of_a_failing_info() {
    // The reference adapter only uses placeholders: no warning.
    let o = panel1(&["adapter", "check", &component("reference")]);
    assert_eq!(json_out(&o)["warnings"], serde_json::json!([]));
    // `launder` imports secrets-reveal: a warning, in the report and on stderr.
    let o = panel1(&["adapter", "check", &component("launder")]);
    assert_eq!(o.status.code(), Some(0));
    let warnings = json_out(&o)["warnings"].to_string();
    assert!(warnings.contains("secrets-reveal"), "{warnings}");
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("warning: the component imports `secrets-reveal`"));
    // `info` logs, then panics: the failure comes with what it logged.
    let o = panel1(&["adapter", "check", &component("info-trap")]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("captured log of `info`"), "{err}");
    assert!(err.contains("building the operation list"), "{err}");
    assert!(
        err.contains("index out of bounds"),
        "the panic message is in the log: {err}"
    );
    assert!(err.contains("`info` failed"), "{err}");
}

#[test]
fn check_rejects_an_unknown_import_by_name() {
    let o = panel1(&["adapter", "check", &component("bad-import")]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("evil:extras/raw-sockets@0.1.0"));
}

#[test]
fn check_rejects_garbage() {
    let dir = std::env::temp_dir().join(format!("panel1-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("garbage.wasm");
    std::fs::write(&f, b"MZ not wasm at all").unwrap();
    let o = panel1(&["adapter", "check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a WebAssembly binary"));
}

#[test]
fn limit_and_trap_fixtures_exit_2_with_their_kind() {
    let cases: [(&str, &[&str], &str); 6] = [
        ("spin-loop", &["--fuel", "20000000"], "out-of-fuel"),
        (
            "spin-loop",
            &["--fuel", "100000000000000", "--timeout-ms", "300"],
            "deadline",
        ),
        ("mem-bomb", &["--memory-mb", "32"], "memory-limit"),
        ("deep-recursion", &[], "guest-trap"),
        ("mid-trap", &[], "guest-trap"),
        ("huge-output", &[], "invalid-output"),
    ];
    for (name, extra, kind) in cases {
        let file = component(name);
        let mut args = vec![
            "adapter",
            "run",
            file.as_str(),
            "--op",
            "provision",
            "--input",
            PROVISION,
        ];
        args.extend_from_slice(extra);
        let started = std::time::Instant::now();
        let o = panel1(&args);
        assert!(started.elapsed().as_secs() < 20, "{name} took too long");
        assert_eq!(
            o.status.code(),
            Some(2),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r = json_out(&o);
        assert_eq!(r["outcome"]["kind"], kind, "{name}");
        assert_eq!(r["metrics"]["trap_kind"], kind, "{name}");
    }
}

#[test]
fn ssrf_attempts_exit_1_and_nothing_reaches_the_listener() {
    let (port, hits) = counting_listener();
    let file = component("ssrf");
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://10.0.0.1/".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let input = format!(r#"{{"service":{{"service_id":"s1","params":{{"url":"{url}"}}}}}}"#);
        let o = panel1(&[
            "adapter",
            "run",
            &file,
            "--op",
            "provision",
            "--input",
            &input,
            "--allow",
            "https://api.example.com",
        ]);
        assert_eq!(o.status.code(), Some(1), "{url}");
        let r = json_out(&o);
        assert!(r["http"][0]["denied"].is_string(), "{url}: {r}");
        assert_eq!(r["metrics"]["http_denied"], 1);
    }
    // A name the policy allows, resolving to loopback, is refused after DNS.
    let base = format!("http://localhost:{port}");
    let input = format!(r#"{{"service":{{"service_id":"s1","params":{{"url":"{base}/"}}}}}}"#);
    let o = panel1(&[
        "adapter",
        "run",
        &file,
        "--op",
        "provision",
        "--input",
        &input,
        "--allow",
        &base,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let denied = json_out(&o)["http"][0]["denied"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(denied.contains("loopback"), "{denied}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[test]
fn exfiltration_attempts_are_refused() {
    let (port, hits) = counting_listener();
    let file = component("exfil");
    let thief = format!("http://127.0.0.1:{port}");
    let input = format!(r#"{{"service":{{"service_id":"s1","params":{{"url":"{thief}/x"}}}}}}"#);
    let o = panel1(&[
        "adapter",
        "run",
        &file,
        "--op",
        "provision",
        "--input",
        &input,
        "--allow",
        &thief,
        "--secret",
        "api-token=hunter2-very-secret@panel.example.com",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("is not bound to 127.0.0.1"), "{out}");
    assert!(!out.contains("hunter2-very-secret"));
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let o = panel1(&[
        "adapter",
        "run",
        &file,
        "--op",
        "status",
        "--input",
        PROVISION,
        "--secret",
        "api-token=hunter2-very-secret@panel.example.com",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("reveal refused") && !out.contains("hunter2-very-secret"),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_3() {
    let file = component("reference");
    assert_eq!(
        panel1(&["adapter", "run", &file, "--op", "drop-tables"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        panel1(&[
            "adapter",
            "run",
            &file,
            "--op",
            "provision",
            "--input",
            "{nope"
        ])
        .status
        .code(),
        Some(3)
    );
    assert_eq!(
        panel1(&[
            "adapter",
            "run",
            &file,
            "--op",
            "provision",
            "--input",
            "{}"
        ])
        .status
        .code(),
        Some(3)
    );
    // A misshapen input names the field's path and where the shapes are.
    let o = panel1(&[
        "adapter",
        "run",
        &file,
        "--op",
        "provision",
        "--input",
        r#"{"service":{"service_id":"s1","params":{"plan":3}}}"#,
    ]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("service.params.plan") && err.contains("panel1 adapter schema"),
        "{err}"
    );
    let schema = panel1(&["adapter", "schema"]);
    assert!(schema.status.success());
    let doc: Value = serde_json::from_slice(&schema.stdout).expect("schema JSON");
    assert!(
        doc["$defs"]["provision.input"].is_object()
            && doc["$defs"]["import-service.output"].is_object()
    );
    assert_eq!(
        panel1(&["adapter", "run", &file, "--op", "info", "--allow", "ftp://x"])
            .status
            .code(),
        Some(3)
    );
    let help = panel1(&["adapter", "run", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Exit codes") && text.contains("3  invalid component"),
        "{text}"
    );
}

#[test]
fn info_runs_and_reports_metrics() {
    let o = panel1(&["adapter", "run", &component("reference"), "--op", "info"]);
    assert_eq!(o.status.code(), Some(0));
    let r = json_out(&o);
    assert_eq!(r["outcome"]["status"], "ok");
    assert_eq!(r["outcome"]["result"]["name"], "reference");
    assert!(r["metrics"]["fuel_consumed"].as_u64().unwrap() > 0);
    assert!(r["metrics"]["wall_us"].as_u64().unwrap() > 0);
}
