//! The web console end to end, in a real headless Chromium: `panel1 serve`
//! (API only) and `panel1 worker` processes on one database, the WHM
//! simulator as the server. A tenant signs in with its key, saves a secret,
//! connects the server, provisions a service and watches it become active
//! without a reload (the worker starts only once the page is open), suspends
//! it, opens the attempt and sees its HTTP exchanges; another tenant's key
//! shows none of it. The security design is checked from the browser too:
//! the cookie is invisible to scripts, a cookie-authenticated POST without
//! the CSRF header is refused, every console answer carries the CSP, and a
//! revoked key's session ends.

use crate::browser::Browser;
use crate::support;
use crate::support::{Api, Env};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
}

async fn sign_in(b: &Browser, base: &str, key: &str) {
    b.goto(&format!("{base}/")).await;
    b.fill("#sign-in input[name=key]", key).await;
    b.click("#sign-in button[type=submit]").await;
    b.heading("Services").await;
}

async fn sign_out(b: &Browser) {
    b.click("#sign-out").await;
    b.heading("Sign in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_drives_a_service_from_the_browser_and_another_sees_none_of_it() {
    let (pool, db_url) = panel1_store::testing::fresh_database().await;
    let env = Env::new(db_url, "console");
    let port = support::free_port();
    // The API alone: tasks run only when this test starts a worker.
    let mut serve = env.serve(port, &[("PANEL1_WORKERS", "false")]);
    serve.ready().await;
    let api = Api::on(port);
    let base = api.base.clone();
    let platform = env.platform_key();
    let sim = panel1_sims::WhmSimulator::start(panel1_sims::SimConfig::default())
        .await
        .unwrap();
    let tenant = |name: &str| {
        let (api, platform) = (&api, &platform);
        let name = name.to_string();
        async move {
            let t = api
                .post(platform, "/v1/tenants", json!({ "name": name }))
                .await;
            t["admin_key"]["key"].as_str().unwrap().to_string()
        }
    };
    let (key_a, key_b) = (tenant("hosting-a").await, tenant("hosting-b").await);
    // A worker inspects the built-in adapter, then goes away.
    let inspector = env.worker("inspector", 2);
    api.cpanel_version(&key_a).await;
    inspector.kill();

    let b = Browser::start().await;
    let shots = screenshots();
    b.goto(&format!("{base}/")).await;
    b.heading("Sign in").await;
    b.screenshot(&shots, "sign-in").await;
    // A wrong key is refused on the page.
    b.fill("#sign-in input[name=key]", "p1_not-a-key").await;
    b.click("#sign-in button[type=submit]").await;
    b.wait_text("#sign-in .error", Duration::from_secs(10), |t| {
        t.contains("not valid")
    })
    .await;
    sign_in(&b, &base, &key_a).await;
    // HttpOnly: the page's scripts cannot read the session.
    assert_eq!(b.js("return document.cookie").await, json!(""));

    // A secret, through the write-only form.
    b.goto(&format!("{base}/#/secrets")).await;
    b.heading("Secrets").await;
    b.fill("#secret input[name=name]", "whm-token").await;
    b.fill("#secret input[name=value]", sim.token()).await;
    b.click("#secret button[type=submit]").await;
    b.wait_text("#secrets", Duration::from_secs(10), |t| {
        t.contains("whm-token")
    })
    .await;
    assert!(!b.client.source().await.unwrap().contains(sim.token()));

    // Connect the WHM simulator.
    let sim_port = sim.addr().port();
    b.goto(&format!("{base}/#/servers/new")).await;
    b.heading("Connect a server").await;
    b.fill("#connect input[name=name]", "whm-sim").await;
    let config = json!({"host": "127.0.0.1", "port": sim_port, "whm_user": sim.whm_user()});
    b.fill("#connect textarea[name=config]", &config.to_string())
        .await;
    let egress = format!(
        "https://127.0.0.1:{sim_port}/json-api/ sha256:{}",
        sim.cert_sha256()
    );
    b.fill("#connect textarea[name=egress]", &egress).await;
    let binding = format!("whm-token 127.0.0.1:{sim_port}");
    b.fill("#connect textarea[name=secrets]", &binding).await;
    b.click("#connect button[type=submit]").await;
    b.heading("Server whm-sim").await;
    // The load against the cap (no worker runs yet).
    let load = b.text("#server-load").await;
    assert_eq!(load.trim(), "0 of 4", "{load}");
    b.goto(&format!("{base}/#/servers")).await;
    b.wait_text("#servers", Duration::from_secs(10), |t| {
        t.contains("whm-sim")
    })
    .await;
    b.screenshot(&shots, "servers").await;

    // Provision: the page shows the service waiting (no worker yet)...
    b.goto(&format!("{base}/#/services/new")).await;
    b.heading("Provision a service").await;
    b.fill("#provision input[name=username]", "alice").await;
    b.fill("#provision input[name=domain]", "alice.example.test")
        .await;
    b.fill("#provision input[name=plan]", "basic").await;
    b.click("#provision button[type=submit]").await;
    b.heading("Service").await;
    let waiting = b
        .wait_text("#service-state", Duration::from_secs(10), |t| !t.is_empty())
        .await;
    assert!(
        waiting == "pending" || waiting == "provisioning",
        "{waiting}"
    );
    let url = b.client.current_url().await.unwrap();
    let service_id = url.fragment().unwrap().trim_start_matches("/services/");
    let service_id = service_id.to_string();
    b.wait_text("#live", Duration::from_secs(10), |t| t.starts_with("Live"))
        .await;
    b.js("window.__sameDocument = 'yes'; return null").await;
    // ...and active once a worker runs the task: over SSE, no reload.
    let worker = env.worker("console-worker", 2);
    b.wait_text("#service-state", Duration::from_secs(60), |t| t == "active")
        .await;
    assert_eq!(b.js("return window.__sameDocument").await, json!("yes"));
    b.screenshot(&shots, "service").await;

    // Suspend from the page; the state follows live.
    b.click("button[data-op=suspend]").await;
    b.wait_text("#service-state", Duration::from_secs(60), |t| {
        t == "suspended"
    })
    .await;
    assert_eq!(b.js("return window.__sameDocument").await, json!("yes"));
    assert_eq!(sim.account("alice").map(|a| a.suspended), Some(true));

    // The suspend attempt: its HTTP exchanges with the simulator, its cost.
    let tasks = b.text("#service-tasks").await;
    assert!(
        tasks.contains("provision") && tasks.contains("suspend"),
        "{tasks}"
    );
    b.click("#service-tasks a[href^='#/tasks/']").await; // newest first: suspend
    b.heading("Task").await;
    let exchanges = b
        .wait_text(".attempt .exchanges", Duration::from_secs(30), |t| {
            t.contains("suspendacct")
        })
        .await;
    assert!(exchanges.contains("200"), "{exchanges}");
    let attempt = b.text(".attempt").await;
    for fact in ["Fuel", "Peak memory", "Wall time", "Log"] {
        assert!(attempt.contains(fact), "{fact}: {attempt}");
    }
    assert!(!b.client.source().await.unwrap().contains(sim.token()));
    b.screenshot(&shots, "task").await;

    b.goto(&format!("{base}/#/services?state=suspended")).await;
    b.wait_text("#services", Duration::from_secs(10), |t| {
        t.contains("alice")
    })
    .await;
    b.screenshot(&shots, "services").await;

    // CSRF: the cookie alone does not authorize a change...
    let unsuspend = format!("/v1/services/{service_id}/unsuspend");
    let refused = b
        .js(&format!(
            "return fetch('{unsuspend}', {{method: 'POST', credentials: 'same-origin'}})
               .then(async r => [r.status, r.headers.get('content-type'), (await r.json()).type])"
        ))
        .await;
    assert_eq!(
        refused,
        json!([403, "application/problem+json", "/problems/forbidden"])
    );
    // ...while reads work with it, scoped to the key's tenant.
    let read = b
        .js(&format!(
            "return fetch('/v1/services/{service_id}').then(r => r.json()).then(s => s.state)"
        ))
        .await;
    assert_eq!(read, json!("suspended"));

    // Another tenant sees none of it.
    sign_out(&b).await;
    sign_in(&b, &base, &key_b).await;
    b.wait_text("main", Duration::from_secs(10), |t| {
        t.contains("No services match.")
    })
    .await;
    b.goto(&format!("{base}/#/servers")).await;
    b.wait_text("main", Duration::from_secs(10), |t| {
        t.contains("No servers yet.")
    })
    .await;
    b.goto(&format!("{base}/#/services/{service_id}")).await;
    b.heading("Error").await;
    assert!(b.text("main").await.contains("not found"));
    b.goto(&format!("{base}/#/tasks")).await;
    b.wait_text("main", Duration::from_secs(10), |t| {
        t.contains("No tasks match.")
    })
    .await;
    assert!(!b.client.source().await.unwrap().contains("alice"));

    security_headers_and_sessions(&api, &key_a, &service_id).await;
    revoked_key_ends_its_session(&b, &api, &key_b).await;

    b.quit().await;
    worker.kill();
    serve.kill();
    sim.shutdown().await;
    drop(pool);
}

/// The console's answers, the cookie's flags and the CSRF rule, from a
/// plain HTTP client.
async fn security_headers_and_sessions(api: &Api, key: &str, service: &str) {
    let http = &api.http;
    let base = &api.base;
    for path in ["/", "/console/assets/app.js", "/console/assets/nope.js"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["content-security-policy"], CSP, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    let missing = http
        .get(format!("{base}/console/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    let signed = http
        .post(format!("{base}/console/session"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 201);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let body: Value = signed.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    let token = cookie.split(';').next().unwrap().to_string();
    assert!(!cookie.contains(key) && !body.to_string().contains(key));

    let post = |csrf: Option<&str>| {
        let mut r = http
            .post(format!("{base}/v1/services/{service}/refresh-status"))
            .header("cookie", &token);
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 403);
    assert_eq!(post(Some(&"0".repeat(64))).await.unwrap().status(), 403);
    assert_eq!(post(Some(&csrf)).await.unwrap().status(), 202);
    // A foreign page cannot sign a browser in (login CSRF).
    let foreign = http
        .post(format!("{base}/console/session"))
        .header("origin", "https://evil.example")
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    // A forged cookie is a failed authentication, not a 500.
    let forged = http
        .get(format!("{base}/v1/services"))
        .header("cookie", "panel1_session=zz")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    // Sign-out needs the CSRF token too, then the session is gone.
    let out = |csrf: &str| {
        http.delete(format!("{base}/console/session"))
            .header("cookie", &token)
            .header("x-csrf-token", csrf)
            .send()
    };
    assert_eq!(out("nope").await.unwrap().status(), 403);
    assert_eq!(out(&csrf).await.unwrap().status(), 204);
    let after = http
        .get(format!("{base}/v1/services"))
        .header("cookie", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    // The console is not part of the API's document.
    let doc: Value = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(!paths.keys().any(|p| p.contains("console") || p == "/"));
}

/// A session opened with a key that is then revoked ends at once.
async fn revoked_key_ends_its_session(b: &Browser, api: &Api, admin: &str) {
    let made = api
        .post(
            admin,
            "/v1/keys",
            json!({"name": "short-lived", "scopes": ["read"]}),
        )
        .await;
    let key = made["key"].as_str().unwrap();
    sign_out(b).await;
    sign_in(b, &api.base, key).await;
    let r = api
        .http
        .delete(format!(
            "{}/v1/keys/{}",
            api.base,
            made["id"].as_str().unwrap()
        ))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    b.goto(&format!("{}/#/tasks", api.base)).await;
    b.heading("Sign in").await;
}
