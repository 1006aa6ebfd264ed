//! Recorded HTTP: the fixture format (`panel1-http-fixture`, version 1), the
//! recorder a call's sender writes into, and the secret scrubbing of what is
//! recorded.
//!
//! A request is recorded as the guest built it (secret placeholders, before
//! the host substitutes values); a response as the guest read it (after the
//! response scrubber turned secrets into placeholders). Both pass once more
//! through [`Sanitizer`] (every encoded form the scanner knows, and short
//! secrets as-is), so a fixture never holds a secret value. Bodies are capped
//! at [`RECORDED_BODY_MAX`] bytes.
use super::replay::ReplaySet;
use super::scanner::{Marker, SecretScanner, MIN_SCANNED_SECRET_BYTES};
use super::secrets::{placeholder, Secret};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The `format` field of every fixture.
pub const FIXTURE_FORMAT: &str = "panel1-http-fixture";
/// The fixture version this build writes and reads.
pub const FIXTURE_VERSION: u32 = 1;
/// Longest body (request or response) kept in a fixture.
pub const RECORDED_BODY_MAX: usize = 256 << 10;

/// A fixture file: the exchanges of one call, in the order they completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub format: String,
    pub version: u32,
    /// The operation that was recorded (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The connection the call was recorded with (no secret values): a
    /// replay uses it unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<FixtureContext>,
    pub exchanges: Vec<RecordedExchange>,
}

impl Fixture {
    pub fn new(exchanges: Vec<RecordedExchange>) -> Fixture {
        Fixture {
            format: FIXTURE_FORMAT.into(),
            version: FIXTURE_VERSION,
            operation: None,
            context: None,
            exchanges,
        }
    }

    /// Parse and check the format and version.
    pub fn parse(text: &str) -> Result<Fixture, FixtureError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let fixture: Fixture = serde_path_to_error::deserialize(de)
            .map_err(|e| FixtureError(format!("at `{}`: {}", e.path(), e.inner())))?;
        if fixture.format != FIXTURE_FORMAT {
            return Err(FixtureError(format!(
                "`format` is `{}`, expected `{FIXTURE_FORMAT}`",
                fixture.format
            )));
        }
        if fixture.version != FIXTURE_VERSION {
            return Err(FixtureError(format!(
                "`version` {} is not supported (this build reads version {FIXTURE_VERSION})",
                fixture.version
            )));
        }
        Ok(fixture)
    }
}

/// A fixture that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid HTTP fixture: {0}")]
pub struct FixtureError(pub String);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureContext {
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Egress rules as `--allow` takes them.
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub allow_internal: bool,
    /// Secret names and where they are bound; never their values.
    #[serde(default)]
    pub secrets: Vec<SecretSlot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSlot {
    pub name: String,
    pub destinations: Vec<String>,
}

/// One request and what came back: a response, or a transport error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedExchange {
    pub request: RecordedRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordedResponse>,
    /// Why no response came (connect refused, timeout, TLS…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// (No `deny_unknown_fields` here: serde does not support it with `flatten`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub url: String,
    /// `[name, value]` pairs in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(flatten)]
    pub body: RecordedBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(flatten)]
    pub body: RecordedBody,
}

/// A body: `body` when it is UTF-8, else `body_hex`; `body_bytes` is its
/// full length, `body_truncated` whether only the first
/// [`RECORDED_BODY_MAX`] bytes were kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_hex: Option<String>,
    #[serde(default)]
    pub body_bytes: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body_truncated: bool,
}

impl RecordedBody {
    pub fn from_bytes(bytes: &[u8], cap: usize) -> RecordedBody {
        let kept = &bytes[..bytes.len().min(cap)];
        // A cut inside a UTF-8 sequence would make valid text look binary.
        let text = match std::str::from_utf8(kept) {
            Ok(t) => Some(t),
            Err(e) if kept.len() < bytes.len() && e.error_len().is_none() => {
                std::str::from_utf8(&kept[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        let (body, body_hex) = match text {
            Some("") => (None, None),
            Some(t) => (Some(t.to_string()), None),
            None => (None, Some(hex::encode(kept))),
        };
        RecordedBody {
            body,
            body_hex,
            body_bytes: bytes.len() as u64,
            body_truncated: kept.len() < bytes.len(),
        }
    }

    /// The bytes kept (an unreadable `body_hex` reads as empty).
    pub fn bytes(&self) -> Vec<u8> {
        match (&self.body, &self.body_hex) {
            (Some(t), _) => t.as_bytes().to_vec(),
            (None, Some(h)) => hex::decode(h).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}

/// The HTTP exchanges of a call go to a recording, or come from a replay
/// set instead of the network.
#[derive(Clone)]
pub enum HttpTape {
    Record(Arc<Recording>),
    Replay(Arc<ReplaySet>),
}

/// What one call recorded, in completion order.
#[derive(Default)]
pub struct Recording {
    exchanges: Mutex<Vec<RecordedExchange>>,
}

impl Recording {
    pub fn new() -> Arc<Recording> {
        Arc::new(Recording::default())
    }

    pub fn exchanges(&self) -> Vec<RecordedExchange> {
        self.exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn fixture(&self) -> Fixture {
        Fixture::new(self.exchanges())
    }

    pub(crate) fn push(&self, exchange: RecordedExchange) {
        self.exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(exchange);
    }
}

/// Turns every secret of the call into its placeholder in recorded text.
pub struct Sanitizer<'a> {
    pub scanner: &'a SecretScanner,
    pub secrets: &'a [Secret],
}

impl Sanitizer<'_> {
    pub fn bytes(&self, input: &[u8]) -> Vec<u8> {
        let mut out = self.scanner.redact(input, Marker::Placeholder).into_owned();
        // The scanner skips short values (they would match everywhere);
        // a fixture is a file that may be shared, so they go as-is here.
        for s in self.secrets {
            if s.value.is_empty() || s.value.len() >= MIN_SCANNED_SECRET_BYTES {
                continue;
            }
            // A value inside its own placeholder would be replaced forever.
            if self
                .secrets
                .iter()
                .any(|o| placeholder(&o.name).contains(&s.value))
            {
                continue;
            }
            out = replace_all(&out, s.value.as_bytes(), placeholder(&s.name).as_bytes());
        }
        out
    }

    pub fn text(&self, input: &str) -> String {
        String::from_utf8_lossy(&self.bytes(input.as_bytes())).into_owned()
    }

    /// Header names and values, each alone and as one text in order, then
    /// the values alone in order (a secret split across two adjacent values
    /// is found although a name stands between them), as the guard scans.
    pub fn headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        let mut strings: Vec<String> = Vec::new();
        for (k, v) in headers {
            strings.push(k.as_str().to_string());
            strings.push(String::from_utf8_lossy(v.as_bytes()).into_owned());
        }
        let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
        if let Some(clean) = self.scanner.redact_strings(&refs, Marker::Placeholder) {
            strings = clean;
        }
        let values: Vec<&str> = strings
            .iter()
            .skip(1)
            .step_by(2)
            .map(String::as_str)
            .collect();
        if let Some(clean) = self.scanner.redact_strings(&values, Marker::Placeholder) {
            for (i, v) in clean.into_iter().enumerate() {
                strings[2 * i + 1] = v;
            }
        }
        strings
            .chunks(2)
            .map(|kv| (self.text(&kv[0]), self.text(&kv[1])))
            .collect()
    }

    pub fn body(&self, body: &[u8]) -> RecordedBody {
        RecordedBody::from_bytes(&self.bytes(body), RECORDED_BODY_MAX)
    }

    /// A guest-built request as it is recorded and matched.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> RecordedRequest {
        RecordedRequest {
            method: method.to_string(),
            url: self.text(url),
            headers: self.headers(headers),
            body: self.body(body),
        }
    }
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn secrets() -> Vec<Secret> {
        vec![
            Secret {
                name: "token".into(),
                value: "Long-Secret-Value-42".into(),
                destinations: vec![],
            },
            Secret {
                name: "pin".into(),
                value: "4711".into(),
                destinations: vec![],
            },
        ]
    }

    #[test]
    fn recorded_text_holds_placeholders_never_values() {
        let s = secrets();
        let scanner = SecretScanner::new(&s);
        let clean = Sanitizer {
            scanner: &scanner,
            secrets: &s,
        };
        let hex: String = "Long-Secret-Value-42"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("Long-Secret-"));
        headers.insert("x-b", HeaderValue::from_static("Value-42"));
        let r = clean.request(
            "POST",
            "https://h.test/x?pin=4711",
            &headers,
            format!("{{\"t\":\"{hex}\"}}").as_bytes(),
        );
        let text = serde_json::to_string(&r).unwrap();
        for leak in ["Long-Secret", "Value-42", "4711", hex.as_str()] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
        assert_eq!(r.url, "https://h.test/x?pin={{secret:pin}}");
        assert_eq!(r.headers[0].1, "{{secret:token}}");
    }

    #[test]
    fn bodies_are_capped_and_binary_goes_as_hex() {
        let b = RecordedBody::from_bytes(&[0xff, 0x00, 0x01], 16);
        assert_eq!(b.body_hex.as_deref(), Some("ff0001"));
        assert_eq!(b.bytes(), vec![0xff, 0x00, 0x01]);
        let long = "é".repeat(10);
        let b = RecordedBody::from_bytes(long.as_bytes(), 5);
        assert!(b.body_truncated);
        assert_eq!(b.body.as_deref(), Some("éé"));
        assert_eq!(b.body_bytes, 20);
    }

    #[test]
    fn fixtures_round_trip_and_bad_ones_name_the_field() {
        let f = Fixture::new(vec![RecordedExchange {
            request: RecordedRequest {
                method: "GET".into(),
                url: "https://h.test/".into(),
                headers: vec![("accept".into(), "*/*".into())],
                body: RecordedBody::default(),
            },
            response: Some(RecordedResponse {
                status: 200,
                headers: vec![],
                body: RecordedBody::from_bytes(b"{}", 10),
            }),
            error: None,
        }]);
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(Fixture::parse(&text).unwrap(), f);
        let bad = text.replace("\"status\":200", "\"status\":\"ok\"");
        let e = Fixture::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("exchanges[0].response.status"), "{e}");
        let old = text.replace("\"version\":1", "\"version\":9");
        assert!(Fixture::parse(&old).unwrap_err().0.contains("version"));
    }
}
