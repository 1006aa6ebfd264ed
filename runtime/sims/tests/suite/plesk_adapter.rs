//! The real plesk adapter (`adapters/dist/plesk.wasm`) in the real sandbox
//! against the Plesk simulator over HTTPS on loopback, its self-signed
//! certificate pinned on the egress rule: every operation end to end, ensure
//! semantics on retries, input checks, TLS pinning, and secrecy (checked on
//! every call by the harness). Every request the simulator saw is checked
//! against Plesk's own OpenAPI description.

use crate::guest::{detail, error, ok};
use crate::plesk::*;
use panel1_sandbox::Operation;
use panel1_sims::plesk::{Client, Domain, Plan};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_of_a_subscription() {
    let mut h = Plesk::start().await;
    h.sim.add_plan(Plan::new("Pro", Some(50 << 30), None));
    h.bind_secret("svc-password", "Initial#Pass9");

    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(ok(&r)["server_version"], "Plesk 18.0.70");

    // Provision: a customer and a subscription on the plan, the password
    // from a secret (placeholder in the JSON body, substituted by the host).
    let mut input = new_service("alice", "Alice.Example", Some("Default Domain"));
    input["password_secret"] = json!("svc-password");
    let r = h.call(Operation::Provision, input.clone()).await;
    let res = ok(&r);
    assert_eq!(res["remote_id"], "alice.example");
    assert_eq!(
        (res["state"].as_str(), res["plan"].as_str()),
        (Some("active"), Some("Default Domain"))
    );
    assert_eq!(detail(res, "customer"), Some("alice"));
    let customer = h.sim.client("alice").expect("customer created");
    assert!(customer.password_is("Initial#Pass9"));
    assert_eq!(
        (customer.kind.as_str(), customer.email.as_str()),
        ("customer", "alice@example.net")
    );
    assert_eq!(customer.external_id, "panel1:svc-alice");
    let sub = h.sim.domain("alice.example").expect("subscription created");
    assert_eq!(
        (sub.client_id, sub.plan.as_deref(), sub.ftp_login.as_str()),
        (customer.id, Some("Default Domain"), "alice")
    );
    assert!(sub.ftp_password_is("Initial#Pass9"));

    // A retry (the first answer was lost) adopts what is there.
    let r = h.call_attempt(Operation::Provision, input, 2).await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(
        (
            h.sim.count_calls("POST /clients"),
            h.sim.count_calls("POST /domains")
        ),
        (1, 1)
    );

    // Suspend: the subscription and (nothing else being active) the customer.
    for _ in 0..2 {
        let r = h.call(Operation::Suspend, service("alice.example")).await;
        assert_eq!(ok(&r)["state"], "suspended");
    }
    assert_eq!(h.sim.domain("alice.example").unwrap().status, "suspended");
    assert_eq!(h.sim.client("alice").unwrap().status, 16);
    assert_eq!(
        h.sim.count_calls("PUT /domains/{id}/status"),
        1,
        "the second suspend changed nothing"
    );
    let r = h.call(Operation::Status, service("alice.example")).await;
    assert_eq!(ok(&r)["state"], "suspended");

    for _ in 0..2 {
        let r = h.call(Operation::Unsuspend, service("alice.example")).await;
        assert_eq!(ok(&r)["state"], "active");
    }
    assert_eq!(h.sim.domain("alice.example").unwrap().status, "active");
    assert_eq!(h.sim.client("alice").unwrap().status, 0);

    // Change package through the CLI gateway.
    let r = h
        .call(
            Operation::ChangePackage,
            json!({"service": service("alice.example")["service"], "plan": "Pro"}),
        )
        .await;
    assert_eq!(ok(&r)["plan"], "Pro");
    assert_eq!(
        h.sim.domain("alice.example").unwrap().plan.as_deref(),
        Some("Pro")
    );
    let r = h
        .call(
            Operation::ChangePackage,
            json!({"service": service("alice.example")["service"], "plan": "Gold"}),
        )
        .await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "invalid-input", "{msg}");

    // Change password: the customer's (REST) and the system user's (CLI,
    // from PSA_PASSWORD): neither appears in a log or record.
    h.bind_secret("new-password", "Second\"Pass\\8");
    let r = h
        .call(
            Operation::ChangePassword,
            json!({"service": service("alice.example")["service"], "password_secret": "new-password"}),
        )
        .await;
    assert_eq!(ok(&r)["state"], "active");
    assert!(
        h.sim
            .client("alice")
            .unwrap()
            .password_is("Second\"Pass\\8"),
        "JSON-escaped by the host"
    );
    assert!(h
        .sim
        .domain("alice.example")
        .unwrap()
        .ftp_password_is("Second\"Pass\\8"));
    let cli_log = h
        .sim
        .request_log()
        .into_iter()
        .filter(|l| l.function == "POST /cli/{id}/call")
        .collect::<Vec<_>>();
    assert!(
        cli_log
            .iter()
            .all(|l| l.params.get("env").is_none_or(|e| !e.contains("Second"))),
        "{cli_log:#?}"
    );

    // Usage: the customer's statistics, in bytes.
    h.sim.set_usage("alice", 123_456_789, 987_654).unwrap();
    let r = h.call(Operation::Usage, service("alice.example")).await;
    let metrics = &ok(&r)["metrics"];
    let value = |name: &str| {
        metrics
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["value"].as_f64().unwrap())
    };
    assert_eq!(
        (value("disk_used"), value("bandwidth_used")),
        (Some(123_456_789.0), Some(987_654.0))
    );

    // A one-time login link the simulator made for this customer.
    let r = h.call(Operation::LoginUrl, service("alice.example")).await;
    let url = ok(&r)["url"].as_str().unwrap().to_string();
    assert_eq!(
        h.sim
            .login_links()
            .last()
            .map(|l| (l.login.clone(), l.url.clone())),
        Some(("alice".into(), url))
    );

    // Terminate: the subscription, then the customer (it owns nothing else).
    for _ in 0..2 {
        let r = h.call(Operation::Terminate, service("alice.example")).await;
        assert_eq!(ok(&r)["state"], "terminated");
    }
    assert!(h.sim.domain("alice.example").is_none() && h.sim.client("alice").is_none());
    let r = h.call(Operation::Status, service("alice.example")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    let r = h.call(Operation::Usage, service("alice.example")).await;
    assert_eq!(error(&r).0, "not-found");

    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_customers_and_subscriptions_are_left_alone() {
    let h = Plesk::start().await;
    let bob = h
        .sim
        .add_client(Client::new("bob", "bob@example.net"))
        .unwrap();
    h.sim
        .add_domain(Domain::new("bob.example", bob, "Default Domain", "bob"))
        .unwrap();
    h.sim
        .add_domain(Domain::new(
            "bob-two.example",
            bob,
            "Default Domain",
            "bobtwo",
        ))
        .unwrap();

    // Someone else's subscription: a conflict, nothing created.
    let r = h
        .call(
            Operation::Provision,
            new_service("carol", "bob.example", None),
        )
        .await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "conflict", "{msg}");
    assert!(msg.contains("bob"), "{msg}");
    assert_eq!(h.sim.count_calls("POST /clients"), 0);

    // Suspending one of two: the customer stays active.
    let r = h.call(Operation::Suspend, service("bob.example")).await;
    assert_eq!(ok(&r)["state"], "suspended");
    assert_eq!(h.sim.client("bob").unwrap().status, 0);
    // Terminating one of two: the customer stays.
    let r = h.call(Operation::Terminate, service("bob.example")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    assert!(h.sim.client("bob").is_some());
    assert!(h.sim.domain("bob-two.example").is_some());

    // An existing customer gets a new subscription without being recreated.
    let r = h
        .call(
            Operation::Provision,
            new_service("bob", "bob-three.example", None),
        )
        .await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(h.sim.count_calls("POST /clients"), 0);
    assert_eq!(h.sim.domain("bob-three.example").unwrap().client_id, bob);
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_services_pages_through_every_subscription() {
    let h = Plesk::start().await;
    let owner = h
        .sim
        .add_client(Client::new("many", "many@example.net"))
        .unwrap();
    for i in 0..23 {
        h.sim
            .add_domain(Domain::new(
                &format!("site{i:02}.example"),
                owner,
                "Default Domain",
                &format!("u{i:02}"),
            ))
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let r = h
            .call(
                Operation::ListServices,
                json!({"cursor": cursor, "limit": 10}),
            )
            .await;
        let page = ok(&r);
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["state"], "active");
            seen.push(item["remote_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..23).map(|i| format!("site{i:02}.example")).collect();
    assert_eq!(seen, expected);
    let r = h
        .call(Operation::ListServices, json!({"cursor": "x", "limit": 10}))
        .await;
    assert_eq!(error(&r).0, "invalid-input");
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_never_reaches_plesk() {
    let h = Plesk::start().await;
    let cases = [
        new_service("Alice", "a.example", None),
        new_service("1abc", "a.example", None),
        new_service("alice", "localhost", None),
        json!({"service": {"service_id": "s", "username": "alice", "domain": "a.example", "contact_email": "not-an-address"}}),
    ];
    for input in cases {
        let r = h.call(Operation::Provision, input.clone()).await;
        let (kind, msg) = error(&r);
        assert_eq!(kind, "invalid-input", "{input}: {msg}");
    }
    assert!(h.sim.request_log().is_empty(), "{:#?}", h.sim.request_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_by_the_pin_only_and_egress_is_denied_by_default() {
    let mut h = Plesk::start().await;
    let plain = h.rule_url();
    // No pin: the simulator's self-signed certificate is not trusted.
    h.set_rules(&[&plain]);
    let r = h.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "permanent", "{msg}");
    assert!(msg.contains("pinned"), "{msg}");
    // A wrong pin: refused too.
    h.set_rules(&[&format!("{plain} sha256:{}", "ab".repeat(32))]);
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(error(&r).0, "permanent");
    // No rule at all: denied before any connection.
    h.set_rules(&[]);
    let r = h.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "permanent", "{msg}");
    assert!(msg.contains("egress"), "{msg}");
    assert!(h.sim.request_log().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_auth_failed() {
    let mut h = Plesk::start().await;
    h.bind_secret("plesk-api-key", "the-wrong-key-0000");
    let r = h.call(Operation::Status, service("a.example")).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "auth-failed", "{msg}");
    assert!(h
        .sim
        .request_log()
        .iter()
        .all(|l| l.auth == panel1_sims::AuthOutcome::Wrong));
}
