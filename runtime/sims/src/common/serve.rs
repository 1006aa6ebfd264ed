//! HTTPS serving shared by every simulator: bind 127.0.0.1 with a fresh
//! certificate (self-signed, or signed by a cluster CA), one task per connection, bodies capped, each
//! request processed in its own task (a client that gives up mid-fault
//! neither cancels a change half-way nor loses the log entry), graceful
//! shutdown.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::tls::{self, Identity};
pub(crate) use super::tls::{ClusterCa, TlsOptions};
use super::SimError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 1 << 20;

pub type Body = Full<Bytes>;

/// A provider's request processing: `None` drops the connection unanswered.
pub(crate) type Handler = Arc<
    dyn Fn(Parts, Bytes) -> Pin<Box<dyn Future<Output = Option<Response<Body>>> + Send>>
        + Send
        + Sync,
>;

/// A poisoned lock only means a test panicked elsewhere; the data is fine.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bound listener with its certificate, before the provider is attached
/// (the provider needs the address and the shutdown signal first).
pub(crate) struct Bound {
    listener: TcpListener,
    identity: Identity,
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Bound {
    /// Bind 127.0.0.1 (`port`, 0 = any); with `mutual_tls`, clients must
    /// present a certificate from the simulator's CA. Must be called inside
    /// a Tokio runtime.
    pub async fn bind(port: u16, mutual_tls: bool) -> Result<Bound, SimError> {
        Bound::bind_with(
            port,
            TlsOptions {
                mutual_tls,
                cluster_ca: false,
                leaf_only: false,
            },
        )
        .await
    }

    /// Bind 127.0.0.1 (`port`, 0 = any) with the TLS set-up `options` ask for.
    pub async fn bind_with(port: u16, options: TlsOptions) -> Result<Bound, SimError> {
        let identity = tls::identity(options)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| SimError::Bind { port, source })?;
        let addr = listener.local_addr()?;
        let (stop, _) = watch::channel(false);
        Ok(Bound {
            listener,
            identity,
            addr,
            stop,
        })
    }

    /// Resolves when shutdown begins; hand it to the provider.
    pub fn shutdown_signal(&self) -> Shutdown {
        Shutdown(self.stop.subscribe())
    }

    /// Start accepting; the returned handle stops it.
    pub fn serve(self, handler: Handler, grace: Duration) -> Running {
        let acceptor = TlsAcceptor::from(self.identity.config.clone());
        let signal = Shutdown(self.stop.subscribe());
        let task = tokio::spawn(accept_loop(self.listener, acceptor, handler, signal, grace));
        Running {
            addr: self.addr,
            cert_der: self.identity.cert_der,
            cert_sha256: self.identity.cert_sha256,
            client_pem: self.identity.client_pem,
            cluster_ca: self.identity.cluster_ca,
            stop: self.stop,
            task: Some(task),
        }
    }
}

/// The shutdown signal, cloned into every connection and request.
#[derive(Clone)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown begins (or the simulator handle is gone).
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        // The guard wait_for returns is not Send: drop it here.
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Sleep, but not past shutdown.
    pub async fn pause(&self, how_long: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(how_long) => {}
            _ = self.stopped() => {}
        }
    }
}

/// A serving simulator's listener. Dropping it aborts every connection.
pub(crate) struct Running {
    pub addr: SocketAddr,
    pub cert_der: Vec<u8>,
    pub cert_sha256: String,
    /// With mutual TLS: a client identity (PEM) the server accepts.
    pub client_pem: Option<String>,
    /// With a cluster CA: the CA that signed the serving certificate.
    pub cluster_ca: Option<ClusterCa>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Stop accepting, let open connections finish (up to the grace), cut
    /// the rest short, and wait for all of it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            // Dropping the accept loop's JoinSet aborts every connection.
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handler: Handler,
    stop: Shutdown,
    grace: Duration,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    conns.spawn(connection(tcp, acceptor.clone(), handler.clone(), stop.clone()));
                }
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = stop.stopped() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        conns.shutdown().await;
    }
}

async fn connection(tcp: TcpStream, acceptor: TlsAcceptor, handler: Handler, stop: Shutdown) {
    let _ = tcp.set_nodelay(true);
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
        return;
    };
    let svc = service_fn(move |req| handle(handler.clone(), req));
    let conn = http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.stopped() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Returned to hyper to make it drop the connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

async fn handle(
    handler: Handler,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain; charset=utf-8",
                "Request body too large\n",
            ))
        }
    };
    match tokio::spawn(handler(parts, body)).await {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(DropConnection),
        Err(_) => Ok(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            "simulator task failed\n",
        )),
    }
}

/// A response with a content type and no caching.
pub fn text(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache, no-store")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}
