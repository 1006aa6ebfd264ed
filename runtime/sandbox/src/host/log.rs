use crate::bindings::panel1::provisioning::log::{Host, Level};
use crate::host_state::HostState;
use crate::log_buffer::LogLevel;

impl Host for HostState {
    fn write(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        self.budget.charge_bytes(message.len() + bytes);
        self.log.push(level, "adapter", &message, fields);
    }
}
