//! What the Plesk simulator holds: customers (Plesk "clients"), their
//! subscriptions (domains with hosting on a service plan), service plans,
//! and one-time login links. Passwords are kept only as SHA-256 digests.

use std::collections::BTreeMap;

use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A Plesk customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub company: String,
    pub email: String,
    /// `customer`, `reseller` or `admin`.
    pub kind: String,
    /// 0 active, 16 disabled by admin, 4 under backup/restore, 256 expired.
    pub status: i64,
    pub created: String,
    pub guid: String,
    pub owner_login: String,
    pub external_id: String,
    pub description: String,
    pub locale: String,
    #[serde(skip)]
    pub(crate) password_sha256: String,
    /// Bytes on disk, as `/clients/{id}/statistics` reports them.
    pub disk_space: u64,
    /// Bytes transferred this month.
    pub traffic: u64,
}

/// A domain; with `hosting_type` `virtual` and a plan, a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    pub id: i64,
    pub name: String,
    pub hosting_type: String,
    pub client_id: i64,
    pub plan: Option<String>,
    /// `active`, `suspended` or `disabled`.
    pub status: String,
    /// The subscription's system user.
    pub ftp_login: String,
    #[serde(skip)]
    pub(crate) ftp_password_sha256: String,
    pub created: String,
    pub guid: String,
}

/// A service plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: String,
    /// Disk space allowed, bytes (`None`: unlimited).
    pub disk_space: Option<u64>,
    /// Monthly traffic allowed, bytes (`None`: unlimited).
    pub traffic: Option<u64>,
}

impl Plan {
    pub fn new(name: &str, disk_space: Option<u64>, traffic: Option<u64>) -> Plan {
        Plan {
            name: name.into(),
            disk_space,
            traffic,
        }
    }
}

/// A one-time login link made through the CLI gateway's `login` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginLink {
    pub login: String,
    pub url: String,
}

pub(crate) struct PleskState {
    next_id: i64,
    pub clients: BTreeMap<i64, Client>,
    pub domains: BTreeMap<i64, Domain>,
    pub plans: BTreeMap<String, Plan>,
    pub links: Vec<LoginLink>,
}

pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub(crate) fn guid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

pub(crate) fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

const GIB: u64 = 1 << 30;

impl PleskState {
    /// Two plans, as a fresh Plesk has.
    pub fn new() -> PleskState {
        let plans = [
            Plan::new("Default Domain", Some(10 * GIB), Some(100 * GIB)),
            Plan::new("Unlimited", None, None),
        ];
        PleskState {
            next_id: 1,
            clients: BTreeMap::new(),
            domains: BTreeMap::new(),
            plans: plans.into_iter().map(|p| (p.name.clone(), p)).collect(),
            links: Vec::new(),
        }
    }

    pub fn allocate_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn client_by_login(&self, login: &str) -> Option<&Client> {
        self.clients.values().find(|c| c.login == login)
    }

    pub fn domain_by_name(&self, name: &str) -> Option<&Domain> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.domains.values().find(|d| d.name == name)
    }

    pub fn domains_of(&self, client_id: i64) -> Vec<&Domain> {
        self.domains
            .values()
            .filter(|d| d.client_id == client_id)
            .collect()
    }

    pub fn system_user_taken(&self, login: &str) -> bool {
        self.domains.values().any(|d| d.ftp_login == login)
    }
}

impl Client {
    /// A customer to seed (owner `admin`, active, no password).
    pub fn new(login: &str, email: &str) -> Client {
        Client {
            id: 0,
            login: login.into(),
            name: login.into(),
            company: String::new(),
            email: email.into(),
            kind: "customer".into(),
            status: 0,
            created: today(),
            guid: guid(),
            owner_login: "admin".into(),
            external_id: String::new(),
            description: String::new(),
            locale: "en-US".into(),
            password_sha256: String::new(),
            disk_space: 0,
            traffic: 0,
        }
    }

    /// Whether `password` is this customer's password.
    pub fn password_is(&self, password: &str) -> bool {
        self.password_sha256 == digest(password)
    }
}

impl Domain {
    /// A subscription to seed for client `client_id` on `plan`.
    pub fn new(name: &str, client_id: i64, plan: &str, ftp_login: &str) -> Domain {
        Domain {
            id: 0,
            name: name.to_ascii_lowercase(),
            hosting_type: "virtual".into(),
            client_id,
            plan: Some(plan.into()),
            status: "active".into(),
            ftp_login: ftp_login.into(),
            ftp_password_sha256: String::new(),
            created: today(),
            guid: guid(),
        }
    }

    /// Whether `password` is the system user's password.
    pub fn ftp_password_is(&self, password: &str) -> bool {
        self.ftp_password_sha256 == digest(password)
    }
}
