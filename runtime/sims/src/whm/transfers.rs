//! WHM API 1's remote transfer sessions (api.docs.cpanel.net, "Guide to
//! Transfer and Restore API Functions"): this server (the target) pulls
//! accounts from another WHM (the source).
//!
//! - `create_remote_root_transfer_session` (`host`, `user`, `password`)
//!   checks the credential against the source and answers a
//!   `transfer_session_id`;
//! - `enqueue_transfer_item` (`module=AccountRemoteRoot`, `user`,
//!   `localuser`) queues an account;
//! - `start_transfer_session` starts it: the session goes PENDING →
//!   TRANSFER_INPROGRESS → RESTORE_INPROGRESS → COMPLETED (or FAILED), one
//!   step every [`WhmSimulator::set_transfer_step`] (default 200 ms), and
//!   each account appears here as the source had it (domain, plan and its
//!   limits, owner, contact email, suspension);
//! - `get_transfer_session_state` answers `data.state_name`;
//! - `abort_transfer_session` stops a session that has not finished.
//!
//! Real WHM logs in to the source over SSH with root's password; the
//! simulator has no SSH, so it reaches the source's WHM API over HTTPS at
//! the address a test registered for `host` ([`WhmSimulator::add_remote`])
//! with `user` and `password` as HTTP Basic auth (a simulator takes
//! `root` and its [`WhmSimulator::root_password`]). Those calls show in the
//! source's request log. The password is kept only in memory, never logged
//! or answered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::functions::Answer;
use super::server::Shared;
use super::state::{random_token, Account, Package};
use super::WhmSimulator;
use crate::common::serve::lock;

type Params = BTreeMap<String, String>;
type Outcome = Result<Answer, String>;

/// A remote transfer session as tests see it (no credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferSession {
    pub transfer_session_id: String,
    pub remote_host: String,
    /// PENDING, TRANSFER_INPROGRESS, RESTORE_INPROGRESS, COMPLETED,
    /// ABORTED or FAILED.
    pub state: String,
    /// Queued accounts: (remote user, local user).
    pub items: Vec<(String, String)>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A session with the credential it pulls with.
struct Held {
    public: TransferSession,
    remote_url: String,
    user: String,
    password: String,
}

// The password stays out of `{:?}`.
impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("public", &self.public)
            .field("remote_url", &self.remote_url)
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct Transfers {
    sessions: Vec<Held>,
    /// host → the base URL of that server's WHM API.
    remotes: BTreeMap<String, String>,
    step: Duration,
}

impl Default for Transfers {
    fn default() -> Self {
        Transfers {
            sessions: Vec::new(),
            remotes: BTreeMap::new(),
            step: Duration::from_millis(200),
        }
    }
}

impl Transfers {
    pub(crate) fn is_remote_session(&self, id: &str) -> bool {
        self.sessions
            .iter()
            .any(|s| s.public.transfer_session_id == id)
    }

    fn held(&mut self, id: &str) -> Result<&mut Held, String> {
        self.sessions
            .iter_mut()
            .find(|s| s.public.transfer_session_id == id)
            .ok_or_else(|| format!("The transfer session “{id}” does not exist."))
    }
}

fn get<'p>(p: &'p Params, name: &str) -> Option<&'p str> {
    p.get(name).map(String::as_str).filter(|s| !s.is_empty())
}

/// One call of the source's WHM API with the session's credential.
async fn remote_call(url: &str, user: &str, password: &str, query: &str) -> Result<Value, String> {
    // A simulator reaching another simulator on loopback: their
    // certificates are fresh self-signed ones.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("{url}/json-api/{query}"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .map_err(|e| format!("Could not connect to the remote server: {e}"))?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED
        || response.status() == reqwest::StatusCode::FORBIDDEN
    {
        return Err(
            "Failed to authenticate with the remote server: the login was refused (check the user and password)."
                .into(),
        );
    }
    if !response.status().is_success() {
        return Err(format!(
            "The remote server answered HTTP {}.",
            response.status().as_u16()
        ));
    }
    let doc: Value = response
        .json()
        .await
        .map_err(|e| format!("The remote server's answer is not JSON: {e}"))?;
    if doc.pointer("/metadata/result").and_then(Value::as_i64) != Some(1) {
        let reason = doc
            .pointer("/metadata/reason")
            .and_then(Value::as_str)
            .unwrap_or("unknown failure");
        return Err(format!("The remote server refused: {reason}"));
    }
    Ok(doc)
}

/// `create_remote_root_transfer_session`: the credential is tried on the
/// source (a `version` call) before the session exists.
pub(crate) async fn create_session(shared: &Shared, p: &Params) -> Outcome {
    let host = get(p, "host").unwrap_or_default().to_string();
    let user = get(p, "user").unwrap_or("root").to_string();
    let Some(password) = get(p, "password").map(str::to_string) else {
        return Err("The “password” or “sshkey_name” parameter is required.".into());
    };
    let url = lock(&shared.state).transfers.remotes.get(&host).cloned();
    let Some(url) = url else {
        return Err(format!(
            "Could not connect to the remote server “{host}”: no route to host."
        ));
    };
    remote_call(&url, &user, &password, "version?api.version=1").await?;
    let mut state = lock(&shared.state);
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let prefix: String = host.chars().filter(char::is_ascii_alphanumeric).collect();
    let id = format!("{prefix}copya{stamp}{}", random_token(4));
    state.transfers.sessions.push(Held {
        public: TransferSession {
            transfer_session_id: id.clone(),
            remote_host: host,
            state: "PENDING".into(),
            items: Vec::new(),
            error: None,
        },
        remote_url: url,
        user,
        password,
    });
    Ok(Answer {
        data: Some(json!({ "transfer_session_id": id })),
        ..Answer::default()
    })
}

pub(crate) fn enqueue(transfers: &mut Transfers, p: &Params) -> Outcome {
    let id = get(p, "transfer_session_id").unwrap_or_default();
    let module = get(p, "module").unwrap_or_default();
    if module != "AccountRemoteRoot" {
        return Err(format!(
            "The simulator transfers accounts only (module “AccountRemoteRoot”), not “{module}”."
        ));
    }
    let user = get(p, "user").ok_or("The parameter “user” is required.")?;
    let local = get(p, "localuser").unwrap_or(user).to_string();
    let user = user.to_string();
    // One account is restored by one session at a time.
    let busy = transfers.sessions.iter().find(|s| {
        matches!(
            s.public.state.as_str(),
            "TRANSFER_INPROGRESS" | "RESTORE_INPROGRESS"
        ) && s.public.items.iter().any(|(_, l)| *l == local)
    });
    if let Some(other) = busy {
        return Err(format!(
            "The account “{local}” is already being transferred in the transfer session “{}”.",
            other.public.transfer_session_id
        ));
    }
    let held = transfers.held(id)?;
    if held.public.state != "PENDING" {
        return Err(format!(
            "The transfer session “{id}” has already started ({}).",
            held.public.state
        ));
    }
    held.public.items.push((user, local));
    Ok(Answer::default())
}

/// `start_transfer_session`: the session runs in the background.
pub(crate) fn start(shared: &Arc<Shared>, p: &Params) -> Outcome {
    let id = get(p, "transfer_session_id")
        .unwrap_or_default()
        .to_string();
    let step = {
        let mut state = lock(&shared.state);
        let step = state.transfers.step;
        let held = state.transfers.held(&id)?;
        if held.public.state != "PENDING" {
            return Err(format!(
                "The transfer session “{id}” has already started ({}).",
                held.public.state
            ));
        }
        if held.public.items.is_empty() {
            return Err(format!("The transfer session “{id}” has no items."));
        }
        held.public.state = "TRANSFER_INPROGRESS".into();
        step
    };
    let shared = shared.clone();
    let session = id.clone();
    tokio::spawn(async move { run(shared, session, step).await });
    Ok(Answer {
        data: Some(json!({ "pid": 4000 + (id.len() as u64 * 7) % 1000 })),
        ..Answer::default()
    })
}

/// Move `id` to `next` unless it was aborted meanwhile.
fn advance(shared: &Shared, id: &str, next: &str, error: Option<String>) -> bool {
    let mut state = lock(&shared.state);
    let Ok(held) = state.transfers.held(id) else {
        return false;
    };
    if held.public.state == "ABORTED" {
        return false;
    }
    held.public.state = next.into();
    held.public.error = error;
    true
}

/// The session's work: read each account on the source, then create it
/// here as it was there.
async fn run(shared: Arc<Shared>, id: String, step: Duration) {
    tokio::time::sleep(step).await;
    let (url, user, password, items) = {
        let mut state = lock(&shared.state);
        let Ok(held) = state.transfers.held(&id) else {
            return;
        };
        (
            held.remote_url.clone(),
            held.user.clone(),
            held.password.clone(),
            held.public.items.clone(),
        )
    };
    let mut pulled = Vec::new();
    for (remote, local) in &items {
        let query = format!("accountsummary?api.version=1&user={remote}");
        let doc = match remote_call(&url, &user, &password, &query).await {
            Ok(doc) => doc,
            Err(e) => {
                advance(&shared, &id, "FAILED", Some(format!("{remote}: {e}")));
                return;
            }
        };
        let acct = doc.pointer("/data/acct/0").cloned().unwrap_or(Value::Null);
        let pkgs = remote_call(&url, &user, &password, "listpkgs?api.version=1").await;
        pulled.push((local.clone(), acct, pkgs.ok()));
    }
    if !advance(&shared, &id, "RESTORE_INPROGRESS", None) {
        return;
    }
    tokio::time::sleep(step).await;
    let restored = restore(&shared, &id, &pulled);
    let (next, error) = match restored {
        Ok(()) => ("COMPLETED", None),
        Err(e) => ("FAILED", Some(e)),
    };
    advance(&shared, &id, next, error);
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn mb(v: Option<&Value>) -> Option<u64> {
    v.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
}

/// Create the pulled accounts (and their packages when missing here).
fn restore(
    shared: &Shared,
    id: &str,
    pulled: &[(String, Value, Option<Value>)],
) -> Result<(), String> {
    let mut state = lock(&shared.state);
    if state.transfers.held(id)?.public.state == "ABORTED" {
        return Ok(());
    }
    for (local, acct, pkgs) in pulled {
        if state.accounts.contains_key(local) {
            return Err(format!("An account named “{local}” already exists."));
        }
        let plan = text(acct, "plan");
        if !state.packages.contains_key(&plan) {
            let listed = pkgs
                .as_ref()
                .and_then(|d| d.pointer("/data/pkg"))
                .and_then(Value::as_array)
                .and_then(|all| all.iter().find(|p| text(p, "name") == plan).cloned())
                .ok_or_else(|| format!("The package “{plan}” is not on the remote server."))?;
            let pkg = Package::new(&plan, mb(listed.get("QUOTA")), mb(listed.get("BWLIMIT")));
            state.packages.insert(plan.clone(), pkg);
        }
        let mut account = Account::new(local, &text(acct, "domain"))
            .with_plan(&plan)
            .with_owner(&text(acct, "owner"))
            .with_contact_email(&text(acct, "email"));
        if acct.get("suspended").and_then(Value::as_i64) == Some(1) {
            account = account.suspended_for(&text(acct, "suspendreason"));
        }
        let package = state.packages[&plan].clone();
        account.apply_package(&package);
        account.uid = state.allocate_uid();
        state.accounts.insert(local.clone(), account);
    }
    Ok(())
}

/// `get_transfer_session_state` of a remote session.
pub(crate) fn state_of(transfers: &mut Transfers, id: &str) -> Outcome {
    let held = transfers.held(id)?;
    Ok(Answer {
        data: Some(json!({ "state_name": held.public.state })),
        ..Answer::default()
    })
}

pub(crate) fn abort(transfers: &mut Transfers, p: &Params) -> Outcome {
    let id = get(p, "transfer_session_id").unwrap_or_default();
    let held = transfers.held(id)?;
    match held.public.state.as_str() {
        "COMPLETED" | "FAILED" | "ABORTED" => Err(format!(
            "The transfer session “{id}” cannot be aborted: it is {}.",
            held.public.state
        )),
        _ => {
            held.public.state = "ABORTED".into();
            Ok(Answer::default())
        }
    }
}

/// Test controls and views of the transfer sessions.
impl WhmSimulator {
    /// Let a transfer session's `host` reach the WHM API at `base_url`
    /// (another simulator's `base_url()`).
    pub fn add_remote(&self, host: &str, base_url: &str) {
        lock(&self.shared.state)
            .transfers
            .remotes
            .insert(host.into(), base_url.trim_end_matches('/').into());
    }

    /// How long each state of a transfer session lasts from now on.
    pub fn set_transfer_step(&self, step: Duration) {
        lock(&self.shared.state).transfers.step = step;
    }

    pub fn transfer_sessions(&self) -> Vec<TransferSession> {
        lock(&self.shared.state)
            .transfers
            .sessions
            .iter()
            .map(|h| h.public.clone())
            .collect()
    }
}
