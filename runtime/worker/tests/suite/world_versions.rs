//! One worker, one sandbox, adapters of both world versions: the reference
//! adapter (0.1.0) against the fake panel and a 0.2.0 adapter, their tasks
//! through the same queue and completion path. A backup task on the 0.1.0
//! adapter fails at once as `unsupported` (never retried); on the 0.2.0
//! adapter it succeeds with the backup as its result.

use crate::common::*;
use panel1_store::setup::{self, NewServer};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

async fn task(e: &Env, id: Uuid) -> (String, i32, Option<Value>, Option<Value>) {
    sqlx::query_as("SELECT state::text, attempt, result, last_error FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(&e.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_runs_adapters_of_both_world_versions() {
    let e = env(1, 4).await;
    let v1_server = e.servers[0];
    let v2 = install_builtin(&e.pool, "backups-v2").await;
    let world: String =
        sqlx::query_scalar("SELECT world_version FROM adapter_versions WHERE id = $1")
            .bind(v2)
            .fetch_one(&e.pool)
            .await
            .unwrap();
    assert_eq!(world, "0.2.0");
    let v2_server = setup::add_server(
        &e.pool,
        &NewServer {
            tenant_id: e.tenant,
            name: "backups-v2".into(),
            adapter_version_id: v2,
            config: json!({}),
            egress: json!({"rules": []}),
            max_concurrency: 4,
        },
    )
    .await
    .unwrap();
    let alice = e.service(v1_server, "alice").await;
    let bob = e.service(v2_server, "bob").await;

    let (provision, _) = e
        .enqueue(
            v1_server,
            Some(alice),
            "provision",
            json!({"service": spec("alice")}),
            None,
        )
        .await;
    let (v1_backup, _) = e
        .enqueue(
            v1_server,
            Some(alice),
            "create-backup",
            json!({"service": spec("alice")}),
            None,
        )
        .await;
    let (v2_backup, _) = e
        .enqueue(
            v2_server,
            Some(bob),
            "create-backup",
            json!({"service": spec("bob")}),
            None,
        )
        .await;

    let workers = e.workers(1, fast());
    e.wait_until(
        "SELECT count(*) = 0 FROM tasks WHERE state NOT IN ('succeeded', 'failed', 'cancelled')",
        Duration::from_secs(30),
    )
    .await;
    stop(workers).await;

    let (state, _, result, _) = task(&e, provision).await;
    assert_eq!(state, "succeeded");
    assert_eq!(result.unwrap()["remote_id"], "alice");

    let (state, attempts, result, _) = task(&e, v2_backup).await;
    assert_eq!(state, "succeeded");
    assert_eq!(attempts, 1);
    let result = result.unwrap();
    // The task id is the idempotency key the adapter saw.
    assert_eq!(result["backup_id"], format!("bob-{v2_backup}"));
    assert_eq!(result["state"], "pending");

    let (state, attempts, _, error) = task(&e, v1_backup).await;
    assert_eq!(state, "failed");
    assert_eq!(attempts, 1, "unsupported is not retried");
    let error = error.unwrap();
    assert_eq!(error["kind"], "unsupported", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("0.1.0"),
        "{error}"
    );
    // The 0.1.0 adapter's own work was not disturbed.
    assert_eq!(e.service_state(alice).await, "active");
}
