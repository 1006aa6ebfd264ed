//! The cPanel adapter fixes of issue 20, end to end: the real `cpanel.wasm`
//! in the real sandbox against the WHM simulator. A proxy's problem+json
//! error is reported with its HTTP status and message (not as WHM API 0); a
//! change WHM applied stands when the read-back fails; a bad contact e-mail
//! never reaches WHM; an absent account has one meaning per operation.

use crate::cpanel::*;
use panel1_sandbox::{CallReport, LogLevel, Operation};
use panel1_sims::{Account, Fault, FaultRule};
use serde_json::json;

/// The adapter's warning lines.
fn warnings(r: &CallReport) -> Vec<String> {
    r.log
        .iter()
        .filter(|e| e.level == LogLevel::Warn && e.message != "whm call")
        .map(|e| format!("{} {:?}", e.message, e.fields))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_problem_json_reports_its_status_and_message_not_api0() {
    let h = Whm::start().await;
    for (code, title) in [
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (422, "Unprocessable Entity"),
    ] {
        h.sim
            .inject(FaultRule::next("version", Fault::ProblemJson(code), 1));
        let r = h.call(Operation::TestConnection, json!({})).await;
        let (kind, msg) = error(&r);
        assert_eq!(kind, "permanent", "{code}: {msg}");
        assert!(
            msg.contains(&format!(
                "HTTP {code}, content-type application/problem+json: {title}"
            )),
            "{msg}"
        );
        assert!(
            msg.contains("the gateway in front of the server answered"),
            "the body's detail is quoted: {msg}"
        );
        assert!(!msg.contains("API 0"), "{msg}");
    }
    // WHM's own API 0 answer keeps its message.
    h.sim
        .inject(FaultRule::next("version", Fault::WrongBody, 1));
    let (kind, msg) = error(&h.call(Operation::TestConnection, json!({})).await);
    assert_eq!(kind, "permanent");
    assert!(msg.contains("API 0 format"), "{msg}");

    // In the middle of an operation: nothing applied, the status is shown.
    h.sim
        .add_account(Account::new("lena", "lena.example.com").with_plan("basic"))
        .unwrap();
    h.sim
        .inject(FaultRule::next("changepackage", Fault::ProblemJson(404), 1));
    let mut input = service("lena");
    input["plan"] = json!("pro");
    let (kind, msg) = error(&h.call(Operation::ChangePackage, input).await);
    assert_eq!(kind, "permanent");
    assert!(
        msg.starts_with("WHM changepackage: not a WHM API 1 response: HTTP 404"),
        "{msg}"
    );
    assert_eq!(h.account("lena").plan, "basic");
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_change_stands_when_the_read_back_fails() {
    let mut h = Whm::start().await;
    let r = h
        .call(
            Operation::Provision,
            new_service("mona", "mona.example.com", Some("basic")),
        )
        .await;
    assert_eq!(ok(&r)["plan"], "basic");

    // change-package: WHM applies it, then the read-back answers 503.
    h.sim.inject(FaultRule::next(
        "accountsummary",
        Fault::ServerError(503),
        1,
    ));
    let mut input = service("mona");
    input["plan"] = json!("pro");
    let r = h.call(Operation::ChangePackage, input).await;
    let res = ok(&r);
    assert_eq!(res["remote_id"], "mona");
    assert_eq!(res["state"], "active");
    assert_eq!(res["plan"], "pro");
    assert_eq!(whm_calls(&r), ["changepackage", "accountsummary"]);
    let warned = warnings(&r);
    assert!(
        warned.len() == 1 && warned[0].contains("HTTP 503"),
        "the failed read is logged with its reason: {warned:?}"
    );
    assert!(h.sim.faults().is_empty(), "the fault was used");
    assert_eq!(h.account("mona").plan, "pro");
    assert_eq!(h.sim.count_calls("changepackage"), 1);

    // change-password: the same.
    let new_password = "Mona-Pw?2@x&y";
    h.bind_secret("new-password", new_password);
    h.sim.inject(FaultRule::next(
        "accountsummary",
        Fault::ServerError(503),
        1,
    ));
    let mut input = service("mona");
    input["password_secret"] = json!("new-password");
    let r = h.call(Operation::ChangePassword, input).await;
    let res = ok(&r);
    assert_eq!(
        (res["remote_id"].as_str(), res["state"].as_str()),
        (Some("mona"), Some("active"))
    );
    assert_eq!(warnings(&r).len(), 1, "{:?}", warnings(&r));
    assert!(h.account("mona").password_matches(new_password));

    // Read-back working again: the full status, as before.
    let mut input = service("mona");
    input["plan"] = json!("basic");
    let r = h.call(Operation::ChangePackage, input).await;
    let res = ok(&r);
    assert_eq!(res["plan"], "basic");
    assert_eq!(res["domain"], "mona.example.com");
    assert!(warnings(&r).is_empty(), "{:?}", warnings(&r));
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_contact_email_never_reaches_whm() {
    let h = Whm::start().await;
    let mut input = new_service("nina", "nina.example.com", None);
    input["service"]["contact_email"] = json!("nina at example.com");
    let (kind, msg) = error(&h.call(Operation::Provision, input).await);
    assert_eq!(kind, "invalid-input", "{msg}");
    assert!(msg.contains("contact e-mail"), "{msg}");

    let mut input = new_service("nina", "nina.example.com", None);
    input["service"]["contact_email"] = json!("fine@example.com");
    input["service"]["params"] = json!({ "contactemail": "a@b@example.com" });
    let (kind, msg) = error(&h.call(Operation::Provision, input).await);
    assert_eq!(
        kind, "invalid-input",
        "the param wins and is checked: {msg}"
    );
    assert!(h.sim.request_log().is_empty(), "no call was made");

    let mut input = new_service("nina", "nina.example.com", None);
    input["service"]["contact_email"] = json!(" nina@Nina.Example.com ");
    ok(&h.call(Operation::Provision, input).await);
    assert_eq!(h.account("nina").contact_email, "nina@nina.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_account_has_one_meaning() {
    let h = Whm::start().await;
    // No account `olga`: status says terminated, usage and login-url not-found.
    let r = h.call(Operation::Status, service("olga")).await;
    assert_eq!(ok(&r)["state"], "terminated");
    let (kind, msg) = error(&h.call(Operation::Usage, service("olga")).await);
    assert_eq!(kind, "not-found", "{msg}");
    assert!(msg.contains("`olga` does not exist"), "{msg}");
    let (kind, msg) = error(&h.call(Operation::LoginUrl, service("olga")).await);
    assert_eq!(kind, "not-found", "{msg}");
}
