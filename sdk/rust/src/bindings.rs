//! The bindings of `panel1:provisioning@0.2.0` (built only as
//! `panel1-sdk-v2`), re-laid out under the 0.1.0 paths so the rest of the
//! SDK reads the same names in both builds.
#[doc(hidden)]
pub mod generated {
    wit_bindgen::generate!({
        path: "../../wit/v0.2.0",
        world: "panel1:provisioning/provisioning@0.2.0",
        pub_export_macro: true,
        export_macro_name: "__export_provisioning",
        default_bindings_module: "panel1_sdk::bindings::generated",
        generate_all,
    });
}

pub use generated::{__export_provisioning, wasi};

pub mod panel1 {
    pub mod provisioning {
        pub use crate::bindings::generated::panel1::provisioning0_1_0::*;
        pub use crate::bindings::generated::panel1::provisioning0_2_0::backup_types;
    }
}

pub mod exports {
    pub mod panel1 {
        pub mod provisioning {
            pub use crate::bindings::generated::exports::panel1::provisioning0_1_0::adapter;
            pub use crate::bindings::generated::exports::panel1::provisioning0_2_0::backups;
        }
    }
}
