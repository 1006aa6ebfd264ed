use crate::common;
use crate::common::{assert_spec, reason, result, start};
use panel1_sims::{Account, SimConfig, WhmSimulator};

#[tokio::test]
async fn create_user_session_gives_a_working_login_url() {
    let h = start().await;
    h.sim
        .add_account(Account::new("alice", "alice.example"))
        .unwrap();
    let before = chrono::Utc::now().timestamp();
    let body = h
        .get(
            "create_user_session",
            &[("user", "alice"), ("service", "cpaneld")],
        )
        .await;
    assert_eq!(result(&body), 1, "{body}");
    assert_spec("create_user_session", &body);
    let data = &body["data"];
    let session = data["session"].as_str().unwrap();
    let url = data["url"].as_str().unwrap();
    assert!(session.starts_with("alice:"), "{session}");
    let prefix = format!("{}/cpsess", h.sim.base_url());
    assert!(
        url.starts_with(&prefix) && url.contains("/login/?session="),
        "{url}"
    );
    assert!(data["expires"].as_i64().unwrap() > before);
    assert_eq!(h.sim.sessions().len(), 1);

    // The URL logs in (no WHM token needed); a forged session does not.
    let page = h.http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("alice"));
    let forged = url.replace("session=alice", "session=mallory");
    assert_eq!(h.http.get(forged).send().await.unwrap().status(), 401);

    // Unknown users and services are refused.
    let nobody = h
        .get(
            "create_user_session",
            &[("user", "nobody1"), ("service", "cpaneld")],
        )
        .await;
    assert_eq!(reason(&nobody), "The user “nobody1” does not exist.");
    let bad = h
        .get(
            "create_user_session",
            &[("user", "alice"), ("service", "sshd")],
        )
        .await;
    assert!(reason(&bad).starts_with("Invalid value for “service”: "));
    let missing = h.get("create_user_session", &[("user", "alice")]).await;
    assert_eq!(reason(&missing), "The parameter “service” is required.");

    // Removing the account ends its sessions.
    h.get("removeacct", &[("username", "alice")]).await;
    assert!(h.sim.sessions().is_empty());
    assert_eq!(h.http.get(url).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn shutdown_stops_serving_and_frees_the_port() {
    let sim = WhmSimulator::start(SimConfig::default()).await.unwrap();
    let http = common::client_for(&sim, None);
    let url = format!("{}/json-api/version?api.version=1", sim.base_url());
    let resp = http
        .get(&url)
        .header("Authorization", sim.auth_header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let addr = sim.addr();
    sim.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );

    // Dropping stops it too.
    let sim = WhmSimulator::start(SimConfig::default()).await.unwrap();
    let addr = sim.addr();
    drop(sim);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
}
