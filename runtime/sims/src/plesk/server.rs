//! The path a Plesk request takes: `/api/v2` prefix, route, auth
//! (`X-API-Key`), faults, check against the description, operation, log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::request::Parts;
use http::{header, Method, Response, StatusCode};
use serde_json::{json, Value};

use super::routes::{self, Env};
use super::spec;
use super::state::PleskState;
use crate::common::faults::{self, Before, Fault, Pages};
use crate::common::log::{redact, redact_json, AuthOutcome, LoggedRequest};
use crate::common::openapi::NoRoute;
use crate::common::serve::{lock, text, Body, Handler, Shutdown};
use crate::common::Recorder;

pub(crate) const API_PREFIX: &str = "/api/v2";

/// What every request shares with the `PleskSimulator` handle.
pub(crate) struct Shared {
    pub api_key: String,
    pub version: String,
    pub base_url: String,
    pub state: Mutex<PleskState>,
    pub recorder: Arc<Recorder>,
    pub shutdown: Shutdown,
}

pub(crate) fn handler(shared: Arc<Shared>) -> Handler {
    Arc::new(move |parts, body| Box::pin(process(shared.clone(), parts, body)))
}

struct PleskPages;

const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Plesk Obsidian</title></head>\n<body><form id=\"form-login\" method=\"post\" action=\"/login_up.php\">\n<input name=\"login_name\" type=\"text\"><input name=\"passwd\" type=\"password\">\n<button type=\"submit\">Log in</button></form></body></html>\n";

impl Pages for PleskPages {
    fn error_page(&self, status: StatusCode) -> Response<Body> {
        let reason = status.canonical_reason().unwrap_or("Error");
        let code = status.as_u16();
        let page = format!(
            "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        );
        text(status, "text/html", page)
    }
    fn login_page(&self, status: StatusCode) -> Response<Body> {
        text(status, "text/html; charset=UTF-8", LOGIN_PAGE)
    }
}

fn json_reply(status: u16, body: &Value) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(status, "application/json; charset=utf-8", body.to_string())
}

fn auth(parts: &Parts, shared: &Shared) -> AuthOutcome {
    match parts.headers.get("x-api-key") {
        None if parts.headers.contains_key(header::AUTHORIZATION) => AuthOutcome::Wrong,
        None => AuthOutcome::Missing,
        Some(v) if v.as_bytes() == shared.api_key.as_bytes() => AuthOutcome::Ok,
        Some(_) => AuthOutcome::Wrong,
    }
}

/// Query, path parameters and the JSON body's top-level fields, redacted.
fn logged_params(
    query: &BTreeMap<String, String>,
    path: &BTreeMap<String, String>,
    body: &[u8],
) -> BTreeMap<String, String> {
    let mut all = redact(query);
    all.extend(redact(path));
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        let redacted = redact_json(&Value::Object(map));
        for (k, v) in redacted.as_object().into_iter().flatten() {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            all.insert(k.clone(), v);
        }
    }
    all
}

fn record(shared: &Shared, mut entry: LoggedRequest, response: Option<&Response<Body>>) {
    if let Some(r) = response {
        entry.status = r.status().as_u16();
    }
    shared.recorder.record(entry);
}

/// `None`: drop the connection.
async fn process(shared: Arc<Shared>, parts: Parts, body: Bytes) -> Option<Response<Body>> {
    let path = parts.uri.path().to_owned();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let mut entry = LoggedRequest {
        at: chrono::Utc::now(),
        method: parts.method.to_string(),
        path: path.clone(),
        function: String::new(),
        params: logged_params(&query, &BTreeMap::new(), &body),
        auth: auth(&parts, &shared),
        api_version_1: true,
        problems: Vec::new(),
        status: 0,
        result: None,
        fault: None,
    };
    let Some(api_path) = path.strip_prefix(API_PREFIX) else {
        let response = other_path(&shared, &parts, &query);
        record(&shared, entry, Some(&response));
        return Some(response);
    };
    let route = match spec::SPEC.route(parts.method.as_str(), api_path) {
        Ok(r) => r,
        Err(why) => {
            let (status, message) = match why {
                NoRoute::Path => (404, "Not Found"),
                NoRoute::Method => (405, "Method Not Allowed"),
            };
            entry.problems.push(format!(
                "{} {api_path}: {message} in the description",
                parts.method
            ));
            let response = json_reply(status, &json!({"code": status, "message": message}));
            record(&shared, entry, Some(&response));
            return Some(response);
        }
    };
    entry.function = route.key.clone();
    entry.params = logged_params(&query, &route.params, &body);
    if entry.auth != AuthOutcome::Ok {
        let response = json_reply(
            401,
            &json!({"code": 401, "message": "Authentication failed: a valid X-API-Key header is required"}),
        );
        record(&shared, entry, Some(&response));
        return Some(response);
    }

    let fault = shared.recorder.take_fault(&route.key);
    entry.fault = fault.as_ref().map(|f| format!("{f:?}"));
    match faults::before(fault.as_ref(), &PleskPages, &shared.shutdown).await {
        Before::Proceed => {}
        Before::Answer(response) => {
            record(&shared, entry, Some(&response));
            return Some(response);
        }
        Before::Drop => {
            record(&shared, entry, None);
            return None;
        }
    }

    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (checked, json_body) = spec::SPEC.check(&route, &query, content_type, &body);
    entry.problems.extend(checked.problems);
    let response = if let Some(reason) = checked.rejection {
        json_reply(400, &json!({"code": 400, "message": reason}))
    } else if fault == Some(Fault::WrongBody) {
        let wrong = if spec::SPEC.answers_list(&route.key) {
            json!({"result": "ok"})
        } else {
            json!([])
        };
        json_reply(200, &wrong)
    } else {
        let env = Env {
            base_url: &shared.base_url,
            version: &shared.version,
            hostname: "plesk-sim.invalid",
        };
        let body = json_body.unwrap_or(Value::Null);
        let (status, answer) = routes::call(
            &route.key,
            &route.params,
            &query,
            &body,
            &mut lock(&shared.state),
            &env,
        );
        json_reply(status, &answer)
    };
    record(&shared, entry, Some(&response));
    if let Some(Fault::StallAfterApply(d)) = fault {
        shared.shutdown.pause(d).await;
    }
    Some(response)
}

/// Outside `/api/v2`: a login link made by the CLI's `login` command, or 404.
fn other_path(shared: &Shared, parts: &Parts, query: &BTreeMap<String, String>) -> Response<Body> {
    if parts.method == Method::GET && parts.uri.path() == "/login" {
        let url = format!(
            "{}/login?secret={}",
            shared.base_url,
            query.get("secret").map(String::as_str).unwrap_or("")
        );
        let state = lock(&shared.state);
        if let Some(link) = state.links.iter().find(|l| l.url == url) {
            let page = format!("<!DOCTYPE html>\n<html><head><title>Plesk — {0}</title></head><body><h1>Logged in as {0}</h1></body></html>\n", link.login);
            return text(StatusCode::OK, "text/html; charset=UTF-8", page);
        }
        return PleskPages.login_page(StatusCode::UNAUTHORIZED);
    }
    text(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "Not Found\n",
    )
}
