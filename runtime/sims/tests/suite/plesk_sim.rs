//! The Plesk simulator over raw HTTPS: auth, routing and request checks
//! against Plesk's OpenAPI description, answers that match its response
//! schemas, Plesk-style errors, the CLI gateway, and the request log.
use panel1_sims::plesk::{spec, PleskConfig, PleskSimulator};
use panel1_sims::{AuthOutcome, Fault, FaultRule, REDACTED};
use serde_json::{json, Value};

const KEY: &str = "sim-test-key-0123456789";

async fn start() -> (PleskSimulator, reqwest::Client) {
    let sim = PleskSimulator::start(PleskConfig::with_key(KEY))
        .await
        .expect("starts");
    let cert = reqwest::Certificate::from_der(sim.cert_der()).expect("DER");
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .build()
        .expect("client");
    (sim, http)
}

/// Send, then check the answer against the description's schema.
async fn send(
    sim: &PleskSimulator,
    http: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http
        .request(method, format!("{}{path}", sim.api_url()))
        .header("X-API-Key", KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("JSON");
    let key = sim.request_log().last().expect("logged").function.clone();
    let problems = spec::check_response(&key, status, &body);
    assert!(problems.is_empty(), "{key} {status} {body}: {problems:?}");
    (status, body)
}

#[tokio::test]
async fn customers_and_subscriptions_as_the_description_says() {
    let (sim, http) = start().await;
    use reqwest::Method as M;
    let (s, server) = send(&sim, &http, M::GET, "/server", None).await;
    assert_eq!(
        (s, server["panel_version"].as_str()),
        (200, Some("18.0.70"))
    );

    let client = json!({"name": "Ann", "login": "ann", "password": "Secret#77", "email": "ann@example.net", "type": "customer"});
    let (s, created) = send(&sim, &http, M::POST, "/clients", Some(client.clone())).await;
    assert_eq!(s, 201);
    let id = created["id"].as_i64().unwrap();
    let (s, dup) = send(&sim, &http, M::POST, "/clients", Some(client)).await;
    assert_eq!(s, 400);
    assert!(dup["message"].as_str().unwrap().contains("already exists"));

    let (_, c) = send(&sim, &http, M::GET, &format!("/clients/{id}"), None).await;
    let owner = json!({"id": id, "login": "ann", "guid": c["guid"], "external_id": ""});
    let domain = json!({"name": "ann.example", "hosting_type": "virtual", "hosting_settings": {"ftp_login": "ann", "ftp_password": "Secret#77"}, "owner_client": owner, "plan": {"name": "Unlimited"}});
    let (s, d) = send(&sim, &http, M::POST, "/domains", Some(domain)).await;
    assert_eq!(s, 201);
    let did = d["id"].as_i64().unwrap();
    let (_, list) = send(&sim, &http, M::GET, "/domains?name=ann.example", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, st) = send(
        &sim,
        &http,
        M::PUT,
        &format!("/domains/{did}/status"),
        Some(json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(st["status"], "suspended");
    let (_, owner) = send(&sim, &http, M::GET, &format!("/domains/{did}/client"), None).await;
    assert_eq!(owner["login"], "ann");
    let (_, stats) = send(
        &sim,
        &http,
        M::GET,
        &format!("/clients/{id}/statistics"),
        None,
    )
    .await;
    assert_eq!(stats["active_domains"], 0);
    let (s, _) = send(&sim, &http, M::PUT, &format!("/clients/{id}/suspend"), None).await;
    assert_eq!(s, 200);
    assert_eq!(sim.client("ann").unwrap().status, 16);

    // The CLI gateway: a plan switch, a system-user password from env.
    let switch = json!({"params": ["--switch-subscription", "ann.example", "-service-plan", "Default Domain"]});
    let (_, out) = send(&sim, &http, M::POST, "/cli/subscription/call", Some(switch)).await;
    assert_eq!(out["code"], 0, "{out}");
    assert_eq!(
        sim.domain("ann.example").unwrap().plan.as_deref(),
        Some("Default Domain")
    );
    let passwd = json!({"params": ["--update", "ann.example", "-passwd", ""], "env": {"PSA_PASSWORD": "Other#Pass5"}});
    let (_, out) = send(&sim, &http, M::POST, "/cli/subscription/call", Some(passwd)).await;
    assert_eq!(out["code"], 0, "{out}");
    assert!(sim
        .domain("ann.example")
        .unwrap()
        .ftp_password_is("Other#Pass5"));
    let (s, _) = send(
        &sim,
        &http,
        M::POST,
        "/cli/nosuch/call",
        Some(json!({"params": []})),
    )
    .await;
    assert_eq!(s, 404);

    // Deleting the customer deletes its subscriptions, as Plesk does.
    let (s, _) = send(&sim, &http, M::DELETE, &format!("/clients/{id}"), None).await;
    assert_eq!(s, 200);
    assert!(sim.domains().is_empty());
    let (s, e) = send(&sim, &http, M::GET, &format!("/clients/{id}"), None).await;
    assert_eq!((s, e["code"].as_i64()), (404, Some(404)));

    // Every request was well formed, and no password reached the log.
    let log = sim.request_log();
    assert!(
        log.iter()
            .filter(|l| l.status != 404 || l.function != "POST /cli/{id}/call")
            .all(|l| l.well_formed()),
        "{log:#?}"
    );
    let text = serde_json::to_string(&log).unwrap();
    for secret in ["Secret#77", "Other#Pass5", KEY] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
    assert!(text.contains(REDACTED));
}

#[tokio::test]
async fn malformed_and_unauthenticated_requests_are_refused_and_logged() {
    let (sim, http) = start().await;
    let url = |p: &str| format!("{}{p}", sim.api_url());
    // No key, a wrong key: 401, nothing applied.
    let r = http.get(url("/clients")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(url("/clients"))
        .header("X-API-Key", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A body that breaks the schema: 400 in Plesk's shape, logged as a problem.
    let bad = json!({"name": "X", "login": "x", "email": "x@example.net", "type": "boss", "password": "Secret#77", "colour": "red"});
    let r = http
        .post(url("/clients"))
        .header("X-API-Key", KEY)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        spec::check_response("POST /clients", 400, &body).is_empty(),
        "{body}"
    );
    // Not JSON; an id that is not an integer; an unknown path; a wrong method.
    let r = http
        .post(url("/clients"))
        .header("X-API-Key", KEY)
        .body("login=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .get(url("/clients/abc"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .get(url("/nothing"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .patch(url("/clients"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(sim.clients().is_empty());

    let log = sim.request_log();
    assert_eq!(log.len(), 7);
    assert_eq!(
        (log[0].auth, log[1].auth),
        (AuthOutcome::Missing, AuthOutcome::Wrong)
    );
    assert!(log.iter().all(|l| !l.well_formed()), "{log:#?}");
    assert!(
        log[2].problems.iter().any(|p| p.contains("/type")),
        "{:?}",
        log[2].problems
    );
    assert!(
        log[2]
            .problems
            .iter()
            .any(|p| p.contains("unknown property `colour`")),
        "{:?}",
        log[2].problems
    );
    assert_eq!(log[2].params["password"], REDACTED);
}

#[tokio::test]
async fn faults_are_scoped_to_an_operation_and_counted() {
    let (sim, http) = start().await;
    sim.inject(FaultRule::next("GET /clients", Fault::ServerError(502), 1));
    sim.inject(FaultRule::next("GET /server", Fault::WrongBody, 1));
    let get = |p: &str| {
        http.get(format!("{}{p}", sim.api_url()))
            .header("X-API-Key", KEY)
            .send()
    };
    let r = get("/clients").await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("<html>"));
    let r = get("/server").await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        !spec::check_response("GET /server", 200, &body).is_empty(),
        "a wrong body: {body}"
    );
    let r = get("/clients").await.unwrap();
    assert_eq!(r.status(), 200, "used up");
    assert!(sim.faults().is_empty());
    assert_eq!(sim.count_calls("GET /clients"), 2);
}
