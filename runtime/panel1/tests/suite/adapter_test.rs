//! `panel1 adapter run --record` and `panel1 adapter test` as an author
//! uses them: the real cPanel component provisions against the WHM
//! simulator (loopback) while recording, then the scenario replays offline.
use panel1_sims::{SimConfig, WhmSimulator};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn component(name: &str) -> String {
    let dir = std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing", path.display());
    std::fs::canonicalize(path).unwrap().display().to_string()
}

/// Run the binary off the runtime's threads (the simulator keeps serving).
async fn panel1(args: Vec<String>, artifacts: &Path) -> Output {
    let artifacts = artifacts.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_panel1"))
            .args(&args)
            .env("PANEL1_ARTIFACT_DIR", artifacts)
            .output()
            .expect("run panel1")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const PASSWORD: &str = "Acct-Passw0rd-Not-For-Files";

/// Every form of `value` a careless recorder could write.
fn forms(value: &str) -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    let pct: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
    vec![
        value.to_string(),
        value.to_ascii_lowercase(),
        b64.encode(value),
        hex,
        pct,
    ]
}

struct Recorded {
    dir: PathBuf,
    fixture: PathBuf,
    token: String,
    url: String,
}

/// Provision `alice` against a fresh simulator with `--record` and
/// `--verbose`; the simulator is gone when this returns.
async fn record_provision(tag: &str) -> Recorded {
    let dir = std::env::temp_dir().join(format!("p1-adapter-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sim = WhmSimulator::start(SimConfig::default()).await.unwrap();
    let port = sim.addr().port();
    let fixture = dir.join("provision.json");
    let args: Vec<String> = vec![
        "adapter".into(),
        "run".into(),
        component("cpanel"),
        "--op".into(),
        "provision".into(),
        "--input".into(),
        INPUT.into(),
        "--config".into(),
        "host=127.0.0.1".into(),
        "--config".into(),
        format!("port={port}"),
        "--config".into(),
        format!("whm_user={}", sim.whm_user()),
        "--secret".into(),
        format!("whm-token={}@127.0.0.1:{port}", sim.token()),
        "--secret".into(),
        format!("account-password={PASSWORD}@127.0.0.1:{port}"),
        "--allow".into(),
        format!("{}/json-api/ sha256:{}", sim.base_url(), sim.cert_sha256()),
        "--record".into(),
        fixture.display().to_string(),
        "--verbose".into(),
    ];
    let o = panel1(args, &dir.join("artifacts")).await;
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(sim.account("alice").is_some(), "the account was created");
    // --verbose: headers and bodies, secrets as placeholders.
    assert!(
        err.contains("> authorization: whm root:{{secret:whm-token}}"),
        "{err}"
    );
    assert!(
        err.contains("password={{secret:account-password}}"),
        "{err}"
    );
    assert!(
        err.contains("< 200") && err.contains("\"createacct\""),
        "{err}"
    );
    assert!(err.contains("recorded 2 HTTP exchange(s)"), "{err}");
    let token = sim.token().to_string();
    for leak in forms(&token).iter().chain(&forms(PASSWORD)) {
        assert!(!err.contains(leak.as_str()) && !out.contains(leak.as_str()));
    }
    let url = sim.base_url();
    sim.shutdown().await;
    Recorded {
        dir,
        fixture,
        token,
        url,
    }
}

const INPUT: &str = r#"{"service":{"service_id":"svc-alice","username":"alice","domain":"alice.example.com","plan":"basic","contact_email":"alice@example.net"},"password_secret":"account-password"}"#;

fn scenario(r: &Recorded, name: &str, expect: &str) -> PathBuf {
    let path = r.dir.join(name);
    let body = format!(
        "component = {:?}\n\n[[step]]\nname = \"provision alice\"\noperation = \"provision\"\n\
         fixture = \"provision.json\"\n\
         input = {{ service = {{ service_id = \"svc-alice\", username = \"alice\", \
         domain = \"alice.example.com\", plan = \"basic\", contact_email = \"alice@example.net\" }}, \
         password_secret = \"account-password\" }}\n{expect}\n",
        component("cpanel")
    );
    std::fs::write(&path, body).unwrap();
    path
}

async fn adapter_test(r: &Recorded, files: &[&Path], json: bool) -> Output {
    let mut args = vec!["adapter".to_string(), "test".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    if json {
        args.push("--json".into());
    }
    panel1(args, &r.dir.join("artifacts")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_provision_replays_offline_and_holds_no_secret() {
    let r = record_provision("green").await;
    let fixture = std::fs::read_to_string(&r.fixture).unwrap();
    let doc: Value = serde_json::from_str(&fixture).unwrap();
    assert_eq!(doc["format"], "panel1-http-fixture");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["operation"], "provision");
    let x = doc["exchanges"].as_array().unwrap();
    assert_eq!(x.len(), 2, "{fixture}");
    // As the guest built it: the lookup, then createacct with the
    // password placeholder in its form body.
    assert_eq!(x[1]["request"]["method"], "POST");
    assert!(x[1]["request"]["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/json-api/createacct", r.url)));
    assert!(x[1]["request"]["body"]
        .as_str()
        .unwrap()
        .contains("password={{secret:account-password}}"));
    assert_eq!(x[1]["response"]["status"], 200);
    assert_eq!(doc["context"]["secrets"][0]["name"], "whm-token");
    // No secret value, as-is or encoded, anywhere in the file.
    for leak in forms(&r.token).iter().chain(&forms(PASSWORD)) {
        assert!(!fixture.contains(leak.as_str()), "{leak} is in the fixture");
    }

    // The simulator is shut down: a pass means nothing was connected to.
    let green = scenario(
        &r,
        "green.toml",
        "[step.expect]\noutcome = \"ok\"\noutput = { remote_id = \"alice\", state = \"active\" }",
    );
    let o = adapter_test(&r, &[&green], false).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(
        out.contains("provision alice") && out.contains("pass"),
        "{out}"
    );
    assert!(out.contains("2 exchange(s) replayed"), "{out}");
    assert!(out.contains("summary: 1 passed, 0 failed"), "{out}");
    let _ = std::fs::remove_dir_all(&r.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_expectations_and_changed_requests_fail_with_their_reason() {
    let r = record_provision("fail").await;
    let wrong_kind = scenario(
        &r,
        "wrong-kind.toml",
        "[step.expect]\noutcome = \"auth-failed\"",
    );
    let wrong_field = scenario(
        &r,
        "wrong-field.toml",
        "[step.expect]\noutcome = \"ok\"\noutput = { remote_id = \"bob\" }",
    );
    let o = adapter_test(&r, &[&wrong_kind, &wrong_field], false).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", text(&o.stderr));
    assert!(
        out.contains("FAIL    expected auth-failed, got ok"),
        "{out}"
    );
    assert!(
        out.contains("output.remote_id: expected \"bob\", got \"alice\""),
        "{out}"
    );
    assert!(out.contains("summary: 0 passed, 2 failed"), "{out}");

    // The recorded createacct now has another URL: the adapter's request
    // matches nothing, and the step says which request and what was next.
    let fixture = std::fs::read_to_string(&r.fixture).unwrap();
    let edited = fixture.replace("/json-api/createacct", "/json-api/createacct-renamed");
    assert_ne!(edited, fixture);
    std::fs::write(&r.fixture, edited).unwrap();
    let green = scenario(&r, "edited.toml", "[step.expect]\noutcome = \"ok\"");
    let o = adapter_test(&r, &[&green], true).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let step = &doc["scenarios"][0]["steps"][0];
    assert_eq!(step["passed"], false);
    let reason = step["reason"].as_str().unwrap();
    let want = format!(
        "no recorded exchange for POST {}/json-api/createacct?",
        r.url
    );
    assert!(reason.starts_with(&want), "{reason}");
    assert!(
        reason.contains("next expected: POST ") && reason.contains("createacct-renamed"),
        "{reason}"
    );
    assert_eq!(step["unmatched"].as_array().unwrap().len(), 1);
    assert_eq!(doc["summary"]["failed"], 1);
    assert_eq!(doc["exit_code"], 1);
    let _ = std::fs::remove_dir_all(&r.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_scenarios_exit_3_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("p1-adapter-test-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "component = {:?}\n[[step]]\noperation = \"provision\"\n[step.expect]\noutcome = \"fine\"\n",
            component("cpanel")
        ),
    )
    .unwrap();
    let args = vec!["adapter".into(), "test".into(), bad.display().to_string()];
    let o = panel1(args, &dir.join("artifacts")).await;
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("step[0].expect.outcome: `fine`"), "{err}");
    let missing = dir.join("missing.toml");
    let args = vec![
        "adapter".into(),
        "test".into(),
        missing.display().to_string(),
    ];
    let o = panel1(args, &dir.join("artifacts")).await;
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}
