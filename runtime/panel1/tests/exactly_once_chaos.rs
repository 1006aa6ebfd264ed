//! Issue 18: an order becomes exactly one service, whatever kills `panel1
//! serve` and wherever. The real binary (API and workers) runs on a fresh
//! database with a cPanel server on an in-process WHM simulator; billing
//! sends orders (POST /v1/services with an Idempotency-Key each) and the
//! process dies again and again: aborted right before a keyed POST's commit
//! or right after it (the test-only `PANEL1_TEST_FAULTS` hook), or SIGKILLed
//! at a random moment while requests are in flight (before, inside or after
//! their transactions, while answering, and while workers provision). After
//! each death the server is started again and every unanswered order is
//! retried with its key. At the end: one service per key, every answer for
//! a key naming that same service, one WHM account per username, and no
//! `409 idempotency-in-progress` ever.
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Deaths: a third each before commit, after commit, and at a random moment.
/// (36 deaths take about a minute here.)
const ROUNDS: usize = 36;
const NEW_ORDERS_PER_ROUND: usize = 3;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn adapters_dir() -> PathBuf {
    std::env::var_os("PANEL1_ADAPTERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/dist"))
}

/// What every start of the server shares.
struct Env {
    db_url: String,
    dir: PathBuf,
    builtins: PathBuf,
    port: u16,
    master_key: String,
}

struct Server {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

fn serve(env: &Env, fault: Option<&str>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_panel1"));
    cmd.arg("serve")
        .env("DATABASE_URL", &env.db_url)
        .env("PANEL1_MASTER_KEY", &env.master_key)
        .env("PANEL1_DATA_DIR", &env.dir)
        .env("PANEL1_LISTEN", format!("127.0.0.1:{}", env.port))
        .env("PANEL1_BUILTIN_ADAPTERS", &env.builtins)
        .env("PANEL1_RATE_LIMIT_PER_SECOND", "10000")
        .env("PANEL1_RATE_LIMIT_BURST", "10000")
        .env("PANEL1_WORKER_SLOTS", "4")
        .env("PANEL1_LOG", "info")
        .env_remove("PANEL1_TEST_FAULTS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(f) = fault {
        cmd.env("PANEL1_TEST_FAULTS", f);
    }
    let mut child = cmd.spawn().expect("spawn panel1 serve");
    let log = Arc::new(Mutex::new(String::new()));
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
            start.elapsed() < Duration::from_secs(60),
            "serve not ready in 60 s: {}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILL (if still alive); the log of this life.
fn kill(mut server: Server) -> String {
    let _ = server.child.kill();
    server.child.wait().unwrap();
    server.reader.join().unwrap();
    let log = server.log.lock().unwrap().clone();
    log
}

/// Wait (bounded) for the process to end by itself; the log, and whether
/// it did.
async fn wait_exit(mut server: Server, within: Duration) -> (bool, String) {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(Some(_)) = server.child.try_wait() {
            return (true, kill(server));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (false, kill(server))
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn get(&self, key: &str, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

struct Order {
    key: String,
    username: String,
    /// The service every 2xx answer for this key named.
    service: Option<String>,
}

fn order_body(server: &str, user: &str) -> Value {
    json!({
        "server_id": server, "username": user,
        "domain": format!("{user}.example.test"), "plan": "basic",
    })
}

/// What one attempt at an order got.
enum Outcome {
    Answered {
        service: String,
        replayed: bool,
    },
    InProgress,
    /// The connection died with the server.
    Lost,
}

async fn place(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    server: &str,
    o: (&str, &str),
) -> Outcome {
    let (idem, user) = o;
    let sent = http
        .post(format!("{base}/v1/services"))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(&order_body(server, user))
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    let Ok(r) = sent else { return Outcome::Lost };
    let status = r.status();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    let Ok(body) = r.json::<Value>().await else {
        return Outcome::Lost;
    };
    match status.as_u16() {
        202 => Outcome::Answered {
            service: body["service"]["id"].as_str().unwrap().to_string(),
            replayed,
        },
        409 if body["type"] == "/problems/idempotency-in-progress" => Outcome::InProgress,
        _ => panic!("order {idem}: {status} {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_sigkill_at_every_point_exactly_once() {
    let test_start = Instant::now();
    let (pool, db_url) = panel1_store::testing::fresh_database().await;
    let sim = panel1_whm_sim::WhmSimulator::start(panel1_whm_sim::SimConfig::default())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("panel1-chaos-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    // Only the cPanel component is installed as a built-in.
    let builtins = dir.join("builtin");
    std::fs::create_dir_all(&builtins).unwrap();
    std::fs::copy(
        adapters_dir().join("cpanel.wasm"),
        builtins.join("cpanel.wasm"),
    )
    .expect("adapters/dist/cpanel.wasm (run adapters/build.sh)");
    let env = Env {
        db_url,
        dir: dir.clone(),
        builtins,
        port: free_port(),
        master_key: hex::encode(rand::random::<[u8; 32]>()),
    };
    let base = format!("http://127.0.0.1:{}", env.port);
    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
    };

    // Setting the stage on a first life: a tenant, the WHM token, a server.
    let mut first = serve(&env, None);
    wait_ready(env.port, &mut first).await;
    let platform = std::fs::read_to_string(dir.join("platform.key")).unwrap();
    let tenant = api
        .post(
            platform.trim(),
            "/v1/tenants",
            json!({"name": "billing-co"}),
        )
        .await;
    let key = tenant["admin_key"]["key"].as_str().unwrap().to_string();
    let version = wait_for_cpanel(&api, &key).await;
    api.post(
        &key,
        "/v1/secrets",
        json!({"name": "whm-token", "value": sim.token()}),
    )
    .await;
    let port = sim.addr().port();
    let server = api
        .post(
            &key,
            "/v1/servers",
            json!({
                "name": "whm",
                "adapter_version_id": version,
                "config": {"host": "127.0.0.1", "port": port, "whm_user": sim.whm_user()},
                "egress": [format!("https://127.0.0.1:{port}/json-api/ sha256:{}", sim.cert_sha256())],
                "secrets": [{"name": "whm-token", "destinations": [format!("127.0.0.1:{port}")]}],
            }),
        )
        .await;
    let server_id = server["id"].as_str().unwrap().to_string();
    kill(first);

    let mut orders: Vec<Order> = Vec::new();
    let mut tally = Tally::default();
    let mut fired: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seed: u64 = 0x5eed_1804;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..ROUNDS {
        for i in 0..NEW_ORDERS_PER_ROUND {
            orders.push(Order {
                key: format!("order-{round}-{i}"),
                username: format!("r{round}o{i}"),
                service: None,
            });
        }
        // Which commit dies: among the first few of this life.
        let nth = 1 + next(3);
        let (mode, fault) = match round % 3 {
            0 => ("before-commit", Some(format!("before-commit@{nth}"))),
            1 => ("after-commit", Some(format!("after-commit@{nth}"))),
            _ => ("sigkill", None),
        };
        let mut life = serve(&env, fault.as_deref());
        wait_ready(env.port, &mut life).await;
        let pending: Vec<(usize, String, String)> = orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.service.is_none())
            .map(|(i, o)| (i, o.key.clone(), o.username.clone()))
            .collect();
        let sends = pending.iter().map(|(i, idem, user)| {
            let (http, base, key, server) = (&api.http, &base, &key, &server_id);
            async move { (*i, place(http, base, key, server, (idem, user)).await) }
        });
        let outcomes = if mode == "sigkill" {
            // Requests in flight, workers provisioning: killed at a random
            // moment in the next 150 ms.
            let delay = Duration::from_millis(next(150));
            let (outcomes, ()) = tokio::join!(futures::future::join_all(sends), async {
                tokio::time::sleep(delay).await;
                kill(life);
            });
            *fired.entry("sigkill").or_default() += 1;
            outcomes
        } else {
            let outcomes = futures::future::join_all(sends).await;
            let (died, log) = wait_exit(life, Duration::from_secs(2)).await;
            if died {
                assert!(
                    log.contains(&format!("aborting at {mode}")),
                    "died without the fault: {log}"
                );
                *fired.entry(mode).or_default() += 1;
            }
            outcomes
        };
        for (i, outcome) in outcomes {
            record(&mut orders[i], outcome, &mut tally);
        }
    }

    // A last life, no faults: every order is retried until answered, and
    // the workers provision what was ordered.
    let mut last = serve(&env, None);
    wait_ready(env.port, &mut last).await;
    let settle = Instant::now();
    for order in &mut orders {
        loop {
            let (idem, user) = (order.key.clone(), order.username.clone());
            let o = place(&api.http, &base, &key, &server_id, (&idem, &user)).await;
            let answered = matches!(o, Outcome::Answered { .. });
            if let (Some(_), Outcome::Answered { replayed, .. }) = (&order.service, &o) {
                assert!(replayed, "{idem}: answered before, so it must be a replay");
            }
            record(order, o, &mut tally);
            if answered {
                break;
            }
            assert!(
                settle.elapsed() < Duration::from_secs(30),
                "{idem} never answered"
            );
        }
    }
    let active = wait_all_active(&pool, orders.len(), &last).await;
    let _ = kill(last);

    // Exactly one service per order, the one its answers named.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT spec->>'username', min(id::text), count(*) FROM services GROUP BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let by_user: HashMap<String, (String, i64)> =
        rows.into_iter().map(|(u, id, n)| (u, (id, n))).collect();
    assert_eq!(
        by_user.len(),
        orders.len(),
        "services for exactly the orders"
    );
    for o in &orders {
        let (id, n) = &by_user[&o.username];
        assert_eq!(*n, 1, "{}: {n} services", o.username);
        assert_eq!(Some(id), o.service.as_ref(), "{}", o.key);
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_idempotency")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(keys >= orders.len() as i64);
    // One WHM account per username, and no other.
    let mut accounts: Vec<String> = sim.accounts().into_iter().map(|a| a.user).collect();
    accounts.sort();
    let mut wanted: Vec<String> = orders.iter().map(|o| o.username.clone()).collect();
    wanted.sort();
    assert_eq!(accounts, wanted);
    assert_eq!(active, orders.len());
    // Never told to come back later for a request that was gone.
    assert_eq!(tally.in_progress, 0, "409 idempotency-in-progress answers");
    // Every death after a commit left an order that only a replay answered.
    assert!(
        tally.first_answer_replayed >= fired["after-commit"],
        "{} first answers were replays, {fired:?}",
        tally.first_answer_replayed
    );
    // Every kind of death happened, many times.
    for mode in ["before-commit", "after-commit", "sigkill"] {
        assert!(fired.get(mode).copied().unwrap_or(0) >= 4, "{fired:?}");
    }
    eprintln!(
        "{} orders, deaths {fired:?}, {} first answers were replays, {} s",
        orders.len(),
        tally.first_answer_replayed,
        test_start.elapsed().as_secs()
    );
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the attempts showed so far.
#[derive(Default)]
struct Tally {
    /// `409 idempotency-in-progress` answers.
    in_progress: usize,
    /// Orders whose first answer was a replay: committed in a life that
    /// died before answering.
    first_answer_replayed: usize,
}

fn record(order: &mut Order, outcome: Outcome, tally: &mut Tally) {
    match outcome {
        Outcome::Answered { service, replayed } => {
            match &order.service {
                Some(had) => {
                    assert_eq!(had, &service, "{}: two services for one key", order.key)
                }
                None if replayed => tally.first_answer_replayed += 1,
                None => {}
            }
            order.service = Some(service);
        }
        Outcome::InProgress => tally.in_progress += 1,
        Outcome::Lost => {}
    }
}

async fn wait_for_cpanel(api: &Api, key: &str) -> String {
    let start = Instant::now();
    loop {
        let list = api.get(key, "/v1/adapters?name=cpanel").await;
        if list["items"][0]["status"] == "ready" {
            return list["items"][0]["id"].as_str().unwrap().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "cpanel never ready: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait (90 s at most: a task whose worker was killed is rescued when its
/// 30 s lease expires) until every service is active; their number.
async fn wait_all_active(pool: &sqlx::PgPool, n: usize, server: &Server) -> usize {
    let start = Instant::now();
    loop {
        let (active, states): (i64, Value) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'active'),
                    COALESCE(jsonb_object_agg(spec->>'username', state::text || ' ' || COALESCE(failure_reason, ''))
                             FILTER (WHERE state <> 'active'), '{}')
             FROM services",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if active as usize >= n {
            return active as usize;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not all active: {states}\n{}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
