//! The server's non-secret settings, and checks of their raw values that
//! adapters building a provider's URL from `host` and `port` share. The
//! checks are pure (no host calls) and their errors name the setting, ready
//! for `invalid_input`.
use crate::bindings::panel1::provisioning::config as raw;
use crate::{invalid_input, AdapterError};

/// One setting, if present.
pub fn get(key: &str) -> Option<String> {
    raw::get(key)
}

/// A required setting; a missing one is an `invalid-input` error naming it.
pub fn require(key: &str) -> Result<String, AdapterError> {
    raw::get(key).ok_or_else(|| invalid_input(format!("server config is missing `{key}`")))
}

/// All settings, sorted by key.
pub fn all() -> Vec<(String, String)> {
    raw::all()
}

/// A host name or IP address as it goes in a URL: trimmed, lowercased, an
/// IPv6 address (parsed, with or without brackets) in brackets. A scheme,
/// port, path, query, user info or space is refused: they would change where
/// the request goes.
pub fn url_host(raw: &str, key: &str) -> Result<String, String> {
    let host = raw.trim();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if !host.is_empty() && host.chars().all(plain) {
        Ok(host.to_ascii_lowercase())
    } else if let Ok(v6) = bare.parse::<std::net::Ipv6Addr>() {
        Ok(format!("[{v6}]"))
    } else {
        Err(format!(
            "config `{key}` = `{}` must be a host name or IP address only (no scheme, port or path)",
            host.escape_debug()
        ))
    }
}

/// A TCP port (1-65535); `default` when the setting is absent or blank.
pub fn port_or(raw: Option<&str>, key: &str, default: u16) -> Result<u16, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("config `{key}` = `{p}` is not a TCP port")),
    }
}

/// A positive integer (a timeout, a limit); `default` when the setting is
/// absent or blank.
pub fn positive_or(raw: Option<&str>, key: &str, default: u64) -> Result<u64, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| format!("config `{key}` = `{t}` is not a positive integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            url_host(" WHM.example.com ", "host"),
            Ok("whm.example.com".into())
        );
        assert_eq!(url_host("10.0.0.5", "host"), Ok("10.0.0.5".into()));
        assert_eq!(url_host("::1", "host"), Ok("[::1]".into()));
        assert_eq!(
            url_host("[2001:db8::5]", "host"),
            Ok("[2001:db8::5]".into())
        );
        for bad in [
            "",
            "https://whm.example.com",
            "whm.example.com:2087",
            "a/b",
            "a?b",
            "u@h",
            "a b",
            "[::1]/x",
            // Not IPv6: an address or name with a port.
            "1.2.3.4:8443",
            "cafe.be:2087",
            "[::1]:2087",
        ] {
            assert!(url_host(bad, "host").is_err(), "{bad}");
        }
        assert_eq!(
            url_host("a\nb", "server"),
            Err("config `server` = `a\\nb` must be a host name or IP address only (no scheme, port or path)".into())
        );
    }

    #[test]
    fn ports() {
        assert_eq!(port_or(None, "port", 2087), Ok(2087));
        assert_eq!(port_or(Some(" "), "port", 2087), Ok(2087));
        assert_eq!(port_or(Some(" 8443 "), "port", 2087), Ok(8443));
        assert_eq!(port_or(Some("65535"), "port", 1), Ok(65535));
        for bad in ["0", "70000", "-1", "x", "80x"] {
            assert_eq!(
                port_or(Some(bad), "port", 2087),
                Err(format!("config `port` = `{bad}` is not a TCP port"))
            );
        }
    }

    #[test]
    fn positive_integers() {
        let key = "request_timeout_ms";
        assert_eq!(positive_or(None, key, 30_000), Ok(30_000));
        assert_eq!(positive_or(Some(""), key, 30_000), Ok(30_000));
        assert_eq!(positive_or(Some("5000"), key, 30_000), Ok(5000));
        for bad in ["0", "-5", "soon", "1.5"] {
            assert_eq!(
                positive_or(Some(bad), key, 30_000),
                Err(format!(
                    "config `{key}` = `{bad}` is not a positive integer"
                ))
            );
        }
    }
}
