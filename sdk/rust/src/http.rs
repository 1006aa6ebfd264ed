//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Every request goes through the host's egress policy; a refused request
//! fails with [`HttpError::Denied`] and the host's operation log says why.
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::{transient, AdapterError};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An outgoing request. Build it with [`Request::get`], [`Request::post`], ...
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Per-request timeout (see [`Request::timeout_ms`]).
    pub timeout_ms: Option<u64>,
}

/// A buffered response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request did not produce a response.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The URL could not be parsed.
    InvalidUrl(String),
    /// The host's egress policy (or a secret binding) refused the request.
    Denied(String),
    /// Timeouts, resets, refused connections, DNS failures.
    Network(String),
    /// The server refused the TLS client certificate the host presented
    /// (or its absence): a client identity secret is missing, wrong or not
    /// bound to this destination.
    CertificateRefused(String),
    /// Anything else the host reported.
    Other(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            HttpError::Denied(m) => write!(f, "request denied by the host: {m}"),
            HttpError::Network(m) => write!(f, "network error: {m}"),
            HttpError::CertificateRefused(m) => write!(f, "client certificate refused: {m}"),
            HttpError::Other(m) => write!(f, "HTTP error: {m}"),
        }
    }
}

impl From<HttpError> for AdapterError {
    /// Network trouble is worth a retry; a denial or a bad URL is not; a
    /// refused client certificate is an authentication failure.
    fn from(e: HttpError) -> AdapterError {
        match e {
            HttpError::Network(_) => transient(e.to_string(), None),
            HttpError::CertificateRefused(_) => AdapterError::AuthFailed(e.to_string()),
            HttpError::Denied(_) | HttpError::InvalidUrl(_) | HttpError::Other(_) => {
                AdapterError::Permanent(e.to_string())
            }
        }
    }
}

impl Request {
    pub fn new(method: &str, url: impl Into<String>) -> Request {
        Request {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }
    pub fn get(url: impl Into<String>) -> Request {
        Request::new("GET", url)
    }
    pub fn post(url: impl Into<String>) -> Request {
        Request::new("POST", url)
    }
    pub fn put(url: impl Into<String>) -> Request {
        Request::new("PUT", url)
    }
    pub fn delete(url: impl Into<String>) -> Request {
        Request::new("DELETE", url)
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    /// `Authorization: Bearer <placeholder of secret>`.
    pub fn bearer_secret(self, secret: &str) -> Result<Request, AdapterError> {
        let p = crate::secrets::placeholder(secret)?;
        Ok(self.header("authorization", format!("Bearer {p}")))
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }
    /// A JSON body with `content-type: application/json`.
    pub fn json<T: Serialize>(self, value: &T) -> Request {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.header("content-type", "application/json").body(body)
    }
    /// Give up on this request after `ms` milliseconds: sets the connect,
    /// first-byte and between-bytes timeouts of `wasi:http`, so a hung
    /// server fails as a [`HttpError::Network`] (→ `transient`) while the
    /// call still has time to report it. The host also never lets a request
    /// outlive the call; see [`crate::deadline::Deadline`] to stay below it.
    pub fn timeout_ms(mut self, ms: u64) -> Request {
        self.timeout_ms = Some(ms);
        self
    }
    pub fn send(self) -> Result<Response, HttpError> {
        send(self)
    }
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Decode the body as JSON; a non-JSON body is a `permanent` error that
    /// quotes the start of the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AdapterError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let start: String = self.text().chars().take(120).collect();
            AdapterError::Permanent(format!(
                "expected a JSON body (HTTP {}): {e}; body starts with {start:?}",
                self.status
            ))
        })
    }
    /// `Retry-After` in milliseconds, when given in seconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("retry-after")?
            .trim()
            .parse::<u64>()
            .ok()
            .map(|s| s * 1000)
    }
}

struct Parsed<'a> {
    scheme: Scheme,
    authority: &'a str,
    path_and_query: &'a str,
}

fn parse_url(url: &str) -> Result<Parsed<'_>, HttpError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| HttpError::InvalidUrl(format!("`{url}` has no scheme")))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(HttpError::InvalidUrl(format!(
                "unsupported scheme `{other}`"
            )))
        }
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(HttpError::InvalidUrl(format!("`{url}` has no host")));
    }
    let path_and_query = if path.is_empty() { "/" } else { path };
    Ok(Parsed {
        scheme,
        authority,
        path_and_query,
    })
}

fn method_of(m: &str) -> Method {
    match m.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    }
}

fn classify(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            HttpError::Denied(format!("{code:?}"))
        }
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseIncomplete
        | ErrorCode::HttpResponseTimeout => HttpError::Network(format!("{code:?}")),
        // The host reports a refused client certificate as this alert.
        ErrorCode::TlsAlertReceived(ref alert) if is_certificate_refusal(alert.alert_id) => {
            HttpError::CertificateRefused(
                alert
                    .alert_message
                    .clone()
                    .unwrap_or_else(|| format!("{code:?}")),
            )
        }
        other => HttpError::Other(format!("{other:?}")),
    }
}

/// TLS alerts a server sends when it refuses the client's certificate:
/// bad_certificate (42), unsupported (43), revoked (44), expired (45),
/// certificate_unknown (46), unknown_ca (48), access_denied (49),
/// certificate_required (116).
fn is_certificate_refusal(alert_id: Option<u8>) -> bool {
    matches!(alert_id, Some(42..=46 | 48 | 49 | 116))
}

/// Send a request and read the whole response.
pub fn send(req: Request) -> Result<Response, HttpError> {
    let url = parse_url(&req.url)?;
    let mut entries = Vec::with_capacity(req.headers.len());
    for (k, v) in &req.headers {
        entries.push((k.to_ascii_lowercase(), v.as_bytes().to_vec()));
    }
    let headers =
        Fields::from_list(&entries).map_err(|e| HttpError::Other(format!("bad header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let bad = |what: &str| HttpError::InvalidUrl(format!("rejected {what} in `{}`", req.url));
    outgoing
        .set_method(&method_of(&req.method))
        .map_err(|_| bad("method"))?;
    outgoing
        .set_scheme(Some(&url.scheme))
        .map_err(|_| bad("scheme"))?;
    outgoing
        .set_authority(Some(url.authority))
        .map_err(|_| bad("authority"))?;
    outgoing
        .set_path_with_query(Some(url.path_and_query))
        .map_err(|_| bad("path"))?;
    let options = req.timeout_ms.map(|ms| {
        let o = RequestOptions::new();
        let ns = ms.saturating_mul(1_000_000);
        // A host may not support every timeout; the others still apply.
        let _ = o.set_connect_timeout(Some(ns));
        let _ = o.set_first_byte_timeout(Some(ns));
        let _ = o.set_between_bytes_timeout(Some(ns));
        o
    });
    let body = outgoing
        .body()
        .map_err(|_| HttpError::Other("request body already taken".into()))?;
    let pending = outgoing_handler::handle(outgoing, options).map_err(classify)?;
    {
        let stream = body
            .write()
            .map_err(|_| HttpError::Other("request body stream unavailable".into()))?;
        for chunk in req.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError::Network(format!("writing body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(classify)?;

    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(code))) => return Err(classify(code)),
        Some(Err(())) => return Err(HttpError::Other("response already taken".into())),
        None => return Err(HttpError::Other("response not ready".into())),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|_| HttpError::Other("response body already taken".into()))?;
    let stream = incoming
        .stream()
        .map_err(|_| HttpError::Other("response body stream unavailable".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Network(format!(
                    "reading body: {}",
                    e.to_debug_string()
                )))
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// GET a URL and decode a JSON body from a 2xx answer.
pub fn get_json<T: DeserializeOwned>(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<T, AdapterError> {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(k, *v);
    }
    let resp = req.send()?;
    if !resp.is_success() {
        return Err(status_error(&resp));
    }
    resp.json()
}

/// The conventional mapping of an HTTP error status to an adapter error.
pub fn status_error(resp: &Response) -> AdapterError {
    let body: String = resp.text().chars().take(200).collect();
    let msg = format!("HTTP {}: {body}", resp.status);
    match resp.status {
        400 | 422 => AdapterError::InvalidInput(msg),
        401 | 403 => AdapterError::AuthFailed(msg),
        404 => AdapterError::NotFound(msg),
        409 => AdapterError::Conflict(msg),
        408 | 425 | 429 | 500..=599 => transient(msg, resp.retry_after_ms()),
        _ => AdapterError::Permanent(msg),
    }
}

/// Whether an answer is an HTML page (by its content type or its first
/// bytes): a provider's login or error page where an API answer was
/// expected, often with status 200.
pub fn looks_like_html(content_type: Option<&str>, body: &[u8]) -> bool {
    let ct_html = content_type.is_some_and(|c| c.to_ascii_lowercase().contains("html"));
    let start: Vec<u8> = body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(15)
        .map(u8::to_ascii_lowercase)
        .collect();
    ct_html || start.starts_with(b"<!doctype html") || start.starts_with(b"<html")
}

/// The first `max_chars` characters of a body, each one that is not
/// printable ASCII shown as `.`: safe to quote in an error or a log line
/// (no control sequences, bounded length).
pub fn snippet(body: &[u8], max_chars: usize) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(max_chars)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '.'
            }
        })
        .collect()
}

/// What an operator should fix for each kind of transport failure, as an
/// adapter words it for its provider.
pub struct TransportHints<'a> {
    /// After a host denial: which egress rule and secret binding to check.
    pub egress: &'a str,
    /// After a TLS failure: how to pin or trust the server's certificate.
    pub tls: &'a str,
    /// After a refused client certificate: which identity to bind.
    pub identity: &'a str,
}

/// The typed error for a request that got no answer, `at` naming the call:
/// network trouble is `transient`; a refused client certificate
/// `auth-failed`; a denial or a TLS failure `permanent`, each with its hint.
pub fn transport_error(at: &str, e: HttpError, hints: &TransportHints) -> AdapterError {
    match e {
        HttpError::Network(_) => transient(format!("{at}: {e}"), None),
        HttpError::CertificateRefused(_) => {
            AdapterError::AuthFailed(format!("{at}: {e}; {}", hints.identity))
        }
        HttpError::Denied(_) => AdapterError::Permanent(format!("{at}: {e}; {}", hints.egress)),
        HttpError::Other(ref m) if m.contains("Tls") => {
            AdapterError::Permanent(format!("{at}: {e}; {}", hints.tls))
        }
        other => AdapterError::Permanent(format!("{at}: {other}")),
    }
}

/// Percent-encode `value` for a URL query component: everything but ASCII
/// letters, digits and `-._~` (RFC 3986's unreserved set).
pub fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A request path as its operation's template, for logs (ids and names
/// vary, the operation does not): the query dropped, all-digit segments and
/// the segment after any of `named` (unless it is one of `actions`) become
/// `{id}`. `("/containers/web1/start", ["containers"], ["create", "json"])`
/// → `/containers/{id}/start`.
pub fn path_template(path: &str, named: &[&str], actions: &[&str]) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let after = if i > 0 { parts[i - 1] } else { "" };
            let digits = !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
            let named_here = named.contains(&after) && !actions.contains(p) && !p.is_empty();
            if digits || named_here {
                "{id}"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_escapes() {
        assert_eq!(query_escape("a b/c=d&é~"), "a%20b%2Fc%3Dd%26%C3%A9~");
        assert_eq!(query_escape("panel1.io-x_y"), "panel1.io-x_y");
    }

    #[test]
    fn templates_and_transport_errors() {
        assert_eq!(
            path_template("/domains/17/status", &[], &[]),
            "/domains/{id}/status"
        );
        assert_eq!(
            path_template("/cli/login/call", &["cli"], &[]),
            "/cli/{id}/call"
        );
        assert_eq!(
            path_template(
                "/containers/create?name=x",
                &["containers"],
                &["create", "json"]
            ),
            "/containers/create"
        );
        assert_eq!(
            path_template(
                "/containers/web1/start",
                &["containers"],
                &["create", "json"]
            ),
            "/containers/{id}/start"
        );
        let hints = TransportHints {
            egress: "allow it",
            tls: "pin it",
            identity: "bind it",
        };
        let kind = |e: HttpError| crate::kind_name(&transport_error("X y", e, &hints));
        assert_eq!(kind(HttpError::Network("reset".into())), "transient");
        assert_eq!(
            kind(HttpError::CertificateRefused("alert".into())),
            "auth-failed"
        );
        assert_eq!(kind(HttpError::Denied("no rule".into())), "permanent");
        let e = transport_error(
            "X y",
            HttpError::Other("TlsCertificateError".into()),
            &hints,
        );
        assert!(
            matches!(e, AdapterError::Permanent(ref m) if m.ends_with("; pin it")),
            "{e:?}"
        );
    }

    #[test]
    fn parses_urls() {
        let p = parse_url("https://whm.example.com:2087/json-api/version?api.version=1").unwrap();
        assert_eq!(p.authority, "whm.example.com:2087");
        assert_eq!(p.path_and_query, "/json-api/version?api.version=1");
        assert_eq!(parse_url("http://h").unwrap().path_and_query, "/");
        assert!(parse_url("ftp://h/").is_err());
        assert!(parse_url("h/x").is_err());
    }

    #[test]
    fn html_pages() {
        let page = b"\n  <!DOCTYPE html>\n<html><head><title>Login</title>";
        assert!(looks_like_html(None, page));
        assert!(looks_like_html(Some("text/plain"), b"<HTML><body>"));
        assert!(looks_like_html(Some("Text/HTML; charset=utf-8"), b"{}"));
        assert!(looks_like_html(Some("application/xhtml+xml"), b""));
        assert!(!looks_like_html(
            Some("application/json"),
            b"{\"a\":\"<html>\"}"
        ));
        assert!(!looks_like_html(None, b"<?xml version=\"1.0\"?><html/>"));
        assert!(!looks_like_html(None, b""));
    }

    #[test]
    fn snippets_are_short_and_printable() {
        assert_eq!(snippet(b"plain text", 100), "plain text");
        assert_eq!(snippet(b"abcdef", 3), "abc");
        assert_eq!(snippet(b"a\x1b[31mb\r\n\tc", 100), "a.[31mb...c");
        // Counted in characters, not bytes; non-ASCII is masked too.
        assert_eq!(snippet("é€xyz".as_bytes(), 3), "..x");
        // Invalid UTF-8 becomes one replacement character, masked.
        assert_eq!(snippet(b"\xffok", 100), ".ok");
        assert_eq!(snippet(&[b'x'; 500], 100).len(), 100);
    }
}
