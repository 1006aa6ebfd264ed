//! The API stays responsive while an upload is being compiled: `panel1
//! serve` (its own Postgres, no workers) compiles a costly component in its
//! compiler child while `/healthz` keeps answering quickly; the upload ends
//! with 422 naming the compile budget, and a structural bomb gets its 422 at
//! once.

use crate::bombs_kit as bombs;
use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: serve stops its embedded Postgres on the way out.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, port: u16, compile_timeout_ms: u64) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_panel1"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("PANEL1_MASTER_KEY")
        .env_remove("PANEL1_BUILTIN_ADAPTERS")
        .env_remove("PANEL1_COMPILE_MEMORY_MB")
        .env("PANEL1_DATA_DIR", dir)
        .env("PANEL1_LISTEN", format!("127.0.0.1:{port}"))
        .env("PANEL1_WORKERS", "false")
        .env("PANEL1_COMPILE_TIMEOUT_MS", compile_timeout_ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn panel1 serve");
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
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
    Server { child, log }
}

async fn wait_ready(http: &reqwest::Client, port: u16, server: &mut Server) {
    let start = Instant::now();
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
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

async fn upload(
    http: &reqwest::Client,
    port: u16,
    key: &str,
    name: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let r = http
        .post(format!(
            "http://127.0.0.1:{port}/v1/adapters?name={name}&version=1"
        ))
        .bearer_auth(key)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_an_upload_compiles() {
    let dir = std::env::temp_dir().join(format!("panel1-upload-bomb-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut server = serve(&dir, port, 3_000);
    wait_ready(&http, port, &mut server).await;
    let key = std::fs::read_to_string(dir.join("platform.key")).unwrap();
    let key = key.trim().to_string();

    // Inside the structural limits (45 000 functions, about 24 MB of code,
    // under the 32 MiB upload limit) and about 3.5x the work of the bomb the
    // sandbox tests stop at 300 ms: several seconds to compile even on a
    // quiet machine, so the 3 s budget ends it whatever the machine's speed.
    let bomb = bombs::expensive(45_000, 80);
    assert!(bomb.len() < 32 << 20, "{} bytes", bomb.len());
    let started = Instant::now();
    let in_flight = tokio::spawn({
        let (http, key) = (http.clone(), key.clone());
        async move { upload(&http, port, &key, "slow-bomb", bomb).await }
    });
    let mut latencies = Vec::new();
    while !in_flight.is_finished() {
        let t = Instant::now();
        let r = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, problem) = in_flight.await.unwrap();
    let upload_took = started.elapsed();
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem
            .to_string()
            .contains("compile budget: compiling took longer than 3 s"),
        "{problem}"
    );
    assert!(upload_took >= Duration::from_secs(3), "{upload_took:?}");
    assert!(upload_took < Duration::from_secs(20), "{upload_took:?}");
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "upload 422 after {upload_took:?}; {} /healthz answers meanwhile, slowest {slowest:?}",
        latencies.len()
    );
    assert!(
        latencies.len() >= 20,
        "only {} /healthz answers",
        latencies.len()
    );
    assert!(
        slowest < Duration::from_millis(500),
        "slowest /healthz {slowest:?}"
    );

    // A structural bomb is refused before compiling: 422 at once.
    let started = Instant::now();
    let (status, problem) = upload(
        &http,
        port,
        &key,
        "count-bomb",
        bombs::empty_functions(1_000_000),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem
            .to_string()
            .contains("functions (all core modules together) is over the limit of 50000"),
        "{problem}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
