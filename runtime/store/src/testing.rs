//! Test support for crates that need a real Postgres: a fresh, migrated
//! database per test on the server at `DATABASE_URL` (default: the local
//! cluster at 127.0.0.1:5432), and throwaway clusters started from the local
//! Postgres binaries for tests that restart the server. Never a mock; never
//! a silent skip: without a reachable Postgres the tests fail and say why.
use crate::embedded::PgBinaries;
use crate::{connect, migrate, MIGRATOR};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// A new database on the admin server, migrated. Leftover test databases
/// older than an hour are dropped on the way.
pub async fn fresh_database() -> (PgPool, String) {
    fresh_database_on(&admin_url()).await
}

/// Copied from a template database migrated once per set of migrations
/// (`template_for`): running the migrations costs seconds on a busy
/// two-core machine, and about a hundred tests each make a database.
pub async fn fresh_database_on(admin: &str) -> (PgPool, String) {
    let template = template_for(admin).await;
    let (pool, url) = database_on(admin, Some(&template)).await;
    // The template's migrations are these migrations: a no-op that checks it.
    migrate(&pool).await.expect("migrations");
    (pool, url)
}

/// `panel1_template_<migrations' checksum>`, made if missing: migrated
/// under a name of its own, then renamed, so concurrent test processes
/// never copy a half-migrated template (the loser of a race drops its own).
async fn template_for(admin: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut sum = Sha256::new();
    for m in MIGRATOR.iter() {
        sum.update(m.version.to_be_bytes());
        sum.update(&m.checksum);
    }
    let name = format!("panel1_template_{}", &hex::encode(sum.finalize())[..16]);
    let mut conn = admin_connection(admin).await;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .expect("look up the template database");
    if !exists {
        let (pool, _) = database_on(admin, None).await;
        migrate(&pool).await.expect("migrations");
        let building: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&pool)
            .await
            .expect("the new database's name");
        pool.close().await;
        rename_into_place(&mut conn, &building, &name).await;
    }
    let _ = conn.close().await;
    name
}

/// Renames the freshly migrated `building` to `name`, or drops it when
/// another test's copy got the name first.
async fn rename_into_place(conn: &mut sqlx::PgConnection, building: &str, name: &str) {
    // A closed connection's backend may take a moment to exit (once,
    // on a fresh cluster, one stayed for minutes), and a database with a
    // backend cannot be renamed (55006): end it and try again.
    for tries in 1.. {
        let renamed = sqlx::query(&format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{name}\""
        ))
        .execute(&mut *conn)
        .await;
        let code = match &renamed {
            Ok(_) => {
                // Only ever copied: autovacuum then leaves it alone, so
                // no worker of its holds up a copy.
                let _ = sqlx::query(&format!(
                    "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
                ))
                .execute(&mut *conn)
                .await;
                break;
            }
            Err(sqlx::Error::Database(e)) => e.code().map(|c| c.to_string()),
            Err(_) => None,
        };
        match code.as_deref() {
            // Another test made it first (23505 when both renames ran
            // at once).
            Some("42P04" | "23505") => {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
                ))
                .execute(&mut *conn)
                .await;
                break;
            }
            // Nothing but this function uses the database being built:
            // a session still on it is one of ours on its way out.
            Some("55006") if tries < 20 => {
                let _ = sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(building)
                .execute(&mut *conn)
                .await;
                let _ = sqlx::query("SELECT pg_sleep(0.05)")
                    .execute(&mut *conn)
                    .await;
            }
            _ => panic!("naming the template database {name}: {renamed:?}"),
        }
    }
}

/// A new database on the admin server with no migrations applied (for
/// tests of a migration over data written by the ones before it).
pub async fn empty_database() -> (PgPool, String) {
    database_on(&admin_url(), None).await
}

async fn admin_connection(admin: &str) -> sqlx::PgConnection {
    let opts = PgConnectOptions::from_str(admin).expect("DATABASE_URL is not a postgres URL");
    opts.connect().await.unwrap_or_else(|e| {
        panic!(
            "these tests need Postgres at {admin} ({e}). Start the local cluster \
             (`pg_ctlcluster 15 main start`) or set DATABASE_URL"
        )
    })
}

/// A new database, empty or a copy of `template`.
async fn database_on(admin: &str, template: Option<&str>) -> (PgPool, String) {
    let opts = PgConnectOptions::from_str(admin).expect("DATABASE_URL is not a postgres URL");
    let mut conn = admin_connection(admin).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'panel1_test_%'")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for name in old {
        let born: u64 = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(now);
        if now.saturating_sub(born) > 3600 {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
    let name = format!("panel1_test_{now}_{}", uuid::Uuid::new_v4().simple());
    let from = template
        .map(|t| format!(" TEMPLATE \"{t}\""))
        .unwrap_or_default();
    sqlx::query(&format!("CREATE DATABASE \"{name}\"{from}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let _ = conn.close().await;
    let url = opts.database(&name).to_url_lossy().to_string();
    let pool = connect(&url, 32)
        .await
        .expect("connect to the test database");
    (pool, url)
}

/// A private Postgres cluster in a temporary directory, stopped on drop.
/// Runs as the `postgres` user when the tests run as root (initdb refuses
/// root).
pub struct TempCluster {
    pub dir: PathBuf,
    pub port: u16,
    bins: PgBinaries,
}

impl TempCluster {
    pub fn start() -> TempCluster {
        let bins = PgBinaries::find().unwrap_or_else(|e| panic!("{e}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("panel1-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        bins.give_to_postgres(&[&dir])
            .unwrap_or_else(|e| panic!("{e}"));
        let c = TempCluster { dir, port, bins };
        let out = c
            .bins
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(c.dir.join("data"))
            .output()
            .expect("initdb (install the postgresql package)");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.pg_ctl(&["start", "-w"]);
        c
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn pg_ctl(&self, args: &[&str]) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let out = self
            .bins
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("log"))
            .args(args)
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl restart -m fast`: every connection is cut.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-w", "-m", "fast"]);
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let _ = self
            .bins
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "immediate"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tenant and a server capped at `cap` on a placeholder adapter version
/// (for queue tests that claim and complete without running anything).
pub async fn tenant_and_server(pool: &PgPool, cap: i32) -> (uuid::Uuid, uuid::Uuid) {
    use crate::setup::{self, NewAdapterVersion, NewServer};
    let tenant = setup::create_tenant(pool, "queue-test").await.unwrap();
    let version = setup::add_adapter_version(
        pool,
        &NewAdapterVersion {
            tenant: Some(tenant),
            name: "any",
            version: "1",
            sha256: &"0".repeat(64),
            world_version: "0.1.0",
            component: b"not run here",
            report: &serde_json::json!({}),
        },
    )
    .await
    .unwrap();
    let server = setup::add_server(
        pool,
        &NewServer {
            tenant_id: tenant,
            name: "s".into(),
            adapter_version_id: version,
            config: serde_json::json!({}),
            egress: serde_json::json!({"rules": []}),
            max_concurrency: cap,
        },
    )
    .await
    .unwrap();
    (tenant, server)
}

/// `n` available `info` tasks on `server` in one statement (records and
/// queue rows as `enqueue` writes them, without events or wake-ups): a
/// burst or a backlog for queue tests and benchmarks.
pub async fn insert_available_tasks(pool: &PgPool, tenant: uuid::Uuid, server: uuid::Uuid, n: i64) {
    let load = format!(
        "WITH t AS (
             INSERT INTO task_records (id, tenant_id, server_id, operation, input, state, created_at)
             SELECT gen_random_uuid(), $1, $2, 'info', '{{}}', 'available', clock_timestamp()
             FROM generate_series(1, $3)
             RETURNING *
         )
         {}",
        crate::queue_rows_for("t")
    );
    sqlx::query(&load)
        .bind(tenant)
        .bind(server)
        .bind(n)
        .execute(pool)
        .await
        .expect("insert available tasks");
}

/// Every server's kept running count (`server_load`) equals the number of
/// its tasks running in the queue (an open circuit breaker's hold, shard
/// -1, aside: migrations/0015). Call when no completion is in flight.
pub async fn assert_server_load_matches(pool: &PgPool) {
    let off: Vec<(uuid::Uuid, i64, i64)> = sqlx::query_as(
        "SELECT * FROM (
             SELECT s.id,
                    (SELECT COALESCE(sum(running), 0) FROM server_load
                     WHERE server_id = s.id AND shard >= 0)::int8 AS kept,
                    (SELECT count(*) FROM task_queue q WHERE q.server_id = s.id AND q.state = 'running') AS counted
             FROM servers s
         ) l WHERE kept <> counted",
    )
    .fetch_all(pool)
    .await
    .expect("read server_load");
    assert!(
        off.is_empty(),
        "server_load differs from the running tasks (server, kept, counted): {off:?}"
    );
}
