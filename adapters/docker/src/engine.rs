//! The Docker Engine API client, and the one place that reads the Engine's
//! answers. Authentication is mutual TLS: the host presents the client
//! identity bound to the Engine's address; the adapter never sees it.
//!
//! Every answer becomes JSON, one of the Engine's refusals for the caller to
//! judge ([`Answer::Missing`] 404, [`Answer::Conflict`] 409,
//! [`Answer::NotModified`] 304), or a typed error: transport trouble, 5xx,
//! 408 and 429 are `transient`; a refused client certificate, 401 or 403 are
//! `auth-failed`; 400 is `invalid-input`; anything else is `permanent`.
use std::cell::Cell;

use crate::settings::Settings;
use panel1_sdk::deadline::Deadline;
use panel1_sdk::http::{
    looks_like_html, path_template, snippet, transport_error, HttpError, Request, TransportHints,
};
use panel1_sdk::*;
use serde_json::Value;

/// The secret an operator binds to the Engine's address: the client
/// certificate and key (PEM) the host presents.
pub const IDENTITY_SECRET: &str = "docker-client-identity";
/// The oldest Engine API this adapter speaks (Docker 20.10 serves 1.41).
pub const MIN_VERSION: (u32, u32) = (1, 41);
/// The version it asks for first; an older Engine says which it has.
pub const VERSION: (u32, u32) = (1, 45);

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 2xx: the JSON body (`null` when empty).
    Ok(Value),
    /// 304: nothing to do (already started or stopped).
    NotModified,
    /// 404: the Engine's message.
    Missing(String),
    /// 409: the Engine's message (a name in use, a running container).
    Conflict(String),
}

pub struct Engine {
    settings: Settings,
    deadline: Deadline,
    version: Cell<(u32, u32)>,
}

impl Engine {
    pub fn connect(ctx: &CallContext) -> Result<Engine, AdapterError> {
        Ok(Engine {
            settings: Settings::load()?,
            deadline: Deadline::new(ctx),
            version: Cell::new(VERSION),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The API version in use (after negotiation).
    pub fn version(&self) -> String {
        let (a, b) = self.version.get();
        format!("{a}.{b}")
    }

    /// Call and require a 2xx or 304.
    pub fn ok(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, AdapterError> {
        match self.call(method, path, body)? {
            Answer::Ok(v) => Ok(v),
            Answer::NotModified => Ok(Value::Null),
            Answer::Missing(m) => Err(not_found(format!(
                "Docker {method} {}: {m}",
                template(path)
            ))),
            Answer::Conflict(m) => {
                Err(conflict(format!("Docker {method} {}: {m}", template(path))))
            }
        }
    }

    /// Call; the Engine's 304, 404 and 409 come back for the caller to
    /// judge (ensure semantics), everything else typed.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, AdapterError> {
        let what = format!("{method} {}", template(path));
        let left = self.deadline.remaining_ms();
        let timeout = self
            .deadline
            .request_timeout(self.settings.timeout_ms)
            .ok_or_else(|| {
                transient(
                    format!("Docker {what}: no time left in the call ({left} ms)"),
                    None,
                )
            })?;
        let base = format!(
            "https://{}:{}/v{}",
            self.settings.host,
            self.settings.port,
            self.version()
        );
        let mut request = Request::new(method, format!("{base}{path}"))
            .header("accept", "application/json")
            .timeout_ms(timeout);
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = match request.send() {
            Ok(r) => r,
            Err(e) => {
                let err = self.transport_error(&what, e);
                log::warn(
                    "docker call",
                    &[("call", &what), ("outcome", kind_name(&err))],
                );
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
        // An older Engine names the newest version it speaks: use it once.
        if let Err(AdapterError::InvalidInput(m)) = &answer {
            if let Some(v) =
                older_version(m).filter(|v| *v >= MIN_VERSION && *v < self.version.get())
            {
                log::info(
                    "engine API version negotiated",
                    &[("version", &format!("{}.{}", v.0, v.1))],
                );
                self.version.set(v);
                return self.call(method, path, body);
            }
        }
        let outcome = match &answer {
            Ok(Answer::Ok(_)) => "ok",
            Ok(Answer::NotModified) => "304",
            Ok(Answer::Missing(_)) => "404",
            Ok(Answer::Conflict(_)) => "409",
            Err(e) => kind_name(e),
        };
        log::info(
            "docker call",
            &[
                ("call", &what),
                ("http_status", &response.status.to_string()),
                ("outcome", outcome),
            ],
        );
        answer
    }

    fn transport_error(&self, what: &str, e: HttpError) -> AdapterError {
        let at = format!("{}:{}", self.settings.host, self.settings.port);
        let hints = TransportHints {
            egress: &format!("the server's egress rules must allow https://{at}/"),
            tls: &format!(
                "pin the Engine's certificate on the egress rule (`https://{at}/ sha256:<hex>`) if its CA is not public"
            ),
            identity: &format!(
                "bind the `{IDENTITY_SECRET}` secret (the client certificate and key the Engine trusts, PEM) to {at}"
            ),
        };
        transport_error(&format!("Docker {what} (talking to {at})"), e, &hints)
    }
}

/// `/containers/abc/start?x=1` → `/containers/{id}/start`, for logs.
fn template(path: &str) -> String {
    path_template(
        path,
        &["containers", "volumes", "networks"],
        &["create", "json"],
    )
}

/// "client version 1.45 is too new. Maximum supported API version is 1.43"
fn older_version(message: &str) -> Option<(u32, u32)> {
    let tail = message.split("Maximum supported API version is ").nth(1)?;
    let v: String = tail
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (a, b) = v.trim_end_matches('.').split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Classify one answer from the Engine.
pub fn classify(
    what: &str,
    status: u16,
    content_type: Option<&str>,
    retry_after_ms: Option<u64>,
    body: &[u8],
) -> Result<Answer, AdapterError> {
    let at = format!("Docker {what}: HTTP {status}");
    let doc = serde_json::from_slice::<Value>(body).ok();
    let message = doc
        .as_ref()
        .and_then(|d| d.get("message").and_then(Value::as_str))
        .map(|m| m.chars().take(300).collect::<String>());
    let said = |base: String| match &message {
        Some(m) => format!("{base}: {m}"),
        None => base,
    };
    if status == 429 || status == 408 || (500..=599).contains(&status) {
        return Err(transient(
            said(format!("{at}, retry later")),
            retry_after_ms,
        ));
    }
    if status == 401 || status == 403 {
        return Err(auth_failed(said(format!("{at}: refused"))));
    }
    if looks_like_html(content_type, body) {
        return Err(if status < 400 {
            auth_failed(format!(
                "{at}: an HTML login page, not the Engine API (a proxy asking for credentials?)"
            ))
        } else {
            permanent(format!("{at}: an HTML page, not the Engine API"))
        });
    }
    match (status, message) {
        (304, _) => Ok(Answer::NotModified),
        (200..=299, _) if body.iter().all(u8::is_ascii_whitespace) => Ok(Answer::Ok(Value::Null)),
        (200..=299, _) => match doc {
            Some(d) => Ok(Answer::Ok(d)),
            None => Err(permanent(format!(
                "{at}: not JSON: {:?}",
                snippet(body, 100)
            ))),
        },
        (404, Some(m)) => Ok(Answer::Missing(m)),
        (409, Some(m)) => Ok(Answer::Conflict(m)),
        (400, Some(m)) => Err(invalid_input(format!("{at}: {m}"))),
        (_, m) => Err(permanent(match m {
            Some(m) => format!("{at}: {m}"),
            None => format!("{at}: not the Engine's answer ({:?})", snippet(body, 100)),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ct = Some("application/json");
        assert_eq!(
            classify("x", 204, None, None, b"").unwrap(),
            Answer::Ok(Value::Null)
        );
        assert_eq!(
            classify("x", 304, None, None, b"").unwrap(),
            Answer::NotModified
        );
        assert_eq!(
            classify("x", 404, ct, None, br#"{"message":"No such container: a"}"#).unwrap(),
            Answer::Missing("No such container: a".into())
        );
        assert_eq!(
            classify("x", 409, ct, None, br#"{"message":"name in use"}"#).unwrap(),
            Answer::Conflict("name in use".into())
        );
        assert_eq!(
            kind_name(&classify("x", 400, ct, None, br#"{"message":"bad"}"#).unwrap_err()),
            "invalid-input"
        );
        assert_eq!(
            kind_name(&classify("x", 503, None, None, b"").unwrap_err()),
            "transient"
        );
        assert_eq!(
            kind_name(&classify("x", 200, Some("text/html"), None, b"<html>").unwrap_err()),
            "auth-failed"
        );
        assert_eq!(
            kind_name(&classify("x", 418, ct, None, b"{}").unwrap_err()),
            "permanent"
        );
    }

    #[test]
    fn versions_and_templates() {
        assert_eq!(
            older_version("client version 1.45 is too new. Maximum supported API version is 1.43"),
            Some((1, 43))
        );
        assert_eq!(older_version("nope"), None);
        assert_eq!(template("/containers/p1-a/start"), "/containers/{id}/start");
        assert_eq!(template("/containers/create?name=x"), "/containers/create");
        assert_eq!(template("/containers/json?all=1"), "/containers/json");
        assert_eq!(template("/volumes/p1-a-data"), "/volumes/{id}");
    }
}
