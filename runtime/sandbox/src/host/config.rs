use crate::bindings::panel1::provisioning::config::Host;
use crate::host_state::HostState;

impl Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        let value = self.context.config.get(&key).cloned();
        self.budget
            .charge_bytes(key.len() + value.as_ref().map_or(0, String::len));
        value
    }

    fn all(&mut self) -> Vec<(String, String)> {
        let bytes: usize = self
            .context
            .config
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        self.budget.charge_bytes(bytes);
        // BTreeMap: already sorted by key.
        self.context
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl crate::bindings::panel1::provisioning::types::Host for HostState {}
