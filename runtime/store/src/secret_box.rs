//! Secrets at rest: XChaCha20-Poly1305 with a random 192-bit nonce per value
//! and the (tenant, name) as associated data, so a ciphertext cannot be moved
//! to another row. The master key comes from `PANEL1_MASTER_KEY` (64 hex
//! digits) or a key file; it never enters the database.
use crate::StoreError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// Names the key, so a re-encryption can find rows under an old key.
    pub key_id: String,
}

fn aad(tenant: Uuid, name: &str) -> Vec<u8> {
    format!("panel1-secret:{tenant}:{name}").into_bytes()
}

impl SecretBox {
    pub fn new(key: [u8; 32], key_id: &str) -> Self {
        SecretBox {
            cipher: XChaCha20Poly1305::new(&key.into()),
            key_id: key_id.to_string(),
        }
    }

    /// A box whose key id is derived from the key (a fingerprint, not the
    /// key): rows sealed under different keys are told apart by it.
    pub fn from_key(key: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"panel1-master-key-id:");
        h.update(key);
        SecretBox::new(key, &hex::encode(&h.finalize()[..8]))
    }

    /// From 64 hex digits (`what` names the source in errors).
    pub fn from_hex(text: &str, what: &str) -> Result<Self, StoreError> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| StoreError::Crypto(format!("{what} is not hex")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| StoreError::Crypto(format!("{what} must be 32 bytes (64 hex digits)")))?;
        Ok(SecretBox::from_key(key))
    }

    /// From a file holding 64 hex digits.
    pub fn from_key_file(path: &std::path::Path) -> Result<Self, StoreError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StoreError::Crypto(format!("reading {}: {e}", path.display())))?;
        SecretBox::from_hex(&text, &path.display().to_string())
    }

    /// From `PANEL1_MASTER_KEY` (hex) or else the file named by
    /// `PANEL1_MASTER_KEY_FILE`.
    pub fn from_env() -> Result<Self, StoreError> {
        if let Ok(hexkey) = std::env::var("PANEL1_MASTER_KEY") {
            return SecretBox::from_hex(&hexkey, "PANEL1_MASTER_KEY");
        }
        match std::env::var_os("PANEL1_MASTER_KEY_FILE") {
            Some(file) => SecretBox::from_key_file(std::path::Path::new(&file)),
            None => Err(StoreError::Crypto(
                "set PANEL1_MASTER_KEY (64 hex digits) or PANEL1_MASTER_KEY_FILE".into(),
            )),
        }
    }

    pub fn seal(
        &self,
        tenant: Uuid,
        name: &str,
        plaintext: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad(tenant, name),
                },
            )
            .map_err(|_| StoreError::Crypto("encryption failed".into()))?;
        Ok((nonce_bytes.to_vec(), ct))
    }

    pub fn open(
        &self,
        tenant: Uuid,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<String, StoreError> {
        if nonce.len() != 24 {
            return Err(StoreError::Crypto(format!(
                "secret `{name}`: bad nonce length"
            )));
        }
        let nonce = XNonce::from_slice(nonce);
        let pt = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad(tenant, name),
                },
            )
            .map_err(|_| {
                StoreError::Crypto(format!(
                    "secret `{name}` does not decrypt with key `{}`",
                    self.key_id
                ))
            })?;
        String::from_utf8(pt)
            .map_err(|_| StoreError::Crypto(format!("secret `{name}` is not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_to_the_row() {
        let b = SecretBox::new([3; 32], "k1");
        let t = Uuid::now_v7();
        let (n, ct) = b.seal(t, "api-token", "hunter2").unwrap();
        assert!(!ct.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(b.open(t, "api-token", &n, &ct).unwrap(), "hunter2");
        assert!(b.open(t, "other-name", &n, &ct).is_err());
        assert!(b.open(Uuid::now_v7(), "api-token", &n, &ct).is_err());
        assert!(SecretBox::new([4; 32], "k2")
            .open(t, "api-token", &n, &ct)
            .is_err());
    }
}
