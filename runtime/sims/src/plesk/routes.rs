//! The Plesk REST API v2 operations the simulator models, each answering
//! `(status, body)` in the shapes the description defines. Requests are
//! already routed and checked against the description.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cli;
use super::state::{digest, guid, today, Client, Domain, PleskState};

/// Server-wide facts the operations need.
pub(crate) struct Env<'a> {
    pub base_url: &'a str,
    pub version: &'a str,
    pub hostname: &'a str,
}

pub(crate) type Answer = (u16, Value);

/// Plesk's error body.
pub(crate) fn error(status: u16, message: impl Into<String>) -> Answer {
    (status, json!({"code": status, "message": message.into()}))
}

fn success() -> Answer {
    (200, json!({"status": "success"}))
}

pub(crate) fn client_json(c: &Client) -> Value {
    json!({
        "id": c.id, "created": c.created, "name": c.name, "company": c.company,
        "login": c.login, "status": c.status, "email": c.email, "locale": c.locale,
        "guid": c.guid, "owner_login": c.owner_login, "external_id": c.external_id,
        "description": c.description, "type": c.kind,
    })
}

fn domain_json(d: &Domain) -> Value {
    json!({
        "id": d.id, "name": d.name, "ascii_name": d.name, "hosting_type": d.hosting_type,
        "base_domain_id": 0, "www_root": format!("/var/www/vhosts/{}/httpdocs", d.name),
        "guid": d.guid, "created": d.created, "aliases": [],
    })
}

fn id_of(params: &BTreeMap<String, String>) -> i64 {
    params.get("id").and_then(|i| i.parse().ok()).unwrap_or(-1)
}

fn text<'v>(body: &'v Value, pointer: &str) -> Option<&'v str> {
    body.pointer(pointer).and_then(Value::as_str)
}

pub(crate) fn call(
    key: &str,
    params: &BTreeMap<String, String>,
    query: &BTreeMap<String, String>,
    body: &Value,
    state: &mut PleskState,
    env: &Env,
) -> Answer {
    let id = id_of(params);
    match key {
        "GET /server" => (
            200,
            json!({
                "platform": "Unix", "hostname": env.hostname,
                "guid": "6c0d3f5e-6b2a-4a31-9d55-0d9c1f1e2a10",
                "panel_version": env.version, "panel_revision": "0000000000000000000000000000000000000000",
                "panel_build_date": "2025-09-01", "panel_update_version": "1",
                "extension_version": "2.0.0", "extension_release": "1",
            }),
        ),
        "GET /clients" => (
            200,
            Value::Array(state.clients.values().map(client_json).collect()),
        ),
        "POST /clients" => create_client(state, body),
        "GET /clients/{id}" => match state.clients.get(&id) {
            Some(c) => (200, client_json(c)),
            None => client_missing(id),
        },
        "PUT /clients/{id}" => update_client(state, id, body),
        "DELETE /clients/{id}" => match state.clients.remove(&id) {
            // Deleting a customer deletes its subscriptions, as in Plesk.
            Some(c) => {
                state.domains.retain(|_, d| d.client_id != id);
                (200, json!({"id": c.id, "guid": c.guid}))
            }
            None => client_missing(id),
        },
        "GET /clients/{id}/domains" => match state.clients.get(&id) {
            Some(_) => (
                200,
                Value::Array(state.domains_of(id).into_iter().map(domain_json).collect()),
            ),
            None => client_missing(id),
        },
        "GET /clients/{id}/statistics" => match state.clients.get(&id) {
            Some(c) => (
                200,
                json!({
                    "active_domains": state.domains_of(id).iter().filter(|d| d.status == "active").count(),
                    "subdomains": 0, "disk_space": c.disk_space, "email_postboxes": 0,
                    "email_redirects": 0, "email_response_messages": 0, "mailing_lists": 0,
                    "databases": 0, "traffic": c.traffic, "traffic_prevday": 0,
                }),
            ),
            None => client_missing(id),
        },
        "PUT /clients/{id}/activate" | "PUT /clients/{id}/suspend" => {
            match state.clients.get_mut(&id) {
                Some(c) => {
                    c.status = if key.ends_with("activate") { 0 } else { 16 };
                    success()
                }
                None => client_missing(id),
            }
        }
        "GET /domains" => {
            let wanted = query
                .get("name")
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase());
            let list = state
                .domains
                .values()
                .filter(|d| wanted.as_ref().is_none_or(|n| &d.name == n))
                .map(domain_json)
                .collect();
            (200, Value::Array(list))
        }
        "POST /domains" => create_domain(state, body),
        "GET /domains/{id}" => match state.domains.get(&id) {
            Some(d) => (200, domain_json(d)),
            None => domain_missing(id),
        },
        "DELETE /domains/{id}" => match state.domains.remove(&id) {
            Some(d) => (200, json!({"id": d.id, "guid": d.guid})),
            None => domain_missing(id),
        },
        "GET /domains/{id}/client" => {
            match state
                .domains
                .get(&id)
                .and_then(|d| state.clients.get(&d.client_id))
            {
                Some(c) => (200, client_json(c)),
                None => domain_missing(id),
            }
        }
        "GET /domains/{id}/status" => match state.domains.get(&id) {
            Some(d) => (200, json!({"status": d.status})),
            None => domain_missing(id),
        },
        "PUT /domains/{id}/status" => match state.domains.get_mut(&id) {
            Some(d) => {
                d.status = text(body, "/status").unwrap_or("active").to_owned();
                (200, json!({"status": d.status}))
            }
            None => domain_missing(id),
        },
        "GET /cli/commands" => (200, json!(cli::COMMANDS)),
        "POST /cli/{id}/call" => cli::call(
            params.get("id").map(String::as_str).unwrap_or(""),
            body,
            state,
            env,
        ),
        other => error(501, format!("the simulator does not model {other}")),
    }
}

fn client_missing(id: i64) -> Answer {
    error(404, format!("Client with ID {id} is not found"))
}

fn domain_missing(id: i64) -> Answer {
    error(404, format!("Domain with ID {id} is not found"))
}

/// Plesk's password policy, loosely: 5 characters or more, not the login.
fn weak_password(password: &str, login: &str) -> Option<String> {
    if password.chars().count() < 5 {
        return Some("The password should contain at least 5 characters.".into());
    }
    if password.contains(login) && !login.is_empty() {
        return Some("The password should not contain the user name.".into());
    }
    None
}

fn create_client(state: &mut PleskState, body: &Value) -> Answer {
    let login = text(body, "/login").unwrap_or("").trim();
    let password = text(body, "/password").unwrap_or("");
    if login.is_empty() || login.len() > 60 {
        return error(400, "The login name should be 1 to 60 characters long.");
    }
    if state.client_by_login(login).is_some() {
        return error(
            400,
            format!("Account with login name \"{login}\" already exists."),
        );
    }
    if let Some(why) = weak_password(password, login) {
        return error(400, why);
    }
    let mut client = Client::new(login, text(body, "/email").unwrap_or(""));
    client.id = state.allocate_id();
    client.name = text(body, "/name").unwrap_or(login).to_owned();
    client.company = text(body, "/company").unwrap_or("").to_owned();
    client.kind = text(body, "/type").unwrap_or("customer").to_owned();
    client.external_id = text(body, "/external_id").unwrap_or("").to_owned();
    client.description = text(body, "/description").unwrap_or("").to_owned();
    client.password_sha256 = digest(password);
    let answer = (201, json!({"id": client.id, "guid": client.guid}));
    state.clients.insert(client.id, client);
    answer
}

fn update_client(state: &mut PleskState, id: i64, body: &Value) -> Answer {
    let Some(client) = state.clients.get(&id) else {
        return client_missing(id);
    };
    if let Some(password) = text(body, "/password") {
        if let Some(why) = weak_password(password, &client.login) {
            return error(400, why);
        }
    }
    let client = state.clients.get_mut(&id).expect("checked above");
    if let Some(p) = text(body, "/password") {
        client.password_sha256 = digest(p);
    }
    for (field, slot) in [
        ("/name", &mut client.name),
        ("/email", &mut client.email),
        ("/company", &mut client.company),
        ("/description", &mut client.description),
    ] {
        if let Some(v) = text(body, field) {
            *slot = v.to_owned();
        }
    }
    if let Some(s) = body.get("status").and_then(Value::as_i64) {
        client.status = s;
    }
    (200, json!({"id": client.id, "guid": client.guid}))
}

/// A system user name as Plesk accepts it.
fn valid_system_user(login: &str) -> bool {
    let mut chars = login.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && login.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

fn create_domain(state: &mut PleskState, body: &Value) -> Answer {
    let name = text(body, "/name")
        .unwrap_or("")
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if name.is_empty() || !name.contains('.') {
        return error(400, "The domain name is not valid.");
    }
    if state.domain_by_name(&name).is_some() {
        return error(400, format!("Domain \"{name}\" already exists."));
    }
    let owner = body.get("owner_client").unwrap_or(&Value::Null);
    let client = owner
        .get("id")
        .and_then(Value::as_i64)
        .and_then(|i| state.clients.get(&i))
        .or_else(|| text(owner, "/login").and_then(|l| state.client_by_login(l)));
    let Some(client_id) = client.map(|c| c.id) else {
        return error(400, "The owner client is not found.");
    };
    let plan = text(body, "/plan/name");
    if let Some(p) = plan {
        if !state.plans.contains_key(p) {
            return error(400, format!("Service plan \"{p}\" does not exist."));
        }
    }
    let hosting_type = text(body, "/hosting_type").unwrap_or("virtual");
    let ftp_login = text(body, "/hosting_settings/ftp_login").unwrap_or("");
    let ftp_password = text(body, "/hosting_settings/ftp_password").unwrap_or("");
    if hosting_type == "virtual" {
        if !valid_system_user(ftp_login) {
            return error(
                400,
                format!("The system user name \"{ftp_login}\" is not valid."),
            );
        }
        if state.system_user_taken(ftp_login) {
            return error(
                400,
                format!("The system user \"{ftp_login}\" already exists."),
            );
        }
        if let Some(why) = weak_password(ftp_password, ftp_login) {
            return error(400, why);
        }
    }
    let domain = Domain {
        id: state.allocate_id(),
        name,
        hosting_type: hosting_type.to_owned(),
        client_id,
        plan: plan.map(str::to_owned),
        status: "active".into(),
        ftp_login: ftp_login.to_owned(),
        ftp_password_sha256: digest(ftp_password),
        created: today(),
        guid: guid(),
    };
    let answer = (201, json!({"id": domain.id, "guid": domain.guid}));
    state.domains.insert(domain.id, domain);
    answer
}
