//! Checks 6, 7, 8 and 10: what the adapter makes of failures. A refused
//! credential, a 5xx, a 429 with `Retry-After`, an egress denial and a
//! provider slower than the call's deadline must each come back as the
//! typed error the orchestrator acts on (retry or not, and when).
use super::harness::{describe, error_kind, Harness};
use super::info_check::Info;
use super::profile::Profile;
use super::report::{Check, Row};
use panel1_sandbox::{CallReport, EgressPolicy, HostContext, Operation, Outcome};
use panel1_sims::{Fault, FaultRule};
use panel1_types::{AdapterErrorKind, SandboxErrorKind};
use serde_json::{json, Value};
use std::time::Duration;

/// The `Retry-After` the rate-limit check sends, in seconds.
const RETRY_AFTER_SECS: u32 = 7;
/// How far the adapter's `retry_after_ms` may be from it.
const RETRY_AFTER_SLACK_MS: u64 = 1_000;
/// The short call deadline of the deadline check.
pub const DEADLINE_MS: u64 = 3_000;
/// How slow the provider is in the deadline check.
const SLOW: Duration = Duration::from_secs(10);

/// The call the failure checks make: test-connection, or else status of a
/// service (each reaches the provider).
fn probe(p: &Profile, info: &Info) -> Option<(Operation, Value)> {
    if info.supports(Operation::TestConnection) {
        Some((Operation::TestConnection, json!({})))
    } else if info.supports(Operation::Status) {
        Some((
            Operation::Status,
            json!({ "service": p.service("cfprobe") }),
        ))
    } else {
        None
    }
}

fn no_probe(check: Check) -> Row {
    Row::skip(
        check,
        "neither `test-connection` nor `status` is in info().operations: no call to probe with",
    )
}

/// The probe under `ctx` with `fault` answering every request (cleared
/// afterwards).
async fn probe_with(
    h: &mut Harness<'_>,
    p: &Profile,
    ctx: &HostContext,
    (op, input): (Operation, Value),
    fault: Option<Fault>,
    key: &str,
) -> Result<CallReport, String> {
    if let Some(fault) = fault {
        p.sim().inject(FaultRule::always(fault));
    }
    let r = h.call(ctx, op, input, key, 1).await;
    p.sim().clear_faults();
    r.map_err(|e| e.to_string())
}

/// Check 6: a credential the provider refuses is `auth-failed`; a
/// `transient` (retried forever) fails the check.
pub async fn wrong_credential(h: &mut Harness<'_>, p: &Profile, info: &Info) -> Row {
    let check = Check::WrongCredential;
    let Some(probe) = probe(p, info) else {
        return no_probe(check);
    };
    let mut ctx = p.context();
    let what = p.with_wrong_credential(&mut ctx);
    let r = match probe_with(h, p, &ctx, probe, None, "conformance-wrong-credential").await {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e),
    };
    match error_kind(&r) {
        Some(AdapterErrorKind::AuthFailed) => Row::pass(check, format!("{what}: {}", describe(&r))),
        Some(AdapterErrorKind::Transient) => Row::fail(
            check,
            format!(
                "{what}: {} — a refused credential must be auth-failed, not retried",
                describe(&r)
            ),
        ),
        _ => Row::fail(
            check,
            format!("{what}: {} (expected auth-failed)", describe(&r)),
        ),
    }
}

/// Check 7a: every request answered 503 → `transient`.
pub async fn server_error(h: &mut Harness<'_>, p: &Profile, info: &Info) -> Row {
    let check = Check::ServerError;
    let Some(probe) = probe(p, info) else {
        return no_probe(check);
    };
    let fault = Some(Fault::ServerError(503));
    let r = match probe_with(h, p, &p.context(), probe, fault, "conformance-503").await {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e),
    };
    match error_kind(&r) {
        Some(AdapterErrorKind::Transient) => Row::pass(check, describe(&r)),
        _ => Row::fail(
            check,
            format!(
                "every request answered 503: {} (expected transient)",
                describe(&r)
            ),
        ),
    }
}

/// Check 7b: every request answered 429 with `Retry-After: 7` →
/// `transient` with `retry_after_ms` near 7000.
pub async fn rate_limited(h: &mut Harness<'_>, p: &Profile, info: &Info) -> Row {
    let check = Check::RateLimited;
    let Some(probe) = probe(p, info) else {
        return no_probe(check);
    };
    let fault = Some(Fault::RateLimited {
        retry_after_secs: RETRY_AFTER_SECS,
    });
    let r = match probe_with(h, p, &p.context(), probe, fault, "conformance-429").await {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e),
    };
    let want = u64::from(RETRY_AFTER_SECS) * 1000;
    match &r.outcome {
        Outcome::AdapterError {
            kind: AdapterErrorKind::Transient,
            retry_after_ms: Some(ms),
            ..
        } if ms.abs_diff(want) <= RETRY_AFTER_SLACK_MS => Row::pass(check, describe(&r)),
        Outcome::AdapterError {
            kind: AdapterErrorKind::Transient,
            retry_after_ms,
            ..
        } => Row::fail(
            check,
            format!(
                "transient, but retry_after_ms is {} (expected ~{want}: the provider said Retry-After: {RETRY_AFTER_SECS})",
                retry_after_ms.map_or("absent".to_string(), |ms| ms.to_string())
            ),
        ),
        _ => Row::fail(
            check,
            format!(
                "every request answered 429 (Retry-After: {RETRY_AFTER_SECS}): {} (expected transient)",
                describe(&r)
            ),
        ),
    }
}

/// Check 8: with an empty egress policy every request is denied by the
/// host: `permanent` (as the SDKs classify a denial), and the simulator
/// saw nothing.
pub async fn egress_denied(h: &mut Harness<'_>, p: &Profile, info: &Info) -> Row {
    let check = Check::EgressDenied;
    let Some(probe) = probe(p, info) else {
        return no_probe(check);
    };
    let mut ctx = p.context();
    ctx.egress = EgressPolicy::new(Vec::new());
    let seen = p.sim().request_log().len();
    let r = match probe_with(h, p, &ctx, probe, None, "conformance-egress").await {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e),
    };
    let reached = p.sim().request_log().len().saturating_sub(seen);
    if reached > 0 {
        return Row::fail(
            check,
            format!("{reached} request(s) reached the simulator despite an empty egress policy"),
        );
    }
    let denied = r.metrics.http_denied;
    match error_kind(&r) {
        Some(AdapterErrorKind::Permanent) => Row::pass(
            check,
            format!("{denied} request(s) denied by the host; {}", describe(&r)),
        ),
        Some(AdapterErrorKind::Transient) => Row::fail(
            check,
            format!(
                "{} — a denial does not go away on retry: it must be permanent",
                describe(&r)
            ),
        ),
        _ => Row::fail(check, format!("{} (expected permanent)", describe(&r))),
    }
}

/// Check 10: every request takes longer than the call's short deadline;
/// the adapter must give up by itself with `transient` before the host has
/// to stop the call.
pub async fn deadline(h: &mut Harness<'_>, p: &Profile, info: &Info) -> Row {
    let check = Check::Deadline;
    let Some(probe) = probe(p, info) else {
        return no_probe(check);
    };
    let mut ctx = p.context();
    ctx.limits.timeout_ms = DEADLINE_MS;
    let fault = Some(Fault::Slow(SLOW));
    let r = match probe_with(h, p, &ctx, probe, fault, "conformance-deadline").await {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e),
    };
    let wall_ms = r.metrics.wall_us / 1000;
    match &r.outcome {
        Outcome::AdapterError {
            kind: AdapterErrorKind::Transient,
            ..
        } => Row::pass(
            check,
            format!(
                "deadline {DEADLINE_MS} ms, provider {} s slow: returned after {wall_ms} ms: {}",
                SLOW.as_secs(),
                describe(&r)
            ),
        ),
        Outcome::SandboxError {
            kind: SandboxErrorKind::Deadline,
            ..
        } => Row::fail(
            check,
            format!(
                "the host stopped the call at its {DEADLINE_MS} ms deadline: the adapter did not end its request within the call's deadline_ms"
            ),
        ),
        _ => Row::fail(
            check,
            format!(
                "deadline {DEADLINE_MS} ms, provider {} s slow: {} after {wall_ms} ms (expected transient)",
                SLOW.as_secs(),
                describe(&r)
            ),
        ),
    }
}
