//! The validation kube-apiserver does beyond the schema, for the mistakes
//! an adapter is likely to make: names and labels, a deployment's selector
//! against its template, containers, quantities, requests over limits,
//! service ports, what may not change once set (a deployment's selector, a
//! service's cluster IP, a claim's spec but its storage request).

use serde_json::{json, Value};

use super::errors::Cause;
use super::kinds::Kind;
use super::names::{check_labels, check_name, is_subdomain};
use super::quantity::{self, QUANTITY_RULE};

fn get<'v>(v: &'v Value, pointer: &str) -> Option<&'v Value> {
    v.pointer(pointer).filter(|x| !x.is_null())
}

fn items<'v>(v: &'v Value, pointer: &str) -> impl Iterator<Item = (usize, &'v Value)> {
    get(v, pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// A quantity map (`limits`, `hard`): every value must be a quantity.
fn quantities(map: Option<&Value>, field: &str, out: &mut Vec<Cause>) {
    for (k, v) in map.and_then(Value::as_object).into_iter().flatten() {
        if quantity::of(v).is_none() {
            out.push(Cause::invalid(format!("{field}[{k}]"), v, QUANTITY_RULE));
        }
    }
}

/// Whether a LabelSelector (`matchLabels`, `matchExpressions`) selects `labels`.
fn selects(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|e| {
            let have = label(e["key"].as_str().unwrap_or_default());
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

fn containers(pod: &str, object: &Value, out: &mut Vec<Cause>) {
    let list = format!("{pod}/containers");
    let field =
        |i: usize, rest: &str| format!("{}.containers[{i}]{rest}", pod[1..].replace('/', "."));
    if items(object, &list).next().is_none() {
        out.push(Cause::required(format!(
            "{}.containers",
            pod[1..].replace('/', ".")
        )));
    }
    let mut names = Vec::new();
    for (i, c) in items(object, &list) {
        let name = c["name"].as_str().unwrap_or_default();
        if !name.is_empty() {
            out.extend(check_name(
                super::kinds::NameRule::Label1123,
                name,
                &field(i, ".name"),
            ));
            if names.contains(&name) {
                out.push(Cause::new(
                    "FieldValueDuplicate",
                    field(i, ".name"),
                    format!("Duplicate value: \"{name}\""),
                ));
            }
            names.push(name);
        }
        if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
            out.push(Cause::required(field(i, ".image")));
        }
        let limits = get(c, "/resources/limits");
        quantities(limits, &field(i, ".resources.limits"), out);
        quantities(
            get(c, "/resources/requests"),
            &field(i, ".resources.requests"),
            out,
        );
        for (k, request) in get(c, "/resources/requests")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let limit = limits.and_then(|l| l.get(k)).and_then(quantity::of);
            if let (Some(r), Some(l)) = (quantity::of(request), limit) {
                if r > l {
                    let shown = limits
                        .and_then(|l| l.get(k))
                        .map(|v| v.as_str().map_or(v.to_string(), str::to_owned))
                        .unwrap_or_default();
                    out.push(Cause::invalid(
                        format!("{}[{k}]", field(i, ".resources.requests")),
                        request,
                        format!("must be less than or equal to {k} limit of {shown}"),
                    ));
                }
            }
        }
    }
}

fn deployment(object: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
    if let Some(r) = get(object, "/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r < 0)
    {
        out.push(Cause::invalid(
            "spec.replicas",
            &json!(r),
            "must be greater than or equal to 0",
        ));
    }
    let selector = get(object, "/spec/selector").cloned().unwrap_or(json!({}));
    let empty = ["matchLabels", "matchExpressions"].iter().all(|k| {
        selector.get(k).is_none_or(|v| {
            v.is_null()
                || v.as_object().is_some_and(|m| m.is_empty())
                || v.as_array().is_some_and(|a| a.is_empty())
        })
    });
    let labels = get(object, "/spec/template/metadata/labels");
    out.extend(check_labels(labels, "spec.template.metadata.labels"));
    if empty {
        out.push(Cause::invalid(
            "spec.selector",
            &selector,
            "empty selector is invalid for deployment",
        ));
    } else if !selects(&selector, labels) {
        out.push(Cause::invalid(
            "spec.template.metadata.labels",
            labels.unwrap_or(&json!({})),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(policy) =
        get(object, "/spec/template/spec/restartPolicy").filter(|p| *p != "Always")
    {
        out.push(Cause::new(
            "FieldValueNotSupported",
            "spec.template.spec.restartPolicy",
            format!("Unsupported value: {policy}: supported values: \"Always\""),
        ));
    }
    containers("/spec/template/spec", object, out);
    if let Some(before) = old.and_then(|o| get(o, "/spec/selector")) {
        if *before != selector {
            out.push(Cause::immutable("spec.selector", &selector));
        }
    }
}

fn service(object: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
    let kind = get(object, "/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let headless = get(object, "/spec/clusterIP").is_some_and(|ip| ip == "None");
    let ports: Vec<(usize, &Value)> = items(object, "/spec/ports").collect();
    if kind == "ExternalName" {
        if get(object, "/spec/externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            out.push(Cause::required("spec.externalName"));
        }
    } else if ports.is_empty() && !headless {
        out.push(Cause::required("spec.ports"));
    }
    let mut names = Vec::new();
    for (i, p) in &ports {
        let field = |rest: &str| format!("spec.ports[{i}]{rest}");
        match p["port"].as_i64() {
            Some(n) if (1..=65535).contains(&n) => {}
            _ => out.push(Cause::invalid(
                field(".port"),
                &p["port"],
                "must be between 1 and 65535, inclusive",
            )),
        }
        if let Some(t) = p["targetPort"]
            .as_i64()
            .filter(|t| !(1..=65535).contains(t))
        {
            out.push(Cause::invalid(
                field(".targetPort"),
                &json!(t),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let name = p["name"].as_str().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            out.push(Cause::required(field(".name")));
        }
        if !name.is_empty() {
            out.extend(check_name(
                super::kinds::NameRule::Label1123,
                name,
                &field(".name"),
            ));
            if names.contains(&name) {
                out.push(Cause::new(
                    "FieldValueDuplicate",
                    field(".name"),
                    format!("Duplicate value: \"{name}\""),
                ));
            }
            names.push(name);
        }
    }
    let before = old
        .and_then(|o| get(o, "/spec/clusterIP"))
        .filter(|ip| ip.as_str().is_some_and(|s| !s.is_empty()));
    if let (Some(before), Some(now)) = (before, get(object, "/spec/clusterIP")) {
        if before != now {
            out.push(Cause::immutable("spec.clusterIP", now));
        }
    }
}

fn claim(object: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
    if items(object, "/spec/accessModes").next().is_none() {
        out.push(Cause::new(
            "FieldValueRequired",
            "spec.accessModes",
            "Required value: at least 1 access mode is required",
        ));
    }
    let storage = get(object, "/spec/resources/requests/storage");
    if storage.is_none() {
        out.push(Cause::required("spec.resources[storage]"));
    }
    quantities(
        get(object, "/spec/resources/requests"),
        "spec.resources.requests",
        out,
    );
    quantities(
        get(object, "/spec/resources/limits"),
        "spec.resources.limits",
        out,
    );
    let Some(old) = old else {
        return;
    };
    let without_requests = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or_default();
        if let Some(r) = spec.get_mut("resources").and_then(Value::as_object_mut) {
            r.remove("requests");
        }
        spec
    };
    if without_requests(old) != without_requests(object) {
        out.push(Cause::new("FieldValueForbidden", "spec", "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"));
    }
    let before = get(old, "/spec/resources/requests/storage").and_then(quantity::of);
    if let (Some(before), Some(now)) = (before, storage.and_then(quantity::of)) {
        if now < before {
            out.push(Cause::new(
                "FieldValueForbidden",
                "spec.resources.requests.storage",
                "Forbidden: field can not be less than status.capacity",
            ));
        }
    }
}

fn ingress(object: &Value, out: &mut Vec<Cause>) {
    for (i, rule) in items(object, "/spec/rules") {
        if let Some(host) = rule["host"].as_str().filter(|h| !h.is_empty()) {
            if !is_subdomain(host.strip_prefix("*.").unwrap_or(host)) {
                out.push(Cause::invalid(format!("spec.rules[{i}].host"), &rule["host"], "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"));
            }
        }
        for (j, path) in items(rule, "/http/paths") {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let kind = path["pathType"].as_str();
            if kind.is_none() {
                out.push(Cause::new(
                    "FieldValueRequired",
                    format!("{field}.pathType"),
                    "Required value: pathType must be specified",
                ));
            }
            if matches!(kind, Some("Prefix" | "Exact"))
                && !path["path"].as_str().is_some_and(|p| p.starts_with('/'))
            {
                out.push(Cause::invalid(
                    format!("{field}.path"),
                    &path["path"],
                    "must be an absolute path",
                ));
            }
        }
    }
}

/// Everything kube-apiserver's validation finds wrong with `object` of
/// `kind` (already schema-valid); `old` is the stored object on an update.
pub(crate) fn check(kind: &Kind, object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    out.extend(check_name(kind.name_rule, name, "metadata.name"));
    out.extend(check_labels(
        get(object, "/metadata/labels"),
        "metadata.labels",
    ));
    match kind.kind {
        "Deployment" => deployment(object, old, &mut out),
        "Service" => service(object, old, &mut out),
        "PersistentVolumeClaim" => claim(object, old, &mut out),
        "Ingress" => ingress(object, &mut out),
        "ResourceQuota" => quantities(get(object, "/spec/hard"), "spec.hard", &mut out),
        "LimitRange" => {
            for (i, limit) in items(object, "/spec/limits") {
                for part in [
                    "max",
                    "min",
                    "default",
                    "defaultRequest",
                    "maxLimitRequestRatio",
                ] {
                    quantities(
                        limit.get(part),
                        &format!("spec.limits[{i}].{part}"),
                        &mut out,
                    );
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kinds::{DEPLOYMENTS, PVCS, SERVICES};

    fn deployment() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx:1.27", "resources": {"limits": {"memory": "256Mi"}, "requests": {"memory": "128Mi"}}}]}}}})
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn deployments() {
        assert_eq!(check(DEPLOYMENTS, &deployment(), None), vec![]);
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        assert_eq!(
            fields(&check(DEPLOYMENTS, &d, None)),
            ["spec.template.metadata.labels"]
        );
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] =
            json!("512MB");
        assert_eq!(
            fields(&check(DEPLOYMENTS, &d, None)),
            [
                "spec.replicas",
                "spec.template.spec.containers[0].resources.limits[memory]"
            ]
        );
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] =
            json!("1Gi");
        assert_eq!(
            fields(&check(DEPLOYMENTS, &d, None)),
            ["spec.template.spec.containers[0].resources.requests[memory]"]
        );
        let mut d = deployment();
        d["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        let old = deployment();
        assert!(fields(&check(DEPLOYMENTS, &d, Some(&old))).contains(&"spec.selector"));
        let mut d = deployment();
        d["metadata"]["name"] = json!("Web");
        assert_eq!(fields(&check(DEPLOYMENTS, &d, None)), ["metadata.name"]);
    }

    #[test]
    fn services_and_claims() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "clusterIP": "10.96.0.10"}});
        assert_eq!(check(SERVICES, &svc, None), vec![]);
        let mut moved = svc.clone();
        moved["spec"]["clusterIP"] = json!("10.96.0.11");
        assert_eq!(
            fields(&check(SERVICES, &moved, Some(&svc))),
            ["spec.clusterIP"]
        );
        let bad = json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 0}, {"port": 81, "name": "b"}]}});
        assert_eq!(
            fields(&check(SERVICES, &bad, None)),
            ["metadata.name", "spec.ports[0].port", "spec.ports[0].name"]
        );
        let pvc = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(check(PVCS, &pvc, None), vec![]);
        let mut bigger = pvc.clone();
        bigger["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert_eq!(check(PVCS, &bigger, Some(&pvc)), vec![]);
        assert_eq!(
            fields(&check(PVCS, &pvc, Some(&bigger))),
            ["spec.resources.requests.storage"]
        );
        let mut other = pvc.clone();
        other["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(fields(&check(PVCS, &other, Some(&pvc))), ["spec"]);
    }
}
