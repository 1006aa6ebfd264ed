//! A provider on 127.0.0.1 that echoes the bearer token it received, in the
//! encoding the path names (`/echo/<form>`): in the body, in an `x-echo`
//! header, split across two headers, or as a header name. Real providers
//! do this by accident (error pages, debug endpoints); here it is on purpose.
//! The encoders are written independently of the sandbox's scanner.
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Every echo form the server knows (`rev-hex` is one the scanner does not).
pub const FORMS: &[&str] = &[
    "raw",
    "upper",
    "base64",
    "base64url",
    "hex",
    "HEX",
    "pct",
    "pct-all",
    "pct-form",
    "json",
    "php",
    "json-u",
    "reversed",
    "basic",
    "html",
    "pct-twice",
    "split",
    "name-hex",
    "name-b64",
];

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct EchoServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl EchoServer {
    pub async fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let r = r.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(r.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        EchoServer { port, received }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn handle(
    received: Arc<Mutex<Vec<Received>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let body = req.into_body().collect().await?.to_bytes().to_vec();
    received.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body,
    });
    let form = path.strip_prefix("/echo/").unwrap_or("raw");
    let mut resp = Response::builder().status(200);
    let body = match form {
        "split" => {
            let (a, b) = token.split_at(token.len() / 2);
            resp = resp.header("x-part-1", a).header("x-part-2", b);
            "split".to_string()
        }
        "name-hex" => {
            resp = resp.header(format!("x-{}", hex(token.as_bytes())), "1");
            "named".to_string()
        }
        "name-b64" => {
            resp = resp.header(base64url(token.as_bytes()).to_ascii_lowercase(), "1");
            "named".to_string()
        }
        // A "compression" no scanner knows (each byte + 1), labelled as
        // such: what a gzip echo is to a scanner that does not inflate.
        "gzip" => {
            resp = resp.header("content-encoding", "gzip");
            token.bytes().map(|b| (b + 1) as char).collect()
        }
        // The same as a transfer coding: the client undoes `chunked` only.
        "gzip-te" => {
            resp = resp.header("transfer-encoding", "gzip, chunked");
            token.bytes().map(|b| (b + 1) as char).collect()
        }
        other => {
            let echoed = encode(other, &token);
            resp = resp.header("x-echo", echoed.as_str());
            format!("{{\"echo\":\"{echoed}\"}}")
        }
    };
    Ok(resp.body(Full::new(Bytes::from(body))).unwrap())
}

/// `token` in echo form `form` (see [`FORMS`]).
pub fn encode(form: &str, token: &str) -> String {
    let t = token.as_bytes();
    match form {
        "upper" => token.to_uppercase(),
        "base64" => base64(t),
        "base64url" => base64url(t),
        "hex" => hex(t),
        "HEX" => hex(t).to_uppercase(),
        "pct" => percent(t, b"-._~", false),
        "pct-all" => percent(t, b"", false),
        "pct-form" => percent(t, b"-._~", true),
        "json" => json(token),
        "php" => json(token).replace('/', "\\/"),
        "json-u" => token
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_string()
                } else {
                    format!("\\u{:04x}", c as u32)
                }
            })
            .collect(),
        "reversed" => token.chars().rev().collect(),
        "rev-hex" => hex(t).chars().rev().collect(),
        "basic" => base64(format!("admin:{token}").as_bytes()),
        "html" => token
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#x27;"),
        "pct-twice" => percent(percent(t, b"-._~", false).as_bytes(), b"-._~", false),
        _ => token.to_string(),
    }
}

fn json(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap();
    quoted[1..quoted.len() - 1].to_string()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64url(bytes: &[u8]) -> String {
    base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn percent(bytes: &[u8], keep: &[u8], plus: bool) -> String {
    let mut out = String::new();
    for &b in bytes {
        if plus && b == b' ' {
            out.push('+');
        } else if (b.is_ascii_alphanumeric() && !keep.is_empty()) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// Text that gives `token` away, for "appears nowhere" checks: every echo
/// form, and the base64 characters that carry only the token's bits at each
/// of the three alignments it can have inside a longer base64 blob.
pub fn telltales(token: &str) -> Vec<String> {
    let mut out: Vec<String> = FORMS
        .iter()
        .filter(|f| !f.starts_with("name-") && **f != "split")
        .map(|f| encode(f, token))
        .collect();
    for offset in 0..3usize {
        let mut stream = vec![0u8; offset];
        stream.extend_from_slice(token.as_bytes());
        let encoded = base64(&stream);
        let (start, end) = ((8 * offset).div_ceil(6), 8 * (offset + token.len()) / 6);
        out.push(encoded[start..end].to_string());
        out.push(encoded[start..end].replace('+', "-").replace('/', "_"));
    }
    out
}

/// The first telltale of `token` in `text` (case-insensitive), if any.
pub fn leaked(text: &str, token: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    telltales(token)
        .into_iter()
        .find(|t| lower.contains(&t.to_ascii_lowercase()))
}
