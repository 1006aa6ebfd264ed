//! A throwaway self-signed certificate per simulator, for `localhost` and
//! 127.0.0.1, and the rustls server configuration around it.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use super::SimError;

pub(crate) struct Identity {
    pub cert_der: Vec<u8>,
    pub cert_sha256: String,
    pub config: Arc<rustls::ServerConfig>,
}

pub(crate) fn identity() -> Result<Identity, SimError> {
    // rcgen turns "127.0.0.1" into an IP SAN and "localhost" into a DNS one.
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let cert_der = certified.cert.der().to_vec();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    // The ring provider explicitly, like the rest of the workspace, so no
    // process-wide default has to be installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert_der.clone())], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        cert_sha256: hex::encode(Sha256::digest(&cert_der)),
        cert_der,
        config: Arc::new(config),
    })
}
