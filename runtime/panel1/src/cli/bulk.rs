//! `panel1 bulk …`: one action on many services over the REST API
//! (`POST /v1/bulk`, docs/bulk.md), its live progress bar, and pause,
//! resume and cancel.
use super::client::{Client, Conn};
use super::{EXIT_ADAPTER_ERROR, EXIT_OK, EXIT_USAGE};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Which services (only yours are ever selected): `--service` ids, or
/// filters that must all hold, or `--all`.
#[derive(Args, Clone, Default)]
pub struct Selector {
    /// A service id (repeatable).
    #[arg(long = "service")]
    services: Vec<String>,
    /// The services of this server.
    #[arg(long)]
    server: Option<String>,
    /// The services on this plan.
    #[arg(long)]
    plan: Option<String>,
    /// The services in this state (active, suspended, ...).
    #[arg(long)]
    state: Option<String>,
    /// Every service of your tenant.
    #[arg(long)]
    all: bool,
}

impl Selector {
    fn json(&self) -> Value {
        let mut s = serde_json::Map::new();
        if !self.services.is_empty() {
            s.insert("service_ids".into(), json!(self.services));
        }
        for (k, v) in [
            ("server_id", &self.server),
            ("plan", &self.plan),
            ("state", &self.state),
        ] {
            if let Some(v) = v {
                s.insert(k.into(), json!(v));
            }
        }
        if self.all {
            s.insert("all".into(), json!(true));
        }
        Value::Object(s)
    }
}

#[derive(Args, Clone)]
pub struct Start {
    #[command(flatten)]
    selector: Selector,
    /// Print the bulk and return instead of showing its progress.
    #[arg(long)]
    detach: bool,
}

#[derive(Subcommand)]
pub enum BulkCommand {
    /// Suspend the selected services, then show the progress bar.
    Suspend {
        #[command(flatten)]
        start: Start,
        /// Shown on the provider side where it supports a reason.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Unsuspend the selected services.
    Unsuspend {
        #[command(flatten)]
        start: Start,
    },
    /// Terminate the selected services.
    Terminate {
        #[command(flatten)]
        start: Start,
    },
    /// Move the selected services to another plan.
    ChangePackage {
        #[command(flatten)]
        start: Start,
        /// The plan to move to.
        #[arg(long = "to")]
        to: String,
    },
    /// Read the selected services' state from their providers.
    RefreshStatus {
        #[command(flatten)]
        start: Start,
    },
    /// Print a bulk with its counts now.
    Show { id: String },
    /// List your bulks, newest first.
    List {
        #[arg(long)]
        state: Option<String>,
    },
    /// Show a bulk's live progress bar until it ends; exit 0 if every
    /// child succeeded.
    Watch { id: String },
    /// Children that have not started wait (running ones finish).
    Pause { id: String },
    /// A paused bulk's children can start again.
    Resume { id: String },
    /// Cancel the children that have not started (running ones finish).
    Cancel { id: String },
}

pub async fn run(conn: Conn, cmd: BulkCommand) -> u8 {
    let c = Client::new(conn);
    match dispatch(&c, cmd).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("panel1: {e:#}");
            EXIT_USAGE
        }
    }
}

async fn dispatch(c: &Client, cmd: BulkCommand) -> Result<u8> {
    let (action, start, extra) = match cmd {
        BulkCommand::Suspend { start, reason } => ("suspend", start, json!({ "reason": reason })),
        BulkCommand::Unsuspend { start } => ("unsuspend", start, json!({})),
        BulkCommand::Terminate { start } => ("terminate", start, json!({})),
        BulkCommand::ChangePackage { start, to } => {
            ("change-package", start, json!({ "plan": to }))
        }
        BulkCommand::RefreshStatus { start } => ("refresh-status", start, json!({})),
        BulkCommand::Show { id } => {
            print(&c.get(&format!("/v1/bulk/{id}")).await?);
            return Ok(EXIT_OK);
        }
        BulkCommand::List { state } => {
            let q = state.map_or(String::new(), |s| format!("?state={s}"));
            print(&c.get(&format!("/v1/bulk{q}")).await?);
            return Ok(EXIT_OK);
        }
        BulkCommand::Watch { id } => return watch(c, &id).await,
        BulkCommand::Pause { id } => return control(c, &id, "pause").await,
        BulkCommand::Resume { id } => return control(c, &id, "resume").await,
        BulkCommand::Cancel { id } => return control(c, &id, "cancel").await,
    };
    let mut body = json!({ "action": action, "selector": start.selector.json() });
    if let Value::Object(extra) = extra {
        for (k, v) in extra.into_iter().filter(|(_, v)| !v.is_null()) {
            body[k] = v;
        }
    }
    let bulk = c.post("/v1/bulk", body).await?;
    let id = bulk["id"].as_str().unwrap_or_default().to_string();
    if start.detach {
        print(&bulk);
        return Ok(EXIT_OK);
    }
    eprintln!(
        "bulk {id}: {action} on {} services ({} skipped)",
        bulk["total"], bulk["skipped"]
    );
    for s in bulk["skipped_some"]
        .as_array()
        .into_iter()
        .flatten()
        .take(5)
    {
        eprintln!(
            "  skipped {}: {}",
            s["service_id"].as_str().unwrap_or(""),
            s["reason"].as_str().unwrap_or("")
        );
    }
    watch(c, &id).await
}

async fn control(c: &Client, id: &str, verb: &str) -> Result<u8> {
    print(&c.post(&format!("/v1/bulk/{id}/{verb}"), json!({})).await?);
    Ok(EXIT_OK)
}

/// Poll the bulk (its counts are live) and redraw the bar until it ends.
pub async fn watch(c: &Client, id: &str) -> Result<u8> {
    let started = Instant::now();
    let mut bar = Bar::new(std::io::stderr().is_terminal());
    loop {
        let b = c.get(&format!("/v1/bulk/{id}")).await?;
        if !b.is_object() {
            bail!("no bulk {id}");
        }
        bar.show(&b, started.elapsed());
        if !b["finished_at"].is_null() {
            bar.end();
            let ok = b["state"] == "completed" && b["failed"] == 0;
            return Ok(if ok { EXIT_OK } else { EXIT_ADAPTER_ERROR });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A plain-text progress bar: redrawn in place on a terminal, one line per
/// change otherwise (logs, pipes).
pub struct Bar {
    tty: bool,
    last: String,
}

impl Bar {
    pub fn new(tty: bool) -> Bar {
        Bar {
            tty,
            last: String::new(),
        }
    }

    pub fn show(&mut self, b: &Value, elapsed: Duration) {
        let line = line(b);
        if line == self.last {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}  {:>6.1}s\x1b[K", elapsed.as_secs_f64());
        } else {
            let _ = writeln!(err, "{line}  {:>6.1}s", elapsed.as_secs_f64());
        }
        let _ = err.flush();
        self.last = line;
    }

    pub fn end(&mut self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// `[#######.............]  350/1000  35%  ok 340  failed 10  cancelled 0  running 4  waiting 646  running`
pub fn line(b: &Value) -> String {
    let n = |k: &str| b[k].as_i64().unwrap_or(0);
    let total = n("total").max(1);
    let ended = n("succeeded") + n("failed") + n("cancelled");
    const WIDTH: i64 = 30;
    let filled = (ended * WIDTH / total).clamp(0, WIDTH) as usize;
    format!(
        "[{}{}] {:>6}/{:<6} {:>3}%  ok {}  failed {}  cancelled {}  running {}  waiting {}  {}",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled),
        ended,
        n("total"),
        ended * 100 / total,
        n("succeeded"),
        n("failed"),
        n("cancelled"),
        n("running"),
        n("waiting"),
        b["state"].as_str().unwrap_or("?"),
    )
}

fn print(v: &Value) {
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::{line, Selector};
    use serde_json::json;

    #[test]
    fn the_bar_fills_with_finished_children() {
        let b = json!({"total": 10, "succeeded": 4, "failed": 1, "cancelled": 0, "running": 2, "waiting": 3, "state": "running"});
        let l = line(&b);
        assert!(l.starts_with("[###############...............]"), "{l}");
        assert!(
            l.contains("5/10") && l.contains("50%") && l.contains("failed 1"),
            "{l}"
        );
    }

    #[test]
    fn the_selector_sends_only_what_was_given() {
        let s = Selector {
            server: Some("s1".into()),
            state: Some("active".into()),
            ..Selector::default()
        };
        assert_eq!(s.json(), json!({"server_id": "s1", "state": "active"}));
    }
}
