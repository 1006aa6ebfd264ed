//! The sync tests' harness on top of the cPanel one (`whm.rs`): accounts
//! changed behind Panel1's back through WHM's own API (as an admin would),
//! runs started and awaited through the store, their reports read.
use crate::whm::{provision, Whm, WAIT};
use panel1_sims::{Account, WhmSimulator};
use panel1_store::sync::{self, DriftFilter, DriftItem, Policy, SyncRun, Trigger};
use serde_json::Value;
use std::time::Instant;
use uuid::Uuid;

/// Call a WHM API 1 function on the simulator as its root user would
/// (HTTPS on loopback, its certificate trusted); expects success.
pub async fn whm_admin(sim: &WhmSimulator, function: &str, params: &[(&str, &str)]) {
    let cert = reqwest::Certificate::from_der(sim.cert_der()).unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let mut query = vec![("api.version", "1")];
    query.extend_from_slice(params);
    let body: Value = http
        .get(format!("{}/json-api/{function}", sim.base_url()))
        .header("Authorization", sim.auth_header())
        .query(&query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["metadata"]["result"], 1, "{function}: {body}");
}

/// An account made on WHM without Panel1.
pub fn create_behind(sim: &WhmSimulator, user: &str, plan: &str) {
    sim.add_account(Account::new(user, &format!("{user}.example.net")).with_plan(plan))
        .unwrap();
}

impl Whm {
    /// Provision `users` through tasks and workers; their services.
    pub async fn provisioned(&self, users: &[&str]) -> Vec<Uuid> {
        let mut services = Vec::new();
        let mut tasks = Vec::new();
        for u in users {
            let svc = self.service(u).await;
            tasks.push(self.enqueue(svc, "provision", provision(u)).await);
            services.push(svc);
        }
        let workers = self.workers(1);
        for t in tasks {
            assert_eq!(self.finished(t).await, "succeeded");
        }
        crate::common::stop(workers).await;
        for (svc, u) in services.iter().zip(users) {
            self.assert_active(*svc, u).await;
        }
        services
    }

    pub async fn set_policy(&self, policy: Policy) {
        let mut conn = self.pool.acquire().await.unwrap();
        sync::set_settings(&mut conn, self.tenant, self.server, policy, 86_400, true)
            .await
            .unwrap()
            .expect("the tenant's server");
    }

    /// Start a run on demand: `(run, created)`.
    pub async fn start_sync(&self) -> (Uuid, bool) {
        let mut tx = self.pool.begin().await.unwrap();
        let started = sync::start_run(&mut tx, self.tenant, self.server, Trigger::Request)
            .await
            .unwrap()
            .expect("the tenant's server");
        tx.commit().await.unwrap();
        started
    }

    pub async fn run(&self, run: Uuid) -> SyncRun {
        sync::get_run(&self.pool, self.tenant, run)
            .await
            .unwrap()
            .expect("the tenant's run")
    }

    /// Wait until the run is no longer running.
    pub async fn finished_run(&self, run: Uuid) -> SyncRun {
        let start = Instant::now();
        loop {
            let r = self.run(run).await;
            if r.state != "running" {
                return r;
            }
            assert!(start.elapsed() < WAIT, "run {run} still running: {r:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A run started now, run to its end by one worker.
    pub async fn sync_once(&self) -> SyncRun {
        let (run, created) = self.start_sync().await;
        assert!(created);
        let workers = self.workers(1);
        let r = self.finished_run(run).await;
        crate::common::stop(workers).await;
        r
    }

    /// The whole report, as `(kind, remote_id)` sorted, and the items.
    pub async fn report(&self, run: Uuid) -> (Vec<(String, String)>, Vec<DriftItem>) {
        let items = sync::drift(
            &self.pool,
            self.tenant,
            run,
            &DriftFilter::default(),
            0,
            1_000_000,
        )
        .await
        .unwrap();
        let mut kinds: Vec<(String, String)> = items
            .iter()
            .map(|d| (d.kind.clone(), d.remote_id.clone().unwrap_or_default()))
            .collect();
        kinds.sort();
        (kinds, items)
    }

    /// Events of `kind`: their service and payload, in order.
    pub async fn events_of(&self, kind: &str) -> Vec<(Option<Uuid>, Value)> {
        sqlx::query_as(
            "SELECT service_id, payload FROM events WHERE kind = $1 AND tenant_id = $2 ORDER BY id",
        )
        .bind(kind)
        .bind(self.tenant)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// `(operation, state)` of every task on `svc`, sorted.
    pub async fn tasks_of(&self, svc: Uuid) -> Vec<(String, String)> {
        sqlx::query_as(
            "SELECT operation, state::text FROM tasks WHERE service_id = $1 ORDER BY 1, 2",
        )
        .bind(svc)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// Wait until no task is queued or running.
    pub async fn wait_all_finished(&self) {
        self.wait_for("SELECT NOT EXISTS (SELECT 1 FROM task_queue)", &[])
            .await;
    }

    /// Wait until `svc` has a succeeded `operation` task.
    pub async fn wait_until_task_done(&self, svc: Uuid, operation: &str) {
        let sql = "SELECT EXISTS (SELECT 1 FROM tasks WHERE service_id = $1::uuid
                    AND operation = $2 AND state = 'succeeded')";
        self.wait_for(sql, &[&svc.to_string(), operation]).await;
    }

    async fn wait_for(&self, sql: &str, binds: &[&str]) {
        let start = Instant::now();
        loop {
            let mut q = sqlx::query_scalar::<_, bool>(sql);
            for b in binds {
                q = q.bind(*b);
            }
            if q.fetch_one(&self.pool).await.unwrap() {
                return;
            }
            assert!(start.elapsed() < WAIT, "timed out waiting for: {sql}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}
