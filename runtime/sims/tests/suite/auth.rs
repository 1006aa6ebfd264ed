use crate::common;
use crate::common::{start, TOKEN};
use panel1_sims::AuthOutcome;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn no_header_or_wrong_token_gets_the_html_login_page() {
    let h = start().await;
    let url = format!("{}?api.version=1", h.url("version"));

    let missing = h.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let ct = missing.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    let page = missing.text().await.unwrap();
    assert!(page.contains("<form") && page.contains("WHM"), "{page}");

    let wrong = h
        .http
        .get(&url)
        .header("Authorization", "whm root:not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("<form"));

    // The right token for another user is wrong too.
    let other_user = h
        .http
        .get(&url)
        .header("Authorization", format!("whm reseller:{TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(other_user.status(), 401);

    let ok = h.get("version", &[]).await;
    assert_eq!(ok["data"]["version"], "11.126.0.5");
    assert_eq!(ok["metadata"]["command"], "version");
    common::assert_spec("version", &ok);

    let log = h.sim.request_log();
    let auths: Vec<AuthOutcome> = log.iter().map(|r| r.auth).collect();
    assert_eq!(
        auths,
        [
            AuthOutcome::Missing,
            AuthOutcome::Wrong,
            AuthOutcome::Wrong,
            AuthOutcome::Ok
        ]
    );
    assert_eq!(log[0].status, 401);
    assert!(!log[0].well_formed());
    assert!(log[3].well_formed(), "{:?}", log[3]);
    // The token is never recorded.
    let dump = serde_json::to_string(&log).unwrap();
    assert!(!dump.contains(TOKEN));
}

#[tokio::test]
async fn certificate_is_pinnable_and_valid_for_localhost() {
    let h = start().await;
    assert_eq!(h.sim.cert_sha256().len(), 64);
    assert_eq!(
        hex::encode(Sha256::digest(h.sim.cert_der())),
        h.sim.cert_sha256()
    );
    assert!(h.sim.base_url().starts_with("https://127.0.0.1:"));

    let resp = h
        .http
        .get(format!(
            "https://localhost:{}/json-api/version?api.version=1",
            h.sim.addr().port()
        ))
        .header("Authorization", h.sim.auth_header())
        .send()
        .await
        .expect("the certificate names localhost");
    let info = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("tls info");
    let peer = info.peer_certificate().expect("peer certificate");
    assert_eq!(hex::encode(Sha256::digest(peer)), h.sim.cert_sha256());

    // A client that does not trust the certificate refuses it.
    let untrusting = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    assert!(untrusting.get(h.sim.base_url()).send().await.is_err());
}

#[tokio::test]
async fn other_paths_are_404_and_unknown_functions_fail() {
    let h = start().await;
    for path in [
        "/",
        "/json-api/",
        "/json-api/a/b",
        "/execute/Email/list_pops",
    ] {
        let resp = h
            .http
            .get(format!("{}{path}", h.sim.base_url()))
            .header("Authorization", h.sim.auth_header())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    let put = h
        .http
        .put(h.url("version"))
        .header("Authorization", h.sim.auth_header())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 404);

    let body = h.get("no_such_function", &[]).await;
    assert_eq!(common::result(&body), 0);
    assert!(common::reason(&body).contains("no_such_function"));
}
