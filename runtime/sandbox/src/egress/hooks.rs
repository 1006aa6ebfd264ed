use super::{sender, EgressShared};
use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The `wasi:http` hook of one call. Every guest request goes through
/// [`sender::send`]; the default sender (no address checks) is never used.
pub struct EgressHooks {
    pub shared: Arc<EgressShared>,
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for EgressHooks {
    /// The most one write to an outgoing body may hand the host; bounded so
    /// bodies built and never sent hold little (see `table_usage`).
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        crate::table_usage::OUTGOING_BODY_CHUNK
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let shared = self.shared.clone();
        Box::new(async move {
            let response = sender::send(shared, request, options).await?;
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}
