//! A secret cannot be laundered out: a bound server that echoes the secret
//! in any encoding, a guest that returns, logs, transforms or forwards what
//! it got, and a guest granted `secrets-reveal`. The plaintext reaches no
//! other listener and appears nowhere in the report, in any known encoding.

use crate::support::echo::{self, EchoServer, FORMS};
use crate::support::listeners::CountingListener;
use crate::support::*;
use panel1_sandbox::{CallReport, EgressPolicy, EgressRule, Grants, HostContext, Operation};
use serde_json::json;

/// Slashes, `+`, `?`, `&`, `=` and a space: its raw, percent and JSON forms
/// all differ.
const TOKEN: &str = "To?k/3n+Value?&=0123 x";

struct Setup {
    echo: EchoServer,
    sink: CountingListener,
    ctx: HostContext,
}

/// The token bound to the echo server only; egress allows the echo server
/// and the sink (so only the secret rules stand between the two).
async fn setup() -> Setup {
    let echo = EchoServer::start().await;
    let sink = CountingListener::start("127.0.0.1:0").await;
    let sink_url = format!("http://127.0.0.1:{}", sink.port);
    let ctx = HostContext {
        secrets: vec![panel1_sandbox::SecretBinding {
            name: "api-token".into(),
            value: TOKEN.into(),
            destinations: vec![format!("127.0.0.1:{}", echo.port)],
        }],
        egress: EgressPolicy::new(vec![
            EgressRule::parse(&echo.url()).unwrap(),
            EgressRule::parse(&sink_url).unwrap(),
        ]),
        ..HostContext::default()
    };
    Setup { echo, sink, ctx }
}

impl Setup {
    fn params(&self, forms: &str) -> serde_json::Value {
        service_with(
            "s1",
            json!({
                "echo_url": self.echo.url(),
                "sink_url": format!("http://127.0.0.1:{}", self.sink.port),
                "forms": forms,
            }),
        )
    }
}

fn assert_clean(r: &CallReport) {
    let text = report_text(r);
    if let Some(form) = echo::leaked(&text, TOKEN) {
        panic!("the report holds the token as {form:?}: {text}");
    }
}

fn denials(r: &CallReport) -> Vec<String> {
    r.http.iter().filter_map(|x| x.denied.clone()).collect()
}

#[tokio::test]
async fn echoed_secrets_reach_neither_the_guest_nor_the_report_nor_another_host() {
    let s = setup().await;
    let a = load("launder");
    let forms = FORMS.join(",");
    let r = call(&a, s.ctx.clone(), Operation::Provision, s.params(&forms)).await;
    let result = ok(&r).clone();
    // The bound server got the real token with every request...
    let received = s.echo.received();
    assert_eq!(received.len(), FORMS.len());
    assert!(received.iter().all(|x| x
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == &format!("Bearer {TOKEN}"))));
    // ...and the guest saw placeholders where it was echoed: in bodies,
    // header values and both halves of a split.
    let loot = result["details"]["raw"].as_str().unwrap();
    for form in FORMS
        .iter()
        .filter(|f| !f.starts_with("name-") && **f != "split")
    {
        // HTTP Basic keeps the base64 of `admin:` (it holds no secret bits).
        let kept = if *form == "basic" { "YWRtaW46" } else { "" };
        let placeholder = format!("{kept}{{{{secret:api-token}}}}");
        assert!(
            loot.contains(&format!("{form}: body={{\"echo\":\"{placeholder}\"}}")),
            "{form} not scrubbed to a placeholder in the body: {loot}"
        );
        assert!(
            loot.contains(&format!("{form}: header x-echo={placeholder}")),
            "{form} not scrubbed in the header: {loot}"
        );
    }
    assert!(
        loot.contains("split: joined={{secret:api-token}}{{secret:api-token}}"),
        "{loot}"
    );
    // A scrubbed body's length is its own, not the original's (which
    // would give the secret's length away).
    let scrubbed = "{\"echo\":\"{{secret:api-token}}\"}";
    assert!(
        loot.contains(&format!("raw: header content-length={}\n", scrubbed.len())),
        "{loot}"
    );
    // Headers named after the secret never reached the guest.
    assert!(!loot.contains("name-hex: header x-"), "{loot}");
    assert!(r
        .log
        .iter()
        .any(|e| e.source == "host" && e.message.contains("response header(s) dropped")));
    // Forwarding it anywhere else was refused before connecting: the call had
    // the token injected, so sticky binding confines it to the echo server.
    assert_eq!(result["details"]["denied"], "6");
    assert_eq!(r.metrics.http_denied, 6);
    let denied = denials(&r);
    assert_eq!(denied.len(), 6);
    assert!(
        denied.iter().all(|d| d.contains("sticky secret binding")),
        "{denied:?}"
    );
    assert_eq!(s.sink.connections(), 0, "nothing may reach the sink");
    assert_clean(&r);
}

#[tokio::test]
async fn an_error_message_carrying_the_echo_is_redacted() {
    let s = setup().await;
    let a = load("launder");
    let r = call(
        &a,
        s.ctx.clone(),
        Operation::Suspend,
        s.params("raw,hex,basic,split"),
    )
    .await;
    let (kind, msg) = adapter_error(&r);
    assert_eq!(kind, "permanent");
    assert!(msg.contains("{{secret:api-token}}"), "{msg}");
    assert_clean(&r);
}

#[tokio::test]
async fn a_transform_the_scanner_does_not_know_is_confined_by_sticky_binding() {
    let s = setup().await;
    let a = load("launder");
    let r = call(&a, s.ctx.clone(), Operation::Provision, s.params("rev-hex")).await;
    let result = ok(&r);
    // Reversed hex is not one of the scanned forms: the guest read it...
    let reversed_hex = echo::encode("rev-hex", TOKEN);
    assert!(result["details"]["raw"]
        .as_str()
        .unwrap()
        .contains(&reversed_hex));
    // ...but could send it nowhere but the bound server: sticky binding
    // refused it as read (the reversed copy is plain hex again, which the
    // outbound scan recognises first).
    assert_eq!(r.metrics.http_denied, 6);
    let denied = denials(&r);
    assert!(denied[0].contains("sticky secret binding"), "{denied:?}");
    assert!(
        denied[5].contains("carries secret `api-token` (hex-encoded, in the body)"),
        "{denied:?}"
    );
    assert_eq!(s.sink.connections(), 0);
}

#[tokio::test]
async fn a_revealed_secret_goes_only_where_it_is_bound_and_never_into_the_report() {
    let s = setup().await;
    let ctx = HostContext {
        grants: Grants {
            secrets_reveal: true,
        },
        ..s.ctx.clone()
    };
    let a = load("launder");
    let r = call(&a, ctx, Operation::Status, s.params("")).await;
    let result = ok(&r);
    for form in ["raw", "base64", "hex", "percent", "reversed"] {
        assert_eq!(
            result["details"][form], "[REDACTED:api-token]",
            "{form} in {result}"
        );
    }
    // Six tries toward the sink, each refused by the outbound scan (the
    // reason names the secret and the form, never the value).
    assert_eq!(result["details"]["denied"], "6");
    assert_eq!(r.metrics.http_denied, 6);
    let denied = denials(&r);
    assert!(
        denied
            .iter()
            .all(|d| d.contains("carries secret `api-token`") && d.contains("not bound")),
        "{denied:?}"
    );
    assert_eq!(s.sink.connections(), 0);
    // The bound server may receive it, in any form (HTTP Basic here).
    assert_eq!(result["details"]["echo_status"], "200");
    let basic = echo::base64(format!("admin:{TOKEN}").as_bytes());
    assert!(s
        .echo
        .received()
        .iter()
        .any(|x| x.headers.iter().any(|(k, v)| k == "x-basic" && v == &basic)));
    assert_clean(&r);
}

#[tokio::test]
async fn a_plaintext_from_elsewhere_is_refused_toward_unbound_hosts() {
    let s = setup().await;
    let a = load("launder");
    // The guest holds the value without any injection or reveal (as if the
    // operator had put it in the input): only the outbound scan stops it.
    let mut input = s.params("");
    input["service"]["params"]["data"] = json!(TOKEN);
    let r = call(&a, s.ctx.clone(), Operation::Terminate, input).await;
    let result = ok(&r);
    assert_eq!(result["details"]["denied"], "9");
    assert_eq!(r.metrics.http_denied, 9);
    let denied = denials(&r);
    assert_eq!(denied.len(), 9);
    for (reason, expected) in denied.iter().zip([
        "as is, in the body",
        "base64-encoded, in the body",
        "hex-encoded, in URL",
        "percent-encoded, in URL",
        "base64-encoded, in a header value",
        "reversed, in the body",
        "as is, in a header value",
        "hex-encoded, in a header name",
        "base64url-encoded, in URL",
    ]) {
        assert!(
            reason.contains(expected) && reason.contains("`api-token`"),
            "expected {expected:?} in {reason:?}"
        );
    }
    assert_eq!(s.sink.connections(), 0);
    assert_clean(&r);
}

#[tokio::test]
async fn a_response_the_scrubber_cannot_read_never_reaches_the_guest() {
    let s = setup().await;
    let a = load("launder");
    // The guest asks for gzip; the host asks for `identity` instead, and a
    // server that encodes its answer anyway has it refused.
    let r = call(&a, s.ctx.clone(), Operation::Suspend, s.params("gzip")).await;
    adapter_error(&r);
    let received = s.echo.received();
    assert_eq!(received.len(), 1);
    assert!(
        received[0]
            .headers
            .iter()
            .any(|(k, v)| k == "accept-encoding" && v == "identity"),
        "{:?}",
        received[0].headers
    );
    let error = r.http[0].error.clone().unwrap_or_default();
    assert!(error.contains("content-encoded"), "{:?}", r.http);
    let shifted: String = TOKEN.bytes().map(|b| (b + 1) as char).collect();
    assert!(!report_text(&r).contains(&shifted));

    // The same body under `transfer-encoding: gzip, chunked`.
    let r = call(&a, s.ctx.clone(), Operation::Suspend, s.params("gzip-te")).await;
    adapter_error(&r);
    assert_eq!(s.echo.received().len(), 2);
    let error = r.http[0].error.clone().unwrap_or_default();
    assert!(error.contains("transfer coding"), "{:?}", r.http);
    assert!(!report_text(&r).contains(&shifted));

    // A ranged read could bring a stored secret back in pieces no scan
    // recognises: refused before connecting.
    let r = call(&a, s.ctx.clone(), Operation::Suspend, s.params("range")).await;
    adapter_error(&r);
    assert_eq!(s.echo.received().len(), 2, "the ranged request was sent");
    let denied = denials(&r);
    assert!(
        denied[0].contains("ranged requests are refused"),
        "{denied:?}"
    );
}
