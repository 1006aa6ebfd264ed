//! One remote account, one service: a username is held by at most one live
//! (not terminated) service per server, whatever the idempotency keys and
//! however concurrent the creates; terminating the holder frees it.

use crate::common::{setup, Api};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_live_service_per_account_and_terminate_frees_it() {
    let api = Api::start().await;
    let s = setup(&api, "acct-co", None).await;
    let body = json!({"server_id": s.server, "username": "zed", "domain": "zed.test"});
    // Three orders for one account under three keys, at once.
    let keys = ["a", "b", "c"];
    let headers: Vec<[(&str, &str); 1]> = keys.iter().map(|k| [("idempotency-key", *k)]).collect();
    let replies = futures::future::join_all(headers.iter().map(|h| {
        api.call(
            Method::POST,
            "/v1/services",
            Some(&s.key),
            Some(body.clone()),
            h,
        )
    }))
    .await;
    let won: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(won.len(), 1, "{replies:?}");
    let holder = won[0].body["service"]["id"].as_str().unwrap().to_string();
    for r in replies.iter().filter(|r| r.status != StatusCode::ACCEPTED) {
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert_eq!(r.problem(), "conflict");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(&holder), "names the holder: {detail}");
        assert!(detail.contains("\"zed\""), "{detail}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM services")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The refused orders stored nothing: once the name is free, the same
    // key runs.
    let loser_key = keys
        .into_iter()
        .zip(&replies)
        .find(|(_, r)| r.status == StatusCode::CONFLICT)
        .unwrap()
        .0;

    // Another server of the tenant may have its own `zed`.
    let r = api
        .post(
            &s.key,
            "/v1/servers",
            json!({"name": "panel-2", "adapter_version_id": s.version,
                   "config": {"base_url": s.panel.base_url(), "owner": "reseller1"}}),
        )
        .await;
    let other_server = r.body["id"].as_str().unwrap().to_string();
    let r = api
        .post(
            &s.key,
            "/v1/services",
            json!({"server_id": other_server, "username": "zed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);

    // Services without a username have no account identity yet: not refused.
    for _ in 0..2 {
        let r = api
            .post(&s.key, "/v1/services", json!({"server_id": s.server}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    }

    // Terminated, the holder frees the name.
    api.wait_for(&s.key, &format!("/v1/services/{holder}"), |v| {
        v["state"] == "active"
    })
    .await;
    let r = api
        .post(
            &s.key,
            &format!("/v1/services/{holder}/terminate"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    api.wait_for(&s.key, &format!("/v1/services/{holder}"), |v| {
        v["state"] == "terminated"
    })
    .await;
    let r = api
        .call(
            Method::POST,
            "/v1/services",
            Some(&s.key),
            Some(body),
            &[("idempotency-key", loser_key)],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(r.headers.get("idempotent-replayed").is_none());
    assert_ne!(r.body["service"]["id"], holder.as_str());
    api.shutdown().await;
}

/// The index holds where the API does not look: a second live row for the
/// same account is refused by the database itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_a_second_live_service_for_an_account() {
    let (pool, _) = panel1_store::testing::fresh_database().await;
    let (tenant, server) = panel1_store::testing::tenant_and_server(&pool, 4).await;
    let spec = json!({"username": "amy"});
    let first = panel1_store::setup::add_service(&pool, tenant, server, &spec)
        .await
        .unwrap();
    let second = panel1_store::setup::add_service(&pool, tenant, server, &spec).await;
    assert!(second.is_err(), "a second live service for amy");
    // A provisioned service is known by its remote id.
    sqlx::query("UPDATE services SET remote_id = 'amy2', spec = '{}' WHERE id = $1")
        .bind(first)
        .execute(&pool)
        .await
        .unwrap();
    panel1_store::setup::add_service(&pool, tenant, server, &spec)
        .await
        .unwrap();
    let amy2 = json!({"username": "amy2"});
    // Held in every state but terminated.
    for state in ["failed", "suspended", "terminating"] {
        sqlx::query("UPDATE services SET state = $2::service_state WHERE id = $1")
            .bind(first)
            .bind(state)
            .execute(&pool)
            .await
            .unwrap();
        let clash = panel1_store::setup::add_service(&pool, tenant, server, &amy2).await;
        assert!(
            clash.is_err(),
            "amy2 is the {state} first service's account"
        );
    }
    sqlx::query("UPDATE services SET state = 'terminated' WHERE id = $1")
        .bind(first)
        .execute(&pool)
        .await
        .unwrap();
    panel1_store::setup::add_service(&pool, tenant, server, &amy2)
        .await
        .unwrap();
}
