//! The egress policy of one server connection: deny by default, allow what a
//! rule names (scheme + host + port, optionally methods and a path prefix).
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    /// `http` or `https`.
    pub scheme: String,
    /// Exact host name or IP literal, or `*.example.com` for any subdomain.
    pub host: String,
    pub port: u16,
    /// Upper-case methods; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Requests must have a path starting with this (e.g. `/json-api/`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Allow internal addresses (loopback, private, link-local ...) for this
    /// rule's host name. A rule whose host is an IP literal allows exactly
    /// that address without this flag: naming it is explicit.
    #[serde(default)]
    pub allow_internal: bool,
}

/// The whole policy; no rules means no egress at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressPolicy {
    pub rules: Vec<EgressRule>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid egress rule `{rule}`: {reason}")]
pub struct RuleParseError {
    pub rule: String,
    pub reason: String,
}

impl EgressRule {
    /// Parse `[METHOD[,METHOD…] ]scheme://host[:port][/path-prefix]`, e.g.
    /// `https://whm.example.com:2087/json-api/` or
    /// `GET,POST http://127.0.0.1:8080`.
    pub fn parse(text: &str) -> Result<EgressRule, RuleParseError> {
        let err = |reason: &str| RuleParseError {
            rule: text.to_string(),
            reason: reason.to_string(),
        };
        let text_trim = text.trim();
        let (methods, url) = match text_trim.split_once(char::is_whitespace) {
            Some((m, u)) => (
                m.split(',')
                    .map(|s| s.trim().to_ascii_uppercase())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>(),
                u.trim(),
            ),
            None => (Vec::new(), text_trim),
        };
        if methods
            .iter()
            .any(|m| !m.chars().all(|c| c.is_ascii_alphabetic()))
        {
            return Err(err("methods must be letters, e.g. GET,POST"));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| err("missing scheme (http:// or https://)"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(err("scheme must be http or https")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        if authority.contains('@') {
            return Err(err("user info is not allowed"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| err("bad host or port"))?;
        if host.is_empty() {
            return Err(err("missing host"));
        }
        let bad_wildcard = match host.strip_prefix("*.") {
            Some(rest) => rest.contains('*'),
            None => host.contains('*'),
        };
        if bad_wildcard {
            return Err(err("a wildcard is only allowed as a leading `*.`"));
        }
        let path_prefix = path.filter(|p| *p != "/").map(str::to_string);
        Ok(EgressRule {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(default_port),
            methods,
            path_prefix,
            allow_internal: false,
        })
    }

    fn host_matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => self.host == host,
        }
    }

    /// The IP this rule names literally, if its host is an IP address.
    pub fn literal_ip(&self) -> Option<IpAddr> {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }

    /// May this rule's request connect to `ip` of the given class?
    pub fn permits_address(&self, ip: IpAddr, internal: bool) -> bool {
        !internal || self.allow_internal || self.literal_ip() == Some(ip)
    }
}

/// Split `host[:port]`, with `[v6]:port` for IPv6.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// A request the policy refused, with the reason shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(pub String);

impl EgressPolicy {
    pub fn new(rules: Vec<EgressRule>) -> Self {
        EgressPolicy { rules }
    }

    /// The first rule allowing this request, or why none does.
    pub fn check(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        method: &str,
        path: &str,
    ) -> Result<&EgressRule, Denial> {
        if self.rules.is_empty() {
            return Err(Denial(
                "no egress is allowed for this server (empty policy)".into(),
            ));
        }
        let dest = format!("{scheme}://{host}:{port}");
        let mut near_miss = None;
        for rule in &self.rules {
            if rule.scheme != scheme || rule.port != port || !rule.host_matches(host) {
                continue;
            }
            if !rule.methods.is_empty()
                && !rule.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
            {
                near_miss = Some(format!("method {method} is not allowed for {dest}"));
                continue;
            }
            if let Some(prefix) = &rule.path_prefix {
                if has_dot_segments(path) {
                    near_miss = Some(format!("path `{path}` has dot segments"));
                    continue;
                }
                if !path.starts_with(prefix.as_str()) {
                    near_miss = Some(format!("path `{path}` is outside `{prefix}` for {dest}"));
                    continue;
                }
            }
            return Ok(rule);
        }
        Err(Denial(near_miss.unwrap_or_else(|| {
            format!("{dest} is not in the egress policy")
        })))
    }
}

/// `..`/`.` segments (plain or percent-encoded) could climb out of a path
/// prefix once the server normalizes the path.
fn has_dot_segments(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or("");
    let lower = path
        .to_ascii_lowercase()
        .replace("%2e", ".")
        .replace("%2f", "/")
        .replace("%5c", "/");
    lower
        .split(['/', '\\'])
        .any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str]) -> EgressPolicy {
        EgressPolicy::new(
            rules
                .iter()
                .map(|r| EgressRule::parse(r).unwrap())
                .collect(),
        )
    }

    #[test]
    fn parses_rules() {
        let r = EgressRule::parse("GET,post https://WHM.example.com:2087/json-api/").unwrap();
        assert_eq!(r.methods, vec!["GET", "POST"]);
        assert_eq!(r.host, "whm.example.com");
        assert_eq!(r.port, 2087);
        assert_eq!(r.path_prefix.as_deref(), Some("/json-api/"));
        assert_eq!(
            EgressRule::parse("http://[::1]:8080").unwrap().literal_ip(),
            Some("::1".parse().unwrap())
        );
        assert_eq!(EgressRule::parse("https://a.b").unwrap().port, 443);
        for bad in [
            "ftp://x",
            "x.com",
            "https://u:p@x.com",
            "https://a.*.com",
            "https://x:99999",
            "G3T https://x",
        ] {
            assert!(EgressRule::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn matches_scheme_host_port_method_path() {
        let p = policy(&[
            "GET https://api.example.com/v1/",
            "https://*.cdn.example.com",
        ]);
        assert!(p
            .check("https", "api.example.com", 443, "GET", "/v1/users")
            .is_ok());
        assert!(p
            .check("http", "api.example.com", 443, "GET", "/v1/users")
            .is_err());
        assert!(p
            .check("https", "api.example.com", 8443, "GET", "/v1/users")
            .is_err());
        assert!(p
            .check("https", "api.example.com", 443, "POST", "/v1/users")
            .is_err());
        assert!(p
            .check("https", "api.example.com", 443, "GET", "/admin")
            .is_err());
        assert!(p
            .check("https", "api.example.com", 443, "GET", "/v1/../admin")
            .is_err());
        assert!(p
            .check("https", "api.example.com", 443, "GET", "/v1/%2e%2e/admin")
            .is_err());
        assert!(p
            .check("https", "img.cdn.example.com", 443, "PUT", "/x")
            .is_ok());
        assert!(p
            .check("https", "cdn.example.com", 443, "GET", "/x")
            .is_err());
        assert!(p
            .check("https", "evilcdn.example.com", 443, "GET", "/x")
            .is_err());
        assert!(EgressPolicy::default()
            .check("https", "a.com", 443, "GET", "/")
            .is_err());
    }

    #[test]
    fn internal_addresses_need_explicit_permission() {
        let named = EgressRule::parse("http://localhost:8080").unwrap();
        let lo = "127.0.0.1".parse().unwrap();
        assert!(!named.permits_address(lo, true));
        assert!(named.permits_address("93.184.216.34".parse().unwrap(), false));
        let literal = EgressRule::parse("http://127.0.0.1:8080").unwrap();
        assert!(literal.permits_address(lo, true));
        assert!(!literal.permits_address("127.0.0.2".parse().unwrap(), true));
        let flagged = EgressRule {
            allow_internal: true,
            ..named
        };
        assert!(flagged.permits_address(lo, true));
    }
}
