//! The path a Docker Engine request takes: the optional `/v1.NN` prefix,
//! route, faults, check against the description, operation, log. Mutual TLS
//! is the authentication: a client without a certificate from the
//! simulator's CA never gets past the handshake.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::request::Parts;
use http::{header, Response, StatusCode};
use serde_json::{json, Value};

use super::routes::{self, error};
use super::spec;
use super::state::EngineState;
use crate::common::faults::{self, Before, Fault, Pages};
use crate::common::log::{redact, redact_json, AuthOutcome, LoggedRequest};
use crate::common::openapi::NoRoute;
use crate::common::serve::{lock, text, Body, Handler, Shutdown};
use crate::common::Recorder;

pub(crate) struct Shared {
    pub state: Mutex<EngineState>,
    /// The newest API version served (an older Engine serves less).
    pub max_version: spec::ApiVersion,
    pub recorder: Arc<Recorder>,
    pub shutdown: Shutdown,
}

pub(crate) fn handler(shared: Arc<Shared>) -> Handler {
    Arc::new(move |parts, body| Box::pin(process(shared.clone(), parts, body)))
}

struct EnginePages;

impl Pages for EnginePages {
    fn error_page(&self, status: StatusCode) -> Response<Body> {
        // A proxy's page in front of the engine.
        let reason = status.canonical_reason().unwrap_or("Error");
        let code = status.as_u16();
        text(status, "text/html", format!("<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1></body></html>\n"))
    }
    fn login_page(&self, status: StatusCode) -> Response<Body> {
        text(status, "text/html; charset=utf-8", "<!DOCTYPE html><html><body><form action=\"/login\" method=\"post\"><input name=\"password\" type=\"password\"></form></body></html>\n")
    }
}

fn version_header(v: spec::ApiVersion) -> header::HeaderValue {
    header::HeaderValue::from_str(&format!("{}.{}", v.0, v.1))
        .unwrap_or(header::HeaderValue::from_static("1.45"))
}

fn reply(status: u16, body: Option<&Value>, max: spec::ApiVersion) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match body {
        Some(b) => text(code, "application/json", b.to_string()),
        None => text(code, "text/plain; charset=utf-8", ""),
    };
    response
        .headers_mut()
        .insert("api-version", version_header(max));
    response
}

async fn process(shared: Arc<Shared>, parts: Parts, body: Bytes) -> Option<Response<Body>> {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let mut params = redact(&query);
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        params.insert("body".into(), redact_json(&v).to_string());
    }
    let mut entry = LoggedRequest {
        at: chrono::Utc::now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        function: String::new(),
        params,
        // The TLS layer admitted it: a client certificate from our CA.
        auth: AuthOutcome::Ok,
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
    let path = parts.uri.path().to_owned();
    let api_path = match spec::versioned(&path, shared.max_version) {
        Ok((_, rest)) => rest.to_owned(),
        Err(why) => {
            entry.problems.push(why.clone());
            let (s, b) = error(400, why);
            return finish(entry, Some(reply(s, b.as_ref(), shared.max_version)));
        }
    };
    let route = match spec::SPEC.route(parts.method.as_str(), &api_path) {
        Ok(r) => r,
        Err(why) => {
            let (status, message) = match why {
                NoRoute::Path => (404, "page not found"),
                NoRoute::Method => (405, "method not allowed"),
            };
            entry.problems.push(format!(
                "{} {api_path}: not in the description",
                parts.method
            ));
            return finish(
                entry,
                Some(reply(
                    status,
                    Some(&json!({"message": message})),
                    shared.max_version,
                )),
            );
        }
    };
    entry.function = route.key.clone();

    let fault = shared.recorder.take_fault(&route.key);
    entry.fault = fault.as_ref().map(|f| format!("{f:?}"));
    match faults::before(fault.as_ref(), &EnginePages, &shared.shutdown).await {
        Before::Proceed => {}
        Before::Answer(response) => return finish(entry, Some(response)),
        Before::Drop => return finish(entry, None),
    }

    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (checked, json_body) = spec::SPEC.check(&route, &query, content_type, &body);
    entry.problems.extend(checked.problems);
    let response = if let Some(reason) = checked.rejection {
        reply(400, Some(&json!({ "message": reason })), shared.max_version)
    } else if fault == Some(Fault::WrongBody) {
        let wrong = if spec::SPEC.answers_list(&route.key) {
            json!({"message": "ok"})
        } else {
            json!([])
        };
        reply(200, Some(&wrong), shared.max_version)
    } else if route.key == "GET /_ping" {
        let mut r = text(StatusCode::OK, "text/plain; charset=utf-8", "OK");
        r.headers_mut()
            .insert("api-version", version_header(shared.max_version));
        r
    } else {
        let body = json_body.unwrap_or(Value::Null);
        let (status, answer) = routes::call(
            &route.key,
            &route.params,
            &query,
            &body,
            &mut lock(&shared.state),
            shared.max_version,
        );
        reply(status, answer.as_ref(), shared.max_version)
    };
    let response = finish(entry, Some(response));
    if let Some(Fault::StallAfterApply(d)) = fault {
        shared.shutdown.pause(d).await;
    }
    response
}
