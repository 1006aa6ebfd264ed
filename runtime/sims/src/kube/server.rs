//! The path a Kubernetes API request takes: authentication (a bearer token,
//! or the client certificate the TLS layer already checked), route, faults,
//! the verb, the request log. Errors are `Status` objects throughout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use super::call::Call;
use super::errors::KubeError;
use super::routes::{self, Target};
use super::store::Store;
use super::write::{Answer, Reply};
use super::{discovery, objects, scale};
use crate::common::faults::{self, Before, Fault, Pages};
use crate::common::log::{redact, redact_json, AuthOutcome, LoggedRequest, REDACTED};
use crate::common::serve::{lock, text, Body, Handler, Shutdown};
use crate::common::Recorder;

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    /// The bearer token accepted (`None`: expired, none is).
    pub token: Mutex<Option<String>>,
    /// Clients authenticate with a certificate (checked in the handshake).
    pub client_certificate: bool,
    pub recorder: Arc<Recorder>,
    pub shutdown: Shutdown,
}

pub(crate) fn handler(shared: Arc<Shared>) -> Handler {
    Arc::new(move |parts, body| Box::pin(process(shared.clone(), parts, body)))
}

/// What a proxy or load balancer in front of the API server shows.
struct ProxyPages;

impl Pages for ProxyPages {
    fn error_page(&self, status: StatusCode) -> Response<Body> {
        let reason = status.canonical_reason().unwrap_or("Error");
        let code = status.as_u16();
        text(status, "text/html", format!("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"))
    }
    fn login_page(&self, status: StatusCode) -> Response<Body> {
        text(status, "text/html; charset=utf-8", "<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=\"/oauth2/sign_in\" method=\"post\"><input name=\"username\"><input name=\"password\" type=\"password\"></form></body></html>\n")
    }
}

fn reply(status: u16, body: &Value, warnings: &[String]) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = text(code, "application/json", body.to_string());
    for w in warnings {
        let quoted = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&quoted) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}

fn error_reply(e: &KubeError) -> Response<Body> {
    reply(e.code, &e.to_json(), &[])
}

fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authenticate(parts: &Parts, shared: &Shared) -> AuthOutcome {
    if shared.client_certificate {
        // The handshake admitted it: a certificate from our client CA.
        return AuthOutcome::Ok;
    }
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return AuthOutcome::Missing;
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match (presented, lock(&shared.token).as_deref()) {
        (Some(p), Some(t)) if same_secret(p.as_bytes(), t.as_bytes()) => AuthOutcome::Ok,
        _ => AuthOutcome::Wrong,
    }
}

/// Query and body, redacted; the Authorization header shows only that it came.
fn logged_params(
    parts: &Parts,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> BTreeMap<String, String> {
    let mut params = redact(query);
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        params.insert("body".into(), redact_json(&v).to_string());
    }
    if parts.headers.contains_key(header::AUTHORIZATION) {
        params.insert("header:authorization".into(), REDACTED.into());
    }
    params
}

/// Statuses that mean the request itself was wrong (not the cluster's state).
fn malformed(status: u16) -> bool {
    matches!(status, 400 | 405 | 415 | 422)
}

fn dispatch(target: &Target, method: &str, call: &Call, store: &mut Store) -> Answer {
    match target {
        Target::Version => Ok(Reply::new(200, discovery::version())),
        Target::Discovery(segments) => Ok(Reply::new(200, discovery::document(segments))),
        Target::Collection { kind, namespace } => match method {
            "POST" => objects::create(store, kind, namespace.as_deref(), call),
            _ => objects::list(store, kind, namespace.as_deref(), call),
        },
        Target::Item {
            kind,
            namespace,
            name,
        } => {
            let ns = namespace.as_deref();
            match method {
                "PUT" => objects::replace(store, kind, ns, name, call),
                "PATCH" => objects::patch(store, kind, ns, name, call),
                "DELETE" => objects::delete(store, kind, ns, name, call),
                _ => objects::get(store, kind, ns, name),
            }
        }
        Target::Scale { namespace, name } => match method {
            "PUT" => scale::update(store, namespace, name, call, false),
            "PATCH" => scale::update(store, namespace, name, call, true),
            _ => scale::get(store, namespace, name),
        },
    }
}

/// The wrong-body fault: an object where a list is due is not possible to
/// mistake, so lists get a `Status` without a code and the rest `[]`.
fn wrong_body(target: &Target, method: &str) -> Value {
    match (target, method) {
        (Target::Collection { .. }, "GET") => {
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"})
        }
        _ => json!([]),
    }
}

async fn process(shared: Arc<Shared>, parts: Parts, body: Bytes) -> Option<Response<Body>> {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let method = parts.method.as_str().to_owned();
    let mut entry = LoggedRequest {
        at: chrono::Utc::now(),
        method: method.clone(),
        path: parts.uri.path().to_owned(),
        function: String::new(),
        params: logged_params(&parts, &query, &body),
        auth: authenticate(&parts, &shared),
        api_version_1: true,
        problems: Vec::new(),
        status: 0,
        result: None,
        fault: None,
    };
    let finish = |mut entry: LoggedRequest, response: Option<Response<Body>>| {
        entry.status = response.as_ref().map_or(0, |r| r.status().as_u16());
        shared.recorder.record(entry);
        response
    };
    let routed = routes::route(&method, parts.uri.path());
    entry.function = match &routed {
        Ok(r) => r.key.clone(),
        Err(no) => no.key.clone().unwrap_or_default(),
    };
    // kube-apiserver authenticates before anything else.
    if entry.auth != AuthOutcome::Ok {
        return finish(entry, Some(error_reply(&KubeError::unauthorized())));
    }
    let route = match routed {
        Ok(r) => r,
        Err(no) => {
            entry.problems.push(format!(
                "{method} {}: {}",
                parts.uri.path(),
                no.error.message
            ));
            return finish(entry, Some(error_reply(&no.error)));
        }
    };

    let fault = shared.recorder.take_fault(&route.key);
    entry.fault = fault.as_ref().map(|f| format!("{f:?}"));
    match faults::before(fault.as_ref(), &ProxyPages, &shared.shutdown).await {
        Before::Proceed => {}
        Before::Answer(response) => return finish(entry, Some(response)),
        Before::Drop => return finish(entry, None),
    }

    let response = if fault == Some(Fault::WrongBody) {
        reply(200, &wrong_body(&route.target, &method), &[])
    } else {
        let call = Call {
            query: &query,
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            body: &body,
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        };
        let answer = {
            let mut store = lock(&shared.store);
            store.reap(Instant::now());
            dispatch(&route.target, &method, &call, &mut store)
        };
        match answer {
            Ok(r) => reply(r.status, &r.body, &r.warnings),
            Err(e) => {
                if malformed(e.code) {
                    entry.problems.push(e.message.clone());
                }
                error_reply(&e)
            }
        }
    };
    let response = finish(entry, Some(response));
    if let Some(Fault::StallAfterApply(d)) = fault {
        shared.shutdown.pause(d).await;
    }
    response
}
