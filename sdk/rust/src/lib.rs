//! The Panel1 adapter SDK.
//!
//! Implement [`Adapter`] (every operation but `info` defaults to
//! `unsupported`), then call [`export_adapter!`] once:
//!
//! ```ignore
//! use panel1_sdk::*;
//! struct Mine;
//! impl Adapter for Mine {
//!     fn info() -> AdapterInfo { AdapterInfo::named("mine", "0.1.0") }
//! }
//! export_adapter!(Mine);
//! ```

/// The world this build of the SDK targets: `panel1-sdk` builds against
/// 0.1.0, `panel1-sdk-v2` (the same source, `sdk/rust-v2`) against 0.2.0,
/// which adds the `backups` export (see [`Adapter`]'s backup functions).
#[cfg(not(panel1_world_v2))]
pub const WORLD_VERSION: &str = "0.1.0";
#[cfg(panel1_world_v2)]
pub const WORLD_VERSION: &str = "0.2.0";

#[doc(hidden)]
#[cfg(not(panel1_world_v2))]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "panel1:provisioning/provisioning@0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_provisioning",
        default_bindings_module: "panel1_sdk::bindings",
        generate_all,
    });

    /// Where `generate!` put the bindings (the export macro's types).
    pub use crate::bindings as generated;
}

#[doc(hidden)]
#[cfg(panel1_world_v2)]
pub mod bindings;

#[cfg(panel1_world_v2)]
mod backups;
#[cfg(panel1_world_v2)]
pub use backups::*;

mod adapter;
pub mod config;
pub mod deadline;
mod errors;
pub mod http;
pub mod input;
pub mod log;
pub mod paging;
pub mod random;
pub mod secrets;

pub use adapter::Adapter;
pub use bindings::panel1::provisioning::types::{
    AdapterError, AdapterInfo, CallContext, ChangePackageRequest, ChangePasswordRequest,
    ConnectionInfo, KeyValue, ListRequest, LoginLink, Metric, Operation, ProvisionRequest,
    RemoteState, ServicePage, ServiceRequest, ServiceSpec, ServiceStatus, TestRequest,
    TransientError, UsageReport,
};
pub use errors::*;

/// Route panic messages to the operation log (works on every target, also
/// those without stderr). Called by the exported functions; idempotent.
#[doc(hidden)]
pub fn __install_panic_hook() {
    use std::sync::Once;
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic".to_string()
            };
            log::error(&format!("adapter panicked at {location}: {message}"), &[]);
        }));
    });
}

/// Export a type implementing [`Adapter`] as the component's `adapter`
/// interface (and, built as `panel1-sdk-v2`, its `backups` interface).
/// Call it once, at the crate root.
#[macro_export]
macro_rules! export_adapter {
    ($adapter:ty) => {
        #[doc(hidden)]
        pub struct __Panel1AdapterExport;

        $crate::__export_backups!($adapter);

        impl $crate::bindings::exports::panel1::provisioning::adapter::Guest for __Panel1AdapterExport {
            fn info() -> $crate::AdapterInfo {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::info()
            }
            fn test_connection(req: $crate::TestRequest) -> Result<$crate::ConnectionInfo, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::test_connection(req)
            }
            fn provision(req: $crate::ProvisionRequest) -> Result<$crate::ServiceStatus, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::provision(req)
            }
            fn suspend(req: $crate::ServiceRequest) -> Result<$crate::ServiceStatus, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::suspend(req)
            }
            fn unsuspend(req: $crate::ServiceRequest) -> Result<$crate::ServiceStatus, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::unsuspend(req)
            }
            fn terminate(req: $crate::ServiceRequest) -> Result<$crate::ServiceStatus, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::terminate(req)
            }
            fn status(req: $crate::ServiceRequest) -> Result<$crate::ServiceStatus, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::status(req)
            }
            fn change_package(req: $crate::ChangePackageRequest) -> Result<$crate::ServiceStatus, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::change_package(req)
            }
            fn change_password(req: $crate::ChangePasswordRequest) -> Result<$crate::ServiceStatus, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::change_password(req)
            }
            fn list_services(req: $crate::ListRequest) -> Result<$crate::ServicePage, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::list_services(req)
            }
            fn usage(req: $crate::ServiceRequest) -> Result<$crate::UsageReport, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::usage(req)
            }
            fn login_url(req: $crate::ServiceRequest) -> Result<$crate::LoginLink, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::login_url(req)
            }
        }

        $crate::bindings::__export_provisioning!(__Panel1AdapterExport with_types_in $crate::bindings::generated);
    };
}

/// The `backups` export of world 0.2.0 (`panel1-sdk-v2`); nothing in 0.1.0.
#[doc(hidden)]
#[cfg(not(panel1_world_v2))]
#[macro_export]
macro_rules! __export_backups {
    ($adapter:ty) => {};
}

#[doc(hidden)]
#[cfg(panel1_world_v2)]
#[macro_export]
macro_rules! __export_backups {
    ($adapter:ty) => {
        impl $crate::bindings::exports::panel1::provisioning::backups::Guest
            for __Panel1AdapterExport
        {
            fn operations() -> Vec<$crate::BackupOperation> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::backup_operations()
            }
            fn create_backup(
                req: $crate::BackupRequest,
            ) -> Result<$crate::BackupInfo, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::create_backup(req)
            }
            fn backup_status(
                req: $crate::BackupRefRequest,
            ) -> Result<$crate::BackupInfo, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::backup_status(req)
            }
            fn list_backups(
                req: $crate::BackupListRequest,
            ) -> Result<Vec<$crate::BackupInfo>, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::list_backups(req)
            }
            fn delete_backup(req: $crate::BackupRefRequest) -> Result<(), $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::delete_backup(req)
            }
            fn restore_backup(
                req: $crate::BackupRefRequest,
            ) -> Result<$crate::ServiceStatus, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::restore_backup(req)
            }
            fn export_service(
                req: $crate::ExportRequest,
            ) -> Result<$crate::TransferPackage, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::export_service(req)
            }
            fn import_service(
                req: $crate::ImportRequest,
            ) -> Result<$crate::ServiceStatus, $crate::AdapterError> {
                $crate::__install_panic_hook();
                <$adapter as $crate::Adapter>::import_service(req)
            }
        }
    };
}
