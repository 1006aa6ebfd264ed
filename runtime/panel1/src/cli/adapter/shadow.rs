//! `panel1 adapter shadow|shadow-runs|promote`: shadow runs of a candidate version over
//! the API (docs/shadow-runs.md).
use crate::cli::client::{exit, print, Client, Conn};
use crate::cli::{EXIT_ADAPTER_ERROR, EXIT_OK};
use anyhow::bail;
use clap::Args;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ShadowArgs {
    /// The candidate adapter version id.
    version: String,
    /// Replay the newest this many recorded attempts (1-200).
    #[arg(long)]
    max_attempts: Option<i32>,
    /// Print the queued run and return without waiting for its report.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Args)]
pub struct PromoteArgs {
    /// The candidate adapter version id.
    version: String,
    /// Promote although the latest shadow run found differences.
    #[arg(long)]
    accept: bool,
}

#[derive(Args)]
pub struct ShadowRunsArgs {
    /// The candidate adapter version id.
    version: String,
}

/// How long `shadow` waits for the report.
const WAIT: Duration = Duration::from_secs(600);

pub async fn shadow(conn: Conn, args: ShadowArgs) -> u8 {
    let c = Client::new(conn);
    exit(
        async {
            let v = &args.version;
            let body = match args.max_attempts {
                Some(n) => json!({ "max_attempts": n }),
                None => json!({}),
            };
            let mut run = c
                .post(&format!("/v1/adapters/{v}/shadow-runs"), body)
                .await?;
            let path = format!(
                "/v1/adapters/{v}/shadow-runs/{}",
                run["id"].as_str().unwrap_or_default()
            );
            let started = Instant::now();
            while !args.no_wait && matches!(run["state"].as_str(), Some("pending" | "running")) {
                if started.elapsed() > WAIT {
                    bail!("the shadow run did not finish in {} s", WAIT.as_secs());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                run = c.get(&path).await?;
            }
            print(&run);
            Ok(match (run["state"].as_str(), run["clean"].as_bool()) {
                (Some("completed"), Some(true)) => EXIT_OK,
                (Some("pending" | "running"), _) => EXIT_OK,
                _ => EXIT_ADAPTER_ERROR,
            })
        }
        .await,
    )
}

pub async fn promote(conn: Conn, args: PromoteArgs) -> u8 {
    let c = Client::new(conn);
    exit(
        async {
            let path = format!("/v1/adapters/{}/promote", args.version);
            print(&c.post(&path, json!({ "accept": args.accept })).await?);
            Ok(EXIT_OK)
        }
        .await,
    )
}

/// Every shadow run of a candidate, newest first (with each report's totals).
pub async fn list(conn: Conn, args: ShadowRunsArgs) -> u8 {
    let c = Client::new(conn);
    exit(
        async {
            let base = format!("/v1/adapters/{}/shadow-runs?limit=500", args.version);
            let mut items = Vec::new();
            let mut path = base.clone();
            loop {
                let page = c.get(&path).await?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                match page["next_cursor"].as_str() {
                    Some(cursor) => path = format!("{base}&cursor={cursor}"),
                    None => break,
                }
            }
            print(&serde_json::Value::Array(items));
            Ok(EXIT_OK)
        }
        .await,
    )
}
