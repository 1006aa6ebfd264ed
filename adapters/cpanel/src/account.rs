//! A cPanel account as `accountsummary` and `listaccts` describe it, and how
//! it maps to Panel1's service status.
use crate::whm::number;
use panel1_sdk::{KeyValue, RemoteState, ServiceStatus};
use serde_json::Value;

/// The fields Panel1 reads (WHM sends many more).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Account {
    pub user: String,
    pub domain: Option<String>,
    pub plan: Option<String>,
    pub owner: Option<String>,
    pub email: Option<String>,
    pub ip: Option<String>,
    pub suspended: bool,
    pub suspend_reason: Option<String>,
    pub disk_used: Option<String>,
    pub disk_limit: Option<String>,
    pub start: Option<String>,
}

/// A field as text: WHM sends some as strings, some as numbers.
fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Account {
    /// One element of `data.acct`; `None` without a `user`.
    pub fn from_json(v: &Value) -> Option<Account> {
        Some(Account {
            user: text(v, "user")?,
            domain: text(v, "domain"),
            plan: text(v, "plan"),
            owner: text(v, "owner"),
            email: text(v, "email"),
            ip: text(v, "ip"),
            suspended: number(v.get("suspended")) == Some(1),
            suspend_reason: text(v, "suspendreason"),
            disk_used: text(v, "diskused"),
            disk_limit: text(v, "disklimit"),
            start: text(v, "unix_startdate").or_else(|| text(v, "startdate")),
        })
    }

    /// Panel1's view: state, plan, domain and non-secret details.
    pub fn to_status(&self) -> ServiceStatus {
        let state = if self.suspended {
            RemoteState::Suspended
        } else {
            RemoteState::Active
        };
        let mut st = ServiceStatus::new(self.user.clone(), state);
        st.plan = self.plan.clone();
        st.domain = self.domain.clone();
        let details = [
            ("owner", &self.owner),
            ("email", &self.email),
            ("ip", &self.ip),
            (
                "suspend_reason",
                &self.suspend_reason.clone().filter(|_| self.suspended),
            ),
            ("disk_used", &self.disk_used),
            ("disk_limit", &self.disk_limit),
            ("start", &self.start),
        ];
        st.details = details
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| KeyValue::new(k, v.clone())))
            .collect();
        st
    }

    /// Whether this existing account is the one a provision request asks
    /// for: same domain, same plan (any plan when none was asked: WHM chose
    /// its default), owned by our WHM user. `Err` lists the differences.
    pub fn matches(&self, domain: &str, plan: Option<&str>, owner: &str) -> Result<(), String> {
        let mut diffs = Vec::new();
        let has_domain = self
            .domain
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(domain));
        if !has_domain {
            diffs.push(format!(
                "its domain is {}, not {domain}",
                shown(&self.domain)
            ));
        }
        if let Some(plan) = plan {
            if self.plan.as_deref() != Some(plan) {
                diffs.push(format!("its plan is {}, not {plan}", shown(&self.plan)));
            }
        }
        if self.owner.as_deref() != Some(owner) {
            diffs.push(format!("its owner is {}, not {owner}", shown(&self.owner)));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join(", "))
        }
    }
}

fn shown(v: &Option<String>) -> String {
    v.as_deref().map_or("unknown".into(), |s| format!("`{s}`"))
}

/// The accounts of a WHM document's `data.acct`.
pub fn list(doc: &Value) -> Vec<Account> {
    doc.pointer("/data/acct")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Account::from_json).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"metadata": {"result": 1}, "data": {"acct": [
            {"user": "alice", "domain": "alice.example", "plan": "gold", "owner": "root",
             "email": "a@alice.example", "suspended": 0, "suspendreason": "not suspended",
             "diskused": "12M", "disklimit": "unlimited", "unix_startdate": 1700000000},
            {"user": "bob", "domain": "bob.example", "plan": "default", "owner": "res1",
             "suspended": "1", "suspendreason": "Unpaid", "disklimit": 500},
            {"domain": "nouser.example"}
        ]}})
    }

    #[test]
    fn reads_accounts_leniently() {
        let accts = list(&doc());
        assert_eq!(accts.len(), 2);
        assert_eq!(accts[0].user, "alice");
        assert!(!accts[0].suspended);
        assert_eq!(accts[0].start.as_deref(), Some("1700000000"));
        assert!(accts[1].suspended);
        assert_eq!(accts[1].disk_limit.as_deref(), Some("500"));
        assert!(list(&json!({"data": {}})).is_empty());
    }

    #[test]
    fn maps_to_service_status() {
        let accts = list(&doc());
        let a = accts[0].to_status();
        assert_eq!(a.remote_id, "alice");
        assert_eq!(a.state, RemoteState::Active);
        assert_eq!(a.plan.as_deref(), Some("gold"));
        assert!(!a.details.iter().any(|kv| kv.key == "suspend_reason"));
        let b = accts[1].to_status();
        assert_eq!(b.state, RemoteState::Suspended);
        assert!(b
            .details
            .iter()
            .any(|kv| kv.key == "suspend_reason" && kv.value == "Unpaid"));
    }

    #[test]
    fn matching_an_existing_account() {
        let a = &list(&doc())[0];
        assert_eq!(a.matches("Alice.Example", Some("gold"), "root"), Ok(()));
        assert_eq!(a.matches("alice.example", None, "root"), Ok(()));
        let e = a
            .matches("other.example", Some("silver"), "res1")
            .unwrap_err();
        assert!(
            e.contains("domain is `alice.example`, not other.example"),
            "{e}"
        );
        assert!(e.contains("plan is `gold`, not silver"), "{e}");
        assert!(e.contains("owner is `root`, not res1"), "{e}");
    }
}
