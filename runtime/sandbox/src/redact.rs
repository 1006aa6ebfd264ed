//! The output scan: a call's result, error message, log and HTTP records are
//! stored (Postgres) and printed (CLI), so every secret of the call, in any
//! form the scanner knows, becomes `[REDACTED:NAME]` before they leave the
//! sandbox. Adjacent strings (a document's strings in order, consecutive log
//! messages and fields) are also scanned as one text, so a secret split
//! between two of them is caught; a guest that scatters or encrypts a
//! revealed secret is not (sticky binding still confines its requests).
use crate::call::{CallReport, Outcome};
use crate::egress::scanner::{Marker, SecretScanner};
use crate::egress::HttpExchange;
use crate::log_buffer::LogEntry;
use serde_json::{Map, Value};

pub fn redact_report(scanner: &SecretScanner, report: &mut CallReport) {
    if scanner.is_empty() {
        return;
    }
    redact_outcome(scanner, &mut report.outcome);
    redact_entries(scanner, &mut report.log);
    redact_exchanges(scanner, &mut report.http);
}

fn redact_outcome(scanner: &SecretScanner, outcome: &mut Outcome) {
    match outcome {
        Outcome::Ok { result } => redact_json(scanner, result),
        Outcome::AdapterError { message, .. } | Outcome::SandboxError { message, .. } => {
            *message = scanner.redact_str(message, Marker::Redacted).into_owned();
        }
    }
}

/// Messages and fields, each alone and all as one text in order; then the
/// messages alone as one text (stdout arrives in chunks, one entry each).
pub fn redact_entries(scanner: &SecretScanner, entries: &mut [LogEntry]) {
    if scanner.is_empty() {
        return;
    }
    redact_messages_and_fields(scanner, entries);
    let messages: Vec<&str> = entries.iter().map(|e| e.message.as_str()).collect();
    if let Some(clean) = scanner.redact_strings(&messages, Marker::Redacted) {
        for (e, m) in entries.iter_mut().zip(clean) {
            e.message = m;
        }
    }
}

fn redact_messages_and_fields(scanner: &SecretScanner, entries: &mut [LogEntry]) {
    let mut strings: Vec<&str> = Vec::new();
    for e in entries.iter() {
        strings.push(&e.message);
        for (k, v) in &e.fields {
            strings.push(k);
            strings.push(v);
        }
    }
    let Some(clean) = scanner.redact_strings(&strings, Marker::Redacted) else {
        return;
    };
    let mut clean = clean.into_iter();
    for e in entries.iter_mut() {
        e.message = clean.next().unwrap_or_default();
        for (k, v) in e.fields.iter_mut() {
            *k = clean.next().unwrap_or_default();
            *v = clean.next().unwrap_or_default();
        }
    }
}

fn redact_exchanges(scanner: &SecretScanner, exchanges: &mut [HttpExchange]) {
    for x in exchanges {
        for text in [&mut x.method, &mut x.url]
            .into_iter()
            .chain(x.denied.as_mut())
            .chain(x.error.as_mut())
            .chain(x.address.as_mut())
        {
            if let std::borrow::Cow::Owned(clean) = scanner.redact_str(text, Marker::Redacted) {
                *text = clean;
            }
        }
    }
}

/// Every key and string of the document, in order, scanned alone and as one
/// text; the document is rebuilt only when something was found.
fn redact_json(scanner: &SecretScanner, value: &mut Value) {
    let mut strings = Vec::new();
    collect(value, &mut strings);
    let Some(clean) = scanner.redact_strings(&strings, Marker::Redacted) else {
        return;
    };
    let mut clean = clean.into_iter();
    *value = rebuild(value, &mut clean);
}

fn collect<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k);
                collect(v, out);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn rebuild(value: &Value, clean: &mut impl Iterator<Item = String>) -> Value {
    match value {
        Value::String(_) => Value::String(clean.next().unwrap_or_default()),
        Value::Array(items) => Value::Array(items.iter().map(|v| rebuild(v, clean)).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (_, v) in map {
                let key = clean.next().unwrap_or_default();
                out.insert(key, rebuild(v, clean));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::secrets::Secret;
    use crate::log_buffer::LogLevel;
    use serde_json::json;

    const VALUE: &str = "hunter2-hunter2";

    fn scanner() -> SecretScanner {
        SecretScanner::new(&[Secret {
            name: "pw".into(),
            value: VALUE.into(),
            destinations: vec![],
        }])
    }

    #[test]
    fn results_are_redacted_in_keys_values_and_across_strings() {
        let mut v = json!({"a": [VALUE, "keep"], VALUE: 1, "split": ["hunter2-", "hunter2"]});
        redact_json(&scanner(), &mut v);
        let text = v.to_string();
        assert!(
            !text.contains(VALUE) && !text.contains("hunter2-\""),
            "{text}"
        );
        assert_eq!(v["a"][1], "keep");
        assert_eq!(v["[REDACTED:pw]"], 1);
    }

    #[test]
    fn log_entries_are_redacted_across_consecutive_lines() {
        let entry = |m: &str| LogEntry {
            at_us: 0,
            level: LogLevel::Info,
            source: "stdout".into(),
            message: m.into(),
            fields: vec![("k".into(), "v".into())],
        };
        // Split between two messages (a field in between), and between a
        // field's name and its value.
        let mut entries = vec![entry("start hunter2-hun"), entry("ter2 end")];
        entries[1].fields = vec![("hunter2".into(), "-hunter2 x".into())];
        redact_entries(&scanner(), &mut entries);
        assert_eq!(entries[0].message, "start [REDACTED:pw]");
        assert_eq!(entries[0].fields, vec![("k".into(), "v".into())]);
        assert_eq!(entries[1].message, "[REDACTED:pw] end");
        assert_eq!(
            entries[1].fields,
            vec![("[REDACTED:pw]".into(), "[REDACTED:pw] x".into())]
        );
    }
}
