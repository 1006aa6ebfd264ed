//! The Kubernetes API server simulator over real HTTPS on loopback (the
//! harness trusts only its cluster CA): server-side apply, validation,
//! optimistic concurrency, list chunking, namespace termination, the scale
//! subresource, quota figures, faults and the log. Authentication and the
//! certificate chain: kube_sim_auth.rs.

use crate::kube_http::*;
use std::collections::BTreeMap;
use std::time::Duration;

use panel1_sims::kube::KubeConfig;
use panel1_sims::{Fault, FaultRule};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn server_side_apply_creates_merges_and_detects_conflicts() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    let (s, created) = h.apply(WEB, "panel1", &deployment("web", 2)).await;
    assert_eq!(s, 201, "{created}");
    let meta = &created["metadata"];
    assert_eq!(
        (meta["generation"].as_i64(), meta["namespace"].as_str()),
        (Some(1), Some("t1"))
    );
    let owner = &meta["managedFields"][0];
    assert_eq!(
        (owner["manager"].as_str(), owner["operation"].as_str()),
        (Some("panel1"), Some("Apply"))
    );
    assert_eq!(created["status"]["readyReplicas"], 2);
    assert_eq!(created["status"]["observedGeneration"], 1);

    // The same body again changes nothing: the same resourceVersion.
    let again = h.apply(WEB, "panel1", &deployment("web", 2)).await;
    assert_eq!(again, (200, created.clone()));

    // A change bumps resourceVersion and generation.
    let (s, changed) = h.apply(WEB, "panel1", &deployment("web", 3)).await;
    assert_eq!(s, 200);
    assert!(rv(&changed) > rv(&created));
    assert_eq!(changed["metadata"]["generation"], 2);
    assert_eq!(changed["status"]["availableReplicas"], 3);

    // Apply needs a field manager.
    let r = h
        .send(Method::PATCH, WEB, Some(APPLY), Some(&deployment("web", 3)))
        .await;
    assert_eq!(reason(&r), (400, "BadRequest"));
    assert!(message(&r).contains("fieldManager is required"), "{}", r.1);

    // Another manager setting replicas differently conflicts, unless forced.
    let r = h.apply(WEB, "ops", &deployment("web", 5)).await;
    assert_eq!(reason(&r), (409, "Conflict"), "{}", r.1);
    assert!(
        message(&r).contains(".spec.replicas") && message(&r).contains("\"panel1\""),
        "{}",
        r.1
    );
    let (s, v) = h
        .apply(&format!("{WEB}?force=true"), "ops", &deployment("web", 5))
        .await;
    assert_eq!((s, v["spec"]["replicas"].as_i64()), (200, Some(5)), "{v}");
    let fields = v["metadata"]["managedFields"].as_array().unwrap();
    let managers: Vec<&str> = fields
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["panel1", "ops"]);
    assert!(
        fields[0]["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "taken over"
    );

    // A merge patch is an update; labels do not bump the generation.
    let patch = json!({"metadata": {"labels": {"extra": "yes"}}});
    let (s, v) = h
        .merge(&format!("{WEB}?fieldManager=kubectl"), &patch)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["metadata"]["labels"],
        json!({"app": "web", "extra": "yes"})
    );
    assert_eq!(v["metadata"]["generation"], 3);
    let r = h
        .send(
            Method::PATCH,
            WEB,
            Some("application/json-patch+json"),
            Some(&json!([])),
        )
        .await;
    assert_eq!(r.0, 415);
    let r = h
        .send(Method::PATCH, WEB, Some("text/plain"), Some(&json!({})))
        .await;
    assert_eq!(reason(&r), (415, "UnsupportedMediaType"));
    assert!(h.sim.object("deployments", "t1", "web").is_some());
    h.sim.shutdown().await;
}

#[tokio::test]
async fn invalid_objects_are_refused_naming_the_field() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    let mut d = deployment("web", 1);
    d["spec"]["replicas"] = json!("two");
    let r = h.apply(WEB, "panel1", &d).await;
    assert_eq!(reason(&r), (422, "Invalid"), "{}", r.1);
    assert_eq!(
        (r.1["code"].as_i64(), cause(&r)),
        (Some(422), "spec.replicas")
    );
    assert_eq!(r.1["details"]["kind"], "Deployment");
    assert!(
        message(&r).starts_with("Deployment.apps \"web\" is invalid: spec.replicas"),
        "{}",
        r.1
    );

    // An unknown field (strict schemas): refused, or dropped when asked.
    let mut d = deployment("web", 1);
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy2"] = json!("Always");
    let r = h.post(DEPLOYMENTS, &d).await;
    assert_eq!(
        (r.0, cause(&r)),
        (422, "spec.template.spec.containers[0].imagePullPolicy2")
    );
    let (s, v) = h
        .post(&format!("{DEPLOYMENTS}?fieldValidation=Ignore"), &d)
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["spec"]["template"]["spec"]["containers"][0]
        .get("imagePullPolicy2")
        .is_none());

    // kube-apiserver's own rules: names, selectors, quantities.
    let r = h
        .apply("/api/v1/namespaces/Bad_Name", "panel1", &json!({}))
        .await;
    assert_eq!((r.0, cause(&r)), (422, "metadata.name"));
    let mut d = deployment("db", 1);
    d["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
    let r = h.apply(&format!("{DEPLOYMENTS}/db"), "panel1", &d).await;
    assert_eq!((r.0, cause(&r)), (422, "spec.template.metadata.labels"));
    let mut d = deployment("db", 1);
    d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] =
        json!("512MB");
    let r = h.apply(&format!("{DEPLOYMENTS}/db"), "panel1", &d).await;
    assert_eq!(r.0, 422, "{}", r.1);
    assert!(message(&r).contains("limits[memory]"), "{}", r.1);

    // Identity against the URL, and bodies that are no object: 400.
    let r = h
        .apply(
            &format!("{DEPLOYMENTS}/other"),
            "panel1",
            &deployment("web", 1),
        )
        .await;
    assert_eq!(reason(&r), (400, "BadRequest"));
    let mut d = deployment("web", 1);
    d["metadata"]["namespace"] = json!("t2");
    assert_eq!(h.apply(WEB, "panel1", &d).await.0, 400);
    assert_eq!(
        h.send(Method::POST, DEPLOYMENTS, Some(JSON), None).await.0,
        400
    );
    let refused = h
        .sim
        .request_log()
        .into_iter()
        .filter(|r| !r.well_formed())
        .count();
    assert_eq!(refused, 8, "refused requests are marked in the log");
    h.sim.shutdown().await;
}

#[tokio::test]
async fn creates_conflict_and_updates_need_the_latest_version() {
    let h = Kube::start().await;
    let r = h.post(DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!((r.0, message(&r)), (404, "namespaces \"t1\" not found"));
    h.namespace("t1").await;
    let (s, created) = h.post(DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!(s, 201);
    let r = h.post(DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!(reason(&r), (409, "AlreadyExists"));
    assert_eq!(message(&r), "deployments.apps \"web\" already exists");
    assert_eq!(
        r.1["details"],
        json!({"name": "web", "group": "apps", "kind": "deployments"})
    );

    let mut update = deployment("web", 4);
    update["metadata"]["resourceVersion"] = json!(rv(&created).to_string());
    let (s, v) = h.put(WEB, &update).await;
    assert_eq!((s, v["spec"]["replicas"].as_i64()), (200, Some(4)), "{v}");
    assert_eq!(v["metadata"]["uid"], created["metadata"]["uid"]);
    // The same resourceVersion again is stale now.
    let r = h.put(WEB, &update).await;
    assert_eq!(reason(&r), (409, "Conflict"));
    assert_eq!(message(&r), "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again");

    let r = h.get(&format!("{DEPLOYMENTS}/nope")).await;
    assert_eq!(
        (r.0, message(&r)),
        (404, "deployments.apps \"nope\" not found")
    );
    assert_eq!(r.1["details"]["kind"], "deployments");
    let (s, v) = h.delete(WEB).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("Success")));
    assert!(h.sim.object("deployments", "t1", "web").is_none());
    assert_eq!(reason(&h.delete(WEB).await), (404, "NotFound"));
    let r = h
        .send(Method::POST, "/api/v1/namespaces/t1", None, None)
        .await;
    assert_eq!(reason(&r), (405, "MethodNotAllowed"));
    assert_eq!(h.get("/apis/apps/v1/namespaces/t1/widgets").await.0, 404);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn lists_select_by_label_and_page_through_everything_once() {
    let h = Kube::start().await;
    for i in 0..25 {
        let labels = json!({"panel1.io/managed": "true", "shard": (i % 2).to_string()});
        let ns = json!({"metadata": {"name": format!("tenant-{i:02}"), "labels": labels}});
        assert_eq!(h.post("/api/v1/namespaces", &ns).await.0, 201);
    }
    h.namespace("other").await;
    let (mut seen, mut next, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let mut path =
            "/api/v1/namespaces?labelSelector=panel1.io%2Fmanaged%3Dtrue&limit=10".to_string();
        if let Some(c) = &next {
            path.push_str(&format!("&continue={c}"));
        }
        let (s, v) = h.get(&path).await;
        assert_eq!(s, 200, "{v}");
        pages += 1;
        let items = v["items"].as_array().unwrap();
        seen.extend(
            items
                .iter()
                .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        match v["metadata"]["continue"].as_str() {
            Some(c) => next = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("tenant-{i:02}")).collect();
    assert_eq!((seen, pages), (expected, 3));

    // Without a selector the remaining count is given; items carry no kind.
    let (_, v) = h.get("/api/v1/namespaces?limit=20").await;
    assert_eq!(v["metadata"]["remainingItemCount"], 6);
    assert!(v["items"][0].get("kind").is_none());
    let count = |v: &Value| v["items"].as_array().unwrap().len();
    let (_, v) = h
        .get("/api/v1/namespaces?labelSelector=shard%20in%20(1),panel1.io/managed")
        .await;
    assert_eq!(count(&v), 12);
    let (_, v) = h
        .get("/api/v1/namespaces?labelSelector=shard!%3D0,panel1.io/managed%3D%3Dtrue")
        .await;
    assert_eq!(count(&v), 12);
    let (_, v) = h
        .get("/api/v1/namespaces?labelSelector=!panel1.io/managed")
        .await;
    assert_eq!(v["items"][0]["metadata"]["name"], "other");

    let r = h
        .get("/api/v1/namespaces?limit=5&continue=bm90LWEtdG9rZW4")
        .await;
    assert_eq!(reason(&r), (410, "Expired"));
    let r = h
        .get("/api/v1/namespaces?labelSelector=shard%20in%20(1")
        .await;
    assert_eq!(reason(&r), (400, "BadRequest"));
    h.sim.shutdown().await;
}

#[tokio::test]
async fn a_deleted_namespace_terminates_then_takes_its_content() {
    let config = KubeConfig {
        terminating_for: Duration::from_millis(400),
        ..KubeConfig::default()
    };
    let h = Kube::with(config).await;
    h.namespace("t1").await;
    assert_eq!(h.apply(WEB, "panel1", &deployment("web", 1)).await.0, 201);
    let (s, v) = h
        .delete("/api/v1/namespaces/t1?propagationPolicy=Background")
        .await;
    assert_eq!(
        (s, v["status"]["phase"].as_str()),
        (200, Some("Terminating")),
        "{v}"
    );
    assert!(v["metadata"]["deletionTimestamp"].is_string());

    let (s, v) = h.get("/api/v1/namespaces/t1").await;
    assert_eq!(
        (s, v["status"]["phase"].as_str()),
        (200, Some("Terminating"))
    );
    assert_eq!(h.sim.namespaces()[0]["status"]["phase"], "Terminating");
    let (_, list) = h.get("/api/v1/namespaces").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // New content is refused while it terminates.
    let r = h
        .apply(&format!("{DEPLOYMENTS}/db"), "panel1", &deployment("db", 1))
        .await;
    assert_eq!(reason(&r), (403, "Forbidden"), "{}", r.1);
    assert!(message(&r)
        .ends_with("unable to create new content in namespace t1 because it is being terminated"));
    // Deleting again: kube-apiserver's 409 while the namespace controller works.
    let r = h.delete("/api/v1/namespaces/t1").await;
    assert_eq!(reason(&r), (409, "Conflict"), "{}", r.1);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = h.get("/api/v1/namespaces/t1").await;
    assert_eq!((r.0, message(&r)), (404, "namespaces \"t1\" not found"));
    assert_eq!(h.get(WEB).await.0, 404);
    assert!(h.sim.object("deployments", "t1", "web").is_none());
    assert!(h.sim.namespaces().is_empty());
    h.sim.shutdown().await;
}

#[tokio::test]
async fn the_scale_subresource_reads_and_sets_replicas() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    h.apply(WEB, "panel1", &deployment("web", 2)).await;
    let scale = format!("{WEB}/scale");
    let (s, v) = h.get(&scale).await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["kind"].as_str(), v["apiVersion"].as_str()),
        (Some("Scale"), Some("autoscaling/v1"))
    );
    assert_eq!(
        (
            v["spec"]["replicas"].as_i64(),
            v["status"]["selector"].as_str()
        ),
        (Some(2), Some("app=web"))
    );
    let (s, v) = h.merge(&scale, &json!({"spec": {"replicas": 0}})).await;
    assert_eq!((s, v["spec"]["replicas"].as_i64()), (200, Some(0)), "{v}");
    let d = h.sim.object("deployments", "t1", "web").unwrap();
    assert_eq!(
        (
            d["spec"]["replicas"].as_i64(),
            d["metadata"]["generation"].as_i64()
        ),
        (Some(0), Some(2))
    );
    assert!(
        d["status"].get("readyReplicas").is_none()
            && d["status"].get("availableReplicas").is_none()
    );
    assert_eq!(d["metadata"]["managedFields"][1]["subresource"], "scale");
    assert_eq!(
        h.merge(&scale, &json!({"spec": {"replicas": -1}})).await.0,
        422
    );
    assert_eq!(h.get(&format!("{DEPLOYMENTS}/nope/scale")).await.0, 404);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn quotas_report_what_is_used_and_other_kinds_their_status() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    let hard = json!({"requests.cpu": "2", "requests.memory": "4Gi", "pods": "10"});
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "plan"}, "spec": {"hard": hard}});
    let (s, v) = h
        .apply(
            "/api/v1/namespaces/t1/resourcequotas/plan",
            "panel1",
            &quota,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v["status"]["used"],
        json!({"pods": "0", "requests.cpu": "0", "requests.memory": "0"})
    );
    let used = [("requests.cpu", "500m"), ("pods", "2")];
    let used: BTreeMap<String, String> = used
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.sim.set_quota_used("t1", "plan", used).unwrap();
    let (_, v) = h.get("/api/v1/namespaces/t1/resourcequotas/plan").await;
    assert_eq!(
        v["status"]["used"],
        json!({"pods": "2", "requests.cpu": "500m", "requests.memory": "0"})
    );
    assert_eq!(v["status"]["hard"], hard);
    assert!(h.sim.set_quota_used("t1", "nope", BTreeMap::new()).is_err());

    let limit =
        json!({"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}});
    let limits = json!({"metadata": {"name": "defaults"}, "spec": {"limits": [limit]}});
    assert_eq!(
        h.apply(
            "/api/v1/namespaces/t1/limitranges/defaults",
            "panel1",
            &limits
        )
        .await
        .0,
        201
    );
    let ports = json!([{"name": "http", "port": 80, "targetPort": 8080}]);
    let svc =
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": ports}});
    let (s, v) = h
        .apply("/api/v1/namespaces/t1/services/web", "panel1", &svc)
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .starts_with("10.96."));
    // Re-applying without a cluster IP keeps the allocated one; nothing changes.
    let (s, again) = h
        .apply("/api/v1/namespaces/t1/services/web", "panel1", &svc)
        .await;
    assert_eq!((s, rv(&again)), (200, rv(&v)));
    let storage = json!({"requests": {"storage": "1Gi"}});
    let pvc = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": storage}});
    let (s, v) = h
        .apply(
            "/api/v1/namespaces/t1/persistentvolumeclaims/data",
            "panel1",
            &pvc,
        )
        .await;
    assert_eq!(
        (s, v["status"]["phase"].as_str()),
        (201, Some("Bound")),
        "{v}"
    );
    let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
    let rule = json!({"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}});
    let ing = json!({"metadata": {"name": "web"}, "spec": {"rules": [rule]}});
    let (s, v) = h
        .apply(
            "/apis/networking.k8s.io/v1/namespaces/t1/ingresses/web",
            "panel1",
            &ing,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(h.sim.objects("ingresses", "t1").len(), 1);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn faults_shape_answers_and_a_stalled_change_still_lands() {
    let h = Kube::start().await;
    h.namespace("t1").await;
    let key = "PATCH /apis/apps/v1/namespaces/{namespace}/deployments/{name}";
    let path = format!("{WEB}?fieldManager=panel1");
    let body = deployment("web", 1);
    let apply = || h.request(Method::PATCH, &path, Some(APPLY), Some(&body));

    h.sim
        .inject(FaultRule::next(key, Fault::ServerError(503), 1));
    let r = apply().send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("<html>"));
    assert!(h.sim.object("deployments", "t1", "web").is_none());

    h.sim
        .inject(FaultRule::next(key, Fault::ResetConnection, 1));
    assert!(apply().send().await.is_err());
    assert!(h.sim.object("deployments", "t1", "web").is_none());

    h.sim.inject(FaultRule::next(
        key,
        Fault::StallAfterApply(Duration::from_secs(3)),
        1,
    ));
    let r = apply().timeout(Duration::from_millis(400)).send().await;
    assert!(r.unwrap_err().is_timeout());
    assert!(
        h.sim.object("deployments", "t1", "web").is_some(),
        "the change landed"
    );

    let get_one = "GET /apis/apps/v1/namespaces/{namespace}/deployments/{name}";
    h.sim.inject(FaultRule::next(get_one, Fault::WrongBody, 1));
    assert_eq!(h.get(WEB).await, (200, json!([])));
    let list = "GET /apis/apps/v1/namespaces/{namespace}/deployments";
    h.sim.inject(FaultRule::next(list, Fault::WrongBody, 1));
    let (s, v) = h.get(DEPLOYMENTS).await;
    assert_eq!(
        (s, v["kind"].as_str(), v.get("code")),
        (200, Some("Status"), None)
    );
    assert_eq!(h.get(WEB).await.0, 200, "faults used up");

    assert_eq!(h.sim.count_calls(key), 3);
    let calls: Vec<(Option<String>, u16)> = h
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.function == key)
        .map(|r| (r.fault, r.status))
        .collect();
    assert!(calls.iter().all(|(fault, _)| fault.is_some()), "{calls:?}");
    assert_eq!(
        calls.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [503, 0, 201]
    );
    h.sim.shutdown().await;
}
