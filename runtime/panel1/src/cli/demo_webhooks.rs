//! The demo's webhook receiver: what a billing system runs. An HTTP
//! endpoint on loopback that checks every delivery's Standard Webhooks
//! signature (`v1,` base64 HMAC-SHA256 of `id.timestamp.body` under the
//! `whsec_` secret, timestamp within five minutes) on its own, from the
//! headers and body it received, and answers 401 to anything else.
use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A delivery as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub kind: String,
    pub verified: bool,
}

#[derive(Default)]
struct Inbox {
    secret: Option<String>,
    received: Vec<Received>,
}

pub struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Receiver {
    pub async fn start() -> Result<Receiver> {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app = axum::Router::new()
            .route("/billing/hooks", post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the demo's webhook receiver")?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Receiver {
            addr,
            inbox,
            stop: Some(stop),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/billing/hooks", self.addr)
    }

    /// The endpoint's signing secret, as the tenant read it from the API.
    pub fn set_secret(&self, secret: &str) {
        lock(&self.inbox).secret = Some(secret.to_string());
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.inbox).received.clone()
    }

    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn lock(inbox: &Mutex<Inbox>) -> std::sync::MutexGuard<'_, Inbox> {
    inbox.lock().unwrap_or_else(|p| p.into_inner())
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = header("webhook-id");
    let kind = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(String::from))
        .unwrap_or_default();
    let secret = lock(&inbox).secret.clone();
    let verified = secret.is_some_and(|s| {
        verify(
            &s,
            &id,
            &header("webhook-timestamp"),
            &header("webhook-signature"),
            &body,
        )
    });
    lock(&inbox).received.push(Received { id, kind, verified });
    if verified {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// One of the space-separated `v1,` signatures matches, and the timestamp
/// is within five minutes of now.
fn verify(secret: &str, id: &str, timestamp: &str, signatures: &str, body: &[u8]) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (now - ts).abs() > 300 {
        return false;
    }
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())
    else {
        return false;
    };
    signatures.split(' ').any(|sig| {
        let Some(given) = sig
            .strip_prefix("v1,")
            .and_then(|s| STANDARD.decode(s).ok())
        else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
            return false;
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        // Constant-time comparison.
        mac.verify_slice(&given).is_ok()
    })
}
