//! `panel1 serve` with no configuration: its own Postgres in the data
//! directory, a platform key on first start, the CLI client against it,
//! graceful shutdown, and a second start that finds everything again.

use crate::common::fake_panel;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "serve-test-secret-5d0c";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn adapters_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist")
}

/// The server and its log, read as it is written (a full pipe would block it).
struct Server {
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

fn serve(dir: &Path, port: u16) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_panel1"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("PANEL1_MASTER_KEY")
        .env("PANEL1_DATA_DIR", dir)
        .env("PANEL1_LISTEN", format!("127.0.0.1:{port}"))
        .env("PANEL1_BUILTIN_ADAPTERS", adapters_dir())
        .env("PANEL1_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn panel1 serve");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Server { child, log, reader }
}

async fn wait_ready(port: u16, server: &mut Server) {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if r.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("serve exited with {status}: {}", server.log.lock().unwrap());
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "serve not ready in 90 s: {}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Run a client command; its JSON output and its progress log.
fn client(port: u16, key: &str, args: &[&str], stdin: Option<&str>) -> (Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(args)
        .env("PANEL1_URL", format!("http://127.0.0.1:{port}"))
        .env("PANEL1_API_KEY", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "panel1 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// SIGTERM, then the exit status and everything the server logged.
fn stop(mut server: Server) -> (std::process::ExitStatus, String) {
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = server.child.wait().unwrap();
    server.reader.join().unwrap();
    let log = server.log.lock().unwrap().clone();
    (status, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_on_its_own_postgres_and_comes_back() {
    let dir = std::env::temp_dir().join(format!("panel1-serve-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let mut first = serve(&dir, port);
    wait_ready(port, &mut first).await;

    let platform = std::fs::read_to_string(dir.join("platform.key")).unwrap();
    let platform = platform.trim();
    assert!(platform.starts_with("p1_"));
    let (created, _) = client(port, platform, &["tenant", "create", "acme"], None);
    let key = created["admin_key"]["key"].as_str().unwrap().to_string();
    let (set, _) = client(port, &key, &["secret", "set", "api-token"], Some(SECRET));
    assert_eq!(set["name"], "api-token");
    assert!(!set.to_string().contains(SECRET));
    // Built-in adapters were installed and get inspected by the workers.
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let list: Value = http
            .get(format!(
                "http://127.0.0.1:{port}/v1/adapters?name=reference"
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if list["items"][0]["status"] == "ready" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "built-in reference never became ready: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The everyday flow through the CLI client against a fake panel whose
    // token is the secret: server add, service create (watched live until
    // provisioned), suspend, task watch.
    let panel = fake_panel::FakePanel::start(SECRET).await;
    let list: Value = http
        .get(format!(
            "http://127.0.0.1:{port}/v1/adapters?name=reference"
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = list["items"][0]["id"].as_str().unwrap().to_string();
    let base = panel.base_url();
    let config_url = format!("base_url={base}");
    let binding = format!("api-token@127.0.0.1:{}", panel.port);
    let (server, _) = client(
        port,
        &key,
        &[
            "server",
            "add",
            "panel-1",
            "--adapter-version",
            &version,
            "--config",
            &config_url,
            "--config",
            "owner=reseller1",
            "--egress",
            &base,
            "--secret",
            &binding,
        ],
        None,
    );
    let server_id = server["id"].as_str().unwrap().to_string();
    // `server update` merges --config into the current config and changes
    // only what it is given.
    let (updated, _) = client(
        port,
        &key,
        &[
            "server",
            "update",
            &server_id,
            "--config",
            "owner=reseller2",
            "--max-concurrency",
            "3",
            "--record-exchanges",
            "true",
        ],
        None,
    );
    assert_eq!(updated["config"]["owner"], "reseller2", "{updated}");
    assert_eq!(updated["config"]["base_url"], base.as_str(), "{updated}");
    assert_eq!(updated["max_concurrency"], 3);
    assert_eq!(updated["record_exchanges"], true);
    assert_eq!(updated["secrets"][0]["name"], "api-token", "{updated}");
    let (created, progress) = client(
        port,
        &key,
        &[
            "service",
            "create",
            "--server",
            &server_id,
            "--username",
            "alice",
            "--domain",
            "alice.test",
            "--plan",
            "basic",
        ],
        None,
    );
    assert!(progress.contains("task.succeeded"), "{progress}");
    assert!(progress.contains("sandbox:"), "metrics shown: {progress}");
    let service = created["service"]["id"].as_str().unwrap().to_string();
    let task = created["task"]["id"].as_str().unwrap().to_string();
    let (_, progress) = client(
        port,
        &key,
        &["service", "suspend", &service, "--reason", "unpaid"],
        None,
    );
    assert!(progress.contains("task.succeeded"), "{progress}");
    let watched = Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(["task", "watch", &task])
        .env("PANEL1_URL", format!("http://127.0.0.1:{port}"))
        .env("PANEL1_API_KEY", &key)
        .output()
        .unwrap();
    assert!(
        watched.status.success(),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    assert_eq!(
        panel.with(|p| p.timeline["alice"].clone()),
        vec!["POST ", "POST /alice/suspend"]
    );
    assert!(
        panel.requests().iter().all(|r| r
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.contains(SECRET))),
        "the bound secret reached the panel"
    );

    let (status, log) = stop(first);
    assert!(status.success(), "graceful exit: {status}\n{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains(SECRET), "the secret reached the server log");
    assert!(
        !dir.join("pgdata/postmaster.pid").exists(),
        "the embedded Postgres was stopped"
    );

    // Second start: same cluster, same data, no new platform key.
    let mut second = serve(&dir, port);
    wait_ready(port, &mut second).await;
    let tenants: Value = http
        .get(format!("http://127.0.0.1:{port}/v1/tenants"))
        .bearer_auth(platform)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tenants["items"][0]["name"], "acme");
    let (status, log) = stop(second);
    assert!(status.success(), "{log}");
    assert!(
        !log.contains("created the platform API key"),
        "a second platform key: {log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
