//! The reference adapter: a complete adapter for a generic JSON/REST hosting
//! panel ("refpanel"), using every host capability — `config` for the base
//! URL, `secrets` for the API token (sent as a placeholder, never seen here),
//! outbound `wasi:http`, and `log`. It is the model for new adapters and the
//! workload of the benchmarks.
//!
//! The refpanel API (served by the test suite's fake provider):
//!   GET    /v1/version                      -> {"version": "..."}
//!   POST   /v1/accounts                     {username, domain, plan, owner, password}
//!   GET    /v1/accounts/{u}                 -> account
//!   POST   /v1/accounts/{u}/suspend         {reason}
//!   POST   /v1/accounts/{u}/unsuspend
//!   DELETE /v1/accounts/{u}
//!   PUT    /v1/accounts/{u}/plan            {plan}
//!   PUT    /v1/accounts/{u}/password        {password}
//!   GET    /v1/accounts?cursor=&limit=      -> {items, next_cursor}
//!   GET    /v1/accounts/{u}/usage           -> {disk_bytes, bandwidth_bytes}
//!   POST   /v1/accounts/{u}/session         -> {url, expires_at}
//! Every request carries `Authorization: Bearer <api-token>` and
//! `Idempotency-Key`.
use panel1_sdk::http::{status_error, Request, Response};
use panel1_sdk::*;
use serde::Deserialize;
use serde_json::json;

struct Reference;

#[derive(Deserialize)]
struct Account {
    username: String,
    domain: Option<String>,
    plan: Option<String>,
    owner: Option<String>,
    state: String,
}

#[derive(Deserialize)]
struct AccountPage {
    items: Vec<Account>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    disk_bytes: f64,
    bandwidth_bytes: f64,
}

#[derive(Deserialize)]
struct Session {
    url: String,
    expires_at: Option<u64>,
}

#[derive(Deserialize)]
struct Version {
    version: String,
}

const CONFIG_SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["base_url"],"properties":{"base_url":{"type":"string","format":"uri","description":"e.g. https://panel.example.com"},"owner":{"type":"string","description":"reseller owning created accounts"}},"additionalProperties":false}"#;

fn base() -> Result<String, AdapterError> {
    Ok(config::require("base_url")?
        .trim_end_matches('/')
        .to_string())
}

/// A request to the panel with auth and idempotency headers.
fn call(method: &str, path: &str, ctx: &CallContext) -> Result<Request, AdapterError> {
    Request::new(method, format!("{}{path}", base()?))
        .header("idempotency-key", ctx.idempotency_key.clone())
        .header("accept", "application/json")
        .bearer_secret("api-token")
}

fn send(req: Request) -> Result<Response, AdapterError> {
    let (method, url) = (req.method.clone(), req.url.clone());
    let resp = req.send().inspect_err(|e| {
        log::warn(
            "request failed",
            &[
                ("method", &method),
                ("url", &url),
                ("error", &e.to_string()),
            ],
        );
    })?;
    log::debug(
        "response",
        &[
            ("method", &method),
            ("url", &url),
            ("status", &resp.status.to_string()),
        ],
    );
    Ok(resp)
}

fn state_of(s: &str) -> RemoteState {
    match s {
        "active" => RemoteState::Active,
        "suspended" => RemoteState::Suspended,
        "terminated" => RemoteState::Terminated,
        "pending" => RemoteState::Pending,
        _ => RemoteState::Unknown,
    }
}

fn to_status(a: Account) -> ServiceStatus {
    let mut st = ServiceStatus::new(a.username, state_of(&a.state));
    st.plan = a.plan;
    st.domain = a.domain;
    if let Some(owner) = a.owner {
        st.details.push(KeyValue::new("owner", owner));
    }
    st
}

fn username_of(spec: &ServiceSpec) -> Result<String, AdapterError> {
    spec.remote_id
        .clone()
        .or_else(|| spec.username.clone())
        .ok_or_else(|| invalid_input("service has neither a remote id nor a username"))
}

fn validate_username(u: &str) -> Result<(), AdapterError> {
    let ok = (1..=16).contains(&u.len())
        && u.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && u.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(invalid_input(format!(
            "username `{u}` must be 1-16 characters, lowercase letters and digits, starting with a letter"
        )))
    }
}

fn fetch(username: &str, ctx: &CallContext) -> Result<Option<Account>, AdapterError> {
    let resp = send(call("GET", &format!("/v1/accounts/{username}"), ctx)?)?;
    match resp.status {
        404 => Ok(None),
        s if (200..300).contains(&s) => Ok(Some(resp.json()?)),
        _ => Err(status_error(&resp)),
    }
}

fn expect_account(resp: Response) -> Result<ServiceStatus, AdapterError> {
    if !resp.is_success() {
        return Err(status_error(&resp));
    }
    Ok(to_status(resp.json()?))
}

impl Adapter for Reference {
    fn info() -> AdapterInfo {
        AdapterInfo {
            name: "reference".into(),
            version: "0.1.0".into(),
            description: "Reference adapter for the generic refpanel REST API".into(),
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
            config_schema: CONFIG_SCHEMA.into(),
            egress: vec!["{base_url}".into()],
            secrets: vec!["api-token".into()],
        }
    }

    fn test_connection(req: TestRequest) -> Result<ConnectionInfo, AdapterError> {
        let resp = send(call("GET", "/v1/version", &req.ctx)?)?;
        if !resp.is_success() {
            return Err(status_error(&resp));
        }
        let v: Version = resp.json()?;
        log::info("connected", &[("version", &v.version)]);
        Ok(ConnectionInfo {
            server_version: v.version,
            details: vec![],
        })
    }

    fn provision(req: ProvisionRequest) -> Result<ServiceStatus, AdapterError> {
        let spec = &req.service;
        let username = spec
            .username
            .clone()
            .ok_or_else(|| invalid_input("username is required"))?;
        validate_username(&username)?;
        let owner = config::get("owner");
        // Ensure semantics: a retry after a timeout finds the account created
        // by the first attempt and succeeds instead of creating a second one.
        if req.ctx.attempt > 1 {
            if let Some(existing) = fetch(&username, &req.ctx)? {
                return same_account(existing, spec, owner.as_deref());
            }
        }
        let password = match &req.password_secret {
            Some(name) => Some(secrets::placeholder(name)?),
            None => None,
        };
        let body = json!({
            "username": username,
            "domain": spec.domain,
            "plan": spec.plan,
            "owner": owner,
            "email": spec.contact_email,
            "password": password,
        });
        let resp = send(call("POST", "/v1/accounts", &req.ctx)?.json(&body))?;
        if resp.status == 409 {
            return match fetch(&username, &req.ctx)? {
                Some(existing) => same_account(existing, spec, owner.as_deref()),
                None => Err(status_error(&resp)),
            };
        }
        log::info("account created", &[("username", &username)]);
        expect_account(resp)
    }

    fn suspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let u = username_of(&req.service)?;
        let body = json!({ "reason": req.reason });
        expect_account(send(
            call("POST", &format!("/v1/accounts/{u}/suspend"), &req.ctx)?.json(&body),
        )?)
    }

    fn unsuspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let u = username_of(&req.service)?;
        expect_account(send(call(
            "POST",
            &format!("/v1/accounts/{u}/unsuspend"),
            &req.ctx,
        )?)?)
    }

    fn terminate(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let u = username_of(&req.service)?;
        let resp = send(call("DELETE", &format!("/v1/accounts/{u}"), &req.ctx)?)?;
        // Already gone is success: terminate is an "ensure".
        if resp.is_success() || resp.status == 404 {
            Ok(ServiceStatus::new(u, RemoteState::Terminated))
        } else {
            Err(status_error(&resp))
        }
    }

    fn status(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let u = username_of(&req.service)?;
        match fetch(&u, &req.ctx)? {
            Some(a) => Ok(to_status(a)),
            None => Ok(ServiceStatus::new(u, RemoteState::Terminated)),
        }
    }

    fn change_package(req: ChangePackageRequest) -> Result<ServiceStatus, AdapterError> {
        let u = username_of(&req.service)?;
        let body = json!({ "plan": req.plan });
        expect_account(send(
            call("PUT", &format!("/v1/accounts/{u}/plan"), &req.ctx)?.json(&body),
        )?)
    }

    fn change_password(req: ChangePasswordRequest) -> Result<ServiceStatus, AdapterError> {
        let u = username_of(&req.service)?;
        let body = json!({ "password": secrets::placeholder(&req.password_secret)? });
        expect_account(send(
            call("PUT", &format!("/v1/accounts/{u}/password"), &req.ctx)?.json(&body),
        )?)
    }

    fn list_services(req: ListRequest) -> Result<ServicePage, AdapterError> {
        let mut path = format!("/v1/accounts?limit={}", req.limit.clamp(1, 1000));
        if let Some(c) = &req.cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let resp = send(call("GET", &path, &req.ctx)?)?;
        if !resp.is_success() {
            return Err(status_error(&resp));
        }
        let page: AccountPage = resp.json()?;
        Ok(ServicePage {
            items: page.items.into_iter().map(to_status).collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn usage(req: ServiceRequest) -> Result<UsageReport, AdapterError> {
        let u = username_of(&req.service)?;
        let resp = send(call("GET", &format!("/v1/accounts/{u}/usage"), &req.ctx)?)?;
        if !resp.is_success() {
            return Err(status_error(&resp));
        }
        let usage: Usage = resp.json()?;
        Ok(UsageReport {
            remote_id: u,
            metrics: vec![
                Metric {
                    name: "disk_used".into(),
                    value: usage.disk_bytes,
                    unit: "bytes".into(),
                },
                Metric {
                    name: "bandwidth_used".into(),
                    value: usage.bandwidth_bytes,
                    unit: "bytes".into(),
                },
            ],
        })
    }

    fn login_url(req: ServiceRequest) -> Result<LoginLink, AdapterError> {
        let u = username_of(&req.service)?;
        let resp = send(call(
            "POST",
            &format!("/v1/accounts/{u}/session"),
            &req.ctx,
        )?)?;
        if !resp.is_success() {
            return Err(status_error(&resp));
        }
        let s: Session = resp.json()?;
        Ok(LoginLink {
            url: s.url,
            expires_at: s.expires_at,
        })
    }
}

/// An existing account is ours when domain, plan and owner match the request.
fn same_account(
    a: Account,
    spec: &ServiceSpec,
    owner: Option<&str>,
) -> Result<ServiceStatus, AdapterError> {
    let same = a.domain == spec.domain && a.plan == spec.plan && a.owner.as_deref() == owner;
    if same {
        log::info(
            "account already exists with the same owner and plan",
            &[("username", &a.username)],
        );
        Ok(to_status(a))
    } else {
        Err(conflict(format!(
            "account `{}` exists with a different domain, plan or owner",
            a.username
        )))
    }
}

export_adapter!(Reference);
