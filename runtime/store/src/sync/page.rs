//! What one `list-services` page said, read defensively: an adapter is
//! untrusted, and an error here would fail (and retry) the completion
//! batch the page rides in. Anything unusable ends the run with a reason
//! instead.
use crate::TaskOutcome;
use serde_json::Value;

/// Longest remote id, plan or domain kept (longer ones are cut).
const MAX_TEXT: usize = 255;
/// Longest cursor passed back to the adapter.
const MAX_CURSOR: usize = 4096;

/// A listed account.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteItem {
    pub remote_id: String,
    /// `active`, `suspended`, `terminated`, `pending` or `unknown`.
    pub state: &'static str,
    pub plan: Option<String>,
    pub domain: Option<String>,
}

/// One page's worth, or why the run must end.
#[derive(Debug, PartialEq)]
pub enum Page {
    Listed {
        items: Vec<RemoteItem>,
        next_cursor: Option<String>,
    },
    Failed(String),
}

/// Read a finished page task's outcome.
pub fn read(outcome: &TaskOutcome) -> Page {
    match outcome {
        TaskOutcome::Succeeded { result } => listed(result),
        TaskOutcome::AdapterError { kind, message, .. } => Page::Failed(format!(
            "list-services failed ({kind}): {}",
            cut(message, 1000)
        )),
        TaskOutcome::SandboxError { kind, message } => Page::Failed(format!(
            "list-services was stopped by the sandbox ({kind}): {}",
            cut(message, 1000)
        )),
        TaskOutcome::Internal { message } => {
            Page::Failed(format!("list-services: {}", cut(message, 1000)))
        }
    }
}

fn listed(result: &Value) -> Page {
    let Some(items) = result.get("items").and_then(Value::as_array) else {
        return Page::Failed("list-services returned no `items` list".into());
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(remote_id) = item
            .get("remote_id")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
        else {
            return Page::Failed(format!("list-services item {i} has no remote_id"));
        };
        out.push(RemoteItem {
            remote_id: cut(remote_id, MAX_TEXT),
            state: state(item.get("state")),
            plan: text(item.get("plan")),
            domain: text(item.get("domain")),
        });
    }
    let next_cursor = match result.get("next_cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if c.len() <= MAX_CURSOR && !c.contains('\0') => Some(c.clone()),
        Some(_) => return Page::Failed("list-services returned an unusable next_cursor".into()),
    };
    Page::Listed {
        items: out,
        next_cursor,
    }
}

fn state(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_str) {
        Some("active") => "active",
        Some("suspended") => "suspended",
        Some("terminated") => "terminated",
        Some("pending") => "pending",
        _ => "unknown",
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| cut(s, MAX_TEXT))
}

/// At most `max` bytes (on a character boundary), without NUL (Postgres
/// text cannot hold it).
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> Page {
        read(&TaskOutcome::Succeeded { result: v })
    }

    #[test]
    fn reads_a_page_and_its_cursor() {
        let page = ok(json!({"items": [
            {"remote_id": "alice", "state": "suspended", "plan": "gold", "domain": "a.test", "details": {}},
            {"remote_id": "bob", "state": "weird", "plan": null, "domain": ""},
        ], "next_cursor": "200"}));
        let Page::Listed { items, next_cursor } = page else {
            panic!("{page:?}")
        };
        assert_eq!(next_cursor.as_deref(), Some("200"));
        assert_eq!(items[0].state, "suspended");
        assert_eq!(items[0].plan.as_deref(), Some("gold"));
        assert_eq!(
            (
                items[1].state,
                items[1].plan.clone(),
                items[1].domain.clone()
            ),
            ("unknown", None, None)
        );
    }

    #[test]
    fn garbage_ends_the_run_instead_of_erroring() {
        for bad in [
            json!(null),
            json!("text"),
            json!({"items": {}}),
            json!({"items": [{"state": "active"}]}),
            json!({"items": [{"remote_id": "  "}]}),
            json!({"items": [], "next_cursor": 7}),
        ] {
            assert!(matches!(ok(bad.clone()), Page::Failed(_)), "{bad}");
        }
        let failed = read(&TaskOutcome::AdapterError {
            kind: "auth-failed".into(),
            message: "token\0refused".into(),
            retry_after_ms: None,
        });
        assert_eq!(
            failed,
            Page::Failed("list-services failed (auth-failed): token\u{FFFD}refused".into())
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(300);
        let page = ok(json!({"items": [{"remote_id": long, "state": "active"}]}));
        let Page::Listed { items, .. } = page else {
            panic!()
        };
        assert!(items[0].remote_id.len() <= MAX_TEXT);
        assert!(items[0].remote_id.chars().all(|c| c == 'é'));
    }
}
