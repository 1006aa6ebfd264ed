//! Shadow runs (issue 19): replay recorded attempts of an adapter's current
//! version against a candidate version, the recorded responses served by
//! the host's replay tape (policy and secret checks as live; a request the
//! recording has no response for fails in the guest and never reaches the
//! network), and store a report of what differs.
mod diff;

use crate::run::Worker;
use diff::{OutcomeDiff, RequestDiff};
use panel1_sandbox::{
    CallRequest, HttpTape, LoadedAdapter, Operation, RecordedExchange, ReplaySet,
};
use panel1_store::shadow::{self, LeasedRun, Recorded};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A run is replays without network: minutes at most. A worker that dies
/// holding one leaves it to another after this.
const LEASE: Duration = Duration::from_secs(600);

#[derive(Debug, Serialize)]
struct AttemptReport {
    task_id: Uuid,
    attempt: i32,
    server_id: Uuid,
    operation: String,
    recorded_version_id: Uuid,
    clean: bool,
    requests: Vec<RequestDiff>,
    outcome: Option<OutcomeDiff>,
    /// The replay could not run (server settings unusable…): not clean.
    error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct Totals {
    attempts: usize,
    clean_attempts: usize,
    differing_attempts: usize,
    request_differences: usize,
    outcome_differences: usize,
}

impl Worker {
    /// Lease and run shadow runs when announced (and on a slow poll).
    pub(crate) async fn shadow_runs(self: Arc<Self>) {
        loop {
            loop {
                match shadow::lease_run(&self.pool, &self.config.id, LEASE).await {
                    Ok(Some(run)) => self.shadow_run(run).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "leasing a shadow run failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = self.notices.shadow_runs.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    async fn shadow_run(&self, run: LeasedRun) {
        let me = &self.config.id;
        let stored = if run.tries > shadow::MAX_TRIES {
            let why = format!("given up after {} tries", shadow::MAX_TRIES);
            shadow::fail_run(&self.pool, run.id, me, &why).await
        } else {
            match self.replay_all(&run).await {
                Ok((report, clean)) => {
                    shadow::complete_run(&self.pool, run.id, me, &report, clean).await
                }
                Err(why) => shadow::fail_run(&self.pool, run.id, me, &why).await,
            }
        };
        if let Err(e) = stored {
            tracing::warn!(run = %run.id, error = %e, "could not store a shadow run's result");
        }
    }

    async fn replay_all(&self, run: &LeasedRun) -> Result<(Value, bool), String> {
        let (tenant, candidate) = (run.tenant_id, run.candidate_version_id);
        let adapter = shadow::candidate_adapter(&self.pool, tenant, candidate)
            .await
            .map_err(|e| e.to_string())?;
        let loaded = self
            .adapter(candidate)
            .await
            .map_err(|e| format!("loading the candidate: {e}"))?;
        let limit = i64::from(run.max_attempts);
        let recorded = shadow::recordings_to_replay(
            &self.pool,
            tenant,
            adapter,
            candidate,
            run.created_at,
            limit,
        )
        .await
        .map_err(|e| e.to_string())?;
        if recorded.is_empty() {
            return Err(
                "no complete recorded attempts of this adapter's other versions in \
                        this tenant to replay (set record_exchanges on a server)"
                    .into(),
            );
        }
        let mut totals = Totals::default();
        let mut baseline = BTreeSet::new();
        let mut attempts = Vec::with_capacity(recorded.len());
        for rec in recorded {
            baseline.insert(rec.adapter_version_id);
            let a = self.replay_one(&loaded, rec).await;
            totals.attempts += 1;
            totals.request_differences += a.requests.len();
            totals.outcome_differences += usize::from(a.outcome.is_some());
            if a.clean {
                totals.clean_attempts += 1;
            } else {
                totals.differing_attempts += 1;
            }
            attempts.push(a);
        }
        let clean = totals.differing_attempts == 0;
        let report = json!({
            "clean": clean,
            "totals": totals,
            "baseline_version_ids": baseline,
            "attempts": attempts,
        });
        Ok((report, clean))
    }

    async fn replay_one(&self, candidate: &LoadedAdapter, rec: Recorded) -> AttemptReport {
        let mut report = AttemptReport {
            task_id: rec.task_id,
            attempt: rec.attempt,
            server_id: rec.server_id,
            operation: rec.operation.clone(),
            recorded_version_id: rec.adapter_version_id,
            clean: false,
            requests: vec![],
            outcome: None,
            error: None,
        };
        match self.replay_diffs(candidate, &rec).await {
            Ok((requests, outcome)) => {
                report.clean = requests.is_empty() && outcome.is_none();
                report.requests = requests;
                report.outcome = outcome;
            }
            Err(why) => report.error = Some(why),
        }
        report
    }

    async fn replay_diffs(
        &self,
        candidate: &LoadedAdapter,
        rec: &Recorded,
    ) -> Result<(Vec<RequestDiff>, Option<OutcomeDiff>), String> {
        let settings = self
            .server_settings(rec.server_id)
            .await
            .map_err(|e| format!("loading the server: {e}"))?;
        let context = settings.context.clone()?;
        let exchanges: Vec<RecordedExchange> = serde_json::from_value(rec.exchanges.clone())
            .map_err(|e| format!("reading the recording: {e}"))?;
        let operation: Operation = rec.operation.parse().map_err(|e| format!("{e}"))?;
        // Bodies are compared by shape afterwards; matching on method and
        // URL serves the recorded answer to a request whose body changed.
        let set = Arc::new(ReplaySet::new(exchanges).ignoring_bodies());
        let request = CallRequest {
            operation,
            input: rec.input.clone(),
            idempotency_key: rec.task_id.to_string(),
            attempt: rec.attempt.max(1) as u32,
        };
        let tape = Some(HttpTape::Replay(set.clone()));
        let (outcome, http) = match self
            .sandbox
            .call_with_tape(candidate, context, &request, tape)
            .await
        {
            Ok(r) => (diff::outcome_summary(&r.outcome), r.http),
            Err(_) => (
                json!({"status": "adapter-error", "kind": "invalid-input"}),
                vec![],
            ),
        };
        let requests = diff::request_diffs(set.recorded(), &set.served(), &http);
        Ok((requests, diff::outcome_diff(&rec.outcome, &outcome)))
    }
}
