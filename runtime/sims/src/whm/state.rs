//! The simulated server's data: packages, accounts, sessions, and cPanel's
//! rules for new usernames and domains.

use std::collections::BTreeMap;

use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A hosting package (plan). Limits in MB; `None` = unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub name: String,
    pub disk_quota_mb: Option<u64>,
    pub bw_limit_mb: Option<u64>,
}

impl Package {
    pub fn new(name: &str, disk_quota_mb: Option<u64>, bw_limit_mb: Option<u64>) -> Self {
        Package {
            name: name.into(),
            disk_quota_mb,
            bw_limit_mb,
        }
    }
}

/// A cPanel account as the simulator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub user: String,
    pub domain: String,
    /// The domain was made up because createacct got none.
    pub temporary_domain: bool,
    pub plan: String,
    pub owner: String,
    pub contact_email: String,
    pub ip: String,
    pub uid: u32,
    pub suspended: bool,
    pub suspend_reason: Option<String>,
    /// Unix time of the suspension.
    pub suspend_time: Option<i64>,
    pub disk_used_mb: u64,
    pub disk_limit_mb: Option<u64>,
    pub bw_used_bytes: u64,
    pub bw_limit_bytes: Option<u64>,
    /// Unix time of creation.
    pub created: i64,
    /// `sha256:<salt>:<hex>`; the plaintext is never kept.
    #[serde(skip)]
    password_hash: String,
    /// How many times passwd changed the password.
    pub password_changes: u32,
}

impl Account {
    /// A seed account on the `default` plan, created now. When added, limits
    /// come from the plan, and an empty owner becomes the WHM user.
    pub fn new(user: &str, domain: &str) -> Self {
        Account {
            user: user.into(),
            domain: domain.to_ascii_lowercase(),
            temporary_domain: false,
            plan: "default".into(),
            owner: String::new(),
            contact_email: String::new(),
            ip: "127.0.0.1".into(),
            uid: 0,
            suspended: false,
            suspend_reason: None,
            suspend_time: None,
            disk_used_mb: 0,
            disk_limit_mb: None,
            bw_used_bytes: 0,
            bw_limit_bytes: None,
            created: now(),
            password_hash: hash_password(&random_token(24)),
            password_changes: 0,
        }
    }

    pub fn with_plan(mut self, plan: &str) -> Self {
        self.plan = plan.into();
        self
    }

    pub fn with_owner(mut self, owner: &str) -> Self {
        self.owner = owner.into();
        self
    }

    pub fn with_contact_email(mut self, email: &str) -> Self {
        self.contact_email = email.into();
        self
    }

    pub fn with_password(mut self, password: &str) -> Self {
        self.set_password(password);
        self
    }

    pub fn with_usage(mut self, disk_used_mb: u64, bw_used_bytes: u64) -> Self {
        self.disk_used_mb = disk_used_mb;
        self.bw_used_bytes = bw_used_bytes;
        self
    }

    pub fn suspended_for(mut self, reason: &str) -> Self {
        self.suspended = true;
        self.suspend_reason = Some(reason.into());
        self.suspend_time = Some(now());
        self
    }

    /// Whether `password` is the account's current password.
    pub fn password_matches(&self, password: &str) -> bool {
        let mut parts = self.password_hash.splitn(3, ':');
        let (Some("sha256"), Some(salt), Some(hex)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        salted(salt, password) == hex
    }

    pub(crate) fn set_password(&mut self, password: &str) {
        self.password_hash = hash_password(password);
    }

    pub(crate) fn apply_package(&mut self, pkg: &Package) {
        self.plan = pkg.name.clone();
        self.disk_limit_mb = pkg.disk_quota_mb;
        self.bw_limit_bytes = pkg.bw_limit_mb.map(|mb| mb * 1024 * 1024);
    }
}

fn salted(salt: &str, password: &str) -> String {
    hex::encode(Sha256::digest(format!("{salt}:{password}").as_bytes()))
}

fn hash_password(password: &str) -> String {
    let salt = random_token(16);
    format!("sha256:{salt}:{}", salted(&salt, password))
}

/// Lowercase alphanumeric random string.
pub(crate) fn random_token(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A single sign-on session made by create_user_session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub user: String,
    pub service: String,
    pub session: String,
    /// `/cpsessNNNNNNNNNN`
    pub security_token: String,
    pub expires: i64,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct SimState {
    pub packages: BTreeMap<String, Package>,
    pub accounts: BTreeMap<String, Account>,
    pub sessions: Vec<Session>,
    pub backups: super::backups::Backups,
    pub transfers: super::transfers::Transfers,
    next_uid: u32,
}

impl SimState {
    pub fn new() -> Self {
        let packages = [
            Package::new("default", Some(1024), Some(10 * 1024)),
            Package::new("basic", Some(5 * 1024), Some(50 * 1024)),
            Package::new("pro", Some(50 * 1024), None),
        ]
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
        SimState {
            packages,
            accounts: BTreeMap::new(),
            sessions: Vec::new(),
            backups: Default::default(),
            transfers: Default::default(),
            next_uid: 1000,
        }
    }

    pub fn allocate_uid(&mut self) -> u32 {
        self.next_uid += 1;
        self.next_uid
    }

    pub fn owner_of_domain(&self, domain: &str) -> Option<&str> {
        self.accounts
            .values()
            .find(|a| a.domain.eq_ignore_ascii_case(domain))
            .map(|a| a.user.as_str())
    }

    /// cPanel's username rules (Cpanel::Validate::Username, as documented for
    /// createacct). `Err` is the "why" of `Invalid value for “username”: …`.
    pub fn check_new_username(&self, user: &str) -> Result<(), String> {
        if user.is_empty() {
            return Err("the username cannot be empty".into());
        }
        if user.len() > 16 {
            return Err("the username cannot be longer than 16 characters".into());
        }
        if !user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(
                "the username may contain only lowercase letters (a-z) and digits (0-9)".into(),
            );
        }
        if !user.as_bytes()[0].is_ascii_lowercase() {
            return Err("the username must begin with a letter".into());
        }
        if user.starts_with("test") {
            return Err("the username cannot begin with “test”".into());
        }
        if RESERVED_USERNAMES.contains(&user) {
            return Err(format!("“{user}” is a reserved username"));
        }
        let prefix = &user[..user.len().min(8)];
        if let Some(other) = self
            .accounts
            .keys()
            .find(|u| u[..u.len().min(8)] == *prefix)
        {
            return Err(format!(
                "the first 8 characters of a username must be unique, and “{other}” already begins with “{prefix}”"
            ));
        }
        Ok(())
    }
}

/// System and service account names cPanel refuses as cPanel usernames.
const RESERVED_USERNAMES: &[&str] = &[
    "abuse",
    "admin",
    "administrator",
    "all",
    "apache",
    "bin",
    "cpanel",
    "cpanelphpmyadmin",
    "cpanelphppgadmin",
    "cpanelroundcube",
    "cphulkd",
    "daemon",
    "dovecot",
    "exim",
    "ftp",
    "games",
    "halt",
    "lp",
    "mail",
    "mailman",
    "mysql",
    "named",
    "news",
    "nobody",
    "operator",
    "postgres",
    "postmaster",
    "root",
    "shutdown",
    "sshd",
    "sync",
    "system",
    "uucp",
    "virtfs",
    "webmaster",
    "whm",
    "www",
];

/// A DNS name with at least two labels. `Err` is the "why".
pub(crate) fn check_domain(domain: &str) -> Result<(), String> {
    let bad = || format!("“{domain}” is not a valid domain name");
    if domain.is_empty() || domain.len() > 253 {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(bad());
    }
    for label in labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        let mut s = SimState::new();
        s.accounts
            .insert("abcdefgh1".into(), Account::new("abcdefgh1", "a.example"));
        assert!(s.check_new_username("alice").is_ok());
        assert!(s.check_new_username("alice2").is_ok());
        for (bad, why) in [
            ("", "empty"),
            ("Alice", "lowercase"),
            ("al_ice", "lowercase"),
            ("1alice", "begin with a letter"),
            ("testing", "“test”"),
            ("root", "reserved"),
            ("mysql", "reserved"),
            ("abcdefgh2", "first 8 characters"),
            ("abcdefghijklmnopq", "16"),
        ] {
            let err = s.check_new_username(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn passwords_are_hashed_and_checkable() {
        let a = Account::new("alice", "alice.example").with_password("s3cret!");
        assert!(a.password_matches("s3cret!"));
        assert!(!a.password_matches("other"));
        assert!(!format!("{a:?}").contains("s3cret!"));
    }

    #[test]
    fn domains() {
        assert!(check_domain("example.com").is_ok());
        assert!(check_domain("a-b.example.co.uk").is_ok());
        for bad in ["example", "-a.com", "a..com", "a b.com", "a_b.com"] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }
}
