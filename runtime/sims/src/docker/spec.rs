//! Request validation against the official Docker Engine API description
//! (v1.45, Swagger 2.0): the operations the simulator serves and the
//! definitions they use, extracted to `spec/docker/engine-v1.45.json` by
//! `spec/docker/extract.py` and embedded.

use std::sync::LazyLock;

use serde_json::Value;

use crate::common::openapi::Description;

/// The embedded description.
pub const SPEC_JSON: &str = include_str!("../../spec/docker/engine-v1.45.json");

/// The API versions served: `/v1.24/…` to `/v1.45/…`, or no prefix.
pub const MIN_API_VERSION: ApiVersion = (1, 24);
pub const API_VERSION: ApiVersion = (1, 45);

pub(crate) static SPEC: LazyLock<Description> = LazyLock::new(|| Description::load(SPEC_JSON));

/// Check an answer against the description's schema for `key` and `status`.
pub fn check_response(key: &str, status: u16, body: &Value) -> Vec<String> {
    SPEC.check_response(key, status, body)
}

/// An Engine API version, `(major, minor)`.
pub type ApiVersion = (u32, u32);

/// Split an optional `/v1.NN` prefix off a path: the version asked for and
/// the rest. `Err` names a version outside what is served.
pub(crate) fn versioned(path: &str, max: ApiVersion) -> Result<(Option<ApiVersion>, &str), String> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let (version, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let parsed = version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    match parsed {
        None => Ok((None, path)),
        Some(v) if v > max => Err(format!(
            "client version {version} is too new. Maximum supported API version is {}.{}",
            max.0, max.1
        )),
        Some(v) if v < MIN_API_VERSION => Err(format!(
            "client version {version} is too old. Minimum supported API version is {}.{}, please upgrade your client to a newer version",
            MIN_API_VERSION.0, MIN_API_VERSION.1
        )),
        Some(v) => Ok((Some(v), tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn routes_versions_and_bodies() {
        assert_eq!(
            versioned("/v1.45/containers/json", API_VERSION),
            Ok((Some((1, 45)), "/containers/json"))
        );
        assert_eq!(
            versioned("/containers/json", API_VERSION),
            Ok((None, "/containers/json"))
        );
        assert!(versioned("/v1.46/_ping", API_VERSION)
            .unwrap_err()
            .contains("too new"));
        assert!(versioned("/v1.12/_ping", API_VERSION)
            .unwrap_err()
            .contains("too old"));
        assert!(versioned("/v1.45/_ping", (1, 43))
            .unwrap_err()
            .contains("Maximum supported API version is 1.43"));
        assert_eq!(
            SPEC.route("POST", "/volumes/create").unwrap().key,
            "POST /volumes/create"
        );
        assert_eq!(
            SPEC.route("DELETE", "/volumes/v1").unwrap().key,
            "DELETE /volumes/{name}"
        );
        let r = SPEC.route("POST", "/containers/create").unwrap();
        let ok = json!({"Image": "nginx:1.27", "Labels": {"a": "b"}, "HostConfig": {"Memory": 268435456, "NanoCpus": 500000000}});
        let (c, _) = SPEC.check(
            &r,
            &BTreeMap::new(),
            Some("application/json"),
            ok.to_string().as_bytes(),
        );
        assert!(c.rejection.is_none(), "{:?}", c.problems);
        let bad = json!({"Image": "nginx", "HostConfig": {"Memory": "lots"}});
        let (c, _) = SPEC.check(
            &r,
            &BTreeMap::new(),
            Some("application/json"),
            bad.to_string().as_bytes(),
        );
        assert!(c.rejection.unwrap().contains("/HostConfig/Memory"));
        let q: BTreeMap<String, String> = [("all".to_string(), "maybe".to_string())].into();
        let (c, _) = SPEC.check(
            &SPEC.route("GET", "/containers/json").unwrap(),
            &q,
            None,
            b"",
        );
        assert!(c.rejection.unwrap().contains("not boolean"));
        assert!(SPEC.answers_list("GET /containers/json"));
    }
}
