//! Checks 2 to 5: test-connection, provision with ensure semantics (a
//! retry with the same idempotency key, an answer lost after the provider
//! applied it), and suspend, unsuspend and terminate each done twice.
use super::harness::{describe, error_kind, ok_result, state, Harness};
use super::info_check::Info;
use super::profile::Profile;
use super::report::{Check, Row};
use panel1_sandbox::Operation;
use panel1_sims::{Fault, FaultRule};
use panel1_types::AdapterErrorKind;
use serde_json::{json, Value};
use std::time::Duration;

/// How long the provider holds the answer it lost: far past the request
/// timeout the lost-answer check configures.
const STALL: Duration = Duration::from_secs(8);
/// The request timeout the lost-answer check configures (ms).
const LOST_ANSWER_TIMEOUT_MS: &str = "1000";

fn not_listed(check: Check, op: Operation) -> Row {
    Row::skip(check, format!("`{op}` is not in info().operations"))
}

/// Check 2.
pub async fn test_connection(h: &mut Harness<'_>, p: &Profile, info: &Info) -> Row {
    let check = Check::TestConnection;
    if !info.supports(Operation::TestConnection) {
        return not_listed(check, Operation::TestConnection);
    }
    let r = match h
        .call(
            &p.context(),
            Operation::TestConnection,
            json!({}),
            "conformance-test",
            1,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e.to_string()),
    };
    match ok_result(&r) {
        Some(res) => Row::pass(
            check,
            format!(
                "server version `{}`",
                res["server_version"].as_str().unwrap_or("")
            ),
        ),
        None => Row::fail(check, describe(&r)),
    }
}

/// A provisioned service, for the lifecycle checks: its spec with the
/// remote id provision returned.
pub struct Provisioned {
    pub service: Value,
}

/// Check 3: provision, then the same call again as attempt 2 with the same
/// idempotency key; the simulator holds one account more, not two.
pub async fn provision_idempotent(
    h: &mut Harness<'_>,
    p: &Profile,
    info: &Info,
) -> (Row, Option<Provisioned>) {
    let check = Check::ProvisionIdempotent;
    if !info.supports(Operation::Provision) {
        return (not_listed(check, Operation::Provision), None);
    }
    let before = p.accounts();
    let mut service = p.service("cfidem");
    let input = json!({ "service": service });
    let ctx = p.context();
    let mut provisioned = None;
    for attempt in 1..=2 {
        let r = match h
            .call(
                &ctx,
                Operation::Provision,
                input.clone(),
                "conformance-provision",
                attempt,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => return (Row::fail(check, e.to_string()), provisioned),
        };
        let Some(result) = ok_result(&r) else {
            return (
                Row::fail(check, format!("attempt {attempt}: {}", describe(&r))),
                provisioned,
            );
        };
        if attempt == 1 {
            service["remote_id"] = result["remote_id"].clone();
            provisioned = Some(Provisioned {
                service: service.clone(),
            });
        }
    }
    let added = p.accounts().saturating_sub(before);
    let remote = service["remote_id"].as_str().unwrap_or("").to_string();
    if added != 1 {
        return (
            Row::fail(
                check,
                format!(
                    "after two attempts the simulator holds {added} new {} (expected 1)",
                    p.account_word()
                ),
            ),
            provisioned,
        );
    }
    (
        Row::pass(
            check,
            format!("`{remote}` provisioned; attempt 2 succeeded; 1 new account on the simulator"),
        ),
        provisioned,
    )
}

/// Check 4: the provider applies the creating call but its answer never
/// comes (the request times out: `transient`); the retry (attempt 2, same
/// key) succeeds and there is exactly one account.
pub async fn lost_answer(h: &mut Harness<'_>, p: &Profile, info: &Info) -> Row {
    let check = Check::LostAnswer;
    if !info.supports(Operation::Provision) {
        return not_listed(check, Operation::Provision);
    }
    let call = p.creating_call();
    let before = p.accounts();
    let input = json!({ "service": p.service("cflost") });
    let mut ctx = p.context();
    ctx.config
        .insert("request_timeout_ms".into(), LOST_ANSWER_TIMEOUT_MS.into());
    p.sim()
        .inject(FaultRule::next(call, Fault::StallAfterApply(STALL), 1));
    let first = h
        .call(
            &ctx,
            Operation::Provision,
            input.clone(),
            "conformance-lost",
            1,
        )
        .await;
    let fault_used = p.sim().faults().is_empty();
    p.sim().clear_faults();
    let first = match first {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e.to_string()),
    };
    if !fault_used {
        return Row::skip(
            check,
            format!(
                "attempt 1 never made `{call}`, the call whose answer the profile loses ({}); nothing to check",
                describe(&first)
            ),
        );
    }
    if error_kind(&first) != Some(AdapterErrorKind::Transient) {
        return Row::fail(
            check,
            format!(
                "attempt 1, whose `{call}` answer was lost, ended {} (expected transient)",
                describe(&first)
            ),
        );
    }
    let applied = p.accounts().saturating_sub(before);
    let retry = match h
        .call(
            &p.context(),
            Operation::Provision,
            input,
            "conformance-lost",
            2,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e.to_string()),
    };
    if ok_result(&retry).is_none() {
        return Row::fail(
            check,
            format!("the retry (attempt 2): {}", describe(&retry)),
        );
    }
    let added = p.accounts().saturating_sub(before);
    if added != 1 {
        return Row::fail(
            check,
            format!(
                "after the retry the simulator holds {added} new {} (expected 1)",
                p.account_word()
            ),
        );
    }
    Row::pass(
        check,
        format!(
            "`{call}` was applied ({applied} new account) but its answer lost: attempt 1 ended transient; the retry (attempt 2, same key) succeeded; exactly 1 new account"
        ),
    )
}

/// One lifecycle operation twice, each a new task; each must succeed with
/// `expect` as the state.
async fn twice(
    h: &mut Harness<'_>,
    p: &Profile,
    op: Operation,
    service: &Value,
    expect: &str,
) -> Result<(), String> {
    for n in 1..=2 {
        let input = json!({ "service": service, "reason": "conformance suite" });
        let key = format!("conformance-{op}-{n}");
        let r = h
            .call(&p.context(), op, input, &key, 1)
            .await
            .map_err(|e| e.to_string())?;
        let Some(result) = ok_result(&r) else {
            return Err(format!("{op} #{n}: {}", describe(&r)));
        };
        if state(result) != expect {
            return Err(format!(
                "{op} #{n} succeeded but reports state `{}` (expected {expect})",
                state(result)
            ));
        }
    }
    Ok(())
}

/// Checks 5a to 5d.
pub async fn ensure_lifecycle(
    h: &mut Harness<'_>,
    p: &Profile,
    info: &Info,
    provisioned: Option<&Provisioned>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let steps = [
        (Check::SuspendTwice, Operation::Suspend, "suspended"),
        (Check::UnsuspendTwice, Operation::Unsuspend, "active"),
        (Check::TerminateTwice, Operation::Terminate, "terminated"),
    ];
    for (check, op, expect) in steps {
        if !info.supports(op) {
            rows.push(not_listed(check, op));
            continue;
        }
        let Some(service) = provisioned.map(|s| &s.service) else {
            rows.push(Row::skip(
                check,
                "no service to act on: provision did not succeed (check 3)",
            ));
            continue;
        };
        let row = match twice(h, p, op, service, expect).await {
            Err(why) => Row::fail(check, why),
            Ok(()) if op == Operation::Terminate => {
                status_after_terminate(h, p, info, service).await
            }
            Ok(()) => Row::pass(check, format!("both succeeded, state {expect}")),
        };
        rows.push(row);
    }
    rows.push(terminate_unknown(h, p, info).await);
    rows
}

/// The end of 5c: `status` (when listed) says `terminated`.
async fn status_after_terminate(
    h: &mut Harness<'_>,
    p: &Profile,
    info: &Info,
    service: &Value,
) -> Row {
    let check = Check::TerminateTwice;
    if !info.supports(Operation::Status) {
        return Row::pass(
            check,
            "both succeeded, state terminated (status not listed: not asked)",
        );
    }
    let input = json!({ "service": service });
    let r = match h
        .call(
            &p.context(),
            Operation::Status,
            input,
            "conformance-status",
            1,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e.to_string()),
    };
    match ok_result(&r) {
        Some(res) if state(res) == "terminated" => Row::pass(
            check,
            "both succeeded, state terminated; status says terminated",
        ),
        Some(res) => Row::fail(
            check,
            format!(
                "both succeeded, but status after terminate says `{}`",
                state(res)
            ),
        ),
        None => Row::fail(check, format!("status after terminate: {}", describe(&r))),
    }
}

/// 5d: terminating a service that was never provisioned (no remote id,
/// nothing on the provider) succeeds.
async fn terminate_unknown(h: &mut Harness<'_>, p: &Profile, info: &Info) -> Row {
    let check = Check::TerminateUnknown;
    if !info.supports(Operation::Terminate) {
        return not_listed(check, Operation::Terminate);
    }
    let input = json!({ "service": p.service("cfghost"), "reason": "conformance suite" });
    let r = match h
        .call(
            &p.context(),
            Operation::Terminate,
            input,
            "conformance-ghost",
            1,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Row::fail(check, e.to_string()),
    };
    match ok_result(&r) {
        Some(res) => Row::pass(check, format!("succeeded, state {}", state(res))),
        None => Row::fail(check, describe(&r)),
    }
}
