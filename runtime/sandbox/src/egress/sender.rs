//! Our own HTTP/1.1 sender: policy check → secret binding check → host-side
//! DNS → resolved-address check → connect to that exact address → TLS with
//! the original name (SNI and certificate) → send, all under the call's
//! remaining time and size caps.
use super::address::classify_ip;
use super::bodies;
use super::guard::Outgoing;
use super::identity;
use super::policy::EgressRule;
use super::secrets::{self, Context, Secret};
use super::tape::{HttpTape, RecordedExchange, RecordedRequest, RecordedResponse};
use super::{EgressShared, HttpExchange};
use crate::log_buffer::{truncated, LogLevel};
use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST, IF_RANGE, RANGE, TE,
};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(super) struct Attempt {
    pub(super) shared: Arc<EgressShared>,
    started: Instant,
    pub(super) exchange: HttpExchange,
    /// The guest-built request, when the call records its exchanges.
    pub(super) recording: Option<RecordedRequest>,
}

impl Attempt {
    /// Refuse the request: nothing has left the host.
    pub(super) fn deny(mut self, reason: String, err: Error) -> Error {
        self.shared.log.host(
            LogLevel::Warn,
            &format!("egress denied: {reason}"),
            vec![
                ("method".into(), self.exchange.method.clone()),
                ("url".into(), self.exchange.url.clone()),
            ],
        );
        self.exchange.denied = Some(reason);
        self.finish();
        err
    }

    pub(super) fn fail(mut self, what: String, err: Error) -> Error {
        self.shared.log.host(
            LogLevel::Warn,
            &format!("outbound request failed: {what}"),
            vec![("url".into(), self.exchange.url.clone())],
        );
        self.tape(None, Some(self.shared.sanitizer().text(&what)));
        self.exchange.error = Some(what);
        self.finish();
        err
    }

    /// Keep the exchange in the call's recording, if it records.
    pub(super) fn tape(&mut self, response: Option<RecordedResponse>, error: Option<String>) {
        if let (Some(request), Some(HttpTape::Record(rec))) =
            (self.recording.take(), &self.shared.tape)
        {
            rec.push(RecordedExchange {
                request,
                response,
                error,
            });
        }
    }

    pub(super) fn finish(mut self) {
        self.exchange.duration_us = self.started.elapsed().as_micros() as u64;
        self.shared.record(self.exchange);
    }
}

pub async fn send(
    shared: Arc<EgressShared>,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<WasiBody>, Error> {
    let (parts, body) = request.into_parts();
    let uri = parts.uri.clone();
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "http" { 80 } else { 443 });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let method = parts.method.as_str().to_string();
    let attempt = Attempt {
        shared: shared.clone(),
        started: Instant::now(),
        exchange: HttpExchange {
            method: truncated(&method, 32),
            url: truncated(&uri.to_string(), super::RECORDED_URL_MAX),
            address: None,
            status: None,
            denied: None,
            error: None,
            bytes_sent: 0,
            bytes_received: 0,
            duration_us: 0,
        },
        recording: None,
    };

    let n = shared.counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if n > shared.context.limits.http_max_requests {
        let why = format!(
            "request limit of {} per call reached",
            shared.context.limits.http_max_requests
        );
        return Err(attempt.deny(why, Error::HttpRequestDenied));
    }
    let policy_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    // From here on `path` is the canonical target the policy checked: it is
    // what the server receives (secret placeholders aside).
    let (rule, path): (EgressRule, String) =
        match shared
            .context
            .egress
            .check(&scheme, &policy_host, port, &method, &path)
        {
            Ok(allowed) => (allowed.rule.clone(), allowed.path_and_query),
            Err(denial) => return Err(attempt.deny(denial.0, Error::HttpRequestDenied)),
        };

    // The request body, buffered under the cap (secrets may sit in it) and
    // held against the host budget until it is sent.
    let cap = shared.context.limits.http_max_request_bytes;
    let mut request_charge = match shared.budget.charge_request(0) {
        Ok(c) => c,
        Err(e) => return Err(attempt.fail(e.to_string(), Error::HttpRequestBodySize(None))),
    };
    let body = match bodies::collect_limited(body, cap, &mut request_charge).await {
        Ok(b) => b,
        Err(e) => return Err(attempt.fail("request body too large or unreadable".into(), e)),
    };
    // Host work the guest pays for: copying, scanning and substituting.
    shared.budget.charge_bytes(body.len() + path.len());

    // Secrets the guest wrote itself (outbound scan), then sticky binding:
    // both before DNS, so not even a lookup carries a secret or follows one.
    let url = uri.to_string();
    let written = Outgoing {
        method: &method,
        url: &url,
        headers: &parts.headers,
        body: &body,
    };
    let secret_check = shared
        .guard
        .check_outbound(&shared.context.secrets, &written, &host, port);
    let carried = match secret_check {
        Ok(carried) => carried,
        Err(why) => return Err(attempt.deny(why, Error::HttpRequestDenied)),
    };
    if let Err(why) = shared
        .guard
        .check_sticky(&shared.context.secrets, &host, port)
    {
        return Err(attempt.deny(why, Error::HttpRequestDenied));
    }

    // Secrets: every placeholder must name a secret bound to this host.
    let mut names = secrets::referenced(path.as_bytes());
    for (_, v) in parts.headers.iter() {
        names.extend(secrets::referenced(v.as_bytes()));
    }
    names.extend(secrets::referenced(&body));
    let mut used: Vec<Secret> = Vec::new();
    for name in names {
        match shared.context.secrets.iter().find(|s| s.name == name) {
            None => {
                let why = format!("placeholder for unknown secret `{name}`");
                return Err(attempt.deny(why, Error::HttpRequestDenied));
            }
            Some(s) if !s.bound_to(&host, port) => {
                let why = format!("secret `{name}` is not bound to {host}:{port}");
                return Err(attempt.deny(why, Error::HttpRequestDenied));
            }
            Some(s) if identity::is_identity(&s.value) => {
                let why = format!(
                    "secret `{name}` is a client identity: the host presents it in the TLS \
                     handshake, it never goes in a request"
                );
                return Err(attempt.deny(why, Error::HttpRequestDenied));
            }
            Some(s) => {
                if !used.iter().any(|u| u.name == s.name) {
                    used.push(s.clone())
                }
            }
        }
    }
    for index in carried {
        shared.guard.expose(&shared.context.secrets[index].name);
    }
    for s in &used {
        shared.guard.expose(&s.name);
    }
    // Recorded and replayed as the guest built it: placeholders, no values.
    let taped = shared.tape.as_ref().map(|_| {
        shared
            .sanitizer()
            .request(&method, &url, &parts.headers, &body)
    });
    // Substituted under the same cap as what the guest wrote, and held
    // against the host budget: a short placeholder can stand for a long
    // value, and a megabyte of placeholders for a hundred megabytes.
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let too_large = |what: &str| {
        format!("the request's {what} would be over {cap} bytes once its secrets are substituted")
    };
    let Some(path) = secrets::substitute_within(path.as_bytes(), &used, Context::UrlComponent, cap)
    else {
        return Err(attempt.fail(too_large("path"), Error::HttpRequestUriTooLong));
    };
    let path = String::from_utf8_lossy(&path).into_owned();
    let body_ctx = body_context(parts.headers.get(CONTENT_TYPE));
    let Some(body) = secrets::substitute_within(&body, &used, body_ctx, cap) else {
        return Err(attempt.fail(
            too_large("body"),
            Error::HttpRequestBodySize(Some(cap as u64)),
        ));
    };
    let body = Bytes::from(body);
    let mut header_bytes = 0usize;
    let mut headers = http::HeaderMap::new();
    for (k, v) in parts.headers.iter() {
        if k == HOST || k == CONTENT_LENGTH {
            continue;
        }
        let Some(value) = secrets::substitute_within(v.as_bytes(), &used, Context::Header, cap)
        else {
            return Err(attempt.fail(
                too_large("headers"),
                Error::HttpRequestHeaderSectionSize(None),
            ));
        };
        header_bytes += k.as_str().len() + value.len();
        if header_bytes > cap {
            return Err(attempt.fail(
                too_large("headers"),
                Error::HttpRequestHeaderSectionSize(None),
            ));
        }
        match HeaderValue::from_bytes(&value) {
            Ok(v) => {
                headers.append(k.clone(), v);
            }
            Err(_) => {
                return Err(attempt.deny(
                    format!("header `{k}` is invalid after secret substitution"),
                    Error::HttpRequestDenied,
                ))
            }
        }
    }

    let built = (path.len() + body.len() + header_bytes) as u64;
    if let Err(e) = request_charge.grow(built) {
        return Err(attempt.fail(e.to_string(), Error::HttpRequestBodySize(None)));
    }
    shared.budget.charge_bytes(built as usize);

    let mut attempt = attempt;
    match (&shared.tape, taped) {
        // Every check above ran as live; the answer comes from the tape.
        (Some(HttpTape::Replay(set)), Some(request)) => {
            return super::replay::serve(attempt, set, request)
        }
        (_, request) => attempt.recording = request,
    }

    if !shared.context.secrets.is_empty() {
        // What the scrubber could not read in a response is refused: a
        // compressed echo (or one in a transfer coding) would pass unread,
        // and a ranged read returns a stored secret in pieces no scan
        // recognises. So a call that holds secrets asks for neither.
        if headers.contains_key(RANGE) || headers.contains_key(IF_RANGE) {
            return Err(attempt.deny(
                "ranged requests are refused in a call that holds secrets: a secret \
                 read back in pieces could not be scrubbed"
                    .into(),
                Error::HttpRequestDenied,
            ));
        }
        headers.remove(TE);
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }

    let _permit = shared
        .inflight
        .acquire()
        .await
        .map_err(|_| Error::ConnectionLimitReached)?;

    // Time budget: the policy's timeouts, never past the call's deadline.
    let remaining = shared.deadline.saturating_duration_since(Instant::now());
    let connect_budget = remaining.min(Duration::from_millis(
        shared.context.limits.http_connect_timeout_ms,
    ));
    let mut total_budget = remaining.min(Duration::from_millis(
        shared.context.limits.http_request_timeout_ms,
    ));
    if let Some(t) = options.as_ref().and_then(|o| o.first_byte_timeout) {
        total_budget = total_budget.min(t);
    }
    if remaining.is_zero() {
        return Err(attempt.fail("no time left in the call".into(), Error::ConnectionTimeout));
    }

    // Resolve on the host, then check every address we might connect to.
    let candidates: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(connect_budget, shared.resolver.resolve(&host, port)).await {
                Ok(Ok(addrs)) => addrs,
                Ok(Err(e)) => {
                    return Err(attempt.fail(
                        format!("DNS lookup of `{host}` failed: {e}"),
                        Error::DnsError {
                            rcode: Some("lookup failed".into()),
                            info_code: None,
                        },
                    ))
                }
                Err(_) => {
                    return Err(attempt.fail(
                        format!("DNS lookup of `{host}` timed out"),
                        Error::DnsTimeout,
                    ))
                }
            }
        }
    };
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for addr in candidates {
        let class = classify_ip(addr.ip());
        if rule.permits_address(addr.ip(), class.is_internal()) {
            allowed.push(addr);
        } else {
            refused.push(format!("{} ({})", addr.ip(), class.as_str()));
        }
    }
    if allowed.is_empty() {
        let why = if refused.is_empty() {
            format!("`{host}` resolved to no address")
        } else {
            format!(
                "`{host}` resolved to {} which the policy does not allow",
                refused.join(", ")
            )
        };
        return Err(attempt.deny(why, Error::DestinationIpProhibited));
    }

    let deadline = Instant::now() + total_budget;
    let (stream, addr) = match connect_any(&allowed, connect_budget).await {
        Ok(s) => s,
        Err(e) => return Err(attempt.fail(e.0, e.1)),
    };
    attempt.exchange.address = Some(addr.to_string());

    let io: Box<dyn Io> = if scheme == "https" {
        let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
            Ok(n) => n,
            Err(_) => {
                return Err(attempt.fail(
                    format!("`{host}` is not a valid TLS server name"),
                    Error::TlsProtocolError,
                ))
            }
        };
        // A pinned rule trusts its one certificate (or CA); a destination
        // with a trust anchor bound, that CA; every other, the roots.
        let mut config = match &rule.tls_pin_sha256 {
            Some(pin) => super::pinning::pinned_tls_config(pin),
            None => match super::anchor::for_destination(&shared.context.secrets, &host, port) {
                Ok(Some(anchored)) => anchored,
                Ok(None) => shared.tls.clone(),
                Err(why) => return Err(attempt.fail(why, Error::TlsProtocolError)),
            },
        };
        // A client identity bound to this destination is presented.
        match identity::for_destination(&shared.context.secrets, &host, port) {
            Ok(Some(id)) => config = identity::with_identity(&config, &id),
            Ok(None) => {}
            Err(why) => return Err(attempt.fail(why, Error::TlsProtocolError)),
        }
        let connector = tokio_rustls::TlsConnector::from(config);
        match tokio::time::timeout_at(deadline.into(), connector.connect(name, stream)).await {
            Ok(Ok(tls)) => Box::new(tls),
            Ok(Err(e)) => {
                let code = cert_refused(&e).unwrap_or(Error::TlsCertificateError);
                return Err(attempt.fail(format!("TLS handshake with {host}: {e}"), code));
            }
            Err(_) => {
                return Err(attempt.fail("TLS handshake timed out".into(), Error::ConnectionTimeout))
            }
        }
    } else {
        Box::new(stream)
    };

    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(io)).await {
        Ok(pair) => pair,
        Err(e) => {
            return Err(attempt.fail(format!("HTTP handshake: {e}"), Error::HttpProtocolError))
        }
    };
    let driver = tokio::spawn(conn);

    let authority = match uri.port_u16() {
        Some(p) => format!("{policy_host}:{p}"),
        None => policy_host.clone(),
    };
    let mut builder = http::Request::builder()
        .method(parts.method.clone())
        .uri(path.as_str());
    if let Some(h) = builder.headers_mut() {
        *h = headers;
        h.insert(
            HOST,
            HeaderValue::from_str(&authority).unwrap_or(HeaderValue::from_static("invalid")),
        );
    }
    let sent = body.len() as u64;
    let outgoing = match builder.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => {
            return Err(attempt.fail(
                format!("building request: {e}"),
                Error::HttpRequestUriInvalid,
            ))
        }
    };
    attempt.exchange.bytes_sent = sent;

    let response =
        match tokio::time::timeout_at(deadline.into(), sender.send_request(outgoing)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                // TLS 1.3 servers refuse a client certificate after the
                // handshake: the alert shows on the connection, not the request.
                let code = match cert_refused(&e) {
                    Some(code) => Some(code),
                    None => match tokio::time::timeout(Duration::from_millis(200), driver).await {
                        Ok(Ok(Err(conn_err))) => cert_refused(&conn_err),
                        _ => None,
                    },
                };
                let code = code.unwrap_or(Error::ConnectionTerminated);
                return Err(attempt.fail(format!("sending request: {e}"), code));
            }
            Err(_) => {
                return Err(attempt.fail(
                    format!("no response within {} ms", total_budget.as_millis()),
                    Error::HttpResponseTimeout,
                ))
            }
        };
    let (resp_parts, resp_body) = response.into_parts();
    let cap = shared.context.limits.http_max_response_bytes;
    // Charged to the host budget as it arrives; the charge rides in the
    // body handed to the guest and is released when that body is dropped.
    let mut charge = match shared.budget.charge_response(0) {
        Ok(c) => c,
        Err(e) => return Err(attempt.fail(e.to_string(), Error::HttpResponseBodySize(None))),
    };
    let body = match tokio::time::timeout_at(
        deadline.into(),
        bodies::collect_limited_incoming(resp_body, cap, shared.budget.remaining(), &mut charge),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return Err(attempt.fail(format!("response body over {cap} bytes or unreadable"), e))
        }
        Err(_) => {
            return Err(attempt.fail(
                "response body timed out".into(),
                Error::ConnectionReadTimeout,
            ))
        }
    };
    driver.abort();
    super::deliver::deliver(
        attempt,
        resp_parts.status,
        &resp_parts.headers,
        body,
        charge,
    )
}

fn body_context(ct: Option<&HeaderValue>) -> Context {
    let ct = ct
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.contains("json") {
        Context::Json
    } else if ct.contains("x-www-form-urlencoded") {
        Context::UrlComponent
    } else {
        Context::Raw
    }
}

async fn connect_any(
    addrs: &[SocketAddr],
    budget: Duration,
) -> Result<(TcpStream, SocketAddr), (String, Error)> {
    let deadline = Instant::now() + budget;
    let mut last = String::new();
    for addr in addrs {
        // Defense in depth: only addresses that passed the check get here.
        match tokio::time::timeout_at(deadline.into(), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, *addr));
            }
            Ok(Err(e)) => last = format!("connect to {addr}: {e}"),
            Err(_) => {
                return Err((
                    format!("connect to {addr} timed out"),
                    Error::ConnectionTimeout,
                ))
            }
        }
    }
    Err((last, Error::ConnectionRefused))
}

/// A server's refusal of the client certificate (or of its absence), as the
/// guest sees it: `tls-alert-received` with the alert.
fn cert_refused(e: &(dyn std::error::Error + 'static)) -> Option<Error> {
    identity::refusal_alert(e).map(|alert| Error::TlsAlertReceived {
        alert_id: Some(u8::from(alert)),
        alert_message: Some(format!(
            "the server refused the client certificate ({alert:?})"
        )),
    })
}
