//! The cPanel/WHM adapter: cPanel accounts managed through WHM API 1
//! (`https://{host}:{port}/json-api/<function>?api.version=1`), authenticated
//! with a WHM API token sent as `Authorization: whm <whm_user>:<token>`.
//!
//! The token is the `whm-token` secret: the adapter only ever holds its
//! placeholder, and the host substitutes the value when the request goes to
//! the destination the secret is bound to.
//!
//! TLS is enforced by the host, not here: every call is `https`, and there
//! is no "verify off". A WHM with a self-signed certificate is reached by
//! pinning that certificate on the server's egress rule, e.g.
//! `https://whm.example.com:2087/json-api/ sha256:<hex>`.
//!
//! Every operation is an "ensure": provision finds an account an earlier
//! attempt created, suspend/unsuspend/terminate succeed when already done.
//! Passwords go only in POST form bodies (the host logs URLs), never in a
//! log line, an error or a result.
//!
//! Built against world 0.2.0 (`panel1-sdk-v2`): backups of an account with
//! WHM's pkgacct and cpmove restores are in [`backups`]; moving an account
//! to another WHM with WHM's transfer sessions is in [`transfer`].
use account::Account;
use form::Params;
use panel1_sdk::*;
use serde_json::Value;
use units::Disk;
use whm::{Answer, Method, Whm};

mod account;
mod backups;
mod form;
mod input;
mod password;
mod settings;
mod transfer;
mod units;
mod username;
mod whm;

struct Cpanel;

const DEFAULT_SUSPEND_REASON: &str = "Suspended by Panel1";

/// Where the initial password comes from.
enum Password {
    /// `password-secret` of the request: a placeholder, substituted by the host.
    Secret(String),
    /// The service's `password` param, or one generated here.
    Plain(String),
}

impl Cpanel {
    fn password(req: &ProvisionRequest) -> Result<Password, AdapterError> {
        if let Some(name) = input::field(&req.password_secret) {
            return Ok(Password::Secret(secrets::placeholder(name)?));
        }
        if let Some(p) = input::param(&req.service, "password") {
            return Ok(Password::Plain(p.to_string()));
        }
        log::info(
            "no password given: a random one is generated for createacct",
            &[],
        );
        Ok(Password::Plain(password::generate()))
    }
}

/// The account named `user`, or `None` when it does not exist.
///
/// The one rule for absence: an account missing from a successful
/// `accountsummary` listing (result 1, `user` not in `data.acct`) means
/// exactly what WHM's "does not exist" means. Callers decide only what
/// absence means for their operation: `status` reports `terminated`,
/// provision creates, usage answers `not-found` ([`gone`]), and
/// change-package/change-password keep their applied change ([`after_change`]).
fn lookup(whm: &Whm, user: &str) -> Result<Option<Account>, AdapterError> {
    match whm.call(
        Method::Get,
        "accountsummary",
        Params::new().text("user", user),
    )? {
        Answer::Ok(doc) => Ok(account::list(&doc).into_iter().find(|a| a.user == user)),
        Answer::Failed(reason) if whm::is_missing(&reason) => Ok(None),
        Answer::Failed(reason) => Err(whm::failure("accountsummary", &reason)),
    }
}

/// The error of an operation that needs an account which does not exist.
fn gone(user: &str) -> AdapterError {
    not_found(format!("cPanel account `{user}` does not exist"))
}

/// The status after a change WHM accepted. The change stands whatever the
/// follow-up read says: when the read fails or does not list the account,
/// `known` (what the change itself established) is returned and the reason
/// is logged, never an error that would make a retry repeat the change.
fn after_change(whm: &Whm, user: &str, known: ServiceStatus) -> ServiceStatus {
    let why = match lookup(whm, user) {
        Ok(Some(a)) => return a.to_status(),
        Ok(None) => "accountsummary does not list the account".to_string(),
        Err(e) => whm::message(&e).to_string(),
    };
    log::warn(
        "change applied, but the account could not be read back: reporting what is known",
        &[("username", user), ("reason", &why)],
    );
    known
}

/// An existing account is ours when it is what the request asks for.
fn adopt(
    existing: Account,
    domain: &str,
    plan: Option<&str>,
    owner: &str,
) -> Result<ServiceStatus, AdapterError> {
    match existing.matches(domain, plan, owner) {
        Ok(()) => {
            log::info(
                "account found with the same domain, plan and owner: not created again",
                &[("username", &existing.user)],
            );
            Ok(existing.to_status())
        }
        Err(diff) => Err(conflict(format!(
            "cPanel account `{}` already exists but {diff}: it is not this service's account",
            existing.user
        ))),
    }
}

/// Hide a plain password should WHM ever echo it in a reason.
fn scrub(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "[password]"),
        _ => text.to_string(),
    }
}

/// A WHM figure (number or numeric string) as `f64`.
fn float(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `user` as an exact-match regular expression (showbw's `search` is a PCRE).
fn exact_regex(user: &str) -> String {
    let mut re = String::from("^");
    for c in user.chars() {
        if !c.is_ascii_alphanumeric() {
            re.push('\\');
        }
        re.push(c);
    }
    re.push('$');
    re
}

fn metric(name: &str, value: f64) -> Metric {
    Metric {
        name: name.into(),
        value,
        unit: "bytes".into(),
    }
}

impl Adapter for Cpanel {
    fn info() -> AdapterInfo {
        AdapterInfo {
            description: "cPanel/WHM accounts through WHM API 1 (token auth, HTTPS only)".into(),
            operations: vec![
                Operation::TestConnection,
                Operation::Provision,
                Operation::Suspend,
                Operation::Unsuspend,
                Operation::Terminate,
                Operation::Status,
                Operation::ChangePackage,
                Operation::ChangePassword,
                Operation::ListServices,
                Operation::Usage,
                Operation::LoginUrl,
            ],
            config_schema: settings::SCHEMA.into(),
            egress: vec!["https://{host}:{port}/json-api/".into()],
            secrets: vec![whm::TOKEN_SECRET.into()],
            ..AdapterInfo::named("cpanel", env!("CARGO_PKG_VERSION"))
        }
    }

    fn test_connection(req: TestRequest) -> Result<ConnectionInfo, AdapterError> {
        let whm = Whm::connect(&req.ctx)?;
        let doc = whm.ok(Method::Get, "version", Params::new())?;
        let version = doc
            .pointer("/data/version")
            .and_then(Value::as_str)
            .ok_or_else(|| permanent("WHM version: the answer has no data.version"))?;
        Ok(ConnectionInfo {
            server_version: format!("WHM {version}"),
            details: vec![
                KeyValue::new("api", "WHM API 1"),
                KeyValue::new("whm_user", whm.user()),
            ],
        })
    }

    fn provision(req: ProvisionRequest) -> Result<ServiceStatus, AdapterError> {
        let spec = &req.service;
        // Checked before any call: a bad request never reaches WHM.
        let user = input::field(&spec.username).unwrap_or_default();
        username::validate(user).map_err(invalid_input)?;
        let domain =
            input::domain(input::field(&spec.domain).unwrap_or_default()).map_err(invalid_input)?;
        let plan = input::field(&spec.plan);
        let email = input::param(spec, "contactemail")
            .or(input::field(&spec.contact_email))
            .map(|e| input::email(e).map_err(|why| format!("contact {why}")))
            .transpose()
            .map_err(invalid_input)?;

        let whm = Whm::connect(&req.ctx)?;
        // Ensure semantics: a retry finds what an earlier attempt created.
        if let Some(existing) = lookup(&whm, user)? {
            return adopt(existing, &domain, plan, whm.user());
        }
        let params = Params::new()
            .text("username", user)
            .text("domain", &domain)
            .opt("plan", plan)
            .opt("contactemail", email.as_deref())
            .text("showpass", "n");
        let (params, plain) = match Cpanel::password(&req)? {
            Password::Secret(placeholder) => (params.placeholder("password", placeholder), None),
            Password::Plain(p) => (params.text("password", p.as_str()), Some(p)),
        };
        match whm.call(Method::Post, "createacct", params)? {
            Answer::Ok(doc) => {
                log::info(
                    "account created",
                    &[("username", user), ("domain", &domain)],
                );
                let package = doc.pointer("/data/package").and_then(Value::as_str);
                let mut st = ServiceStatus::new(user, RemoteState::Active);
                st.plan = package.or(plan).map(str::to_string);
                st.domain = Some(domain);
                st.details.push(KeyValue::new("owner", whm.user()));
                Ok(st)
            }
            Answer::Failed(reason) => {
                let reason = scrub(&reason, plain.as_deref());
                if says(&reason, "already exists") {
                    // Lost a race with a concurrent attempt: judge what won.
                    if let Some(existing) = lookup(&whm, user)? {
                        return adopt(existing, &domain, plan, whm.user());
                    }
                }
                Err(whm::failure("createacct", &reason))
            }
        }
    }

    fn suspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let user = input::account_of(&req.service)?;
        let reason = Some(req.reason.trim())
            .filter(|r| !r.is_empty())
            .or_else(|| input::param(&req.service, "reason"))
            .unwrap_or(DEFAULT_SUSPEND_REASON);
        let whm = Whm::connect(&req.ctx)?;
        let params = Params::new().text("user", &user).text("reason", reason);
        match whm.call(Method::Get, "suspendacct", params)? {
            Answer::Ok(_) => log::info("account suspended", &[("username", &user)]),
            Answer::Failed(r) if says(&r, "is already suspended") => {
                log::info("account was already suspended", &[("username", &user)])
            }
            Answer::Failed(r) => return Err(whm::failure("suspendacct", &r)),
        }
        Ok(ServiceStatus::new(user, RemoteState::Suspended))
    }

    fn unsuspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let user = input::account_of(&req.service)?;
        let whm = Whm::connect(&req.ctx)?;
        match whm.call(
            Method::Get,
            "unsuspendacct",
            Params::new().text("user", &user),
        )? {
            Answer::Ok(_) => log::info("account unsuspended", &[("username", &user)]),
            Answer::Failed(r) if says(&r, "is not suspended") => {
                log::info("account was not suspended", &[("username", &user)])
            }
            Answer::Failed(r) => return Err(whm::failure("unsuspendacct", &r)),
        }
        Ok(ServiceStatus::new(user, RemoteState::Active))
    }

    fn terminate(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let user = input::account_of(&req.service)?;
        let whm = Whm::connect(&req.ctx)?;
        match whm.call(
            Method::Get,
            "removeacct",
            Params::new().text("username", &user),
        )? {
            Answer::Ok(_) => log::info("account removed", &[("username", &user)]),
            Answer::Failed(r) if whm::is_missing(&r) => {
                log::info("account was already gone", &[("username", &user)])
            }
            Answer::Failed(r) => return Err(whm::failure("removeacct", &r)),
        }
        Ok(ServiceStatus::new(user, RemoteState::Terminated))
    }

    fn status(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let user = input::account_of(&req.service)?;
        let whm = Whm::connect(&req.ctx)?;
        // An account that does not exist is what status calls terminated.
        Ok(match lookup(&whm, &user)? {
            Some(a) => a.to_status(),
            None => ServiceStatus::new(user, RemoteState::Terminated),
        })
    }

    fn change_package(req: ChangePackageRequest) -> Result<ServiceStatus, AdapterError> {
        let user = input::account_of(&req.service)?;
        let plan = Some(req.plan.trim())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid_input("the new plan (WHM package) is required"))?;
        let whm = Whm::connect(&req.ctx)?;
        let params = Params::new().text("user", &user).text("pkg", plan);
        whm.ok(Method::Get, "changepackage", params)?;
        log::info("package changed", &[("username", &user), ("plan", plan)]);
        let mut known = ServiceStatus::new(user.as_str(), RemoteState::Active);
        known.plan = Some(plan.to_string());
        Ok(after_change(&whm, &user, known))
    }

    fn change_password(req: ChangePasswordRequest) -> Result<ServiceStatus, AdapterError> {
        let user = input::account_of(&req.service)?;
        let password = secrets::placeholder(&req.password_secret)?;
        let whm = Whm::connect(&req.ctx)?;
        let params = Params::new()
            .text("user", &user)
            .placeholder("password", password);
        whm.ok(Method::Post, "passwd", params)?;
        log::info("password changed", &[("username", &user)]);
        let known = ServiceStatus::new(user.as_str(), RemoteState::Active);
        Ok(after_change(&whm, &user, known))
    }

    fn list_services(req: ListRequest) -> Result<ServicePage, AdapterError> {
        let start = paging::start_of(req.cursor.as_deref()).map_err(invalid_input)?;
        let size = paging::size_of(req.limit);
        let whm = Whm::connect(&req.ctx)?;
        let params = Params::new()
            .text("api.chunk.enable", "1")
            .text("api.chunk.start", start.to_string())
            .text("api.chunk.size", size.to_string());
        let doc = whm.ok(Method::Get, "listaccts", params)?;
        let mut accounts = account::list(&doc);
        let total = match doc.pointer("/metadata/chunk").filter(|c| c.is_object()) {
            Some(chunk) => whm::number(chunk.get("records")).map(|n| n.max(0) as u64),
            None => {
                // A WHM that ignored api.chunk.*: page the whole list here.
                let total = accounts.len() as u64;
                let (from, to) = paging::window(start, size, accounts.len());
                accounts = accounts.drain(from..to).collect();
                Some(total)
            }
        };
        Ok(ServicePage {
            next_cursor: paging::next_cursor(start, size, accounts.len(), total),
            items: accounts.iter().map(Account::to_status).collect(),
        })
    }

    fn usage(req: ServiceRequest) -> Result<UsageReport, AdapterError> {
        let user = input::account_of(&req.service)?;
        let whm = Whm::connect(&req.ctx)?;
        let acct = lookup(&whm, &user)?.ok_or_else(|| gone(&user))?;
        let params = Params::new()
            .text("searchtype", "user")
            .text("search", exact_regex(&user));
        let bw = whm.ok(Method::Get, "showbw", params)?;
        let entry = bw
            .pointer("/data/acct")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|e| e.get("user").and_then(Value::as_str) == Some(&user))
            });

        let mut metrics = Vec::new();
        let disk = |v: &Option<String>| v.as_deref().and_then(units::parse_disk);
        if let Some(Disk::Bytes(b)) = disk(&acct.disk_used) {
            metrics.push(metric("disk_used", b));
        }
        if let Some(Disk::Bytes(b)) = disk(&acct.disk_limit) {
            metrics.push(metric("disk_limit", b));
        }
        // No showbw entry yet: nothing was transferred this month.
        let used = entry
            .and_then(|e| float(e.get("totalbytes")))
            .unwrap_or(0.0);
        metrics.push(metric("bandwidth_used", used));
        // WHM reports an unlimited bandwidth allowance as 0.
        if let Some(limit) = entry
            .and_then(|e| float(e.get("limit")))
            .filter(|l| *l > 0.0)
        {
            metrics.push(metric("bandwidth_limit", limit));
        }
        Ok(UsageReport {
            remote_id: user,
            metrics,
        })
    }

    fn backup_operations() -> Vec<BackupOperation> {
        backups::OPERATIONS.to_vec()
    }

    fn create_backup(req: BackupRequest) -> Result<BackupInfo, AdapterError> {
        backups::create(req)
    }

    fn backup_status(req: BackupRefRequest) -> Result<BackupInfo, AdapterError> {
        backups::status(req)
    }

    fn list_backups(req: BackupListRequest) -> Result<Vec<BackupInfo>, AdapterError> {
        backups::list(req)
    }

    fn restore_backup(req: BackupRefRequest) -> Result<ServiceStatus, AdapterError> {
        backups::restore(req)
    }

    fn export_service(req: ExportRequest) -> Result<TransferPackage, AdapterError> {
        transfer::export(req)
    }

    fn import_service(req: ImportRequest) -> Result<ServiceStatus, AdapterError> {
        transfer::import(req)
    }

    fn login_url(req: ServiceRequest) -> Result<LoginLink, AdapterError> {
        let user = input::account_of(&req.service)?;
        let whm = Whm::connect(&req.ctx)?;
        let params = Params::new().text("user", &user).text("service", "cpaneld");
        let doc = whm.ok(Method::Get, "create_user_session", params)?;
        let url = doc
            .pointer("/data/url")
            .and_then(Value::as_str)
            .ok_or_else(|| permanent("WHM create_user_session: the answer has no data.url"))?;
        Ok(LoginLink {
            url: url.to_string(),
            expires_at: whm::number(doc.pointer("/data/expires"))
                .and_then(|n| u64::try_from(n).ok()),
        })
    }
}

export_adapter!(Cpanel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(exact_regex("alice1"), "^alice1$");
        assert_eq!(exact_regex("a.b"), "^a\\.b$");
        assert_eq!(
            scrub("bad password Xy1!", Some("Xy1!")),
            "bad password [password]"
        );
        assert_eq!(scrub("no secret", None), "no secret");
        assert_eq!(float(Some(&serde_json::json!("352"))), Some(352.0));
        assert_eq!(float(Some(&serde_json::json!(0))), Some(0.0));
    }
}
