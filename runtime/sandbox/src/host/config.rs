use crate::bindings::panel1::provisioning::config::Host;
use crate::host_state::HostState;

impl Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.context.config.get(&key).cloned()
    }

    fn all(&mut self) -> Vec<(String, String)> {
        // BTreeMap: already sorted by key.
        self.context
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl crate::bindings::panel1::provisioning::types::Host for HostState {}
