//! `panel1 adapter conformance` as a user runs it: the real binary, the
//! real components from `adapters/dist`, each production adapter against
//! its provider's simulator. The rows themselves are asserted, not only the
//! exit codes.
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Every check, by id, in the order the suite reports them.
const CHECKS: [&str; 14] = [
    "info",
    "test-connection",
    "provision-idempotent",
    "lost-answer",
    "suspend-twice",
    "unsuspend-twice",
    "terminate-twice",
    "terminate-unknown",
    "wrong-credential",
    "server-error",
    "rate-limited",
    "egress-denied",
    "no-secret-in-output",
    "deadline",
];

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
        .args(["adapter", "conformance"])
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

/// `(id, result, detail)` of each row of a component's report.
fn rows(component: &Value) -> Vec<(String, String, String)> {
    component["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["result"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row<'a>(rows: &'a [(String, String, String)], id: &str) -> &'a (String, String, String) {
    rows.iter()
        .find(|r| r.0 == id)
        .unwrap_or_else(|| panic!("no row `{id}` in {rows:#?}"))
}

/// A production adapter against its simulator: every check listed, in
/// order, and every one passes.
fn production(
    name: &str,
    extra: &[&str],
    provider: &str,
    from: &str,
) -> Vec<(String, String, String)> {
    let file = component(name);
    let mut args = vec![file.as_str(), "--json"];
    args.extend_from_slice(extra);
    let o = panel1(&args);
    let report = json_out(&o);
    let c = &report["components"][0];
    let rows = rows(c);
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, CHECKS, "every check is listed, in order");
    let failed: Vec<_> = rows.iter().filter(|r| r.1 != "pass").collect();
    assert!(
        failed.is_empty(),
        "{name}: checks not passed: {failed:#?}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(c["adapter"]["name"], name);
    assert_eq!(c["provider"], provider);
    assert_eq!(c["provider_from"], from);
    assert_eq!(
        report["summary"]["passed"].as_u64(),
        Some(CHECKS.len() as u64)
    );
    assert_eq!(report["exit_code"], 0);
    rows
}

/// Details every production adapter's rows share.
fn common_evidence(rows: &[(String, String, String)]) {
    assert!(row(rows, "info").2.contains("profile's config validates"));
    assert!(row(rows, "provision-idempotent")
        .2
        .contains("1 new account"));
    assert!(row(rows, "lost-answer")
        .2
        .contains("attempt 1 ended transient"));
    assert!(row(rows, "wrong-credential").2.contains("auth-failed"));
    assert!(row(rows, "server-error").2.starts_with("transient"));
    let rate = &row(rows, "rate-limited").2;
    assert!(
        rate.starts_with("transient") && rate.contains("retry after 7000 ms"),
        "{rate}"
    );
    assert!(row(rows, "egress-denied").2.contains("permanent"));
    assert!(row(rows, "deadline").2.contains("transient"));
    assert!(row(rows, "no-secret-in-output").2.contains("none found"));
}

#[test]
fn cpanel_meets_the_contract_against_whm() {
    // The profile named explicitly (also accepted: `cpanel`).
    let rows = production("cpanel", &["--provider", "whm"], "whm", "--provider");
    common_evidence(&rows);
    assert!(row(&rows, "lost-answer").2.contains("createacct"));
}

#[test]
fn plesk_meets_the_contract() {
    let rows = production("plesk", &[], "plesk", "info().name");
    common_evidence(&rows);
    assert!(row(&rows, "lost-answer").2.contains("POST /domains"));
}

#[test]
fn docker_meets_the_contract_with_a_client_identity() {
    let rows = production("docker", &[], "docker", "info().name");
    common_evidence(&rows);
    assert!(row(&rows, "wrong-credential")
        .2
        .contains("no `docker-client-identity` bound"));
}

#[test]
fn kubernetes_meets_the_contract() {
    let rows = production("kubernetes", &[], "kubernetes", "info().name");
    common_evidence(&rows);
    assert!(row(&rows, "wrong-credential")
        .2
        .contains("`kubernetes-token` bound with a wrong value"));
}

#[test]
fn an_adapter_without_a_profile_gets_check_one_only() {
    let o = panel1(&[&component("reference")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    // The table: check 1 passes, every provider check says why it skipped.
    let lines: Vec<&str> = out.lines().collect();
    let line = |id: &str| {
        *lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(id))
            .unwrap_or_else(|| panic!("no row `{id}`:\n{out}"))
    };
    assert_eq!(
        line("info").split_whitespace().nth(2),
        Some("pass"),
        "{out}"
    );
    for id in &CHECKS[1..] {
        let l = line(id);
        assert_eq!(l.split_whitespace().nth(2), Some("skipped"), "{l}");
        assert!(l.contains("no provider profile"), "{l}");
    }
    assert!(
        out.contains("summary: 1 passed, 0 failed, 13 skipped"),
        "{out}"
    );
    assert!(out.contains("choose one with --provider"), "{out}");
}

#[test]
fn a_failing_info_fails_check_one_and_the_json_lists_every_check() {
    let o = panel1(&[&component("info-trap"), &component("reference"), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let report = json_out(&o);
    let trap = &report["components"][0];
    let rows = rows(trap);
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, CHECKS);
    let info = row(&rows, "info");
    assert_eq!(info.1, "fail");
    assert!(info.2.contains("`info` failed"), "{}", info.2);
    assert!(
        info.2.contains("index out of bounds"),
        "the panic is shown: {}",
        info.2
    );
    assert!(
        info.2.contains("building the operation list"),
        "what it logged: {}",
        info.2
    );
    assert!(rows[1..].iter().all(|r| r.1 == "skipped"), "{rows:#?}");
    assert!(trap["adapter"].is_null());
    // The second component still ran: check 1 passed.
    let reference = rows_of(&report, 1);
    assert_eq!(row(&reference, "info").1, "pass");
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["exit_code"], 1);
}

fn rows_of(report: &Value, i: usize) -> Vec<(String, String, String)> {
    rows(&report["components"][i])
}

#[test]
fn an_invalid_component_exits_as_adapter_check_does() {
    let dir = std::env::temp_dir().join(format!("panel1-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("garbage.wasm");
    std::fs::write(&f, b"MZ not wasm at all").unwrap();
    let o = panel1(&[f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a WebAssembly binary"));
    let o = panel1(&[dir.join("missing.wasm").to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let report = json_out(&o);
    assert!(report["components"][0]["error"]
        .as_str()
        .unwrap()
        .contains("cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_adapter_run_against_the_wrong_provider_fails_the_checks() {
    // The reference adapter speaks another API: under the WHM profile its
    // config is refused by its own schema and no check of behaviour passes.
    let o = panel1(&[&component("reference"), "--provider", "whm", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let report = json_out(&o);
    let rows = rows_of(&report, 0);
    let info = row(&rows, "info");
    assert_eq!(info.1, "fail");
    assert!(info.2.contains("config does not validate"), "{}", info.2);
    for id in [
        "test-connection",
        "wrong-credential",
        "server-error",
        "egress-denied",
        "deadline",
    ] {
        assert_eq!(row(&rows, id).1, "fail", "{id}: {:?}", row(&rows, id));
    }
    assert!(row(&rows, "wrong-credential")
        .2
        .contains("expected auth-failed"));
    // Nothing was provisioned: the lifecycle checks say why they skipped.
    assert_eq!(row(&rows, "suspend-twice").1, "skipped");
    assert!(row(&rows, "suspend-twice").2.contains("check 3"));
    assert_eq!(row(&rows, "no-secret-in-output").1, "pass");
}
