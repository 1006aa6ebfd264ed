//! WHM API 1's account backups and restores, as cPanel documents them
//! (api.docs.cpanel.net, whm.openapi "Backup or Restore" and "Transfers"):
//!
//! - `start_background_pkgacct` runs pkgacct in the background and answers a
//!   session id; `get_pkgacct_session_state` says RUNNING, COMPLETED or
//!   FAILED; `fetch_pkgacct_master_log` is the session's log (JSON lines).
//!   A completed session leaves `cpmove-USER.tar.gz` in `tarroot` (the
//!   simulator's default is /home), replacing an earlier one of that name.
//! - `list_cparchive_files` lists the cpmove archives in /home and the
//!   other documented locations.
//! - `start_local_cpmove_restore` restores an account from an archive
//!   (a transfer session); `get_transfer_session_state` follows it.
//!
//! Deterministic for tests: a session finishes on the Nth state poll
//! ([`WhmSimulator::set_backup_polls`]), and the next pkgacct or restore can
//! be made to fail ([`WhmSimulator::fail_next_pkgacct`],
//! [`WhmSimulator::fail_next_restore`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::functions::{not_found, Answer};
use super::spec::invalid_value;
use super::state::{now, random_token, Account, SimState};
use super::WhmSimulator;
use crate::common::serve::lock;

type Params = BTreeMap<String, String>;
type Outcome = Result<Answer, String>;

/// The documented places `list_cparchive_files` looks in.
const ARCHIVE_DIRS: &[&str] = &[
    "/home",
    "/home2",
    "/home3",
    "/root",
    "/usr",
    "/usr/home",
    "/web",
];

/// A pkgacct session's state, as `get_pkgacct_session_state` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PkgacctState {
    Running,
    Completed,
    Failed,
}

impl PkgacctState {
    fn name(self) -> &'static str {
        match self {
            PkgacctState::Running => "RUNNING",
            PkgacctState::Completed => "COMPLETED",
            PkgacctState::Failed => "FAILED",
        }
    }
}

/// One `start_background_pkgacct` session.
#[derive(Debug, Clone, Serialize)]
pub struct PkgacctSession {
    pub session_id: String,
    pub user: String,
    pub tarroot: String,
    pub state: PkgacctState,
    /// Unix time it started.
    pub started: i64,
    /// State polls still answered RUNNING.
    #[serde(skip)]
    polls_left: u32,
    /// Why it fails when it finishes (set by `fail_next_pkgacct`).
    #[serde(skip)]
    fails_with: Option<String>,
    /// The master log, one JSON object a line.
    #[serde(skip)]
    log: Vec<String>,
}

/// A cpmove archive on the server's disk.
#[derive(Debug, Clone, Serialize)]
pub struct Archive {
    pub user: String,
    /// The directory (`/home`).
    pub path: String,
    /// `cpmove-USER.tar.gz`
    pub file: String,
    pub size_bytes: u64,
    /// Unix time it was written.
    pub created: i64,
    /// The account as pkgacct packed it (what a restore puts back).
    #[serde(skip)]
    snapshot: Account,
}

impl Archive {
    pub fn full_path(&self) -> String {
        format!("{}/{}", self.path, self.file)
    }
}

/// One `start_local_cpmove_restore` transfer session.
#[derive(Debug, Clone, Serialize)]
pub struct Restore {
    pub transfer_session_id: String,
    pub user: String,
    pub cpmovepath: String,
    /// `get_transfer_session_state`'s name for it (RESTORE_INPROGRESS,
    /// COMPLETED, FAILED).
    pub state: String,
    #[serde(skip)]
    polls_left: u32,
    #[serde(skip)]
    fails_with: Option<String>,
    #[serde(skip)]
    delete_archive: bool,
}

/// Everything backup-related behind the simulator's lock.
#[derive(Debug, Default)]
pub(crate) struct Backups {
    pub sessions: Vec<PkgacctSession>,
    /// By full path.
    pub archives: BTreeMap<String, Archive>,
    pub restores: Vec<Restore>,
    /// State polls a pkgacct or restore session answers as still running.
    pub polls: u32,
    pub fail_next_pkgacct: Option<String>,
    pub fail_next_restore: Option<String>,
}

/// `2026-12-06 08:30:00 +0000`, the master log's timestamp format.
fn log_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S +0000")
        .to_string()
}

fn log_line(unix: i64, kind: &str, contents: &str) -> String {
    json!({"contents": format!("{contents}\n"), "partial": 0, "timestamp": log_time(unix),
           "pid": 4073, "indent": 0, "type": kind})
    .to_string()
}

/// What pkgacct would pack: a fixed overhead plus the account's disk use.
fn archive_size(acct: &Account) -> u64 {
    48 * 1024 + acct.disk_used_mb * 1024 * 1024 / 2
}

fn get<'p>(p: &'p Params, name: &str) -> Option<&'p str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn session_missing(id: &str) -> String {
    format!("The session “{id}” does not exist.")
}

pub(crate) fn start_background_pkgacct(state: &mut SimState, p: &Params) -> Outcome {
    let user = get(p, "user").unwrap_or_default();
    if !state.accounts.contains_key(user) {
        return Err(not_found(user));
    }
    let tarroot = get(p, "tarroot").unwrap_or("/home").trim_end_matches('/');
    if !tarroot.starts_with('/') {
        return Err(invalid_value("tarroot", "the path must be absolute"));
    }
    let started = now();
    let stamp = chrono::DateTime::from_timestamp(started, 0)
        .unwrap_or_default()
        .format("%Y%m%d%H%M%S");
    let session_id = format!("{user}{stamp}{}", random_token(14));
    let b = &mut state.backups;
    b.sessions.push(PkgacctSession {
        session_id: session_id.clone(),
        user: user.to_owned(),
        tarroot: tarroot.to_owned(),
        state: PkgacctState::Running,
        started,
        polls_left: b.polls,
        fails_with: b.fail_next_pkgacct.take(),
        log: vec![
            log_line(started, "out", "pkgacct started."),
            log_line(
                started,
                "out",
                &format!("pkgacct version 10 - user : {user} - tarball: 1 - split: 0 - incremental: 0 - running with uid 0"),
            ),
        ],
    });
    Ok(Answer {
        data: Some(json!({
            "session_id": session_id,
            "complete_master_log": "master.log",
            "complete_master_error_log": "master.error_log",
        })),
        ..Answer::default()
    })
}

/// Finish a session whose polls ran out: write its archive or fail it.
fn finish_pkgacct(state: &mut SimState, index: usize) {
    let at = now();
    let session = &state.backups.sessions[index];
    let (user, tarroot) = (session.user.clone(), session.tarroot.clone());
    let failure = match (&session.fails_with, state.accounts.get(&user)) {
        (Some(why), _) => Err(why.clone()),
        (None, None) => Err(format!("The user “{user}” no longer exists.")),
        (None, Some(acct)) => Ok(acct.clone()),
    };
    let session = &mut state.backups.sessions[index];
    match failure {
        Err(why) => {
            session.state = PkgacctState::Failed;
            session.log.push(log_line(at, "err", &why));
            session.log.push(log_line(at, "out", "pkgacct failed"));
        }
        Ok(acct) => {
            let archive = Archive {
                user: user.clone(),
                path: tarroot,
                file: format!("cpmove-{user}.tar.gz"),
                size_bytes: archive_size(&acct),
                created: at,
                snapshot: acct,
            };
            session.state = PkgacctState::Completed;
            // pkgacct's closing lines name the archive and its size.
            session.log.push(log_line(
                at,
                "out",
                &format!("pkgacctfile is: {}", archive.full_path()),
            ));
            session.log.push(log_line(
                at,
                "out",
                &format!("size is: {}", archive.size_bytes),
            ));
            session.log.push(log_line(at, "out", "pkgacct completed"));
            state.backups.archives.insert(archive.full_path(), archive);
        }
    }
}

pub(crate) fn get_pkgacct_session_state(state: &mut SimState, p: &Params) -> Outcome {
    let id = get(p, "session_id").unwrap_or_default();
    let index = state
        .backups
        .sessions
        .iter()
        .position(|s| s.session_id == id)
        .ok_or_else(|| session_missing(id))?;
    let session = &mut state.backups.sessions[index];
    let running = session.state == PkgacctState::Running;
    if running && session.polls_left > 0 {
        session.polls_left -= 1;
    } else if running {
        finish_pkgacct(state, index);
    }
    let name = state.backups.sessions[index].state.name();
    Ok(Answer {
        data: Some(json!({ "state": name })),
        ..Answer::default()
    })
}

pub(crate) fn fetch_pkgacct_master_log(state: &mut SimState, p: &Params) -> Outcome {
    let id = get(p, "session_id").unwrap_or_default();
    let session = state
        .backups
        .sessions
        .iter()
        .find(|s| s.session_id == id)
        .ok_or_else(|| session_missing(id))?;
    let mut log = session.log.join("\n");
    log.push('\n');
    Ok(Answer {
        data: Some(json!({ "log": log })),
        ..Answer::default()
    })
}

pub(crate) fn list_cparchive_files(state: &mut SimState) -> Outcome {
    let files: Vec<Value> = state
        .backups
        .archives
        .values()
        .filter(|a| ARCHIVE_DIRS.contains(&a.path.as_str()))
        .map(|a| json!({"file": a.file, "path": a.path, "user": a.user}))
        .collect();
    Ok(Answer {
        data: Some(json!({ "quickrestore_files": files })),
        ..Answer::default()
    })
}

pub(crate) fn start_local_cpmove_restore(state: &mut SimState, p: &Params) -> Outcome {
    let path = get(p, "cpmovepath").unwrap_or_default();
    let archive = state
        .backups
        .archives
        .get(path)
        .ok_or_else(|| format!("The file “{path}” does not exist."))?;
    let user = get(p, "username")
        .unwrap_or(archive.user.as_str())
        .to_owned();
    if state.accounts.contains_key(&user) && get(p, "overwrite") != Some("1") {
        return Err(format!("An account named “{user}” already exists."));
    }
    let started = chrono::DateTime::from_timestamp(now(), 0)
        .unwrap_or_default()
        .format("%Y%m%d%H%M%S");
    let id = format!("whmsim{started}{}", random_token(4));
    let b = &mut state.backups;
    b.restores.push(Restore {
        transfer_session_id: id.clone(),
        user,
        cpmovepath: path.to_owned(),
        state: "RESTORE_PENDING".into(),
        polls_left: b.polls,
        fails_with: b.fail_next_restore.take(),
        delete_archive: get(p, "delete_archive") == Some("1"),
    });
    Ok(Answer {
        data: Some(json!({ "transfer_session_id": id })),
        ..Answer::default()
    })
}

/// Put the archived account back (over the existing one, keeping its uid).
fn apply_restore(state: &mut SimState, index: usize) -> Result<(), String> {
    let restore = state.backups.restores[index].clone();
    if let Some(why) = restore.fails_with {
        return Err(why);
    }
    let archive = state
        .backups
        .archives
        .get(&restore.cpmovepath)
        .ok_or_else(|| format!("The file “{}” does not exist.", restore.cpmovepath))?;
    let mut acct = archive.snapshot.clone();
    acct.user = restore.user.clone();
    if let Some(other) = state.owner_of_domain(&acct.domain) {
        if other != restore.user {
            return Err(format!("The domain “{}” already exists.", acct.domain));
        }
    }
    acct.uid = match state.accounts.get(&restore.user) {
        Some(existing) => existing.uid,
        None => state.allocate_uid(),
    };
    state.accounts.insert(restore.user.clone(), acct);
    if restore.delete_archive {
        state.backups.archives.remove(&restore.cpmovepath);
    }
    Ok(())
}

pub(crate) fn get_transfer_session_state(state: &mut SimState, p: &Params) -> Outcome {
    let id = get(p, "transfer_session_id").unwrap_or_default();
    let index = state
        .backups
        .restores
        .iter()
        .position(|r| r.transfer_session_id == id)
        .ok_or_else(|| session_missing(id))?;
    let restore = &mut state.backups.restores[index];
    let running = !matches!(restore.state.as_str(), "COMPLETED" | "FAILED");
    if running && restore.polls_left > 0 {
        restore.polls_left -= 1;
        restore.state = "RESTORE_INPROGRESS".into();
    } else if running {
        let done = apply_restore(state, index);
        state.backups.restores[index].state = match done {
            Ok(()) => "COMPLETED".into(),
            Err(_) => "FAILED".into(),
        };
    }
    Ok(Answer {
        data: Some(json!({ "state_name": state.backups.restores[index].state })),
        ..Answer::default()
    })
}

/// Test controls and views of the backups.
impl WhmSimulator {
    /// How many state polls a pkgacct or restore session started from now
    /// on answers as still running before it finishes (default 0: the first
    /// poll finishes it).
    pub fn set_backup_polls(&self, polls: u32) {
        lock(&self.shared.state).backups.polls = polls;
    }

    /// The next `start_background_pkgacct` session fails with `reason`.
    pub fn fail_next_pkgacct(&self, reason: &str) {
        lock(&self.shared.state).backups.fail_next_pkgacct = Some(reason.into());
    }

    /// The next `start_local_cpmove_restore` session fails with `reason`.
    pub fn fail_next_restore(&self, reason: &str) {
        lock(&self.shared.state).backups.fail_next_restore = Some(reason.into());
    }

    pub fn pkgacct_sessions(&self) -> Vec<PkgacctSession> {
        lock(&self.shared.state).backups.sessions.clone()
    }

    /// The cpmove archives on disk, by full path.
    pub fn archives(&self) -> Vec<Archive> {
        lock(&self.shared.state)
            .backups
            .archives
            .values()
            .cloned()
            .collect()
    }

    /// Remove an archive as an operator would on the server's shell (WHM
    /// API 1 has no function for it).
    pub fn remove_archive(&self, full_path: &str) -> bool {
        lock(&self.shared.state)
            .backups
            .archives
            .remove(full_path)
            .is_some()
    }

    pub fn restores(&self) -> Vec<Restore> {
        lock(&self.shared.state).backups.restores.clone()
    }
}
