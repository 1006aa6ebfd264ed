//! Backups over the API (docs/backups.md), with the in-process worker and
//! the backups-v2 fixture (world 0.2.0): an on-demand backup is followed to
//! `complete`, listed, restored (a `restore-backup` task) and deleted on
//! the provider; a 0.1.0 adapter's service gets a 422 naming it; another
//! tenant sees none of it. Policies: validated to 4xx problems (never a
//! 500), one per scope, changed, deleted.

use crate::common::*;
use panel1_store::setup::{self, NewAdapterVersion, NewServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn server(api: &Api, tenant: &str, version: Uuid) -> Uuid {
    setup::add_server(
        &api.pool,
        &NewServer {
            tenant_id: tenant.parse().unwrap(),
            name: format!("s-{version}"),
            adapter_version_id: version,
            config: json!({}),
            egress: json!({"rules": []}),
            max_concurrency: 4,
        },
    )
    .await
    .unwrap()
}

/// A service already live on its server.
async fn active(api: &Api, tenant: &str, server: Uuid, user: &str) -> String {
    let id = setup::add_service(
        &api.pool,
        tenant.parse().unwrap(),
        server,
        &json!({"username": user, "domain": format!("{user}.test"), "plan": "basic"}),
    )
    .await
    .unwrap();
    sqlx::query("UPDATE services SET state = 'active', remote_id = $2 WHERE id = $1")
        .bind(id)
        .bind(user)
        .execute(&api.pool)
        .await
        .unwrap();
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_backup_restore_and_delete() {
    let api = Api::start().await;
    let (a, key) = api.tenant("backups-a").await;
    let (_, other) = api.tenant("backups-b").await;
    let r = api
        .upload(
            &api.platform_key,
            "backups-v2",
            "0.2.0",
            component("backups-v2"),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let v2: Uuid = r.body["id"].as_str().unwrap().parse().unwrap();
    let v1: Uuid = api.reference_adapter().await.parse().unwrap();
    api.wait_for(&api.platform_key, &format!("/v1/adapters/{v2}"), |v| {
        v["status"] == "ready"
    })
    .await;
    let alice = active(&api, &a, server(&api, &a, v2).await, "alice").await;
    let carol = active(&api, &a, server(&api, &a, v1).await, "carol").await;

    let r = api
        .post(&key, &format!("/v1/services/{alice}/backups"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["state"], "pending");
    assert_eq!(r.body["trigger"], "request");
    assert_eq!(r.body["policy_id"], Value::Null);
    let id = r.body["id"].as_str().unwrap().to_string();
    let b = api
        .wait_for(&key, &format!("/v1/backups/{id}"), |v| {
            v["state"] != "pending"
        })
        .await;
    assert_eq!(b["state"], "complete", "{b}");
    assert_eq!(b["size_bytes"], 4096);
    assert_eq!(b["status_checks"], 1);
    let provider_id = b["provider_backup_id"].as_str().unwrap().to_string();
    assert!(provider_id.starts_with("alice-"), "{provider_id}");
    let list = api
        .get(
            &key,
            &format!("/v1/services/{alice}/backups?state=complete"),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    let r = api
        .get(&key, &format!("/v1/services/{alice}/backups?state=lost"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Restore: an ordinary task on the service, given the provider's id.
    let r = api
        .post(&key, &format!("/v1/backups/{id}/restore"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["task"]["operation"], "restore-backup");
    assert_eq!(r.body["task"]["service_id"], alice.as_str());
    let task = r.body["task"]["id"].as_str().unwrap().to_string();
    let t = api
        .wait_for(&key, &format!("/v1/tasks/{task}"), |v| {
            v["finished_at"] != Value::Null
        })
        .await;
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(
        t["result"]["details"]["restored_from"],
        provider_id.as_str()
    );
    assert_eq!(t["attempts"].as_array().unwrap().len(), 1);

    // Another tenant sees none of it.
    for (method, path) in [
        (Method::GET, format!("/v1/backups/{id}")),
        (Method::POST, format!("/v1/backups/{id}/restore")),
        (Method::DELETE, format!("/v1/backups/{id}")),
        (Method::GET, format!("/v1/services/{alice}/backups")),
        (Method::POST, format!("/v1/services/{alice}/backups")),
    ] {
        let r = api
            .call(method.clone(), &path, Some(&other), None, &[])
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(r.problem(), "not-found");
    }

    // A 0.1.0 adapter: a 422 naming it, and no record.
    let r = api
        .post(&key, &format!("/v1/services/{carol}/backups"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.problem(), "validation");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("does not support backups") && detail.contains("0.1.0"),
        "{detail}"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM backups WHERE service_id = $1::uuid")
        .bind(&carol)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // Delete on the provider; then it is gone for restore and delete.
    let r = api.delete(&key, &format!("/v1/backups/{id}")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["state"], "deleting");
    let b = api
        .wait_for(&key, &format!("/v1/backups/{id}"), |v| {
            v["state"] != "deleting"
        })
        .await;
    assert_eq!(b["state"], "deleted", "{b}");
    assert!(b["deleted_at"].is_string());
    let r = api.delete(&key, &format!("/v1/backups/{id}")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let r = api
        .post(&key, &format!("/v1/backups/{id}/restore"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_validated_scoped_and_changed() {
    let api = Api::start_with(config(), false).await;
    let (a, key) = api.tenant("policies-a").await;
    let (b, other) = api.tenant("policies-b").await;
    let version = setup::add_adapter_version(
        &api.pool,
        &NewAdapterVersion {
            tenant: Some(b.parse().unwrap()),
            name: "any",
            version: "1",
            sha256: &"0".repeat(64),
            world_version: "0.2.0",
            component: b"not run here",
            report: &json!({}),
        },
    )
    .await
    .unwrap();
    let b_server = server(&api, &b, version).await;

    let good = json!({"name": "nightly", "plan": "basic", "cron": "0 3 * * *",
                      "window_seconds": 1800, "retention": {"daily": 7, "weekly": 4, "monthly": 6}});
    let r = api.post(&key, "/v1/backup-policies", good.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["retention"],
        json!({"daily": 7, "weekly": 4, "monthly": 6})
    );
    assert_eq!(r.body["window_seconds"], 1800);
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["last_run"], Value::Null);
    assert!(r.body["next_occurrence_at"]
        .as_str()
        .unwrap()
        .contains("T03:00:00"));
    // One policy per scope.
    let r = api.post(&key, "/v1/backup-policies", good.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);

    let with = |patch: Value| {
        let mut body = good.clone();
        body["plan"] = json!("other");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, field) in [
        (with(json!({"cron": "every day"})), "cron"),
        (with(json!({"cron": "* * * * * *"})), "cron"),
        (with(json!({"cron": "61 3 * * *"})), "cron"),
        (with(json!({"retention": {"daily": -1}})), "retention/daily"),
        (
            with(json!({"retention": {"weekly": 1000}})),
            "retention/weekly",
        ),
        (
            with(json!({"retention": {"daily": 0, "weekly": 0, "monthly": 0}})),
            "retention",
        ),
        (with(json!({"retention": {}})), "retention"),
        (with(json!({"window_seconds": 86401})), "window_seconds"),
        (with(json!({"window_seconds": -5})), "window_seconds"),
        (with(json!({"name": ""})), "name"),
        (with(json!({"plan": ""})), "plan"),
        (with(json!({"server_id": b_server})), "server_id"),
    ] {
        let r = api.post(&key, "/v1/backup-policies", body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert_eq!(r.problem(), "validation");
        assert!(
            r.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body}: {:?}",
            r.body
        );
    }
    for body in [
        with(json!({"surprise": 1})),
        json!({"name": "x", "cron": "0 3 * * *"}),
        json!({"name": "x", "cron": "0 3 * * *", "retention": {"daily": "seven"}}),
    ] {
        let r = api.post(&key, "/v1/backup-policies", body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
    }

    let path = format!("/v1/backup-policies/{id}");
    let patch = |k: &str, body: Value| {
        let p = path.clone();
        let k = k.to_string();
        let api = &api;
        async move { api.call(Method::PATCH, &p, Some(&k), Some(body), &[]).await }
    };
    // Other tenants' policies are not found.
    assert_eq!(api.get(&other, &path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        patch(&other, json!({"enabled": false})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete(&other, &path).await.status,
        StatusCode::NOT_FOUND
    );
    let list = api.get(&other, "/v1/backup-policies").await;
    assert_eq!(list.body["items"], json!([]));

    // Changes: bad ones refused, a new schedule moves the next occurrence.
    let r = patch(&key, json!({"cron": "nope"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = patch(
        &key,
        json!({"retention": {"daily": 0, "weekly": 0, "monthly": 0}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = patch(&key, json!({"retention": {"daily": -3}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = patch(
        &key,
        json!({"cron": "30 4 * * *", "retention": {"monthly": 0}, "name": "later"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["name"], "later");
    assert_eq!(
        r.body["retention"],
        json!({"daily": 7, "weekly": 4, "monthly": 0})
    );
    assert!(r.body["next_occurrence_at"]
        .as_str()
        .unwrap()
        .contains("T04:30:00"));
    let r = api.get(&key, "/v1/backup-policies").await;
    assert_eq!(r.body["items"][0]["id"], id.as_str());
    // A change refused against the stored retention (it would keep
    // nothing) writes none of itself: the name stays.
    let r = patch(
        &key,
        json!({"name": "renamed", "cron": "0 5 * * *", "retention": {"daily": 0, "weekly": 0}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = api.get(&key, &path).await;
    assert_eq!(r.body["name"], "later", "{:?}", r.body);
    assert_eq!(r.body["cron"], "30 4 * * *", "{:?}", r.body);

    assert_eq!(api.delete(&key, &path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&key, &path).await.status, StatusCode::NOT_FOUND);
    let _ = a;
    api.shutdown().await;
}
