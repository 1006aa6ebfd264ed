//! `panel1 demo`, the README's main command: on the embedded default it
//! provisions, suspends, unsuspends and terminates one service on the
//! simulated WHM, then Plesk, then a Docker Engine (mutual TLS), every call
//! well-formed per the
//! provider's official description; a second run in the same data directory
//! (the cluster and built-ins found again) works too.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn adapters_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist")
}

fn run_demo(dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_panel1"))
        .arg("demo")
        .arg("--adapters-dir")
        .arg(adapters_dir())
        .env_remove("DATABASE_URL")
        .env_remove("PANEL1_MASTER_KEY")
        .env_remove("PANEL1_BUILTIN_ADAPTERS")
        .env("PANEL1_DATA_DIR", dir)
        .output()
        .expect("run panel1 demo");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_runs_the_whole_lifecycle_with_well_formed_whm_calls() {
    let dir = std::env::temp_dir().join(format!("panel1-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for run in 1..=2 {
        let (code, stdout, stderr) = run_demo(&dir);
        assert_eq!(code, 0, "run {run}:\n{stdout}\n{stderr}");
        for step in [
            "test-connection",
            "provision",
            "suspend",
            "unsuspend",
            "terminate",
        ] {
            // One table per provider.
            let rows: Vec<&str> = stdout
                .lines()
                .filter(|l| l.split_whitespace().next() == Some(step))
                .collect();
            assert_eq!(rows.len(), 4, "{step}:\n{stdout}");
            assert!(rows.iter().all(|l| l.contains("succeeded")), "{rows:?}");
        }
        for provider in ["WHM", "Plesk", "Docker Engine", "Kubernetes API server"] {
            let done = format!(": terminated (the {provider} now has 0 account(s))");
            assert!(stdout.contains(&done), "{stdout}");
        }
        assert!(stdout.contains("token appears nowhere"), "{stdout}");
        assert!(stdout.contains("Plesk API key appears nowhere"), "{stdout}");
        assert!(
            stdout.contains("Docker client identity appears nowhere"),
            "{stdout}"
        );
        assert!(
            stdout.contains("Kubernetes service account token appears nowhere"),
            "{stdout}"
        );
        // Signed webhooks verified by the demo's receiver, per provider.
        assert_eq!(
            stdout
                .matches("every signature verified by the receiver")
                .count(),
            4,
            "{stdout}"
        );
        assert_eq!(
            stdout.matches("server health: healthy").count(),
            4,
            "{stdout}"
        );
        // The drift report names the account created behind Panel1's back.
        assert!(stdout.contains("drift: unknown_remotely out"), "{stdout}");
        // A bulk suspend on WHM: every child succeeded and the simulator
        // holds the ten accounts suspended; the progress bar ran on stderr.
        assert!(
            stdout.contains("bulk suspend of 10 services: 10 succeeded, 0 failed in")
                && stdout.contains("(the WHM shows 10 suspended)"),
            "{stdout}"
        );
        assert!(
            stdout.contains("bulk terminate: 10 succeeded, 0 failed"),
            "{stdout}"
        );
        assert!(stderr.contains("10/10"), "no progress bar:\n{stderr}");
        // Live status came over SSE: the service moved through its states.
        for state in ["state=active", "state=suspended", "state=terminated"] {
            assert!(stderr.contains(state), "no {state} event:\n{stderr}");
        }

        let log = std::fs::read_to_string(dir.join("demo-whm-requests.jsonl")).unwrap();
        let calls: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let functions: Vec<&str> = calls
            .iter()
            .filter_map(|c| c["function"].as_str())
            .collect();
        for f in [
            "version",
            "createacct",
            "suspendacct",
            "unsuspendacct",
            "removeacct",
        ] {
            assert!(functions.contains(&f), "{f} missing from {functions:?}");
        }
        for c in &calls {
            assert_eq!(c["auth"], "ok", "{c}");
            assert_eq!(c["api_version_1"], true, "{c}");
            assert_eq!(c["problems"], serde_json::json!([]), "{c}");
            assert_eq!(c["params"]["api.version"], "1", "{c}");
        }
        // The account's password went in a POST body and is redacted here.
        let create = calls
            .iter()
            .find(|c| c["function"] == "createacct")
            .unwrap();
        assert_eq!(create["method"], "POST");
        assert_eq!(create["params"]["password"], "[redacted]");

        let log = std::fs::read_to_string(dir.join("demo-plesk-requests.jsonl")).unwrap();
        let calls: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let operations: Vec<&str> = calls
            .iter()
            .filter_map(|c| c["function"].as_str())
            .collect();
        for op in [
            "GET /server",
            "POST /clients",
            "POST /domains",
            "PUT /domains/{id}/status",
            "DELETE /domains/{id}",
            "DELETE /clients/{id}",
        ] {
            assert!(operations.contains(&op), "{op} missing from {operations:?}");
        }
        for c in &calls {
            assert_eq!(c["auth"], "ok", "{c}");
            assert_eq!(c["problems"], serde_json::json!([]), "{c}");
        }
        let create = calls
            .iter()
            .find(|c| c["function"] == "POST /clients")
            .unwrap();
        assert_eq!(create["params"]["password"], "[redacted]");

        // Kubernetes: every object applied by server-side apply, the
        // namespace deleted, each request valid against the schemas.
        let log = std::fs::read_to_string(dir.join("demo-kubernetes-requests.jsonl")).unwrap();
        let calls: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let operations: Vec<&str> = calls
            .iter()
            .filter_map(|c| c["function"].as_str())
            .collect();
        for op in [
            "GET /version",
            "PATCH /api/v1/namespaces/{name}",
            "PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            "PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            "DELETE /api/v1/namespaces/{name}",
        ] {
            assert!(operations.contains(&op), "{op} missing from {operations:?}");
        }
        for c in &calls {
            assert_eq!(c["problems"], serde_json::json!([]), "{c}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
