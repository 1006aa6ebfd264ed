//! Response classification and timeout math (native unit tests).
use super::*;

const JSON: Option<&str> = Some("application/json");

fn run(status: u16, ct: Option<&str>, body: &str) -> Result<Answer, AdapterError> {
    classify("createacct", status, ct, Some(7000), body.as_bytes())
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
    let m = message(&e).to_string();
    assert!(matches!(e, AdapterError::Permanent(_)));
    assert!(
        m.starts_with(
            "WHM createacct: not a WHM API 1 response: HTTP 200, content-type text/plain"
        ),
        "{m}"
    );
    assert!(!m.contains('\u{1b}'));
    assert!(m.len() < 250, "{m}");
    let m = message(&run(200, None, "").unwrap_err()).to_string();
    assert!(m.contains("content-type none"), "{m}");
    let m = message(&run(200, JSON, "[1,2]").unwrap_err()).to_string();
    assert!(m.contains("JSON without `metadata`"), "{m}");
}

#[test]
fn api0_envelopes() {
    let api0 = [
        r#"{"cpanelresult":{"apiversion":"2","data":[],"event":{"result":1}}}"#,
        r#"{"result":[{"status":1,"statusmsg":"Account Created"}]}"#,
        r#"{"status":1,"statusmsg":"ok"}"#,
        r#"{"result":0}"#,
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
fn foreign_json_errors_report_the_http_status_and_their_message() {
    let problem = Some("application/problem+json");
    let cases = [
        (404, r#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no route for /json-api/createacct"}"#,
         "HTTP 404, content-type application/problem+json: Not Found: no route for /json-api/createacct"),
        (405, r#"{"type":"about:blank","title":"Method Not Allowed","status":405}"#,
         "HTTP 405, content-type application/problem+json: Method Not Allowed"),
        (422, r#"{"status":422,"detail":"body rejected by the gateway"}"#,
         "HTTP 422, content-type application/problem+json: body rejected by the gateway"),
    ];
    for (status, body, want) in cases {
        let e = run(status, problem, body).unwrap_err();
        let m = message(&e);
        assert!(matches!(e, AdapterError::Permanent(_)), "{body}");
        assert!(
            m.starts_with("WHM createacct: not a WHM API 1 response"),
            "{m}"
        );
        assert!(m.contains(want), "{m}");
        assert!(!m.contains("API 0"), "{m}");
    }
    // A plain `message` (or `error`) body, even with 200.
    let m = message(
        &run(
            200,
            JSON,
            r#"{"status":"error","message":"upstream\u001b busy"}"#,
        )
        .unwrap_err(),
    )
    .to_string();
    assert!(
        m.ends_with("HTTP 200, content-type application/json: upstream. busy"),
        "{m}"
    );
    let m = message(&run(400, JSON, r#"{"error":"bad request"}"#).unwrap_err()).to_string();
    assert!(m.ends_with(": bad request"), "{m}");
    // Long messages are cut.
    let long = format!(r#"{{"status":404,"detail":"{}"}}"#, "y".repeat(500));
    assert!(message(&run(404, problem, &long).unwrap_err()).len() < 250);
    // Nothing to quote: still not API 0.
    let m = message(&run(404, JSON, r#"{"status":404}"#).unwrap_err()).to_string();
    assert!(
        m.contains("HTTP 404") && m.contains("JSON without `metadata`"),
        "{m}"
    );
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
}

#[test]
fn numbers_in_either_form() {
    assert_eq!(number(Some(&serde_json::json!(1))), Some(1));
    assert_eq!(number(Some(&serde_json::json!("0"))), Some(0));
    assert_eq!(number(Some(&serde_json::json!(null))), None);
    assert_eq!(number(None), None);
}
