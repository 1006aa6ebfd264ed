//! HTTPS serving: the accept loop, one task per connection, and the path a
//! request takes (route, auth, faults, spec check, function, log).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::faults::{Fault, FaultSet};
use crate::functions::{self, Env};
use crate::log::{redact, AuthOutcome, LoggedRequest};
use crate::responses::{self, Body, Reply};
use crate::spec;
use crate::state::{now, SimState};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 1 << 20;

/// What every connection task shares with the `WhmSimulator` handle.
pub(crate) struct Shared {
    pub whm_user: String,
    pub token: String,
    pub version: String,
    pub base_url: String,
    pub state: Mutex<SimState>,
    pub faults: Mutex<FaultSet>,
    pub log: Mutex<Vec<LoggedRequest>>,
    pub shutdown: watch::Receiver<bool>,
}

/// A poisoned lock only means a test panicked elsewhere; the data is fine.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accept until told to stop, then give open connections `grace` to finish.
pub(crate) async fn run(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    grace: Duration,
) {
    let mut stop = shared.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    conns.spawn(connection(tcp, acceptor.clone(), shared.clone()));
                }
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        conns.shutdown().await;
    }
}

async fn connection(tcp: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
        return;
    };
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| handle(svc_shared.clone(), req));
    let conn = http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    let mut stop = shared.shutdown.clone();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Returned to hyper to make it drop the connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let reply = responses::plain(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large\n");
            return Ok(reply.response);
        }
    };
    // Its own task: a client that gives up mid-fault neither cancels a
    // change half-way nor loses the log entry.
    match tokio::spawn(process(shared, parts, body)).await {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(DropConnection),
        Err(_) => Ok(responses::error_page(StatusCode::INTERNAL_SERVER_ERROR).response),
    }
}

fn auth(headers: &HeaderMap, shared: &Shared) -> AuthOutcome {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return AuthOutcome::Missing;
    };
    let expected = format!("{}:{}", shared.whm_user, shared.token);
    let given = value.to_str().ok().and_then(|v| {
        let (scheme, rest) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("whm").then(|| rest.trim())
    });
    if given == Some(expected.as_str()) {
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

/// Resolves once shutdown begins (or the simulator handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Sleep, but not past shutdown.
async fn pause(shared: &Shared, how_long: Duration) {
    let mut stop = shared.shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(how_long) => {}
        _ = stopped(&mut stop) => {}
    }
}

fn record(shared: &Shared, mut entry: LoggedRequest, reply: Option<&Reply>) {
    if let Some(reply) = reply {
        entry.status = reply.response.status().as_u16();
        entry.result = reply.result;
    }
    lock(&shared.log).push(entry);
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

    let fault = lock(&shared.faults).take(&function);
    entry.fault = fault.as_ref().map(|f| format!("{f:?}"));
    let early = match &fault {
        Some(Fault::Slow(d)) => {
            pause(&shared, *d).await;
            None
        }
        Some(Fault::ServerError(code)) => Some(responses::error_page(
            StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )),
        Some(Fault::LoginPage) => Some(responses::login_page(StatusCode::OK)),
        Some(Fault::ResetConnection) => {
            record(&shared, entry, None);
            return None;
        }
        _ => None,
    };
    if let Some(reply) = early {
        record(&shared, entry, Some(&reply));
        return Some(reply.response);
    }

    let reply = api(
        &shared,
        &function,
        &params,
        fault == Some(Fault::Api0),
        &mut entry,
    );
    record(&shared, entry, Some(&reply));
    if let Some(Fault::StallAfterApply(d)) = fault {
        pause(&shared, d).await;
    }
    Some(reply.response)
}

/// The JSON API proper: spec check, API version, then the function.
fn api(
    shared: &Shared,
    function: &str,
    params: &BTreeMap<String, String>,
    api0_fault: bool,
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
    if api0_fault {
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
    let outcome = functions::call(function, &mut lock(&shared.state), params, &env);
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
