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

use crate::support;
use crate::support::{free_port, place, Api, Env, Outcome};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Deaths: a third each before commit, after commit, and at a random moment.
/// (36 deaths take about a minute here.)
const ROUNDS: usize = 36;
const NEW_ORDERS_PER_ROUND: usize = 3;

struct Order {
    key: String,
    username: String,
    /// The service every 2xx answer for this key named.
    service: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_sigkill_at_every_point_exactly_once() {
    let test_start = Instant::now();
    let (pool, db_url) = panel1_store::testing::fresh_database().await;
    let sim = panel1_sims::WhmSimulator::start(panel1_sims::SimConfig::default())
        .await
        .unwrap();
    let env = Env::new(db_url, "chaos");
    let port = free_port();
    let serve = |fault: Option<&str>| match fault {
        Some(f) => env.serve(port, &[("PANEL1_TEST_FAULTS", f)]),
        None => env.serve(port, &[]),
    };
    let api = Api::on(port);
    let base = api.base.clone();

    // Setting the stage on a first life: a tenant, the WHM token, a server.
    let mut first = serve(None);
    first.ready().await;
    let (key, server_id) = api.stage(&env.platform_key(), &sim).await;
    first.kill();

    let mut orders: Vec<Order> = Vec::new();
    let mut tally = Tally::default();
    let mut fired: BTreeMap<&str, usize> = BTreeMap::new();
    let mut next = support::random_below(0x5eed_1804);
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
        let mut life = serve(fault.as_deref());
        life.ready().await;
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
                life.kill();
            });
            *fired.entry("sigkill").or_default() += 1;
            outcomes
        } else {
            let outcomes = futures::future::join_all(sends).await;
            let (died, log) = life.wait_exit(Duration::from_secs(2)).await;
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
    let mut last = serve(None);
    last.ready().await;
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
    // 90 s at most: a task whose worker died is rescued from its session.
    let active =
        support::wait_all_active(&pool, orders.len(), Duration::from_secs(90), &|| last.log())
            .await;
    last.kill();

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
