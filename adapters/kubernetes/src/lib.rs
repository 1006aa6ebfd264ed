//! The Kubernetes adapter: a Panel1 service is one namespace, labelled with
//! Panel1's service id, holding a ResourceQuota and LimitRange from its plan,
//! a PersistentVolumeClaim, a Deployment, a Service and an Ingress for its
//! domain. Everything is written by server-side apply under Panel1's field
//! manager, so a retry after any failure converges on the same objects.
//!
//! The remote id is the namespace's name. An operation never touches a
//! namespace that is not labelled as this service's.
use cluster::{Answer, Cluster};
use objects::*;
use panel1_sdk::deadline::{self, Deadline};
use panel1_sdk::input::{domain, field};
use panel1_sdk::*;
use serde_json::{json, Value};
use settings::Plan;

mod cluster;
mod objects;
mod quantity;
mod settings;

struct Kubernetes;

/// A namespace name Kubernetes accepts (a DNS-1123 label) and that is not
/// one of the cluster's own.
fn namespace_name(spec: &ServiceSpec) -> Result<String, AdapterError> {
    let raw = field(&spec.remote_id)
        .or_else(|| field(&spec.username))
        .map(str::to_string)
        .unwrap_or_else(|| format!("p1-{}", spec.service_id.to_ascii_lowercase()));
    let label = !raw.is_empty()
        && raw.len() <= 63
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !raw.starts_with('-')
        && !raw.ends_with('-');
    if !label {
        return Err(invalid_input(format!(
            "`{}` is not a namespace name: 1-63 lowercase letters, digits or `-`, starting and ending with a letter or digit",
            raw.escape_debug()
        )));
    }
    if raw.starts_with("kube-") || ["default", "kube-system", "kube-public"].contains(&raw.as_str())
    {
        return Err(invalid_input(format!(
            "`{raw}` is one of the cluster's own namespaces"
        )));
    }
    Ok(raw)
}

/// Label values: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn label_value(service_id: &str) -> Result<&str, AdapterError> {
    let ok = !service_id.is_empty()
        && service_id.len() <= 63
        && service_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && service_id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && service_id.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(service_id)
    } else {
        Err(invalid_input(format!(
            "service id `{}` cannot be a Kubernetes label value",
            service_id.escape_debug()
        )))
    }
}

fn text<'v>(doc: &'v Value, pointer: &str) -> Option<&'v str> {
    doc.pointer(pointer).and_then(Value::as_str)
}

/// `/metadata/labels/panel1.io~1service-id`: `/` escaped for a JSON pointer.
fn label_pointer(kind: &str, key: &str) -> String {
    format!(
        "/metadata/{kind}/{}",
        key.replace('~', "~0").replace('/', "~1")
    )
}

/// The namespace if it is this service's, `None` if it does not exist;
/// a namespace that belongs to something else is a `conflict`.
fn owned_namespace(
    cluster: &Cluster,
    ns: &str,
    service_id: &str,
) -> Result<Option<Value>, AdapterError> {
    let Some(doc) = cluster.get(&namespace_path(ns))? else {
        return Ok(None);
    };
    let owner = text(&doc, &label_pointer("labels", SERVICE_LABEL));
    if owner != Some(service_id) {
        return Err(conflict(format!(
            "namespace `{ns}` exists and belongs to {}; Panel1 leaves it alone",
            owner
                .map(|o| format!("service {o}"))
                .unwrap_or_else(|| "no Panel1 service".into())
        )));
    }
    Ok(Some(doc))
}

fn require_namespace(cluster: &Cluster, ns: &str, service_id: &str) -> Result<Value, AdapterError> {
    owned_namespace(cluster, ns, service_id)?
        .ok_or_else(|| not_found(format!("namespace `{ns}` does not exist")))
}

fn terminating(ns_doc: &Value) -> bool {
    text(ns_doc, "/status/phase") == Some("Terminating")
}

fn suspended(ns_doc: &Value) -> bool {
    text(ns_doc, &label_pointer("annotations", SUSPENDED_ANNOTATION)) == Some("true")
}

/// What the namespace and its Deployment say about the service.
fn status_of(ns: &str, ns_doc: Option<&Value>, deployment: Option<&Value>) -> ServiceStatus {
    let Some(ns_doc) = ns_doc else {
        return ServiceStatus::new(ns, RemoteState::Terminated);
    };
    let phase = text(ns_doc, "/status/phase").unwrap_or("Active");
    let desired = deployment
        .and_then(|d| d.pointer("/spec/replicas"))
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let figure = |pointer: &str| {
        deployment
            .and_then(|d| d.pointer(pointer))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let ready = figure("/status/readyReplicas");
    // The Deployment has seen its latest spec and every replica runs it
    // (right after a change the old pods may still be the ready ones).
    let current = figure("/status/observedGeneration") >= figure("/metadata/generation")
        && figure("/status/updatedReplicas") >= desired;
    let state = if terminating(ns_doc) {
        RemoteState::Terminated
    } else if suspended(ns_doc) {
        RemoteState::Suspended
    } else if deployment.is_some() && desired > 0 && ready >= desired && current {
        RemoteState::Active
    } else {
        RemoteState::Pending
    };
    let mut st = ServiceStatus::new(ns, state);
    st.plan = text(ns_doc, &label_pointer("annotations", PLAN_ANNOTATION)).map(str::to_string);
    st.details.push(KeyValue::new("namespace_phase", phase));
    if let Some(d) = deployment {
        st.details.push(KeyValue::new(
            "replicas",
            format!("{ready}/{desired} ready"),
        ));
        if let Some(image) = text(d, "/spec/template/spec/containers/0/image") {
            st.details.push(KeyValue::new("image", image));
        }
    }
    st
}

fn require_plan(cluster: &Cluster, plan: Option<&str>) -> Result<Plan, AdapterError> {
    let name =
        plan.ok_or_else(|| invalid_input("plan is required: it names the image and resources"))?;
    cluster.settings().plan(name).map_err(invalid_input)
}

/// Apply every object of the service for `plan`; the namespace first.
fn apply_all(
    cluster: &Cluster,
    ns: &str,
    spec: &ServiceSpec,
    plan: &Plan,
    replicas: u32,
) -> Result<Value, AdapterError> {
    let id = label_value(&spec.service_id)?;
    let settings = cluster.settings();
    let host = match field(&spec.domain) {
        Some(d) => Some(domain(d).map_err(invalid_input)?),
        None => None,
    };
    for (path, body) in [
        namespace(ns, id, plan),
        quota(ns, id, plan),
        limit_range(ns, id, plan),
    ] {
        cluster.apply(&path, &body)?;
    }
    ensure_claim(cluster, ns, id, plan)?;
    let mut rest = vec![service(ns, id, plan)];
    if let Some(host) = &host {
        rest.push(ingress(ns, id, host, settings));
    }
    for (path, body) in &rest {
        cluster.apply(path, body)?;
    }
    let (path, body) = deployment(ns, id, plan, replicas);
    let deployed = cluster.apply(&path, &body)?;
    log::info("objects applied", &[("namespace", ns)]);
    Ok(deployed)
}

/// The volume claim: created by apply; an existing one only ever grows,
/// by a patch of its size alone (its other fields are immutable, and a
/// claim cannot shrink).
fn ensure_claim(cluster: &Cluster, ns: &str, id: &str, plan: &Plan) -> Result<(), AdapterError> {
    let (path, body) = claim(ns, id, plan, cluster.settings());
    let Some(existing) = cluster.get(&path)? else {
        cluster.apply(&path, &body)?;
        return Ok(());
    };
    let current = text(&existing, "/spec/resources/requests/storage")
        .and_then(|q| quantity::parse(q).ok())
        .unwrap_or(0.0);
    if plan.storage > current {
        let size = quantity::bytes(plan.storage);
        let patch = json!({"spec": {"resources": {"requests": {"storage": size}}}});
        match cluster.merge(&path, &patch)? {
            Answer::Ok(_) => log::info("volume claim grown", &[("namespace", ns), ("size", &size)]),
            Answer::Missing(m) | Answer::Conflict(m) | Answer::Terminating(m) => {
                return Err(transient(format!("growing the claim in `{ns}`: {m}"), None))
            }
        }
    } else if plan.storage < current {
        log::info(
            "volume claim kept at its size (a claim never shrinks)",
            &[("namespace", ns)],
        );
    }
    Ok(())
}

/// Scale the Deployment through its `scale` subresource.
fn scale(cluster: &Cluster, ns: &str, replicas: u64) -> Result<(), AdapterError> {
    let path = format!("{}/scale", deployment_path(ns));
    match cluster.merge(&path, &json!({"spec": {"replicas": replicas}}))? {
        Answer::Ok(_) => Ok(()),
        Answer::Missing(m) => Err(not_found(format!(
            "namespace `{ns}` has no Deployment `{WORKLOAD}`: {m}"
        ))),
        Answer::Conflict(m) => Err(transient(format!("scaling `{ns}`: {m}"), None)),
        Answer::Terminating(m) => Err(not_found(format!("namespace `{ns}` is going: {m}"))),
    }
}

/// Mark (or unmark, with `null`) the namespace as suspended.
fn mark_suspended(cluster: &Cluster, ns: &str, value: Value) -> Result<(), AdapterError> {
    let patch = json!({"metadata": {"annotations": { SUSPENDED_ANNOTATION: value }}});
    match cluster.merge(&namespace_path(ns), &patch)? {
        Answer::Ok(_) => Ok(()),
        other => Err(transient(format!("marking `{ns}`: {other:?}"), None)),
    }
}

fn current_status(
    cluster: &Cluster,
    ns: &str,
    service_id: &str,
) -> Result<ServiceStatus, AdapterError> {
    let ns_doc = owned_namespace(cluster, ns, service_id)?;
    let deployment = match &ns_doc {
        Some(_) => cluster.get(&deployment_path(ns))?,
        None => None,
    };
    Ok(status_of(ns, ns_doc.as_ref(), deployment.as_ref()))
}

/// The replica count the plan gave, as recorded on the namespace.
fn recorded_replicas(ns_doc: &Value) -> u64 {
    text(ns_doc, &label_pointer("annotations", REPLICAS_ANNOTATION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
}

impl Adapter for Kubernetes {
    fn info() -> AdapterInfo {
        AdapterInfo {
            description: "Kubernetes namespaces with a quota, a Deployment, a Service and an Ingress (server-side apply)".into(),
            operations: vec![
                Operation::TestConnection,
                Operation::Provision,
                Operation::Suspend,
                Operation::Unsuspend,
                Operation::Terminate,
                Operation::Status,
                Operation::ChangePackage,
                Operation::ListServices,
                Operation::Usage,
            ],
            config_schema: settings::SCHEMA.into(),
            egress: vec!["https://{host}:{port}/".into()],
            secrets: vec![
                cluster::TOKEN_SECRET.into(),
                cluster::IDENTITY_SECRET.into(),
                cluster::CA_SECRET.into(),
            ],
            ..AdapterInfo::named("kubernetes", env!("CARGO_PKG_VERSION"))
        }
    }

    fn test_connection(req: TestRequest) -> Result<ConnectionInfo, AdapterError> {
        let cluster = Cluster::connect(&req.ctx)?;
        let version = cluster.ok("GET", "/version", None)?;
        // `/version` is often public: listing proves the credentials work.
        cluster.ok("GET", "/api/v1/namespaces?limit=1", None)?;
        let v = |k: &str| text(&version, &format!("/{k}")).unwrap_or("").to_string();
        Ok(ConnectionInfo {
            server_version: format!("Kubernetes {}", v("gitVersion")),
            details: vec![
                KeyValue::new("platform", v("platform")),
                KeyValue::new("auth", cluster.auth_kind()),
            ],
        })
    }

    fn provision(req: ProvisionRequest) -> Result<ServiceStatus, AdapterError> {
        let spec = &req.service;
        let ns = namespace_name(spec)?;
        let cluster = Cluster::connect(&req.ctx)?;
        let plan = require_plan(&cluster, field(&spec.plan))?;
        let existing = owned_namespace(&cluster, &ns, &spec.service_id)?;
        if let Some(doc) = &existing {
            if terminating(doc) {
                return Err(transient(
                    format!("namespace `{ns}` is still terminating; it can be provisioned once it is gone"),
                    Some(5_000),
                ));
            }
            log::info(
                "namespace found for this service: applied again",
                &[("namespace", &ns)],
            );
        }
        let replicas = match &existing {
            Some(doc) if suspended(doc) => 0,
            _ => plan.replicas,
        };
        let deployed = apply_all(&cluster, &ns, spec, &plan, replicas)?;
        let ns_doc = cluster.get(&namespace_path(&ns))?;
        Ok(status_of(&ns, ns_doc.as_ref(), Some(&deployed)))
    }

    fn suspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let ns = namespace_name(&req.service)?;
        let cluster = Cluster::connect(&req.ctx)?;
        require_namespace(&cluster, &ns, &req.service.service_id)?;
        scale(&cluster, &ns, 0)?;
        mark_suspended(&cluster, &ns, json!("true"))?;
        log::info("scaled to 0 and marked suspended", &[("namespace", &ns)]);
        current_status(&cluster, &ns, &req.service.service_id)
    }

    fn unsuspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let ns = namespace_name(&req.service)?;
        let cluster = Cluster::connect(&req.ctx)?;
        let doc = require_namespace(&cluster, &ns, &req.service.service_id)?;
        let replicas = recorded_replicas(&doc);
        scale(&cluster, &ns, replicas)?;
        mark_suspended(&cluster, &ns, Value::Null)?;
        log::info(
            "scaled back and unmarked",
            &[("namespace", &ns), ("replicas", &replicas.to_string())],
        );
        current_status(&cluster, &ns, &req.service.service_id)
    }

    fn terminate(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let ns = namespace_name(&req.service)?;
        let cluster = Cluster::connect(&req.ctx)?;
        let Some(doc) = owned_namespace(&cluster, &ns, &req.service.service_id)? else {
            log::info("namespace was already gone", &[("namespace", &ns)]);
            return Ok(ServiceStatus::new(ns, RemoteState::Terminated));
        };
        if terminating(&doc) {
            // Deleting again would be a 409: an earlier attempt started it.
            log::info("namespace already terminating", &[("namespace", &ns)]);
        } else {
            let path = format!("{}?propagationPolicy=Background", namespace_path(&ns));
            match cluster.call("DELETE", &path, None, "application/json")? {
                Answer::Missing(_) => {
                    log::info("namespace was already gone", &[("namespace", &ns)]);
                    return Ok(ServiceStatus::new(ns, RemoteState::Terminated));
                }
                // 409: it started terminating since we looked.
                Answer::Conflict(m) => log::info(
                    "namespace already terminating",
                    &[("namespace", &ns), ("answer", &m)],
                ),
                _ => log::info("namespace deletion started", &[("namespace", &ns)]),
            }
        }
        // Wait for the namespace to go, within this call's time.
        let wait = cluster.settings().terminate_wait_ms;
        let clock = Deadline::new(&req.ctx);
        loop {
            if cluster.get(&namespace_path(&ns))?.is_none() {
                log::info("namespace gone", &[("namespace", &ns)]);
                return Ok(ServiceStatus::new(ns, RemoteState::Terminated));
            }
            let waited = clock.elapsed_ms();
            let left = cluster.deadline().remaining_ms();
            if waited >= wait || (req.ctx.deadline_ms > 0 && left < 1_500) {
                return Err(transient(
                    format!("namespace `{ns}` is still terminating after {waited} ms; the retry waits again"),
                    Some(5_000),
                ));
            }
            deadline::pause_ms(200);
        }
    }

    fn status(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let ns = namespace_name(&req.service)?;
        let cluster = Cluster::connect(&req.ctx)?;
        current_status(&cluster, &ns, &req.service.service_id)
    }

    fn change_package(req: ChangePackageRequest) -> Result<ServiceStatus, AdapterError> {
        let ns = namespace_name(&req.service)?;
        let cluster = Cluster::connect(&req.ctx)?;
        let plan = require_plan(&cluster, Some(req.plan.trim()).filter(|p| !p.is_empty()))?;
        let doc = require_namespace(&cluster, &ns, &req.service.service_id)?;
        let replicas = if suspended(&doc) { 0 } else { plan.replicas };
        let deployed = apply_all(&cluster, &ns, &req.service, &plan, replicas)?;
        log::info("plan applied", &[("namespace", &ns), ("plan", &plan.name)]);
        let ns_doc = cluster.get(&namespace_path(&ns))?;
        Ok(status_of(&ns, ns_doc.as_ref(), Some(&deployed)))
    }

    fn list_services(req: ListRequest) -> Result<ServicePage, AdapterError> {
        let cluster = Cluster::connect(&req.ctx)?;
        let size = paging::size_of(req.limit);
        let mut path = format!(
            "/api/v1/namespaces?labelSelector={}&limit={size}",
            http::query_escape(SERVICE_LABEL)
        );
        if let Some(cursor) = req.cursor.as_deref().filter(|c| !c.trim().is_empty()) {
            path.push_str(&format!("&continue={}", http::query_escape(cursor)));
        }
        let doc = cluster.ok("GET", &path, None)?;
        let items = doc
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| permanent("Kubernetes GET /api/v1/namespaces: no `items` list"))?;
        let items = items
            .iter()
            .filter_map(|n| {
                let name = text(n, "/metadata/name")?;
                let mut st = status_of(name, Some(n), None);
                if !terminating(n) && !suspended(n) {
                    // Without reading each Deployment: the namespace is in use.
                    st.state = RemoteState::Active;
                }
                if let Some(sid) = text(n, &label_pointer("labels", SERVICE_LABEL)) {
                    st.details.push(KeyValue::new("service_id", sid));
                }
                Some(st)
            })
            .collect();
        Ok(ServicePage {
            next_cursor: text(&doc, "/metadata/continue")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            items,
        })
    }

    fn usage(req: ServiceRequest) -> Result<UsageReport, AdapterError> {
        let ns = namespace_name(&req.service)?;
        let cluster = Cluster::connect(&req.ctx)?;
        require_namespace(&cluster, &ns, &req.service.service_id)?;
        let quota = cluster.ok("GET", &core_path(&ns, "resourcequotas", POLICY), None)?;
        let mut metrics = Vec::new();
        for (which, suffix) in [("used", ""), ("hard", "_limit")] {
            let Some(figures) = quota
                .pointer(&format!("/status/{which}"))
                .and_then(Value::as_object)
            else {
                continue;
            };
            for (key, value) in figures {
                let Some(v) = value.as_str().and_then(|q| quantity::parse(q).ok()) else {
                    continue;
                };
                let unit = if key.ends_with("cpu") {
                    "cores"
                } else if key.ends_with("memory") || key.ends_with("storage") {
                    "bytes"
                } else {
                    "count"
                };
                metrics.push(Metric {
                    name: format!("{}{suffix}", key.replace('.', "_")),
                    value: v,
                    unit: unit.into(),
                });
            }
        }
        Ok(UsageReport {
            remote_id: ns,
            metrics,
        })
    }
}

export_adapter!(Kubernetes);

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(remote: Option<&str>) -> ServiceSpec {
        ServiceSpec {
            service_id: "0b7c".into(),
            remote_id: remote.map(str::to_string),
            username: None,
            domain: None,
            plan: None,
            contact_email: None,
            params: vec![],
        }
    }

    #[test]
    fn names_and_states() {
        assert_eq!(namespace_name(&spec(None)).unwrap(), "p1-0b7c");
        assert_eq!(namespace_name(&spec(Some("shop-1"))).unwrap(), "shop-1");
        for bad in ["kube-system", "default", "Shop", "-a", "a_b", ""] {
            assert!(
                namespace_name(&spec(Some(bad))).is_err() || bad.is_empty(),
                "{bad}"
            );
        }
        assert!(label_value("9f1c-22").is_ok());
        assert!(label_value("a/b").is_err());
        let ns = json!({"metadata": {"annotations": {"panel1.io/suspended": "true", "panel1.io/plan": "small"}}, "status": {"phase": "Active"}});
        let st = status_of("a", Some(&ns), None);
        assert_eq!(
            (st.state, st.plan.as_deref()),
            (RemoteState::Suspended, Some("small"))
        );
        let live = json!({"metadata": {}, "status": {"phase": "Active"}});
        let d = json!({"metadata": {"generation": 3}, "spec": {"replicas": 2},
            "status": {"readyReplicas": 2, "updatedReplicas": 2, "observedGeneration": 3}});
        let rolling = json!({"metadata": {"generation": 4}, "spec": {"replicas": 2},
            "status": {"readyReplicas": 2, "updatedReplicas": 1, "observedGeneration": 4}});
        assert_eq!(
            status_of("a", Some(&live), Some(&rolling)).state,
            RemoteState::Pending
        );
        assert_eq!(
            status_of("a", Some(&live), Some(&d)).state,
            RemoteState::Active
        );
        let gone = json!({"metadata": {}, "status": {"phase": "Terminating"}});
        assert_eq!(
            status_of("a", Some(&gone), Some(&d)).state,
            RemoteState::Terminated
        );
        assert_eq!(status_of("a", None, None).state, RemoteState::Terminated);
    }
}
