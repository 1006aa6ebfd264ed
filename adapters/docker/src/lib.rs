//! The Docker Engine adapter: a Panel1 service is one container (with a
//! named volume, on the tenant's network) created from its plan's image and
//! resources, labelled with Panel1's service id. The Engine API is reached
//! over mutual TLS: the host presents the client identity bound to the
//! Engine's address; the adapter never sees a key.
//!
//! The remote id is the container's name. Every operation is an "ensure":
//! provision adopts the container an earlier attempt created (same service
//! label), start/stop/pause answers of "nothing to do" are success.
use engine::{Answer, Engine};
use panel1_sdk::input::field;
use panel1_sdk::*;
use serde_json::{json, Value};
use settings::Plan;

mod engine;
mod settings;

struct Docker;

/// The label that ties a container to its Panel1 service.
const SERVICE_LABEL: &str = "panel1.service";

/// A container name Docker accepts: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn container_name(spec: &ServiceSpec) -> Result<String, AdapterError> {
    let raw = field(&spec.remote_id)
        .or_else(|| field(&spec.username))
        .map(str::to_string)
        .unwrap_or_else(|| format!("p1-{}", spec.service_id));
    let ok = raw.len() <= 128
        && raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        return Err(invalid_input(format!(
            "`{}` is not a container name: 1-128 characters, a letter or digit first, then letters, digits, `_`, `.` or `-`",
            raw.escape_debug()
        )));
    }
    Ok(raw)
}

fn volume_of(name: &str) -> String {
    format!("{name}-data")
}

/// The container named `name`, inspected; `None` when it does not exist.
fn inspect(engine: &Engine, name: &str) -> Result<Option<Value>, AdapterError> {
    match engine.call("GET", &format!("/containers/{name}/json"), None)? {
        Answer::Ok(doc) => Ok(Some(doc)),
        Answer::Missing(_) => Ok(None),
        other => Err(permanent(format!(
            "Docker inspect {name}: unexpected {other:?}"
        ))),
    }
}

fn state_of(doc: &Value) -> &str {
    doc.pointer("/State/Status")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn remote_state(status: &str) -> RemoteState {
    match status {
        "running" => RemoteState::Active,
        "paused" | "exited" => RemoteState::Suspended,
        "created" | "restarting" => RemoteState::Pending,
        "removing" | "dead" => RemoteState::Terminated,
        _ => RemoteState::Unknown,
    }
}

/// The plan whose image and resources the container has, if any.
fn plan_of(engine: &Engine, doc: &Value, wanted: Option<&str>) -> Option<String> {
    let image = doc.pointer("/Config/Image").and_then(Value::as_str)?;
    let memory = doc
        .pointer("/HostConfig/Memory")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let cpus = doc
        .pointer("/HostConfig/NanoCpus")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let fits = |p: &Plan| p.image == image && p.memory == memory && p.nano_cpus == cpus;
    match wanted {
        Some(w) => engine
            .settings()
            .plan(w)
            .ok()
            .filter(fits)
            .map(|_| w.to_string()),
        None => None,
    }
}

fn status_of(name: &str, doc: &Value, plan: Option<String>) -> ServiceStatus {
    let mut st = ServiceStatus::new(name, remote_state(state_of(doc)));
    st.plan = plan;
    if let Some(id) = doc.get("Id").and_then(Value::as_str) {
        st.details
            .push(KeyValue::new("container_id", &id[..id.len().min(12)]));
    }
    if let Some(image) = doc.pointer("/Config/Image").and_then(Value::as_str) {
        st.details.push(KeyValue::new("image", image));
    }
    st
}

/// Start (or unpause) until running; "already" answers are success.
fn ensure_running(engine: &Engine, name: &str, current: &str) -> Result<(), AdapterError> {
    if current == "paused" {
        engine.ok("POST", &format!("/containers/{name}/unpause"), None)?;
    }
    engine.ok("POST", &format!("/containers/{name}/start"), None)?;
    Ok(())
}

/// Create the container for `plan` (its volume first) and start it.
fn create(
    engine: &Engine,
    name: &str,
    service_id: &str,
    plan: &Plan,
) -> Result<Answer, AdapterError> {
    let volume = volume_of(name);
    let labels = json!({ SERVICE_LABEL: service_id });
    engine.ok(
        "POST",
        "/volumes/create",
        Some(&json!({"Name": volume, "Labels": labels})),
    )?;
    let body = json!({
        "Image": plan.image,
        "Labels": labels,
        "HostConfig": {
            "Memory": plan.memory,
            "NanoCpus": plan.nano_cpus,
            "NetworkMode": engine.settings().network,
            "RestartPolicy": {"Name": "unless-stopped"},
            "Mounts": [{"Type": "volume", "Source": volume, "Target": plan.volume_path}],
        },
    });
    engine.call(
        "POST",
        &format!("/containers/create?name={name}"),
        Some(&body),
    )
}

fn require_plan(engine: &Engine, plan: Option<&str>) -> Result<(String, Plan), AdapterError> {
    let name =
        plan.ok_or_else(|| invalid_input("plan is required: it names the image and resources"))?;
    let p = engine.settings().plan(name).map_err(invalid_input)?;
    Ok((name.to_string(), p))
}

impl Adapter for Docker {
    fn info() -> AdapterInfo {
        AdapterInfo {
            description: "Docker Engine containers over the Engine API (mutual TLS)".into(),
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
            secrets: vec![engine::IDENTITY_SECRET.into()],
            ..AdapterInfo::named("docker", env!("CARGO_PKG_VERSION"))
        }
    }

    fn test_connection(req: TestRequest) -> Result<ConnectionInfo, AdapterError> {
        let engine = Engine::connect(&req.ctx)?;
        let doc = engine.ok("GET", "/version", None)?;
        let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Ok(ConnectionInfo {
            server_version: format!("Docker Engine {}", text("Version")),
            details: vec![
                KeyValue::new("api_version", engine.version()),
                KeyValue::new("server_api_version", text("ApiVersion")),
                KeyValue::new("os", format!("{}/{}", text("Os"), text("Arch"))),
            ],
        })
    }

    fn provision(req: ProvisionRequest) -> Result<ServiceStatus, AdapterError> {
        let spec = &req.service;
        let name = container_name(spec)?;
        let engine = Engine::connect(&req.ctx)?;
        let (plan_name, plan) = require_plan(&engine, field(&spec.plan))?;
        let adopt = |doc: Value| -> Result<ServiceStatus, AdapterError> {
            let owner = doc
                .pointer(&format!("/Config/Labels/{SERVICE_LABEL}"))
                .and_then(Value::as_str);
            if owner != Some(spec.service_id.as_str()) {
                return Err(conflict(format!(
                    "container `{name}` exists and belongs to {}",
                    owner
                        .map(|o| format!("service {o}"))
                        .unwrap_or_else(|| "no Panel1 service".into())
                )));
            }
            log::info(
                "container found for this service: not created again",
                &[("name", &name)],
            );
            ensure_running(&engine, &name, state_of(&doc))?;
            let doc = inspect(&engine, &name)?
                .ok_or_else(|| transient(format!("container `{name}` vanished"), None))?;
            Ok(status_of(&name, &doc, Some(plan_name.clone())))
        };
        if let Some(doc) = inspect(&engine, &name)? {
            return adopt(doc);
        }
        match create(&engine, &name, &spec.service_id, &plan)? {
            Answer::Ok(_) => log::info(
                "container created",
                &[("name", &name), ("image", &plan.image)],
            ),
            // Lost a race with a concurrent attempt: judge what won.
            Answer::Conflict(_) => {
                let doc = inspect(&engine, &name)?.ok_or_else(|| {
                    transient(format!("container `{name}` is being removed"), None)
                })?;
                return adopt(doc);
            }
            Answer::Missing(m) => {
                return Err(invalid_input(format!(
                    "Docker could not create `{name}`: {m}"
                )))
            }
            Answer::NotModified => {}
        }
        ensure_running(&engine, &name, "created")?;
        let doc = inspect(&engine, &name)?
            .ok_or_else(|| transient(format!("container `{name}` vanished"), None))?;
        Ok(status_of(&name, &doc, Some(plan_name)))
    }

    fn suspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let name = container_name(&req.service)?;
        let engine = Engine::connect(&req.ctx)?;
        let doc = inspect(&engine, &name)?
            .ok_or_else(|| not_found(format!("container `{name}` does not exist")))?;
        match (engine.settings().pause, state_of(&doc)) {
            (_, "paused" | "exited" | "created") => {
                log::info("container was not running", &[("name", &name)])
            }
            (true, _) => {
                engine.ok("POST", &format!("/containers/{name}/pause"), None)?;
                log::info("container paused", &[("name", &name)]);
            }
            (false, _) => {
                engine.ok("POST", &format!("/containers/{name}/stop"), None)?;
                log::info("container stopped", &[("name", &name)]);
            }
        }
        let doc = inspect(&engine, &name)?.unwrap_or(doc);
        Ok(status_of(&name, &doc, None))
    }

    fn unsuspend(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let name = container_name(&req.service)?;
        let engine = Engine::connect(&req.ctx)?;
        let doc = inspect(&engine, &name)?
            .ok_or_else(|| not_found(format!("container `{name}` does not exist")))?;
        ensure_running(&engine, &name, state_of(&doc))?;
        log::info("container running", &[("name", &name)]);
        let doc = inspect(&engine, &name)?.unwrap_or(doc);
        Ok(status_of(&name, &doc, None))
    }

    fn terminate(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let name = container_name(&req.service)?;
        let engine = Engine::connect(&req.ctx)?;
        match engine.call(
            "DELETE",
            &format!("/containers/{name}?force=true&v=true"),
            None,
        )? {
            Answer::Missing(_) => log::info("container was already gone", &[("name", &name)]),
            Answer::Conflict(m) => {
                return Err(transient(
                    format!("Docker is busy with `{name}`: {m}"),
                    None,
                ))
            }
            _ => log::info("container removed", &[("name", &name)]),
        }
        let volume = volume_of(&name);
        if engine.settings().keep_volumes {
            log::info("volume kept (retention)", &[("volume", &volume)]);
        } else {
            match engine.call("DELETE", &format!("/volumes/{volume}"), None)? {
                Answer::Missing(_) => log::info("volume was already gone", &[("volume", &volume)]),
                Answer::Conflict(m) => {
                    return Err(transient(
                        format!("volume `{volume}` still in use: {m}"),
                        None,
                    ))
                }
                _ => log::info("volume removed", &[("volume", &volume)]),
            }
        }
        Ok(ServiceStatus::new(name, RemoteState::Terminated))
    }

    fn status(req: ServiceRequest) -> Result<ServiceStatus, AdapterError> {
        let name = container_name(&req.service)?;
        let engine = Engine::connect(&req.ctx)?;
        // A container that does not exist is a terminated service.
        Ok(match inspect(&engine, &name)? {
            Some(doc) => {
                let plan = plan_of(&engine, &doc, field(&req.service.plan));
                status_of(&name, &doc, plan)
            }
            None => ServiceStatus::new(name, RemoteState::Terminated),
        })
    }

    fn change_package(req: ChangePackageRequest) -> Result<ServiceStatus, AdapterError> {
        let name = container_name(&req.service)?;
        let engine = Engine::connect(&req.ctx)?;
        let (plan_name, plan) =
            require_plan(&engine, Some(req.plan.trim()).filter(|p| !p.is_empty()))?;
        let doc = inspect(&engine, &name)?
            .ok_or_else(|| not_found(format!("container `{name}` does not exist")))?;
        let image = doc
            .pointer("/Config/Image")
            .and_then(Value::as_str)
            .unwrap_or("");
        if image == plan.image {
            let update = json!({"Memory": plan.memory, "NanoCpus": plan.nano_cpus});
            engine.ok("POST", &format!("/containers/{name}/update"), Some(&update))?;
            log::info(
                "resources updated",
                &[("name", &name), ("plan", &plan_name)],
            );
        } else {
            // A new image needs a new container; the volume stays.
            let was = state_of(&doc).to_string();
            match engine.call("DELETE", &format!("/containers/{name}?force=true"), None)? {
                Answer::Conflict(m) => {
                    return Err(transient(
                        format!("Docker is busy with `{name}`: {m}"),
                        None,
                    ))
                }
                _ => log::info(
                    "container removed for a new image",
                    &[("name", &name), ("image", &plan.image)],
                ),
            }
            let service_id = doc
                .pointer(&format!("/Config/Labels/{SERVICE_LABEL}"))
                .and_then(Value::as_str)
                .unwrap_or(&req.service.service_id)
                .to_string();
            if let Answer::Missing(m) = create(&engine, &name, &service_id, &plan)? {
                return Err(invalid_input(format!(
                    "Docker could not recreate `{name}`: {m}"
                )));
            }
            if was == "running" || was == "paused" {
                ensure_running(&engine, &name, "created")?;
            }
        }
        let doc = inspect(&engine, &name)?
            .ok_or_else(|| transient(format!("container `{name}` vanished"), None))?;
        Ok(status_of(&name, &doc, Some(plan_name)))
    }

    fn list_services(req: ListRequest) -> Result<ServicePage, AdapterError> {
        let start = paging::start_of(req.cursor.as_deref()).map_err(invalid_input)?;
        let size = paging::size_of(req.limit);
        let engine = Engine::connect(&req.ctx)?;
        let filters = json!({ "label": [SERVICE_LABEL] }).to_string();
        let encoded = panel1_sdk::http::query_escape(&filters);
        let doc = engine.ok(
            "GET",
            &format!("/containers/json?all=true&filters={encoded}"),
            None,
        )?;
        let mut items: Vec<ServiceStatus> = doc
            .as_array()
            .ok_or_else(|| permanent("Docker GET /containers/json: expected a list"))?
            .iter()
            .filter_map(|c| {
                let name = c
                    .get("Names")?
                    .as_array()?
                    .first()?
                    .as_str()?
                    .trim_start_matches('/')
                    .to_string();
                let mut st = ServiceStatus::new(&name, remote_state(c.get("State")?.as_str()?));
                if let Some(sid) = c
                    .pointer(&format!("/Labels/{SERVICE_LABEL}"))
                    .and_then(Value::as_str)
                {
                    st.details.push(KeyValue::new("service_id", sid));
                }
                Some(st)
            })
            .collect();
        items.sort_by(|a, b| a.remote_id.cmp(&b.remote_id));
        let total = items.len();
        let (from, to) = paging::window(start, size, total);
        let page: Vec<ServiceStatus> = items.drain(from..to).collect();
        Ok(ServicePage {
            next_cursor: paging::next_cursor(start, size, page.len(), Some(total as u64)),
            items: page,
        })
    }

    fn usage(req: ServiceRequest) -> Result<UsageReport, AdapterError> {
        let name = container_name(&req.service)?;
        let engine = Engine::connect(&req.ctx)?;
        let stats = engine.ok(
            "GET",
            &format!("/containers/{name}/stats?stream=false&one-shot=true"),
            None,
        )?;
        let n = |p: &str| stats.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
        // Bytes summed over every network interface.
        let net = |field: &str| -> f64 {
            stats
                .pointer("/networks")
                .and_then(Value::as_object)
                .map_or(0.0, |nets| {
                    nets.values()
                        .filter_map(|v| v.get(field).and_then(Value::as_f64))
                        .sum()
                })
        };
        let blk = |op: &str| -> f64 {
            stats
                .pointer("/blkio_stats/io_service_bytes_recursive")
                .and_then(Value::as_array)
                .map_or(0.0, |a| {
                    a.iter()
                        .filter(|e| {
                            e.get("op")
                                .and_then(Value::as_str)
                                .is_some_and(|o| o.eq_ignore_ascii_case(op))
                        })
                        .filter_map(|e| e.get("value").and_then(Value::as_f64))
                        .sum()
                })
        };
        let metric = |name: &str, value: f64, unit: &str| Metric {
            name: name.into(),
            value,
            unit: unit.into(),
        };
        Ok(UsageReport {
            remote_id: name,
            metrics: vec![
                metric(
                    "cpu_seconds",
                    n("/cpu_stats/cpu_usage/total_usage") / 1e9,
                    "seconds",
                ),
                metric("memory_used", n("/memory_stats/usage"), "bytes"),
                metric("memory_limit", n("/memory_stats/limit"), "bytes"),
                metric("network_rx", net("rx_bytes"), "bytes"),
                metric("network_tx", net("tx_bytes"), "bytes"),
                metric("block_read", blk("read"), "bytes"),
                metric("block_write", blk("write"), "bytes"),
            ],
        })
    }
}

export_adapter!(Docker);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_names() {
        assert_eq!(remote_state("running"), RemoteState::Active);
        assert_eq!(remote_state("exited"), RemoteState::Suspended);
        assert_eq!(remote_state("paused"), RemoteState::Suspended);
        assert_eq!(volume_of("web1"), "web1-data");
    }
}
