//! Recorded attempts (issue 19): a server with `record_exchanges` on has
//! each attempt's HTTP exchanges kept, as `panel1 adapter run --record`
//! writes them (the sandbox's recorder: requests as the guest built them,
//! with secret placeholders; responses after the secret scrubber; every
//! secret value turned into its placeholder once more). Capped here: each
//! body at [`EXCHANGE_BODY_MAX`], an attempt at [`ATTEMPT_MAX_BYTES`].
use crate::run::Worker;
use panel1_sandbox::{RecordedBody, RecordedExchange};
use panel1_store::shadow::{insert_recording, NewRecording};
use panel1_store::{Applied, ClaimedTask, TaskOutcome};
use serde_json::{json, Value};
use uuid::Uuid;

/// Longest request or response body kept per exchange.
pub const EXCHANGE_BODY_MAX: usize = 64 << 10;
/// Most bytes of exchanges (as JSON) kept per attempt; later ones are dropped.
pub const ATTEMPT_MAX_BYTES: usize = 512 << 10;

/// An attempt's exchanges, capped, waiting for its completion to commit.
pub struct Taped {
    pub adapter_version_id: Uuid,
    pub exchanges: Value,
    /// Nothing was cut: a shadow run may replay it.
    pub complete: bool,
    pub bytes: usize,
}

fn cap_body(b: &mut RecordedBody, complete: &mut bool) {
    let bytes = b.bytes();
    if bytes.len() > EXCHANGE_BODY_MAX {
        let full = b.body_bytes;
        *b = RecordedBody::from_bytes(&bytes, EXCHANGE_BODY_MAX);
        b.body_bytes = full;
        b.body_truncated = true;
    }
    if b.body_truncated {
        *complete = false;
    }
}

/// Cap each body, then the attempt.
pub fn taped(adapter_version_id: Uuid, exchanges: Vec<RecordedExchange>) -> Taped {
    let mut complete = true;
    let mut kept = Vec::with_capacity(exchanges.len());
    let mut bytes = 0;
    for mut x in exchanges {
        cap_body(&mut x.request.body, &mut complete);
        if let Some(r) = x.response.as_mut() {
            cap_body(&mut r.body, &mut complete);
        }
        let v = serde_json::to_value(&x).unwrap_or(Value::Null);
        let size = v.to_string().len();
        if bytes + size > ATTEMPT_MAX_BYTES {
            complete = false;
            break;
        }
        bytes += size;
        kept.push(v);
    }
    Taped {
        adapter_version_id,
        exchanges: Value::Array(kept),
        complete,
        bytes,
    }
}

/// What a shadow run compares of an outcome: ok, or the error's class and kind.
pub fn outcome_summary(o: &TaskOutcome) -> Value {
    match o {
        TaskOutcome::Succeeded { .. } => json!({"status": "ok"}),
        TaskOutcome::AdapterError { kind, .. } => json!({"status": "adapter-error", "kind": kind}),
        TaskOutcome::SandboxError { kind, .. } => json!({"status": "sandbox-error", "kind": kind}),
        TaskOutcome::Internal { .. } => json!({"status": "internal"}),
    }
}

impl Worker {
    /// Store the recording once the attempt's completion was applied (a
    /// stale completion wrote no attempt, so no recording either).
    pub(crate) async fn store_recording(
        &self,
        task: &ClaimedTask,
        outcome: Value,
        taped: Taped,
        applied: &Applied,
    ) {
        if matches!(applied, Applied::Stale) || outcome["status"] == "internal" {
            return;
        }
        let r = NewRecording {
            task_id: task.id,
            attempt: task.attempt.max(1),
            tenant_id: task.tenant_id,
            server_id: task.server_id,
            adapter_version_id: taped.adapter_version_id,
            operation: &task.operation,
            input: &task.input,
            outcome: &outcome,
            exchanges: &taped.exchanges,
            complete: taped.complete,
            bytes: taped.bytes as i32,
        };
        if let Err(e) = insert_recording(&self.pool, &r).await {
            tracing::warn!(task = %task.id, error = %e, "could not store the attempt's recording");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use panel1_sandbox::{RecordedRequest, RecordedResponse};

    fn exchange(body: usize) -> RecordedExchange {
        RecordedExchange {
            request: RecordedRequest {
                method: "POST".into(),
                url: "https://h.test/x".into(),
                headers: vec![],
                body: RecordedBody::from_bytes(&vec![b'a'; body], 1 << 20),
            },
            response: Some(RecordedResponse {
                status: 200,
                headers: vec![],
                body: RecordedBody::from_bytes(b"{}", 16),
            }),
            error: None,
        }
    }

    #[test]
    fn bodies_and_attempts_are_capped_and_marked_incomplete() {
        let t = taped(Uuid::nil(), vec![exchange(10), exchange(10)]);
        assert!(t.complete);
        assert_eq!(t.exchanges.as_array().unwrap().len(), 2);

        let t = taped(Uuid::nil(), vec![exchange(EXCHANGE_BODY_MAX + 5)]);
        assert!(!t.complete);
        let body = &t.exchanges[0]["request"];
        assert_eq!(body["body"].as_str().unwrap().len(), EXCHANGE_BODY_MAX);
        assert_eq!(body["body_bytes"], EXCHANGE_BODY_MAX as u64 + 5);
        assert_eq!(body["body_truncated"], true);

        let many: Vec<_> = (0..20).map(|_| exchange(60 << 10)).collect();
        let t = taped(Uuid::nil(), many);
        assert!(!t.complete);
        assert!(t.bytes <= ATTEMPT_MAX_BYTES);
        assert!(t.exchanges.as_array().unwrap().len() < 20);
    }
}
