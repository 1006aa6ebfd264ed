//! A loopback listener that only counts connections: proof that a refused
//! request never left the host.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct CountingListener {
    pub port: u16,
    pub v6: bool,
    count: Arc<AtomicUsize>,
}

impl CountingListener {
    pub async fn start(addr: &str) -> CountingListener {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind counting listener");
        let local = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            while let Ok((_sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
        CountingListener {
            port: local.port(),
            v6: local.is_ipv6(),
            count,
        }
    }

    pub fn connections(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}
