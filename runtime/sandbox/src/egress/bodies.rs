//! Bounded body reading for the sender: a guest's request body and a
//! provider's response body, each refused past its cap (the response also
//! charged to the call's host budget as it grows).
use crate::host_budget::BodyCharge;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, WasiBody};

/// Read a guest's outgoing body of at most `cap` bytes.
pub(super) async fn collect_limited(
    mut body: WasiBody,
    cap: u64,
    charge: &mut BodyCharge,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(data) = frame.data_ref() {
            if (out.len() + data.len()) as u64 > cap {
                return Err(Error::HttpRequestBodySize(Some(cap)));
            }
            let before = out.capacity();
            out.extend_from_slice(data);
            charge
                .grow((out.capacity() - before) as u64)
                .map_err(|_| Error::HttpRequestBodySize(Some(cap)))?;
        }
    }
    Ok(out)
}

/// Read a response body of at most `cap` bytes. Allocated once up to the
/// declared length (so a body is not copied as it grows), but never more
/// than what is `left` of the host budget before its bytes are charged.
pub(super) async fn collect_limited_incoming(
    mut body: hyper::body::Incoming,
    cap: u64,
    left: u64,
    charge: &mut BodyCharge,
) -> Result<Vec<u8>, Error> {
    use hyper::body::Body;
    let declared = body.size_hint().upper().unwrap_or(0);
    let mut out = Vec::with_capacity(declared.min(cap).min(left) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Error::HttpResponseIncomplete)?;
        if let Some(data) = frame.data_ref() {
            if (out.len() + data.len()) as u64 > cap {
                return Err(Error::HttpResponseBodySize(Some(cap)));
            }
            charge
                .grow(data.len() as u64)
                .map_err(|_| Error::HttpResponseBodySize(None))?;
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}
