//! Egress policy: allowed and denied requests against servers on loopback.
//! Every denial is checked to have sent nothing (a counting listener on the
//! target sees no connection) and to say why.

use crate::support::fake_panel::FakePanel;
use crate::support::listeners::CountingListener;
use crate::support::*;
use panel1_sandbox::{EgressPolicy, EgressRule, HostContext, Limits, Operation};
use serde_json::json;

fn policy(rules: &[&str]) -> EgressPolicy {
    EgressPolicy::new(
        rules
            .iter()
            .map(|r| EgressRule::parse(r).unwrap())
            .collect(),
    )
}

fn ctx(rules: &[&str]) -> HostContext {
    HostContext {
        egress: policy(rules),
        ..HostContext::default()
    }
}

async fn fetch(ctx: HostContext, url: &str) -> panel1_sandbox::CallReport {
    let a = load("ssrf");
    call(
        &a,
        ctx,
        Operation::Provision,
        service_with("s1", json!({ "url": url })),
    )
    .await
}

fn denial_text(r: &panel1_sandbox::CallReport) -> String {
    let denied: Vec<String> = r.http.iter().filter_map(|x| x.denied.clone()).collect();
    assert!(
        !denied.is_empty(),
        "expected a denied request: {:#?}",
        r.http
    );
    assert!(r.metrics.http_denied >= 1);
    assert!(r
        .log
        .iter()
        .any(|e| e.source == "host" && e.message.starts_with("egress denied")));
    denied.join(" | ")
}

#[tokio::test]
async fn allowed_request_reaches_the_server() {
    let panel = FakePanel::start("t").await;
    let r = fetch(
        ctx(&[&panel.base_url()]),
        &format!("{}/hello", panel.base_url()),
    )
    .await;
    let result = ok(&r);
    assert_eq!(result["details"]["status"], "200");
    assert_eq!(result["details"]["body"], r#"{"hello":"world"}"#);
    assert_eq!(panel.requests().len(), 1);
    assert_eq!(
        r.http[0].address.as_deref(),
        Some(format!("127.0.0.1:{}", panel.port).as_str())
    );
}

#[tokio::test]
async fn empty_policy_denies_everything() {
    let target = CountingListener::start("127.0.0.1:0").await;
    let r = fetch(
        HostContext::default(),
        &format!("http://127.0.0.1:{}/", target.port),
    )
    .await;
    assert_eq!(adapter_error(&r).0, "permanent");
    assert!(denial_text(&r).contains("empty policy"));
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn loopback_ip_not_in_policy_is_denied() {
    let target = CountingListener::start("127.0.0.1:0").await;
    let r = fetch(
        ctx(&["https://api.example.com"]),
        &format!("http://127.0.0.1:{}/", target.port),
    )
    .await;
    assert!(denial_text(&r).contains("not in the egress policy"));
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn ipv6_loopback_is_denied() {
    let target = CountingListener::start("[::1]:0").await;
    let r = fetch(
        ctx(&["https://api.example.com"]),
        &format!("http://[::1]:{}/", target.port),
    )
    .await;
    denial_text(&r);
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn private_and_metadata_addresses_are_denied() {
    for url in [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
    ] {
        let r = fetch(ctx(&["https://api.example.com"]), url).await;
        denial_text(&r);
        assert!(
            r.http.iter().all(|x| x.address.is_none()),
            "no connection for {url}"
        );
    }
}

#[tokio::test]
async fn allowed_names_resolving_to_internal_addresses_are_denied() {
    // The policy allows the *name*; the resolved address is what is checked.
    let target = CountingListener::start("127.0.0.1:0").await;
    let p = target.port;
    let cases = [
        (format!("http://localhost:{p}"), "loopback"),
        (format!("http://loopback.test:{p}"), "loopback"),
        (format!("http://mapped.test:{p}"), "loopback"),
        ("http://internal.test".to_string(), "private"),
        ("http://metadata.test".to_string(), "metadata"),
    ];
    for (base, class) in cases {
        let r = fetch(ctx(&[&base]), &format!("{base}/x")).await;
        let why = denial_text(&r);
        assert!(
            why.contains("resolved to") && why.contains(class),
            "{base}: {why}"
        );
    }
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn allow_internal_flag_lets_a_named_internal_host_through() {
    let panel = FakePanel::start("t").await;
    let mut rule = EgressRule::parse(&format!("http://loopback.test:{}", panel.port)).unwrap();
    rule.allow_internal = true;
    let c = HostContext {
        egress: EgressPolicy::new(vec![rule]),
        ..HostContext::default()
    };
    let r = fetch(c, &format!("http://loopback.test:{}/hello", panel.port)).await;
    assert_eq!(ok(&r)["details"]["status"], "200");
}

#[tokio::test]
async fn redirect_to_loopback_is_rechecked_and_denied() {
    let panel = FakePanel::start("t").await;
    let target = CountingListener::start("127.0.0.1:0").await;
    let url = format!(
        "{}/redirect?to=http://127.0.0.1:{}/admin",
        panel.base_url(),
        target.port
    );
    let r = fetch(ctx(&[&panel.base_url()]), &url).await;
    let (kind, msg) = adapter_error(&r);
    assert_eq!(kind, "permanent");
    assert!(msg.contains("denied"), "{msg}");
    assert_eq!(
        r.http.len(),
        2,
        "the redirect was followed by a second, checked request"
    );
    assert_eq!(r.http[0].status, Some(302));
    assert!(r.http[1].denied.is_some());
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn methods_and_path_prefixes_are_enforced() {
    let panel = FakePanel::start("t").await;
    let only_v1 = format!("GET {}/v1/", panel.base_url());
    let r = fetch(ctx(&[&only_v1]), &format!("{}/hello", panel.base_url())).await;
    assert!(denial_text(&r).contains("outside `/v1/`"));
    let r = fetch(
        ctx(&[&only_v1]),
        &format!("{}/v1/../hello", panel.base_url()),
    )
    .await;
    denial_text(&r);
    let post_only = format!("POST {}", panel.base_url());
    let r = fetch(ctx(&[&post_only]), &format!("{}/hello", panel.base_url())).await;
    assert!(denial_text(&r).contains("method GET"));
    assert!(panel.requests().is_empty());
}

#[tokio::test]
async fn requests_per_call_are_capped() {
    let panel = FakePanel::start("t").await;
    let mut c = ctx(&[&panel.base_url()]);
    c.limits = Limits {
        http_max_requests: 3,
        ..Limits::default()
    };
    let r = fetch(c, &format!("{}/loop", panel.base_url())).await;
    assert!(denial_text(&r).contains("request limit of 3"));
    assert_eq!(panel.requests().len(), 3);
}

#[tokio::test]
async fn response_bodies_are_capped() {
    let panel = FakePanel::start("t").await;
    panel.with(|s| s.version_body_bytes = 256 << 10);
    let mut c = panel.context();
    c.limits = Limits {
        http_max_response_bytes: 64 << 10,
        ..Limits::default()
    };
    let a = load("reference");
    let r = call(&a, c, Operation::TestConnection, json!({})).await;
    adapter_error(&r);
    let err = r.http[0].error.clone().unwrap_or_default();
    assert!(err.contains("over 65536 bytes"), "{err}");
}

#[tokio::test]
async fn slow_servers_are_bounded_by_the_call_deadline() {
    let panel = FakePanel::start("t").await;
    panel.with(|s| s.version_delay_ms = 5_000);
    let mut c = panel.context();
    c.limits = Limits {
        timeout_ms: 400,
        ..Limits::default()
    };
    let a = load("reference");
    let started = std::time::Instant::now();
    let r = call(&a, c, Operation::TestConnection, json!({})).await;
    let took = started.elapsed().as_millis();
    assert!(took < 2_000, "took {took} ms with a 400 ms limit");
    // Either the request timed out inside the call (a transient error the
    // adapter saw) or the call's deadline fired: never a 5 s wait.
    match &r.outcome {
        panel1_sandbox::Outcome::AdapterError { kind, .. } => {
            assert_eq!(kind.as_str(), "transient")
        }
        panel1_sandbox::Outcome::SandboxError { kind, .. } => assert_eq!(kind.as_str(), "deadline"),
        other => panic!("{other:?}"),
    }
}

/// Paths a server could read differently from the policy, each with the
/// reason the denial must give. With a rule `http://127.0.0.1:PORT/api/`,
/// every one of them tries to reach something outside `/api/`.
const PATH_BYPASSES: &[(&str, &str)] = &[
    ("/api/..;/admin", "dot segment (`..;`)"),
    ("/api/%252e%252e/admin", "encoded percent sign (%25)"),
    ("/api/%2e%2e/admin", "dot segment (`..`)"),
    ("/api/..%3B/admin", "dot segment (`..%3B`)"),
    ("/api/..%2Fadmin", "encoded slash (%2F)"),
    ("/api/..%5Cadmin", "encoded backslash (%5C)"),
    ("/api/..\\admin", "backslash"),
    ("/api/%u002e%u002e/admin", "invalid percent escape"),
    ("/api/\u{ff0e}\u{ff0e}/admin", "non-ASCII byte"),
    (
        "/api/%EF%BC%8E%EF%BC%8E/admin",
        "encoded non-ASCII byte (%EF)",
    ),
    ("/api/%C0%AE%C0%AE/admin", "encoded non-ASCII byte (%C0)"),
    ("/api//..//admin", "empty segment"),
    ("/api/%00/../admin", "NUL"),
    ("/api/./x", "dot segment (`.`)"),
    ("/apix", "outside `/api/`"),
];

#[tokio::test]
async fn encoded_path_bypasses_are_denied_before_connecting() {
    let target = CountingListener::start("127.0.0.1:0").await;
    let panel = FakePanel::start("t").await;
    let rules = [
        format!("http://127.0.0.1:{}/api/", target.port),
        format!("http://127.0.0.1:{}/api/", panel.port),
    ];
    for port in [target.port, panel.port] {
        for (path, why) in PATH_BYPASSES {
            let r = fetch(
                ctx(&[&rules[0], &rules[1]]),
                &format!("http://127.0.0.1:{port}{path}"),
            )
            .await;
            let denial = denial_text(&r);
            assert!(denial.contains(why), "{path}: {denial}");
            assert!(r.http.iter().all(|x| x.address.is_none()), "{path}");
        }
    }
    assert_eq!(target.connections(), 0, "a refused path left the host");
    assert!(panel.requests().is_empty(), "{:?}", panel.requests());

    // A plain request under the prefix goes through, and the server gets the
    // canonical path the policy checked (unreserved escapes decoded, other
    // escapes upper-cased, the query as sent).
    let r = fetch(
        ctx(&[&rules[1]]),
        &format!(
            "http://127.0.0.1:{}/api/%7Ex/%41b%3b?next=/../admin&q=%2f",
            panel.port
        ),
    )
    .await;
    assert_eq!(ok(&r)["details"]["status"], "401");
    let seen: Vec<String> = panel.requests().into_iter().map(|x| x.path).collect();
    assert_eq!(seen, vec!["/api/~x/Ab%3B?next=/../admin&q=%2f".to_string()]);
}
