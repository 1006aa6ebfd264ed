//! Service migrations end to end (docs/migration.md): the API, a real
//! Postgres, an in-process worker running the `backups-v2` fixture (world
//! 0.2.0, built from source into adapters/dist) on two servers. A move that
//! succeeds (steps in order, the service on the target, the source
//! terminated after a grace of 0); a move whose import fails (compensated:
//! the target cleaned up, the service still on the source and `active`,
//! the migration `failed` naming the import); and the requests refused
//! with a problem, never a 5xx.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// The backups-v2 fixture as a built-in adapter, inspected: its version id.
async fn v2_adapter(api: &Api) -> String {
    let r = api
        .upload(
            &api.platform_key,
            "backups-v2",
            "0.2.0",
            component("backups-v2"),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let v = api
        .wait_for(&api.platform_key, &format!("/v1/adapters/{id}"), |v| {
            v["status"] != "inspecting"
        })
        .await;
    assert_eq!(v["status"], "ready", "{v:?}");
    id
}

async fn server(api: &Api, key: &str, version: &str, name: &str) -> String {
    let r = api
        .post(
            key,
            "/v1/servers",
            json!({"name": name, "adapter_version_id": version, "config": {}, "egress": [],
                   "max_concurrency": 4}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// An active service on `server` (as a provision would leave it; the
/// fixture has no provision).
async fn active_service(pool: &PgPool, tenant: &str, server: &str, user: &str) -> String {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO services (id, tenant_id, server_id, spec, plan, state, remote_id)
         VALUES ($1, $2::uuid, $3::uuid, $4, 'basic', 'active', $5)",
    )
    .bind(id)
    .bind(tenant)
    .bind(server)
    .bind(
        json!({"username": user, "domain": format!("{user}.example"), "plan": "basic",
                 "contact_email": null, "params": {}}),
    )
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    id.to_string()
}

fn step<'a>(m: &'a Value, name: &str) -> &'a Value {
    m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {m:?}"))
}

fn names(m: &Value) -> Vec<String> {
    m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// The migration events of the service, in stream order.
async fn migration_events(pool: &PgPool, service: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT kind FROM events WHERE service_id = $1::uuid AND kind LIKE 'migration.%'
         ORDER BY tx, id",
    )
    .bind(service)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_moves_to_another_server_and_the_source_is_terminated_after_the_grace() {
    let api = Api::start().await;
    let version = v2_adapter(&api).await;
    let (tenant, key) = api.tenant("movers").await;
    let a = server(&api, &key, &version, "a").await;
    let b = server(&api, &key, &version, "b").await;
    let svc = active_service(&api.pool, &tenant, &a, "alice").await;

    let r = api
        .post(
            &key,
            &format!("/v1/services/{svc}/migrate"),
            json!({"target_server_id": b, "grace_period_seconds": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["state"], "running");
    assert_eq!(
        names(&r.body),
        ["export", "import", "verify", "switch", "terminate"]
    );
    let during = api.get(&key, &format!("/v1/services/{svc}")).await;
    assert!(
        ["migrating", "active"].contains(&during.body["state"].as_str().unwrap()),
        "{:?}",
        during.body
    );

    let m = api
        .wait_for(&key, &format!("/v1/migrations/{id}"), |m| {
            m["state"] == "completed" || m["state"] == "failed"
        })
        .await;
    assert_eq!(m["state"], "completed", "{m:?}");
    assert!(m["failed_step"].is_null() && m["reason"].is_null(), "{m:?}");
    for s in ["export", "import", "verify", "switch", "terminate"] {
        assert_eq!(step(&m, s)["state"], "succeeded", "{s}: {m:?}");
    }
    // The service is on B, in the state it had.
    let s = api.get(&key, &format!("/v1/services/{svc}")).await.body;
    assert_eq!(s["server_id"], json!(b));
    assert_eq!(s["state"], "active");

    // Steps ran in order, each after the one before ended; the source's
    // terminate after the switch; the import got the export's package.
    let task = |name: &str| step(&m, name)["task_id"].as_str().unwrap().to_string();
    let times: Vec<(
        String,
        Option<chrono::DateTime<chrono::Utc>>,
        chrono::DateTime<chrono::Utc>,
    )> = sqlx::query_as(
        "SELECT t.operation, (SELECT min(started_at) FROM task_attempts a WHERE a.task_id = t.id),
                    t.finished_at
             FROM tasks t WHERE t.id = ANY ($1::uuid[]) ORDER BY t.finished_at",
    )
    .bind(vec![
        task("export"),
        task("import"),
        task("verify"),
        task("terminate"),
    ])
    .fetch_all(&api.pool)
    .await
    .unwrap();
    let ops: Vec<&str> = times.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(
        ops,
        ["export-service", "import-service", "status", "terminate"]
    );
    for w in times.windows(2) {
        assert!(
            w[1].1.unwrap() >= w[0].2,
            "{} started before {} ended",
            w[1].0,
            w[0].0
        );
    }
    let switched: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(m["switched_at"].clone()).unwrap();
    assert!(times[3].1.unwrap() >= switched);
    let (import_input, servers): (Value, Vec<String>) = sqlx::query_as(
        "SELECT (SELECT input FROM tasks WHERE id = $1::uuid),
                ARRAY(SELECT server_id::text FROM tasks WHERE id = ANY ($2::uuid[]) ORDER BY created_at)",
    )
    .bind(task("import"))
    .bind(vec![task("export"), task("import"), task("verify"), task("terminate")])
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(import_input["transfer"]["reference"], "alice.tar");
    assert_eq!(servers, [a.clone(), b.clone(), b.clone(), a.clone()]);
    assert_eq!(
        migration_events(&api.pool, &svc).await,
        [
            "migration.created",
            "migration.progress",
            "migration.progress",
            "migration.switched",
            "migration.completed"
        ]
    );
    // Listed for the tenant.
    let list = api
        .get(&key, &format!("/v1/migrations?service_id={svc}"))
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"][0]["id"], json!(id));
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_is_compensated_and_the_service_stays_on_its_server() {
    let api = Api::start().await;
    let version = v2_adapter(&api).await;
    let (tenant, key) = api.tenant("movers").await;
    let a = server(&api, &key, &version, "a").await;
    let b = server(&api, &key, &version, "b").await;
    let svc = active_service(&api.pool, &tenant, &a, "fail-import-bob").await;

    let r = api
        .post(
            &key,
            &format!("/v1/services/{svc}/migrate"),
            json!({"target_server_id": b, "grace_period_seconds": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let m = api
        .wait_for(&key, &format!("/v1/migrations/{id}"), |m| {
            m["state"] == "failed"
                && m["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["name"] == "cleanup" && s["state"] == "succeeded")
        })
        .await;
    assert_eq!(m["failed_step"], "import", "{m:?}");
    let reason = m["reason"].as_str().unwrap();
    assert!(
        reason.contains("import") && reason.contains("refused"),
        "{reason}"
    );
    assert_eq!(step(&m, "export")["state"], "succeeded");
    assert_eq!(step(&m, "import")["state"], "failed");
    for s in ["verify", "switch", "terminate"] {
        assert_eq!(step(&m, s)["state"], "cancelled", "{s}: {m:?}");
    }
    // The cleanup was a terminate on the target.
    let cleanup = step(&m, "cleanup")["task_id"].as_str().unwrap().to_string();
    let t = api.get(&key, &format!("/v1/tasks/{cleanup}")).await.body;
    assert_eq!(t["operation"], "terminate");
    assert_eq!(t["server_id"], json!(b));
    assert_eq!(t["input"]["service"]["username"], "fail-import-bob");
    // The source was never terminated; the service is where it was.
    let terminated_on_a: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_attempts a JOIN tasks t ON t.id = a.task_id
         WHERE t.server_id = $1::uuid AND t.operation = 'terminate'",
    )
    .bind(&a)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(terminated_on_a, 0);
    let s = api.get(&key, &format!("/v1/services/{svc}")).await.body;
    assert_eq!(s["server_id"], json!(a));
    assert_eq!(s["state"], "active");
    let events = migration_events(&api.pool, &svc).await;
    assert!(
        events.contains(&"migration.failed".to_string()),
        "{events:?}"
    );
    assert!(
        !events.contains(&"migration.switched".to_string()),
        "{events:?}"
    );
    // The service can be migrated again once this one ended (the record
    // of the failure is kept).
    let failed = api
        .get(
            &key,
            &format!("/v1/migrations?state=failed&service_id={svc}"),
        )
        .await;
    assert_eq!(failed.body["items"].as_array().unwrap().len(), 1);
    api.shutdown().await;
}

/// A refused request is a problem document with a 4xx status.
fn refused(r: &Reply, status: StatusCode, needle: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert!(
        r.content_type().starts_with("application/problem+json"),
        "{r:?}"
    );
    let text = r.body.to_string();
    assert!(text.contains(needle), "{needle:?} not in {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_that_cannot_be_are_refused_with_a_problem() {
    let api = Api::start().await;
    let v2 = v2_adapter(&api).await;
    // A tenant with a server on the reference adapter (world 0.1.0).
    let ctx = setup(&api, "movers", None).await;
    let (tenant, key) = (ctx.tenant.clone(), ctx.key.clone());
    let a = server(&api, &key, &v2, "a").await;
    let b = server(&api, &key, &v2, "b").await;
    let svc = active_service(&api.pool, &tenant, &a, "carol").await;
    let path = format!("/v1/services/{svc}/migrate");

    // Another adapter on the target.
    let r = api
        .post(&key, &path, json!({"target_server_id": ctx.server}))
        .await;
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "unsupported");
    // A 0.1.0 adapter on both sides (another server of the reference adapter).
    let ref2 = panel1_store::setup::add_server(
        &api.pool,
        &panel1_store::setup::NewServer {
            tenant_id: tenant.parse().unwrap(),
            name: "ref-2".into(),
            adapter_version_id: ctx.version.parse().unwrap(),
            config: json!({"base_url": ctx.panel.base_url(), "owner": "r"}),
            egress: json!({"rules": []}),
            max_concurrency: 4,
        },
    )
    .await
    .unwrap();
    let old = active_service(&api.pool, &tenant, &ctx.server, "dave").await;
    let r = api
        .post(
            &key,
            &format!("/v1/services/{old}/migrate"),
            json!({"target_server_id": ref2}),
        )
        .await;
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "export");
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "0.1.0");
    // Another tenant's server, and one that does not exist: not the caller's.
    let (_, other_key) = api.tenant("others").await;
    let theirs = server(&api, &other_key, &v2, "theirs").await;
    for target in [theirs, Uuid::now_v7().to_string()] {
        let r = api
            .post(&key, &path, json!({"target_server_id": target}))
            .await;
        refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "target_server_id");
    }
    // Another tenant cannot migrate this service (nor see it).
    let r = api
        .post(&other_key, &path, json!({"target_server_id": b}))
        .await;
    refused(&r, StatusCode::NOT_FOUND, "service");
    // Its own server.
    let r = api.post(&key, &path, json!({"target_server_id": a})).await;
    refused(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "already on this server",
    );
    // Bad bodies.
    for body in [
        json!({}),
        json!({"target_server_id": "not-a-uuid"}),
        json!({"target_server_id": b, "grace_period_seconds": -1}),
        json!({"target_server_id": b, "grace_period_seconds": 99_999_999}),
        json!({"target_server_id": b, "surprise": 1}),
    ] {
        let r = api.post(&key, &path, body.clone()).await;
        assert!(r.status.is_client_error(), "{body}: {:?}", r.body);
        assert!(r.content_type().starts_with("application/problem+json"));
    }
    let r = api
        .call(
            reqwest::Method::POST,
            &path,
            Some(&key),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    // A service that is not active or suspended.
    sqlx::query("UPDATE services SET state = 'failed' WHERE id = $1::uuid")
        .bind(&svc)
        .execute(&api.pool)
        .await
        .unwrap();
    let r = api.post(&key, &path, json!({"target_server_id": b})).await;
    refused(&r, StatusCode::CONFLICT, "failed");
    // While one migration runs, a second is refused, and so are the
    // service's other actions; its steps cannot be cancelled alone.
    sqlx::query("UPDATE services SET state = 'active' WHERE id = $1::uuid")
        .bind(&svc)
        .execute(&api.pool)
        .await
        .unwrap();
    let r = api
        .post(
            &key,
            &path,
            json!({"target_server_id": b, "grace_period_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let running = r.body["id"].as_str().unwrap().to_string();
    let terminate = step(&r.body, "terminate")["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = api.post(&key, &path, json!({"target_server_id": b})).await;
    refused(&again, StatusCode::CONFLICT, "migrat");
    let cancel = api
        .post(&key, &format!("/v1/tasks/{terminate}/cancel"), json!({}))
        .await;
    refused(&cancel, StatusCode::CONFLICT, "migration");
    // Unknown ids and filters.
    let r = api
        .get(&key, &format!("/v1/migrations/{}", Uuid::now_v7()))
        .await;
    refused(&r, StatusCode::NOT_FOUND, "migration");
    let r = api.get(&key, "/v1/migrations?state=sideways").await;
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "state");
    let r = api
        .get(&other_key, &format!("/v1/migrations/{running}"))
        .await;
    refused(&r, StatusCode::NOT_FOUND, "migration");
    let theirs = api.get(&other_key, "/v1/migrations").await;
    assert_eq!(theirs.body["items"], json!([]));
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_is_cancelled_before_its_switch_and_the_target_cleaned_up() {
    let api = Api::start().await;
    let version = v2_adapter(&api).await;
    let (tenant, key) = api.tenant("cancellers").await;
    let (_, other_key) = api.tenant("bystanders").await;
    let a = server(&api, &key, &version, "a").await;
    let b = server(&api, &key, &version, "b").await;
    let svc = active_service(&api.pool, &tenant, &a, "erin").await;
    let r = api
        .post(
            &key,
            &format!("/v1/services/{svc}/migrate"),
            json!({"target_server_id": b, "grace_period_seconds": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    // Hold the verify (it still waits on the import): the import runs on
    // B, the switch does not come.
    let verify = step(&r.body, "verify")["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    sqlx::query(
        "UPDATE task_waits SET not_before = now() + interval '1 hour' WHERE task_id = $1::uuid",
    )
    .bind(&verify)
    .execute(&api.pool)
    .await
    .unwrap();
    let path = format!("/v1/migrations/{id}");
    api.wait_for(&key, &path, |m| step(m, "import")["state"] == "succeeded")
        .await;

    // Another tenant's id is not found; the owner cancels.
    let cancel = format!("/v1/migrations/{id}/cancel");
    refused(
        &api.post(&other_key, &cancel, json!({})).await,
        StatusCode::NOT_FOUND,
        "migration",
    );
    let r = api.post(&key, &cancel, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "failed");
    assert_eq!(r.body["failed_step"], "cancel");
    assert!(r.body["reason"].as_str().unwrap().contains("cancelled"));
    for s in ["verify", "switch", "terminate"] {
        assert_eq!(step(&r.body, s)["state"], "cancelled", "{s}: {:?}", r.body);
    }
    // The import made the account on B: a cleanup terminate there runs.
    let m = api
        .wait_for(&key, &path, |m| {
            names(m).contains(&"cleanup".to_string()) && step(m, "cleanup")["state"] == "succeeded"
        })
        .await;
    let cleanup = step(&m, "cleanup")["task_id"].as_str().unwrap().to_string();
    let t = api.get(&key, &format!("/v1/tasks/{cleanup}")).await.body;
    assert_eq!(
        (t["operation"].as_str(), t["server_id"].as_str()),
        (Some("terminate"), Some(b.as_str()))
    );
    // The service is back, active, on A; the source was never terminated.
    let s = api.get(&key, &format!("/v1/services/{svc}")).await.body;
    assert_eq!(
        (s["state"].as_str(), s["server_id"].as_str()),
        (Some("active"), Some(a.as_str()))
    );
    let terminated_on_a: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_records WHERE server_id = $1::uuid AND operation = 'terminate' AND state = 'succeeded'",
    )
    .bind(&a)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(terminated_on_a, 0);
    assert!(migration_events(&api.pool, &svc)
        .await
        .contains(&"migration.cancelled".to_string()));

    // Once ended, a cancel is refused; so is one after a switch.
    refused(
        &api.post(&key, &cancel, json!({})).await,
        StatusCode::CONFLICT,
        "already ended",
    );
    let r = api
        .post(
            &key,
            &format!("/v1/services/{svc}/migrate"),
            json!({"target_server_id": b, "grace_period_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let second = r.body["id"].as_str().unwrap().to_string();
    api.wait_for(&key, &format!("/v1/migrations/{second}"), |m| {
        m["state"] == "switched"
    })
    .await;
    let r = api
        .post(&key, &format!("/v1/migrations/{second}/cancel"), json!({}))
        .await;
    refused(&r, StatusCode::CONFLICT, "has switched");
    refused(
        &api.post(
            &key,
            &format!("/v1/migrations/{}/cancel", Uuid::now_v7()),
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "migration",
    );
    api.shutdown().await;
}
