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
    /// With mutual TLS: a client identity (certificate + key, PEM) the
    /// simulator's own CA signed.
    pub client_pem: Option<String>,
}

/// A CA that signs client certificates, and one client identity from it.
struct ClientCa {
    roots: rustls::RootCertStore,
    client_pem: String,
}

fn client_ca() -> Result<ClientCa, SimError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "panel1 simulator client CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client.distinguished_name.push(DnType::CommonName, "panel1");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone())?;
    Ok(ClientCa {
        roots,
        client_pem: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
    })
}

/// The server's certificate; with `mutual_tls`, client certificates signed
/// by a fresh CA are required.
pub(crate) fn identity(mutual_tls: bool) -> Result<Identity, SimError> {
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
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let (builder, client_pem) = if mutual_tls {
        let ca = client_ca()?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(ca.roots),
            provider,
        )
        .build()
        .map_err(|e| SimError::Tls(rustls::Error::General(e.to_string())))?;
        (
            builder.with_client_cert_verifier(verifier),
            Some(ca.client_pem),
        )
    } else {
        (builder.with_no_client_auth(), None)
    };
    let mut config = builder.with_single_cert(vec![CertificateDer::from(cert_der.clone())], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        cert_sha256: hex::encode(Sha256::digest(&cert_der)),
        cert_der,
        config: Arc::new(config),
        client_pem,
    })
}
