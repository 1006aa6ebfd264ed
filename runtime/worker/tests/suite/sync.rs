//! Service sync through real Postgres, real workers, the real cPanel
//! adapter in the sandbox and the WHM simulator: accounts changed behind
//! Panel1's back (through WHM's own API, as an admin would) show up in the
//! drift report; `adopt` and `reapply` do what they say and nothing more;
//! a busy service is skipped, never acted on; 10 000 accounts are paged
//! through; a failing page ends the run failed; runs never overlap.
// Only part of the cPanel harness is used here.
use crate::common::stop;
use crate::harness::{create_behind, pairs, whm_admin};
#[allow(dead_code)]
use crate::whm;
use crate::whm::{Setup, Whm};
use panel1_sims::{Account, Fault, FaultRule};
use panel1_store::sync::{self, Policy};
use std::time::{Duration, Instant};

/// Suspended, re-planned, deleted and created behind Panel1's back: each
/// is reported as what it is, with events, and nothing is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_names_each_kind_of_drift_and_changes_nothing() {
    let h = Whm::start(Setup::default()).await;
    let svcs = h.provisioned(&["alice", "bob", "carol", "dave"]).await;
    whm_admin(
        &h.sim,
        "suspendacct",
        &[("user", "alice"), ("reason", "abuse")],
    )
    .await;
    whm_admin(&h.sim, "changepackage", &[("user", "bob"), ("pkg", "pro")]).await;
    whm_admin(&h.sim, "removeacct", &[("username", "carol")]).await;
    create_behind(&h.sim, "erin", "default");
    let calls_before = h.sim.request_log().len();

    let run = h.sync_once().await;
    assert_eq!(run.state, "completed", "{run:?}");
    assert_eq!(run.policy, "report");
    assert_eq!(run.pages, 1);
    assert_eq!(run.remote_accounts, 4, "alice, bob, dave, erin");
    let counts = (
        run.missing_remotely,
        run.unknown_remotely,
        run.state_differs,
        run.plan_differs,
        run.skipped,
    );
    assert_eq!(counts, (1, 1, 1, 1, 0), "{run:?}");
    assert_eq!((run.adopted, run.reapplied), (0, 0));

    let (kinds, items) = h.report(run.id).await;
    assert_eq!(
        kinds,
        pairs(&[
            ("missing_remotely", "carol"),
            ("unknown_remotely", "erin"),
            ("state_differs", "alice"),
            ("plan_differs", "bob"),
        ])
    );
    let alice = items.iter().find(|d| d.kind == "state_differs").unwrap();
    assert_eq!(alice.service_id, Some(svcs[0]));
    assert_eq!(
        (alice.panel1_state.as_deref(), alice.remote_state.as_deref()),
        (Some("active"), Some("suspended"))
    );
    let bob = items.iter().find(|d| d.kind == "plan_differs").unwrap();
    assert_eq!(
        (bob.panel1_plan.as_deref(), bob.remote_plan.as_deref()),
        (Some("basic"), Some("pro"))
    );
    let erin = items.iter().find(|d| d.kind == "unknown_remotely").unwrap();
    assert_eq!(
        (
            erin.service_id,
            erin.remote_state.as_deref(),
            erin.remote_domain.as_deref()
        ),
        (None, Some("active"), Some("erin.example.net"))
    );
    assert!(items.iter().all(|d| d.action.is_none()));

    // Events: the summary, and one per difference on a Panel1 service.
    let done = h.events_of("server.sync_completed").await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1["run_id"], run.id.to_string());
    assert_eq!(
        (
            done[0].1["missing_remotely"].as_i64(),
            done[0].1["unknown_remotely"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let drifted: Vec<_> = h.events_of("service.drift_detected").await;
    let mut on: Vec<_> = drifted
        .iter()
        .map(|(s, p)| (s.unwrap(), p["kind"].as_str().unwrap().to_string()))
        .collect();
    on.sort();
    let mut want = vec![
        (svcs[0], "state_differs".to_string()),
        (svcs[1], "plan_differs".to_string()),
        (svcs[2], "missing_remotely".to_string()),
    ];
    want.sort();
    assert_eq!(on, want);

    // Nothing changed: no service moved, no operation was enqueued, only
    // listaccts reached WHM, and the page task wrote no task event.
    for (svc, state) in svcs.iter().zip(["active", "active", "active", "active"]) {
        assert_eq!(h.service_row(*svc).await.0, state);
        assert_eq!(h.tasks_of(*svc).await.len(), 1, "only the provision");
    }
    let functions: Vec<String> = h.sim.request_log()[calls_before..]
        .iter()
        .map(|r| r.function.clone())
        .collect();
    assert_eq!(functions, ["listaccts"]);
    let page_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e JOIN task_records t ON t.id = e.task_id WHERE t.operation = 'list-services'",
    )
    .fetch_one(&h.pool)
    .await
    .unwrap();
    assert_eq!(page_events, 0);
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_remote_items")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(
        staged, 0,
        "the staged listing is gone once the report is made"
    );
    h.assert_nothing_leaked().await;
}

/// `adopt`: accounts created outside Panel1 become services of the
/// server's tenant with the provider's id, plan and state; the next run
/// finds nothing left to report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_makes_unknown_accounts_services_of_the_tenant() {
    let h = Whm::start(Setup::default()).await;
    h.provisioned(&["alice"]).await;
    h.set_policy(Policy::Adopt).await;
    create_behind(&h.sim, "frank", "pro");
    h.sim
        .add_account(Account::new("grace", "grace.example.net").suspended_for("unpaid"))
        .unwrap();

    let run = h.sync_once().await;
    assert_eq!(
        (run.state.as_str(), run.unknown_remotely, run.adopted),
        ("completed", 2, 2),
        "{run:?}"
    );
    let (_, items) = h.report(run.id).await;
    for d in &items {
        assert_eq!(
            (d.kind.as_str(), d.action.as_deref()),
            ("unknown_remotely", Some("adopted"))
        );
        let svc = d.service_id.expect("the adopted service");
        let (tenant, state, remote, plan): (uuid::Uuid, String, Option<String>, Option<String>) =
            sqlx::query_as(
                "SELECT tenant_id, state::text, remote_id, plan FROM services WHERE id = $1",
            )
            .bind(svc)
            .fetch_one(&h.pool)
            .await
            .unwrap();
        assert_eq!(tenant, h.tenant);
        let want = match d.remote_id.as_deref() {
            Some("frank") => ("active", "pro"),
            Some("grace") => ("suspended", "default"),
            other => panic!("{other:?}"),
        };
        assert_eq!((state.as_str(), plan.as_deref()), (want.0, Some(want.1)));
        assert_eq!(remote, d.remote_id);
    }
    let adopted = h.events_of("service.adopted").await;
    assert_eq!(adopted.len(), 2);
    assert!(adopted
        .iter()
        .all(|(s, p)| s.is_some() && p["run_id"] == run.id.to_string()));
    assert_eq!(
        h.sim.count_calls("createacct"),
        1,
        "adopting creates nothing remotely"
    );

    let again = h.sync_once().await;
    assert_eq!(
        (
            again.unknown_remotely,
            again.adopted,
            again.missing_remotely
        ),
        (0, 0, 0),
        "{again:?}"
    );
}

/// `reapply`: Panel1's state and plan go back to WHM through ordinary
/// tasks (unsuspend, change-package); an account deleted behind Panel1's
/// back is reported, never provisioned again, and nothing is terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapply_restores_panel1s_state_through_ordinary_tasks() {
    let h = Whm::start(Setup::default()).await;
    let svcs = h.provisioned(&["alice", "bob", "carol"]).await;
    h.set_policy(Policy::Reapply).await;
    whm_admin(&h.sim, "suspendacct", &[("user", "alice")]).await;
    whm_admin(&h.sim, "changepackage", &[("user", "bob"), ("pkg", "pro")]).await;
    whm_admin(&h.sim, "removeacct", &[("username", "carol")]).await;
    create_behind(&h.sim, "erin", "default");

    let (id, _) = h.start_sync().await;
    let workers = h.workers(1);
    let run = h.finished_run(id).await;
    assert_eq!(
        (run.state.as_str(), run.reapplied),
        ("completed", 2),
        "{run:?}"
    );
    let (_, items) = h.report(run.id).await;
    let action = |kind: &str| {
        items
            .iter()
            .find(|d| d.kind == kind)
            .and_then(|d| d.action.clone())
    };
    assert_eq!(action("state_differs").as_deref(), Some("unsuspend"));
    assert_eq!(action("plan_differs").as_deref(), Some("change-package"));
    assert_eq!(action("missing_remotely"), None);
    assert_eq!(action("unknown_remotely"), None);
    // The enqueued operations run like any other.
    h.wait_all_finished().await;
    stop(workers).await;
    assert_eq!(
        h.tasks_of(svcs[0]).await,
        pairs(&[("provision", "succeeded"), ("unsuspend", "succeeded")])
    );
    assert_eq!(
        h.tasks_of(svcs[1]).await,
        pairs(&[("provision", "succeeded"), ("change-package", "succeeded")])
    );
    assert_eq!(
        h.tasks_of(svcs[2]).await.len(),
        1,
        "carol: nothing enqueued"
    );
    assert!(!h.sim.account("alice").unwrap().suspended);
    assert_eq!(h.sim.account("bob").unwrap().plan, "basic");
    assert!(h.sim.account("carol").is_none(), "not provisioned again");
    assert!(h.sim.account("erin").is_some(), "not terminated");
    assert_eq!(h.sim.count_calls("createacct"), 3);
    assert_eq!(h.sim.count_calls("removeacct"), 1, "only the admin's");

    let again = h.sync_once().await;
    assert_eq!(
        (again.state_differs, again.plan_differs, again.reapplied),
        (0, 0, 0),
        "{again:?}"
    );
    assert_eq!((again.missing_remotely, again.unknown_remotely), (1, 1));
}

/// A service with an operation queued, or changed after the run started, is
/// reported as skipped (not drift) and `reapply` leaves it alone; the idle
/// one next to it is re-applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_service_is_skipped_and_never_acted_on() {
    let h = Whm::start(Setup::default()).await;
    let svcs = h.provisioned(&["alice", "bob", "carol"]).await;
    h.set_policy(Policy::Reapply).await;
    for u in ["alice", "bob", "carol"] {
        whm_admin(&h.sim, "suspendacct", &[("user", u)]).await;
    }
    // alice: an operation is queued (scheduled for later).
    let mut later = panel1_store::NewTask::new(
        h.tenant,
        h.server,
        Some(svcs[0]),
        "status",
        whm::existing("alice"),
    );
    later.run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let mut conn = h.pool.acquire().await.unwrap();
    panel1_store::enqueue(&mut conn, &later).await.unwrap();
    drop(conn);
    // carol: changed after the run started (as a completion would).
    let (id, _) = h.start_sync().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    sqlx::query("UPDATE services SET updated_at = now() WHERE id = $1")
        .bind(svcs[2])
        .execute(&h.pool)
        .await
        .unwrap();
    let workers = h.workers(1);
    let run = h.finished_run(id).await;
    assert_eq!(
        (run.state_differs, run.skipped, run.reapplied),
        (1, 2, 1),
        "{run:?}"
    );
    let (kinds, items) = h.report(run.id).await;
    assert_eq!(
        kinds,
        pairs(&[
            ("skipped", "alice"),
            ("state_differs", "bob"),
            ("skipped", "carol")
        ])
    );
    let reason = |u: &str| {
        items
            .iter()
            .find(|d| d.remote_id.as_deref() == Some(u))
            .unwrap()
            .reason
            .clone()
            .unwrap_or_default()
    };
    assert!(
        reason("alice").contains("queued or running"),
        "{}",
        reason("alice")
    );
    assert!(
        reason("carol").contains("changed after the run started"),
        "{}",
        reason("carol")
    );
    assert!(items
        .iter()
        .filter(|d| d.kind == "skipped")
        .all(|d| d.action.is_none()));
    let drifted: Vec<_> = h
        .events_of("service.drift_detected")
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        drifted,
        [Some(svcs[1])],
        "no drift event for a skipped service"
    );

    h.wait_until_task_done(svcs[1], "unsuspend").await;
    stop(workers).await;
    assert!(!h.sim.account("bob").unwrap().suspended);
    assert!(h.sim.account("alice").unwrap().suspended, "alice untouched");
    assert!(h.sim.account("carol").unwrap().suspended, "carol untouched");
    assert_eq!(h.sim.count_calls("unsuspendacct"), 1);
    assert_eq!(
        h.tasks_of(svcs[2]).await.len(),
        1,
        "carol: only the provision"
    );
}

/// 10 000 accounts on WHM are paged through (250 a page, 40 page tasks,
/// two workers) within a bounded time; the three Panel1 knows are matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_ten_thousand_accounts() {
    let h = Whm::start(Setup::default()).await;
    h.provisioned(&["a00001x", "m05000x", "z09999x"]).await;
    for i in 0..9_997 {
        create_behind(&h.sim, &format!("u{i:05}"), "default");
    }
    assert_eq!(h.sim.accounts().len(), 10_000);
    let started = Instant::now();
    let (id, _) = h.start_sync().await;
    let workers = h.workers(2);
    let run = h.finished_run(id).await;
    let took = started.elapsed();
    stop(workers).await;
    assert_eq!(run.state, "completed", "{run:?}");
    assert_eq!(run.pages, 40);
    assert_eq!(run.remote_accounts, 10_000);
    assert_eq!(
        (
            run.unknown_remotely,
            run.missing_remotely,
            run.state_differs,
            run.plan_differs
        ),
        (9_997, 0, 0, 0)
    );
    assert_eq!(h.sim.count_calls("listaccts"), 40);
    assert!(
        took < Duration::from_secs(50),
        "10 000 accounts took {took:?}"
    );
    let pages: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT state::text, idempotency_key FROM tasks WHERE operation = 'list-services' ORDER BY created_at",
    )
    .fetch_all(&h.pool)
    .await
    .unwrap();
    assert_eq!(pages.len(), 40);
    assert!(pages.iter().enumerate().all(|(i, (s, k))| s == "succeeded"
        && k.as_deref() == Some(format!("panel1:sync:{id}:{i}").as_str())));
    println!("10 000 accounts: {took:?}");
}

/// A page whose list call finally fails ends the run failed with the
/// reason and an event; the next run starts and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_list_call_ends_the_run_failed() {
    let h = Whm::start(Setup::default()).await;
    for i in 0..300 {
        create_behind(&h.sim, &format!("u{i:03}"), "default");
    }
    // The first listaccts answers, the second gets WHM's login page
    // (auth-failed: not retried).
    h.sim
        .inject(FaultRule::next("listaccts", Fault::Slow(Duration::ZERO), 1));
    h.sim
        .inject(FaultRule::next("listaccts", Fault::LoginPage, 1));
    let run = h.sync_once().await;
    assert_eq!((run.state.as_str(), run.pages), ("failed", 1), "{run:?}");
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("page 2") && error.contains("auth-failed"),
        "{error}"
    );
    assert_eq!(run.unknown_remotely, 0, "no report from a partial listing");
    let failed = h.events_of("server.sync_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1["error"], error);
    assert!(h.report(run.id).await.0.is_empty());

    let again = h.sync_once().await;
    assert_eq!(
        (again.state.as_str(), again.pages, again.unknown_remotely),
        ("completed", 2, 300)
    );
}

/// Runs never overlap on a server: asked twice, one run; due for a
/// recurring run on many workers at once, one run; a cancelled page task
/// ends its run. Another tenant sees none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_at_a_time_and_only_for_its_tenant() {
    let h = Whm::start(Setup::default()).await;
    let (first, created) = h.start_sync().await;
    assert!(created);
    assert_eq!(
        h.start_sync().await,
        (first, false),
        "the run in progress is answered"
    );
    // Due now, scheduled from eight callers at once: the one in progress
    // stands, no second run.
    sqlx::query("UPDATE sync_settings SET next_run_at = now() - interval '1 second'")
        .execute(&h.pool)
        .await
        .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let p = h.pool.clone();
            tokio::spawn(async move { sync::schedule_due(&p).await.unwrap() })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 0);
    }
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(runs, 1);
    let next: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT next_run_at FROM sync_settings")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert!(
        next > chrono::Utc::now() + chrono::Duration::hours(23),
        "the next recurring run is a day away"
    );

    // Cancelling the page ends the run; then a due recurring run starts once.
    let page: uuid::Uuid = sqlx::query_scalar("SELECT page_task_id FROM sync_runs WHERE id = $1")
        .bind(first)
        .fetch_one(&h.pool)
        .await
        .unwrap();
    assert_eq!(
        panel1_store::cancel(&h.pool, h.tenant, page).await.unwrap(),
        panel1_store::TaskState::Cancelled
    );
    sqlx::query("UPDATE sync_settings SET next_run_at = now() - interval '1 second'")
        .execute(&h.pool)
        .await
        .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let p = h.pool.clone();
            tokio::spawn(async move { sync::schedule_due(&p).await.unwrap() })
        })
        .collect();
    let mut started = 0;
    for c in calls {
        started += c.await.unwrap();
    }
    assert_eq!(started, 1);
    let r = h.run(first).await;
    assert_eq!(r.state, "failed");
    assert!(
        r.error.as_deref().unwrap_or("").contains("cancelled"),
        "{r:?}"
    );
    let second: (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, trigger FROM sync_runs WHERE state = 'running'")
            .fetch_one(&h.pool)
            .await
            .unwrap();
    assert_eq!(second.1, "schedule");
    let workers = h.workers(1);
    assert_eq!(h.finished_run(second.0).await.state, "completed");
    stop(workers).await;

    // Another tenant: not its server, not its runs.
    let other = panel1_store::setup::create_tenant(&h.pool, "other")
        .await
        .unwrap();
    let mut tx = h.pool.begin().await.unwrap();
    assert_eq!(
        sync::start_run(&mut tx, other, h.server, sync::Trigger::Request)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        sync::settings(&mut tx, other, h.server).await.unwrap(),
        None
    );
    assert_eq!(
        sync::set_settings(&mut tx, other, h.server, Policy::Adopt, 600, true)
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();
    assert!(sync::get_run(&h.pool, other, first)
        .await
        .unwrap()
        .is_none());
    let filter = sync::RunFilter::default();
    assert!(
        sync::list_runs(&h.pool, other, &filter, uuid::Uuid::max(), 50)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        sync::drift(&h.pool, other, second.0, &Default::default(), 0, 50)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sync::settings(&mut h.pool.acquire().await.unwrap(), h.tenant, h.server)
            .await
            .unwrap()
            .unwrap()
            .policy,
        Policy::Report
    );
}
