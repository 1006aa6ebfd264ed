//! `adapter run --record FILE` (the fixture file) and `--verbose` (each
//! exchange's headers and bodies on stderr).
use super::{usage, RunArgs};
use crate::cli::dev_sandbox::SCRIPT_KEY;
use panel1_sandbox::{
    FixtureContext, HostContext, Operation, RecordedBody, RecordedExchange, Recording, Sanitizer,
    SecretScanner, SecretSlot,
};
use std::path::Path;

/// Longest body `--verbose` prints.
const VERBOSE_BODY_MAX: usize = 4096;

/// Write the call's exchanges, with the connection they were recorded
/// with (secret names and bindings, never values), to `path`.
pub(super) fn write(
    path: &Path,
    args: &RunArgs,
    context: &HostContext,
    operation: Operation,
    recording: &Recording,
) -> Result<(), u8> {
    let scanner = SecretScanner::new(&context.secrets);
    let clean = Sanitizer {
        scanner: &scanner,
        secrets: &context.secrets,
    };
    let mut fixture = recording.fixture();
    fixture.operation = Some(operation.to_string());
    fixture.context = Some(FixtureContext {
        config: context
            .config
            .iter()
            .filter(|(k, _)| k.as_str() != SCRIPT_KEY)
            .map(|(k, v)| (k.clone(), clean.text(v)))
            .collect(),
        allow: args.allow.iter().map(|r| clean.text(r)).collect(),
        allow_internal: args.allow_internal,
        secrets: context
            .secrets
            .iter()
            .map(|s| SecretSlot {
                name: s.name.clone(),
                destinations: s.destinations.clone(),
            })
            .collect(),
    });
    let mut text = serde_json::to_string_pretty(&fixture).unwrap_or_default();
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
    eprintln!(
        "recorded {} HTTP exchange(s) to {}",
        fixture.exchanges.len(),
        path.display()
    );
    Ok(())
}

/// Each exchange as a person reads it: `>` the request, `<` the response.
pub(super) fn print_verbose(exchanges: &[RecordedExchange]) {
    eprint!("{}", verbose_text(exchanges));
}

fn verbose_text(exchanges: &[RecordedExchange]) -> String {
    let mut out = String::new();
    for (i, x) in exchanges.iter().enumerate() {
        let r = &x.request;
        out.push_str(&format!("── exchange {}: {} {}\n", i + 1, r.method, r.url));
        for (k, v) in &r.headers {
            out.push_str(&format!("> {k}: {v}\n"));
        }
        body_lines(&mut out, ">", &r.body);
        match (&x.response, &x.error) {
            (Some(resp), _) => {
                out.push_str(&format!("< {}\n", resp.status));
                for (k, v) in &resp.headers {
                    out.push_str(&format!("< {k}: {v}\n"));
                }
                body_lines(&mut out, "<", &resp.body);
            }
            (None, Some(e)) => out.push_str(&format!("< (no response: {e})\n")),
            (None, None) => out.push_str("< (no response)\n"),
        }
    }
    out
}

fn body_lines(out: &mut String, mark: &str, body: &RecordedBody) {
    if body.body_bytes == 0 {
        return;
    }
    let bytes = body.bytes();
    let shown = &bytes[..bytes.len().min(VERBOSE_BODY_MAX)];
    out.push_str(&format!("{mark}\n"));
    match std::str::from_utf8(shown) {
        Ok(text) => {
            for line in text.lines() {
                out.push_str(&format!("{mark} {line}\n"));
            }
        }
        Err(_) => out.push_str(&format!("{mark} ({} bytes, not text)\n", bytes.len())),
    }
    if (shown.len() as u64) < body.body_bytes {
        out.push_str(&format!(
            "{mark} … ({} of {} bytes shown)\n",
            shown.len(),
            body.body_bytes
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use panel1_sandbox::{RecordedRequest, RecordedResponse};

    #[test]
    fn verbose_shows_headers_and_capped_bodies() {
        let x = RecordedExchange {
            request: RecordedRequest {
                method: "POST".into(),
                url: "https://h.test/json-api/createacct".into(),
                headers: vec![("authorization".into(), "whm root:{{secret:t}}".into())],
                body: RecordedBody::from_bytes(b"user=a", 100),
            },
            response: Some(RecordedResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: RecordedBody::from_bytes("x".repeat(5000).as_bytes(), 1 << 20),
            }),
            error: None,
        };
        let text = verbose_text(&[x]);
        assert!(
            text.contains("> authorization: whm root:{{secret:t}}"),
            "{text}"
        );
        assert!(text.contains("> user=a"), "{text}");
        assert!(
            text.contains("< 200\n< content-type: application/json"),
            "{text}"
        );
        assert!(text.contains("(4096 of 5000 bytes shown)"), "{text}");
    }
}
