//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">` under the secret after its `whsec_` prefix,
//! one per valid secret, space-separated (both during a rotation).
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
#[error("webhook signing secret is not `whsec_` + base64")]
pub struct BadSecret;

/// The `webhook-signature` header value for one message.
pub fn signature(
    secrets: &[String],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let mut out = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").ok_or(BadSecret)?)
            .map_err(|_| BadSecret)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
        mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
        mac.update(body);
        out.push(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ));
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // The example in the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let sig = signature(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let two = signature(&["whsec_AAAA".into(), "whsec_BBBB".into()], "m", 1, b"x").unwrap();
        assert_eq!(two.split(' ').count(), 2);
        assert!(signature(&["sk_nope".into()], "m", 1, b"x").is_err());
    }
}
