//! World 0.2.0's backups of a cPanel account, with WHM API 1's own
//! functions (see README.md, "Backups (world 0.2.0)"):
//!
//! - create-backup: `start_background_pkgacct` (`tarroot=/home`); the backup
//!   is `pending` under its pkgacct session id until the session is done.
//! - backup-status: `get_pkgacct_session_state`, then the session's master
//!   log (`fetch_pkgacct_master_log`) for the archive, its size, its start
//!   time and, for a failed session, the reason.
//! - list-backups: `list_cparchive_files`, the account's cpmove archives.
//! - restore-backup: `start_local_cpmove_restore` (`overwrite=1`) followed
//!   by `get_transfer_session_state` until the restore is done.
//!
//! A backup id is either a pkgacct session id (what create-backup answers)
//! or an archive's full path (what list-backups answers); both name the
//! account's `cpmove-USER.tar.gz`.
use crate::form::Params;
use crate::whm::{Method, Whm};
use crate::{input, lookup};
use panel1_sdk::*;
use serde_json::Value;

/// The backup functions this adapter implements (export/import are in
/// `transfer`). delete-backup is not one:
/// WHM API 1 has no function that removes a cpmove archive.
pub const OPERATIONS: [BackupOperation; 6] = [
    BackupOperation::CreateBackup,
    BackupOperation::BackupStatus,
    BackupOperation::ListBackups,
    BackupOperation::RestoreBackup,
    BackupOperation::ExportService,
    BackupOperation::ImportService,
];

/// Where pkgacct writes archives: /home is one of the places
/// `list_cparchive_files` looks in (the account's home directory is not).
const TARROOT: &str = "/home";

/// Polls of a restore in a call without a deadline (the pauses between
/// them are `transfer::follow_session`'s).
const MAX_POLLS: u32 = 60;

/// What a backup id names.
#[derive(Debug, PartialEq)]
pub enum BackupId<'a> {
    /// A `start_background_pkgacct` session.
    Session(&'a str),
    /// A cpmove archive, by full path.
    Archive(&'a str),
}

/// Read a backup id of `user`'s account. An archive must be the account's
/// own (`/dir/cpmove-USER.tar.gz`), so a crafted id cannot restore another
/// account's archive over this one.
pub fn parse_id<'a>(raw: &'a str, user: &str) -> Result<BackupId<'a>, AdapterError> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(invalid_input("backup_id is required"));
    }
    if id.starts_with('/') {
        let (dir, file) = id.rsplit_once('/').unwrap_or(("", id));
        let own = [".tar.gz", ".tar", ""]
            .iter()
            .any(|ext| file == format!("cpmove-{user}{ext}"));
        if !own || dir.split('/').any(|part| part == "..") {
            return Err(invalid_input(format!(
                "backup `{id}` is not a cpmove archive of account `{user}`"
            )));
        }
        return Ok(BackupId::Archive(id));
    }
    // WHM's session ids are the user name, a timestamp and random letters.
    let rest = id.strip_prefix(user).unwrap_or("");
    let stamped = rest.len() > 14 && rest.bytes().take(14).all(|b| b.is_ascii_digit());
    if !stamped || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid_input(format!(
            "backup `{id}` is neither a pkgacct session of account `{user}` nor a cpmove archive path"
        )));
    }
    Ok(BackupId::Session(id))
}

/// Backups stay on the WHM server: no destination.
fn on_server(destination: &Option<BackupDestination>) -> Result<(), AdapterError> {
    match destination {
        None => Ok(()),
        Some(d) => Err(invalid_input(format!(
            "cPanel backups stay on the WHM server (/home/cpmove-USER.tar.gz): destination `{}` is not supported",
            d.kind
        ))),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A master log timestamp (`2020-03-23 10:43:28 -0500`) in Unix ms.
pub fn log_time_ms(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let (date, time, zone) = (parts.next()?, parts.next()?, parts.next()?);
    let num = |s: &str| s.parse::<i64>().ok();
    let ymd: Vec<i64> = date.split('-').map(num).collect::<Option<_>>()?;
    let hms: Vec<i64> = time.split(':').map(num).collect::<Option<_>>()?;
    if ymd.len() != 3 || hms.len() != 3 || zone.len() != 5 {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let offset = sign * (num(&zone[1..3])? * 3600 + num(&zone[3..5])? * 60);
    let secs =
        days_from_civil(ymd[0], ymd[1], ymd[2]) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
            - offset;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// What a pkgacct master log says.
#[derive(Debug, Default, PartialEq)]
pub struct MasterLog {
    pub started_ms: Option<u64>,
    /// `pkgacctfile is: <path>`
    pub archive: Option<String>,
    /// `size is: <bytes>`
    pub size_bytes: Option<u64>,
    /// The last error line.
    pub error: Option<String>,
}

/// Read a master log: one JSON object a line (`contents`, `timestamp`,
/// `type`); lines that are not are skipped.
pub fn read_log(log: &str) -> MasterLog {
    let mut out = MasterLog::default();
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if out.started_ms.is_none() {
            out.started_ms = entry
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(log_time_ms);
        }
        let text = entry.get("contents").and_then(Value::as_str).unwrap_or("");
        let text = text.trim();
        if let Some(path) = text.strip_prefix("pkgacctfile is:") {
            out.archive = Some(path.trim().to_string());
        } else if let Some(size) = text.strip_prefix("size is:") {
            out.size_bytes = size.trim().parse().ok();
        } else if entry.get("type").and_then(Value::as_str) == Some("err") && !text.is_empty() {
            out.error = Some(text.to_string());
        }
    }
    out
}

/// A session's state (`RUNNING`, `COMPLETED`, `FAILED`) and master log.
fn session(whm: &Whm, id: &str) -> Result<(String, MasterLog), AdapterError> {
    let params = || Params::new().text("session_id", id);
    let doc = whm.ok(Method::Get, "get_pkgacct_session_state", params())?;
    let state = doc
        .pointer("/data/state")
        .and_then(Value::as_str)
        .ok_or_else(|| permanent("WHM get_pkgacct_session_state: the answer has no data.state"))?
        .to_string();
    let doc = whm.ok(Method::Get, "fetch_pkgacct_master_log", params())?;
    let log = read_log(
        doc.pointer("/data/log")
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    Ok((state, log))
}

fn session_info(whm: &Whm, id: &str) -> Result<BackupInfo, AdapterError> {
    let (state, log) = session(whm, id)?;
    let backup_state = match state.as_str() {
        "RUNNING" => BackupState::Pending,
        "COMPLETED" => BackupState::Complete,
        "FAILED" => BackupState::Failed,
        other => {
            return Err(permanent(format!(
                "WHM get_pkgacct_session_state: unknown state `{other}`"
            )))
        }
    };
    let mut info = BackupInfo::new(id, backup_state, log.started_ms.unwrap_or(0));
    info.size_bytes = log
        .size_bytes
        .filter(|_| backup_state == BackupState::Complete);
    info.details.push(KeyValue::new("session_id", id));
    info.details.push(KeyValue::new("pkgacct_state", state));
    if let Some(archive) = log.archive {
        info.details.push(KeyValue::new("archive", archive));
    }
    if backup_state == BackupState::Failed {
        let reason = log.error.unwrap_or_else(|| "pkgacct failed".into());
        info.details.push(KeyValue::new("reason", reason));
    }
    Ok(info)
}

/// The account's cpmove archives, by full path.
fn archives(whm: &Whm, user: &str) -> Result<Vec<(String, String)>, AdapterError> {
    let doc = whm.ok(Method::Get, "list_cparchive_files", Params::new())?;
    let files = doc
        .pointer("/data/quickrestore_files")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let text = |f: &Value, k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(files
        .iter()
        .filter(|f| f.get("user").and_then(Value::as_str) == Some(user))
        .map(|f| {
            let (path, file) = (text(f, "path"), text(f, "file"));
            (format!("{}/{file}", path.trim_end_matches('/')), file)
        })
        .collect())
}

/// A listed archive: complete; WHM's listing gives neither size nor date
/// (`created_at_ms` 0 = unknown).
fn archive_info(path: &str, file: &str) -> BackupInfo {
    let mut info = BackupInfo::new(path, BackupState::Complete, 0);
    info.details.push(KeyValue::new("archive", path));
    info.details.push(KeyValue::new("file", file));
    info
}

pub fn create(req: BackupRequest) -> Result<BackupInfo, AdapterError> {
    let user = input::account_of(&req.service)?;
    on_server(&req.destination)?;
    let whm = Whm::connect(&req.ctx)?;
    let params = Params::new().text("user", &user).text("tarroot", TARROOT);
    let doc = whm.ok(Method::Get, "start_background_pkgacct", params)?;
    let id = doc
        .pointer("/data/session_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            permanent("WHM start_background_pkgacct: the answer has no data.session_id")
        })?;
    log::info(
        "pkgacct started",
        &[("username", &user), ("session_id", id)],
    );
    let mut info = BackupInfo::new(id, BackupState::Pending, now_ms());
    info.details.push(KeyValue::new("session_id", id));
    info.details.push(KeyValue::new(
        "archive",
        format!("{TARROOT}/cpmove-{user}.tar.gz"),
    ));
    Ok(info)
}

pub fn status(req: BackupRefRequest) -> Result<BackupInfo, AdapterError> {
    let user = input::account_of(&req.service)?;
    on_server(&req.destination)?;
    let id = parse_id(&req.backup_id, &user)?;
    let whm = Whm::connect(&req.ctx)?;
    match id {
        BackupId::Session(s) => session_info(&whm, s),
        BackupId::Archive(path) => archives(&whm, &user)?
            .into_iter()
            .find(|(p, _)| p == path)
            .map(|(p, f)| archive_info(&p, &f))
            .ok_or_else(|| not_found(format!("backup `{path}` is not on the WHM server"))),
    }
}

pub fn list(req: BackupListRequest) -> Result<Vec<BackupInfo>, AdapterError> {
    let user = input::account_of(&req.service)?;
    on_server(&req.destination)?;
    let whm = Whm::connect(&req.ctx)?;
    Ok(archives(&whm, &user)?
        .iter()
        .map(|(p, f)| archive_info(p, f))
        .collect())
}

/// The archive a backup id names, checked to be on the server.
fn archive_of(whm: &Whm, user: &str, id: BackupId) -> Result<String, AdapterError> {
    let path = match id {
        BackupId::Archive(p) => p.to_string(),
        BackupId::Session(s) => {
            let (state, log) = session(whm, s)?;
            if state != "COMPLETED" {
                return Err(conflict(format!(
                    "backup `{s}` is not complete (pkgacct session {state}): nothing to restore"
                )));
            }
            let path = log.archive.ok_or_else(|| {
                permanent(format!(
                    "WHM pkgacct session `{s}`: the log names no archive"
                ))
            })?;
            parse_id(&path, user)?;
            path
        }
    };
    if !archives(whm, user)?.iter().any(|(p, _)| *p == path) {
        return Err(not_found(format!(
            "backup `{path}` is no longer on the WHM server"
        )));
    }
    Ok(path)
}

pub fn restore(req: BackupRefRequest) -> Result<ServiceStatus, AdapterError> {
    let user = input::account_of(&req.service)?;
    on_server(&req.destination)?;
    let id = parse_id(&req.backup_id, &user)?;
    let whm = Whm::connect(&req.ctx)?;
    let path = archive_of(&whm, &user, id)?;
    // overwrite=1: the account is put back as the archive holds it, whether
    // it still exists or not (ensure semantics).
    let params = Params::new()
        .text("cpmovepath", &path)
        .text("overwrite", "1");
    let doc = whm.ok(Method::Get, "start_local_cpmove_restore", params)?;
    let transfer = doc
        .pointer("/data/transfer_session_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            permanent("WHM start_local_cpmove_restore: the answer has no data.transfer_session_id")
        })?
        .to_string();
    log::info(
        "restore started",
        &[("username", &user), ("transfer_session_id", &transfer)],
    );
    crate::transfer::follow_session(&whm, &req.ctx, &transfer, MAX_POLLS, "restoring")?;
    log::info(
        "account restored",
        &[("username", &user), ("archive", &path)],
    );
    match lookup(&whm, &user)? {
        Some(account) => {
            let mut status = account.to_status();
            status.details.push(KeyValue::new("restored_from", path));
            Ok(status)
        }
        None => Err(permanent(format!(
            "WHM reported the restore of `{path}` complete, but account `{user}` does not exist"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_ids() {
        let s = "bob20261206083000abcdefghijklmn";
        assert_eq!(parse_id(s, "bob").unwrap(), BackupId::Session(s));
        assert_eq!(
            parse_id(" /home/cpmove-bob.tar.gz ", "bob").unwrap(),
            BackupId::Archive("/home/cpmove-bob.tar.gz")
        );
        for bad in [
            "",
            "/home/cpmove-alice.tar.gz",
            "/home/../etc/cpmove-bob.tar.gz",
            "alice20261206083000abc",
            "bob2026",
            "bob20261206083000ab;rm",
        ] {
            assert!(
                matches!(parse_id(bad, "bob"), Err(AdapterError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn log_times() {
        assert_eq!(log_time_ms("1970-01-01 00:00:00 +0000"), Some(0));
        // 2020-03-23 10:43:28 -0500 is 15:43:28 UTC.
        assert_eq!(
            log_time_ms("2020-03-23 10:43:28 -0500"),
            Some(1_584_978_208_000)
        );
        assert_eq!(log_time_ms("yesterday"), None);
    }

    #[test]
    fn master_logs() {
        let log = concat!(
            r#"{"contents":"pkgacct started.\n","partial":0,"timestamp":"2020-03-23 10:43:28 -0500","pid":1,"indent":0,"type":"out"}"#,
            "\nnot json\n",
            r#"{"contents":"pkgacctfile is: /home/cpmove-bob.tar.gz\n","timestamp":"2020-03-23 10:44:00 -0500","type":"out"}"#,
            "\n",
            r#"{"contents":"size is: 52224\n","type":"out"}"#,
            "\n",
            r#"{"contents":"disk full\n","type":"err"}"#,
        );
        let read = read_log(log);
        assert_eq!(read.started_ms, Some(1_584_978_208_000));
        assert_eq!(read.archive.as_deref(), Some("/home/cpmove-bob.tar.gz"));
        assert_eq!(read.size_bytes, Some(52_224));
        assert_eq!(read.error.as_deref(), Some("disk full"));
        assert_eq!(read_log(""), MasterLog::default());
    }
}
