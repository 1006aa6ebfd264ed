//! Webhook delivery: a loop in every worker that leases deliveries from
//! Postgres (`panel1_claim_webhook_deliveries`: the head of each endpoint's
//! per-service queue, so they go out in order), signs each as Standard
//! Webhooks specifies, POSTs it under the egress protections, and settles
//! it: done, retried on a backoff of about three days, or failed with the
//! endpoint disabled. A worker killed mid-delivery loses nothing: its lease
//! runs out and another worker sends the same message (same `webhook-id`)
//! again — at least once.
mod send;
mod sign;

pub use send::{vet, Reach};

use crate::run::Worker;
use chrono::Utc;
use panel1_store::webhooks::{self, ClaimedDelivery, Message, Settlement};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How a worker delivers webhooks.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Off: this worker sends none (others may).
    pub enabled: bool,
    pub reach: Reach,
    /// The wait after each failed attempt; when it is spent, the delivery
    /// fails and its endpoint is disabled.
    pub retry_schedule: Vec<Duration>,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// A delivery belongs to the worker that leased it for this long.
    pub lease: Duration,
    /// Slow poll, besides the outbox's notifications.
    pub poll_interval: Duration,
}

/// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h, 16 h, 24 h:
/// thirteen attempts over about 69 hours.
pub const DEFAULT_RETRY_SCHEDULE_SECS: [u64; 12] = [
    5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 57600, 86400,
];

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            enabled: true,
            reach: Reach {
                allow_internal: false,
                allow_http: false,
                timeout: Duration::from_secs(15),
            },
            retry_schedule: DEFAULT_RETRY_SCHEDULE_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            concurrency: 8,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Parse a retry schedule written as seconds, `5,30,120` (fractions allowed).
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    text.split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("`{s}` is not a number of seconds"))
        })
        .collect()
}

/// After a wake-up whose claim found nothing, look again this soon, then
/// wait for the poll. Deliveries go out in commit order: an older
/// transaction still open holds new ones back, and its commit announces
/// nothing unless it wrote deliveries too (another worker taking them is
/// the other reason a claim comes back empty).
const HELD_BACK_RECHECKS: [Duration; 4] = [
    Duration::from_millis(2),
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(250),
];

impl Worker {
    /// The delivery loop, for the worker's life.
    pub(crate) async fn webhooks(self: Arc<Self>) {
        let config = self.config.webhooks.clone();
        if !config.enabled {
            return;
        }
        let mut running = tokio::task::JoinSet::new();
        // Looks since a wake-up whose claim found nothing.
        let mut after_wake: Option<usize> = None;
        loop {
            while running.try_join_next().is_some() {}
            let free = config.concurrency.saturating_sub(running.len());
            let mut claimed = 0;
            if free > 0 {
                match webhooks::claim_deliveries(&self.pool, free as i32, config.lease).await {
                    Ok(batch) => {
                        claimed = batch.len();
                        for c in batch {
                            running.spawn(deliver(self.clone(), c));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
                }
            }
            if claimed > 0 && claimed == free {
                continue;
            }
            let pause = match after_wake {
                Some(n) if claimed == 0 => HELD_BACK_RECHECKS.get(n).copied(),
                _ => None,
            };
            tokio::select! {
                _ = self.notices.webhooks.notified() => after_wake = Some(0),
                _ = tokio::time::sleep(pause.unwrap_or(config.poll_interval)) => {
                    after_wake = pause.and(after_wake.map(|n| n + 1));
                }
                Some(_) = running.join_next(), if !running.is_empty() => after_wake = None,
            }
        }
    }
}

/// The message body: the event, never a secret (events carry none).
fn body(event_id: i64, m: &Message) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": m.event_kind,
        "timestamp": m.created_at,
        "data": {
            "event_id": event_id,
            "tenant_id": m.tenant_id,
            "task_id": m.task_id,
            "service_id": m.service_id,
            "payload": m.payload,
        },
    }))
    .unwrap_or_default()
}

async fn deliver(worker: Arc<Worker>, claimed: ClaimedDelivery) {
    let config = &worker.config.webhooks;
    // The POST must end well inside the lease, or another worker would
    // send the same message while this one still waits.
    let mut reach = config.reach.clone();
    reach.timeout = reach.timeout.min(config.lease.mul_f64(0.8));
    let message = match webhooks::load_message(&worker.pool, &worker.secrets, &claimed).await {
        Ok(Some(m)) => m,
        // The endpoint was deleted with its deliveries.
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(delivery = claimed.id, error = %e, "webhook message unreadable");
            let why = format!("the endpoint's signing secret could not be read: {e}");
            settle(
                &worker,
                &claimed,
                failure(config, &claimed, None, 0, None, why),
            )
            .await;
            return;
        }
    };
    let msg_id = format!("msg_{}", claimed.event_id);
    let timestamp = Utc::now().timestamp();
    let body = body(claimed.event_id, &message);
    let signature = match sign::signature(&message.secrets, &msg_id, timestamp, &body) {
        Ok(s) => s,
        Err(e) => {
            let s = failure(config, &claimed, None, 0, None, e.to_string());
            settle(&worker, &claimed, s).await;
            return;
        }
    };
    let headers = [
        ("content-type", "application/json".to_string()),
        ("webhook-id", msg_id),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ];
    let sent = send::post(&message.url, &headers, body, &reach).await;
    let settlement = if sent.ok() {
        Settlement {
            ok: true,
            status: sent.status,
            latency_ms: sent.latency_ms,
            response: sent.excerpt,
            ..Settlement::default()
        }
    } else {
        let why = sent
            .error
            .clone()
            .unwrap_or_else(|| format!("HTTP {}", sent.status.unwrap_or(0)));
        failure(
            config,
            &claimed,
            sent.status,
            sent.latency_ms,
            sent.excerpt,
            why,
        )
    };
    tracing::debug!(
        delivery = claimed.id,
        endpoint = %claimed.endpoint_id,
        attempt = claimed.attempt,
        status = ?sent.status,
        ok = settlement.ok,
        "webhook attempt"
    );
    if let Some(m) = &worker.metrics {
        m.webhook_attempt(settlement.ok);
    }
    settle(&worker, &claimed, settlement).await;
}

/// A failed attempt: retry after the schedule's next wait, or give up.
fn failure(
    config: &crate::webhooks::WebhookConfig,
    claimed: &ClaimedDelivery,
    status: Option<u16>,
    latency_ms: u32,
    response: Option<String>,
    error: String,
) -> Settlement {
    let spent = claimed.attempt.max(1) as usize;
    let next = config.retry_schedule.get(spent - 1);
    Settlement {
        ok: false,
        status,
        latency_ms,
        response,
        error: Some(error),
        retry_at: next.map(|d| Utc::now() + chrono::Duration::from_std(*d).unwrap_or_default()),
        give_up: next.is_none(),
    }
}

async fn settle(worker: &Worker, claimed: &ClaimedDelivery, mut s: Settlement) {
    s.response = s.response.as_deref().map(send::printable);
    s.error = s.error.as_deref().map(send::printable);
    let mut result = webhooks::settle_delivery(&worker.pool, claimed, &s).await;
    if result.is_err() {
        // Whatever the answer held that could not be stored, the outcome
        // must be: settle again without it.
        s.response = None;
        result = webhooks::settle_delivery(&worker.pool, claimed, &s).await;
    }
    match result {
        Ok(true) => {}
        Ok(false) => tracing::info!(
            delivery = claimed.id,
            "webhook delivery was taken over (lease expired); this attempt is not recorded"
        ),
        // The lease runs out and the delivery is sent again.
        Err(e) => {
            tracing::warn!(delivery = claimed.id, error = %e, "settling a webhook delivery failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let total: u64 = DEFAULT_RETRY_SCHEDULE_SECS.iter().sum();
        assert!((60 * 3600..80 * 3600).contains(&total), "about three days");
        assert_eq!(
            parse_schedule("0.5, 2").unwrap(),
            vec![Duration::from_millis(500), Duration::from_secs(2)]
        );
        assert!(parse_schedule("1,x").is_err());
    }
}
