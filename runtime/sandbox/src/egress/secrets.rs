//! Secret placeholders in outgoing requests: found, checked against the
//! secret's destination binding and substituted (escaped for where they
//! stand). Finding values in any encoding is the [`super::scanner`]'s job.
use super::policy::split_host_port;

const OPEN: &str = "{{secret:";
const CLOSE: &str = "}}";

/// A secret available to one call.
#[derive(Clone)]
pub struct Secret {
    pub name: String,
    pub value: String,
    /// `host`, `host:port` or `*.domain[:port]` the value may be sent to.
    pub destinations: Vec<String>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("value", &"[REDACTED]")
            .field("destinations", &self.destinations)
            .finish()
    }
}

impl Secret {
    pub fn bound_to(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.destinations.iter().any(|d| {
            let Some((h, p)) = split_host_port(d) else {
                return false;
            };
            let h = h.to_ascii_lowercase();
            let host_ok = match h.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => h == host,
            };
            host_ok && p.is_none_or(|p| p == port)
        })
    }
}

/// The placeholder text standing for secret `name`.
pub fn placeholder(name: &str) -> String {
    format!("{OPEN}{name}{CLOSE}")
}

/// Names of the secrets whose placeholders appear in `text`.
pub fn referenced(text: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = find(rest, OPEN.as_bytes()) {
        let after = &rest[i + OPEN.len()..];
        let Some(end) = find(after, CLOSE.as_bytes()) else {
            break;
        };
        let name = String::from_utf8_lossy(&after[..end]).into_owned();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end + CLOSE.len()..];
    }
    names
}

/// How a value must be escaped where its placeholder stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Context {
    Header,
    /// Path or query of the URL, or a form-encoded body.
    UrlComponent,
    /// Inside a JSON string.
    Json,
    Raw,
}

fn encode(value: &str, ctx: Context) -> String {
    match ctx {
        Context::Header | Context::Raw => value.to_string(),
        Context::Json => {
            let quoted = serde_json::to_string(value).unwrap_or_default();
            quoted[1..quoted.len() - 1].to_string()
        }
        Context::UrlComponent => {
            let mut out = String::new();
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        }
    }
}

/// Replace every placeholder of `secrets` in `input`.
#[cfg(test)]
pub fn substitute(input: &[u8], secrets: &[Secret], ctx: Context) -> Vec<u8> {
    substitute_within(input, secrets, ctx, usize::MAX).unwrap_or_default()
}

/// [`substitute`], or `None` once the result would be longer than `max`
/// bytes: a placeholder a few bytes long can stand for a long value, so a
/// capped input is no cap on what the host would build from it.
pub fn substitute_within(
    input: &[u8],
    secrets: &[Secret],
    ctx: Context,
    max: usize,
) -> Option<Vec<u8>> {
    let mut out = input.to_vec();
    for s in secrets {
        out = replace_all(
            &out,
            placeholder(&s.name).as_bytes(),
            encode(&s.value, ctx).as_bytes(),
            max,
        )?;
    }
    (out.len() <= max).then_some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `hay` with every `needle` replaced, or `None` past `max` bytes.
fn replace_all(hay: &[u8], needle: &[u8], with: &[u8], max: usize) -> Option<Vec<u8>> {
    if needle.is_empty() || find(hay, needle).is_none() {
        return Some(hay.to_vec());
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = find(rest, needle) {
        if out.len() + i + with.len() > max {
            return None;
        }
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Secret {
        Secret {
            name: "api-token".into(),
            value: "s3cr\"t&=/".into(),
            destinations: vec!["api.example.com:443".into(), "*.panel.test".into()],
        }
    }

    #[test]
    fn finds_and_substitutes_with_escaping() {
        let body = br#"{"password":"{{secret:api-token}}","x":"{{secret:other}}"}"#;
        assert_eq!(referenced(body), vec!["api-token", "other"]);
        let json = substitute(body, &[token()], Context::Json);
        assert!(String::from_utf8(json)
            .unwrap()
            .contains(r#""password":"s3cr\"t&=/""#));
        let url = substitute(
            b"/x?t={{secret:api-token}}",
            &[token()],
            Context::UrlComponent,
        );
        assert_eq!(url, b"/x?t=s3cr%22t%26%3D%2F");
    }

    #[test]
    fn substitution_stops_at_its_cap() {
        let body = "{{secret:api-token}}".repeat(100);
        // Each 20-byte placeholder becomes the 9-byte value: 900 bytes.
        assert!(substitute_within(body.as_bytes(), &[token()], Context::Raw, 900).is_some());
        assert!(substitute_within(body.as_bytes(), &[token()], Context::Raw, 899).is_none());
        let mut long = token();
        long.value = "x".repeat(4096);
        // 100 placeholders (2 000 bytes) would become 409 600 bytes.
        assert!(substitute_within(body.as_bytes(), &[long], Context::Raw, 1 << 16).is_none());
    }

    #[test]
    fn binding_checks_host_and_port() {
        let t = token();
        assert!(t.bound_to("api.example.com", 443));
        assert!(t.bound_to("API.example.com", 443));
        assert!(!t.bound_to("api.example.com", 80));
        assert!(!t.bound_to("evil.com", 443));
        assert!(t.bound_to("a.panel.test", 9));
        assert!(!t.bound_to("panel.test.evil.com", 9));
    }
}
