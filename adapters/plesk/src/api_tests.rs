use super::*;

fn json_ct() -> Option<&'static str> {
    Some("application/json")
}

fn err_kind(r: Result<Answer, AdapterError>) -> &'static str {
    kind_name(&r.expect_err("an error"))
}

#[test]
fn plesk_answers() {
    let ok = |r: Result<Answer, AdapterError>| r.expect("an answer");
    assert_eq!(
        ok(classify("GET /clients", 200, json_ct(), None, b"[]")),
        Answer::Ok(json!([]))
    );
    assert_eq!(
        ok(classify(
            "GET /clients/{id}",
            404,
            json_ct(),
            None,
            br#"{"code":404,"message":"Client is not found"}"#
        )),
        Answer::Missing("Client is not found".into())
    );
    assert_eq!(
        ok(classify(
            "POST /clients",
            400,
            json_ct(),
            None,
            br#"{"code":400,"message":"Account with this name already exists"}"#
        )),
        Answer::Refused("Account with this name already exists".into())
    );
    assert_eq!(
        kind_name(&refusal(
            "POST /clients",
            "Account with this name already exists"
        )),
        "conflict"
    );
    assert_eq!(
        kind_name(&refusal(
            "POST /clients",
            "The password should contain at least 5 characters."
        )),
        "invalid-input"
    );
}

#[test]
fn transport_level_answers() {
    let r = classify(
        "GET /server",
        503,
        Some("text/html"),
        Some(2_000),
        b"<html>503</html>",
    );
    match r {
        Err(AdapterError::Transient(t)) => assert_eq!(t.retry_after_ms, Some(2_000)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err_kind(classify("GET /server", 429, None, None, b"")),
        "transient"
    );
    assert_eq!(
        err_kind(classify(
            "GET /server",
            401,
            json_ct(),
            None,
            br#"{"code":401,"message":"x"}"#
        )),
        "auth-failed"
    );
    // A login page with 200: the key was not taken.
    assert_eq!(
        err_kind(classify(
            "GET /server",
            200,
            Some("text/html"),
            None,
            b"<!DOCTYPE html><form>"
        )),
        "auth-failed"
    );
    assert_eq!(
        err_kind(classify(
            "GET /server",
            200,
            Some("text/plain"),
            None,
            b"hello"
        )),
        "permanent"
    );
}

#[test]
fn a_gateways_problem_json_names_its_status_and_detail() {
    let body = br#"{"type":"about:blank","title":"Method Not Allowed","status":405,"detail":"POST is not allowed here"}"#;
    match classify(
        "POST /clients",
        405,
        Some("application/problem+json"),
        None,
        body,
    ) {
        Err(AdapterError::Permanent(m)) => {
            assert!(
                m.contains("HTTP 405") && m.contains("POST is not allowed here"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A 404 that is not Plesk's error body is not "missing".
    assert_eq!(
        err_kind(classify(
            "GET /clients/{id}",
            404,
            Some("application/problem+json"),
            None,
            br#"{"status":404,"title":"Not Found"}"#
        )),
        "permanent"
    );
}

#[test]
fn shapes() {
    assert!(list("GET /clients", &json!({"a": 1})).is_err());
    assert!(field("GET /server", &json!({}), "panel_version").is_err());
    assert_eq!(field("x", &json!({"id": 3}), "id").unwrap(), &json!(3));
}
