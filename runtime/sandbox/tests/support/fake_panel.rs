//! A fake "refpanel" provider (the API the reference adapter speaks) on
//! 127.0.0.1, stateful, recording every request it receives.
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use panel1_sandbox::{EgressPolicy, EgressRule, HostContext, SecretBinding};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Default)]
pub struct PanelState {
    pub token: String,
    pub accounts: BTreeMap<String, Value>,
    pub requests: Vec<Recorded>,
    pub creates: usize,
    /// `/v1/version` answers with the Authorization header it received.
    pub echo_auth: bool,
    /// Delay before answering `/v1/version`.
    pub version_delay_ms: u64,
    /// `/v1/version` answers with a body of this many bytes (0: normal).
    pub version_body_bytes: usize,
    /// Answer every request with this status (0: normal).
    pub force_status: u16,
    /// With `force_status`, a `Retry-After` header (seconds).
    pub retry_after_secs: Option<u64>,
    /// Every account API call takes this long (to make overlaps visible).
    pub op_delay_ms: u64,
    /// Account API calls in progress now, and the most ever at once.
    pub in_flight: usize,
    pub max_in_flight: usize,
    /// Per account: calls in progress, and how often two overlapped.
    pub account_in_flight: BTreeMap<String, usize>,
    pub overlaps: usize,
    /// Delay after the account API call took effect, before answering (a
    /// panel that creates the account, then times out).
    pub response_delay_ms: u64,
    /// Per account: the API calls in arrival order (`POST create`, ...).
    pub timeline: BTreeMap<String, Vec<String>>,
}

pub struct FakePanel {
    pub port: u16,
    pub state: Arc<Mutex<PanelState>>,
}

impl FakePanel {
    pub async fn start(token: &str) -> FakePanel {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake panel");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(PanelState {
            token: token.to_string(),
            ..Default::default()
        }));
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(s.clone(), port, req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        FakePanel { port, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A host context for the reference adapter against this panel: config,
    /// the token bound to this panel only, egress to this panel only.
    pub fn context(&self) -> HostContext {
        let token = self.state.lock().unwrap().token.clone();
        let mut config = BTreeMap::new();
        config.insert("base_url".to_string(), self.base_url());
        config.insert("owner".to_string(), "reseller1".to_string());
        HostContext {
            config,
            secrets: vec![SecretBinding {
                name: "api-token".into(),
                value: token,
                destinations: vec![format!("127.0.0.1:{}", self.port)],
            }],
            egress: EgressPolicy::new(vec![EgressRule::parse(&self.base_url()).unwrap()]),
            ..HostContext::default()
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut PanelState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle(
    state: Arc<Mutex<PanelState>>,
    port: u16,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let auth = req
        .headers()
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = req.into_body().collect().await?.to_bytes();
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let (delay, size) = {
        let mut st = state.lock().unwrap();
        st.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            headers,
            body: body_text.clone(),
        });
        (st.version_delay_ms, st.version_body_bytes)
    };

    // Test helpers outside the API.
    if let Some(to) = path.strip_prefix("/redirect?to=") {
        return Ok(Response::builder()
            .status(302)
            .header("location", to)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    if path == "/loop" {
        let to = format!("http://127.0.0.1:{port}/loop");
        return Ok(Response::builder()
            .status(302)
            .header("location", to)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    // `/big/N`: N bytes of body, no auth (for buffering tests).
    if let Some(n) = path
        .strip_prefix("/big/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        return Ok(Response::builder()
            .status(200)
            .body(Full::new(Bytes::from(vec![b'x'; n])))
            .unwrap());
    }
    if path == "/hello" {
        return Ok(reply(200, json!({"hello": "world"})));
    }

    let (forced, token, echo) = {
        let st = state.lock().unwrap();
        (st.force_status, st.token.clone(), st.echo_auth)
    };
    if forced != 0 {
        let mut r = reply(forced, json!({"error": "forced"}));
        if let Some(secs) = state.lock().unwrap().retry_after_secs {
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return Ok(r);
    }
    let expected = format!("Bearer {token}");
    if auth.as_deref() != Some(expected.as_str()) {
        return Ok(reply(401, json!({"error": "bad token"})));
    }
    if method == "GET" && path == "/v1/version" {
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if size > 0 {
            return Ok(reply(200, json!({"version": "x".repeat(size)})));
        }
        let version = if echo {
            auth.unwrap_or_default()
        } else {
            "refpanel 1.4.2".into()
        };
        return Ok(reply(200, json!({"version": version})));
    }
    // Track concurrency per account and overall around a (delayed) call.
    let account = account_of(&path, &body);
    let op_delay = {
        let mut st = state.lock().unwrap();
        st.in_flight += 1;
        st.max_in_flight = st.max_in_flight.max(st.in_flight);
        if let Some(a) = &account {
            let n = st.account_in_flight.entry(a.clone()).or_default();
            *n += 1;
            if *n > 1 {
                st.overlaps += 1;
            }
            let op = format!(
                "{method} {}",
                path.split('?')
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("/v1/accounts")
            );
            st.timeline.entry(a.clone()).or_default().push(op);
        }
        st.op_delay_ms
    };
    if op_delay > 0 {
        tokio::time::sleep(Duration::from_millis(op_delay)).await;
    }
    let (response, delay) = {
        let mut st = state.lock().unwrap();
        let response = api(&mut st, &method, &path, &body);
        st.in_flight -= 1;
        if let Some(a) = &account {
            if let Some(n) = st.account_in_flight.get_mut(a) {
                *n -= 1;
            }
        }
        (response, st.response_delay_ms)
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    Ok(response)
}

/// The account a call is about: the path segment, or the body's username.
fn account_of(path: &str, body: &[u8]) -> Option<String> {
    let segs: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .collect();
    match segs.as_slice() {
        ["v1", "accounts", user, ..] => Some(user.to_string()),
        ["v1", "accounts"] => serde_json::from_slice::<Value>(body).ok()?["username"]
            .as_str()
            .map(String::from),
        _ => None,
    }
}

fn api(st: &mut PanelState, method: &str, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
    if st.force_status != 0 {
        return reply(st.force_status, json!({"error": "forced"}));
    }
    let segs: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .collect();
    let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (method, segs.as_slice()) {
        ("POST", ["v1", "accounts"]) => {
            let username = input["username"].as_str().unwrap_or("").to_string();
            if username.is_empty() {
                return reply(422, json!({"error": "username required"}));
            }
            if st.accounts.contains_key(&username) {
                return reply(409, json!({"error": "exists"}));
            }
            st.creates += 1;
            let account = json!({
                "username": username, "domain": input["domain"], "plan": input["plan"],
                "owner": input["owner"], "state": "active", "password": input["password"],
            });
            st.accounts.insert(username, account.clone());
            reply(201, account)
        }
        ("GET", ["v1", "accounts"]) => {
            let items: Vec<Value> = st.accounts.values().cloned().collect();
            reply(200, json!({"items": items, "next_cursor": null}))
        }
        (m, ["v1", "accounts", user, rest @ ..]) => {
            let user = user.to_string();
            let Some(account) = st.accounts.get_mut(&user) else {
                return reply(404, json!({"error": "no such account"}));
            };
            match (m, rest) {
                ("GET", []) => reply(200, account.clone()),
                ("DELETE", []) => {
                    st.accounts.remove(&user);
                    Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                        .unwrap()
                }
                ("POST", ["suspend"]) => {
                    account["state"] = json!("suspended");
                    account["suspend_reason"] = input["reason"].clone();
                    reply(200, account.clone())
                }
                ("POST", ["unsuspend"]) => {
                    account["state"] = json!("active");
                    reply(200, account.clone())
                }
                ("PUT", ["plan"]) => {
                    account["plan"] = input["plan"].clone();
                    reply(200, account.clone())
                }
                ("PUT", ["password"]) => {
                    account["password"] = input["password"].clone();
                    reply(200, account.clone())
                }
                ("GET", ["usage"]) => reply(
                    200,
                    json!({"disk_bytes": 1048576.0, "bandwidth_bytes": 2097152.0}),
                ),
                ("POST", ["session"]) => reply(
                    200,
                    json!({"url": format!("https://panel.example/sso/{user}"), "expires_at": 1_900_000_000u64}),
                ),
                _ => reply(404, json!({"error": "no route"})),
            }
        }
        _ => reply(404, json!({"error": "no route"})),
    }
}
