//! A loaded adapter: compiled component, its report, and the `InstancePre`
//! every call instantiates from.
use crate::bindings::ProvisioningPre;
use crate::component_check::ComponentReport;
use crate::host_state::HostState;
use wasmtime::component::Component;

pub struct LoadedAdapter {
    pub report: ComponentReport,
    pub component: Component,
    pub(crate) pre: ProvisioningPre<HostState>,
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
