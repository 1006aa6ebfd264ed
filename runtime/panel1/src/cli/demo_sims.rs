//! The providers `panel1 demo` can run against: each a simulator from the
//! family (`panel1-sims`), the built-in adapter that speaks to it, and what
//! a server connection to it needs.

use std::path::Path;

use anyhow::{Context, Result};
use clap::ValueEnum;
use panel1_sims::docker::{DockerConfig, DockerSimulator};
use panel1_sims::kube::{KubeAuth, KubeConfig, KubeSimulator};
use panel1_sims::plesk::{PleskConfig, PleskSimulator};
use panel1_sims::{LoggedRequest, SimConfig, SimHandle, WhmSimulator};
use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoProvider {
    /// cPanel/WHM (the cpanel adapter against the WHM API 1 simulator).
    Cpanel,
    /// Plesk (the plesk adapter against the Plesk REST API v2 simulator).
    Plesk,
    /// Docker (the docker adapter against the Engine API simulator, mutual TLS).
    Docker,
    /// Kubernetes (the kubernetes adapter against the API server simulator,
    /// a service account token, the cluster CA pinned).
    Kubernetes,
    /// Each, in turn.
    All,
}

impl DemoProvider {
    pub fn each(self) -> Vec<DemoProvider> {
        match self {
            DemoProvider::All => vec![
                DemoProvider::Cpanel,
                DemoProvider::Plesk,
                DemoProvider::Docker,
                DemoProvider::Kubernetes,
            ],
            one => vec![one],
        }
    }

    /// The adapter's name (and component file stem).
    pub fn adapter(self) -> &'static str {
        match self {
            DemoProvider::Plesk => "plesk",
            DemoProvider::Docker => "docker",
            DemoProvider::Kubernetes => "kubernetes",
            _ => "cpanel",
        }
    }
}

pub enum DemoSim {
    Whm(WhmSimulator),
    Plesk(PleskSimulator),
    Docker(DockerSimulator),
    /// With the service account token it accepts.
    Kube(KubeSimulator, String),
}

/// The plan the demo's Docker server offers.
const DOCKER_PLANS: &str = r#"{"small": {"image": "nginx:1.27", "memory_mb": 256, "cpus": 0.5}}"#;
/// The plan the demo's Kubernetes server offers.
const KUBE_PLANS: &str = r#"{"small": {"image": "nginx:1.27", "replicas": 2, "cpu": "250m", "memory": "256Mi", "storage": "1Gi", "volume_access": "ReadWriteMany"}}"#;

impl DemoSim {
    pub async fn start(provider: DemoProvider) -> Result<DemoSim> {
        Ok(match provider {
            DemoProvider::Plesk => DemoSim::Plesk(
                PleskSimulator::start(PleskConfig::default())
                    .await
                    .context("starting the Plesk simulator")?,
            ),
            DemoProvider::Docker => DemoSim::Docker(
                DockerSimulator::start(DockerConfig::default())
                    .await
                    .context("starting the Docker Engine simulator")?,
            ),
            DemoProvider::Kubernetes => {
                let token = format!("demo-{}", uuid::Uuid::new_v4().simple());
                let sim = KubeSimulator::start(KubeConfig {
                    auth: KubeAuth::Token(token.clone()),
                    ..KubeConfig::default()
                })
                .await
                .context("starting the Kubernetes API server simulator")?;
                DemoSim::Kube(sim, token)
            }
            _ => DemoSim::Whm(
                WhmSimulator::start(SimConfig::default())
                    .await
                    .context("starting the WHM simulator")?,
            ),
        })
    }

    /// "WHM" or "Plesk", as messages name the server.
    pub fn label(&self) -> &'static str {
        match self {
            DemoSim::Whm(_) => "WHM",
            DemoSim::Plesk(_) => "Plesk",
            DemoSim::Docker(_) => "Docker Engine",
            DemoSim::Kube(..) => "Kubernetes API server",
        }
    }

    /// What every simulator offers, whatever the provider.
    fn handle(&self) -> &SimHandle {
        match self {
            DemoSim::Whm(s) => s,
            DemoSim::Plesk(s) => s,
            DemoSim::Docker(s) => s,
            DemoSim::Kube(s, _) => s,
        }
    }

    pub fn base_url(&self) -> String {
        self.handle().base_url()
    }

    pub fn cert_sha256(&self) -> &str {
        self.handle().cert_sha256()
    }

    /// The credential secret: its name and value.
    pub fn secret(&self) -> (&'static str, &str) {
        match self {
            DemoSim::Whm(s) => ("whm-token", s.token()),
            DemoSim::Plesk(s) => ("plesk-api-key", s.api_key()),
            DemoSim::Docker(s) => (
                "docker-client-identity",
                s.client_identity_pem().unwrap_or(""),
            ),
            DemoSim::Kube(_, token) => ("kubernetes-token", token),
        }
    }

    /// A plan the simulator has.
    pub fn plan(&self) -> &'static str {
        match self {
            DemoSim::Whm(_) => "basic",
            DemoSim::Plesk(_) => "Default Domain",
            DemoSim::Docker(_) | DemoSim::Kube(..) => "small",
        }
    }

    /// The body of `POST /v1/services` for account `user` on `server_id`.
    pub fn service_body(&self, server_id: &str, user: &str) -> Value {
        json!({
            "server_id": server_id,
            "username": user,
            "domain": format!("{user}.example.test"),
            "plan": self.plan(),
            "contact_email": format!("{user}@example.test"),
        })
    }

    /// The body of `POST /v1/servers` for a connection to this simulator:
    /// the certificate pinned, the credential bound to its address.
    pub fn server(&self, adapter_version_id: &str) -> Value {
        let (secret, _) = self.secret();
        let (name, config, egress) = match self {
            DemoSim::Whm(s) => {
                let port = s.addr().port();
                (
                    "whm-demo",
                    json!({ "host": "127.0.0.1", "port": port, "whm_user": s.whm_user() }),
                    format!("{}/json-api/ sha256:{}", s.base_url(), s.cert_sha256()),
                )
            }
            DemoSim::Plesk(s) => (
                "plesk-demo",
                json!({ "host": "127.0.0.1", "port": s.addr().port() }),
                format!("{}/ sha256:{}", s.api_url(), s.cert_sha256()),
            ),
            DemoSim::Docker(s) => (
                "docker-demo",
                json!({
                    "host": "127.0.0.1", "port": s.addr().port(),
                    "plans": serde_json::from_str::<Value>(DOCKER_PLANS).unwrap_or_default(),
                }),
                format!("{}/ sha256:{}", s.base_url(), s.cert_sha256()),
            ),
            // The cluster CA is pinned, as with a real cluster's kubeconfig.
            DemoSim::Kube(s, _) => (
                "kubernetes-demo",
                json!({
                    "host": "127.0.0.1", "port": s.addr().port(),
                    "plans": serde_json::from_str::<Value>(KUBE_PLANS).unwrap_or_default(),
                }),
                format!("{}/ sha256:{}", s.base_url(), s.ca_sha256()),
            ),
        };
        let port = self.port();
        json!({
            "name": name,
            "adapter_version_id": adapter_version_id,
            "config": config,
            "egress": [egress],
            "secrets": [{ "name": secret, "destinations": [format!("127.0.0.1:{port}")] }],
        })
    }

    pub fn port(&self) -> u16 {
        self.handle().addr().port()
    }

    /// Accounts (WHM) or subscriptions (Plesk) the server holds.
    /// Create an account on the provider behind Panel1's back (for the
    /// drift report); only the WHM simulator offers it here.
    pub fn add_outside_account(&self, user: &str) -> Result<bool> {
        match self {
            DemoSim::Whm(s) => {
                s.add_account(panel1_sims::Account::new(
                    user,
                    &format!("{user}.example.test"),
                ))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub fn accounts(&self) -> usize {
        match self {
            DemoSim::Whm(s) => s.accounts().len(),
            DemoSim::Plesk(s) => s.domains().len(),
            DemoSim::Docker(s) => s.containers().len(),
            DemoSim::Kube(s, _) => s
                .namespaces()
                .iter()
                .filter(|n| {
                    n.pointer("/metadata/labels/panel1.io~1service-id")
                        .is_some()
                })
                .count(),
        }
    }

    /// Suspended accounts, where the simulator keeps such a flag (WHM).
    pub fn suspended_accounts(&self) -> Option<usize> {
        match self {
            DemoSim::Whm(s) => Some(s.accounts().iter().filter(|a| a.suspended).count()),
            _ => None,
        }
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.handle().request_log()
    }

    /// Where the request log goes in the data directory.
    pub fn log_file(&self, data_dir: &Path) -> std::path::PathBuf {
        data_dir.join(match self {
            DemoSim::Whm(_) => "demo-whm-requests.jsonl",
            DemoSim::Plesk(_) => "demo-plesk-requests.jsonl",
            DemoSim::Docker(_) => "demo-docker-requests.jsonl",
            DemoSim::Kube(..) => "demo-kubernetes-requests.jsonl",
        })
    }

    pub fn write_log(&self, path: &Path) -> Result<()> {
        Ok(self.handle().write_log_jsonl(path)?)
    }

    /// How a well-formed call is judged, for the summary line.
    pub fn well_formed_means(&self) -> &'static str {
        match self {
            DemoSim::Whm(_) => "well-formed WHM API 1 (api.version=1, the whm auth header, required parameters as the official description defines them)",
            DemoSim::Plesk(_) => "well-formed Plesk REST API v2 (the X-API-Key header, paths, parameters and JSON bodies as Plesk's OpenAPI description defines them)",
            DemoSim::Docker(_) => "well-formed Docker Engine API (a client certificate from the Engine's CA, paths, parameters and JSON bodies as the official v1.45 description defines them)",
            DemoSim::Kube(..) => "well-formed Kubernetes API (the bearer token, paths and methods of the kinds served, objects valid against the official JSON Schemas, server-side apply with a field manager)",
        }
    }

    /// One request log entry, as the demo prints it.
    pub fn describe(&self, r: &LoggedRequest) -> String {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let path = match self {
            DemoSim::Whm(_) => format!("/json-api/{}", r.function),
            DemoSim::Plesk(_) | DemoSim::Docker(_) | DemoSim::Kube(..) => r.path.clone(),
        };
        format!(
            "{:<6} {:<28} {} {}",
            r.method,
            path,
            params.join("&"),
            r.problems.join("; ")
        )
    }

    pub async fn shutdown(self) {
        match self {
            DemoSim::Whm(s) => s.shutdown().await,
            DemoSim::Plesk(s) => s.shutdown().await,
            DemoSim::Docker(s) => s.shutdown().await,
            DemoSim::Kube(s, _) => s.shutdown().await,
        }
    }
}
