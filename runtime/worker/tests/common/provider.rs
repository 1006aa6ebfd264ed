//! A tenant with one server of a provider adapter (a built-in component)
//! against a simulator, in a fresh database; tasks run by in-process
//! workers; the rows and logs a leak check reads.
use super::logs::{capture_logs, logs};
use super::{fast, install_builtin, secret_box, spawn_workers, stop};
use panel1_sandbox::EgressRule;
use panel1_store::setup::{self, NewServer};
use panel1_store::{testing, NewTask};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct ProviderServer {
    pub pool: PgPool,
    pub tenant: Uuid,
    pub server: Uuid,
    /// Secret values that must appear in no row and no log line.
    pub forbidden: Vec<String>,
}

/// What the server connection is made of.
pub struct Connection<'a> {
    pub adapter: &'a str,
    pub config: Value,
    /// One egress rule (`https://…/ sha256:…`).
    pub rule: String,
    /// Secrets `(name, value)`, all bound to `127.0.0.1:port`.
    pub secrets: Vec<(&'a str, String)>,
    pub port: u16,
}

impl ProviderServer {
    pub async fn start(c: Connection<'_>) -> ProviderServer {
        capture_logs();
        let (pool, _url) = testing::fresh_database().await;
        let tenant = setup::create_tenant(&pool, &format!("tenant-{}", Uuid::new_v4()))
            .await
            .unwrap();
        let version = install_builtin(&pool, c.adapter).await;
        let rule = EgressRule::parse(&c.rule).unwrap();
        let server = setup::add_server(
            &pool,
            &NewServer {
                tenant_id: tenant,
                name: c.adapter.into(),
                adapter_version_id: version,
                config: c.config,
                egress: json!({ "rules": [rule] }),
                max_concurrency: 4,
            },
        )
        .await
        .unwrap();
        let sb = secret_box();
        let mut forbidden = Vec::new();
        for (name, value) in c.secrets {
            let secret = setup::put_secret(&pool, &sb, tenant, name, &value)
                .await
                .unwrap();
            setup::bind_secret(&pool, server, secret, &[format!("127.0.0.1:{}", c.port)])
                .await
                .unwrap();
            forbidden.push(value);
        }
        ProviderServer {
            pool,
            tenant,
            server,
            forbidden,
        }
    }

    pub async fn service(&self, spec: Value) -> Uuid {
        setup::add_service(&self.pool, self.tenant, self.server, &spec)
            .await
            .unwrap()
    }

    /// Run one task on service `svc` with one worker until it ends: its
    /// final state and `(outcome, error kind)` per attempt.
    pub async fn run(
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

    /// `(state, remote_id)` of a service.
    pub async fn service_state(&self, svc: Uuid) -> (String, Option<String>) {
        sqlx::query_as("SELECT state::text, remote_id FROM services WHERE id = $1")
            .bind(svc)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// No forbidden value (nor `extra`) is in any row or log line; the
    /// adapter's `log_line` was stored (so the check read something).
    pub async fn assert_nothing_leaked(&self, log_line: &str, extra: &[&str]) {
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
            texts.iter().any(|t| t.contains(log_line)),
            "the adapter's log lines were stored"
        );
        let forbidden = self
            .forbidden
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied());
        for secret in forbidden {
            // A PEM is checked line by line (its body lines are the secret).
            for part in secret
                .lines()
                .filter(|l| l.len() > 20 && !l.starts_with("-----"))
            {
                for t in &texts {
                    assert!(!t.contains(part), "a secret leaked: {t:.300}");
                }
            }
            if !secret.contains('\n') {
                for t in &texts {
                    assert!(!t.contains(secret), "a secret leaked: {t:.300}");
                }
            }
        }
    }
}

/// `(outcome, error kind)` pairs from literals.
pub fn attempts(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    list.iter()
        .map(|(o, k)| (o.to_string(), k.map(String::from)))
        .collect()
}
