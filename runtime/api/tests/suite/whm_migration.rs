//! A WHM → WHM migration end to end (docs/migration.md, "WHM → WHM"): the
//! REST API, a real Postgres, the in-process worker running the real cPanel
//! adapter (built from source into adapters/dist), and two WHM simulators
//! on loopback. The target WHM pulls the account from the source with a
//! transfer session, logging in with the source's root password, which the
//! host binds for the import call only.
//!
//! - It moves: the account is on B with its domain, plan (the package
//!   created there) and owner; the service points at B; after the short
//!   grace the account is gone from A; both request logs show the
//!   transfer; the root password is in no stored row.
//! - A wrong root password: the migration fails at the import with an
//!   authentication reason, is compensated (nothing on B, A untouched, the
//!   service active on A).

use crate::common::*;
use panel1_sims::{Account, Package, SimConfig, WhmSimulator, REDACTED};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// The cPanel adapter uploaded and inspected: its version id.
async fn cpanel_adapter(api: &Api) -> String {
    let r = api
        .upload(&api.platform_key, "cpanel", "0.1.0", component("cpanel"))
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

async fn secret(api: &Api, key: &str, name: &str, value: &str) {
    let r = api
        .post(key, "/v1/secrets", json!({"name": name, "value": value}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// A cPanel server for `sim`, its egress pinned to the simulator's
/// certificate, `secrets` bound to its address only.
async fn whm_server(
    api: &Api,
    key: &str,
    version: &str,
    name: &str,
    sim: &WhmSimulator,
    secrets: &[&str],
) -> String {
    let port = sim.addr().port();
    let rule = format!("{}/json-api/ sha256:{}", sim.base_url(), sim.cert_sha256());
    let bound: Vec<Value> = secrets
        .iter()
        .map(|n| json!({"name": n, "destinations": [format!("127.0.0.1:{port}")]}))
        .collect();
    let r = api
        .post(
            key,
            "/v1/servers",
            json!({"name": name, "adapter_version_id": version,
                   "config": {"host": "127.0.0.1", "port": port, "whm_user": "root",
                              "request_timeout_ms": 5000},
                   "egress": [rule], "max_concurrency": 4, "secrets": bound}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// An active service for an account that exists on the source.
async fn active_service(pool: &PgPool, tenant: &str, server: &str, user: &str) -> String {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO services (id, tenant_id, server_id, spec, plan, state, remote_id)
         VALUES ($1, $2::uuid, $3::uuid, $4, 'gold', 'active', $5)",
    )
    .bind(id)
    .bind(tenant)
    .bind(server)
    .bind(
        json!({"username": user, "domain": format!("{user}.example"), "plan": "gold",
                 "contact_email": null, "params": {}}),
    )
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    id.to_string()
}

struct World {
    api: Api,
    key: String,
    a: WhmSimulator,
    b: WhmSimulator,
    server_a: String,
    server_b: String,
    service: String,
}

/// Two simulators sharing one API token (a tenant has one `whm-token`),
/// B able to reach A; `root_password` is what server A's
/// `whm-root-password` secret holds.
async fn world(tenant: &str, root_password: Option<&str>) -> World {
    let api = Api::start().await;
    let version = cpanel_adapter(&api).await;
    let (tenant, key) = api.tenant(tenant).await;
    let token = "SHAREDWHMTOKEN0123456789ABCDEF";
    let a = WhmSimulator::start(SimConfig::with_token(token))
        .await
        .unwrap();
    let b = WhmSimulator::start(SimConfig::with_token(token))
        .await
        .unwrap();
    b.add_remote("127.0.0.1", &a.base_url());
    a.add_package(Package::new("gold", Some(2048), Some(8192)));
    a.add_account(
        Account::new("alice1", "alice1.example")
            .with_plan("gold")
            .with_contact_email("alice@example.net"),
    )
    .unwrap();
    secret(&api, &key, "whm-token", token).await;
    let pw = root_password.map_or_else(|| a.root_password().to_string(), str::to_string);
    secret(&api, &key, "whm-root-password", &pw).await;
    let server_a = whm_server(
        &api,
        &key,
        &version,
        "whm-a",
        &a,
        &["whm-token", "whm-root-password"],
    )
    .await;
    let server_b = whm_server(&api, &key, &version, "whm-b", &b, &["whm-token"]).await;
    let service = active_service(&api.pool, &tenant, &server_a, "alice1").await;
    World {
        api,
        key,
        a,
        b,
        server_a,
        server_b,
        service,
    }
}

impl World {
    async fn migrate(&self, grace: i64) -> Value {
        let r = self
            .api
            .post(
                &self.key,
                &format!("/v1/services/{}/migrate", self.service),
                json!({"target_server_id": self.server_b, "grace_period_seconds": grace}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        self.api
            .wait_for(&self.key, &format!("/v1/migrations/{id}"), |m| {
                m["state"] == "completed" || m["state"] == "failed"
            })
            .await
    }

    fn functions(sim: &WhmSimulator) -> Vec<String> {
        sim.request_log().into_iter().map(|r| r.function).collect()
    }
}

/// Rows holding `needle` anywhere in the stored tasks and attempts.
async fn stored(pool: &PgPool, needle: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM task_records t WHERE t::text LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM task_attempts a WHERE a::text LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM events e WHERE e::text LIKE '%' || $1 || '%')",
    )
    .bind(needle)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_moves_between_two_whm_servers_with_a_transfer_session() {
    let w = world("whm-movers", None).await;
    let m = w.migrate(1).await;
    assert_eq!(m["state"], "completed", "{m:?}");
    assert!(m["reason"].is_null(), "{m:?}");

    // On B as it was on A: domain, plan (the package came along), owner.
    let moved = w.b.account("alice1").expect("the account is on the target");
    assert_eq!(moved.domain, "alice1.example");
    assert_eq!(moved.plan, "gold");
    assert_eq!(moved.contact_email, "alice@example.net");
    assert!(!moved.suspended);
    assert!(w
        .b
        .packages()
        .iter()
        .any(|p| p.name == "gold" && p.disk_quota_mb == Some(2048)));
    // Gone from A once the grace (1 s) passed: the migration completes
    // with the source's terminate.
    assert!(w.a.account("alice1").is_none(), "{:?}", w.a.accounts());

    let svc = w
        .api
        .get(&w.key, &format!("/v1/services/{}", w.service))
        .await
        .body;
    assert_eq!(svc["server_id"], w.server_b.as_str(), "{svc:?}");
    assert_eq!(svc["state"], "active");
    assert_eq!(svc["remote_id"], "alice1");

    // B ran the session; A was read by it (Basic auth as root) and removed
    // the account after the grace.
    let on_b = World::functions(&w.b);
    for f in [
        "create_remote_root_transfer_session",
        "enqueue_transfer_item",
        "start_transfer_session",
        "get_transfer_session_state",
    ] {
        assert!(on_b.iter().any(|x| x == f), "{f} not in B's log {on_b:?}");
    }
    let create =
        w.b.request_log()
            .into_iter()
            .find(|r| r.function == "create_remote_root_transfer_session")
            .unwrap();
    assert_eq!(create.params["host"], "127.0.0.1");
    assert_eq!(create.params["password"], REDACTED);
    assert_eq!(create.method, "POST", "the password goes in the body");
    let sessions = w.b.transfer_sessions();
    assert_eq!(sessions.len(), 1, "one transfer: {sessions:?}");
    assert_eq!(sessions[0].state, "COMPLETED");
    assert_eq!(
        sessions[0].items,
        vec![("alice1".to_string(), "alice1".to_string())]
    );
    let on_a = World::functions(&w.a);
    for f in ["version", "accountsummary", "listpkgs", "removeacct"] {
        assert!(on_a.iter().any(|x| x == f), "{f} not in A's log {on_a:?}");
    }
    // The root password went only to B, in the request the host filled in.
    assert_eq!(stored(&w.api.pool, w.a.root_password()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_source_password_fails_the_migration_and_leaves_both_servers_as_they_were() {
    let w = world("whm-wrong-pw", Some("not-the-root-password")).await;
    let m = w.migrate(0).await;
    assert_eq!(m["state"], "failed", "{m:?}");
    assert_eq!(m["failed_step"], "import", "{m:?}");
    let reason = m["reason"].as_str().unwrap();
    assert!(reason.contains("auth-failed"), "{reason}");
    assert!(reason.contains("refused the transfer's login"), "{reason}");

    // Compensated: the cleanup on B ran, nothing is there; A untouched.
    let m = w
        .api
        .wait_for(
            &w.key,
            &format!("/v1/migrations/{}", m["id"].as_str().unwrap()),
            |m| {
                m["steps"].as_array().unwrap().iter().any(|s| {
                    s["name"] == "cleanup" && (s["state"] == "succeeded" || s["state"] == "failed")
                })
            },
        )
        .await;
    assert!(w.b.account("alice1").is_none(), "{:?}", w.b.accounts());
    assert!(w.b.transfer_sessions().is_empty(), "no session was made");
    let a = w.a.account("alice1").expect("still on A");
    assert!(!a.suspended);
    assert!(!World::functions(&w.a).iter().any(|f| f == "removeacct"));
    let svc = w
        .api
        .get(&w.key, &format!("/v1/services/{}", w.service))
        .await
        .body;
    assert_eq!(svc["server_id"], w.server_a.as_str(), "{svc:?} {m:?}");
    assert_eq!(svc["state"], "active");
    // B tried to log in to A and was refused.
    let refused =
        w.a.request_log()
            .into_iter()
            .filter(|r| r.auth == panel1_sims::AuthOutcome::Wrong)
            .count();
    assert!(refused >= 1, "A saw no refused login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_on_the_target_fails_the_import_and_the_account_there_is_kept() {
    let w = world("whm-taken", None).await;
    // Someone else's account on B with the same username, another domain.
    w.b.add_account(Account::new("alice1", "someone-else.example"))
        .unwrap();
    let m = w.migrate(0).await;
    assert_eq!(m["state"], "failed", "{m:?}");
    assert_eq!(m["failed_step"], "import", "{m:?}");
    let reason = m["reason"].as_str().unwrap();
    assert!(reason.contains("conflict"), "{reason}");
    assert!(reason.contains("left as it is"), "{reason}");
    // No cleanup step: terminating on B would remove the other account.
    assert!(
        !m["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "cleanup"),
        "{m:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let kept =
        w.b.account("alice1")
            .expect("the other account is still on B");
    assert_eq!(kept.domain, "someone-else.example");
    assert!(!World::functions(&w.b).iter().any(|f| f == "removeacct"));
    assert!(w.a.account("alice1").is_some(), "A untouched");
}
