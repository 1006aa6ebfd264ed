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

/// Host bindings of the `panel1:provisioning@0.2.0` world: 0.1.0's world
/// plus the `backups` export. Everything 0.2.0 takes from 0.1.0 (the host
/// capabilities, `types`) maps to the 0.1.0 bindings above, so one host
/// implementation serves both; only `backup-types` and `backups` are new.
/// Used to type-check a 0.2.0 component's exports at load and for the
/// records `backups` exchanges.
pub mod v2 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "panel1:provisioning/provisioning@0.2.0",
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "panel1:provisioning/types@0.1.0": super::panel1::provisioning::types,
            "panel1:provisioning/secrets@0.1.0": super::panel1::provisioning::secrets,
            "panel1:provisioning/secrets-reveal@0.1.0": super::panel1::provisioning::secrets_reveal,
            "panel1:provisioning/config@0.1.0": super::panel1::provisioning::config,
            "panel1:provisioning/log@0.1.0": super::panel1::provisioning::log,
        },
        require_store_data_send: true,
    });

    pub use panel1::provisioning0_2_0::backup_types as wit_backups;
}
