//! The WHM API 1 functions: each reads validated parameters, changes the
//! state, and returns the `data` its spec response schema describes.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::backups;
use super::spec::{invalid_value, missing_param};
use super::state::{check_domain, now, random_token, Account, Session, SimState};
use super::transfers;

/// What a successful call answers besides `metadata.result=1`.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub data: Option<Value>,
    /// `metadata.output.raw`, for the functions whose spec has it.
    pub raw: Option<String>,
    /// `metadata.chunk` when the answer was paged.
    pub chunk: Option<Value>,
}

/// Server-wide facts the functions need.
pub(crate) struct Env<'a> {
    pub whm_user: &'a str,
    pub base_url: &'a str,
    pub version: &'a str,
}

type Params = BTreeMap<String, String>;
type Outcome = Result<Answer, String>;

pub(crate) fn not_found(user: &str) -> String {
    format!("The user “{user}” does not exist.")
}

fn get<'p>(p: &'p Params, name: &str) -> Option<&'p str> {
    p.get(name).map(String::as_str)
}

/// Spec-required parameters are checked before dispatch; this is for the
/// ones a function needs although the spec leaves them optional.
fn need<'p>(p: &'p Params, name: &str) -> Result<&'p str, String> {
    get(p, name).ok_or_else(|| missing_param(name))
}

fn account<'s>(state: &'s mut SimState, user: &str) -> Result<&'s mut Account, String> {
    state.accounts.get_mut(user).ok_or_else(|| not_found(user))
}

pub(crate) fn call(function: &str, state: &mut SimState, p: &Params, env: &Env) -> Outcome {
    match function {
        "version" => Ok(Answer {
            data: Some(json!({ "version": env.version })),
            ..Answer::default()
        }),
        "createacct" => createacct(state, p, env),
        "suspendacct" => suspendacct(state, p),
        "unsuspendacct" => unsuspendacct(state, p),
        "removeacct" => removeacct(state, p),
        "accountsummary" => accountsummary(state, p),
        "listaccts" => listaccts(state, p),
        "changepackage" => changepackage(state, p),
        "passwd" => passwd(state, p),
        "showbw" => showbw(state, p, env),
        "listpkgs" => Ok(listpkgs(state)),
        "create_user_session" => create_user_session(state, p, env),
        "start_background_pkgacct" => backups::start_background_pkgacct(state, p),
        "get_pkgacct_session_state" => backups::get_pkgacct_session_state(state, p),
        "fetch_pkgacct_master_log" => backups::fetch_pkgacct_master_log(state, p),
        "list_cparchive_files" => backups::list_cparchive_files(state),
        "start_local_cpmove_restore" => backups::start_local_cpmove_restore(state, p),
        "get_transfer_session_state" => match get(p, "transfer_session_id") {
            Some(id) if state.transfers.is_remote_session(id) => {
                transfers::state_of(&mut state.transfers, id)
            }
            _ => backups::get_transfer_session_state(state, p),
        },
        "enqueue_transfer_item" => transfers::enqueue(&mut state.transfers, p),
        "abort_transfer_session" => transfers::abort(&mut state.transfers, p),
        other => Err(format!("Unknown function “{other}”.")),
    }
}

fn createacct(state: &mut SimState, p: &Params, env: &Env) -> Outcome {
    let user = need(p, "username")?;
    if state.accounts.contains_key(user) {
        return Err(format!("An account named “{user}” already exists."));
    }
    state
        .check_new_username(user)
        .map_err(|why| invalid_value("username", &why))?;
    let (domain, temporary) = match get(p, "domain").filter(|d| !d.is_empty()) {
        Some(d) => {
            let d = d.to_ascii_lowercase();
            check_domain(&d).map_err(|why| invalid_value("domain", &why))?;
            (d, false)
        }
        None => (format!("{user}.temp.whm-sim.invalid"), true),
    };
    if state.owner_of_domain(&domain).is_some() {
        return Err(format!("The domain “{domain}” already exists."));
    }
    let plan = get(p, "plan")
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let package = state
        .packages
        .get(plan)
        .cloned()
        .ok_or_else(|| format!("The package “{plan}” does not exist."))?;
    let contact = get(p, "contactemail").unwrap_or("");
    if !contact.is_empty() && !contact.contains('@') {
        return Err(invalid_value(
            "contactemail",
            &format!("“{contact}” is not an email address"),
        ));
    }
    let password = match (get(p, "password"), get(p, "pass")) {
        (Some(_), Some(_)) => {
            return Err(invalid_value(
                "password",
                "use either “pass” or “password”, not both",
            ))
        }
        (Some(pw), None) | (None, Some(pw)) => pw.to_owned(),
        (None, None) => random_token(20),
    };
    if password.is_empty() {
        return Err(invalid_value("password", "the password cannot be empty"));
    }
    let owner = get(p, "owner")
        .filter(|o| !o.is_empty())
        .unwrap_or(env.whm_user);
    let mut acct = Account::new(user, &domain)
        .with_owner(owner)
        .with_contact_email(contact)
        .with_password(&password);
    acct.temporary_domain = temporary;
    acct.uid = state.allocate_uid();
    acct.apply_package(&package);
    state.accounts.insert(user.to_owned(), acct);

    let raw = format!(
        "Account Creation Ok\n+===================================+\n| New Account Info                  |\n\
         +===================================+\n| Domain: {domain}\n| UserName: {user}\n| Package: {plan}\n\
         +===================================+\nAccount Creation Complete!!!\n"
    );
    let mut data = json!({
        "ip": "127.0.0.1",
        "package": plan,
        "nameserver": "ns1.whm-sim.invalid",
        "nameserver2": "ns2.whm-sim.invalid",
        "nameserver3": "",
        "nameserver4": "",
    });
    for suffix in ["", "2", "3", "4"] {
        data[format!("nameservera{suffix}")] = Value::Null;
        data[format!("nameserverentry{suffix}")] = Value::Null;
    }
    Ok(Answer {
        data: Some(data),
        raw: Some(raw),
        chunk: None,
    })
}

fn suspendacct(state: &mut SimState, p: &Params) -> Outcome {
    let user = need(p, "user")?;
    let acct = account(state, user)?;
    if acct.suspended {
        return Err(format!("The account “{user}” is already suspended."));
    }
    let reason = get(p, "reason").unwrap_or("Unknown");
    acct.suspended = true;
    acct.suspend_reason = Some(reason.to_owned());
    acct.suspend_time = Some(now());
    Ok(Answer {
        raw: Some(format!(
            "Changing Shell to /bin/false...Done\nLocking Password...Done\n{user}'s account has been suspended\n"
        )),
        ..Answer::default()
    })
}

fn unsuspendacct(state: &mut SimState, p: &Params) -> Outcome {
    let user = need(p, "user")?;
    let acct = account(state, user)?;
    if !acct.suspended {
        return Err(format!("The account “{user}” is not suspended."));
    }
    acct.suspended = false;
    acct.suspend_reason = None;
    acct.suspend_time = None;
    Ok(Answer::default())
}

fn removeacct(state: &mut SimState, p: &Params) -> Outcome {
    let user = need(p, "username")?;
    let acct = state.accounts.remove(user).ok_or_else(|| not_found(user))?;
    state.sessions.retain(|s| s.user != user);
    Ok(Answer {
        raw: Some(format!(
            "Removing Account {user} ({})...\nAccount Removal Complete!!!\n",
            acct.domain
        )),
        ..Answer::default()
    })
}

/// `accountsummary` and `listaccts` share these fields; they differ in the
/// type of `suspendtime` (string vs integer) and in a few extras.
fn acct_json(a: &Account, listaccts: bool) -> Value {
    let limit = |v: Option<u64>| v.map_or(json!("unlimited"), |n| json!(n));
    let created = chrono::DateTime::from_timestamp(a.created, 0).unwrap_or_default();
    let mut v = json!({
        "user": a.user,
        "domain": a.domain,
        "plan": a.plan,
        "owner": a.owner,
        "email": a.contact_email,
        "ip": a.ip,
        "ipv6": [],
        "uid": a.uid,
        "partition": "home",
        "shell": if a.suspended { "/bin/false" } else { "/bin/bash" },
        "theme": "jupiter",
        "mailbox_format": "maildir",
        "startdate": created.format("%y %b %d %H:%M").to_string(),
        "unix_startdate": a.created,
        "suspended": u8::from(a.suspended),
        "suspendreason": a.suspend_reason.clone().unwrap_or_else(|| "not suspended".into()),
        "diskused": format!("{}M", a.disk_used_mb),
        "disklimit": limit(a.disk_limit_mb),
        "inodesused": 0,
        "inodeslimit": "unlimited",
        "is_locked": 0,
        "is_temporary_domain": u8::from(a.temporary_domain),
        "temporary": 0,
        "backup": 0,
        "legacy_backup": 0,
        "child_nodes": [],
        "outgoing_mail_hold": 0,
        "outgoing_mail_suspended": 0,
        "max_defer_fail_percentage": "unlimited",
        "max_email_per_hour": "unlimited",
        "max_emailacct_quota": "unlimited",
        "min_defer_fail_to_trigger_protection": 5,
        "maxaddons": "unlimited",
        "maxftp": "unlimited",
        "maxlst": "unlimited",
        "maxparked": "unlimited",
        "maxpop": "unlimited",
        "maxsql": "unlimited",
        "maxsub": "unlimited",
    });
    if listaccts {
        v["suspendtime"] = json!(a.suspend_time);
        v["has_backup"] = json!(0);
    } else {
        v["suspendtime"] = json!(a.suspend_time.map(|t| t.to_string()));
    }
    v
}

fn accountsummary(state: &mut SimState, p: &Params) -> Outcome {
    let search = |kind| get(p, "search").filter(|_| get(p, "searchtype") == Some(kind));
    let acct = if let Some(user) = get(p, "user").or_else(|| search("user")) {
        state.accounts.get(user).ok_or_else(|| not_found(user))?
    } else if let Some(domain) = get(p, "domain").or_else(|| search("domain")) {
        let user = state
            .owner_of_domain(domain)
            .ok_or_else(|| format!("The domain “{domain}” does not exist."))?;
        &state.accounts[user]
    } else {
        return Err(missing_param("user"));
    };
    Ok(Answer {
        data: Some(json!({ "acct": [acct_json(acct, false)] })),
        ..Answer::default()
    })
}

/// WHM's `search`: `exact` compares, `regex` (the default) finds; the
/// simulator's "regex" understands `^` and `$` anchors around a literal.
fn matches(value: &str, search: &str, method: Option<&str>) -> bool {
    if method == Some("exact") {
        return value == search;
    }
    let (start, rest) = match search.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, search),
    };
    let (end, lit) = match rest.strip_suffix('$') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    match (start, end) {
        (true, true) => value == lit,
        (true, false) => value.starts_with(lit),
        (false, true) => value.ends_with(lit),
        (false, false) => value.contains(lit),
    }
}

fn search_filter<'a>(p: &'a Params) -> impl Fn(&Account) -> bool + 'a {
    move |a: &Account| {
        let (Some(search), Some(kind)) = (get(p, "search"), get(p, "searchtype")) else {
            return true;
        };
        let value = match kind {
            "domain" => a.domain.as_str(),
            "owner" => a.owner.as_str(),
            "user" => a.user.as_str(),
            "ip" => a.ip.as_str(),
            "package" => a.plan.as_str(),
            _ => return true,
        };
        matches(value, search, get(p, "searchmethod"))
    }
}

/// WHM API 1 paging (`api.chunk.*`, start is 1-based). Without a size the
/// chunk runs to the end.
fn chunk(p: &Params, total: usize) -> Option<(usize, usize)> {
    if get(p, "api.chunk.enable") != Some("1") {
        return None;
    }
    let start = get(p, "api.chunk.start")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1usize);
    let size = get(p, "api.chunk.size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(total.saturating_sub(start - 1));
    Some((start.max(1), size))
}

fn listaccts(state: &mut SimState, p: &Params) -> Outcome {
    // BTreeMap order: sorted by user.
    let filter = search_filter(p);
    let all: Vec<&Account> = state.accounts.values().filter(|a| filter(a)).collect();
    let total = all.len();
    let (page, chunk_meta) = match chunk(p, total) {
        Some((start, size)) => {
            let page: Vec<&Account> = all.into_iter().skip(start - 1).take(size).collect();
            let meta =
                json!({"start": start, "size": size, "records": total, "current": page.len()});
            (page, Some(meta))
        }
        None => (all, None),
    };
    let want: Option<Vec<&str>> = get(p, "want")
        .filter(|w| !w.is_empty())
        .map(|w| w.split(',').map(str::trim).collect());
    let accts: Vec<Value> = page
        .into_iter()
        .map(|a| {
            let v = acct_json(a, true);
            match (&want, v) {
                (Some(keys), Value::Object(m)) => Value::Object(
                    m.into_iter()
                        .filter(|(k, _)| keys.contains(&k.as_str()))
                        .collect::<Map<_, _>>(),
                ),
                (_, v) => v,
            }
        })
        .collect();
    Ok(Answer {
        data: Some(json!({ "acct": accts })),
        raw: None,
        chunk: chunk_meta,
    })
}

fn changepackage(state: &mut SimState, p: &Params) -> Outcome {
    let (user, pkg) = (need(p, "user")?, need(p, "pkg")?);
    let package = state
        .packages
        .get(pkg)
        .cloned()
        .ok_or_else(|| format!("The package “{pkg}” does not exist."))?;
    let acct = account(state, user)?;
    let old = std::mem::take(&mut acct.plan);
    acct.apply_package(&package);
    Ok(Answer {
        raw: Some(format!(
            "Changing package of {user} from {old} to {pkg}...Done\n"
        )),
        ..Answer::default()
    })
}

fn passwd(state: &mut SimState, p: &Params) -> Outcome {
    let (user, password) = (need(p, "user")?, need(p, "password")?);
    if password.is_empty() {
        return Err(invalid_value("password", "the password cannot be empty"));
    }
    let acct = account(state, user)?;
    acct.set_password(password);
    acct.password_changes += 1;
    Ok(Answer {
        data: Some(json!({ "app": ["system", "ftp", "mail", "mysql"] })),
        ..Answer::default()
    })
}

fn showbw(state: &mut SimState, p: &Params, env: &Env) -> Outcome {
    let today = chrono::Utc::now();
    let month: u32 = get(p, "month")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| chrono::Datelike::month(&today));
    let year: i32 = get(p, "year")
        .and_then(|y| y.parse().ok())
        .unwrap_or_else(|| chrono::Datelike::year(&today));
    let filter = search_filter(p);
    let showres = get(p, "showres").filter(|r| !r.is_empty());
    let accts: Vec<&Account> = state
        .accounts
        .values()
        .filter(|a| filter(a) && showres.is_none_or(|r| a.owner == r))
        .collect();
    let totalused: u64 = accts.iter().map(|a| a.bw_used_bytes).sum();
    let rows: Vec<Value> = accts
        .iter()
        .map(|a| {
            json!({
                "user": a.user,
                "maindomain": a.domain,
                "owner": a.owner,
                "reseller": 0,
                "deleted": 0,
                // 0 = unlimited, as WHM reports it.
                "limit": a.bw_limit_bytes.unwrap_or(0),
                "totalbytes": a.bw_used_bytes,
                "bwusage": [{"domain": a.domain, "usage": a.bw_used_bytes, "deleted": 0}],
            })
        })
        .collect();
    Ok(Answer {
        data: Some(json!({
            "acct": rows, "month": month, "year": year,
            "reseller": showres.unwrap_or(env.whm_user), "totalused": totalused,
        })),
        ..Answer::default()
    })
}

fn listpkgs(state: &SimState) -> Answer {
    let limit = |v: Option<u64>| v.map_or(json!("unlimited"), |n| json!(n));
    let pkgs: Vec<Value> = state
        .packages
        .values()
        .map(|pkg| {
            json!({
                "name": pkg.name, "QUOTA": limit(pkg.disk_quota_mb), "BWLIMIT": limit(pkg.bw_limit_mb),
                "CGI": "y", "CPMOD": "jupiter", "DIGESTAUTH": "n", "FEATURELIST": "default",
                "HASSHELL": "n", "IP": "n", "LANG": "en",
                "MAXADDON": "unlimited", "MAXFTP": "unlimited", "MAXLST": "unlimited",
                "MAXPARK": "unlimited", "MAXPOP": "unlimited", "MAXSQL": "unlimited",
                "MAXSUB": "unlimited", "MAX_DEFER_FAIL_PERCENTAGE": "unlimited",
                "MAX_EMAILACCT_QUOTA": "unlimited", "MAX_EMAIL_PER_HOUR": "unlimited",
                "MAX_TEAM_USERS": 7, "_PACKAGE_EXTENSIONS": "",
            })
        })
        .collect();
    Answer {
        data: Some(json!({ "pkg": pkgs })),
        ..Answer::default()
    }
}

/// Sessions last as long as cPanel's idle limit (15 minutes).
const SESSION_SECS: i64 = 15 * 60;

fn create_user_session(state: &mut SimState, p: &Params, env: &Env) -> Outcome {
    let (user, service) = (need(p, "user")?, need(p, "service")?);
    if !state.accounts.contains_key(user) {
        return Err(not_found(user));
    }
    let digits: String = (0..10)
        .map(|_| char::from(b'0' + rand::random_range(0..10u8)))
        .collect();
    let security_token = format!("/cpsess{digits}");
    let session = format!(
        "{user}:{}:create_user_session,{}",
        random_token(16),
        random_token(32)
    );
    let expires = now() + SESSION_SECS;
    let encoded: String = url::form_urlencoded::byte_serialize(session.as_bytes()).collect();
    let url = format!("{}{security_token}/login/?session={encoded}", env.base_url);
    state.sessions.push(Session {
        user: user.into(),
        service: service.into(),
        session: session.clone(),
        security_token: security_token.clone(),
        expires,
    });
    Ok(Answer {
        data: Some(json!({
            "url": url, "session": session, "expires": expires,
            "service": service, "cp_security_token": security_token,
        })),
        ..Answer::default()
    })
}
