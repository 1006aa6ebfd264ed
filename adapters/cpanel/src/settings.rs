//! The server config (`host`, `port`, `whm_user`, `request_timeout_ms`):
//! defaults and checks. The host validates the JSON schema too; these checks
//! keep the URL and the Authorization header well-formed whatever arrives.
use panel1_sdk::{config, invalid_input, AdapterError};

pub const DEFAULT_PORT: u16 = 2087;
pub const DEFAULT_USER: &str = "root";
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// JSON Schema (2020-12) of the config, as `info()` declares it.
pub const SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["host"],"properties":{"host":{"type":"string","minLength":1,"pattern":"^([A-Za-z0-9_.-]+|\\[[0-9A-Fa-f:.]+\\])$","description":"WHM server host name or IP (IPv6 in brackets), without scheme or port"},"port":{"type":"integer","minimum":1,"maximum":65535,"default":2087,"description":"WHM's HTTPS port"},"whm_user":{"type":"string","minLength":1,"pattern":"^[A-Za-z0-9_.-]+$","default":"root","description":"WHM user the API token belongs to; new accounts are owned by it"},"request_timeout_ms":{"type":"integer","minimum":100,"default":30000,"description":"Timeout of one WHM call (clamped below the operation's deadline)"}},"additionalProperties":false}"#;

/// The parsed config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Host as it goes in a URL (IPv6 bracketed).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub timeout_ms: u64,
}

impl Settings {
    /// Read and check the server config.
    pub fn load() -> Result<Settings, AdapterError> {
        Settings::parse(
            &config::require("host")?,
            config::get("port").as_deref(),
            config::get("whm_user").as_deref(),
            config::get("request_timeout_ms").as_deref(),
        )
        .map_err(invalid_input)
    }

    pub fn parse(
        host: &str,
        port: Option<&str>,
        user: Option<&str>,
        timeout_ms: Option<&str>,
    ) -> Result<Settings, String> {
        let url_host = config::url_host(host, "host")?;
        let port = config::port_or(port, "port", DEFAULT_PORT)?;
        let plain = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
        let user = match user.map(str::trim) {
            None | Some("") => DEFAULT_USER.to_string(),
            Some(u) if u.chars().all(plain) => u.to_string(),
            Some(u) => {
                return Err(format!(
                    "config `whm_user` = `{}` may contain only letters, digits, `_`, `.` and `-`",
                    u.escape_debug()
                ))
            }
        };
        let timeout_ms = config::positive_or(timeout_ms, "request_timeout_ms", DEFAULT_TIMEOUT_MS)?;
        Ok(Settings {
            host: url_host,
            port,
            user,
            timeout_ms,
        })
    }

    /// `https://{host}:{port}/json-api/`: always TLS (the host enforces it;
    /// a self-signed WHM is pinned on the egress rule, never unverified).
    pub fn base_url(&self) -> String {
        format!("https://{}:{}/json-api/", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::parse("WHM.example.com", None, None, None).unwrap();
        assert_eq!(s.base_url(), "https://whm.example.com:2087/json-api/");
        assert_eq!((s.user.as_str(), s.timeout_ms), ("root", 30_000));
        let s = Settings::parse("10.0.0.5", Some("2086"), Some("reseller1"), Some("5000")).unwrap();
        assert_eq!(s.base_url(), "https://10.0.0.5:2086/json-api/");
        assert_eq!((s.user.as_str(), s.timeout_ms), ("reseller1", 5000));
        let s = Settings::parse("::1", None, None, None).unwrap();
        assert_eq!(s.base_url(), "https://[::1]:2087/json-api/");
        assert_eq!(
            Settings::parse("[2001:db8::5]", None, None, None)
                .unwrap()
                .host,
            "[2001:db8::5]"
        );
    }

    #[test]
    fn rejects_what_would_bend_the_url_or_header() {
        for host in [
            "",
            "https://whm.example.com",
            "whm.example.com:2087",
            "a/b",
            "a?b",
            "u@h",
            "a b",
        ] {
            assert!(Settings::parse(host, None, None, None).is_err(), "{host}");
        }
        assert!(Settings::parse("h", Some("0"), None, None).is_err());
        assert!(Settings::parse("h", Some("70000"), None, None).is_err());
        assert!(Settings::parse("h", None, Some("root:x"), None).is_err());
        assert!(Settings::parse("h", None, Some("a b"), None).is_err());
        assert!(Settings::parse("h", None, None, Some("0")).is_err());
        assert!(Settings::parse("h", None, None, Some("soon")).is_err());
    }
}
