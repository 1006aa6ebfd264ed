//! Listing services at 100 000 (issue 24: the console's services page must
//! stay fast at that size). One tenant with 100 000 services on 10 servers,
//! seeded directly; about 1 in 128 suspended, a tenth on plan `gold`; and
//! as many newer services of another tenant. The API on
//! loopback answers the requests the console's services page makes: the
//! first page, a page deep in the keyset walk, and the first page filtered
//! by state (rare), server and plan, each asked `PAGING_BENCH_ROUNDS` times
//! (default 200) in alternating order. Printed: p50 / p99 per request kind,
//! and the plan Postgres chose for each. `PAGING_BENCH_SERVICES` changes
//! the size.
#[path = "../../worker/tests/common/mod.rs"]
mod common;
#[path = "support/fleet.rs"]
mod fleet;

use fleet::{block_on, env_or, fleet, pct, Api};
use panel1_api::Scope;
use panel1_sims::Account;
use panel1_store::setup::{self, NewServer};
use serde_json::Value;
use std::time::Instant;
use uuid::Uuid;

async fn run() {
    let n = env_or("PAGING_BENCH_SERVICES", 100_000) as usize;
    let rounds = env_or("PAGING_BENCH_ROUNDS", 200) as usize;
    let f = fleet(n, 10, "p", |_, u| {
        Account::new(u, &format!("{u}.example.com"))
    })
    .await;
    sqlx::query(
        "UPDATE services SET state = CASE WHEN (hashtext(id::text) & 127) = 0 THEN 'suspended'::service_state ELSE state END,
                             plan = CASE WHEN (hashtext(id::text) % 10) = 0 THEN 'gold' ELSE plan END",
    )
    .execute(&f.pool)
    .await
    .unwrap();
    // Another tenant's services, as many and all newer: a listing that
    // walked the whole table in id order would step over all of them.
    let other = setup::create_tenant(&f.pool, "other").await.unwrap();
    let (version, config, egress): (Uuid, Value, Value) =
        sqlx::query_as("SELECT adapter_version_id, config, egress FROM servers WHERE id = $1")
            .bind(f.servers[0])
            .fetch_one(&f.pool)
            .await
            .unwrap();
    let other_server = setup::add_server(
        &f.pool,
        &NewServer {
            tenant_id: other,
            name: "other".into(),
            adapter_version_id: version,
            config,
            egress,
            max_concurrency: 4,
        },
    )
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO services (id, tenant_id, server_id, remote_id, plan, spec, state)
         SELECT panel1_uuid_v7(), $1, $2, 'o' || i, 'default',
                jsonb_build_object('username', 'o' || i), 'active'
         FROM generate_series(1, $3) AS i",
    )
    .bind(other)
    .bind(other_server)
    .bind(n as i64)
    .execute(&f.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE services")
        .execute(&f.pool)
        .await
        .unwrap();
    let (suspended,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM services WHERE state = 'suspended'")
            .fetch_one(&f.pool)
            .await
            .unwrap();
    // The cursor of a page 90 % of the way down the tenant's walk.
    let (deep,): (Uuid,) = sqlx::query_as(
        "SELECT id FROM services WHERE tenant_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1",
    )
    .bind(f.tenant)
    .bind((n * 9 / 10) as i64)
    .fetch_one(&f.pool)
    .await
    .unwrap();
    let api = Api::start(&f, Scope::Read).await;
    let http = reqwest::Client::new();
    let server = f.servers[3];
    let kinds: Vec<(&str, String)> = vec![
        ("first page (50)", "/v1/services".into()),
        ("deep page (90 %)", format!("/v1/services?cursor={deep}")),
        ("state=suspended", "/v1/services?state=suspended".into()),
        ("server_id", format!("/v1/services?server_id={server}")),
        ("plan=gold", "/v1/services?plan=gold".into()),
        (
            "server + state=active (500)",
            format!("/v1/services?server_id={server}&state=active&limit=500"),
        ),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for round in 0..rounds {
        for k in 0..kinds.len() {
            // Alternate the order so no kind always runs on a warm cache.
            let i = if round % 2 == 0 {
                k
            } else {
                kinds.len() - 1 - k
            };
            let t = Instant::now();
            let r = http
                .get(format!("{}{}", api.base, kinds[i].1))
                .bearer_auth(&api.key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{}", kinds[i].1);
            let _ = r.bytes().await.unwrap();
            times[i].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    println!(
        "\n## Listing services: {n} services of one tenant ({suspended} suspended) beside {n} newer ones of another, {rounds} rounds\n"
    );
    println!("| request | p50 | p99 | plan |");
    println!("|---|---|---|---|");
    for (i, (name, path)) in kinds.iter().enumerate() {
        times[i].sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {} |",
            pct(&times[i], 0.5),
            pct(&times[i], 0.99),
            plan(&f.pool, f.tenant, path, deep).await
        );
    }
    api.stop();
}

/// The index (or scan) Postgres uses for the listing behind `path`, asked
/// as the API asks it (routes/services.rs: only the given filters, planned
/// with the values).
async fn plan(pool: &sqlx::PgPool, tenant: Uuid, path: &str, deep: Uuid) -> String {
    let q = |k: &str| {
        path.split(['?', '&'])
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    let mut sql = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "EXPLAIN SELECT * FROM services WHERE tenant_id = ",
    );
    let before = if path.contains("cursor=") {
        deep
    } else {
        Uuid::max()
    };
    sql.push_bind(tenant);
    if ["server_id", "state", "plan"]
        .iter()
        .all(|k| q(k).is_none())
    {
        sql.push(" AND (tenant_id, id) < (")
            .push_bind(tenant)
            .push(", ")
            .push_bind(before)
            .push(")");
    } else {
        sql.push(" AND id < ").push_bind(before);
    }
    if let Some(server) = q("server_id") {
        sql.push(" AND server_id = ")
            .push_bind(server.parse::<Uuid>().unwrap());
    }
    if let Some(state) = q("state") {
        sql.push(" AND state = ")
            .push_bind(state)
            .push("::service_state");
    }
    if let Some(plan) = q("plan") {
        sql.push(" AND plan = ").push_bind(plan);
    }
    let limit = q("limit").map_or(51, |l| l.parse::<i64>().unwrap() + 1);
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await
        .unwrap();
    let rows: Vec<(String,)> = sql.build_query_as().fetch_all(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    rows.iter()
        .filter_map(|(l,)| {
            let l = l.trim().trim_start_matches("->").trim();
            (l.contains("Scan") || l.starts_with("Sort"))
                .then(|| l.split("  ").next().unwrap_or(l).to_string())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn main() {
    block_on(run());
}
