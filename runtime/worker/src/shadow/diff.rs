//! What differs between a recorded attempt and a candidate's replay of it:
//! requests (method, URL, body shape: JSON keys and types, never values)
//! and outcomes (ok, or the error's class and kind).
use panel1_sandbox::{HttpExchange, RecordedBody, RecordedExchange, Served};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RequestDiff {
    /// The candidate asked for something the recording has no response
    /// for: the host answered with an error, nothing was sent.
    Unrecorded { method: String, url: String },
    /// A recorded request the candidate did not make.
    NotMade { method: String, url: String },
    /// Same method and URL, another body shape.
    BodyShape {
        method: String,
        url: String,
        changes: Vec<String>,
    },
    /// The server's egress policy refused the candidate's request.
    Denied {
        method: String,
        url: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeDiff {
    pub recorded: Value,
    pub candidate: Value,
}

/// Every request difference of one replay, in the candidate's order, then
/// the recorded requests it never made.
pub fn request_diffs(
    recorded: &[RecordedExchange],
    served: &[Served],
    http: &[HttpExchange],
) -> Vec<RequestDiff> {
    let mut out = Vec::new();
    // Refused before the tape is asked: they are not in `served`.
    for x in http {
        if let Some(reason) = &x.denied {
            out.push(RequestDiff::Denied {
                method: x.method.clone(),
                url: x.url.clone(),
                reason: reason.clone(),
            });
        }
    }
    let mut used = vec![false; recorded.len()];
    for s in served {
        let (method, url) = (s.request.method.clone(), s.request.url.clone());
        match s.recorded.and_then(|i| recorded.get(i).map(|x| (i, x))) {
            None => out.push(RequestDiff::Unrecorded { method, url }),
            Some((i, x)) => {
                used[i] = true;
                let changes = body_shape_changes(&x.request.body, &s.request.body);
                if !changes.is_empty() {
                    out.push(RequestDiff::BodyShape {
                        method,
                        url,
                        changes,
                    });
                }
            }
        }
    }
    for (x, used) in recorded.iter().zip(used) {
        if !used {
            out.push(RequestDiff::NotMade {
                method: x.request.method.clone(),
                url: x.request.url.clone(),
            });
        }
    }
    out
}

/// `None` when both are the same status (and error kind).
pub fn outcome_diff(recorded: &Value, candidate: &Value) -> Option<OutcomeDiff> {
    let same = recorded["status"] == candidate["status"] && recorded["kind"] == candidate["kind"];
    (!same).then(|| OutcomeDiff {
        recorded: recorded.clone(),
        candidate: candidate.clone(),
    })
}

/// A sandbox outcome as a recording's outcome summary.
pub fn outcome_summary(o: &panel1_sandbox::Outcome) -> Value {
    use panel1_sandbox::Outcome;
    match o {
        Outcome::Ok { .. } => json!({"status": "ok"}),
        Outcome::AdapterError { kind, .. } => {
            json!({"status": "adapter-error", "kind": kind.to_string()})
        }
        Outcome::SandboxError { kind, .. } => {
            json!({"status": "sandbox-error", "kind": kind.to_string()})
        }
    }
}

enum Shape {
    Empty,
    Json(Value),
    Form(BTreeSet<String>),
    Opaque,
}

fn shape_of(b: &RecordedBody) -> Shape {
    let bytes = b.bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Shape::Empty;
    }
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        return Shape::Json(v);
    }
    match std::str::from_utf8(&bytes) {
        Ok(t) if t.contains('=') && !t.contains(char::is_whitespace) => Shape::Form(
            t.split('&')
                .map(|kv| kv.split('=').next().unwrap_or("").to_string())
                .collect(),
        ),
        _ => Shape::Opaque,
    }
}

fn body_shape_changes(recorded: &RecordedBody, live: &RecordedBody) -> Vec<String> {
    let mut out = Vec::new();
    match (shape_of(recorded), shape_of(live)) {
        (Shape::Json(a), Shape::Json(b)) => walk("", &a, &b, &mut out),
        (Shape::Form(a), Shape::Form(b)) => {
            out.extend(
                a.difference(&b)
                    .map(|k| format!("form field `{k}` removed")),
            );
            out.extend(b.difference(&a).map(|k| format!("form field `{k}` added")));
        }
        (Shape::Empty, Shape::Empty) | (Shape::Opaque, Shape::Opaque) => {}
        (a, b) => out.push(format!("body was {}, is {}", kind(&a), kind(&b))),
    }
    out
}

fn kind(s: &Shape) -> &'static str {
    match s {
        Shape::Empty => "empty",
        Shape::Json(_) => "JSON",
        Shape::Form(_) => "a form",
        Shape::Opaque => "text or binary",
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON Pointer paths of keys added or removed and of type changes.
fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let child = |k: &str| format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().filter(|k| !y.contains_key(*k)) {
                out.push(format!("`{}` removed", child(k)));
            }
            for (k, v) in y {
                match x.get(k) {
                    None => out.push(format!("`{}` added", child(k))),
                    Some(w) => walk(&child(k), w, v, out),
                }
            }
        }
        // Elements are compared by their first one: lengths are values.
        (Value::Array(x), Value::Array(y)) => {
            if let (Some(p), Some(q)) = (x.first(), y.first()) {
                walk(&child("0"), p, q, out)
            }
        }
        _ if type_name(a) != type_name(b) => {
            let at = if path.is_empty() { "/" } else { path };
            out.push(format!("`{at}` was {}, is {}", type_name(a), type_name(b)));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use panel1_sandbox::RecordedRequest;

    fn req(method: &str, url: &str, body: &str) -> RecordedRequest {
        RecordedRequest {
            method: method.into(),
            url: url.into(),
            headers: vec![],
            body: RecordedBody::from_bytes(body.as_bytes(), 1 << 20),
        }
    }

    fn exchange(method: &str, url: &str, body: &str) -> RecordedExchange {
        RecordedExchange {
            request: req(method, url, body),
            response: None,
            error: None,
        }
    }

    #[test]
    fn body_shapes_compare_keys_and_types_not_values() {
        let recorded = vec![
            exchange(
                "POST",
                "https://h.test/a",
                r#"{"u":"x","n":1,"l":[{"k":1}]}"#,
            ),
            exchange("GET", "https://h.test/b", ""),
            exchange("PUT", "https://h.test/c", "a=1&b=2"),
        ];
        let served = vec![
            Served {
                request: req(
                    "POST",
                    "https://h.test/a",
                    r#"{"u":"y","n":"1","l":[{"k":2,"j":0}],"z":null}"#,
                ),
                recorded: Some(0),
            },
            Served {
                request: req("GET", "https://h.test/zzz", ""),
                recorded: None,
            },
            Served {
                request: req("PUT", "https://h.test/c", "a=9&c=2"),
                recorded: Some(2),
            },
        ];
        let d = request_diffs(&recorded, &served, &[]);
        assert_eq!(
            d,
            vec![
                RequestDiff::BodyShape {
                    method: "POST".into(),
                    url: "https://h.test/a".into(),
                    changes: vec![
                        "`/l/0/j` added".into(),
                        "`/n` was number, is string".into(),
                        "`/z` added".into(),
                    ],
                },
                RequestDiff::Unrecorded {
                    method: "GET".into(),
                    url: "https://h.test/zzz".into()
                },
                RequestDiff::BodyShape {
                    method: "PUT".into(),
                    url: "https://h.test/c".into(),
                    changes: vec![
                        "form field `b` removed".into(),
                        "form field `c` added".into()
                    ],
                },
                RequestDiff::NotMade {
                    method: "GET".into(),
                    url: "https://h.test/b".into()
                },
            ]
        );
        // Same keys and types, other values: nothing differs.
        let same = vec![Served {
            request: req("POST", "https://h.test/a", r#"{"n":7,"u":"q","l":[]}"#),
            recorded: Some(0),
        }];
        assert_eq!(request_diffs(&recorded[..1], &same, &[]), vec![]);
    }

    #[test]
    fn outcomes_compare_status_and_kind() {
        let ok = json!({"status": "ok"});
        let perm = json!({"status": "adapter-error", "kind": "permanent"});
        assert!(outcome_diff(&ok, &json!({"status": "ok"})).is_none());
        assert_eq!(
            outcome_diff(&ok, &perm),
            Some(OutcomeDiff {
                recorded: ok.clone(),
                candidate: perm.clone()
            })
        );
        let transient = json!({"status": "adapter-error", "kind": "transient"});
        assert!(outcome_diff(&perm, &transient).is_some());
    }
}
