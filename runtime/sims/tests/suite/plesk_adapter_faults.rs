//! The plesk adapter against a misbehaving Plesk: each injected fault maps
//! to the typed error a worker retries (or not) on, and a change Plesk
//! applied whose answer was lost is adopted by the retry, never done twice.

use std::time::Duration;

use crate::guest::{error, ok};
use crate::plesk::*;
use panel1_sandbox::{Operation, Outcome};
use panel1_sims::{Fault, FaultRule};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_is_classified() {
    let h = Plesk::start().await;
    let cases = [
        (Fault::ServerError(503), Some("transient"), "HTTP 503"),
        (Fault::ServerError(500), Some("transient"), "HTTP 500"),
        (Fault::ResetConnection, Some("transient"), "network"),
        (Fault::LoginPage, Some("auth-failed"), "login page"),
        (Fault::WrongBody, Some("permanent"), "expected a JSON list"),
        (Fault::ProblemJson(405), Some("permanent"), "HTTP 405"),
        (Fault::ProblemJson(502), Some("transient"), "HTTP 502"),
        (Fault::Slow(Duration::from_millis(300)), None, ""),
    ];
    for (fault, kind, says) in cases {
        h.sim
            .inject(FaultRule::next("GET /domains", fault.clone(), 1));
        let r = h.call(Operation::Status, service("nobody.example")).await;
        match kind {
            Some(kind) => {
                let (k, msg) = error(&r);
                assert_eq!(k, kind, "{fault:?}: {msg}");
                assert!(
                    msg.to_lowercase().contains(&says.to_lowercase()),
                    "{fault:?}: {msg}"
                );
            }
            None => assert_eq!(ok(&r)["state"], "terminated", "{fault:?}"),
        }
        assert!(h.sim.faults().is_empty(), "{fault:?} was used");
    }
    // A 5xx's Retry-After reaches the worker.
    let r = h.call(Operation::Status, service("nobody.example")).await;
    assert!(matches!(r.outcome, Outcome::Ok { .. }));
    h.assert_well_formed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_adopted_by_the_retry() {
    let mut h = Plesk::start().await;
    h.set_config("request_timeout_ms", "1000");
    // Plesk creates the subscription, then the answer never comes.
    h.sim.inject(FaultRule::next(
        "POST /domains",
        Fault::StallAfterApply(Duration::from_secs(5)),
        1,
    ));
    let input = new_service("dave", "dave.example", None);
    let r = h.call(Operation::Provision, input.clone()).await;
    let (kind, msg) = error(&r);
    assert_eq!(kind, "transient", "{msg}");
    assert!(
        h.sim.domain("dave.example").is_some(),
        "the change was applied"
    );

    let r = h.call_attempt(Operation::Provision, input, 2).await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(h.sim.count_calls("POST /domains"), 1, "never created twice");
    assert_eq!(h.sim.count_calls("POST /clients"), 1);
    assert_eq!(h.sim.domains().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_half_way_through_converges_on_retry() {
    let h = Plesk::start().await;
    // The customer is created, the subscription is refused by a 503.
    h.sim
        .inject(FaultRule::next("POST /domains", Fault::ServerError(503), 1));
    let input = new_service("erin", "erin.example", None);
    let r = h.call(Operation::Provision, input.clone()).await;
    assert_eq!(error(&r).0, "transient");
    assert!(h.sim.client("erin").is_some() && h.sim.domain("erin.example").is_none());
    let r = h.call_attempt(Operation::Provision, input, 2).await;
    assert_eq!(ok(&r)["state"], "active");
    assert_eq!(
        h.sim.count_calls("POST /clients"),
        1,
        "the customer was found, not recreated"
    );

    // Terminate: the subscription goes, then the customer delete fails; the
    // retry finds no subscription and still removes the customer.
    h.sim.inject(FaultRule::next(
        "DELETE /clients/{id}",
        Fault::ServerError(503),
        1,
    ));
    let mut input = service("erin.example");
    input["service"]["username"] = json!("erin");
    let r = h.call(Operation::Terminate, input.clone()).await;
    assert_eq!(error(&r).0, "transient");
    assert!(h.sim.domain("erin.example").is_none() && h.sim.client("erin").is_some());
    let r = h.call_attempt(Operation::Terminate, input, 2).await;
    assert_eq!(ok(&r)["state"], "terminated");
    assert!(h.sim.client("erin").is_none());
    h.assert_well_formed();
}
