//! Name resolution for outbound requests, done by the host (the guest never
//! sees addresses). Pluggable so tests can map names without a DNS server.
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

pub trait Resolver: Send + Sync + 'static {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture;
}

/// The operating system's resolver (getaddrinfo through tokio).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    }
}

/// Fixed answers for some names; other names go to the fallback (or fail).
#[derive(Default)]
pub struct StaticResolver {
    names: HashMap<String, Vec<IpAddr>>,
    fallback: Option<Box<dyn Resolver>>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, name: &str, ips: &[IpAddr]) -> Self {
        self.names.insert(name.to_ascii_lowercase(), ips.to_vec());
        self
    }
    pub fn with_fallback(mut self, fallback: impl Resolver) -> Self {
        self.fallback = Some(Box::new(fallback));
        self
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        if let Some(ips) = self.names.get(&host.to_ascii_lowercase()) {
            let addrs = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
            return Box::pin(async move { Ok(addrs) });
        }
        match &self.fallback {
            Some(f) => f.resolve(host, port),
            None => {
                let host = host.to_string();
                Box::pin(async move {
                    Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no address for `{host}`"),
                    ))
                })
            }
        }
    }
}
