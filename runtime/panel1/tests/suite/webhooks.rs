//! Webhooks end to end: events written to the outbox reach a receiver that
//! checks every signature with an independent implementation (the
//! `standardwebhooks` package from PyPI), delivered by real `panel1 worker`
//! processes. The receiver is down for a while, then slow; a worker is
//! SIGKILLed mid-delivery: every event arrives, in order per service, none
//! lost. A receiver that keeps failing exhausts the schedule and its
//! endpoint is disabled, with an event another endpoint receives; rotation
//! signs with both secrets during the overlap.
use panel1_store::secret_box::SecretBox;
use panel1_store::{setup, testing, webhooks};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

const MASTER_KEY: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";

fn secret_box() -> SecretBox {
    SecretBox::from_hex(MASTER_KEY, "test key").unwrap()
}

/// A receiver process and where it logs.
struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
    mode: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Receiver {
    fn start(secrets: &[String], mode: &str) -> Receiver {
        let dir = std::env::temp_dir().join(format!("panel1-hooks-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let (log, mode_file) = (dir.join("log.jsonl"), dir.join("mode"));
        std::fs::write(&mode_file, mode).unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../worker/tests/support/webhook_receiver.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&log)
            .arg(&mode_file)
            .args(secrets)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the receiver (pip install standardwebhooks)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the receiver did not start (is `standardwebhooks` installed? `python3 -m pip install --user standardwebhooks`): {line:?}")
        });
        Receiver {
            child,
            port,
            log,
            mode: mode_file,
            _dir: TempDir(dir),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn set_mode(&self, mode: &str) {
        std::fs::write(&self.mode, mode).unwrap();
    }

    /// Everything received, in arrival order.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Distinct messages received (by `webhook-id`), first arrivals only.
    fn distinct(&self) -> Vec<Value> {
        let mut seen = HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| seen.insert(r["id"].as_str().unwrap_or("").to_string()))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_worker(url: &str, id: &str, schedule: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_panel1"))
        .args(["worker", "--slots", "1", "--id", id])
        .args(["--webhook-allow-internal", "--webhook-allow-http"])
        .args(["--webhook-retry-schedule", schedule])
        .args(["--webhook-lease-secs", "2"])
        .env("DATABASE_URL", url)
        .env("PANEL1_MASTER_KEY", MASTER_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn panel1 worker")
}

struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A new endpoint (pointed at a receiver later, once it knows the secret).
async fn endpoint(pool: &PgPool, tenant: Uuid, types: &[&str]) -> (Uuid, String) {
    let sb = secret_box();
    let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    let e = webhooks::create_endpoint(pool, &sb, tenant, "http://127.0.0.1:9/", "", &types, None)
        .await
        .unwrap();
    let secret = webhooks::signing_secret(pool, &sb, tenant, e.id)
        .await
        .unwrap()
        .unwrap();
    (e.id, secret)
}

async fn point(pool: &PgPool, tenant: Uuid, id: Uuid, receiver: &Receiver) {
    let patch = webhooks::EndpointPatch {
        url: Some(receiver.url()),
        ..Default::default()
    };
    webhooks::update_endpoint(pool, tenant, id, &patch)
        .await
        .unwrap()
        .unwrap();
}

/// `count` events for `service`, one transaction each, payload `seq`.
async fn emit(pool: PgPool, tenant: Uuid, service: Uuid, count: usize) {
    for seq in 0..count {
        sqlx::query(
            "INSERT INTO events (tenant_id, kind, service_id, payload) VALUES ($1, 'service.updated', $2, $3)",
        )
        .bind(tenant)
        .bind(service)
        .bind(json!({ "seq": seq }))
        .execute(&pool)
        .await
        .unwrap();
    }
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_and_in_order_through_an_outage_and_a_killed_worker() {
    let (pool, url) = testing::fresh_database().await;
    let tenant = setup::create_tenant(&pool, "hooks").await.unwrap();
    let other = setup::create_tenant(&pool, "not-hooked").await.unwrap();
    // The receiver starts down: every delivery fails until it comes back.
    let schedule = "0.3,0.3,0.5,0.5,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1";
    let (id, secret) = endpoint(&pool, tenant, &["service.*"]).await;
    let receiver = Receiver::start(std::slice::from_ref(&secret), "down");
    point(&pool, tenant, id, &receiver).await;
    let mut workers = Workers(vec![
        spawn_worker(&url, "hooks-a", schedule),
        spawn_worker(&url, "hooks-b", schedule),
    ]);

    let services: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    const EACH: usize = 15;
    let mut writers: Vec<_> = services
        .iter()
        .map(|s| tokio::spawn(emit(pool.clone(), tenant, *s, EACH)))
        .collect();
    // Another tenant's events and a filtered-out kind go nowhere.
    writers.push(tokio::spawn(emit(pool.clone(), other, Uuid::new_v4(), 3)));
    sqlx::query("INSERT INTO events (tenant_id, kind, payload) VALUES ($1, 'task.created', '{}')")
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    for w in writers {
        w.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        receiver.received().is_empty(),
        "nothing accepted while down"
    );
    // Back, but slow: deliveries are in flight when a worker dies.
    receiver.set_mode("slow:150");
    wait_until("some deliveries", Duration::from_secs(30), || {
        receiver.received().len() >= 5
    })
    .await;
    workers.0[0].kill().unwrap();
    workers.0[0].wait().unwrap();

    let total = services.len() * EACH;
    wait_until("every event", Duration::from_secs(90), || {
        receiver.distinct().len() >= total
    })
    .await;
    let got = receiver.distinct();
    assert_eq!(got.len(), total, "only this tenant's service events");
    assert!(
        receiver.received().iter().all(|r| r["verified"] == true),
        "every signature verified by standardwebhooks"
    );
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &got {
        assert_eq!(r["body"]["type"], "service.updated");
        let service = r["body"]["data"]["service_id"]
            .as_str()
            .unwrap()
            .to_string();
        let seq = r["body"]["data"]["payload"]["seq"].as_u64().unwrap();
        order.entry(service).or_default().push(seq);
        assert_eq!(
            r["id"],
            json!(format!("msg_{}", r["body"]["data"]["event_id"])),
            "the webhook-id is the event's"
        );
    }
    for (service, seqs) in &order {
        assert_eq!(
            seqs,
            &(0..EACH as u64).collect::<Vec<_>>(),
            "{service} in order"
        );
    }
    // The log: one delivery per event, all succeeded, early ones after 503s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (all, succeeded, retried_503): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded'),
                    (SELECT count(DISTINCT delivery_id) FROM webhook_attempts WHERE status = 503)
               FROM webhook_deliveries",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(all, total as i64, "one delivery per matching event");
        if succeeded == all {
            assert!(
                retried_503 >= 1,
                "attempts during the outage are in the log"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{succeeded} of {all} settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_disabled_and_rotation_signs_with_both_secrets() {
    let (pool, url) = testing::fresh_database().await;
    let tenant = setup::create_tenant(&pool, "hooks2").await.unwrap();
    let (watch_id, watch_secret) = endpoint(&pool, tenant, &["webhook.*"]).await;
    let watcher = Receiver::start(std::slice::from_ref(&watch_secret), "up");
    point(&pool, tenant, watch_id, &watcher).await;
    let (id, secret) = endpoint(&pool, tenant, &[]).await;
    let failing = Receiver::start(std::slice::from_ref(&secret), "fail");
    point(&pool, tenant, id, &failing).await;
    let _workers = Workers(vec![spawn_worker(&url, "hooks-c", "0.1,0.1")]);

    let service = Uuid::new_v4();
    emit(pool.clone(), tenant, service, 2).await;
    // Three attempts (the schedule's two waits), then it gives up.
    wait_until("the endpoint disabled", Duration::from_secs(30), || {
        watcher.distinct().len() == 1
    })
    .await;
    let note = &watcher.distinct()[0];
    assert_eq!(note["verified"], true);
    assert_eq!(note["body"]["type"], "webhook.endpoint_disabled");
    assert_eq!(note["body"]["data"]["payload"]["endpoint_id"], json!(id));
    let sb = secret_box();
    let e = webhooks::get_endpoint(&pool, tenant, id)
        .await
        .unwrap()
        .unwrap();
    assert!(!e.enabled);
    assert!(e.disabled_reason.unwrap().contains("failed 3 times"));
    let states: Vec<(String, i32)> = sqlx::query_as(
        "SELECT state, attempts FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    // The second waits behind the first; the endpoint, disabled, still
    // collects (its own disabling included) for when it is enabled again.
    assert_eq!(
        states,
        [
            ("failed".to_string(), 3),
            ("pending".to_string(), 0),
            ("pending".to_string(), 0)
        ],
        "the second waits behind the first"
    );
    assert_eq!(failing.received().len(), 3);

    // Rotate, fix the receiver (it knows both secrets), re-enable, replay.
    let rotated = webhooks::rotate_secret(&pool, &sb, tenant, id, Duration::from_secs(600), None)
        .await
        .unwrap()
        .unwrap();
    assert!(rotated.previous_secret_until.is_some());
    let new_secret = webhooks::signing_secret(&pool, &sb, tenant, id)
        .await
        .unwrap()
        .unwrap();
    drop(failing);
    let fixed = Receiver::start(&[secret.clone(), new_secret], "up");
    // Replayed while still disabled, so it takes its place in the order.
    let first: i64 =
        sqlx::query_scalar("SELECT min(id) FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    webhooks::redeliver(&pool, tenant, id, first)
        .await
        .unwrap()
        .unwrap();
    let patch = webhooks::EndpointPatch {
        url: Some(fixed.url()),
        enabled: Some(true),
        ..Default::default()
    };
    webhooks::update_endpoint(&pool, tenant, id, &patch)
        .await
        .unwrap();
    wait_until("everything collected", Duration::from_secs(30), || {
        fixed.distinct().len() == 3
    })
    .await;
    for r in fixed.received() {
        assert_eq!(r["signatures"], 2, "old and new secret both sign");
        assert_eq!(r["verified_by"], json!([0, 1]), "each verifies alone");
    }
    let got = fixed.distinct();
    let seqs: Vec<u64> = got
        .iter()
        .filter_map(|r| r["body"]["data"]["payload"]["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [0, 1], "the replayed first, then the one behind it");
    assert!(got
        .iter()
        .any(|r| r["body"]["type"] == "webhook.endpoint_disabled"));
}
