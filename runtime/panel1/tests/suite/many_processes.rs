//! Issue 18, part 5: many processes, one Postgres. Two `panel1 serve`
//! processes (API only) and three `panel1 worker` processes share a fresh
//! database: a key's rate and an address's failed authentications are one
//! limit across the API processes; an event stream from either sees every
//! event and resumes on the other with `Last-Event-ID`; and orders stay
//! exactly once while processes of every kind are SIGKILLed and restarted.

use crate::support;
use crate::support::{free_port, place, Api, Env, Outcome, Proc};
use reqwest::StatusCode;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const API_ONLY: (&str, &str) = ("PANEL1_WORKERS", "false");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_failed_auth_limits_hold_across_api_processes() {
    let (_pool, db_url) = panel1_store::testing::fresh_database().await;
    let env = Env::new(db_url, "limits");
    let limits = [
        API_ONLY,
        ("PANEL1_RATE_LIMIT_PER_SECOND", "1"),
        ("PANEL1_RATE_LIMIT_BURST", "20"),
        ("PANEL1_AUTH_FAILURE_LIMIT", "6"),
    ];
    // Both start at once: migrations and built-in installs race.
    let (pa, pb) = (free_port(), free_port());
    let (mut a, mut b) = (env.serve(pa, &limits), env.serve(pb, &limits));
    a.ready().await;
    b.ready().await;
    let (api_a, api_b) = (Api::on(pa), Api::on(pb));
    let platform = env.platform_key();
    let tenant = api_a
        .post(
            &platform,
            "/v1/tenants",
            serde_json::json!({"name": "reseller"}),
        )
        .await;
    let key = tenant["admin_key"]["key"].as_str().unwrap().to_string();

    // One key, 60 requests as fast as they go, alternating processes: the
    // burst of 20 (plus 1 a second) is admitted once, not once per process.
    let start = Instant::now();
    let mut admitted = [0usize; 2];
    let mut refused = [0usize; 2];
    for i in 0..60 {
        let api = [&api_a, &api_b][i % 2];
        let r = api
            .http
            .get(format!("{}/v1/services", api.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => admitted[i % 2] += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().contains_key("retry-after"));
                refused[i % 2] += 1
            }
            other => panic!("request {i}: {other}"),
        }
    }
    let allowed = 20 + start.elapsed().as_secs_f64().ceil() as usize;
    let total = admitted[0] + admitted[1];
    assert!(
        (20..=allowed).contains(&total),
        "{total} admitted ({admitted:?}), at most {allowed} across both processes"
    );
    assert!(refused[0] > 0 && refused[1] > 0, "refused {refused:?}");

    // Failed authentications from one address, split over the processes:
    // the sixth, wherever it lands, blocks the address on both.
    let wrong = format!("p1_{}", "0".repeat(52));
    for i in 0..6 {
        let api = [&api_a, &api_b][i % 2];
        let r = api
            .http
            .get(format!("{}/v1/tenants", api.base))
            .bearer_auth(&wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    for api in [&api_a, &api_b] {
        // Even the platform key (whose own rate is untouched): the address
        // is blocked for the rest of its 60 s window.
        let r = api
            .http
            .get(format!("{}/v1/tenants", api.base))
            .bearer_auth(&platform)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{}", api.base);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            retry > 30,
            "the address window, not the key's rate: {retry}"
        );
    }
    a.kill();
    b.kill();
}

/// The ids an event stream delivered, in order, across reconnections.
#[derive(Default)]
struct Seen {
    ids: Vec<i64>,
    /// Connections made (the first, then each resume).
    connections: usize,
    /// Resumes that landed on a different process than the last stream.
    switched: usize,
}

/// Follow the tenant's event stream from the start, on whichever API
/// process answers, resuming with `Last-Event-ID` after every disconnect.
async fn follow(ports: [u16; 2], key: String, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut which = 1; // start on the second process
    let mut last_port = None;
    while !stop.load(Ordering::Relaxed) {
        let port = ports[which];
        let last = seen.lock().unwrap().ids.last().copied().unwrap_or(0);
        let resp = http
            .get(format!("http://127.0.0.1:{port}/v1/events"))
            .bearer_auth(&key)
            .header("last-event-id", last.to_string())
            .send()
            .await;
        let mut resp = match resp {
            Ok(r) if r.status().is_success() => r,
            // That process is down (or restarting): try the other.
            _ => {
                which = 1 - which;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        {
            let mut s = seen.lock().unwrap();
            s.connections += 1;
            if last_port.is_some_and(|p| p != port) {
                s.switched += 1;
            }
        }
        last_port = Some(port);
        let mut pending = String::new();
        loop {
            let chunk = tokio::select! {
                c = resp.chunk() => c,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) { return; }
                    continue;
                }
            };
            let Ok(Some(bytes)) = chunk else { break };
            pending.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if let Some(id) = line.strip_prefix("id:") {
                    let id: i64 = id.trim().parse().expect("numeric event id");
                    seen.lock().unwrap().ids.push(id);
                }
            }
        }
        // The stream ended (its process died): resume on the other one.
        which = 1 - which;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_three_workers_keep_orders_exactly_once_and_events_whole() {
    const ROUNDS: usize = 10;
    const ORDERS_PER_ROUND: usize = 4;
    let test_start = Instant::now();
    let (pool, db_url) = panel1_store::testing::fresh_database().await;
    let sim = panel1_sims::WhmSimulator::start(panel1_sims::SimConfig::default())
        .await
        .unwrap();
    let env = Env::new(db_url, "many");
    let ports = [free_port(), free_port()];
    let mut apis: Vec<Proc> = ports.iter().map(|p| env.serve(*p, &[API_ONLY])).collect();
    for a in &mut apis {
        a.ready().await;
    }
    let names = ["w1", "w2", "w3"];
    let mut workers: Vec<Proc> = names.iter().map(|n| env.worker(n, 4)).collect();
    let (key, server_id) = Api::on(ports[0]).stage(&env.platform_key(), &sim).await;
    let tenant: uuid::Uuid = sqlx::query_scalar("SELECT tenant_id FROM servers")
        .fetch_one(&pool)
        .await
        .unwrap();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let follower = tokio::spawn(follow(ports, key.clone(), seen.clone(), stop.clone()));

    let http = reqwest::Client::new();
    // (idempotency key, username, the service its answers named)
    let mut orders: Vec<(String, String, Option<String>)> = Vec::new();
    let mut killed = [0usize; 5];
    // Requests whose connection died with an API process.
    let mut lost = 0;
    let mut next = support::random_below(0x0005_1805);
    for round in 0..ROUNDS {
        for i in 0..ORDERS_PER_ROUND {
            orders.push((format!("mp-{round}-{i}"), format!("mp{round}x{i}"), None));
        }
        // This round's victim: each API process and each worker in turn.
        let victim = round % 5;
        let delay = Duration::from_millis(next(200));
        let pending: Vec<(usize, String, String)> = orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.2.is_none())
            .map(|(i, o)| (i, o.0.clone(), o.1.clone()))
            .collect();
        let sends = pending.iter().enumerate().map(|(n, (i, idem, user))| {
            // Orders alternate between the API processes and arrive over
            // the round, so the kill lands among requests in flight.
            let base = format!("http://127.0.0.1:{}", ports[i % 2]);
            let (http, key, server) = (&http, &key, &server_id);
            let after = Duration::from_millis(40 * n as u64);
            async move {
                tokio::time::sleep(after).await;
                (*i, place(http, &base, key, server, (idem, user)).await)
            }
        });
        let kill_one = async {
            tokio::time::sleep(delay).await;
            // SIGKILL, then a new process in its place (a new worker name,
            // as the default `worker-<pid>-…` names are).
            if victim < 2 {
                apis[victim].sigkill();
                apis[victim] = env.serve(ports[victim], &[API_ONLY]);
            } else {
                let w = victim - 2;
                workers[w].sigkill();
                workers[w] = env.worker(&format!("{}.{round}", names[w]), 4);
            }
            killed[victim] += 1;
        };
        let (outcomes, ()) = tokio::join!(futures::future::join_all(sends), kill_one);
        for (i, o) in outcomes {
            lost += usize::from(matches!(o, Outcome::Lost));
            record(&mut orders[i], o);
        }
        for a in &mut apis {
            a.ready().await;
        }
    }

    // Every order is retried (on either process) until answered.
    let settle = Instant::now();
    for (n, order) in orders.iter_mut().enumerate() {
        while order.2.is_none() {
            let base = format!("http://127.0.0.1:{}", ports[n % 2]);
            let o = place(&http, &base, &key, &server_id, (&order.0, &order.1)).await;
            record(order, o);
            assert!(
                settle.elapsed() < Duration::from_secs(30),
                "{} never answered",
                order.0
            );
        }
    }
    let logs = || {
        apis.iter()
            .chain(workers.iter())
            .map(|p| p.log())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let active =
        support::wait_all_active(&pool, orders.len(), Duration::from_secs(60), &logs).await;

    // One service per order, the one its answers named; one account each.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT spec->>'username', min(id::text), count(*) FROM services GROUP BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), orders.len(), "services for exactly the orders");
    for (user, id, n) in &rows {
        assert_eq!(*n, 1, "{user}: {n} services");
        let order = orders.iter().find(|o| &o.1 == user).unwrap();
        assert_eq!(Some(id), order.2.as_ref(), "{}", order.0);
    }
    let mut accounts: Vec<String> = sim.accounts().into_iter().map(|a| a.user).collect();
    accounts.sort();
    let mut wanted: Vec<String> = orders.iter().map(|o| o.1.clone()).collect();
    wanted.sort();
    assert_eq!(accounts, wanted, "one WHM account per username");
    assert_eq!(active, orders.len());
    // More than one worker process did the work.
    let by: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT split_part(worker, '.', 1) FROM task_attempts WHERE outcome = 'succeeded'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(by.len() >= 2, "succeeded on {by:?}");

    // The stream, across its reconnections, saw every event exactly once.
    let want: Vec<i64> = sqlx::query_scalar("SELECT id FROM events WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(&pool)
        .await
        .unwrap();
    let wait = Instant::now();
    while seen.lock().unwrap().ids.len() < want.len() && wait.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    follower.await.unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let unique: HashSet<i64> = seen.ids.iter().copied().collect();
    assert_eq!(unique.len(), seen.ids.len(), "an event delivered twice");
    assert_eq!(
        unique,
        want.iter().copied().collect::<HashSet<i64>>(),
        "events missed"
    );
    assert!(
        seen.switched >= 2,
        "the stream resumed on the other process {} times",
        seen.switched
    );
    assert!(killed.iter().all(|k| *k >= 2), "{killed:?}");
    eprintln!(
        "{} orders ({lost} requests lost with their process), kills per process {killed:?}, {} events over {} connections ({} switched), {} s",
        orders.len(),
        seen.ids.len(),
        seen.connections,
        seen.switched,
        test_start.elapsed().as_secs()
    );
    for p in apis.into_iter().chain(workers) {
        p.kill();
    }
    sim.shutdown().await;
}

fn record(order: &mut (String, String, Option<String>), o: Outcome) {
    match o {
        Outcome::Answered { service, .. } => {
            if let Some(had) = &order.2 {
                assert_eq!(had, &service, "{}: two services for one key", order.0);
            }
            order.2 = Some(service);
        }
        Outcome::InProgress => panic!("{}: 409 idempotency-in-progress", order.0),
        Outcome::Lost => {}
    }
}
