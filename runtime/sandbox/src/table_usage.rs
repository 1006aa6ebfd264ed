//! The host memory held by a call's resource table, by entry kind. Only
//! kinds whose size the guest controls are sized; every entry also counts
//! a fixed overhead, so many small handles add up too.
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::p2::bindings::http::types::{Method, Scheme};
use wasmtime_wasi_http::p2::types::{HostIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::FieldMap;

/// Per entry: the table slot, the boxed value and its bookkeeping.
pub const ENTRY_OVERHEAD: u64 = 128;
/// Per header: `HeaderMap`'s index and bucket around a name and value.
const HEADER_OVERHEAD: u64 = 64;
/// What an outgoing body may buffer before it is sent: the write chunk the
/// host grants (`OUTGOING_BODY_CHUNK`), twice (the channel holds one more).
pub const OUTGOING_BODY_CHUNK: usize = 64 << 10;
const OUTGOING_BODY_HELD: u64 = 2 * OUTGOING_BODY_CHUNK as u64;

fn headers_size(map: &http::HeaderMap) -> u64 {
    map.iter()
        .map(|(k, v)| (k.as_str().len() + v.len()) as u64 + HEADER_OVERHEAD)
        .sum()
}

/// (bytes held, live entries) of `table`.
pub fn measure(table: &mut ResourceTable) -> (u64, u64) {
    let mut bytes = 0u64;
    let mut entries = 0u64;
    for entry in table.iter_mut() {
        entries += 1;
        bytes += ENTRY_OVERHEAD;
        if let Some(fields) = entry.downcast_ref::<FieldMap>() {
            bytes += headers_size(fields);
        } else if let Some(req) = entry.downcast_ref::<HostOutgoingRequest>() {
            bytes += headers_size(&req.headers);
            // `set-method(other(..))` takes a token of any length.
            if let Method::Other(m) = &req.method {
                bytes += m.len() as u64;
            }
            if let Some(Scheme::Other(s)) = &req.scheme {
                bytes += s.len() as u64;
            }
            bytes += req.path_with_query.as_ref().map_or(0, |p| p.len() as u64);
            bytes += req.authority.as_ref().map_or(0, |a| a.len() as u64);
            if req.body.is_some() {
                bytes += OUTGOING_BODY_HELD;
            }
        } else if let Some(resp) = entry.downcast_ref::<HostIncomingResponse>() {
            // Its body is charged by the sender as it is buffered.
            bytes += headers_size(&resp.headers);
        }
    }
    (bytes, entries)
}
