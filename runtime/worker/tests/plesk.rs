//! The orchestrator with the real Plesk adapter: a real Postgres (a fresh
//! database), real workers, the real `plesk.wasm` in the real sandbox, and
//! the Plesk simulator over HTTPS on loopback (its certificate pinned, the
//! API key stored encrypted and bound to `127.0.0.1:PORT`).
//!
//! What is checked: a subscription Plesk created whose answer was lost is
//! retried and adopted, never made twice; the whole lifecycle runs as tasks;
//! a refused key fails at once; the key and the password appear nowhere in
//! the database or the worker's logs.
mod common;

use common::logs::{capture_logs, logs};
use common::{fast, install_builtin, secret_box, spawn_workers, stop};
use panel1_sandbox::EgressRule;
use panel1_sims::plesk::{PleskConfig, PleskSimulator};
use panel1_sims::{Fault, FaultRule};
use panel1_store::setup::{self, NewServer};
use panel1_store::{testing, NewTask};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;

const PASSWORD: &str = "Plesk#Pass-4417";

struct Harness {
    pool: PgPool,
    sim: PleskSimulator,
    tenant: Uuid,
    server: Uuid,
    key: String,
}

impl Harness {
    /// One tenant, one Plesk server; `key`: the secret's value (`None`: the
    /// simulator's key).
    async fn start(key: Option<&str>) -> Harness {
        capture_logs();
        let (pool, _url) = testing::fresh_database().await;
        let sim = PleskSimulator::start(PleskConfig::default())
            .await
            .expect("simulator");
        let tenant = setup::create_tenant(&pool, &format!("tenant-{}", Uuid::new_v4()))
            .await
            .unwrap();
        let version = install_builtin(&pool, "plesk").await;
        let sb = secret_box();
        let key = key.unwrap_or(sim.api_key()).to_string();
        let secret = setup::put_secret(&pool, &sb, tenant, "plesk-api-key", &key)
            .await
            .unwrap();
        let password = setup::put_secret(&pool, &sb, tenant, "svc-password", PASSWORD)
            .await
            .unwrap();
        let port = sim.addr().port();
        let rule =
            EgressRule::parse(&format!("{}/ sha256:{}", sim.api_url(), sim.cert_sha256())).unwrap();
        let server = setup::add_server(
            &pool,
            &NewServer {
                tenant_id: tenant,
                name: "plesk".into(),
                adapter_version_id: version,
                config: json!({"host": "127.0.0.1", "port": port, "request_timeout_ms": 1500}),
                egress: json!({ "rules": [rule] }),
                max_concurrency: 4,
            },
        )
        .await
        .unwrap();
        for s in [secret, password] {
            setup::bind_secret(&pool, server, s, &[format!("127.0.0.1:{port}")])
                .await
                .unwrap();
        }
        Harness {
            pool,
            sim,
            tenant,
            server,
            key,
        }
    }

    /// Run one task on service `svc` with one worker until it ends.
    async fn run(
        &self,
        svc: Uuid,
        op: &str,
        input: Value,
    ) -> (String, Vec<(String, Option<String>)>) {
        let t = NewTask::new(self.tenant, self.server, Some(svc), op, input);
        let mut conn = self.pool.acquire().await.unwrap();
        let task = panel1_store::enqueue(&mut conn, &t).await.unwrap().0;
        drop(conn);
        let workers = spawn_workers(&self.pool, &secret_box(), 1, fast());
        let start = Instant::now();
        let state = loop {
            let state: String = sqlx::query_scalar("SELECT state::text FROM tasks WHERE id = $1")
                .bind(task)
                .fetch_one(&self.pool)
                .await
                .unwrap();
            if state == "succeeded" || state == "failed" {
                break state;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "task {task} still {state}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        stop(workers).await;
        let attempts = sqlx::query_as(
            "SELECT outcome, error_kind FROM task_attempts WHERE task_id = $1 ORDER BY attempt",
        )
        .bind(task)
        .fetch_all(&self.pool)
        .await
        .unwrap();
        (state, attempts)
    }

    async fn service(&self, login: &str) -> Uuid {
        let spec = json!({
            "service_id": format!("svc-{login}"), "username": login,
            "domain": format!("{login}.example.com"), "plan": "Default Domain",
        });
        setup::add_service(&self.pool, self.tenant, self.server, &spec)
            .await
            .unwrap()
    }

    async fn service_state(&self, svc: Uuid) -> (String, Option<String>) {
        sqlx::query_as("SELECT state::text, remote_id FROM services WHERE id = $1")
            .bind(svc)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Neither the API key nor the password is in any row or log line.
    async fn assert_nothing_leaked(&self) {
        let mut texts = vec![logs()];
        for table in [
            "task_attempts",
            "tasks",
            "events",
            "services",
            "servers",
            "secrets",
        ] {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                    .fetch_all(&self.pool)
                    .await
                    .unwrap();
            texts.extend(rows);
        }
        assert!(
            texts.iter().any(|t| t.contains("plesk call")),
            "the adapter's log lines were stored"
        );
        for t in &texts {
            for secret in [self.key.as_str(), PASSWORD] {
                assert!(!t.contains(secret), "a secret leaked: {t:.300}");
            }
        }
    }
}

fn ok(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    list.iter()
        .map(|(o, k)| (o.to_string(), k.map(String::from)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_and_the_lifecycle_runs_as_tasks() {
    let h = Harness::start(None).await;
    h.sim.inject(FaultRule::next(
        "POST /domains",
        Fault::StallAfterApply(Duration::from_secs(10)),
        1,
    ));
    let svc = h.service("nina").await;
    let mut input = json!({ "service": {
        "service_id": "svc-nina", "username": "nina", "domain": "nina.example.com",
        "plan": "Default Domain", "contact_email": "nina@example.net",
    }});
    input["password_secret"] = json!("svc-password");
    let (state, attempts) = h.run(svc, "provision", input).await;
    assert_eq!(state, "succeeded");
    assert_eq!(
        attempts,
        ok(&[("adapter-error", Some("transient")), ("succeeded", None)])
    );
    assert_eq!(
        h.sim.count_calls("POST /domains"),
        1,
        "created exactly once"
    );
    assert_eq!(
        h.service_state(svc).await,
        ("active".into(), Some("nina.example.com".into()))
    );
    assert!(h.sim.client("nina").unwrap().password_is(PASSWORD));

    let existing =
        json!({ "service": { "service_id": "svc-nina", "remote_id": "nina.example.com" } });
    for (op, service_state, sub_state) in [
        ("suspend", "suspended", Some("suspended")),
        ("unsuspend", "active", Some("active")),
        ("terminate", "terminated", None),
    ] {
        let mut input = existing.clone();
        input["reason"] = json!("");
        let (state, _) = h.run(svc, op, input).await;
        assert_eq!(state, "succeeded", "{op}");
        assert_eq!(h.service_state(svc).await.0, service_state, "{op}");
        assert_eq!(
            h.sim
                .domain("nina.example.com")
                .map(|d| d.status)
                .as_deref(),
            sub_state,
            "{op}"
        );
    }
    assert!(
        h.sim.clients().is_empty(),
        "the customer went with its only subscription"
    );
    assert!(h.sim.request_log().iter().all(|r| r.well_formed()));
    h.assert_nothing_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_at_once() {
    let h = Harness::start(Some("not-the-key-0000-1111")).await;
    let svc = h.service("oscar").await;
    let (state, attempts) = h
        .run(
            svc,
            "provision",
            json!({ "service": {
                "service_id": "svc-oscar", "username": "oscar", "domain": "oscar.example.com",
            }}),
        )
        .await;
    assert_eq!(state, "failed");
    assert_eq!(
        attempts,
        ok(&[("adapter-error", Some("auth-failed"))]),
        "not retried"
    );
    assert!(h.sim.clients().is_empty());
    h.assert_nothing_leaked().await;
}
