//! Request validation against Plesk's own OpenAPI description
//! (`spec/plesk/plesk-swagger-openapi3.json`, embedded): the route (path
//! template and method), declared parameter types (integer ids), and the
//! JSON body against the operation's request schema. Answers can be checked
//! against the response schemas ([`check_response`]).

use std::sync::LazyLock;

use serde_json::Value;

use crate::common::openapi::Description;

/// The embedded description: nothing outside the crate is read at run time.
pub const SPEC_JSON: &str = include_str!("../../spec/plesk/plesk-swagger-openapi3.json");

pub(crate) static SPEC: LazyLock<Description> = LazyLock::new(|| Description::load(SPEC_JSON));

/// Check an answer against the description's schema for `key` and
/// `status`. One line per violation; empty = valid.
pub fn check_response(key: &str, status: u16, body: &Value) -> Vec<String> {
    SPEC.check_response(key, status, body)
}

/// Every operation key the description has, sorted.
pub fn operations() -> Vec<String> {
    SPEC.operations()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn routes_and_params() {
        assert_eq!(operations().len(), 49);
        let r = SPEC.route("PUT", "/domains/7/status").unwrap();
        assert_eq!(r.key, "PUT /domains/{id}/status");
        assert_eq!(r.params["id"], "7");
        assert_eq!(
            SPEC.route("PATCH", "/domains/7").unwrap_err(),
            crate::common::openapi::NoRoute::Method
        );
        assert_eq!(
            SPEC.route("GET", "/nope").unwrap_err(),
            crate::common::openapi::NoRoute::Path
        );
        assert_eq!(
            SPEC.route("POST", "/cli/subscription/call").unwrap().key,
            "POST /cli/{id}/call"
        );
    }

    #[test]
    fn bodies_are_checked_against_the_description() {
        let r = SPEC.route("POST", "/clients").unwrap();
        let ok = json!({"name": "A", "login": "a", "password": "secret12", "email": "a@b.c", "type": "customer"});
        let (c, v) = SPEC.check(
            &r,
            &BTreeMap::new(),
            Some("application/json"),
            ok.to_string().as_bytes(),
        );
        assert!(c.rejection.is_none(), "{:?}", c.problems);
        assert!(v.is_some());
        let bad = json!({"name": "A", "login": "a", "email": "a@b.c", "type": "boss"});
        let (c, _) = SPEC.check(
            &r,
            &BTreeMap::new(),
            Some("application/json"),
            bad.to_string().as_bytes(),
        );
        assert!(c.problems.len() >= 2, "{:?}", c.problems);
        let (c, _) = SPEC.check(&r, &BTreeMap::new(), Some("text/plain"), b"x");
        assert!(c.rejection.unwrap().contains("application/json"));
        let r = SPEC.route("GET", "/clients/abc").unwrap();
        let (c, _) = SPEC.check(&r, &BTreeMap::new(), None, b"");
        assert!(c.rejection.unwrap().contains("is not integer"));
    }

    #[test]
    fn responses_are_checked() {
        assert!(check_response("GET /clients", 200, &json!([])).is_empty());
        assert!(!check_response("GET /clients", 200, &json!({})).is_empty());
        assert!(SPEC.answers_list("GET /clients"));
        assert!(!SPEC.answers_list("GET /server"));
    }
}
