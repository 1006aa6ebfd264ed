//! {{name}}: a Panel1 provisioning adapter (Rust, panel1-sdk).
//!
//! A small but real starter for WHM API 1 (cPanel's server API), the
//! provider `panel1 sim whm` simulates. Every call is
//! `GET https://{host}:{port}/json-api/<function>?api.version=1&…` with
//! `Authorization: whm <user>:<whm-token>`; the token is a secret placeholder
//! the host fills in, so its value never enters this component.
//!
//! Change the provider: replace `whm()` and the six operations below; keep
//! the error mapping (`http::status_error`, `transport_error`) and the
//! per-request timeout from `Deadline`.
use panel1_sdk::deadline::Deadline;
use panel1_sdk::http::{query_escape, status_error, transport_error, Request, TransportHints};
use panel1_sdk::*;
use serde_json::Value;

/// The secret holding the WHM API token.
const TOKEN: &str = "whm-token";

const SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["host"],"properties":{"host":{"type":"string","minLength":1,"description":"WHM host name or IP, without scheme or port"},"port":{"type":"integer","minimum":1,"maximum":65535,"default":2087},"whm_user":{"type":"string","minLength":1,"default":"root"},"request_timeout_ms":{"type":"integer","minimum":100,"default":30000,"description":"Timeout of one WHM call (kept below the call's deadline)"}},"additionalProperties":false}"#;

struct Adapter;

/// The server's settings and the call's clock, for one operation.
struct Whm {
    base: String,
    user: String,
    timeout_ms: u64,
    deadline: Deadline,
}

/// `metadata.result == 1` (the document) or WHM's failure reason.
enum Answer {
    Ok(Value),
    Failed(String),
}

fn whm(ctx: &CallContext) -> Result<Whm, AdapterError> {
    let host = config::url_host(&config::require("host")?, "host").map_err(invalid_input)?;
    let port = config::port_or(config::get("port").as_deref(), "port", 2087).map_err(invalid_input)?;
    let timeout_ms = config::positive_or(config::get("request_timeout_ms").as_deref(), "request_timeout_ms", 30_000)
        .map_err(invalid_input)?;
    Ok(Whm {
        base: format!("https://{host}:{port}/json-api/"),
        user: config::get("whm_user").unwrap_or_else(|| "root".into()),
        timeout_ms,
        deadline: Deadline::new(ctx),
    })
}

impl Whm {
    /// One WHM API 1 call. HTTP statuses map to typed errors (401/403 →
    /// auth-failed, 429/5xx → transient with Retry-After); the request ends
    /// before the call's deadline, so a hung server is `transient`.
    fn call(&self, function: &str, params: &[(&str, &str)]) -> Result<Answer, AdapterError> {
        let timeout = self
            .deadline
            .request_timeout(self.timeout_ms)
            .ok_or_else(|| transient(format!("WHM {function}: no time left in the call"), None))?;
        let mut url = format!("{}{function}?api.version=1", self.base);
        for (k, v) in params {
            url.push_str(&format!("&{k}={}", query_escape(v)));
        }
        let token = secrets::placeholder(TOKEN)?;
        let hints = TransportHints {
            egress: "the egress rules must allow the WHM URL and `whm-token` must be bound to its host",
            tls: "a self-signed WHM needs its certificate pinned on the egress rule (`URL sha256:<hex>`)",
            identity: "WHM does not use client certificates",
        };
        let resp = Request::get(url)
            .header("authorization", format!("whm {}:{token}", self.user))
            .header("accept", "application/json")
            .timeout_ms(timeout)
            .send()
            .map_err(|e| transport_error(&format!("WHM {function}"), e, &hints))?;
        log::info("whm call", &[("function", function), ("status", &resp.status.to_string())]);
        if !resp.is_success() {
            return Err(status_error(&resp));
        }
        let doc: Value = resp.json()?;
        match doc.pointer("/metadata/result").and_then(Value::as_i64) {
            Some(1) => Ok(Answer::Ok(doc)),
            Some(0) => Ok(Answer::Failed(
                doc.pointer("/metadata/reason").and_then(Value::as_str).unwrap_or("no reason").to_string(),
            )),
            _ => Err(permanent(format!("WHM {function}: not a WHM API 1 answer"))),
        }
    }

    /// The account's state, or `None` when WHM has no such account.
    fn account(&self, user: &str) -> Result<Option<RemoteState>, AdapterError> {
        match self.call("accountsummary", &[("user", user)])? {
            Answer::Ok(doc) => {
                let suspended = doc.pointer("/data/acct/0/suspended").and_then(Value::as_i64) == Some(1);
                Ok(Some(if suspended { RemoteState::Suspended } else { RemoteState::Active }))
            }
            Answer::Failed(reason) if says(&reason, "does not exist") => Ok(None),
            Answer::Failed(reason) => Err(permanent(format!("WHM accountsummary: {reason}"))),
        }
    }
}

/// The WHM username of a service: its remote id once provisioned.
fn user_of(service: &ServiceSpec) -> Result<String, AdapterError> {
    service
        .remote_id
        .clone()
        .or_else(|| service.username.clone())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid_input("the service has neither a remote id nor a username"))
}

fn status_of(user: &str, state: RemoteState) -> ServiceStatus {
    ServiceStatus::new(user.to_string(), state)
}

/// suspend/unsuspend as an "ensure": nothing to do when already there.
fn ensure(req: &ServiceRequest, function: &str, want: RemoteState) -> Result<ServiceStatus, AdapterError> {
    let w = whm(&req.ctx)?;
    let user = user_of(&req.service)?;
    match w.account(&user)? {
        None => Err(not_found(format!("WHM has no account `{user}`"))),
        Some(state) if state == want => Ok(status_of(&user, want)),
        Some(_) => {
            let reason = if req.reason.is_empty() { "Panel1" } else { req.reason.as_str() };
            match w.call(function, &[("user", &user), ("reason", reason)])? {
                Answer::Ok(_) => Ok(status_of(&user, want)),
                Answer::Failed(r) => Err(permanent(format!("WHM {function}: {r}"))),
            }
        }
    }
}

impl panel1_sdk::Adapter for Adapter {
    fn info() -> AdapterInfo {
        AdapterInfo {
            description: "{{name}}: WHM API 1 starter adapter".into(),
            operations: vec![
                Operation::TestConnection,
                Operation::Provision,
                Operation::Suspend,
                Operation::Unsuspend,
                Operation::Terminate,
                Operation::Status,
            ],
            config_schema: SCHEMA.into(),
            egress: vec!["https://{host}:{port}/json-api/".into()],
            secrets: vec![TOKEN.into()],
            ..AdapterInfo::named("{{name}}", "0.1.0")
        }
    }

    fn test_connection(req: TestRequest) -> Result<ConnectionInfo, AdapterError> {
        match whm(&req.ctx)?.call("version", &[])? {
            Answer::Ok(doc) => Ok(ConnectionInfo {
                server_version: format!(
                    "WHM {}",
                    doc.pointer("/data/version").and_then(Value::as_str).unwrap_or("?")
                ),
                details: vec![],
            }),
            Answer::Failed(reason) => Err(permanent(format!("WHM version: {reason}"))),
        }
    }

    fn provision(req: ProvisionRequest) -> Result<ServiceStatus, AdapterError> {
        let w = whm(&req.ctx)?;
        let s = &req.service;
        let user = s.username.clone().filter(|u| !u.is_empty()).ok_or_else(|| invalid_input("username is required"))?;
        // Ensure semantics: a retry (or a lost answer) finds the account the
        // first attempt created.
        if let Some(state) = w.account(&user)? {
            return Ok(status_of(&user, state));
        }
        let mut params = vec![("username", user.as_str())];
        params.extend(s.domain.as_deref().map(|d| ("domain", d)));
        params.extend(s.plan.as_deref().map(|p| ("plan", p)));
        params.extend(s.contact_email.as_deref().map(|e| ("contactemail", e)));
        match w.call("createacct", &params)? {
            Answer::Ok(_) => {
                log::info("account created", &[("username", &user)]);
                Ok(status_of(&user, RemoteState::Active))
            }
            Answer::Failed(reason) if says(&reason, "already exists") => match w.account(&user)? {
                Some(state) => Ok(status_of(&user, state)),
                None => Err(conflict(format!("WHM createacct: {reason}"))),
            },
            Answer::Failed(reason) => Err(invalid_input(format!("WHM createacct: {reason}"))),
        }
    }

    fn suspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        ensure(&req, "suspendacct", RemoteState::Suspended)
    }

    fn unsuspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        ensure(&req, "unsuspendacct", RemoteState::Active)
    }

    fn terminate(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let w = whm(&req.ctx)?;
        let user = user_of(&req.service)?;
        match w.call("removeacct", &[("username", &user)])? {
            Answer::Ok(_) => Ok(status_of(&user, RemoteState::Terminated)),
            // Already gone is success: terminate is an "ensure".
            Answer::Failed(reason) if says(&reason, "does not exist") => Ok(status_of(&user, RemoteState::Terminated)),
            Answer::Failed(reason) => Err(permanent(format!("WHM removeacct: {reason}"))),
        }
    }

    fn status(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let w = whm(&req.ctx)?;
        let user = user_of(&req.service)?;
        Ok(status_of(&user, w.account(&user)?.unwrap_or(RemoteState::Terminated)))
    }
}

export_adapter!(Adapter);
