//! What the API server's defaulting and the cluster's controllers make of
//! an object: default field values (as kube-apiserver fills them in on
//! every write), allocated cluster IPs and node ports, and the `status`
//! each kind reports once its controllers have caught up (at once here).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::kinds::Kind;
use super::store::Store;

fn set_default(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        if map.get(key).is_none_or(Value::is_null) {
            map.insert(key.to_owned(), value);
        }
    }
}

/// `object[key]` as a map, created when missing.
fn section<'v>(object: &'v mut Value, key: &str) -> Option<&'v mut Value> {
    let map = object.as_object_mut()?;
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_owned(), json!({}));
    }
    map.get_mut(key)
}

fn deployment_defaults(object: &mut Value) {
    let Some(spec) = section(object, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = section(spec, "strategy") {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            if let Some(rolling) = section(strategy, "rollingUpdate") {
                set_default(rolling, "maxUnavailable", json!("25%"));
                set_default(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    let Some(pod) = spec.pointer_mut("/template/spec").filter(|p| p.is_object()) else {
        return;
    };
    set_default(pod, "restartPolicy", json!("Always"));
    set_default(pod, "dnsPolicy", json!("ClusterFirst"));
    set_default(pod, "schedulerName", json!("default-scheduler"));
    set_default(pod, "terminationGracePeriodSeconds", json!(30));
    set_default(pod, "securityContext", json!({}));
    for c in pod
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter(|c| c.is_object())
    {
        let image = c["image"].as_str().unwrap_or_default();
        let tag_latest = !image.contains(':') || image.ends_with(":latest");
        let pull = if tag_latest && !image.contains('@') {
            "Always"
        } else {
            "IfNotPresent"
        };
        set_default(c, "imagePullPolicy", json!(pull));
        set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
        set_default(c, "terminationMessagePolicy", json!("File"));
        for port in c
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter(|p| p.is_object())
        {
            set_default(port, "protocol", json!("TCP"));
        }
    }
}

fn next_cluster_ip(store: &mut Store) -> String {
    // 10.96.0.1 is the `kubernetes` service; hand out from .10 on.
    let n = store.allocated_ips + 10;
    store.allocated_ips += 1;
    format!("10.96.{}.{}", n / 250, n % 250 + 2)
}

fn service_defaults(object: &mut Value, old: Option<&Value>, store: &mut Store) {
    let Some(spec) = section(object, "spec") else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_owned();
    if kind != "ExternalName" {
        // An update without a cluster IP keeps the allocated one.
        let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).cloned();
        if spec
            .get("clusterIP")
            .is_none_or(|ip| ip.as_str().is_none_or(str::is_empty))
        {
            let ip = match old_ip {
                Some(ip) => ip,
                None => json!(next_cluster_ip(store)),
            };
            spec["clusterIP"] = ip;
        }
        let ip = spec["clusterIP"].clone();
        set_default(spec, "clusterIPs", json!([ip]));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    let node_ports = kind == "NodePort" || kind == "LoadBalancer";
    if node_ports {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    let old_ports: Vec<Value> = old
        .and_then(|o| o.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter(|p| p.is_object())
    {
        set_default(port, "protocol", json!("TCP"));
        let number = port["port"].clone();
        set_default(port, "targetPort", number.clone());
        if node_ports && port.get("nodePort").is_none() {
            let kept = old_ports
                .iter()
                .find(|o| o["port"] == number && o["protocol"] == port["protocol"])
                .and_then(|o| o.get("nodePort").cloned());
            let allocated = kept.unwrap_or_else(|| {
                store.allocated_ips += 1;
                json!(30000 + store.allocated_ips % 2768)
            });
            port["nodePort"] = allocated;
        }
    }
}

/// Fill in what kube-apiserver defaults. `old` is the stored object on an
/// update (`None` on create, when admission's defaults apply too).
pub(crate) fn apply_defaults(
    kind: &Kind,
    object: &mut Value,
    old: Option<&Value>,
    store: &mut Store,
) {
    match kind.kind {
        "Namespace" => {
            let name = object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or_default();
            if let Some(labels) = object
                .get_mut("metadata")
                .and_then(|m| section(m, "labels"))
            {
                labels["kubernetes.io/metadata.name"] = name;
            }
            if let Some(spec) = section(object, "spec") {
                set_default(spec, "finalizers", json!(["kubernetes"]));
            }
        }
        "Deployment" => deployment_defaults(object),
        "Service" => service_defaults(object, old, store),
        "PersistentVolumeClaim" => {
            if let Some(spec) = section(object, "spec") {
                set_default(spec, "volumeMode", json!("Filesystem"));
                // The DefaultStorageClass admission plugin, on create only.
                if old.is_none() {
                    set_default(spec, "storageClassName", json!("standard"));
                }
            }
        }
        _ => {}
    }
}

/// The name a deployment's current ReplicaSet would have.
fn replica_set_name(object: &Value) -> String {
    let template = object
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_default();
    let hash = hex::encode(Sha256::digest(template.to_string().as_bytes()));
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{name}-{}", &hash[..10])
}

fn deployment_status(object: &Value) -> Value {
    let replicas = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let since = object
        .pointer("/metadata/creationTimestamp")
        .cloned()
        .unwrap_or_default();
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        object
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1)),
    );
    // Zero counts are left out, as kube-apiserver's JSON omits them.
    if replicas > 0 {
        for field in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ] {
            status.insert(field.into(), json!(replicas));
        }
    }
    status.insert("conditions".into(), json!([
        {"type": "Available", "status": "True", "lastUpdateTime": since, "lastTransitionTime": since,
         "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
        {"type": "Progressing", "status": "True", "lastUpdateTime": since, "lastTransitionTime": since,
         "reason": "NewReplicaSetAvailable",
         "message": format!("ReplicaSet \"{}\" has successfully progressed.", replica_set_name(object))},
    ]));
    Value::Object(status)
}

fn quota_status(object: &Value, used: Option<&BTreeMap<String, String>>) -> Value {
    let hard = object
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let used: Map<String, Value> = hard
        .keys()
        .map(|k| {
            let figure = used
                .and_then(|u| u.get(k))
                .map(String::as_str)
                .unwrap_or("0");
            (k.clone(), json!(figure))
        })
        .collect();
    json!({"hard": hard, "used": used})
}

/// The status controllers would report for `object`; `None` for kinds
/// without one. `quota_used` is what tests set for a ResourceQuota.
pub(crate) fn status(
    kind: &Kind,
    object: &Value,
    quota_used: Option<&BTreeMap<String, String>>,
) -> Option<Value> {
    Some(match kind.kind {
        "Namespace" => {
            let terminating = object.pointer("/metadata/deletionTimestamp").is_some();
            json!({"phase": if terminating { "Terminating" } else { "Active" }})
        }
        "Deployment" => deployment_status(object),
        "ResourceQuota" => quota_status(object, quota_used),
        "PersistentVolumeClaim" => {
            let storage = object
                .pointer("/spec/resources/requests/storage")
                .cloned()
                .unwrap_or(json!("0"));
            json!({
                "phase": "Bound",
                "accessModes": object.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
                "capacity": {"storage": storage},
            })
        }
        "Service" | "Ingress" => json!({"loadBalancer": {}}),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kinds::{DEPLOYMENTS, RESOURCE_QUOTAS, SERVICES};
    use std::time::Duration;

    #[test]
    fn defaults_and_status() {
        let mut store = Store::new(Duration::from_millis(1));
        let mut d = json!({"metadata": {"name": "web", "generation": 3}, "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx:1.27"}]}}}});
        apply_defaults(DEPLOYMENTS, &mut d, None, &mut store);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let s = status(DEPLOYMENTS, &d, None).unwrap();
        assert_eq!(
            (
                s["replicas"].clone(),
                s["readyReplicas"].clone(),
                s["observedGeneration"].clone()
            ),
            (json!(1), json!(1), json!(3))
        );
        d["spec"]["replicas"] = json!(0);
        let s = status(DEPLOYMENTS, &d, None).unwrap();
        assert!(s.get("readyReplicas").is_none() && s.get("availableReplicas").is_none());

        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
        apply_defaults(SERVICES, &mut svc, None, &mut store);
        let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_owned();
        assert!(ip.starts_with("10.96."), "{ip}");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        let mut again = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
        apply_defaults(SERVICES, &mut again, Some(&svc), &mut store);
        assert_eq!(again["spec"]["clusterIP"], ip.as_str());

        let q = json!({"spec": {"hard": {"pods": "10", "requests.cpu": "2"}}});
        let used: BTreeMap<String, String> = [("pods".to_string(), "3".to_string())].into();
        let s = status(RESOURCE_QUOTAS, &q, Some(&used)).unwrap();
        assert_eq!(s["used"], json!({"pods": "3", "requests.cpu": "0"}));
        assert_eq!(s["hard"], json!({"pods": "10", "requests.cpu": "2"}));
    }
}
