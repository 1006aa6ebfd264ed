//! Host bindings of the `panel1:provisioning@0.1.0` world. wasi:http and
//! wasi:io come from wasmtime-wasi(-http) so their resources are shared.
wasmtime::component::bindgen!({
    path: "../../wit/v0.1.0",
    world: "panel1:provisioning/provisioning@0.1.0",
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
    require_store_data_send: true,
});

pub use panel1::provisioning::types as wit;
