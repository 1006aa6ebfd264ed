//! The server config: where the API server is, the ingress and storage
//! classes, and the plans (image, replicas and per-replica resources).
use crate::quantity;
use panel1_sdk::config::{self, port_or, positive_or, url_host};
use panel1_sdk::{invalid_input, AdapterError};
use serde_json::Value;

pub const DEFAULT_PORT: u16 = 6443;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// How long terminate waits, within its call, for the namespace to go.
pub const DEFAULT_TERMINATE_WAIT_MS: u64 = 20_000;

/// JSON Schema (2020-12) of the config, as `info()` declares it.
pub const SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["host","plans"],"properties":{"host":{"type":"string","minLength":1,"description":"API server host name or IP (IPv6 in brackets), without scheme or port"},"port":{"type":"integer","minimum":1,"maximum":65535,"default":6443},"ingress_class":{"type":"string","default":"nginx","description":"IngressClass of the service's Ingress; empty: the cluster default"},"storage_class":{"type":"string","description":"StorageClass of the service's volume claim; unset: the cluster default"},"terminate_wait_ms":{"type":"integer","minimum":0,"default":20000,"description":"How long terminate waits for the namespace to finish Terminating before it reports a transient error (the retry waits again)"},"plans":{"type":"object","minProperties":1,"additionalProperties":{"type":"object","required":["image"],"properties":{"image":{"type":"string","minLength":1},"replicas":{"type":"integer","minimum":1,"default":1},"cpu":{"type":"string","default":"500m","description":"CPU per replica (a quantity)"},"memory":{"type":"string","default":"256Mi","description":"Memory per replica (a quantity)"},"storage":{"type":"string","default":"1Gi","description":"The volume claim's size"},"port":{"type":"integer","minimum":1,"maximum":65535,"default":80,"description":"The container port the Service and Ingress route to"},"volume_access":{"enum":["ReadWriteOnce","ReadWriteMany"],"default":"ReadWriteOnce","description":"The claim's access mode; more than one replica needs ReadWriteMany (a storage class that offers it)"}},"additionalProperties":false},"description":"Plan name → image and resources"},"request_timeout_ms":{"type":"integer","minimum":100,"default":30000}},"additionalProperties":false}"#;

/// What a plan gives a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    pub image: String,
    pub replicas: u32,
    /// Per replica, in cores and bytes.
    pub cpu: f64,
    pub memory: f64,
    /// The volume claim, in bytes.
    pub storage: f64,
    pub port: u16,
    /// `ReadWriteOnce` or `ReadWriteMany`.
    pub volume_access: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// `None`: the cluster's default class.
    pub ingress_class: Option<String>,
    pub storage_class: Option<String>,
    pub timeout_ms: u64,
    pub terminate_wait_ms: u64,
    plans: Value,
}

impl Settings {
    pub fn load() -> Result<Settings, AdapterError> {
        let get = |k: &str| config::get(k);
        Settings::parse(&config::require("host")?, &get).map_err(invalid_input)
    }

    pub fn parse(host: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let plans: Value = match get("plans") {
            Some(p) => {
                serde_json::from_str(&p).map_err(|e| format!("config `plans` is not JSON: {e}"))?
            }
            None => return Err(
                "config `plans` is required: plan name → {image, replicas, cpu, memory, storage}"
                    .into(),
            ),
        };
        if plans.as_object().is_none_or(|p| p.is_empty()) {
            return Err("config `plans` must be an object naming at least one plan".into());
        }
        let ingress_class = match get("ingress_class") {
            None => Some("nginx".to_string()),
            Some(c) if c.trim().is_empty() => None,
            Some(c) => Some(c.trim().to_string()),
        };
        Ok(Settings {
            host: url_host(host, "host")?,
            port: port_or(get("port").as_deref(), "port", DEFAULT_PORT)?,
            ingress_class,
            storage_class: get("storage_class").filter(|c| !c.trim().is_empty()),
            timeout_ms: positive_or(
                get("request_timeout_ms").as_deref(),
                "request_timeout_ms",
                DEFAULT_TIMEOUT_MS,
            )?,
            terminate_wait_ms: match get("terminate_wait_ms") {
                None => DEFAULT_TERMINATE_WAIT_MS,
                Some(v) => v.trim().parse().map_err(|_| {
                    format!("config `terminate_wait_ms` = `{v}` is not a whole number of ms")
                })?,
            },
            plans,
        })
    }

    /// The plan's image and resources; an unknown plan is `invalid-input`.
    pub fn plan(&self, name: &str) -> Result<Plan, String> {
        let p = self
            .plans
            .get(name)
            .ok_or_else(|| format!("plan `{name}` is not among the server's plans"))?;
        let text = |k: &str, default: &str| -> String {
            p.get(k)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        let image = text("image", "");
        if image.trim().is_empty() {
            return Err(format!("plan `{name}` has no image"));
        }
        let amount = |k: &str, default: &str| -> Result<f64, String> {
            let q = text(k, default);
            let v = quantity::parse(&q).map_err(|e| format!("plan `{name}` {k}: {e}"))?;
            if v <= 0.0 {
                return Err(format!("plan `{name}` {k} must be more than 0"));
            }
            Ok(v)
        };
        let whole = |k: &str, default: u64, max: u64| -> Result<u64, String> {
            match p.get(k) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("plan `{name}` {k} must be a whole number 1–{max}")),
            }
        };
        let replicas = whole("replicas", 1, 1000)? as u32;
        let volume_access = text("volume_access", "ReadWriteOnce");
        if !["ReadWriteOnce", "ReadWriteMany"].contains(&volume_access.as_str()) {
            return Err(format!(
                "plan `{name}` volume_access must be ReadWriteOnce or ReadWriteMany"
            ));
        }
        if replicas > 1 && volume_access == "ReadWriteOnce" {
            return Err(format!(
                "plan `{name}`: {replicas} replicas share one volume claim, which ReadWriteOnce lets only one node mount; set volume_access to ReadWriteMany (a storage class that offers it) or replicas to 1"
            ));
        }
        Ok(Plan {
            name: name.to_string(),
            image,
            volume_access,
            replicas,
            cpu: amount("cpu", "500m")?,
            memory: amount("memory", "256Mi")?,
            storage: amount("storage", "1Gi")?,
            port: whole("port", 80, 65535)? as u16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn plans_and_defaults() {
        let s = Settings::parse(
            "k8s.example.com",
            &get(&[(
                "plans",
                r#"{"small":{"image":"nginx:1.27","replicas":2,"cpu":"250m","memory":"128Mi","volume_access":"ReadWriteMany"},"solo":{"image":"x","replicas":2}}"#,
            )]),
        )
        .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("k8s.example.com", 6443));
        assert_eq!(s.ingress_class.as_deref(), Some("nginx"));
        let p = s.plan("small").unwrap();
        assert_eq!((p.replicas, p.cpu, p.memory), (2, 0.25, 134_217_728.0));
        assert_eq!((p.storage, p.port), (1_073_741_824.0, 80));
        assert!(s.plan("large").is_err());
        assert!(s.plan("solo").unwrap_err().contains("ReadWriteMany"));
        assert!(Settings::parse("h", &get(&[])).is_err());
        assert!(Settings::parse("h", &get(&[("plans", "{}")])).is_err());
        let bad = Settings::parse(
            "h",
            &get(&[("plans", r#"{"a":{"image":"x","cpu":"lots"}}"#)]),
        )
        .unwrap();
        assert!(bad.plan("a").unwrap_err().contains("cpu"));
        let none = Settings::parse(
            "h",
            &get(&[("plans", r#"{"a":{"image":"x"}}"#), ("ingress_class", "")]),
        )
        .unwrap();
        assert_eq!(none.ingress_class, None);
    }
}
