//! Response classification and timeout math (native unit tests).
use super::*;

const JSON: Option<&str> = Some("application/json");

fn run(status: u16, ct: Option<&str>, body: &str) -> Result<Answer, AdapterError> {
    classify("createacct", status, ct, Some(7000), body.as_bytes())
}

fn message(e: &AdapterError) -> String {
    match e {
        AdapterError::Transient(t) => t.message.clone(),
        AdapterError::InvalidInput(m)
        | AdapterError::AuthFailed(m)
        | AdapterError::NotFound(m)
        | AdapterError::Conflict(m)
        | AdapterError::Permanent(m)
        | AdapterError::Unsupported(m) => m.clone(),
    }
}

#[test]
fn success_and_failure_envelopes() {
    let ok = r#"{"metadata":{"result":1,"reason":"OK","command":"createacct","version":1},"data":{"package":"gold"}}"#;
    match run(200, JSON, ok).unwrap() {
        Answer::Ok(doc) => assert_eq!(doc["data"]["package"], "gold"),
        other => panic!("{other:?}"),
    }
    // String-typed result, as some WHM versions send it.
    assert!(matches!(
        run(200, JSON, r#"{"metadata":{"result":"1"}}"#),
        Ok(Answer::Ok(_))
    ));
    let failed = r#"{"metadata":{"result":0,"reason":"Account Creation Status: failed. The account \"alice\" already exists."}}"#;
    assert_eq!(
        run(200, JSON, failed).unwrap(),
        Answer::Failed(
            "Account Creation Status: failed. The account \"alice\" already exists.".into()
        )
    );
    assert_eq!(
        run(200, JSON, r#"{"metadata":{"result":0}}"#).unwrap(),
        Answer::Failed("no reason given".into())
    );
    // result neither 0 nor 1, or missing: not API 1.
    for body in [r#"{"metadata":{"result":2}}"#, r#"{"metadata":{}}"#] {
        assert!(
            matches!(run(200, JSON, body), Err(AdapterError::Permanent(_))),
            "{body}"
        );
    }
}

#[test]
fn transient_statuses_keep_retry_after() {
    for status in [429, 500, 502, 503, 504, 408] {
        match run(status, JSON, "{}") {
            Err(AdapterError::Transient(t)) => {
                assert_eq!(t.retry_after_ms, Some(7000));
                assert!(
                    t.message.contains(&format!("HTTP {status}")),
                    "{}",
                    t.message
                );
                assert!(t.message.contains("createacct"));
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn refused_tokens_and_login_pages_are_auth_failures() {
    for status in [401, 403] {
        assert!(matches!(
            run(status, JSON, "{}"),
            Err(AdapterError::AuthFailed(_))
        ));
    }
    let page = "<!DOCTYPE html>\n<html><head><title>WHM Login</title></head><body>…</body></html>";
    for (ct, status) in [
        (Some("text/html; charset=utf-8"), 200),
        (None, 200),
        (Some("text/plain"), 302),
    ] {
        let e = run(status, ct, page).unwrap_err();
        assert!(matches!(e, AdapterError::AuthFailed(_)), "{e:?}");
        assert!(message(&e).contains("login page"), "{}", message(&e));
    }
    // An HTML error page on a 404 is not a login page.
    assert!(matches!(
        run(404, Some("text/html"), page),
        Err(AdapterError::Permanent(_))
    ));
}

#[test]
fn other_bodies_are_permanent_with_a_short_safe_quote() {
    let long = format!("Internal\u{1b}[31m {}", "x".repeat(500));
    let e = run(200, Some("text/plain"), &long).unwrap_err();
    let m = message(&e);
    assert!(matches!(e, AdapterError::Permanent(_)));
    assert!(
        m.starts_with(
            "WHM createacct: not a WHM API 1 response: HTTP 200, content-type text/plain"
        ),
        "{m}"
    );
    assert!(!m.contains('\u{1b}'));
    assert!(m.len() < 250, "{m}");
    let m = message(&run(200, None, "").unwrap_err());
    assert!(m.contains("content-type none"), "{m}");
    let m = message(&run(200, JSON, "[1,2]").unwrap_err());
    assert!(m.contains("JSON without `metadata`"), "{m}");
}

#[test]
fn api0_envelopes() {
    let api0 = [
        r#"{"cpanelresult":{"apiversion":"2","data":[],"event":{"result":1}}}"#,
        r#"{"result":[{"status":1,"statusmsg":"Account Created"}]}"#,
        r#"{"status":1,"statusmsg":"ok"}"#,
    ];
    for body in api0 {
        let e = run(200, JSON, body).unwrap_err();
        assert!(matches!(e, AdapterError::Permanent(_)), "{body}");
        assert!(
            message(&e).contains("API 0 format; Panel1 speaks API 1 only"),
            "{}",
            message(&e)
        );
    }
    let denied = r#"{"cpanelresult":{"apiversion":"2","error":"Access denied","data":{"reason":"Access denied","result":"0"}}}"#;
    assert!(matches!(
        run(200, JSON, denied),
        Err(AdapterError::AuthFailed(_))
    ));
}

#[test]
fn failure_reasons_map_to_typed_errors() {
    let cases: [(&str, fn(&AdapterError) -> bool); 9] = [
        ("User \"bob\" does not exist.", |e| {
            matches!(e, AdapterError::NotFound(_))
        }),
        ("The account \"bob\" already exists.", |e| {
            matches!(e, AdapterError::Conflict(_))
        }),
        (
            "The domain example.com already exists in the userdata.",
            |e| matches!(e, AdapterError::Conflict(_)),
        ),
        ("The parameter \"pkg\" is required.", |e| {
            matches!(e, AdapterError::InvalidInput(_))
        }),
        ("Invalid value for \"plan\": gold", |e| {
            matches!(e, AdapterError::InvalidInput(_))
        }),
        ("Access denied", |e| {
            matches!(e, AdapterError::AuthFailed(_))
        }),
        ("You do not have permission to modify bob.", |e| {
            matches!(e, AdapterError::AuthFailed(_))
        }),
        ("Disk quota exceeded on /home", |e| {
            matches!(e, AdapterError::Permanent(_))
        }),
        ("Unknown app (\"frobnicate\") requested", |e| {
            matches!(e, AdapterError::Permanent(_))
        }),
    ];
    for (reason, check) in cases {
        let e = failure("changepackage", reason);
        assert!(check(&e), "{reason}: {e:?}");
        assert_eq!(message(&e), format!("WHM changepackage failed: {reason}"));
    }
    assert!(is_missing("Account does not exist"));
    assert!(says(
        "User bob is already suspended.",
        "is already suspended"
    ));
}

#[test]
fn timeouts_stay_below_the_deadline() {
    // Plenty of time: the configured timeout.
    assert_eq!(request_timeout(30_000, 120_000), Some(30_000));
    // Deadline nearer than the timeout: a tenth is kept back, at most 2 s.
    assert_eq!(request_timeout(30_000, 20_000), Some(18_000));
    assert_eq!(request_timeout(30_000, 60_000), Some(30_000));
    assert_eq!(request_timeout(60_000, 50_000), Some(48_000));
    // At least 250 ms kept back.
    assert_eq!(request_timeout(30_000, 1_000), Some(750));
    // Too late to start.
    assert_eq!(request_timeout(30_000, 300), None);
    assert_eq!(request_timeout(30_000, 0), None);
}

#[test]
fn numbers_in_either_form() {
    assert_eq!(number(Some(&serde_json::json!(1))), Some(1));
    assert_eq!(number(Some(&serde_json::json!("0"))), Some(0));
    assert_eq!(number(Some(&serde_json::json!(null))), None);
    assert_eq!(number(None), None);
}
