//! A throwaway certificate per simulator, for `localhost` and 127.0.0.1, and
//! the rustls server configuration around it: self-signed, or (like a
//! Kubernetes cluster) signed by a fresh cluster CA and served as the chain
//! [leaf, CA].

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
    /// With a cluster CA: the CA that signed the leaf.
    pub cluster_ca: Option<ClusterCa>,
}

/// The CA that signed the serving certificate (what a kubeconfig's
/// `certificate-authority-data` holds).
#[derive(Clone)]
pub(crate) struct ClusterCa {
    pub der: Vec<u8>,
    pub pem: String,
    /// Lowercase hex SHA-256 of `der`.
    pub sha256: String,
}

/// How a simulator's TLS is set up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// Require client certificates from the simulator's client CA.
    pub mutual_tls: bool,
    /// Sign the serving certificate with a fresh cluster CA and send the
    /// chain [leaf, CA], instead of a self-signed leaf.
    pub cluster_ca: bool,
    /// With `cluster_ca`: send the leaf alone, as kubeadm's API server
    /// does (clients must know the CA).
    pub leaf_only: bool,
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

fn server_names() -> Vec<String> {
    // rcgen turns "127.0.0.1" into an IP SAN and "localhost" into a DNS one.
    vec!["localhost".to_string(), "127.0.0.1".to_string()]
}

/// A leaf signed by a fresh cluster CA: the chain [leaf, CA], the leaf's key
/// (PKCS#8 DER) and the CA.
fn cluster_signed() -> Result<(Vec<CertificateDer<'static>>, Vec<u8>, ClusterCa), SimError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "panel1 simulator cluster CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_der = ca_cert.der().to_vec();
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(server_names())?;
    leaf.distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    let chain = vec![
        leaf_cert.der().clone(),
        CertificateDer::from(ca_der.clone()),
    ];
    let ca = ClusterCa {
        sha256: hex::encode(Sha256::digest(&ca_der)),
        der: ca_der,
        pem: ca_pem,
    };
    Ok((chain, leaf_key.serialize_der(), ca))
}

/// The server's certificate (self-signed, or signed by a cluster CA) and
/// the client authentication `options` ask for.
pub(crate) fn identity(options: TlsOptions) -> Result<Identity, SimError> {
    let (chain, key_der, cluster_ca) = if options.cluster_ca {
        let (mut chain, key, ca) = cluster_signed()?;
        if options.leaf_only {
            chain.truncate(1);
        }
        (chain, key, Some(ca))
    } else {
        let certified = rcgen::generate_simple_self_signed(server_names())?;
        let der = certified.cert.der().clone();
        (vec![der], certified.signing_key.serialize_der(), None)
    };
    let cert_der = chain[0].to_vec();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der));
    // The ring provider explicitly, like the rest of the workspace, so no
    // process-wide default has to be installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let (builder, client_pem) = if options.mutual_tls {
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
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        cert_sha256: hex::encode(Sha256::digest(&cert_der)),
        cert_der,
        config: Arc::new(config),
        client_pem,
        cluster_ca,
    })
}
