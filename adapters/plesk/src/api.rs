//! The Plesk REST API v2 client, and the one place that reads Plesk's
//! answers.
//!
//! Every call is `https://{host}:{port}/api/v2/<path>` with
//! `X-API-Key: <plesk-api-key placeholder>` (the host puts the key in, only
//! for the bound destination). Each answer becomes a JSON document, one of
//! Plesk's own refusals ([`Answer::Missing`] for 404, [`Answer::Refused`]
//! for 400, for the caller to judge), or a typed error: transport trouble,
//! 5xx, 408 and 429 are `transient`; 401/403 or a login page are
//! `auth-failed`; anything that is not Plesk's JSON is `permanent`, with the
//! HTTP status and what the body says.
use crate::settings::Settings;
use panel1_sdk::deadline::Deadline;
use panel1_sdk::http::{
    looks_like_html, path_template, snippet, transport_error, HttpError, Request, TransportHints,
};
use panel1_sdk::*;
use serde_json::{json, Value};

/// The secret holding the Plesk API key (`plesk bin secret_key --create`).
pub const KEY_SECRET: &str = "plesk-api-key";

/// How much of a body an error message may quote.
const SNIPPET_CHARS: usize = 100;

/// HTTP methods the adapter uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// A well-formed Plesk answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 2xx with a JSON body.
    Ok(Value),
    /// 404 with Plesk's error body: its message.
    Missing(String),
    /// 400 with Plesk's error body (invalid data, a name taken): its message.
    Refused(String),
}

/// What a CLI gateway call reported.
#[derive(Debug, Clone, PartialEq)]
pub struct CliResult {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// A Plesk server, for one operation.
pub struct Plesk {
    settings: Settings,
    deadline: Deadline,
}

impl Plesk {
    /// From the server config; starts the operation's clock.
    pub fn connect(ctx: &CallContext) -> Result<Plesk, AdapterError> {
        Ok(Plesk {
            settings: Settings::load()?,
            deadline: Deadline::new(ctx),
        })
    }

    /// Who owns the customers Panel1 creates.
    pub fn owner(&self) -> &str {
        &self.settings.owner
    }

    /// Call and require a 2xx: Plesk's refusals become typed errors.
    pub fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, AdapterError> {
        let what = format!("{} {path}", method.name());
        match self.call(method, path, body)? {
            Answer::Ok(doc) => Ok(doc),
            Answer::Missing(m) => Err(not_found(format!("Plesk {what}: {m}"))),
            Answer::Refused(m) => Err(refusal(&what, &m)),
        }
    }

    /// Call; Plesk's 404 and 400 come back for the caller to judge
    /// (idempotent retries), everything else typed.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, AdapterError> {
        let what = format!("{} {}", method.name(), path_template(path, &["cli"], &[]));
        let left = self.deadline.remaining_ms();
        let timeout = self
            .deadline
            .request_timeout(self.settings.timeout_ms)
            .ok_or_else(|| {
                transient(
                    format!("Plesk {what}: no time left in the call ({left} ms)"),
                    None,
                )
            })?;
        let url = format!("{}{path}", self.settings.api_url());
        let key = secrets::placeholder(KEY_SECRET)?;
        let mut request = Request::new(method.name(), url)
            .header("x-api-key", key)
            .header("accept", "application/json")
            .timeout_ms(timeout);
        if let Some(body) = body {
            // JSON bodies: the host escapes a substituted password for JSON.
            request = request.json(&body);
        }
        let response = match request.send() {
            Ok(r) => r,
            Err(e) => {
                let err = self.transport_error(&what, e);
                log_call(&what, "-", kind_name(&err));
                return Err(err);
            }
        };
        let answer = classify(
            &what,
            response.status,
            response.header("content-type"),
            response.retry_after_ms(),
            &response.body,
        );
        let outcome = match &answer {
            Ok(Answer::Ok(_)) => "ok",
            Ok(Answer::Missing(_)) => "404",
            Ok(Answer::Refused(_)) => "400",
            Err(e) => kind_name(e),
        };
        log_call(&what, &response.status.to_string(), outcome);
        answer
    }

    /// Run a `plesk bin` utility through the CLI gateway. `env` carries
    /// passwords (placeholders), never `params`.
    pub fn cli(
        &self,
        command: &str,
        params: &[&str],
        env: Option<Value>,
    ) -> Result<CliResult, AdapterError> {
        let mut body = json!({ "params": params });
        if let Some(env) = env {
            body["env"] = env;
        }
        let doc = self.ok(Method::Post, &format!("/cli/{command}/call"), Some(body))?;
        let code = doc
            .get("code")
            .and_then(Value::as_i64)
            .ok_or_else(|| permanent(format!("Plesk CLI {command}: the answer has no `code`")))?;
        let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Ok(CliResult {
            code,
            stdout: text("stdout"),
            stderr: text("stderr"),
        })
    }

    fn transport_error(&self, what: &str, e: HttpError) -> AdapterError {
        let base = self.settings.api_url();
        let hints = TransportHints {
            egress: &format!(
                "the server's egress rules must allow {base}/ and the `{KEY_SECRET}` secret must be bound to that host"
            ),
            tls: &format!(
                "a self-signed Plesk needs its certificate pinned on the egress rule (`{base}/ sha256:<hex>`), and a pin must match the certificate Plesk serves"
            ),
            identity: "bind a client identity secret (certificate and key, PEM) the server accepts to its host",
        };
        transport_error(&format!("Plesk {what} (talking to {base})"), e, &hints)
    }
}

/// One structured line per call; never bodies or headers. A 404 or 400 is
/// often expected (lookups, idempotent retries), so only errors warn.
fn log_call(what: &str, status: &str, outcome: &str) {
    let fields = [
        ("call", what),
        ("http_status", status),
        ("outcome", outcome),
    ];
    match outcome {
        "ok" | "404" | "400" => log::info("plesk call", &fields),
        _ => log::warn("plesk call", &fields),
    }
}

/// The typed error for a 400 from Plesk.
pub fn refusal(what: &str, message: &str) -> AdapterError {
    let msg = format!("Plesk {what} refused: {message}");
    if says(message, "already exists") {
        conflict(msg)
    } else {
        invalid_input(msg)
    }
}

/// Classify one HTTP answer from Plesk.
pub fn classify(
    what: &str,
    status: u16,
    content_type: Option<&str>,
    retry_after_ms: Option<u64>,
    body: &[u8],
) -> Result<Answer, AdapterError> {
    let at = format!("Plesk {what}: HTTP {status}");
    let doc = serde_json::from_slice::<Value>(body).ok();
    let said = doc.as_ref().and_then(message_of);
    let with_message = |base: String| match &said {
        Some(m) => format!("{base}: {m}"),
        None => base,
    };
    if status == 429 || status == 408 || (500..=599).contains(&status) {
        return Err(transient(
            with_message(format!("{at}, retry later")),
            retry_after_ms,
        ));
    }
    if status == 401 || status == 403 {
        return Err(auth_failed(with_message(format!(
            "{at}: the API key was refused (check the {KEY_SECRET} secret)"
        ))));
    }
    let ct = content_type.unwrap_or("none");
    if looks_like_html(content_type, body) {
        // Plesk's login page (often with 200) means the key was not taken.
        return Err(if status < 400 {
            auth_failed(format!("{at}: Plesk answered with its login page, not the REST API (check the {KEY_SECRET} secret and that the REST API is enabled)"))
        } else {
            permanent(format!(
                "{at}: not a Plesk REST answer (content-type {ct}, an HTML page)"
            ))
        });
    }
    let Some(doc) = doc else {
        return Err(permanent(format!(
            "{at}: not a Plesk REST answer (content-type {ct}, body starts with {:?})",
            snippet(body, SNIPPET_CHARS)
        )));
    };
    let plesk_error = doc.get("code").is_some() && doc.get("message").is_some_and(Value::is_string);
    match status {
        200..=299 => Ok(Answer::Ok(doc)),
        404 if plesk_error => Ok(Answer::Missing(said.unwrap_or_default())),
        400 if plesk_error => Ok(Answer::Refused(said.unwrap_or_default())),
        // Anything else (a gateway's problem+json, a 405): report what it says.
        _ => Err(permanent(with_message(format!(
            "{at}: not Plesk's answer (content-type {ct})"
        )))),
    }
}

/// What an error body says: Plesk's `message`, problem+json's `detail` or
/// `title`.
fn message_of(doc: &Value) -> Option<String> {
    ["message", "detail", "title", "error"]
        .iter()
        .find_map(|k| doc.get(k).and_then(Value::as_str))
        .map(|m| m.chars().take(300).collect())
}

/// A list answer as a list, or `permanent` naming what came instead.
pub fn list<'a>(what: &str, doc: &'a Value) -> Result<&'a Vec<Value>, AdapterError> {
    doc.as_array().ok_or_else(|| {
        permanent(format!(
            "Plesk {what}: expected a JSON list, got {}",
            shape(doc)
        ))
    })
}

/// An object answer's field, or `permanent` naming what is missing.
pub fn field<'a>(what: &str, doc: &'a Value, key: &str) -> Result<&'a Value, AdapterError> {
    doc.get(key).filter(|v| !v.is_null()).ok_or_else(|| {
        permanent(format!(
            "Plesk {what}: the answer has no `{key}` ({})",
            shape(doc)
        ))
    })
}

fn shape(doc: &Value) -> &'static str {
    match doc {
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
