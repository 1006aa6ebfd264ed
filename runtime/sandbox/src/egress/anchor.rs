//! Trust anchors: a secret whose value is one or more PEM certificates and
//! no private key, bound to a destination, is the CA that destination's
//! certificate must chain to (a kubeconfig's `certificate-authority-data`).
//! The host verifies the server against those certificates only, chain and
//! name, for servers that do not send their CA (kubeadm's API server sends
//! the leaf alone, so a pin on the CA cannot find it).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::secrets::Secret;

/// Whether a secret's value is a trust anchor (certificates, no key).
pub fn is_anchor(value: &str) -> bool {
    value.contains("-----BEGIN CERTIFICATE-----") && !value.contains("PRIVATE KEY-----")
}

/// A TLS configuration trusting only the anchors bound to `host:port`
/// (every one of them, by name order); `None` when none is bound. A
/// malformed anchor is an error, never a fallback to the public roots.
pub fn for_destination(
    secrets: &[Secret],
    host: &str,
    port: u16,
) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    let mut bound: Vec<&Secret> = secrets
        .iter()
        .filter(|s| is_anchor(&s.value) && s.bound_to(host, port))
        .collect();
    if bound.is_empty() {
        return Ok(None);
    }
    bound.sort_by(|a, b| a.name.cmp(&b.name));
    let mut roots = rustls::RootCertStore::empty();
    for s in bound {
        for cert in CertificateDer::pem_slice_iter(s.value.as_bytes()) {
            let cert = cert.map_err(|e| {
                format!(
                    "trust anchor `{}`: a certificate does not parse: {e}",
                    s.name
                )
            })?;
            roots
                .add(cert)
                .map_err(|e| format!("trust anchor `{}` is not a usable CA: {e}", s.name))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("trust anchors for {host}:{port}: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_certificates_without_keys() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca".to_string()]).unwrap();
        let pem = ca.cert.pem();
        assert!(is_anchor(&pem));
        assert!(!is_anchor(&format!(
            "{pem}{}",
            ca.signing_key.serialize_pem()
        )));
        assert!(!is_anchor("a token"));
        let bound = |value: &str| Secret {
            name: "cluster-ca".into(),
            value: value.into(),
            destinations: vec!["k8s.example.com:6443".into()],
        };
        let s = [bound(&pem)];
        assert!(for_destination(&s, "k8s.example.com", 6443)
            .unwrap()
            .is_some());
        assert!(for_destination(&s, "k8s.example.com", 443)
            .unwrap()
            .is_none());
        let broken = [bound(
            "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
        )];
        assert!(for_destination(&broken, "k8s.example.com", 6443).is_err());
    }
}
