//! The WHM API 1 client, and the one place that reads WHM's answers.
//!
//! Every call is `https://{host}:{port}/json-api/<function>?api.version=1&…`
//! with `Authorization: whm <user>:<whm-token placeholder>` (the host puts the
//! token in, only for the bound destination). Each answer becomes WHM's JSON
//! document, a WHM failure reason ([`Answer::Failed`]), or a typed error:
//! transport trouble, 5xx and 429 are `transient`; a refused token or a login
//! page is `auth-failed`; anything that is not WHM API 1 is `permanent`.
use crate::form::Params;
use crate::settings::Settings;
use panel1_sdk::deadline::Deadline;
use panel1_sdk::http::{
    looks_like_html, snippet, transport_error, HttpError, Request, TransportHints,
};
use panel1_sdk::*;
use serde_json::Value;

/// The secret holding the WHM API token.
pub const TOKEN_SECRET: &str = "whm-token";

/// How much of a non-JSON body an error message may quote.
const SNIPPET_CHARS: usize = 100;

const LOGIN_PAGE: &str = "WHM answered with its login page: the API token was refused (check the whm-token secret and the WHM user)";

/// GET (query string) or POST (form body, for passwords).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Get,
    Post,
}

/// A well-formed WHM API 1 answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `metadata.result == 1`: the whole document (`data`, `metadata`).
    Ok(Value),
    /// `metadata.result == 0`: `metadata.reason`.
    Failed(String),
}

/// A WHM server, for one operation.
pub struct Whm {
    settings: Settings,
    deadline: Deadline,
}

impl Whm {
    /// From the server config; starts the operation's clock.
    pub fn connect(ctx: &CallContext) -> Result<Whm, AdapterError> {
        Ok(Whm {
            settings: Settings::load()?,
            deadline: Deadline::new(ctx),
        })
    }

    /// Milliseconds left in the operation (0 once past it, or without one).
    pub fn remaining_ms(&self) -> u64 {
        self.deadline.remaining_ms()
    }

    /// The WHM user the token belongs to (owner of the accounts it creates).
    pub fn user(&self) -> &str {
        &self.settings.user
    }

    /// Call `function` and require success: a WHM failure becomes the typed
    /// error its reason maps to.
    pub fn ok(
        &self,
        method: Method,
        function: &str,
        params: Params,
    ) -> Result<Value, AdapterError> {
        match self.call(method, function, params)? {
            Answer::Ok(doc) => Ok(doc),
            Answer::Failed(reason) => Err(failure(function, &reason)),
        }
    }

    /// Call `function`; WHM's own failures come back as [`Answer::Failed`]
    /// for the caller to judge (idempotent retries), everything else typed.
    pub fn call(
        &self,
        method: Method,
        function: &str,
        params: Params,
    ) -> Result<Answer, AdapterError> {
        let left = self.deadline.remaining_ms();
        let timeout = self
            .deadline
            .request_timeout(self.settings.timeout_ms)
            .ok_or_else(|| {
                transient(
                    format!("WHM {function}: no time left in the call ({left} ms)"),
                    None,
                )
            })?;
        let url = format!("{}{function}?api.version=1", self.settings.base_url());
        let token = secrets::placeholder(TOKEN_SECRET)?;
        let request = match method {
            Method::Get => {
                let query = params.encode();
                if query.is_empty() {
                    Request::get(url)
                } else {
                    Request::get(format!("{url}&{query}"))
                }
            }
            // The body keeps passwords out of the URL, which the host logs.
            Method::Post => Request::post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(params.encode()),
        }
        .header(
            "authorization",
            format!("whm {}:{token}", self.settings.user),
        )
        .header("accept", "application/json")
        .timeout_ms(timeout);

        let started = self.deadline.remaining_ms();
        let sent = request.send();
        let elapsed = started
            .saturating_sub(self.deadline.remaining_ms())
            .to_string();
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let err = self.transport_error(function, e);
                log_call(function, "-", kind_name(&err), &elapsed);
                return Err(err);
            }
        };
        let answer = classify(
            function,
            response.status,
            response.header("content-type"),
            response.retry_after_ms(),
            &response.body,
        );
        let result = match &answer {
            Ok(Answer::Ok(_)) => "1",
            Ok(Answer::Failed(_)) => "0",
            Err(e) => kind_name(e),
        };
        log_call(function, &response.status.to_string(), result, &elapsed);
        answer
    }

    fn transport_error(&self, function: &str, e: HttpError) -> AdapterError {
        let base = self.settings.base_url();
        let hints = TransportHints {
            egress: &format!(
                "the server's egress rules must allow {base} and the `{TOKEN_SECRET}` secret must be bound to that host"
            ),
            tls: &format!(
                "a self-signed WHM needs its certificate pinned on the egress rule (`{base} sha256:<hex>`), and a pin must match the certificate WHM serves"
            ),
            identity: "bind a client identity secret (certificate and key, PEM) the server accepts to its host",
        };
        transport_error(&format!("WHM {function} (talking to {base})"), e, &hints)
    }
}

/// One structured line per WHM call; never parameters or headers. A WHM
/// failure (`0`) is often expected (lookups, idempotent retries), so only
/// errors are warnings.
fn log_call(function: &str, status: &str, result: &str, elapsed_ms: &str) {
    let fields = [
        ("function", function),
        ("http_status", status),
        ("result", result),
        ("elapsed_ms", elapsed_ms),
    ];
    match result {
        "1" | "0" => log::info("whm call", &fields),
        _ => log::warn("whm call", &fields),
    }
}

/// Classify one HTTP answer from WHM.
pub fn classify(
    function: &str,
    status: u16,
    content_type: Option<&str>,
    retry_after_ms: Option<u64>,
    body: &[u8],
) -> Result<Answer, AdapterError> {
    let at = format!("WHM {function}: HTTP {status}");
    if status == 429 || status == 408 || (500..=599).contains(&status) {
        return Err(transient(
            format!("{at}: WHM is busy or failing, retry later"),
            retry_after_ms,
        ));
    }
    if status == 401 || status == 403 {
        return Err(auth_failed(format!(
            "{at}: the API token was refused (check the whm-token secret and the WHM user)"
        )));
    }
    let ct = content_type.unwrap_or("none");
    if looks_like_html(content_type, body) {
        // WHM serves its login page (often with 200) when the token is wrong.
        return Err(if status < 400 {
            auth_failed(format!("WHM {function}: {LOGIN_PAGE}"))
        } else {
            permanent(format!(
                "WHM {function}: not a WHM API 1 response: HTTP {status}, content-type {ct}, an HTML page"
            ))
        });
    }
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return Err(permanent(format!(
            "WHM {function}: not a WHM API 1 response: HTTP {status}, content-type {ct}, body starts with {:?}",
            snippet(body, SNIPPET_CHARS)
        )));
    };
    let Some(metadata) = doc.get("metadata").filter(|m| m.is_object()) else {
        return Err(api0_or_unknown(function, status, ct, &doc));
    };
    let reason = metadata.get("reason").and_then(Value::as_str).unwrap_or("");
    match (number(metadata.get("result")), (200..300).contains(&status)) {
        (Some(1), true) => Ok(Answer::Ok(doc)),
        (Some(0), _) => Ok(Answer::Failed(match reason.trim() {
            "" => "no reason given".to_string(),
            r => r.to_string(),
        })),
        _ => Err(permanent(format!(
            "{at}: not a WHM API 1 result (metadata.result is {}){}",
            metadata.get("result").unwrap_or(&Value::Null),
            match reason {
                "" => String::new(),
                r => format!(": {r}"),
            }
        ))),
    }
}

/// JSON without `metadata`: WHM API 0, or something else entirely (a
/// proxy's or gateway's own error body, such as problem+json).
fn api0_or_unknown(function: &str, status: u16, ct: &str, doc: &Value) -> AdapterError {
    // API 0 proper: `cpanelresult`, or WHM API 0's top-level `result` or
    // `statusmsg`. A bare top-level `status` is not enough: problem+json
    // (RFC 9457) and many proxies put the HTTP status there.
    let api0 = doc.get("cpanelresult").or_else(|| {
        ["result", "statusmsg"]
            .iter()
            .any(|k| doc.get(k).is_some())
            .then_some(doc)
    });
    let Some(envelope) = api0 else {
        let said = match body_message(doc) {
            Some(m) => format!(": {m}"),
            None => ", JSON without `metadata`".to_string(),
        };
        return permanent(format!(
            "WHM {function}: not a WHM API 1 response: HTTP {status}, content-type {ct}{said}"
        ));
    };
    let texts = [
        envelope.get("error"),
        envelope.get("statusmsg"),
        envelope.get("reason"),
        envelope.pointer("/data/reason"),
    ];
    let denied = texts
        .iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .find(|t| t.to_ascii_lowercase().contains("access denied"));
    match denied {
        Some(t) => auth_failed(format!(
            "WHM {function}: {t} (the API token or the WHM user was refused)"
        )),
        None => permanent(format!(
            "WHM {function}: WHM answered in API 0 format; Panel1 speaks API 1 only"
        )),
    }
}

/// What a non-WHM JSON error body says: problem+json's `title` and
/// `detail`, else a `message` or `error` string; printable and short.
fn body_message(doc: &Value) -> Option<String> {
    let text = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    let said = match (text("title"), text("detail")) {
        (Some(t), Some(d)) if t != d => format!("{t}: {d}"),
        (Some(t), _) => t.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => text("message").or_else(|| text("error"))?.to_string(),
    };
    Some(snippet(said.as_bytes(), SNIPPET_CHARS))
}

/// An error's message, for logs and wrapping.
pub fn message(e: &AdapterError) -> &str {
    match e {
        AdapterError::Transient(t) => &t.message,
        AdapterError::InvalidInput(m)
        | AdapterError::AuthFailed(m)
        | AdapterError::NotFound(m)
        | AdapterError::Conflict(m)
        | AdapterError::Permanent(m)
        | AdapterError::Unsupported(m) => m,
    }
}

/// The typed error for a WHM failure reason (`metadata.result == 0`).
pub fn failure(function: &str, reason: &str) -> AdapterError {
    let msg = format!("WHM {function} failed: {reason}");
    let r = reason.to_ascii_lowercase();
    if r.contains("does not exist") {
        not_found(msg)
    } else if r.contains("already exists") {
        conflict(msg)
    } else if r.contains("is required") || r.starts_with("invalid value") {
        invalid_input(msg)
    } else if r.contains("access denied") || r.contains("permission") {
        auth_failed(msg)
    } else {
        permanent(msg)
    }
}

/// The reason says the account (or object) does not exist.
pub fn is_missing(reason: &str) -> bool {
    says(reason, "does not exist")
}

/// WHM writes integers as numbers or strings.
pub fn number(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

#[cfg(test)]
#[path = "whm_tests.rs"]
mod tests;
