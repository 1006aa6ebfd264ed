//! The console's pages beyond one service's life (that is
//! tests/console.rs), in a real headless Chromium against `panel1 serve`
//! (API only), `panel1 worker` processes and the WHM simulator: a bulk
//! suspend whose progress moves on the page without a reload once a worker
//! runs its children; a webhook endpoint added through its form, its
//! deliveries listed and its signing secret shown on request; a service's
//! usage charts; an adapter uploaded through the form with its check report,
//! and a bad file refused with the API's reason on the page.

use crate::browser::Browser;
use crate::support;
use crate::support::{order_body, Api, Env};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
}

/// Wait (60 s) until `path`'s answer satisfies `ok`; that answer.
async fn until(api: &Api, key: &str, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = api.get(key, path).await;
        if ok(&v) {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{path}: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_progress_webhooks_usage_and_uploads_in_the_browser() {
    let (pool, db_url) = panel1_store::testing::fresh_database().await;
    let env = Env::new(db_url, "console-pages");
    let port = support::free_port();
    let mut serve = env.serve(port, &[("PANEL1_WORKERS", "false")]);
    serve.ready().await;
    let api = Api::on(port);
    let base = api.base.clone();
    let sim = panel1_sims::WhmSimulator::start(panel1_sims::SimConfig::default())
        .await
        .unwrap();
    let worker = env.worker("pages-worker-1", 4);
    let (key, server) = api.stage(&env.platform_key(), &sim).await;

    // A webhook endpoint first, so the bulk's events have deliveries.
    let b = Browser::start().await;
    let shots = screenshots();
    b.goto(&format!("{base}/")).await;
    b.fill("#sign-in input[name=key]", &key).await;
    b.click("#sign-in button[type=submit]").await;
    b.heading("Services").await;
    b.goto(&format!("{base}/#/webhooks")).await;
    b.heading("Webhooks").await;
    b.fill(
        "#new-webhook input[name=url]",
        "https://billing.example.test/panel1",
    )
    .await;
    b.fill("#new-webhook input[name=event_types]", "service.updated")
        .await;
    b.click("#new-webhook button[type=submit]").await;
    b.heading("Webhook endpoint").await;
    let hook_url = b.client.current_url().await.unwrap();
    let hook_id = hook_url
        .fragment()
        .unwrap()
        .trim_start_matches("/webhooks/");
    let hook_id = hook_id.to_string();
    let hook = api.get(&key, &format!("/v1/webhooks/{hook_id}")).await;
    assert_eq!(hook["event_types"], json!(["service.updated"]), "{hook}");
    assert_eq!(b.text("#webhook-secret").await, "hidden");
    b.click("main button").await; // "Show the signing secret"
    b.wait_text("#webhook-secret", Duration::from_secs(10), |t| {
        t.starts_with("whsec_")
    })
    .await;

    // Three active services, sampled for usage every 2 s.
    let mut ids = Vec::new();
    for user in ["pagesa", "pagesb", "pagesc"] {
        let made = api
            .post(&key, "/v1/services", order_body(&server, user))
            .await;
        ids.push(made["service"]["id"].as_str().unwrap().to_string());
    }
    let (tenant,): (Uuid,) = sqlx::query_as("SELECT tenant_id FROM servers WHERE id = $1::uuid")
        .bind(&server)
        .fetch_one(&pool)
        .await
        .unwrap();
    let server_id: Uuid = server.parse().unwrap();
    panel1_store::usage::set_schedule(&pool, tenant, server_id, 2, true)
        .await
        .unwrap();
    until(
        &api,
        &key,
        &format!("/v1/services?server_id={server}&state=active"),
        |v| v["items"].as_array().map(Vec::len) == Some(3),
    )
    .await;
    let usage_path = format!("/v1/services/{}/usage?step=hour", ids[0]);
    until(&api, &key, &usage_path, |v| {
        v["series"].as_array().is_some_and(|s| !s.is_empty())
    })
    .await;

    // The usage charts on the service page.
    b.goto(&format!("{base}/#/services/{}", ids[0])).await;
    b.heading("Service").await;
    let usage = b
        .wait_text("#usage", Duration::from_secs(20), |t| !t.is_empty())
        .await;
    assert!(
        usage.contains("disk_used") && !usage.contains("[object"),
        "{usage}"
    );
    let lines = b
        .js("return document.querySelectorAll('#usage svg.chart polyline').length")
        .await;
    assert!(lines.as_u64().unwrap_or(0) >= 2, "{lines}");
    b.js("document.getElementById('usage').scrollIntoView(); return null")
        .await;
    b.screenshot(&shots, "usage").await;

    // A bulk suspend with no worker running: the page shows it waiting...
    worker.kill();
    let bulk = api
        .post(
            &key,
            "/v1/bulk",
            json!({"action": "suspend", "selector": {"server_id": server}, "reason": "console test"}),
        )
        .await;
    let bulk_id = bulk["id"].as_str().unwrap().to_string();
    assert_eq!(bulk["total"], 3, "{bulk}");
    b.goto(&format!("{base}/#/bulk/{bulk_id}")).await;
    b.heading("Bulk operation").await;
    let waiting = b.text("#bulk-progress").await;
    assert!(waiting.contains("0/3"), "{waiting}");
    b.js("window.__sameDocument = 'yes'; return null").await;
    // ...and moving to 3/3 and `completed` once a worker runs, over SSE.
    let worker = env.worker("pages-worker-2", 4);
    b.wait_text("#bulk-state", Duration::from_secs(60), |t| t == "completed")
        .await;
    let done = b.text("#bulk-progress").await;
    assert!(done.contains("3/3"), "{done}");
    assert_eq!(b.js("return window.__sameDocument").await, json!("yes"));
    assert_eq!(
        sim.accounts().iter().filter(|a| a.suspended).count(),
        3,
        "the simulator holds the three accounts suspended"
    );
    b.screenshot(&shots, "bulk").await;
    b.goto(&format!("{base}/#/bulk")).await;
    let list = b
        .wait_text("#bulks", Duration::from_secs(10), |t| t.contains("suspend"))
        .await;
    assert!(list.contains("completed") && list.contains("3/3"), "{list}");

    // The endpoint's delivery log lists the services' updates.
    b.goto(&format!("{base}/#/webhooks/{hook_id}")).await;
    b.heading("Webhook endpoint").await;
    let deliveries = b
        .wait_text("#deliveries", Duration::from_secs(20), |t| {
            t.contains("service.updated")
        })
        .await;
    assert!(!deliveries.contains("task."), "{deliveries}");
    b.screenshot(&shots, "webhook").await;

    // An adapter upload through the form shows the check report...
    b.goto(&format!("{base}/#/adapters")).await;
    b.heading("Adapters").await;
    let reference = support::adapters_dir().join("reference.wasm");
    b.fill("#upload-adapter input[name=name]", "uploaded-reference")
        .await;
    b.fill("#upload-adapter input[name=version]", "1.0.0").await;
    b.el("#upload-adapter input[type=file]")
        .await
        .send_keys(reference.canonicalize().unwrap().to_str().unwrap())
        .await
        .unwrap();
    b.click("#upload-adapter button[type=submit]").await;
    let report = b
        .wait_text("#upload-report", Duration::from_secs(60), |t| {
            t.contains("Check report")
        })
        .await;
    assert!(report.contains("world 0.1.0"), "{report}");
    let listed = until(&api, &key, "/v1/adapters?limit=500", |v| {
        v["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["name"] == "uploaded-reference"))
    })
    .await;
    assert!(listed.to_string().contains("uploaded-reference"));
    b.screenshot(&shots, "adapters").await;
    // ...and a file that is no component is refused with the API's reason.
    let junk = env.dir.join("not-a-component.wasm");
    std::fs::write(&junk, b"this is not WebAssembly").unwrap();
    b.fill("#upload-adapter input[name=version]", "1.0.1").await;
    let input = b.el("#upload-adapter input[type=file]").await;
    input.clear().await.unwrap();
    input.send_keys(junk.to_str().unwrap()).await.unwrap();
    b.click("#upload-adapter button[type=submit]").await;
    let refused = b
        .wait_text("#upload-report .error", Duration::from_secs(30), |t| {
            !t.is_empty()
        })
        .await;
    assert!(!refused.contains("500") && refused.len() > 10, "{refused}");

    b.quit().await;
    worker.kill();
    serve.kill();
    sim.shutdown().await;
    drop(pool);
}
