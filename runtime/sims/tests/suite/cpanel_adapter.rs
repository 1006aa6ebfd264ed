//! The real cpanel adapter (`adapters/dist/cpanel.wasm`) in the real
//! sandbox against the WHM simulator over HTTPS on loopback, its self-signed
//! certificate pinned on the egress rule: every operation end to end,
//! provision's input checks, TLS pinning, and secrecy (checked on every call
//! by the harness, and explicitly here).

use crate::cpanel::*;
use panel1_sandbox::Operation;
use panel1_sims::{Account, AuthOutcome};
use serde_json::{json, Value};

const MIB: f64 = 1024.0 * 1024.0;

fn metric(result: &Value, name: &str) -> Option<f64> {
    result["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_end_to_end() {
    let mut h = Whm::start().await;
    let password = "Init-Pw!9#a&b=c+d%e";
    let new_password = "Chg-Pw?7@x&y=z";
    h.forbid(password);
    h.bind_secret("new-password", new_password);

    // test-connection: WHM's version through the pinned TLS connection.
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(ok(&r)["server_version"], "WHM 11.126.0.5");
    assert_eq!(ok(&r)["details"]["whm_user"], "root");

    // provision with an explicit password param.
    let mut input = new_service("alice", "Alice.Example.com", Some("basic"));
    input["service"]["contact_email"] = json!("owner@alice.example.com");
    input["service"]["params"] = json!({ "password": password });
    let r = h.call(Operation::Provision, input).await;
    let res = ok(&r);
    assert_eq!(res["remote_id"], "alice");
    assert_eq!(res["state"], "active");
    assert_eq!(res["plan"], "basic");
    assert_eq!(res["domain"], "alice.example.com");
    assert_eq!(whm_calls(&r), ["accountsummary", "createacct"]);
    let a = h.account("alice");
    assert_eq!(
        (a.domain.as_str(), a.plan.as_str(), a.owner.as_str()),
        ("alice.example.com", "basic", "root")
    );
    assert_eq!(a.contact_email, "owner@alice.example.com");
    assert!(a.password_matches(password), "the exact password was sent");
    // In a POST body, never in a URL.
    let create = r
        .http
        .iter()
        .find(|x| x.url.contains("createacct"))
        .unwrap();
    assert_eq!(create.method, "POST");
    assert!(!create.url.contains("password"), "{}", create.url);
    let logged = h
        .sim
        .request_log()
        .into_iter()
        .find(|l| l.function == "createacct")
        .unwrap();
    assert_eq!(logged.method, "POST");
    assert_eq!(logged.params["password"], panel1_sims::REDACTED);

    // status
    let r = h.call(Operation::Status, service("alice")).await;
    let res = ok(&r);
    assert_eq!(
        (res["state"].as_str(), res["plan"].as_str()),
        (Some("active"), Some("basic"))
    );
    assert_eq!(detail(res, "owner"), Some("root"));
    assert_eq!(detail(res, "email"), Some("owner@alice.example.com"));

    // suspend, with the request's reason; again is still success.
    let mut input = service("alice");
    input["reason"] = json!("Invoice 42 unpaid");
    let r = h.call(Operation::Suspend, input.clone()).await;
    assert_eq!(ok(&r)["state"], "suspended");
    let a = h.account("alice");
    assert!(a.suspended);
    assert_eq!(a.suspend_reason.as_deref(), Some("Invoice 42 unpaid"));
    let r = h.call(Operation::Suspend, input).await;
    assert_eq!(ok(&r)["state"], "suspended");
    assert!(r
        .log
        .iter()
        .any(|e| e.message == "account was already suspended"));
    let r = h.call(Operation::Status, service("alice")).await;
    assert_eq!(ok(&r)["state"], "suspended");
    assert_eq!(detail(ok(&r), "suspend_reason"), Some("Invoice 42 unpaid"));

    // unsuspend; again is still success.
    let r = h.call(Operation::Unsuspend, service("alice")).await;
    assert_eq!(ok(&r)["state"], "active");
    assert!(!h.account("alice").suspended);
    let r = h.call(Operation::Unsuspend, service("alice")).await;
    assert_eq!(ok(&r)["state"], "active");
    assert!(r
        .log
        .iter()
        .any(|e| e.message == "account was not suspended"));

    // change-package
    let mut input = service("alice");
    input["plan"] = json!("pro");
    let r = h.call(Operation::ChangePackage, input).await;
    assert_eq!(ok(&r)["plan"], "pro");
    let a = h.account("alice");
    assert_eq!(a.plan, "pro");
    assert_eq!(
        a.disk_limit_mb,
        Some(50 * 1024),
        "the package's limits applied"
    );

    // change-password: the secret's value reaches WHM, in the body only.
    let mut input = service("alice");
    input["password_secret"] = json!("new-password");
    let r = h.call(Operation::ChangePassword, input).await;
    assert_eq!(ok(&r)["remote_id"], "alice");
    let a = h.account("alice");
    assert!(a.password_matches(new_password));
    assert!(!a.password_matches(password));
    assert_eq!(a.password_changes, 1);
    let passwd = r.http.iter().find(|x| x.url.contains("/passwd")).unwrap();
    assert_eq!(passwd.method, "POST");

    // usage: pro has unlimited bandwidth, so no bandwidth_limit.
    h.sim.set_usage("alice", 321, 7_654_321).unwrap();
    let r = h.call(Operation::Usage, service("alice")).await;
    let res = ok(&r);
    assert_eq!(res["remote_id"], "alice");
    assert_eq!(metric(res, "disk_used"), Some(321.0 * MIB));
    assert_eq!(metric(res, "disk_limit"), Some(50.0 * 1024.0 * MIB));
    assert_eq!(metric(res, "bandwidth_used"), Some(7_654_321.0));
    assert_eq!(metric(res, "bandwidth_limit"), None);
    assert!(res["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["unit"] == "bytes"));

    // login-url: a session the simulator made, on its own base URL.
    let r = h.call(Operation::LoginUrl, service("alice")).await;
    let url = ok(&r)["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&h.sim.base_url()), "{url}");
    let sessions = h.sim.sessions();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!((s.user.as_str(), s.service.as_str()), ("alice", "cpaneld"));
    assert!(url.contains(&s.security_token), "{url}");
    assert_eq!(ok(&r)["expires_at"], json!(s.expires));
    // ...and the link logs in.
    let cert = reqwest::Certificate::from_der(h.sim.cert_der()).unwrap();
    let browser = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let page = browser.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200, "the login link is accepted");

    // terminate; again is still success; status then says terminated.
    let r = h.call(Operation::Terminate, service("alice")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    assert!(h.sim.account("alice").is_none());
    let r = h.call(Operation::Terminate, service("alice")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    assert!(r
        .log
        .iter()
        .any(|e| e.message == "account was already gone"));
    let r = h.call(Operation::Status, service("alice")).await;
    assert_eq!(ok(&r)["state"], "terminated");

    // The login page fetch is not an API call; everything else is clean.
    let api: Vec<_> = h
        .sim
        .request_log()
        .into_iter()
        .filter(|l| !l.function.is_empty())
        .collect();
    assert!(api.len() >= 18, "{}", api.len());
    assert_well_formed(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_from_a_password_secret_and_usage_limits() {
    let mut h = Whm::start().await;
    let password = "S3cret-From-Vault&x=1";
    h.bind_secret("initial-password", password);
    let mut input = new_service("bob", "bob.example.org", None);
    input["password_secret"] = json!("initial-password");
    let r = h.call(Operation::Provision, input).await;
    assert_eq!(ok(&r)["plan"], "default", "WHM's default package");
    let b = h.account("bob");
    assert!(b.password_matches(password));
    assert_eq!(b.plan, "default");

    // default plan: 1024 MB disk, 10 GB bandwidth.
    h.sim.set_usage("bob", 0, 0).unwrap();
    let r = h.call(Operation::Usage, service("bob")).await;
    let res = ok(&r);
    assert_eq!(metric(res, "disk_used"), Some(0.0));
    assert_eq!(metric(res, "disk_limit"), Some(1024.0 * MIB));
    assert_eq!(metric(res, "bandwidth_used"), Some(0.0));
    assert_eq!(metric(res, "bandwidth_limit"), Some(10.0 * 1024.0 * MIB));
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_password_stays_in_the_post_body() {
    let h = Whm::start().await;
    let r = h
        .call(
            Operation::Provision,
            new_service("carol", "carol.example.net", Some("basic")),
        )
        .await;
    assert_eq!(ok(&r)["remote_id"], "carol");
    assert!(r
        .log
        .iter()
        .any(|e| e.message.contains("a random one is generated")));
    // WHM got some password; the harness checked that no 24-character
    // window of the report (nor of its decoded URLs) is that password.
    let c = h.account("carol");
    assert!(!c.password_matches(""));
    let logged = h
        .sim
        .request_log()
        .into_iter()
        .find(|l| l.function == "createacct")
        .unwrap();
    assert_eq!(logged.method, "POST");
    assert_eq!(logged.params["password"], panel1_sims::REDACTED);
    // Re-checking after the fact, now that the account (and its password)
    // exists in the simulator, covers this very report.
    h.assert_nothing_secret(&r);
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_services_pages_through_every_account_once() {
    let h = Whm::start().await;
    let users = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
    ];
    for (i, u) in users.iter().enumerate() {
        let mut a = Account::new(u, &format!("{u}.example.com"));
        if i % 3 == 0 {
            a = a.with_plan("pro").suspended_for("Overdue");
        }
        h.sim.add_account(a).unwrap();
    }
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let r = h
            .call(
                Operation::ListServices,
                json!({ "cursor": cursor, "limit": 3 }),
            )
            .await;
        let page = ok(&r).clone();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3, "page size respected: {page:#}");
        seen.extend(items.iter().cloned());
        pages += 1;
        assert!(pages <= 5, "the cursor never ended");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut ids: Vec<&str> = seen
        .iter()
        .map(|s| s["remote_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = users.to_vec();
    want.sort();
    assert_eq!(ids, want, "every account exactly once");
    for s in &seen {
        let u = s["remote_id"].as_str().unwrap();
        let acct = h.account(u);
        let state = if acct.suspended {
            "suspended"
        } else {
            "active"
        };
        assert_eq!(s["state"], state, "{u}");
        assert_eq!(s["plan"], acct.plan.as_str(), "{u}");
        assert_eq!(s["domain"], acct.domain.as_str(), "{u}");
    }
    let chunks: Vec<String> = h
        .sim
        .request_log()
        .iter()
        .map(|l| l.params.get("api.chunk.start").cloned().unwrap_or_default())
        .collect();
    assert_eq!(chunks, ["1", "4", "7"]);
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_provision_requests_never_reach_whm() {
    let h = Whm::start().await;
    let bad_users = [
        "Test1",
        "1abc",
        "root",
        "abcdefghijklmnopq",
        "testing",
        "cpanel",
        "bad_name",
        "",
    ];
    for user in bad_users {
        let r = h
            .call(
                Operation::Provision,
                new_service(user, "fine.example.com", None),
            )
            .await;
        let (kind, msg) = error(&r);
        assert_eq!(kind, "invalid-input", "{user}: {msg}");
        assert!(r.http.is_empty(), "{user}: no request was made");
    }
    for domain in ["", "localhost", "10.0.0.1", "a b.com", "-x.example.com"] {
        let r = h
            .call(Operation::Provision, new_service("okname", domain, None))
            .await;
        let (kind, msg) = error(&r);
        assert_eq!(kind, "invalid-input", "{domain}: {msg}");
        assert!(msg.contains("domain"), "{msg}");
        assert!(r.http.is_empty());
    }
    assert!(h.sim.request_log().is_empty(), "WHM saw nothing");
    assert!(h.sim.accounts().is_empty());
    // The same adapter, a valid name: it does reach WHM (the checks above
    // are not a broken connection).
    let r = h
        .call(
            Operation::Provision,
            new_service("okname", "fine.example.com", None),
        )
        .await;
    assert_eq!(ok(&r)["remote_id"], "okname");
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_by_the_pin_only() {
    let mut h = Whm::start().await;

    // No pin: the simulator's self-signed certificate is not trusted.
    let plain = h.rule_url();
    h.set_rule(&plain);
    let r = h.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "permanent", "{msg}");
    assert!(msg.contains("Tls"), "{msg}");
    assert!(
        msg.contains("pinned"),
        "the message says how to fix it: {msg}"
    );
    let why = r.http[0].error.clone().unwrap_or_default();
    assert!(why.contains("UnknownIssuer"), "{why}");

    // A wrong pin.
    let wrong = "ab".repeat(32);
    h.set_rule(&format!("{plain} sha256:{wrong}"));
    let r = h.call(Operation::TestConnection, json!({})).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "permanent", "{msg}");
    assert!(msg.contains("pin"), "{msg}");
    let why = r.http[0].error.clone().unwrap_or_default();
    assert!(why.contains("not the pinned one"), "{why}");
    assert!(why.contains(h.sim.cert_sha256()), "{why}");

    // Neither attempt got as far as an HTTP request (nor sent the token).
    assert!(h.sim.request_log().is_empty());

    // The right pin, in openssl's upper-case colon form.
    let openssl: Vec<String> = h
        .sim
        .cert_sha256()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .collect();
    h.set_rule(&format!("{plain} sha256:{}", openssl.join(":")));
    let r = h.call(Operation::TestConnection, json!({})).await;
    assert_eq!(ok(&r)["server_version"], "WHM 11.126.0.5");
    let log = h.sim.request_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].auth, AuthOutcome::Ok);
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_log_lines_carry_no_secret() {
    let h = Whm::start().await;
    // A failing lookup whose reason quotes the parameter: the message is
    // shown, the token is not (it was never in a parameter).
    let r = h.call(Operation::Status, service("nobody1")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    let r = h.call(Operation::Usage, service("nobody1")).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "not-found", "{msg}");
    // The placeholder, not the value, is what the guest sent; the host's
    // exchange records hold neither the value nor the header.
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains(TOKEN));
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "{text}"
    );
    // Every WHM call is one structured log line without parameters.
    for e in r.log.iter().filter(|e| e.message == "whm call") {
        let keys: Vec<&str> = e.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["function", "http_status", "result", "elapsed_ms"]);
    }
    h.assert_well_formed();
}
