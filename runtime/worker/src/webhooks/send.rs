//! One webhook POST with the egress protections adapters get: the host
//! name resolved here and every address checked (loopback, private,
//! link-local, metadata and other internal ranges refused unless the
//! operator allows them), the connection pinned to the checked addresses
//! (no second lookup to rebind), no redirects followed, a timeout, and the
//! answer read only up to a cap.
use panel1_sandbox::classify_ip;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// What the operator allows webhook URLs to reach.
#[derive(Debug, Clone)]
pub struct Reach {
    /// Internal addresses (loopback, private ranges, …): off by default.
    pub allow_internal: bool,
    /// Plain `http://`: off by default.
    pub allow_http: bool,
    pub timeout: Duration,
}

/// Bytes of an answer read at most; the rest is not waited for.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Characters of an answer kept in the delivery log.
const EXCERPT_CHARS: usize = 1000;

/// How one POST went.
#[derive(Debug, Clone)]
pub struct Sent {
    pub status: Option<u16>,
    pub latency_ms: u32,
    pub excerpt: Option<String>,
    /// Why it did not get an answer (refused before connecting, timeout…).
    pub error: Option<String>,
}

impl Sent {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The addresses `url` may be sent to, or why none.
pub async fn vet(url: &url::Url, reach: &Reach) -> Result<Vec<SocketAddr>, String> {
    match url.scheme() {
        "https" => {}
        "http" if reach.allow_http => {}
        "http" => return Err("plain http:// webhook URLs are not allowed (use https)".into()),
        other => return Err(format!("`{other}` is not a webhook scheme")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the webhook URL are refused".into());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let host = url.host().ok_or("the webhook URL has no host")?;
    let literal = !matches!(host, url::Host::Domain(_));
    let found: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![ip.into()],
        url::Host::Ipv6(ip) => vec![ip.into()],
        url::Host::Domain(name) => {
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(reach.timeout, lookup).await {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                Ok(Err(e)) => return Err(format!("`{name}` does not resolve: {e}")),
                Err(_) => return Err(format!("resolving `{name}` timed out")),
            }
        }
    };
    let mut refused = Vec::new();
    let allowed: Vec<SocketAddr> = found
        .iter()
        .filter(|ip| {
            let class = classify_ip(**ip);
            let ok = reach.allow_internal || !class.is_internal();
            if !ok {
                // A name's internal addresses are not shown to the tenant
                // (no map of the operator's network); a literal is theirs.
                refused.push(if literal {
                    format!("{ip} ({})", class.as_str())
                } else {
                    class.as_str().to_string()
                });
            }
            ok
        })
        .map(|ip| SocketAddr::new(*ip, port))
        .collect();
    if allowed.is_empty() {
        return Err(if refused.is_empty() {
            format!("`{host}` has no address")
        } else {
            refused.dedup();
            format!(
                "`{host}` resolves to {}, which webhooks may not reach (internal addresses are refused unless the operator allows them)",
                refused.join(", ")
            )
        });
    }
    Ok(allowed)
}

/// POST `body` with `headers` to `url`.
pub async fn post(url: &str, headers: &[(&str, String)], body: Vec<u8>, reach: &Reach) -> Sent {
    let started = Instant::now();
    let failed = |error: String, started: Instant| Sent {
        status: None,
        latency_ms: started.elapsed().as_millis().min(u32::MAX as u128) as u32,
        excerpt: None,
        error: Some(error),
    };
    let parsed = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return failed(format!("not a URL: {e}"), started),
    };
    let addrs = match vet(&parsed, reach).await {
        Ok(a) => a,
        Err(why) => return failed(why, started),
    };
    let mut client = reqwest::Client::builder()
        // A proxy would resolve the name itself, past the checks above.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(reach.timeout)
        .connect_timeout(reach.timeout.min(Duration::from_secs(5)))
        .user_agent("Panel1-Webhooks/1");
    if let Some(url::Host::Domain(name)) = parsed.host() {
        client = client.resolve_to_addrs(name, &addrs);
    }
    let client = match client.build() {
        Ok(c) => c,
        Err(e) => return failed(format!("HTTP client: {e}"), started),
    };
    let mut request = client.post(parsed).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return failed("timed out".into(), started),
        Err(e) => return failed(format!("no answer: {}", root_cause(&e)), started),
    };
    let status = response.status().as_u16();
    let mut answer = Vec::new();
    // Read up to the cap within what is left of the timeout.
    let read = tokio::time::timeout(reach.timeout.saturating_sub(started.elapsed()), async {
        while answer.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                _ => break,
            }
        }
    })
    .await;
    let text = printable(&String::from_utf8_lossy(
        &answer[..answer.len().min(MAX_ANSWER_BYTES)],
    ));
    Sent {
        status: Some(status),
        latency_ms: started.elapsed().as_millis().min(u32::MAX as u128) as u32,
        excerpt: Some(text.chars().take(EXCERPT_CHARS).collect())
            .filter(|t: &String| !t.is_empty()),
        error: match read {
            Ok(()) if (300..400).contains(&status) => {
                Some("a redirect (not followed: register the final URL)".into())
            }
            Ok(()) => None,
            Err(_) => Some("the answer's body timed out".into()),
        },
    }
}

/// Text Postgres can store: NUL (which `text` refuses) becomes U+FFFD.
pub fn printable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(internal: bool) -> Reach {
        Reach {
            allow_internal: internal,
            allow_http: false,
            timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn internal_addresses_and_schemes_are_refused() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        for target in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://10.0.0.8/hook",
            "https://169.254.169.254/latest",
            "https://localhost/hook",
        ] {
            let why = vet(&u(target), &reach(false)).await.unwrap_err();
            assert!(why.contains("may not reach"), "{target}: {why}");
        }
        assert!(vet(&u("https://127.0.0.1/hook"), &reach(true))
            .await
            .is_ok());
        assert!(vet(&u("http://93.184.215.14/"), &reach(true))
            .await
            .unwrap_err()
            .contains("http://"));
        assert!(vet(&u("https://u:p@93.184.215.14/"), &reach(true))
            .await
            .unwrap_err()
            .contains("credentials"));
        assert!(vet(&u("ftp://93.184.215.14/"), &reach(true)).await.is_err());
        // A name's internal addresses are classed, not listed.
        let why = vet(&u("https://localhost/"), &reach(false))
            .await
            .unwrap_err();
        assert!(
            why.contains("loopback") && !why.contains("127.0.0.1"),
            "{why}"
        );
        assert_eq!(printable("a\0b"), "a\u{FFFD}b");
    }
}
