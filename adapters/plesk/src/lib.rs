//! The Plesk adapter: a Panel1 service is a Plesk customer (login = the
//! service's username) with one subscription (the service's domain, hosted
//! on a service plan), managed through the Plesk REST API v2
//! (`https://{host}:{port}/api/v2`) and, where REST has no endpoint
//! (switching a plan, the system user's password, a login link), its CLI
//! gateway (`POST /cli/{command}/call`).
//!
//! The API key is the `plesk-api-key` secret, sent as `X-API-Key`: the adapter
//! only holds its placeholder; the host substitutes the value for the bound
//! destination. TLS is the host's: always `https`, a self-signed Plesk is
//! pinned on the egress rule, never unverified. Passwords travel only in
//! JSON bodies (the CLI's in `env`), never in a URL, a log line, an error or
//! a result.
//!
//! The remote id is the subscription's domain. Every operation is an
//! "ensure": provision adopts what an earlier attempt created, suspend /
//! unsuspend / terminate succeed when already done.
use api::{Answer, Method, Plesk};
use lookup::*;
use panel1_sdk::input::{self, field, param};
use panel1_sdk::paging;
use panel1_sdk::*;
use serde_json::{json, Value};

mod api;
mod lookup;
mod settings;

struct PleskAdapter;

/// Largest page of list-services (one status call per item).
const MAX_PAGE: u64 = 100;

/// A password Plesk accepts: 14 characters, every class, from the host's
/// random bytes.
fn generated_password() -> String {
    password_from(&random::bytes(14))
}

fn password_from(bytes: &[u8]) -> String {
    const SETS: [&[u8]; 4] = [
        b"abcdefghijkmnpqrstuvwxyz",
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"23456789",
        b"!#%+-=_",
    ];
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let set = SETS[i % SETS.len()];
            set[*b as usize % set.len()] as char
        })
        .collect()
}

impl PleskAdapter {
    /// The new service's password: a placeholder for `password-secret`, the
    /// `password` param, or one generated here.
    fn password(req: &ProvisionRequest) -> Result<String, AdapterError> {
        if let Some(name) = field(&req.password_secret) {
            return secrets::placeholder(name);
        }
        if let Some(p) = param(&req.service, "password") {
            return Ok(p.to_string());
        }
        log::info("no password given: a random one is generated", &[]);
        Ok(generated_password())
    }

    /// The customer for a new service: found by login, or created.
    fn ensure_customer(
        plesk: &Plesk,
        req: &ProvisionRequest,
        login: &str,
        password: &str,
    ) -> Result<Customer, AdapterError> {
        if let Some(c) = find_customer(plesk, login)? {
            log::info("customer found: not created again", &[("login", login)]);
            return Ok(c);
        }
        let spec = &req.service;
        let email = match param(spec, "contactemail").or(field(&spec.contact_email)) {
            Some(e) => input::email(e).map_err(invalid_input)?,
            None => String::new(),
        };
        let body = json!({
            "name": param(spec, "name").unwrap_or(login),
            "company": param(spec, "company").unwrap_or(""),
            "login": login,
            "password": password,
            "email": email,
            "type": "customer",
            "owner_login": plesk.owner(),
            "external_id": format!("panel1:{}", spec.service_id),
        });
        match plesk.call(Method::Post, "/clients", Some(body))? {
            Answer::Ok(_) => log::info("customer created", &[("login", login)]),
            // Lost a race with a concurrent attempt: use what won.
            Answer::Refused(m) if says(&m, "already exists") => {}
            Answer::Refused(m) => return Err(api::refusal("POST /clients", &m)),
            Answer::Missing(m) => return Err(permanent(format!("Plesk POST /clients: {m}"))),
        }
        find_customer(plesk, login)?.ok_or_else(|| {
            permanent(format!(
                "Plesk customer `{login}` was created but is not listed"
            ))
        })
    }

    /// Adopt an existing subscription when the service's customer owns it.
    fn adopt(
        plesk: &Plesk,
        name: &str,
        id: i64,
        login: &str,
        plan: Option<&str>,
    ) -> Result<ServiceStatus, AdapterError> {
        let owner = owner_of(plesk, id)?;
        if owner.login != login {
            return Err(conflict(format!(
                "Plesk subscription `{name}` already exists and belongs to customer `{}`, not `{login}`",
                owner.login
            )));
        }
        log::info(
            "subscription found with the same customer: not created again",
            &[("domain", name)],
        );
        let state = remote_state(&domain_status(plesk, id)?);
        Ok(status_of(name, state, Some(&owner), plan))
    }
}

impl Adapter for PleskAdapter {
    fn info() -> AdapterInfo {
        AdapterInfo {
            description: "Plesk customers and subscriptions through the Plesk REST API v2 (API key, HTTPS only)".into(),
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
            egress: vec!["https://{host}:{port}/api/v2/".into()],
            secrets: vec![api::KEY_SECRET.into()],
            ..AdapterInfo::named("plesk", env!("CARGO_PKG_VERSION"))
        }
    }

    fn test_connection(req: TestRequest) -> Result<ConnectionInfo, AdapterError> {
        let plesk = Plesk::connect(&req.ctx)?;
        let doc = plesk.ok(Method::Get, "/server", None)?;
        let text = |k: &str| -> Result<String, AdapterError> {
            Ok(api::field("GET /server", &doc, k)?
                .as_str()
                .unwrap_or("")
                .to_string())
        };
        Ok(ConnectionInfo {
            server_version: format!("Plesk {}", text("panel_version")?),
            details: vec![
                KeyValue::new("api", "Plesk REST API v2"),
                KeyValue::new("hostname", text("hostname")?),
                KeyValue::new("platform", text("platform")?),
            ],
        })
    }

    fn provision(req: ProvisionRequest) -> Result<ServiceStatus, AdapterError> {
        let spec = &req.service;
        // Checked before any call: a bad request never reaches Plesk.
        let login = field(&spec.username).unwrap_or_default();
        check_login(login).map_err(invalid_input)?;
        let name = input::domain(field(&spec.domain).unwrap_or_default()).map_err(invalid_input)?;
        let plan = field(&spec.plan);
        if let Some(e) = param(spec, "contactemail").or(field(&spec.contact_email)) {
            input::email(e).map_err(invalid_input)?;
        }
        let password = PleskAdapter::password(&req)?;

        let plesk = Plesk::connect(&req.ctx)?;
        // Ensure semantics: a retry finds what an earlier attempt created.
        if let Some(id) = find_domain(&plesk, &name)? {
            return PleskAdapter::adopt(&plesk, &name, id, login, plan);
        }
        let customer = PleskAdapter::ensure_customer(&plesk, &req, login, &password)?;
        let mut body = json!({
            "name": name,
            "hosting_type": "virtual",
            "hosting_settings": {"ftp_login": login, "ftp_password": password},
            "owner_client": customer.reference(),
        });
        if let Some(plan) = plan {
            body["plan"] = json!({ "name": plan });
        }
        match plesk.call(Method::Post, "/domains", Some(body))? {
            Answer::Ok(_) => {
                log::info(
                    "subscription created",
                    &[("domain", &name), ("login", login)],
                );
                Ok(status_of(&name, RemoteState::Active, Some(&customer), plan))
            }
            Answer::Refused(m) if says(&m, "already exists") => match find_domain(&plesk, &name)? {
                Some(id) => PleskAdapter::adopt(&plesk, &name, id, login, plan),
                None => Err(api::refusal("POST /domains", &m)),
            },
            Answer::Refused(m) => Err(api::refusal("POST /domains", &m)),
            Answer::Missing(m) => Err(permanent(format!("Plesk POST /domains: {m}"))),
        }
    }

    fn suspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let name = subscription_of(&req.service)?;
        let plesk = Plesk::connect(&req.ctx)?;
        let id = need_domain(&plesk, &name)?;
        if domain_status(&plesk, id)? == "active" {
            plesk.ok(
                Method::Put,
                &format!("/domains/{id}/status"),
                Some(json!({"status": "suspended"})),
            )?;
            log::info("subscription suspended", &[("domain", &name)]);
        } else {
            log::info("subscription was already suspended", &[("domain", &name)]);
        }
        // The customer too, when this was all it had: it cannot log in.
        let owner = owner_of(&plesk, id)?;
        let others = other_subscriptions(&plesk, owner.id, Some(id))?;
        let others_active = others
            .iter()
            .map(|d| domain_status(&plesk, *d))
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .any(|s| s == "active");
        if !others_active && owner.status == 0 {
            plesk.ok(Method::Put, &format!("/clients/{}/suspend", owner.id), None)?;
            log::info(
                "customer suspended: it has no other active subscription",
                &[("login", &owner.login)],
            );
        }
        Ok(status_of(&name, RemoteState::Suspended, Some(&owner), None))
    }

    fn unsuspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let name = subscription_of(&req.service)?;
        let plesk = Plesk::connect(&req.ctx)?;
        let id = need_domain(&plesk, &name)?;
        let owner = owner_of(&plesk, id)?;
        if owner.status != 0 {
            plesk.ok(
                Method::Put,
                &format!("/clients/{}/activate", owner.id),
                None,
            )?;
            log::info("customer activated", &[("login", &owner.login)]);
        }
        if domain_status(&plesk, id)? != "active" {
            plesk.ok(
                Method::Put,
                &format!("/domains/{id}/status"),
                Some(json!({"status": "active"})),
            )?;
            log::info("subscription activated", &[("domain", &name)]);
        } else {
            log::info("subscription was not suspended", &[("domain", &name)]);
        }
        Ok(status_of(&name, RemoteState::Active, Some(&owner), None))
    }

    fn terminate(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let name = subscription_of(&req.service)?;
        let plesk = Plesk::connect(&req.ctx)?;
        let owner = match find_domain(&plesk, &name)? {
            Some(id) => {
                let owner = owner_of(&plesk, id)?;
                match plesk.call(Method::Delete, &format!("/domains/{id}"), None)? {
                    Answer::Ok(_) => log::info("subscription removed", &[("domain", &name)]),
                    Answer::Missing(_) => {
                        log::info("subscription was already gone", &[("domain", &name)])
                    }
                    Answer::Refused(m) => return Err(api::refusal("DELETE /domains/{id}", &m)),
                }
                Some(owner)
            }
            None => {
                log::info("subscription was already gone", &[("domain", &name)]);
                // A retry after the subscription went: the customer may remain.
                match field(&req.service.username) {
                    Some(login) if check_login(login).is_ok() => find_customer(&plesk, login)?,
                    _ => None,
                }
            }
        };
        if let Some(owner) = owner {
            if other_subscriptions(&plesk, owner.id, None)?.is_empty() {
                match plesk.call(Method::Delete, &format!("/clients/{}", owner.id), None)? {
                    Answer::Ok(_) | Answer::Missing(_) => log::info(
                        "customer removed: it owned nothing else",
                        &[("login", &owner.login)],
                    ),
                    Answer::Refused(m) => return Err(api::refusal("DELETE /clients/{id}", &m)),
                }
            } else {
                log::info(
                    "customer kept: it owns other subscriptions",
                    &[("login", &owner.login)],
                );
            }
        }
        Ok(status_of(&name, RemoteState::Terminated, None, None))
    }

    fn status(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let name = subscription_of(&req.service)?;
        let plesk = Plesk::connect(&req.ctx)?;
        // One rule: a subscription Plesk does not list does not exist, and
        // a service whose subscription does not exist is terminated.
        let Some(id) = find_domain(&plesk, &name)? else {
            return Ok(status_of(&name, RemoteState::Terminated, None, None));
        };
        let owner = owner_of(&plesk, id)?;
        let mut state = remote_state(&domain_status(&plesk, id)?);
        if owner.status != 0 && state == RemoteState::Active {
            state = RemoteState::Suspended;
        }
        Ok(status_of(&name, state, Some(&owner), None))
    }

    fn change_package(req: ChangePackageRequest) -> Result<ServiceStatus, AdapterError> {
        let name = subscription_of(&req.service)?;
        let plan = Some(req.plan.trim())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid_input("the new plan (Plesk service plan) is required"))?;
        let plesk = Plesk::connect(&req.ctx)?;
        let id = need_domain(&plesk, &name)?;
        let out = plesk.cli(
            "subscription",
            &["--switch-subscription", &name, "-service-plan", plan],
            None,
        )?;
        if out.code != 0 {
            let why = out.stderr.trim();
            return Err(if says(why, "service plan") {
                invalid_input(format!("Plesk has no service plan `{plan}`: {why}"))
            } else {
                permanent(format!(
                    "Plesk subscription --switch-subscription failed (exit {}): {why}",
                    out.code
                ))
            });
        }
        log::info(
            "service plan switched",
            &[("domain", &name), ("plan", plan)],
        );
        let state = remote_state(&domain_status(&plesk, id)?);
        Ok(status_of(&name, state, None, Some(plan)))
    }

    fn change_password(req: ChangePasswordRequest) -> Result<ServiceStatus, AdapterError> {
        let name = subscription_of(&req.service)?;
        let password = secrets::placeholder(&req.password_secret)?;
        let plesk = Plesk::connect(&req.ctx)?;
        let id = need_domain(&plesk, &name)?;
        let owner = owner_of(&plesk, id)?;
        plesk.ok(
            Method::Put,
            &format!("/clients/{}", owner.id),
            Some(json!({"password": password})),
        )?;
        // The system user's password: the CLI reads it from PSA_PASSWORD
        // when -passwd is empty, so it is never an argument.
        let out = plesk.cli(
            "subscription",
            &["--update", &name, "-passwd", ""],
            Some(json!({"PSA_PASSWORD": password})),
        )?;
        if out.code != 0 {
            return Err(permanent(format!(
                "Plesk changed the customer's password, but not the system user's (exit {}): {}",
                out.code,
                out.stderr.trim()
            )));
        }
        log::info(
            "password changed (customer and system user)",
            &[("domain", &name)],
        );
        let state = remote_state(&domain_status(&plesk, id)?);
        Ok(status_of(&name, state, Some(&owner), None))
    }

    fn list_services(req: ListRequest) -> Result<ServicePage, AdapterError> {
        let start = paging::start_of(req.cursor.as_deref()).map_err(invalid_input)?;
        // Each item costs a status call: pages stay small.
        let size = paging::size_of(req.limit).min(MAX_PAGE);
        let plesk = Plesk::connect(&req.ctx)?;
        // REST v2 does not page: the list is sorted here, and each page's
        // statuses are read one by one.
        let doc = plesk.ok(Method::Get, "/domains", None)?;
        let mut domains: Vec<(String, i64)> = api::list("GET /domains", &doc)?
            .iter()
            .filter(|d| d.get("hosting_type").and_then(Value::as_str) == Some("virtual"))
            .filter_map(|d| Some((d.get("name")?.as_str()?.to_string(), d.get("id")?.as_i64()?)))
            .collect();
        domains.sort();
        let total = domains.len();
        let (from, to) = paging::window(start, size, total);
        let mut items = Vec::with_capacity(to - from);
        for (name, id) in &domains[from..to] {
            let state = remote_state(&domain_status(&plesk, *id)?);
            items.push(status_of(name, state, None, None));
        }
        Ok(ServicePage {
            next_cursor: paging::next_cursor(start, size, items.len(), Some(total as u64)),
            items,
        })
    }

    fn usage(req: ServiceRequest) -> Result<UsageReport, AdapterError> {
        let name = subscription_of(&req.service)?;
        let plesk = Plesk::connect(&req.ctx)?;
        let id = need_domain(&plesk, &name)?;
        let owner = owner_of(&plesk, id)?;
        // Plesk counts usage per customer; a Panel1 customer has one
        // subscription, so the figures are the service's.
        let what = "GET /clients/{id}/statistics";
        let stats = plesk.ok(
            Method::Get,
            &format!("/clients/{}/statistics", owner.id),
            None,
        )?;
        let number = |k: &str| -> Result<f64, AdapterError> {
            api::field(what, &stats, k)?
                .as_f64()
                .ok_or_else(|| permanent(format!("Plesk {what}: `{k}` is not a number")))
        };
        let metric = |name: &str, value: f64| Metric {
            name: name.into(),
            value,
            unit: "bytes".into(),
        };
        Ok(UsageReport {
            remote_id: name,
            metrics: vec![
                metric("disk_used", number("disk_space")?),
                metric("bandwidth_used", number("traffic")?),
            ],
        })
    }

    fn login_url(req: ServiceRequest) -> Result<LoginLink, AdapterError> {
        let name = subscription_of(&req.service)?;
        let plesk = Plesk::connect(&req.ctx)?;
        let id = need_domain(&plesk, &name)?;
        let owner = owner_of(&plesk, id)?;
        let out = plesk.cli("login", &[&owner.login], None)?;
        let url = out
            .stdout
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("https://"))
            .filter(|_| out.code == 0)
            .ok_or_else(|| {
                permanent(format!(
                    "Plesk login gave no https link (exit {}): {}",
                    out.code,
                    out.stderr.trim()
                ))
            })?;
        Ok(LoginLink {
            url: url.to_string(),
            expires_at: None,
        })
    }
}

export_adapter!(PleskAdapter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins() {
        assert!(check_login("alice").is_ok());
        assert!(check_login("a.b-c_1").is_ok());
        for bad in ["", "Alice", "1abc", "a b", "a@b", &"a".repeat(33)] {
            assert!(check_login(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_passwords_mix_every_class() {
        let p = password_from(&[7, 200, 3, 99, 0, 255, 18, 40, 41, 42, 43, 44, 45, 46]);
        assert_eq!(p.len(), 14);
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
    }

    #[test]
    fn states() {
        assert_eq!(remote_state("active"), RemoteState::Active);
        assert_eq!(remote_state("disabled"), RemoteState::Suspended);
        assert_eq!(remote_state("??"), RemoteState::Unknown);
    }
}
