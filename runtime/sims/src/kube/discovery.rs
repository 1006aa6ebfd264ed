//! What a client asks first: `/version`, and API discovery (`/api`,
//! `/apis`, `/api/v1`, `/apis/{group}/{version}`) listing only what the
//! simulator serves.

use serde_json::{json, Value};

use super::kinds::{Kind, KINDS};

/// The Kubernetes version the simulator presents.
pub const GIT_VERSION: &str = "v1.31.4";

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "31",
        "gitVersion": GIT_VERSION,
        "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
        "gitTreeState": "clean",
        "buildDate": "2024-12-10T11:36:01Z",
        "goVersion": "go1.22.9",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn resource(kind: &Kind) -> Value {
    // Only the verbs served (no watch, no deletecollection).
    let verbs = ["create", "delete", "get", "list", "patch", "update"];
    json!({
        "name": kind.resource,
        "singularName": kind.kind.to_ascii_lowercase(),
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": verbs,
    })
}

fn group(name: &str) -> Value {
    json!({
        "name": name,
        "versions": [{"groupVersion": format!("{name}/v1"), "version": "v1"}],
        "preferredVersion": {"groupVersion": format!("{name}/v1"), "version": "v1"},
    })
}

/// The discovery document at `segments` (a path the router accepted).
pub(crate) fn document(segments: &[String]) -> Value {
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs[..] {
        ["api"] => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        }),
        ["apis"] => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [group("apps"), group("networking.k8s.io")],
        }),
        _ => {
            let (group, version) = match segs[..] {
                ["api", v] => ("", v),
                ["apis", g, v] => (g, v),
                _ => ("", "v1"),
            };
            let mut resources: Vec<Value> = KINDS
                .iter()
                .filter(|k| k.group == group && k.version == version)
                .map(resource)
                .collect();
            if group == "apps" {
                resources.push(json!({"name": "deployments/scale", "singularName": "", "namespaced": true,
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
            }
            let group_version = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        assert_eq!(version()["gitVersion"], GIT_VERSION);
        let core = document(&["api".into(), "v1".into()]);
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"namespaces") && names.contains(&"services"));
        assert!(!names.contains(&"deployments"));
        let apps = document(&["apis".into(), "apps".into(), "v1".into()]);
        assert_eq!(apps["groupVersion"], "apps/v1");
        assert_eq!(
            document(&["apis".into()])["groups"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
