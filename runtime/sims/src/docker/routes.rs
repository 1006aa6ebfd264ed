//! The Docker Engine operations the simulator models, answering as the
//! Engine does: JSON bodies, `{"message": …}` errors, 304 for a start or
//! stop that changes nothing, 409 for a name in use.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::spec::ApiVersion;
use super::state::{new_id, Container, EngineState, Volume};

/// Status and body (`None`: no body, as for 204 and 304).
pub(crate) type Answer = (u16, Option<Value>);

pub(crate) fn error(status: u16, message: impl Into<String>) -> Answer {
    (status, Some(json!({ "message": message.into() })))
}

fn no_such(key: &str) -> Answer {
    error(404, format!("No such container: {key}"))
}

fn text<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn truthy(query: &BTreeMap<String, String>, name: &str) -> bool {
    matches!(query.get(name).map(String::as_str), Some("1" | "true"))
}

fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn summary(c: &Container) -> Value {
    json!({
        "Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image, "ImageID": "",
        "Command": "", "Created": 1_733_400_000, "Ports": [], "Labels": c.labels,
        "State": c.state, "Status": status_line(c), "HostConfig": {"NetworkMode": c.network},
        "Mounts": mounts(c),
    })
}

fn status_line(c: &Container) -> String {
    match c.state.as_str() {
        "running" => "Up 2 minutes".into(),
        "paused" => "Up 2 minutes (Paused)".into(),
        "exited" => "Exited (0) 1 second ago".into(),
        other => other.to_string(),
    }
}

fn mounts(c: &Container) -> Vec<Value> {
    c.volumes
        .iter()
        .map(|(v, target)| json!({"Type": "volume", "Name": v, "Source": format!("/var/lib/docker/volumes/{v}/_data"), "Destination": target, "Driver": "local", "Mode": "z", "RW": true, "Propagation": ""}))
        .collect()
}

fn inspect(c: &Container) -> Value {
    json!({
        "Id": c.id, "Created": c.created, "Name": format!("/{}", c.name), "Image": c.image,
        "State": {
            "Status": c.state, "Running": c.state == "running" || c.state == "paused",
            "Paused": c.state == "paused", "Restarting": false, "OOMKilled": false, "Dead": false,
            "Pid": if c.state == "running" { 4242 } else { 0 }, "ExitCode": 0, "Error": "",
        },
        "Config": {"Image": c.image, "Labels": c.labels},
        "HostConfig": {"Memory": c.memory, "NanoCpus": c.nano_cpus, "NetworkMode": c.network},
        "Mounts": mounts(c),
    })
}

pub(crate) fn call(
    key: &str,
    params: &BTreeMap<String, String>,
    query: &BTreeMap<String, String>,
    body: &Value,
    state: &mut EngineState,
    max_version: ApiVersion,
) -> Answer {
    let id_key = params.get("id").map(String::as_str).unwrap_or("");
    match key {
        "GET /version" => (
            200,
            Some(json!({
                "Platform": {"Name": "Docker Engine - Community"}, "Version": "26.1.4",
                "ApiVersion": format!("{}.{}", max_version.0, max_version.1), "MinAPIVersion": "1.24",
                "GitCommit": "de5c9cf", "GoVersion": "go1.21.11", "Os": "linux", "Arch": "amd64",
                "KernelVersion": "6.1.0-sim", "BuildTime": "2024-06-05T11:31:07.000000000+00:00",
                "Components": [],
            })),
        ),
        "POST /containers/create" => create(state, query, body),
        "GET /containers/json" => list(state, query),
        "GET /containers/{id}/json" => match state.find(id_key) {
            Some(c) => (200, Some(inspect(c))),
            None => no_such(id_key),
        },
        "POST /containers/{id}/start"
        | "POST /containers/{id}/stop"
        | "POST /containers/{id}/pause"
        | "POST /containers/{id}/unpause" => transition(state, key, id_key),
        "POST /containers/{id}/update" => {
            let Some(id) = state.find_id(id_key) else {
                return no_such(id_key);
            };
            let c = state.containers.get_mut(&id).expect("found");
            if let Some(m) = body.get("Memory").and_then(Value::as_i64) {
                c.memory = m;
            }
            if let Some(n) = body.get("NanoCpus").and_then(Value::as_i64) {
                c.nano_cpus = n;
            }
            (200, Some(json!({"Warnings": []})))
        }
        "DELETE /containers/{id}" => {
            let Some(id) = state.find_id(id_key) else {
                return no_such(id_key);
            };
            let c = &state.containers[&id];
            if (c.state == "running" || c.state == "paused") && !truthy(query, "force") {
                return error(409, format!("cannot remove container \"/{}\": container is {}: stop the container before removing or force remove", c.name, c.state));
            }
            // `v` removes anonymous volumes only: named ones stay, as in Docker.
            state.containers.remove(&id);
            (204, None)
        }
        "GET /containers/{id}/stats" => match state.find(id_key) {
            Some(c) => (200, Some(stats(c))),
            None => no_such(id_key),
        },
        "POST /volumes/create" => {
            let name = text(body, "/Name")
                .map(str::to_owned)
                .unwrap_or_else(new_id);
            let volume = state.volumes.entry(name.clone()).or_insert_with(|| Volume {
                name: name.clone(),
                labels: labels(body.get("Labels")),
            });
            (201, Some(volume_json(volume)))
        }
        "GET /volumes/{name}" => match state
            .volumes
            .get(params.get("name").map(String::as_str).unwrap_or(""))
        {
            Some(v) => (200, Some(volume_json(v))),
            None => error(404, "get volume: no such volume"),
        },
        "DELETE /volumes/{name}" => {
            let name = params.get("name").cloned().unwrap_or_default();
            if !state.volumes.contains_key(&name) {
                return error(404, format!("get {name}: no such volume"));
            }
            let users = state.users_of(&name);
            if !users.is_empty() {
                return error(
                    409,
                    format!("remove {name}: volume is in use - [{}]", users.join(", ")),
                );
            }
            state.volumes.remove(&name);
            (204, None)
        }
        "GET /networks/{id}" => {
            if state.networks.contains(id_key) {
                (
                    200,
                    Some(
                        json!({"Name": id_key, "Id": format!("{:0<64}", hex::encode(id_key)), "Driver": "bridge", "Scope": "local", "Internal": false, "Attachable": true, "Ingress": false, "EnableIPv6": false, "Containers": {}, "Options": {}, "Labels": {}, "Created": "2024-06-05T11:31:07Z", "IPAM": {"Driver": "default", "Config": [], "Options": {}}}),
                    ),
                )
            } else {
                error(404, format!("network {id_key} not found"))
            }
        }
        other => error(501, format!("the simulator does not model {other}")),
    }
}

fn volume_json(v: &Volume) -> Value {
    json!({"Name": v.name, "Driver": "local", "Mountpoint": format!("/var/lib/docker/volumes/{}/_data", v.name), "Labels": v.labels, "Scope": "local", "Options": {}})
}

fn create(state: &mut EngineState, query: &BTreeMap<String, String>, body: &Value) -> Answer {
    let name = query
        .get("name")
        .cloned()
        .unwrap_or_else(|| format!("sim_{}", &new_id()[..8]));
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        return error(
            400,
            format!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        );
    }
    if let Some(existing) = state.find(&name).filter(|c| c.name == name) {
        return error(409, format!("Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.", existing.id));
    }
    let image = text(body, "/Image").unwrap_or("").to_owned();
    if !state.images.contains(&image) {
        return error(404, format!("No such image: {image}"));
    }
    let network = text(body, "/HostConfig/NetworkMode")
        .unwrap_or("bridge")
        .to_owned();
    if !state.networks.contains(&network) {
        return error(404, format!("network {network} not found"));
    }
    let mut volumes = Vec::new();
    for m in body
        .pointer("/HostConfig/Mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some("volume"), Some(src), Some(dst)) =
            (text(m, "/Type"), text(m, "/Source"), text(m, "/Target"))
        {
            volumes.push((src.to_owned(), dst.to_owned()));
        }
    }
    // A named volume that does not exist yet is created, as Docker does.
    for (v, _) in &volumes {
        state.volumes.entry(v.clone()).or_insert_with(|| Volume {
            name: v.clone(),
            labels: BTreeMap::new(),
        });
    }
    let c = Container {
        id: new_id(),
        name,
        image,
        labels: labels(body.get("Labels")),
        state: "created".into(),
        memory: body
            .pointer("/HostConfig/Memory")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        nano_cpus: body
            .pointer("/HostConfig/NanoCpus")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        network,
        volumes,
        created: chrono::Utc::now().to_rfc3339(),
        usage: Default::default(),
    };
    let answer = (201, Some(json!({"Id": c.id, "Warnings": []})));
    state.containers.insert(c.id.clone(), c);
    answer
}

/// `filters` is JSON: `{"label": ["k=v", "k"], "name": ["n"], "status": ["running"]}`.
fn list(state: &EngineState, query: &BTreeMap<String, String>) -> Answer {
    let filters: BTreeMap<String, Vec<String>> = match query.get("filters") {
        Some(f) => match serde_json::from_str(f) {
            Ok(v) => v,
            Err(e) => return error(400, format!("invalid filter: {e}")),
        },
        None => BTreeMap::new(),
    };
    let all = truthy(query, "all");
    let wanted = |c: &&Container| {
        let running = c.state == "running" || c.state == "paused";
        let labels_ok =
            filters
                .get("label")
                .into_iter()
                .flatten()
                .all(|f| match f.split_once('=') {
                    Some((k, v)) => c.labels.get(k).map(String::as_str) == Some(v),
                    None => c.labels.contains_key(f),
                });
        let names_ok = filters
            .get("name")
            .is_none_or(|n| n.iter().any(|n| c.name.contains(n.trim_start_matches('/'))));
        (all || running) && labels_ok && names_ok
    };
    let mut items: Vec<Value> = state
        .containers
        .values()
        .filter(wanted)
        .map(summary)
        .collect();
    if let Some(limit) = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
    {
        items.truncate(limit);
    }
    (200, Some(Value::Array(items)))
}

fn transition(state: &mut EngineState, key: &str, id_key: &str) -> Answer {
    let Some(id) = state.find_id(id_key) else {
        return no_such(id_key);
    };
    let c = state.containers.get_mut(&id).expect("found");
    let action = key.rsplit('/').next().unwrap_or("");
    let next = match (action, c.state.as_str()) {
        ("start", "created" | "exited") => "running",
        ("start", "running") => return (304, None),
        ("start", "paused") => {
            return error(409, "cannot start a paused container, try unpause instead")
        }
        ("stop", "running" | "paused") => "exited",
        ("stop", "created" | "exited") => return (304, None),
        ("pause", "running") => "paused",
        ("pause", "paused") => return error(409, format!("Container {id} is already paused")),
        ("pause", _) => return error(409, format!("Container {id} is not running")),
        ("unpause", "paused") => "running",
        ("unpause", _) => return error(409, format!("Container {id} is not paused")),
        (_, other) => return error(409, format!("container is {other}")),
    };
    c.state = next.into();
    if next == "running" {
        // Something to report: a running container uses resources.
        c.usage.cpu_total_ns += 1_500_000_000;
        c.usage.memory_bytes = c.usage.memory_bytes.max(48 << 20);
    }
    (204, None)
}

fn stats(c: &Container) -> Value {
    let u = &c.usage;
    json!({
        "read": chrono::Utc::now().to_rfc3339(), "id": c.id, "name": format!("/{}", c.name),
        "cpu_stats": {"cpu_usage": {"total_usage": u.cpu_total_ns}, "system_cpu_usage": 1_000_000_000_000u64, "online_cpus": 2},
        "memory_stats": {"usage": u.memory_bytes, "limit": if c.memory > 0 { c.memory as u64 } else { 24u64 << 30 }},
        "networks": {"eth0": {"rx_bytes": u.rx_bytes, "tx_bytes": u.tx_bytes}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 8, "minor": 0, "op": "read", "value": u.read_bytes},
            {"major": 8, "minor": 0, "op": "write", "value": u.write_bytes},
        ]},
    })
}
