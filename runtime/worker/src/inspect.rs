//! Inspect new adapter versions: call `info` in the sandbox with a small
//! budget and no network, secrets or config, and keep what it declares
//! (operations, config schema). A version whose `info` fails is rejected
//! with the reason; servers can only use `ready` versions.
use panel1_sandbox::{CallRequest, HostContext, Limits, Operation, Outcome, Sandbox};
use panel1_store::inspection::Inspection;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

/// `info` only builds a record: a small budget is plenty.
fn inspection_limits() -> Limits {
    Limits {
        fuel: 200_000_000,
        memory_bytes: 64 << 20,
        timeout_ms: 5_000,
        http_max_requests: 0,
        ..Limits::default()
    }
}

pub async fn inspect(sandbox: Arc<Sandbox>, id: Uuid, bytes: Vec<u8>) -> Inspection {
    let rejected = |reason: String| Inspection::Rejected { reason };
    let sb = sandbox.clone();
    let loaded = match tokio::task::spawn_blocking(move || sb.load(&bytes)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return rejected(format!("loading the component: {e}")),
        Err(e) => return rejected(format!("loading the component: {e}")),
    };
    let ctx = Arc::new(HostContext {
        limits: inspection_limits(),
        ..HostContext::default()
    });
    let req = CallRequest {
        operation: Operation::Info,
        input: Value::Null,
        idempotency_key: format!("inspect-{id}"),
        attempt: 1,
    };
    let report = match sandbox.call(&loaded, ctx, &req).await {
        Ok(r) => r,
        Err(e) => return rejected(format!("calling info: {e}")),
    };
    let info = match report.outcome {
        Outcome::Ok { result } => result,
        other => {
            let text = serde_json::to_value(&other).unwrap_or(Value::Null);
            return rejected(format!(
                "info did not succeed: {} {}",
                text["kind"].as_str().unwrap_or("error"),
                text["message"].as_str().unwrap_or("")
            ));
        }
    };
    let schema_text = info["config_schema"].as_str().unwrap_or("").trim();
    let config_schema = if schema_text.is_empty() {
        json!({"type": "object"})
    } else {
        match serde_json::from_str::<Value>(schema_text) {
            Ok(v) if v.is_object() => v,
            Ok(_) => return rejected("info.config-schema is not a JSON object".into()),
            Err(e) => return rejected(format!("info.config-schema is not JSON: {e}")),
        }
    };
    Inspection::Ready {
        info,
        config_schema,
    }
}
