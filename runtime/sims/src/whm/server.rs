//! The path a WHM request takes: route, auth, faults, spec check, function,
//! log. Serving itself is `common::serve`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, Method, Response, StatusCode};

use super::functions::{self, Env};
use super::responses::{self, Reply};
use super::spec;
use super::state::{now, SimState};
use super::transfers;
use crate::common::faults::{self, Before, Fault, Pages};
use crate::common::log::{redact, AuthOutcome, LoggedRequest};
use crate::common::serve::{lock, Body, Handler, Shutdown};
use crate::common::Recorder;

/// What every request shares with the `WhmSimulator` handle.
pub(crate) struct Shared {
    pub whm_user: String,
    pub token: String,
    pub root_password: String,
    pub version: String,
    pub base_url: String,
    pub state: Mutex<SimState>,
    pub recorder: Arc<Recorder>,
    pub shutdown: Shutdown,
}

pub(crate) fn handler(shared: Arc<Shared>) -> Handler {
    Arc::new(move |parts, body| Box::pin(process(shared.clone(), parts, body)))
}

struct WhmPages;

impl Pages for WhmPages {
    fn error_page(&self, status: StatusCode) -> Response<Body> {
        responses::error_page(status).response
    }
    fn login_page(&self, status: StatusCode) -> Response<Body> {
        responses::login_page(status).response
    }
}

fn auth(headers: &HeaderMap, shared: &Shared) -> AuthOutcome {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return AuthOutcome::Missing;
    };
    let expected = format!("{}:{}", shared.whm_user, shared.token);
    let root = format!("root:{}", shared.root_password);
    let ok = value.to_str().ok().is_some_and(|v| {
        let Some((scheme, rest)) = v.trim().split_once(' ') else {
            return false;
        };
        if scheme.eq_ignore_ascii_case("whm") {
            return rest.trim() == expected;
        }
        // WHM also takes root's password over Basic auth.
        use base64::Engine;
        scheme.eq_ignore_ascii_case("basic")
            && base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .is_ok_and(|d| d == root.as_bytes())
    });
    if ok {
        AuthOutcome::Ok
    } else {
        AuthOutcome::Wrong
    }
}

/// Query string, then a form body on top (real WHM takes both).
fn params(parts: &Parts, body: &Bytes, problems: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let query = parts.uri.query().unwrap_or("");
    params.extend(url::form_urlencoded::parse(query.as_bytes()).into_owned());
    if parts.method == Method::POST && !body.is_empty() {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type.starts_with("application/x-www-form-urlencoded") {
            params.extend(url::form_urlencoded::parse(body).into_owned());
        } else {
            problems.push(format!(
                "POST body ignored: content type “{content_type}” is not application/x-www-form-urlencoded"
            ));
        }
    }
    params
}

fn record(shared: &Shared, mut entry: LoggedRequest, reply: Option<&Reply>) {
    if let Some(reply) = reply {
        entry.status = reply.response.status().as_u16();
        entry.result = reply.result;
    }
    shared.recorder.record(entry);
}

/// `None`: drop the connection.
async fn process(shared: Arc<Shared>, parts: Parts, body: Bytes) -> Option<Response<Body>> {
    let mut problems = Vec::new();
    let params = params(&parts, &body, &mut problems);
    let path = parts.uri.path().to_owned();
    let mut entry = LoggedRequest {
        at: chrono::Utc::now(),
        method: parts.method.to_string(),
        path: path.clone(),
        function: String::new(),
        params: redact(&params),
        auth: auth(&parts.headers, &shared),
        api_version_1: params.get("api.version").map(String::as_str) == Some("1"),
        problems,
        status: 0,
        result: None,
        fault: None,
    };

    let function = match path.strip_prefix("/json-api/") {
        Some(f) if !f.is_empty() && !f.contains('/') => f.to_owned(),
        _ => {
            let reply = other_path(&shared, &parts, &params);
            record(&shared, entry, Some(&reply));
            return Some(reply.response);
        }
    };
    entry.function = function.clone();
    if !matches!(parts.method, Method::GET | Method::POST) {
        let reply = responses::plain(StatusCode::NOT_FOUND, "Not Found\n");
        record(&shared, entry, Some(&reply));
        return Some(reply.response);
    }
    if entry.auth != AuthOutcome::Ok {
        let reply = responses::login_page(StatusCode::UNAUTHORIZED);
        record(&shared, entry, Some(&reply));
        return Some(reply.response);
    }

    let fault = shared.recorder.take_fault(&function);
    entry.fault = fault.as_ref().map(|f| format!("{f:?}"));
    match faults::before(fault.as_ref(), &WhmPages, &shared.shutdown).await {
        Before::Proceed => {}
        Before::Answer(response) => {
            let reply = Reply {
                response,
                result: None,
            };
            record(&shared, entry, Some(&reply));
            return Some(reply.response);
        }
        Before::Drop => {
            record(&shared, entry, None);
            return None;
        }
    }

    let reply = api(
        &shared,
        &function,
        &params,
        fault == Some(Fault::WrongBody),
        &mut entry,
    )
    .await;
    record(&shared, entry, Some(&reply));
    if let Some(Fault::StallAfterApply(d)) = fault {
        shared.shutdown.pause(d).await;
    }
    Some(reply.response)
}

/// The JSON API proper: spec check, API version, then the function.
async fn api(
    shared: &Arc<Shared>,
    function: &str,
    params: &BTreeMap<String, String>,
    wrong_body: bool,
    entry: &mut LoggedRequest,
) -> Reply {
    if !spec::is_known(function) {
        entry
            .problems
            .push(format!("unknown function “{function}”"));
        let reason =
            format!("Unknown app (“{function}”) requested for this version (1) of the API.");
        return responses::api1_fail(function, &reason);
    }
    let checked = spec::check(function, params);
    entry.problems.extend(checked.problems);
    if !entry.api_version_1 {
        entry.problems.push(match params.get("api.version") {
            None => "missing api.version=1 (answered as API 0)".to_owned(),
            Some(v) => format!("api.version={v} is not 1 (answered as API 0)"),
        });
        return responses::api0_fail(function);
    }
    if wrong_body {
        return responses::api0_fail(function);
    }
    if let Some(reason) = checked.rejection {
        return responses::api1_fail(function, &reason);
    }
    let env = Env {
        whm_user: &shared.whm_user,
        base_url: &shared.base_url,
        version: &shared.version,
    };
    // The transfer functions that reach the source server, or start work in
    // the background, need the shared state rather than one locked borrow.
    let outcome = match function {
        "create_remote_root_transfer_session" => transfers::create_session(shared, params).await,
        "start_transfer_session" => transfers::start(shared, params),
        _ => call_locked(shared, function, params, &env),
    };
    match outcome {
        Ok(answer) => responses::api1_ok(function, answer),
        Err(reason) => {
            // Parameter trouble found by the function itself (cPanel's
            // username rules, a needed optional) is a malformed request too.
            if reason.starts_with("The parameter “") || reason.starts_with("Invalid value for “")
            {
                entry.problems.push(reason.clone());
            }
            responses::api1_fail(function, &reason)
        }
    }
}

/// A function that only reads and changes the state, under the lock (kept
/// out of `api`'s future, which must stay `Send`).
fn call_locked(
    shared: &Shared,
    function: &str,
    params: &BTreeMap<String, String>,
    env: &Env,
) -> Result<functions::Answer, String> {
    functions::call(function, &mut lock(&shared.state), params, env)
}

/// Anything but `/json-api/<function>`: a create_user_session login URL
/// (`/cpsessNNNNNNNNNN/login/?session=…`) or a 404.
fn other_path(shared: &Shared, parts: &Parts, params: &BTreeMap<String, String>) -> Reply {
    let path = parts.uri.path();
    let login = path
        .strip_suffix("/login/")
        .filter(|token| token.starts_with("/cpsess") && parts.method == Method::GET);
    let Some(token) = login else {
        return responses::plain(StatusCode::NOT_FOUND, "Not Found\n");
    };
    let state = lock(&shared.state);
    let session = state.sessions.iter().find(|s| {
        s.security_token == token && params.get("session") == Some(&s.session) && s.expires > now()
    });
    match session {
        Some(s) => responses::session_page(&s.user, &s.service),
        None => responses::login_page(StatusCode::UNAUTHORIZED),
    }
}
