//! A loaded adapter: compiled component, its report, and the `InstancePre`
//! every call instantiates from.
use crate::call_backups::BackupExports;
use crate::component_check::ComponentReport;
use crate::host_state::HostState;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre};

/// Export indices of the adapter functions, resolved once at load so a call
/// looks its function up by index (no string lookups, no re-typechecking).
#[derive(Clone, Copy)]
pub(crate) struct AdapterExports {
    pub info: ComponentExportIndex,
    pub test_connection: ComponentExportIndex,
    pub provision: ComponentExportIndex,
    pub suspend: ComponentExportIndex,
    pub unsuspend: ComponentExportIndex,
    pub terminate: ComponentExportIndex,
    pub status: ComponentExportIndex,
    pub change_package: ComponentExportIndex,
    pub change_password: ComponentExportIndex,
    pub list_services: ComponentExportIndex,
    pub usage: ComponentExportIndex,
    pub login_url: ComponentExportIndex,
    /// World 0.2.0's `backups`; none for a 0.1.0 adapter.
    pub backups: Option<BackupExports>,
}

impl AdapterExports {
    /// `adapter` keeps its 0.1.0 name in every world; `backups` is resolved
    /// (and must be there) for a 0.2.0 adapter.
    pub fn resolve(component: &Component, world_version: &str) -> Option<AdapterExports> {
        let backups = match world_version {
            "0.2.0" => Some(BackupExports::resolve(component)?),
            _ => None,
        };
        let iface = component.get_export_index(None, "panel1:provisioning/adapter@0.1.0")?;
        let f = |name: &str| component.get_export_index(Some(&iface), name);
        Some(AdapterExports {
            info: f("info")?,
            test_connection: f("test-connection")?,
            provision: f("provision")?,
            suspend: f("suspend")?,
            unsuspend: f("unsuspend")?,
            terminate: f("terminate")?,
            status: f("status")?,
            change_package: f("change-package")?,
            change_password: f("change-password")?,
            list_services: f("list-services")?,
            usage: f("usage")?,
            login_url: f("login-url")?,
            backups,
        })
    }
}

pub struct LoadedAdapter {
    pub report: ComponentReport,
    pub component: Component,
    /// Linked against the host; every call instantiates from it.
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) exports: AdapterExports,
}

impl std::fmt::Debug for LoadedAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedAdapter")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl LoadedAdapter {
    /// The content hash (sha256 of the component bytes) it is cached under.
    pub fn content_hash(&self) -> &str {
        &self.report.sha256
    }
}
