//! From method and path to what is asked for, and the route key
//! (`PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}`) that
//! faults and the request log use.

use super::errors::KubeError;
use super::kinds::{Kind, DEPLOYMENTS, NAMESPACES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Version,
    /// `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`: the segments.
    Discovery(Vec<String>),
    /// A resource's collection (`namespace` is `None` for namespaces).
    Collection {
        kind: &'static Kind,
        namespace: Option<String>,
    },
    Item {
        kind: &'static Kind,
        namespace: Option<String>,
        name: String,
    },
    /// A deployment's `scale` subresource.
    Scale {
        namespace: String,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub key: String,
    pub target: Target,
}

/// Why a request has no route: the key when the path is known (405) and the
/// error to answer.
#[derive(Debug)]
pub(crate) struct NoRoute {
    pub key: Option<String>,
    pub error: KubeError,
}

const DISCOVERY: [&[&str]; 6] = [
    &["api"],
    &["apis"],
    &["api", "v1"],
    &["apis", "apps", "v1"],
    &["apis", "networking.k8s.io", "v1"],
    &["version"],
];

fn allowed(target: &Target) -> &'static [&'static str] {
    match target {
        Target::Version | Target::Discovery(_) => &["GET"],
        Target::Collection { .. } => &["GET", "POST"],
        Target::Item { .. } => &["GET", "PUT", "PATCH", "DELETE"],
        Target::Scale { .. } => &["GET", "PUT", "PATCH"],
    }
}

/// The path template and what it addresses, or `None` for an unknown path.
fn resolve(segments: &[&str]) -> Option<(String, Target)> {
    if DISCOVERY.contains(&segments) {
        let template = format!("/{}", segments.join("/"));
        let target = if segments == ["version"] {
            Target::Version
        } else {
            Target::Discovery(segments.iter().map(|s| s.to_string()).collect())
        };
        return Some((template, target));
    }
    let (group, version, rest) = match segments {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let kind_here = |resource: &str| {
        Kind::by_resource(resource)
            .filter(|k| k.group == group && k.version == version && k.namespaced)
    };
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let namespaces_here = group.is_empty() && version == "v1";
    match rest {
        ["namespaces"] if namespaces_here => Some((
            format!("{prefix}/namespaces"),
            Target::Collection {
                kind: NAMESPACES,
                namespace: None,
            },
        )),
        ["namespaces", name] if namespaces_here => Some((
            format!("{prefix}/namespaces/{{name}}"),
            Target::Item {
                kind: NAMESPACES,
                namespace: None,
                name: name.to_string(),
            },
        )),
        ["namespaces", ns, resource] => kind_here(resource).map(|kind| {
            (
                format!("{prefix}/namespaces/{{namespace}}/{resource}"),
                Target::Collection {
                    kind,
                    namespace: Some(ns.to_string()),
                },
            )
        }),
        ["namespaces", ns, resource, name] => kind_here(resource).map(|kind| {
            (
                format!("{prefix}/namespaces/{{namespace}}/{resource}/{{name}}"),
                Target::Item {
                    kind,
                    namespace: Some(ns.to_string()),
                    name: name.to_string(),
                },
            )
        }),
        ["namespaces", ns, resource, name, "scale"] => {
            kind_here(resource).filter(|k| *k == DEPLOYMENTS).map(|_| {
                (
                    format!("{prefix}/namespaces/{{namespace}}/{resource}/{{name}}/scale"),
                    Target::Scale {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                    },
                )
            })
        }
        _ => None,
    }
}

/// Route `method` `path`.
pub(crate) fn route(method: &str, path: &str) -> Result<Route, NoRoute> {
    let trimmed = path.trim_matches('/');
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(NoRoute {
            key: None,
            error: KubeError::no_such_path(),
        });
    }
    let Some((template, target)) = resolve(&segments) else {
        return Err(NoRoute {
            key: None,
            error: KubeError::no_such_path(),
        });
    };
    let key = format!("{method} {template}");
    if !allowed(&target).contains(&method) {
        return Err(NoRoute {
            key: Some(key),
            error: KubeError::method_not_allowed(),
        });
    }
    Ok(Route { key, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_targets() {
        let r = route("PATCH", "/apis/apps/v1/namespaces/t1/deployments/web").unwrap();
        assert_eq!(
            r.key,
            "PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        );
        assert_eq!(
            r.target,
            Target::Item {
                kind: DEPLOYMENTS,
                namespace: Some("t1".into()),
                name: "web".into()
            }
        );
        assert_eq!(
            route("GET", "/api/v1/namespaces").unwrap().key,
            "GET /api/v1/namespaces"
        );
        assert_eq!(
            route("DELETE", "/api/v1/namespaces/t1").unwrap().key,
            "DELETE /api/v1/namespaces/{name}"
        );
        assert_eq!(
            route("GET", "/api/v1/namespaces/t1/resourcequotas")
                .unwrap()
                .key,
            "GET /api/v1/namespaces/{namespace}/resourcequotas"
        );
        assert_eq!(
            route("GET", "/apis/apps/v1/namespaces/t1/deployments/web/scale")
                .unwrap()
                .target,
            Target::Scale {
                namespace: "t1".into(),
                name: "web".into()
            }
        );
        assert_eq!(route("GET", "/version").unwrap().target, Target::Version);
        // Deployments are not in the core group; services are not in apps.
        assert!(route("GET", "/api/v1/namespaces/t1/deployments").is_err());
        assert!(route("GET", "/apis/apps/v1/namespaces/t1/services").is_err());
        assert!(route("GET", "/apis/apps/v1/namespaces").is_err());
        let no = route("POST", "/api/v1/namespaces/t1").unwrap_err();
        assert_eq!(no.error.code, 405);
        assert_eq!(no.key.as_deref(), Some("POST /api/v1/namespaces/{name}"));
        assert_eq!(route("GET", "/nope").unwrap_err().error.code, 404);
        assert_eq!(route("GET", "/api//v1").unwrap_err().error.code, 404);
    }
}
