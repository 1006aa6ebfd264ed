//! Moving an account between two WHM servers (world 0.2.0's
//! `export-service` / `import-service`) with WHM's own transfer sessions:
//! the TARGET pulls the account from the SOURCE.
//!
//! - export-service (on the source) only checks the account is there and
//!   answers a `whm-transfer` package naming it (user, domain, plan,
//!   suspension, the source's WHM host and port).
//! - import-service (on the target): `create_remote_root_transfer_session`
//!   with the source's host and its credential (the `source-secret`
//!   placeholder the host binds for this call only, sent in a POST body to
//!   the target WHM, which logs in to the source with it),
//!   `enqueue_transfer_item` (`AccountRemoteRoot`), `start_transfer_session`,
//!   then `get_transfer_session_state` until COMPLETED.
//!
//! An ensure: an account already on the target with the package's domain
//! is this transfer's result (a retry after the session finished answers
//! it, no second session). A retry while the earlier session still runs is
//! refused by WHM at enqueue ("already being transferred"): the new, empty
//! session is aborted and the call answers `transient`, never a second
//! transfer.
use crate::form::Params;
use crate::whm::{self, Answer, Method, Whm};
use crate::{input, lookup};
use panel1_sdk::*;
use serde_json::Value;

/// The package kind this adapter makes and takes.
pub const KIND: &str = "whm-transfer";

/// The source server's secret the target WHM logs in to it with: WHM's
/// transfers authenticate as root with its password (an API token will not
/// do). The host binds the source's secrets as `source.<name>` for the call.
pub const ROOT_PASSWORD_SECRET: &str = "whm-root-password";
const SOURCE_ROOT_PASSWORD: &str = "source.whm-root-password";

/// Pauses between polls of a transfer session, growing to the maximum.
const FIRST_PAUSE_MS: u64 = 250;
const MAX_PAUSE_MS: u64 = 2_000;
/// Polls of a move in a call without a deadline.
const MAX_POLLS: u32 = 120;

fn detail<'a>(t: &'a TransferPackage, key: &str) -> Option<&'a str> {
    t.details
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
        .filter(|v| !v.is_empty())
}

/// A host name or IP as WHM's `host` takes it: `source-address` may be a
/// bare host or a URL (`https://whm.example.com:2087/…`).
pub fn source_host(address: &str) -> Result<String, AdapterError> {
    let a = address.trim();
    let a = a.split_once("://").map_or(a, |(_, rest)| rest);
    let a = a.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = a.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._:".contains(c);
    if host.is_empty() || !host.chars().all(plain) {
        return Err(invalid_input(format!(
            "source address `{}` names no WHM host",
            address.escape_debug()
        )));
    }
    Ok(host.to_ascii_lowercase())
}

pub fn export(req: ExportRequest) -> Result<TransferPackage, AdapterError> {
    let user = input::account_of(&req.service)?;
    let whm = Whm::connect(&req.ctx)?;
    let Some(account) = lookup(&whm, &user)? else {
        return Err(not_found(format!(
            "cPanel account `{user}` does not exist on the source WHM: nothing to migrate"
        )));
    };
    let settings = crate::settings::Settings::load()?;
    let mut details = vec![
        KeyValue::new("user", &user),
        KeyValue::new("whm_host", &settings.host),
        KeyValue::new("whm_port", settings.port.to_string()),
        KeyValue::new("suspended", if account.suspended { "1" } else { "0" }),
    ];
    if let Some(d) = &account.domain {
        details.push(KeyValue::new("domain", d));
    }
    if let Some(p) = &account.plan {
        details.push(KeyValue::new("plan", p));
    }
    log::info(
        "account ready to be pulled by the target",
        &[("username", &user)],
    );
    Ok(TransferPackage {
        kind: KIND.into(),
        reference: user,
        details,
    })
}

/// The account the package names, checked like any cPanel username.
fn package_user(t: &TransferPackage) -> Result<String, AdapterError> {
    if t.kind != KIND {
        return Err(invalid_input(format!(
            "transfer package of kind `{}`: the cPanel adapter imports `{KIND}` packages only",
            t.kind
        )));
    }
    let user = t.reference.trim();
    let ok = !user.is_empty()
        && user.len() <= 32
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        return Err(invalid_input(format!(
            "transfer package names `{}`, not a cPanel username",
            user.escape_debug()
        )));
    }
    Ok(user.to_string())
}

/// A WHM failure of the session calls: a refused login to the source is
/// the source credential's fault.
fn session_failure(function: &str, reason: &str) -> AdapterError {
    let r = reason.to_ascii_lowercase();
    if r.contains("authenticat") || r.contains("login") || r.contains("password") {
        auth_failed(format!(
            "the source WHM refused the transfer's login (check the source server's credential): WHM {function}: {reason}"
        ))
    } else {
        whm::failure(function, reason)
    }
}

pub fn import(req: ImportRequest) -> Result<ServiceStatus, AdapterError> {
    let user = package_user(&req.transfer)?;
    let host = source_host(&req.source_address)?;
    // The host names the source's login; the cPanel one is its root password.
    let secret = input::field(&req.source_secret).unwrap_or(SOURCE_ROOT_PASSWORD);
    let credential = secrets::placeholder(secret).map_err(|e| {
        invalid_input(format!(
            "import-service needs the source server's root password (bind a `{ROOT_PASSWORD_SECRET}` secret to the source server): {}",
            whm::message(&e)
        ))
    })?;
    let domain = detail(&req.transfer, "domain");
    let whm = Whm::connect(&req.ctx)?;

    // Ensure: the account is already here (an earlier attempt's transfer).
    if let Some(existing) = lookup(&whm, &user)? {
        if domain.is_some() && existing.domain.as_deref() != domain {
            return Err(conflict(format!(
                "cPanel account `{user}` already exists on the target with domain `{}`, not `{}`",
                existing.domain.as_deref().unwrap_or("?"),
                domain.unwrap_or("?")
            )));
        }
        log::info(
            "account already on the target: the transfer is done",
            &[("username", &user)],
        );
        return Ok(existing.to_status());
    }

    let params = Params::new()
        .text("remote_server_type", "cpanel")
        .text("host", &host)
        .text("user", "root")
        .placeholder("password", credential)
        .text("unrestricted_restore", "1")
        .text("copy_reseller_privs", "0")
        .text("transfer_threads", "1")
        .text("restore_threads", "1");
    let session = match whm.call(Method::Post, "create_remote_root_transfer_session", params)? {
        Answer::Ok(doc) => doc
            .pointer("/data/transfer_session_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                permanent("WHM create_remote_root_transfer_session: the answer has no data.transfer_session_id")
            })?
            .to_string(),
        Answer::Failed(reason) => {
            return Err(session_failure("create_remote_root_transfer_session", &reason))
        }
    };
    log::info(
        "transfer session created",
        &[
            ("username", &user),
            ("transfer_session_id", &session),
            ("source", &host),
        ],
    );
    let item = Params::new()
        .text("transfer_session_id", &session)
        .text("module", "AccountRemoteRoot")
        .text("user", &user)
        .text("localuser", &user)
        .opt("domain", domain);
    if let Answer::Failed(reason) = whm.call(Method::Get, "enqueue_transfer_item", item)? {
        abort(&whm, &session);
        if reason
            .to_ascii_lowercase()
            .contains("already being transferred")
        {
            return Err(transient(
                format!("WHM is already transferring `{user}` in another session: {reason}"),
                Some(10_000),
            ));
        }
        return Err(session_failure("enqueue_transfer_item", &reason));
    }
    let start = Params::new().text("transfer_session_id", &session);
    whm.ok(Method::Get, "start_transfer_session", start)?;
    follow_session(&whm, &req.ctx, &session, MAX_POLLS, "transferring")?;
    match lookup(&whm, &user)? {
        Some(account) => {
            let mut status = account.to_status();
            status.details.push(KeyValue::new("transfer_session_id", session));
            status.details.push(KeyValue::new("transferred_from", host));
            Ok(status)
        }
        None => Err(permanent(format!(
            "WHM reported transfer session `{session}` complete, but account `{user}` does not exist on the target"
        ))),
    }
}

/// Best effort: a session that will not run is aborted (its failure is
/// only logged; the call's own error says what went wrong).
fn abort(whm: &Whm, session: &str) {
    let params = Params::new().text("transfer_session_id", session);
    if let Err(e) = whm.ok(Method::Get, "abort_transfer_session", params) {
        log::warn(
            "could not abort the transfer session",
            &[
                ("transfer_session_id", session),
                ("reason", whm::message(&e)),
            ],
        );
    }
}

/// Follow a WHM transfer session (a move's, or a restore's: WHM restores
/// cpmove archives through one) until it is done or the call's time runs
/// out; `doing` names the work in the messages ("transferring", "restoring").
pub(crate) fn follow_session(
    whm: &Whm,
    ctx: &CallContext,
    session: &str,
    max_polls: u32,
    doing: &str,
) -> Result<(), AdapterError> {
    let mut pause = FIRST_PAUSE_MS;
    for _ in 0..max_polls {
        let params = Params::new().text("transfer_session_id", session);
        let doc = whm.ok(Method::Get, "get_transfer_session_state", params)?;
        let state = doc
            .pointer("/data/state_name")
            .and_then(Value::as_str)
            .unwrap_or("");
        match state {
            "COMPLETED" => return Ok(()),
            "FAILED" | "ABORTED" => {
                return Err(permanent(format!(
                    "WHM stopped {doing}: transfer session `{session}` ended {state} (WHM's transfer log says why; a user missing on the source fails it)"
                )))
            }
            _ => {}
        }
        // Enough left for the pause and one more request?
        if ctx.deadline_ms > 0 && whm.remaining_ms() < pause + 2 * MAX_PAUSE_MS {
            break;
        }
        deadline::pause_ms(pause);
        pause = (pause * 2).min(MAX_PAUSE_MS);
    }
    // The session goes on in WHM: a retry finds the account once it is
    // done, or is refused at enqueue while it runs.
    Err(transient(
        format!("WHM is still {doing} (transfer session `{session}`): retry later"),
        Some(10_000),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_hosts() {
        assert_eq!(
            source_host("whm-a.example.com").unwrap(),
            "whm-a.example.com"
        );
        assert_eq!(
            source_host("https://WHM-A.example.com:2087/json-api/").unwrap(),
            "whm-a.example.com"
        );
        assert_eq!(source_host("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(source_host("[2001:db8::5]:2087").unwrap(), "2001:db8::5");
        for bad in ["", "https://", "a b", "x;y"] {
            assert!(source_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn packages() {
        let p = |kind: &str, r: &str| TransferPackage {
            kind: kind.into(),
            reference: r.into(),
            details: vec![],
        };
        assert_eq!(package_user(&p(KIND, "bob1")).unwrap(), "bob1");
        assert!(package_user(&p("archive", "bob1")).is_err());
        assert!(package_user(&p(KIND, "bob&x=1")).is_err());
        assert!(package_user(&p(KIND, "")).is_err());
    }

    #[test]
    fn a_refused_login_is_auth_failed() {
        assert!(matches!(
            session_failure(
                "create_remote_root_transfer_session",
                "Failed to authenticate with the remote server"
            ),
            AdapterError::AuthFailed(_)
        ));
        assert!(matches!(
            session_failure("enqueue_transfer_item", "The user “x” does not exist."),
            AdapterError::NotFound(_)
        ));
    }
}
