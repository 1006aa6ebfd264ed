//! The egress policy of one server connection: deny by default, allow what a
//! rule names (scheme + host + port, optionally methods and a path prefix).
//! The request's path is put in canonical form first (see [`request_path`]);
//! ambiguous paths are refused before any rule is looked at.
mod request_path;

use request_path::{normalize, shorten};
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
    /// Requests must have a path under this, segment by segment (e.g.
    /// `/json-api/`; `/api` allows `/api` and `/api/…`, not `/apiadmin`).
    /// It is compared with the request's canonical path.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Allow internal addresses (loopback, private, link-local ...) for this
    /// rule's host name. A rule whose host is an IP literal allows exactly
    /// that address without this flag: naming it is explicit.
    #[serde(default)]
    pub allow_internal: bool,
    /// For https: accept only the server certificate whose DER has this
    /// SHA-256 (lowercase hex), instead of verifying it against the public
    /// roots. This is how a self-signed panel is reached; there is no way to
    /// turn verification off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_pin_sha256: Option<String>,
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
    /// Parse `[METHOD[,METHOD…] ]scheme://host[:port][/path-prefix][ sha256:PIN]`,
    /// e.g. `https://whm.example.com:2087/json-api/`,
    /// `GET,POST http://127.0.0.1:8080` or
    /// `https://10.0.0.5:2087/json-api/ sha256:9f86d0…` (a pinned certificate).
    pub fn parse(text: &str) -> Result<EgressRule, RuleParseError> {
        let err = |reason: &str| RuleParseError {
            rule: text.to_string(),
            reason: reason.to_string(),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let url_at = words
            .iter()
            .position(|w| w.contains("://"))
            .ok_or_else(|| err("missing scheme (http:// or https://)"))?;
        let methods = match url_at {
            0 => Vec::new(),
            1 => words[0]
                .split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
            _ => return Err(err("expected `[METHODS] URL [sha256:PIN]`")),
        };
        let url = words[url_at];
        let tls_pin_sha256 = match &words[url_at + 1..] {
            [] => None,
            [pin] => Some(parse_pin(pin).map_err(|why| err(&why))?),
            _ => return Err(err("expected `[METHODS] URL [sha256:PIN]`")),
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
        if let Some(prefix) = &path_prefix {
            // A prefix not in canonical form could never match a request.
            match normalize(prefix) {
                Ok(n) if n.query.is_none() && n.path == *prefix => {}
                Ok(_) => {
                    return Err(err(
                        "a path prefix must be a plain path (no query, no escapes of unreserved characters)",
                    ))
                }
                Err(why) => return Err(err(&format!("bad path prefix: {why}"))),
            }
        }
        if tls_pin_sha256.is_some() && scheme != "https" {
            return Err(err("a certificate pin needs an https rule"));
        }
        Ok(EgressRule {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(default_port),
            methods,
            path_prefix,
            allow_internal: false,
            tls_pin_sha256,
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

/// `sha256:HEX` (64 hex digits, `:` between bytes allowed, as `openssl
/// x509 -fingerprint -sha256` prints them) → lowercase hex.
pub fn parse_pin(text: &str) -> Result<String, String> {
    let hex_part = text
        .strip_prefix("sha256:")
        .or_else(|| text.strip_prefix("SHA256:"))
        .ok_or_else(|| "a certificate pin is written `sha256:<64 hex digits>`".to_string())?;
    let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
    if digits.len() != 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(
            "a certificate pin must be 64 hex digits (a SHA-256 of the certificate)".into(),
        );
    }
    Ok(digits.to_ascii_lowercase())
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

/// A request the policy allows: the rule, and the request target that was
/// checked, which is the one to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed<'a> {
    pub rule: &'a EgressRule,
    /// The canonical `path[?query]`.
    pub path_and_query: String,
}

impl EgressPolicy {
    pub fn new(rules: Vec<EgressRule>) -> Self {
        EgressPolicy { rules }
    }

    /// The first rule allowing this request, or why none does. `path` is the
    /// request's `path[?query]`; it is normalised once, refused if ambiguous,
    /// and the canonical form is returned for sending.
    pub fn check(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        method: &str,
        path: &str,
    ) -> Result<Allowed<'_>, Denial> {
        if self.rules.is_empty() {
            return Err(Denial(
                "no egress is allowed for this server (empty policy)".into(),
            ));
        }
        let target = normalize(path).map_err(|why| Denial(why.to_string()))?;
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
                if !target.is_within(prefix) {
                    near_miss = Some(format!(
                        "path `{}` is outside `{prefix}` for {dest}",
                        shorten(&target.path)
                    ));
                    continue;
                }
            }
            return Ok(Allowed {
                rule,
                path_and_query: target.request_target(),
            });
        }
        Err(Denial(near_miss.unwrap_or_else(|| {
            format!("{dest} is not in the egress policy")
        })))
    }
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
            "https://x sha256:abcd",
            "http://x sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "https://x md5:9f86d081884c7d659a2feaa0c55ad015",
            "GET https://x extra words",
        ] {
            assert!(EgressRule::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn parses_certificate_pins() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let r =
            EgressRule::parse(&format!("https://10.0.0.5:2087/json-api/ sha256:{hex}")).unwrap();
        assert_eq!(r.tls_pin_sha256.as_deref(), Some(hex));
        assert_eq!(r.path_prefix.as_deref(), Some("/json-api/"));
        // openssl's colon-separated upper-case form is the same pin.
        let colons = hex
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        let r2 = EgressRule::parse(&format!("POST https://h:2087 SHA256:{colons}")).unwrap();
        assert_eq!(r2.tls_pin_sha256.as_deref(), Some(hex));
        assert_eq!(r2.methods, vec!["POST"]);
        assert!(EgressRule::parse("https://h")
            .unwrap()
            .tls_pin_sha256
            .is_none());
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

    /// The request target `check` hands back for a GET to `api.example.com`.
    fn checked(p: &EgressPolicy, path: &str) -> Result<String, String> {
        p.check("https", "api.example.com", 443, "GET", path)
            .map(|a| a.path_and_query)
            .map_err(|d| d.0)
    }

    #[test]
    fn allowed_requests_carry_the_canonical_target() {
        let p = policy(&["https://api.example.com/api/"]);
        assert_eq!(checked(&p, "/api/x").unwrap(), "/api/x");
        assert_eq!(checked(&p, "/api/%7Eu%2Dv").unwrap(), "/api/~u-v");
        assert_eq!(checked(&p, "/api/a%2eb").unwrap(), "/api/a.b");
        assert_eq!(checked(&p, "/api/a%3bb").unwrap(), "/api/a%3Bb");
        assert_eq!(checked(&p, "/api/x;v=1").unwrap(), "/api/x;v=1");
        assert_eq!(
            checked(&p, "/api/x?r=/../admin&s=%2F").unwrap(),
            "/api/x?r=/../admin&s=%2F"
        );
        // `%61pi` is `api`: decoding unreserved escapes is not a bypass but
        // the same path, and it is sent decoded.
        assert_eq!(checked(&p, "/%61pi/x").unwrap(), "/api/x");
        // Without a path prefix the same canonical form is sent.
        let open = policy(&["https://api.example.com"]);
        assert_eq!(checked(&open, "/%7Ex").unwrap(), "/~x");
        assert_eq!(checked(&open, "").unwrap(), "/");
    }

    #[test]
    fn ambiguous_paths_are_refused_with_the_reason() {
        // Refused whatever the rules say: a host-wide rule too.
        for rules in [
            &["https://api.example.com/api/"][..],
            &["https://api.example.com"][..],
        ] {
            let p = policy(rules);
            for (path, why) in [
                ("/api/..;/admin", "dot segment (`..;`)"),
                ("/api/.;/admin", "dot segment (`.;`)"),
                ("/api/..;a=b/admin", "dot segment (`..;a=b`)"),
                ("/api/%252e%252e/admin", "encoded percent sign (%25)"),
                ("/api/%25u002e", "encoded percent sign (%25)"),
                ("/api/%2e%2e/admin", "dot segment (`..`)"),
                ("/api/.%2E/admin", "dot segment (`..`)"),
                ("/api/../admin", "dot segment (`..`)"),
                ("/api/./x", "dot segment (`.`)"),
                ("/api/..%3B/admin", "dot segment (`..%3B`)"),
                ("/api/..%20/admin", "dot segment (`..%20`)"),
                ("/api/..%2Fadmin", "encoded slash (%2F)"),
                ("/api/..%2fadmin", "encoded slash (%2F)"),
                ("/api/..%5Cadmin", "encoded backslash (%5C)"),
                ("/api/..\\admin", "backslash"),
                ("/api/%00.json", "NUL"),
                ("/api/x?q=%00", "NUL"),
                ("/api/%0D%0A", "control character"),
                ("/api/x?q=a\tb", "control character"),
                ("/api/%u002e%u002e/admin", "invalid percent escape (`%u0`)"),
                ("/api/%zz", "invalid percent escape (`%zz`)"),
                ("/api/x%", "invalid percent escape (`%`)"),
                ("/api/\u{ff0e}\u{ff0e}/admin", "non-ASCII byte (0xEF)"),
                (
                    "/api/%EF%BC%8E%EF%BC%8E/admin",
                    "encoded non-ASCII byte (%EF)",
                ),
                ("/api/%C0%AE%C0%AE/admin", "encoded non-ASCII byte (%C0)"),
                ("/api//admin", "empty segment"),
                ("//api/x", "empty segment"),
                ("/api/a|b", "must be percent-encoded (`|`)"),
                ("/api/x#y", "fragment"),
                ("*", "must start with `/`"),
            ] {
                let denial = checked(&p, path).expect_err(path);
                assert!(denial.contains(why), "{path}: {denial}");
            }
        }
    }

    #[test]
    fn path_prefixes_match_whole_segments() {
        let dir = policy(&["https://api.example.com/api/"]);
        assert!(checked(&dir, "/api/").is_ok());
        let outside = checked(&dir, "/apix").unwrap_err();
        assert!(outside.contains("outside `/api/`"), "{outside}");
        assert!(checked(&dir, "/api").is_err());
        assert!(checked(&dir, "/api;x/admin").is_err());
        let bare = policy(&["https://api.example.com/api"]);
        assert!(checked(&bare, "/api").is_ok());
        assert!(checked(&bare, "/api?x=1").is_ok());
        assert!(checked(&bare, "/api/users").is_ok());
        assert!(checked(&bare, "/apiadmin").is_err());
        assert!(checked(&bare, "/api.json").is_err());
        // A 60 KB path is quoted shortened in the reason.
        let long = format!("/{}", "a".repeat(60 << 10));
        assert!(checked(&bare, &long).unwrap_err().len() < 200);
    }

    #[test]
    fn rule_prefixes_must_be_canonical() {
        for bad in [
            "https://x/api/../admin/",
            "https://x/api//",
            "https://x/%7Eapi/",
            "https://x/api/?q=1",
            "https://x/a%2Fb/",
            "https://x/a\\b/",
        ] {
            assert!(EgressRule::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(EgressRule::parse("https://x/a%3Bb/").is_ok());
        assert!(EgressRule::parse("https://x/~api/v1").is_ok());
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
