//! Client identities: a secret whose value is a PEM certificate chain with
//! its private key. The host presents it in the TLS handshake toward a
//! destination the secret is bound to (mutual TLS: Docker's Engine API,
//! Kubernetes client certificates). The guest never sees it: it cannot get
//! a placeholder for it, reveal it, or put it in a request.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, SignatureScheme};

use super::secrets::Secret;

/// Whether a secret's value is a client identity (a certificate and a
/// private key in PEM).
pub fn is_identity(value: &str) -> bool {
    value.contains("-----BEGIN CERTIFICATE-----") && value.contains("PRIVATE KEY-----")
}

/// A parsed identity, ready to present.
#[derive(Clone)]
pub struct ClientIdentity {
    pub name: String,
    key: Arc<CertifiedKey>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("name", &self.name)
            .finish()
    }
}

/// Parse secret `name`'s PEM: the certificates in order (leaf first), and
/// the one private key (PKCS#8, PKCS#1 or SEC1); the key must match the leaf.
pub fn parse(name: &str, pem: &str) -> Result<ClientIdentity, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("client identity `{name}`: a certificate does not parse: {e}"))?;
    if chain.is_empty() {
        return Err(format!("client identity `{name}`: no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("client identity `{name}`: the private key does not parse: {e}"))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        format!("client identity `{name}`: the key cannot be used or does not match the certificate: {e}")
    })?;
    Ok(ClientIdentity {
        name: name.to_string(),
        key: Arc::new(certified),
    })
}

/// The identity to present toward `host:port`: the first identity secret
/// (by name) bound there. A malformed one is an error, not a silent
/// connection without a certificate.
pub fn for_destination(
    secrets: &[Secret],
    host: &str,
    port: u16,
) -> Result<Option<ClientIdentity>, String> {
    let mut bound: Vec<&Secret> = secrets
        .iter()
        .filter(|s| is_identity(&s.value) && s.bound_to(host, port))
        .collect();
    bound.sort_by(|a, b| a.name.cmp(&b.name));
    bound.first().map(|s| parse(&s.name, &s.value)).transpose()
}

/// Presents one identity whatever the server asks.
#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesClientCert for Present {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `base` (roots or a pin) that also presents `identity`.
pub fn with_identity(
    base: &rustls::ClientConfig,
    identity: &ClientIdentity,
) -> Arc<rustls::ClientConfig> {
    let mut config = base.clone();
    config.client_auth_cert_resolver = Arc::new(Present(identity.key.clone()));
    Arc::new(config)
}

/// The alerts a server sends when it refuses the client's certificate (or
/// its absence): what a guest should see as "not authenticated".
pub fn refusal_alert(error: &(dyn std::error::Error + 'static)) -> Option<AlertDescription> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(rustls::Error::AlertReceived(alert)) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                alert,
                AlertDescription::CertificateRequired
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnknownCA
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::AccessDenied
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateRevoked
            )
            .then_some(*alert);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                cause = Some(inner);
                continue;
            }
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_pem() -> String {
        let c = rcgen::generate_simple_self_signed(vec!["client".to_string()]).unwrap();
        format!("{}{}", c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn bound(name: &str, value: &str) -> Secret {
        Secret {
            name: name.into(),
            value: value.into(),
            destinations: vec!["docker.example.com:2376".into()],
        }
    }

    #[test]
    fn identities_parse_and_are_found_by_destination() {
        let pem = identity_pem();
        assert!(is_identity(&pem));
        assert!(!is_identity("a token"));
        let id = parse("docker-client", &pem).unwrap();
        assert_eq!(id.name, "docker-client");
        let secrets = [bound("token", "t0k3n"), bound("docker-client", &pem)];
        let found = for_destination(&secrets, "docker.example.com", 2376).unwrap();
        assert_eq!(found.map(|i| i.name).as_deref(), Some("docker-client"));
        assert!(for_destination(&secrets, "other.example.com", 2376)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_broken_identity_is_an_error_naming_it_never_its_value() {
        let pem = identity_pem();
        let other = identity_pem();
        // The certificate of one, the key of another.
        let cert_end = pem.find("-----END CERTIFICATE-----").unwrap() + 25;
        let key_start = other.find("-----BEGIN PRIVATE KEY-----").unwrap();
        let mismatched = format!("{}\n{}", &pem[..cert_end], &other[key_start..]);
        let e = parse("docker-client", &mismatched).unwrap_err();
        assert!(
            e.contains("docker-client") && e.contains("does not match"),
            "{e}"
        );
        let no_key = &pem[..cert_end];
        let e = parse(
            "x",
            &format!("{no_key}\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap_err();
        assert!(!e.contains("AAAA"), "{e}");
    }
}
