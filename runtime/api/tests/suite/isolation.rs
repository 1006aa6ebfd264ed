//! Tenant isolation and authorization, walked over every endpoint of the
//! OpenAPI document (a new endpoint is covered the day it is added).

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn methods(item: &Value) -> Vec<Method> {
    ["get", "post", "delete", "put", "patch"]
        .iter()
        .filter(|m| item.get(**m).is_some())
        .map(|m| Method::from_bytes(m.to_uppercase().as_bytes()).unwrap())
        .collect()
}

/// A body that passes validation for each POST, so only ownership decides.
fn body_for(path: &str) -> Option<Value> {
    Some(match path {
        p if p.ends_with("/change-package") => json!({"plan": "pro"}),
        p if p.ends_with("/sync-policy") => json!({"policy": "report"}),
        p if p.ends_with("/usage-schedule") => json!({"interval_seconds": 3600}),
        "/v1/bulk" => json!({"action": "refresh-status", "selector": {"all": true}}),
        p if p.ends_with("/migrate") => json!({"target_server_id": uuid::Uuid::nil()}),
        p if p.ends_with("/change-password") => json!({"password_secret": "api-token"}),
        p if p.ends_with("/keys") => json!({"name": "k", "scopes": ["read"]}),
        "/v1/backup-policies" => {
            json!({"name": "nightly", "cron": "0 3 * * *", "retention": {"daily": 7}})
        }
        _ => json!({}),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_hides_other_tenants_objects_and_checks_keys() {
    let api = Api::start().await;
    let a = setup(&api, "tenant-a", None).await;
    // Objects of tenant A: an own adapter upload, a service with a task, a key.
    let own = api
        .upload(&a.key, "private-adapter", "1.0.0", component("reference"))
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{:?}", own.body);
    let own_version = own.body["id"].as_str().unwrap().to_string();
    // A webhook endpoint first, so the service's events become deliveries.
    let hook = api
        .post(
            &a.key,
            "/v1/webhooks",
            json!({"url": "https://billing.example.com/hooks"}),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{:?}", hook.body);
    let hook = hook.body["id"].as_str().unwrap().to_string();
    let r = api
        .post(
            &a.key,
            "/v1/services",
            json!({"server_id": a.server, "username": "alice"}),
        )
        .await;
    let service = r.body["service"]["id"].as_str().unwrap().to_string();
    let task = r.body["task"]["id"].as_str().unwrap().to_string();
    let k = api
        .post(
            &a.key,
            "/v1/keys",
            json!({"name": "reader", "scopes": ["read"]}),
        )
        .await;
    let a_read_key = k.body["key"].as_str().unwrap().to_string();
    let a_key_id = k.body["id"].as_str().unwrap().to_string();
    // A sync run and a bulk operation of A's.
    let run = api
        .post(&a.key, &format!("/v1/servers/{}/sync", a.server), json!({}))
        .await;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{:?}", run.body);
    let a_run = run.body["id"].as_str().unwrap().to_string();
    let bulk = api
        .post(
            &a.key,
            "/v1/bulk",
            json!({"action": "refresh-status", "selector": {"service_ids": [service]}}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::ACCEPTED, "{:?}", bulk.body);
    let a_bulk = bulk.body["id"].as_str().unwrap().to_string();
    // A migration record of A's (its steps need a 0.2.0 adapter; only the
    // record matters here).
    let a_migration: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO service_migrations (id, tenant_id, service_id, source_server_id, target_server_id,
                                         previous_state, grace_period_seconds, export_task_id,
                                         import_task_id, verify_task_id, terminate_task_id)
         SELECT gen_random_uuid(), s.tenant_id, s.id, s.server_id, s.server_id, 'active', 0,
                gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid()
         FROM services s WHERE s.id = $1::uuid RETURNING id",
    )
    .bind(&service)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    let a_migration = a_migration.to_string();
    // A backup policy and a backup record of A's (the reference adapter
    // is 0.1.0: it cannot make one, so the record is written as a 0.2.0
    // adapter's would be).
    let policy = api
        .post(
            &a.key,
            "/v1/backup-policies",
            json!({"name": "a", "cron": "0 3 * * *", "retention": {"daily": 7}}),
        )
        .await;
    assert_eq!(policy.status, StatusCode::CREATED, "{:?}", policy.body);
    let a_policy = policy.body["id"].as_str().unwrap().to_string();
    let a_backup = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO backups (id, tenant_id, service_id, server_id, trigger, provider_backup_id, state)
         SELECT $1::uuid, tenant_id, id, server_id, 'request', 'b1', 'complete' FROM services WHERE id = $2::uuid",
    )
    .bind(&a_backup)
    .bind(&service)
    .execute(&api.pool)
    .await
    .unwrap();
    // A shadow run of A's (pending: no worker runs here; only the record
    // matters).
    let a_shadow_run: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO shadow_runs (id, tenant_id, candidate_version_id, max_attempts)
         VALUES (gen_random_uuid(), $1::uuid, $2::uuid, 1) RETURNING id",
    )
    .bind(&a.tenant)
    .bind(&own_version)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    let (_, b_key) = api.tenant("tenant-b").await;
    let deliveries = api
        .get(&a.key, &format!("/v1/webhooks/{hook}/deliveries"))
        .await;
    let delivery = deliveries.body["items"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("a delivery of the service's events: {:?}", deliveries.body));

    let doc = api
        .call(Method::GET, "/v1/openapi.json", None, None, &[])
        .await
        .body;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "the document lists every endpoint");
    let mut walked = 0;
    for (path, item) in paths {
        if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
            continue;
        }
        let platform_only = path.starts_with("/v1/tenants");
        let concrete = path
            .replace("/v1/tenants/{id}", &format!("/v1/tenants/{}", a.tenant))
            .replace("/v1/keys/{id}", &format!("/v1/keys/{a_key_id}"))
            .replace("/v1/adapters/{id}", &format!("/v1/adapters/{own_version}"))
            .replace("/v1/servers/{id}", &format!("/v1/servers/{}", a.server))
            .replace("/v1/services/{id}", &format!("/v1/services/{service}"))
            .replace("/v1/tasks/{id}", &format!("/v1/tasks/{task}"))
            .replace("/v1/secrets/{name}", "/v1/secrets/api-token")
            .replace("/v1/webhooks/{id}", &format!("/v1/webhooks/{hook}"))
            .replace("{delivery_id}", &delivery.to_string())
            .replace("{run_id}", &a_shadow_run.to_string())
            .replace("/v1/sync-runs/{id}", &format!("/v1/sync-runs/{a_run}"))
            .replace("/v1/bulk/{id}", &format!("/v1/bulk/{a_bulk}"))
            .replace(
                "/v1/migrations/{id}",
                &format!("/v1/migrations/{a_migration}"),
            )
            .replace("/v1/backups/{id}", &format!("/v1/backups/{a_backup}"))
            .replace(
                "/v1/backup-policies/{id}",
                &format!("/v1/backup-policies/{a_policy}"),
            );
        assert!(!concrete.contains('{'), "no id for {path}");
        for method in methods(item) {
            walked += 1;
            let body = if [Method::POST, Method::PATCH, Method::PUT].contains(&method) {
                body_for(path)
            } else {
                None
            };
            // No key, a malformed key, an unknown well-formed key: 401.
            for key in [
                None,
                Some("nope"),
                Some("p1_0000000000000000000000000000000000000000000000000000"),
            ] {
                let r = api
                    .call(method.clone(), &concrete, key, body.clone(), &[])
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {key:?}"
                );
                assert_eq!(r.problem(), "unauthorized");
            }
            if platform_only {
                let r = api
                    .call(method.clone(), &concrete, Some(&b_key), body.clone(), &[])
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "tenant key on {method} {path}"
                );
                continue;
            }
            // Tenant endpoints refuse platform keys (except adapters: built-ins).
            if !path.starts_with("/v1/adapters") {
                let r = api
                    .call(
                        method.clone(),
                        &concrete,
                        Some(&api.platform_key),
                        body.clone(),
                        &[],
                    )
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "platform key on {method} {path}"
                );
            }
            // The event stream never ends for a valid key; its tenant
            // filtering is tested in lifecycle.rs.
            if path == "/v1/events" {
                continue;
            }
            // A read-only key cannot change anything.
            if method != Method::GET {
                let r = api
                    .call(
                        method.clone(),
                        &concrete,
                        Some(&a_read_key),
                        body.clone(),
                        &[],
                    )
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "read key on {method} {path}: {:?}",
                    r.body
                );
            }
            // Tenant B and A's objects.
            let r = api
                .call(method.clone(), &concrete, Some(&b_key), body.clone(), &[])
                .await;
            let owned_object = path.contains('{');
            if owned_object {
                assert_eq!(
                    r.status,
                    StatusCode::NOT_FOUND,
                    "B on {method} {path}: {:?}",
                    r.body
                );
                assert_eq!(r.problem(), "not-found");
            } else if method == Method::GET && path != "/v1/events" {
                assert_eq!(r.status, StatusCode::OK, "B lists {path}");
                let text = r.body.to_string();
                for id in [
                    &a.server,
                    &service,
                    &task,
                    &own_version,
                    &a_key_id,
                    &hook,
                    &a_run,
                    &a_bulk,
                    &a_migration,
                    &a_policy,
                    &a_backup,
                ] {
                    assert!(!text.contains(id.as_str()), "B's {path} shows A's {id}");
                }
            }
        }
    }
    assert!(walked >= 25, "walked {walked} endpoint methods");
    // A's objects are untouched by all of that.
    let r = api.get(&a.key, &format!("/v1/services/{service}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api
        .get(&a_read_key, &format!("/v1/adapters/{own_version}"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    api.shutdown().await;
}
