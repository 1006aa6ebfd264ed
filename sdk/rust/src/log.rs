//! Structured logs, captured per operation attempt.
use crate::bindings::panel1::provisioning::log::{write, Level};

fn emit(level: Level, msg: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    write(level, msg, &fields);
}

pub fn debug(msg: &str, fields: &[(&str, &str)]) {
    emit(Level::Debug, msg, fields)
}
pub fn info(msg: &str, fields: &[(&str, &str)]) {
    emit(Level::Info, msg, fields)
}
pub fn warn(msg: &str, fields: &[(&str, &str)]) {
    emit(Level::Warn, msg, fields)
}
pub fn error(msg: &str, fields: &[(&str, &str)]) {
    emit(Level::Error, msg, fields)
}
