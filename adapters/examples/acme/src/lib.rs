//! The SDK README's example adapter, built so the README stays true.
use panel1_sdk::http::{status_error, Request};
use panel1_sdk::*;
use serde::Deserialize;

struct Acme;

#[derive(Deserialize)]
struct Account {
    username: String,
    state: String,
}

fn api(method: &str, path: &str, ctx: &CallContext) -> Result<Request, AdapterError> {
    let base = config::require("base_url")?;
    Request::new(method, format!("{base}{path}"))
        .header("idempotency-key", ctx.idempotency_key.clone())
        .bearer_secret("api-token") // placeholder; the host injects the token
}

impl Adapter for Acme {
    fn info() -> AdapterInfo {
        AdapterInfo {
            description: "ACME hosting panel".into(),
            operations: vec![Operation::Provision, Operation::Suspend],
            config_schema: r#"{"type":"object","required":["base_url"]}"#.into(),
            egress: vec!["{base_url}".into()],
            secrets: vec!["api-token".into()],
            ..AdapterInfo::named("acme", "0.1.0")
        }
    }

    fn provision(req: ProvisionRequest) -> Result<ServiceStatus, AdapterError> {
        let user = req
            .service
            .username
            .clone()
            .ok_or_else(|| invalid_input("username is required"))?;
        // Ensure semantics: a retry finds the account the first attempt made.
        let existing = api("GET", &format!("/accounts/{user}"), &req.ctx)?.send()?;
        if existing.status == 200 {
            let a: Account = existing.json()?;
            return Ok(ServiceStatus::new(a.username, RemoteState::Active));
        }
        let body = serde_json::json!({ "username": user, "plan": req.service.plan });
        let resp = api("POST", "/accounts", &req.ctx)?.json(&body).send()?;
        if !resp.is_success() {
            return Err(status_error(&resp));
        }
        log::info("account created", &[("username", &user)]);
        Ok(ServiceStatus::new(user, RemoteState::Active))
    }

    fn suspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let user = req
            .service
            .remote_id
            .clone()
            .ok_or_else(|| invalid_input("no remote id"))?;
        let resp = api("POST", &format!("/accounts/{user}/suspend"), &req.ctx)?.send()?;
        if !resp.is_success() {
            return Err(status_error(&resp));
        }
        let a: Account = resp.json()?;
        let state = if a.state == "suspended" {
            RemoteState::Suspended
        } else {
            RemoteState::Unknown
        };
        Ok(ServiceStatus::new(a.username, state))
    }
}

export_adapter!(Acme);
