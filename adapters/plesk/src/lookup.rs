//! Reading Plesk's state: customers, subscriptions and their status, and
//! the rules that tie a Panel1 service to them (login, remote id).
use crate::api::{self, Method, Plesk};
use panel1_sdk::input::{self, field};
use panel1_sdk::*;
use serde_json::{json, Value};

/// A customer as `GET /clients` lists it.
pub struct Customer {
    pub id: i64,
    pub login: String,
    /// 0 is active; 16 disabled by the administrator.
    pub status: i64,
    doc: Value,
}

impl Customer {
    pub fn from(what: &str, doc: &Value) -> Result<Customer, AdapterError> {
        Ok(Customer {
            id: api::field(what, doc, "id")?.as_i64().unwrap_or(-1),
            login: api::field(what, doc, "login")?
                .as_str()
                .unwrap_or("")
                .to_string(),
            status: doc.get("status").and_then(Value::as_i64).unwrap_or(0),
            doc: doc.clone(),
        })
    }

    /// The owner reference `POST /domains` takes (every field the
    /// description requires).
    pub fn reference(&self) -> Value {
        let text = |k: &str| {
            self.doc
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        json!({"id": self.id, "login": self.login, "guid": text("guid"), "external_id": text("external_id")})
    }
}

/// A customer login that also works as the subscription's system user:
/// a lowercase letter first, then lowercase letters, digits, `.`, `_`, `-`;
/// at most 32 characters.
pub fn check_login(login: &str) -> Result<(), String> {
    let mut chars = login.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if login.is_empty() {
        return Err("username is required: it is the Plesk customer's login and the subscription's system user".into());
    }
    if !first_ok || !rest_ok || login.len() > 32 {
        return Err(format!(
            "username `{}` is not valid for Plesk: 1-32 characters, a lowercase letter first, then lowercase letters, digits, `.`, `_` or `-`",
            login.escape_debug()
        ));
    }
    Ok(())
}

/// The subscription of an existing service: its remote id, else its domain.
pub fn subscription_of(spec: &ServiceSpec) -> Result<String, AdapterError> {
    let raw = field(&spec.remote_id)
        .or_else(|| field(&spec.domain))
        .ok_or_else(|| invalid_input("service has neither a remote id nor a domain"))?;
    input::domain(raw).map_err(invalid_input)
}

/// The subscription named `name`: its id, or `None`.
pub fn find_domain(plesk: &Plesk, name: &str) -> Result<Option<i64>, AdapterError> {
    let doc = plesk.ok(Method::Get, &format!("/domains?name={name}"), None)?;
    let found = api::list("GET /domains", &doc)?
        .iter()
        .find(|d| d.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|d| d.get("id").and_then(Value::as_i64));
    Ok(found)
}

/// The subscription that must exist for this operation.
pub fn need_domain(plesk: &Plesk, name: &str) -> Result<i64, AdapterError> {
    find_domain(plesk, name)?
        .ok_or_else(|| not_found(format!("Plesk subscription `{name}` does not exist")))
}

/// The customer owning subscription `id`.
pub fn owner_of(plesk: &Plesk, id: i64) -> Result<Customer, AdapterError> {
    let what = "GET /domains/{id}/client";
    let doc = plesk.ok(Method::Get, &format!("/domains/{id}/client"), None)?;
    Customer::from(what, &doc)
}

/// The customer with `login`, or `None`.
pub fn find_customer(plesk: &Plesk, login: &str) -> Result<Option<Customer>, AdapterError> {
    let doc = plesk.ok(Method::Get, "/clients", None)?;
    api::list("GET /clients", &doc)?
        .iter()
        .find(|c| c.get("login").and_then(Value::as_str) == Some(login))
        .map(|c| Customer::from("GET /clients", c))
        .transpose()
}

/// How many subscriptions customer `id` has besides `except`.
pub fn other_subscriptions(
    plesk: &Plesk,
    customer: i64,
    except: Option<i64>,
) -> Result<Vec<i64>, AdapterError> {
    let doc = plesk.ok(Method::Get, &format!("/clients/{customer}/domains"), None)?;
    Ok(api::list("GET /clients/{id}/domains", &doc)?
        .iter()
        .filter_map(|d| d.get("id").and_then(Value::as_i64))
        .filter(|id| Some(*id) != except)
        .collect())
}

/// A subscription's status word.
pub fn domain_status(plesk: &Plesk, id: i64) -> Result<String, AdapterError> {
    let doc = plesk.ok(Method::Get, &format!("/domains/{id}/status"), None)?;
    Ok(api::field("GET /domains/{id}/status", &doc, "status")?
        .as_str()
        .unwrap_or("")
        .to_string())
}

pub fn remote_state(status: &str) -> RemoteState {
    match status {
        "active" => RemoteState::Active,
        "suspended" | "disabled" => RemoteState::Suspended,
        _ => RemoteState::Unknown,
    }
}

pub fn status_of(
    name: &str,
    state: RemoteState,
    customer: Option<&Customer>,
    plan: Option<&str>,
) -> ServiceStatus {
    let mut st = ServiceStatus::new(name, state);
    st.domain = Some(name.to_string());
    st.plan = plan.map(str::to_string);
    if let Some(c) = customer {
        st.details.push(KeyValue::new("customer", &c.login));
        st.details
            .push(KeyValue::new("customer_id", c.id.to_string()));
    }
    st
}
