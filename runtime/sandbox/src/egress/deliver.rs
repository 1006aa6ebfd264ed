//! Handing a response to the guest: refused if the secret scrubber cannot
//! read it, scrubbed, recorded, charged to the host budget. Shared by live
//! requests (`sender.rs`) and replays (`replay.rs`).
use super::sender::Attempt;
use super::tape::RecordedResponse;
use crate::host_budget::BodyCharge;
use crate::log_buffer::LogLevel;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, WasiBody};

/// Whether the response names a transfer coding other than `chunked`.
fn transfer_coded(headers: &http::HeaderMap) -> bool {
    headers.get_all(TRANSFER_ENCODING).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|token| {
            let token = token.trim_ascii();
            !token.is_empty()
                && !token.eq_ignore_ascii_case(b"chunked")
                && !token.eq_ignore_ascii_case(b"identity")
        })
    })
}

/// Hand a response to the guest: scrubbed of secrets, recorded, charged.
pub(super) fn deliver(
    mut attempt: Attempt,
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: Vec<u8>,
    charge: BodyCharge,
) -> Result<http::Response<WasiBody>, Error> {
    let shared = attempt.shared.clone();
    // A body the scrubber cannot read never reaches the guest: a server
    // that compressed it anyway (the request asked for `identity`).
    if !shared.context.secrets.is_empty() {
        let encoded = headers
            .get_all(CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded && !body.is_empty() {
            return Err(attempt.fail(
                "the response is content-encoded, which the host cannot scan for secrets; \
                 the server ignored `accept-encoding: identity`"
                    .into(),
                Error::HttpProtocolError,
            ));
        }
        // The client undoes `chunked` framing only: a `gzip` transfer
        // coding (`transfer-encoding: gzip, chunked`) arrives compressed.
        if transfer_coded(headers) && !body.is_empty() {
            return Err(attempt.fail(
                "the response has a transfer coding other than `chunked`, which the host \
                 cannot scan for secrets"
                    .into(),
                Error::HttpProtocolError,
            ));
        }
    }
    // The guest never sees a secret value, even if the server echoes it.
    let scrubbed = shared.guard.scrub_response(headers, body);
    if scrubbed.dropped_headers > 0 {
        shared.log.host(
            LogLevel::Warn,
            &format!(
                "{} response header(s) dropped: the name carried secret(s) {}",
                scrubbed.dropped_headers,
                scrubbed.dropped_for.join(", ")
            ),
            vec![("url".into(), attempt.exchange.url.clone())],
        );
    }
    if attempt.recording.is_some() {
        let clean = shared.sanitizer();
        let response = RecordedResponse {
            status: status.as_u16(),
            headers: clean.headers(&scrubbed.headers),
            body: clean.body(&scrubbed.body),
        };
        attempt.tape(Some(response), None);
    }
    let body = Bytes::from(scrubbed.body);
    let mut headers = scrubbed.headers;
    if scrubbed.body_redacted {
        // Headers that describe the body as it was would give away the
        // secret's length or a hash of it.
        for name in [
            "content-length",
            "etag",
            "digest",
            "content-md5",
            "content-digest",
            "repr-digest",
        ] {
            headers.remove(name);
        }
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let mut out = http::Response::builder().status(status);
    if let Some(h) = out.headers_mut() {
        *h = headers;
    }
    attempt.exchange.status = Some(status.as_u16());
    attempt.exchange.bytes_received = body.len() as u64;
    attempt.finish();
    shared.budget.charge_bytes(body.len());
    let full = Full::new(body)
        .map_err(|never| match never {})
        .map_frame(move |frame| {
            let _held = &charge;
            frame
        })
        .boxed_unsync();
    out.body(full)
        .map_err(|e| Error::InternalError(Some(e.to_string())))
}
