//! TLS to a server whose certificate is pinned by its SHA-256 instead of
//! verified against public roots: how a self-signed panel (a WHM with its
//! default certificate) is reached without ever turning verification off.
//! The handshake signatures are still checked, so only the holder of the
//! pinned certificate's private key can complete it.
//!
//! The pin may also name a private CA the server sends in its chain (a
//! Kubernetes cluster CA): that certificate, authenticated by its hash,
//! becomes the one trust anchor, and the leaf must chain to it and carry the
//! server's name, so the leaf can rotate without touching the pin.
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Accepts one leaf certificate by the SHA-256 of its DER, or a leaf that
/// chains to the CA certificate with that hash.
#[derive(Debug)]
struct PinnedCertificate {
    /// Lowercase hex, as stored in the egress rule.
    pin_sha256: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let hash = |c: &CertificateDer<'_>| hex::encode(Sha256::digest(c.as_ref()));
        let got = hash(end_entity);
        if got == self.pin_sha256 {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(anchor) = intermediates.iter().find(|c| hash(c) == self.pin_sha256) else {
            return Err(rustls::Error::General(format!(
                "the server's certificate (sha256:{got}) is not the pinned one (sha256:{}), nor signed by a CA with that pin in its chain",
                self.pin_sha256
            )));
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(anchor.clone().into_owned()).map_err(|e| {
            rustls::Error::General(format!("the pinned CA certificate is unusable: {e}"))
        })?;
        let others: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| hash(c) != self.pin_sha256)
            .cloned()
            .collect();
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(format!("pinned CA: {e}")))?
            .verify_server_cert(end_entity, &others, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that trusts only the certificate with this pin.
pub fn pinned_tls_config(pin_sha256: &str) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCertificate {
        pin_sha256: pin_sha256.to_ascii_lowercase(),
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}
