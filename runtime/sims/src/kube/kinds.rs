//! The resources the simulator serves: plural name, kind, API group and
//! version, scope, and which name rule their `metadata.name` follows.

/// How an object's name is checked, as kube-apiserver does per resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
    Label1123,
    /// RFC 1035 label (a Service): like 1123 but starting with a letter.
    Label1035,
    /// RFC 1123 subdomain: dot-separated labels, at most 253.
    Subdomain,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Kind {
    /// The plural resource name in URLs (`deployments`).
    pub resource: &'static str,
    pub kind: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub namespaced: bool,
    pub name_rule: NameRule,
}

pub(crate) const NAMESPACES: &Kind = &KINDS[0];
pub(crate) const RESOURCE_QUOTAS: &Kind = &KINDS[1];
#[cfg(test)]
pub(crate) const SERVICES: &Kind = &KINDS[3];
#[cfg(test)]
pub(crate) const PVCS: &Kind = &KINDS[4];
pub(crate) const DEPLOYMENTS: &Kind = &KINDS[5];

pub(crate) static KINDS: [Kind; 7] = [
    Kind {
        resource: "namespaces",
        kind: "Namespace",
        group: "",
        version: "v1",
        namespaced: false,
        name_rule: NameRule::Label1123,
    },
    Kind {
        resource: "resourcequotas",
        kind: "ResourceQuota",
        group: "",
        version: "v1",
        namespaced: true,
        name_rule: NameRule::Subdomain,
    },
    Kind {
        resource: "limitranges",
        kind: "LimitRange",
        group: "",
        version: "v1",
        namespaced: true,
        name_rule: NameRule::Subdomain,
    },
    Kind {
        resource: "services",
        kind: "Service",
        group: "",
        version: "v1",
        namespaced: true,
        name_rule: NameRule::Label1035,
    },
    Kind {
        resource: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        group: "",
        version: "v1",
        namespaced: true,
        name_rule: NameRule::Subdomain,
    },
    Kind {
        resource: "deployments",
        kind: "Deployment",
        group: "apps",
        version: "v1",
        namespaced: true,
        name_rule: NameRule::Subdomain,
    },
    Kind {
        resource: "ingresses",
        kind: "Ingress",
        group: "networking.k8s.io",
        version: "v1",
        namespaced: true,
        name_rule: NameRule::Subdomain,
    },
];

impl Kind {
    /// The resource by its plural name.
    pub fn by_resource(resource: &str) -> Option<&'static Kind> {
        KINDS.iter().find(|k| k.resource == resource)
    }

    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// How errors name the resource: `deployments.apps`, `namespaces`.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// How validation errors name the kind: `Deployment.apps`, `Service`.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes() {
        assert_eq!(DEPLOYMENTS.resource, "deployments");
        assert_eq!(NAMESPACES.kind, "Namespace");
        assert_eq!(RESOURCE_QUOTAS.kind, "ResourceQuota");
        assert_eq!(SERVICES.kind, "Service");
        assert_eq!(PVCS.kind, "PersistentVolumeClaim");
        assert_eq!(DEPLOYMENTS.qualified_resource(), "deployments.apps");
        assert_eq!(NAMESPACES.qualified_resource(), "namespaces");
        assert_eq!(
            Kind::by_resource("ingresses").unwrap().api_version(),
            "networking.k8s.io/v1"
        );
    }
}
