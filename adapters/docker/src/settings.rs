//! The server config: where the Engine is, which network containers join,
//! how to suspend, what happens to volumes, and the plans (image and
//! resources per plan name).
use panel1_sdk::config::{self, port_or, positive_or, url_host};
use panel1_sdk::{invalid_input, AdapterError};
use serde_json::Value;

pub const DEFAULT_PORT: u16 = 2376;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// JSON Schema (2020-12) of the config, as `info()` declares it.
pub const SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["host","plans"],"properties":{"host":{"type":"string","minLength":1,"description":"Docker host name or IP (IPv6 in brackets), without scheme or port"},"port":{"type":"integer","minimum":1,"maximum":65535,"default":2376,"description":"The Engine API's TLS port"},"network":{"type":"string","minLength":1,"default":"bridge","description":"Network every container joins (the tenant's network)"},"suspend_mode":{"enum":["stop","pause"],"default":"stop","description":"stop: the container stops (memory freed); pause: its processes are frozen"},"keep_volumes":{"type":"boolean","default":false,"description":"Keep a terminated service's volume (retention) instead of removing it"},"plans":{"type":"object","minProperties":1,"additionalProperties":{"type":"object","required":["image"],"properties":{"image":{"type":"string","minLength":1},"memory_mb":{"type":"integer","minimum":6},"cpus":{"type":"number","exclusiveMinimum":0},"volume_path":{"type":"string","pattern":"^/"}},"additionalProperties":false},"description":"Plan name → image and resources"},"request_timeout_ms":{"type":"integer","minimum":100,"default":30000}},"additionalProperties":false}"#;

/// What a plan gives a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub image: String,
    /// Bytes (0: unlimited).
    pub memory: i64,
    /// 10⁻⁹ CPUs (0: unlimited).
    pub nano_cpus: i64,
    /// Where the service's volume is mounted.
    pub volume_path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub network: String,
    pub pause: bool,
    pub keep_volumes: bool,
    pub timeout_ms: u64,
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
            None => {
                return Err(
                    "config `plans` is required: plan name → {image, memory_mb, cpus}".into(),
                )
            }
        };
        let suspend = get("suspend_mode").unwrap_or_else(|| "stop".into());
        if suspend != "stop" && suspend != "pause" {
            return Err(format!(
                "config `suspend_mode` = `{suspend}` must be stop or pause"
            ));
        }
        Ok(Settings {
            host: url_host(host, "host")?,
            port: port_or(get("port").as_deref(), "port", DEFAULT_PORT)?,
            network: get("network").unwrap_or_else(|| "bridge".into()),
            pause: suspend == "pause",
            keep_volumes: get("keep_volumes").as_deref() == Some("true"),
            timeout_ms: positive_or(
                get("request_timeout_ms").as_deref(),
                "request_timeout_ms",
                DEFAULT_TIMEOUT_MS,
            )?,
            plans,
        })
    }

    /// The plan's image and resources; an unknown plan is `invalid-input`.
    pub fn plan(&self, name: &str) -> Result<Plan, String> {
        let p = self
            .plans
            .get(name)
            .ok_or_else(|| format!("plan `{name}` is not among the server's plans"))?;
        let image = p
            .get("image")
            .and_then(Value::as_str)
            .filter(|i| !i.is_empty());
        let image = image.ok_or_else(|| format!("plan `{name}` has no image"))?;
        let memory_mb = p.get("memory_mb").and_then(Value::as_i64).unwrap_or(0);
        let cpus = p.get("cpus").and_then(Value::as_f64).unwrap_or(0.0);
        Ok(Plan {
            image: image.to_string(),
            memory: memory_mb.max(0) * 1024 * 1024,
            nano_cpus: (cpus.max(0.0) * 1e9).round() as i64,
            volume_path: p
                .get("volume_path")
                .and_then(Value::as_str)
                .unwrap_or("/data")
                .to_string(),
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
            "docker1.example.com",
            &get(&[(
                "plans",
                r#"{"small":{"image":"nginx:1.27","memory_mb":256,"cpus":0.5}}"#,
            )]),
        )
        .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("docker1.example.com", 2376));
        assert!(!s.pause && !s.keep_volumes);
        let p = s.plan("small").unwrap();
        assert_eq!(
            (p.image.as_str(), p.memory, p.nano_cpus),
            ("nginx:1.27", 256 << 20, 500_000_000)
        );
        assert!(s.plan("large").is_err());
        assert!(Settings::parse("h", &get(&[])).is_err());
        assert!(
            Settings::parse("h", &get(&[("plans", "{}"), ("suspend_mode", "freeze")])).is_err()
        );
    }
}
