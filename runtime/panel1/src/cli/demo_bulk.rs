//! The demo's bulk step (docs/bulk.md): a few more services on the same
//! server, one `POST /v1/bulk` that suspends all of them while the CLI's
//! live progress bar runs, the provider's own view checked, then one bulk
//! terminate so the provider is left with none of them.
use super::bulk;
use super::client::Client;
use super::demo_sims::DemoSim;
use super::EXIT_OK;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How many services the bulk step provisions and then suspends.
pub const BULK_SERVICES: usize = 10;

/// Provision [`BULK_SERVICES`] services, bulk-suspend them with the progress
/// bar, check the provider, bulk-terminate them. True when every child
/// succeeded and the provider agrees.
pub async fn show_bulk(api: &Client, sim: &DemoSim, server_id: &str, run_id: u32) -> Result<bool> {
    println!(
        "▶ bulk: {BULK_SERVICES} more services on the {}, then one bulk suspend",
        sim.label()
    );
    let mut ids = Vec::with_capacity(BULK_SERVICES);
    for i in 0..BULK_SERVICES {
        // WHM usernames: at most 16 characters, letters and digits, and
        // the first 8 unique on the server (so the index comes first).
        let user = format!("bk{i}{run_id}");
        let created = api
            .post("/v1/services", sim.service_body(server_id, &user))
            .await?;
        match created["service"]["id"].as_str() {
            Some(id) => ids.push(id.to_string()),
            None => bail!("provisioning {user}: {created}"),
        }
    }
    if !all_reach(api, server_id, &ids, "active").await? {
        println!("bulk: not every service became active within 60 s");
        return Ok(false);
    }

    let (suspend, took) = run_bulk(
        api,
        "suspend",
        &ids,
        json!({ "reason": "Demo: bulk suspend" }),
    )
    .await?;
    let on_provider = sim.suspended_accounts();
    println!(
        "bulk suspend of {} services: {} succeeded, {} failed in {:.1} s{}",
        suspend["total"],
        suspend["succeeded"],
        suspend["failed"],
        took.as_secs_f64(),
        on_provider.map_or(String::new(), |n| format!(
            " (the {} shows {n} suspended)",
            sim.label()
        ))
    );
    let suspended_ok = suspend["state"] == "completed"
        && suspend["succeeded"] == BULK_SERVICES
        && on_provider.is_none_or(|n| n == BULK_SERVICES)
        && all_reach(api, server_id, &ids, "suspended").await?;

    // Leave the provider as the lifecycle left it.
    let (terminate, _) = run_bulk(api, "terminate", &ids, json!({})).await?;
    println!(
        "bulk terminate: {} succeeded, {} failed",
        terminate["succeeded"], terminate["failed"]
    );
    Ok(suspended_ok && terminate["succeeded"] == BULK_SERVICES)
}

/// Start a bulk on these services and follow it with the progress bar (on
/// stderr); its final record and how long it took.
async fn run_bulk(
    api: &Client,
    action: &str,
    ids: &[String],
    extra: Value,
) -> Result<(Value, Duration)> {
    let started = Instant::now();
    let mut body = json!({ "action": action, "selector": { "service_ids": ids } });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v;
        }
    }
    let created = api.post("/v1/bulk", body).await?;
    let Some(id) = created["id"].as_str() else {
        bail!("bulk {action}: {created}");
    };
    let code = bulk::watch(api, id).await?;
    let record = api.get(&format!("/v1/bulk/{id}")).await?;
    if code != EXIT_OK {
        eprintln!("bulk {action} ended {}", record["state"]);
    }
    Ok((record, started.elapsed()))
}

/// Wait (60 s at most) until every service is in `state`: one list request
/// every 250 ms (the API's rate limit is per key). False at once when one of
/// them failed instead.
async fn all_reach(api: &Client, server_id: &str, ids: &[String], state: &str) -> Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = api
            .get(&format!("/v1/services?server_id={server_id}&limit=500"))
            .await?;
        let ours: Vec<&Value> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| ids.iter().any(|id| s["id"] == id.as_str()))
            .collect();
        if let Some(failed) = ours.iter().find(|s| s["state"] == "failed") {
            println!(
                "bulk: service {} failed: {}",
                failed["id"], failed["failure_reason"]
            );
            return Ok(false);
        }
        if ours.len() == ids.len() && ours.iter().all(|s| s["state"] == state) {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
