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
        // An empty field still cost the host two strings: charged as the
        // log cap counts it (16 bytes beyond its text).
        let bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
        self.budget.charge_bytes(message.len() + bytes);
        self.log.push(level, "adapter", &message, fields);
    }
}
