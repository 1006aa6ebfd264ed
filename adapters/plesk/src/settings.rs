//! The server config (`host`, `port`, `owner_login`, `request_timeout_ms`):
//! defaults and checks. The host validates the JSON schema too; these checks
//! keep the URL well-formed whatever arrives.
use panel1_sdk::{config, invalid_input, AdapterError};

pub const DEFAULT_PORT: u16 = 8443;
pub const DEFAULT_OWNER: &str = "admin";
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// JSON Schema (2020-12) of the config, as `info()` declares it.
pub const SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["host"],"properties":{"host":{"type":"string","minLength":1,"pattern":"^([A-Za-z0-9_.-]+|\\[[0-9A-Fa-f:.]+\\])$","description":"Plesk server host name or IP (IPv6 in brackets), without scheme or port"},"port":{"type":"integer","minimum":1,"maximum":65535,"default":8443,"description":"Plesk's HTTPS port"},"owner_login":{"type":"string","minLength":1,"maxLength":60,"pattern":"^[A-Za-z0-9_.@-]+$","default":"admin","description":"Login of the Plesk administrator or reseller that owns the customers Panel1 creates"},"request_timeout_ms":{"type":"integer","minimum":100,"default":30000,"description":"Timeout of one Plesk call (clamped below the operation's deadline)"}},"additionalProperties":false}"#;

/// The parsed config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Host as it goes in a URL (IPv6 bracketed).
    pub host: String,
    pub port: u16,
    pub owner: String,
    pub timeout_ms: u64,
}

impl Settings {
    /// Read and check the server config.
    pub fn load() -> Result<Settings, AdapterError> {
        Settings::parse(
            &config::require("host")?,
            config::get("port").as_deref(),
            config::get("owner_login").as_deref(),
            config::get("request_timeout_ms").as_deref(),
        )
        .map_err(invalid_input)
    }

    pub fn parse(
        host: &str,
        port: Option<&str>,
        owner: Option<&str>,
        timeout_ms: Option<&str>,
    ) -> Result<Settings, String> {
        let url_host = config::url_host(host, "host")?;
        let port = config::port_or(port, "port", DEFAULT_PORT)?;
        let plain = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
        let owner = match owner.map(str::trim) {
            None | Some("") => DEFAULT_OWNER.to_string(),
            Some(o) if o.len() <= 60 && o.chars().all(|c| plain(c) || c == '@') => o.to_string(),
            Some(o) => {
                return Err(format!(
                    "config `owner_login` = `{}` is not a Plesk login",
                    o.escape_debug()
                ))
            }
        };
        let timeout_ms = config::positive_or(timeout_ms, "request_timeout_ms", DEFAULT_TIMEOUT_MS)?;
        Ok(Settings {
            host: url_host,
            port,
            owner,
            timeout_ms,
        })
    }

    /// `https://{host}:{port}/api/v2`: always TLS (the host enforces it; a
    /// self-signed Plesk is pinned on the egress rule, never unverified).
    pub fn api_url(&self) -> String {
        format!("https://{}:{}/api/v2", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let s = Settings::parse("Plesk.example.com", None, None, None).unwrap();
        assert_eq!(s.api_url(), "https://plesk.example.com:8443/api/v2");
        assert_eq!((s.owner.as_str(), s.timeout_ms), ("admin", 30_000));
        let s = Settings::parse("::1", Some("9443"), Some("reseller1"), Some("5000")).unwrap();
        assert_eq!(s.api_url(), "https://[::1]:9443/api/v2");
        assert_eq!((s.owner.as_str(), s.timeout_ms), ("reseller1", 5000));
        for host in [
            "",
            "https://p.example.com",
            "p.example.com:8443",
            "a/b",
            "u@h",
        ] {
            assert!(Settings::parse(host, None, None, None).is_err(), "{host}");
        }
        assert!(Settings::parse("h", Some("0"), None, None).is_err());
        assert!(Settings::parse("h", None, Some("a b"), None).is_err());
        assert!(Settings::parse("h", None, None, Some("soon")).is_err());
    }
}
