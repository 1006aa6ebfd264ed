//! A stateful fake WHM API 1 server over HTTPS.
//!
//! It checks every request against cPanel's own parameter schemas
//! (`spec/whm-api1.json`), keeps accounts, packages and sessions in memory,
//! answers in WHM API 1's envelope, logs every request (without secrets),
//! and can be told to misbehave ([`Fault`]). Backups and restores (pkgacct
//! sessions, cpmove archives, restore sessions) are in [`backups`]; remote
//! transfer sessions (one WHM pulling an account from another) in `transfers`.

pub mod backups;
mod functions;
mod responses;
mod server;
pub mod spec;
mod state;
mod transfers;

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::serve::{lock, Bound};
use crate::common::{SimError, SimHandle};

pub use backups::{Archive, PkgacctSession, PkgacctState, Restore};
pub use state::{Account, Package, Session};
pub use transfers::TransferSession;

use server::Shared;

/// What a simulator is started with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The WHM user in `Authorization: whm <user>:<token>`.
    pub whm_user: String,
    pub token: String,
    /// root's password: HTTP Basic auth as `root` (how another WHM's
    /// transfer session logs in here).
    pub root_password: String,
    /// 0: any free port.
    pub port: u16,
    /// What `version` answers.
    pub version: String,
    /// How long `shutdown()` lets open connections finish.
    pub shutdown_grace: Duration,
}

impl Default for SimConfig {
    /// User `root` with a random token, any port.
    fn default() -> Self {
        SimConfig {
            whm_user: "root".into(),
            token: state::random_token(32).to_ascii_uppercase(),
            root_password: state::random_token(20),
            port: 0,
            version: "11.126.0.5".into(),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

impl SimConfig {
    pub fn with_token(token: impl Into<String>) -> Self {
        SimConfig {
            token: token.into(),
            ..SimConfig::default()
        }
    }
}

/// A running simulator. Dropping it stops it; [`WhmSimulator::shutdown`]
/// stops it gracefully.
pub struct WhmSimulator {
    handle: SimHandle,
    shared: Arc<Shared>,
}

impl Deref for WhmSimulator {
    type Target = SimHandle;
    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

impl WhmSimulator {
    /// Bind 127.0.0.1 (`config.port`, 0 = any) and serve HTTPS with a fresh
    /// self-signed certificate. Must be called inside a Tokio runtime.
    pub async fn start(config: SimConfig) -> Result<WhmSimulator, SimError> {
        let bound = Bound::bind(config.port, false).await?;
        let shared = Arc::new(Shared {
            whm_user: config.whm_user,
            token: config.token,
            root_password: config.root_password,
            version: config.version,
            base_url: format!("https://{}", bound.addr),
            state: Mutex::new(state::SimState::new()),
            recorder: Arc::default(),
            shutdown: bound.shutdown_signal(),
        });
        let handler = server::handler(shared.clone());
        let running = bound.serve(handler, config.shutdown_grace);
        let handle = SimHandle::new(running, shared.recorder.clone());
        Ok(WhmSimulator { handle, shared })
    }

    pub fn whm_user(&self) -> &str {
        &self.shared.whm_user
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    pub fn root_password(&self) -> &str {
        &self.shared.root_password
    }

    /// `whm <user>:<token>`, the value of the Authorization header.
    pub fn auth_header(&self) -> String {
        format!("whm {}:{}", self.shared.whm_user, self.shared.token)
    }

    /// Stop accepting, let open connections finish (up to the configured
    /// grace), cut the rest short, and wait for all of it.
    pub async fn shutdown(self) {
        self.handle.stop().await;
    }

    /// All accounts, sorted by user.
    pub fn accounts(&self) -> Vec<Account> {
        lock(&self.shared.state)
            .accounts
            .values()
            .cloned()
            .collect()
    }

    pub fn account(&self, user: &str) -> Option<Account> {
        lock(&self.shared.state).accounts.get(user).cloned()
    }

    /// Seed an account (cPanel's username rules are not applied, so tests
    /// can seed what a real server might hold). Limits come from its plan;
    /// an empty owner becomes the WHM user.
    pub fn add_account(&self, mut account: Account) -> Result<(), SimError> {
        let mut state = lock(&self.shared.state);
        if state.accounts.contains_key(&account.user) {
            let user = &account.user;
            return Err(SimError::Rejected(format!(
                "An account named “{user}” already exists."
            )));
        }
        if state.owner_of_domain(&account.domain).is_some() {
            let domain = &account.domain;
            return Err(SimError::Rejected(format!(
                "The domain “{domain}” already exists."
            )));
        }
        let Some(package) = state.packages.get(&account.plan).cloned() else {
            let plan = &account.plan;
            return Err(SimError::Rejected(format!(
                "The package “{plan}” does not exist."
            )));
        };
        account.apply_package(&package);
        if account.owner.is_empty() {
            account.owner = self.shared.whm_user.clone();
        }
        if account.uid == 0 {
            account.uid = state.allocate_uid();
        }
        state.accounts.insert(account.user.clone(), account);
        Ok(())
    }

    /// Set what an account has used (disk in MB, bandwidth in bytes).
    pub fn set_usage(
        &self,
        user: &str,
        disk_used_mb: u64,
        bw_used_bytes: u64,
    ) -> Result<(), SimError> {
        let mut state = lock(&self.shared.state);
        let account = state
            .accounts
            .get_mut(user)
            .ok_or_else(|| SimError::Rejected(functions::not_found(user)))?;
        account.disk_used_mb = disk_used_mb;
        account.bw_used_bytes = bw_used_bytes;
        Ok(())
    }

    pub fn packages(&self) -> Vec<Package> {
        lock(&self.shared.state)
            .packages
            .values()
            .cloned()
            .collect()
    }

    /// Add or replace a package.
    pub fn add_package(&self, package: Package) {
        lock(&self.shared.state)
            .packages
            .insert(package.name.clone(), package);
    }

    /// Sessions made by create_user_session.
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.shared.state).sessions.clone()
    }
}
