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

/// What an entry costs beyond its text: the struct, its strings' headers
/// and the vector slot. Counting it keeps a flood of empty entries bounded.
const ENTRY_OVERHEAD: u64 = 64;
/// The closing entry (why a call stopped) is always kept, at most this long.
const FINAL_MESSAGE_MAX: usize = 4 << 10;

fn text_size(message: &str, fields: &[(String, String)], source: &str) -> u64 {
    let fields: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
    (message.len() + fields + source.len()) as u64 + ENTRY_OVERHEAD
}

/// `text` cut to at most `max` bytes (on a character boundary), saying so.
pub fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
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

    /// Keep an entry if it fits under the cap (guest and host entries
    /// alike: a guest can make the host write entries, e.g. by sending
    /// requests that are denied); count it as dropped otherwise.
    pub fn push(
        &self,
        level: LogLevel,
        source: &str,
        message: &str,
        fields: Vec<(String, String)>,
    ) {
        self.push_inner(level, source, message, fields, false)
    }

    /// The entry that says why a call stopped: always kept (truncated), so
    /// a full log still explains the outcome.
    pub fn push_final(&self, level: LogLevel, message: &str, fields: Vec<(String, String)>) {
        let message = truncated(message, FINAL_MESSAGE_MAX);
        self.push_inner(level, "host", &message, fields, true)
    }

    /// Reserve `bytes` of the cap for a record kept beside the log (an HTTP
    /// exchange); false (and counted as dropped) when it does not fit.
    pub fn reserve(&self, bytes: u64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.bytes + bytes > inner.cap {
            inner.dropped_bytes += bytes;
            return false;
        }
        inner.bytes += bytes;
        true
    }

    fn push_inner(
        &self,
        level: LogLevel,
        source: &str,
        message: &str,
        fields: Vec<(String, String)>,
        always: bool,
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Decide on the raw size first: an entry far over the cap is
        // dropped without being copied or scanned.
        let raw = text_size(message, &fields, source);
        if !always && inner.bytes + raw > inner.cap {
            inner.dropped_bytes += raw;
            return;
        }
        let mut entry = LogEntry {
            at_us: self.started.elapsed().as_micros() as u64,
            level,
            source: source.to_string(),
            message: message.to_string(),
            fields,
        };
        crate::redact::redact_entries(&inner.scanner, std::slice::from_mut(&mut entry));
        let size = text_size(&entry.message, &entry.fields, &entry.source);
        if !always && inner.bytes + size > inner.cap {
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
