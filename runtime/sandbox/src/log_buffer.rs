use crate::egress::scanner::SecretScanner;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Severity of a captured log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One entry of an operation's log. `source` is `adapter` (the log
/// interface), `stdout`, `stderr` or `host` (what the host noticed, such as a
/// denied request and why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Microseconds since the call started.
    pub at_us: u64,
    pub level: LogLevel,
    pub source: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub fields: Vec<(String, String)>,
}

impl LogEntry {
    fn size(&self) -> u64 {
        let fields: usize = self.fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        (self.message.len() + fields + self.source.len()) as u64
    }
}

/// The capped, redacting log of one call, shared by the log interface, the
/// stdio pipes and the HTTP hook.
#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<LogInner>>,
    started: std::time::Instant,
}

struct LogInner {
    entries: Vec<LogEntry>,
    bytes: u64,
    cap: u64,
    dropped_bytes: u64,
    /// Finds the call's secrets (in any encoding) in everything recorded.
    scanner: Arc<SecretScanner>,
}

impl LogBuffer {
    pub fn new(cap: u64, scanner: Arc<SecretScanner>) -> Self {
        LogBuffer {
            inner: Arc::new(Mutex::new(LogInner {
                entries: Vec::new(),
                bytes: 0,
                cap,
                dropped_bytes: 0,
                scanner,
            })),
            started: std::time::Instant::now(),
        }
    }

    pub fn push(
        &self,
        level: LogLevel,
        source: &str,
        message: &str,
        fields: Vec<(String, String)>,
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut entry = LogEntry {
            at_us: self.started.elapsed().as_micros() as u64,
            level,
            source: source.to_string(),
            message: message.to_string(),
            fields,
        };
        crate::redact::redact_entries(&inner.scanner, std::slice::from_mut(&mut entry));
        let size = entry.size();
        // Host entries (denials, limits) are always kept: they explain the
        // outcome. Guest entries stop at the cap.
        if source != "host" && inner.bytes + size > inner.cap {
            inner.dropped_bytes += size;
            return;
        }
        inner.bytes += size;
        inner.entries.push(entry);
    }

    pub fn host(&self, level: LogLevel, message: &str, fields: Vec<(String, String)>) {
        self.push(level, "host", message, fields)
    }

    pub fn dropped_bytes(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dropped_bytes
    }

    pub fn entries(&self) -> Vec<LogEntry> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .clone()
    }
}
