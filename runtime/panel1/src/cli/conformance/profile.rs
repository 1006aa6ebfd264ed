//! A provider profile: the simulator of that provider, started fresh, and
//! what an operator would connect an adapter to it with (the server config,
//! the credential bound to the simulator's address, the egress rule pinning
//! its certificate), a service spec it accepts, the call that creates an
//! account (where an answer is lost), and how to count the accounts it holds.
use super::provider::Provider;
use panel1_sandbox::{EgressPolicy, EgressRule, HostContext, SecretBinding};
use panel1_sims::docker::{DockerConfig, DockerSimulator};
use panel1_sims::kube::{KubeAuth, KubeConfig, KubeSimulator};
use panel1_sims::plesk::{PleskConfig, PleskSimulator};
use panel1_sims::{SimConfig, SimError, SimHandle, WhmSimulator};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("the {provider} simulator did not start: {source}")]
    Start {
        provider: &'static str,
        source: SimError,
    },
    #[error("the {provider} profile's egress rule `{rule}` does not parse: {message}")]
    Rule {
        provider: &'static str,
        rule: String,
        message: String,
    },
}

/// The plans the Docker and Kubernetes profiles offer.
const DOCKER_PLANS: &str = r#"{"small": {"image": "nginx:1.27", "memory_mb": 256, "cpus": 0.5}}"#;
const KUBE_PLANS: &str = r#"{"small": {"image": "nginx:1.27", "replicas": 2, "cpu": "250m", "memory": "256Mi", "storage": "1Gi", "volume_access": "ReadWriteMany"}}"#;

enum Sim {
    Whm(WhmSimulator),
    Plesk(PleskSimulator),
    Docker(DockerSimulator),
    Kube(KubeSimulator),
}

/// What the adapter authenticates with.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A token or key the adapter sends by placeholder; `wrong` is a value
    /// the simulator refuses.
    Token {
        name: &'static str,
        value: String,
        wrong: String,
    },
    /// A client identity (PEM chain and key) the host presents in TLS.
    Identity { name: &'static str, pem: String },
}

pub struct Profile {
    sim: Sim,
    /// The server config as the REST API takes it (typed JSON).
    pub config: Value,
    pub credential: Credential,
    rule: EgressRule,
    plan: &'static str,
}

fn rule(provider: Provider, text: String) -> Result<EgressRule, ProfileError> {
    EgressRule::parse(&text).map_err(|e| ProfileError::Rule {
        provider: provider.name(),
        message: e.to_string(),
        rule: text,
    })
}

fn plans(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_default()
}

impl Profile {
    /// Start the provider's simulator on 127.0.0.1 and build the profile.
    pub async fn start(provider: Provider) -> Result<Profile, ProfileError> {
        let failed = |source| ProfileError::Start {
            provider: provider.name(),
            source,
        };
        let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
        let profile = match provider {
            Provider::Whm => {
                let sim = WhmSimulator::start(SimConfig::default())
                    .await
                    .map_err(failed)?;
                let text = format!("{}/json-api/ sha256:{}", sim.base_url(), sim.cert_sha256());
                Profile {
                    config: json!({"host": "127.0.0.1", "port": sim.addr().port(), "whm_user": sim.whm_user()}),
                    credential: Credential::Token {
                        name: "whm-token",
                        value: sim.token().to_string(),
                        wrong,
                    },
                    rule: rule(provider, text)?,
                    plan: "basic",
                    sim: Sim::Whm(sim),
                }
            }
            Provider::Plesk => {
                let sim = PleskSimulator::start(PleskConfig::default())
                    .await
                    .map_err(failed)?;
                let text = format!("{}/ sha256:{}", sim.api_url(), sim.cert_sha256());
                Profile {
                    config: json!({"host": "127.0.0.1", "port": sim.addr().port()}),
                    credential: Credential::Token {
                        name: "plesk-api-key",
                        value: sim.api_key().to_string(),
                        wrong,
                    },
                    rule: rule(provider, text)?,
                    plan: "Default Domain",
                    sim: Sim::Plesk(sim),
                }
            }
            Provider::Docker => {
                let sim = DockerSimulator::start(DockerConfig::default())
                    .await
                    .map_err(failed)?;
                let text = format!("{}/ sha256:{}", sim.base_url(), sim.cert_sha256());
                Profile {
                    config: json!({"host": "127.0.0.1", "port": sim.addr().port(), "plans": plans(DOCKER_PLANS)}),
                    credential: Credential::Identity {
                        name: "docker-client-identity",
                        pem: sim.client_identity_pem().unwrap_or_default().to_string(),
                    },
                    rule: rule(provider, text)?,
                    plan: "small",
                    sim: Sim::Docker(sim),
                }
            }
            Provider::Kubernetes => {
                let token = format!("conformance-{}", uuid::Uuid::new_v4().simple());
                let sim = KubeSimulator::start(KubeConfig {
                    auth: KubeAuth::Token(token.clone()),
                    ..KubeConfig::default()
                })
                .await
                .map_err(failed)?;
                // The cluster CA is pinned, as a kubeconfig would have it.
                let text = format!("{}/ sha256:{}", sim.base_url(), sim.ca_sha256());
                Profile {
                    config: json!({"host": "127.0.0.1", "port": sim.addr().port(), "plans": plans(KUBE_PLANS)}),
                    credential: Credential::Token {
                        name: "kubernetes-token",
                        value: token,
                        wrong,
                    },
                    rule: rule(provider, text)?,
                    plan: "small",
                    sim: Sim::Kube(sim),
                }
            }
        };
        Ok(profile)
    }

    /// Faults, the request log, the address.
    pub fn sim(&self) -> &SimHandle {
        match &self.sim {
            Sim::Whm(s) => s,
            Sim::Plesk(s) => s,
            Sim::Docker(s) => s,
            Sim::Kube(s) => s,
        }
    }

    /// `127.0.0.1:PORT`: where the credential may be sent.
    fn destination(&self) -> String {
        format!("127.0.0.1:{}", self.sim().addr().port())
    }

    fn binding(&self, value: &str) -> SecretBinding {
        let name = match &self.credential {
            Credential::Token { name, .. } | Credential::Identity { name, .. } => *name,
        };
        SecretBinding {
            name: name.to_string(),
            value: value.to_string(),
            destinations: vec![self.destination()],
        }
    }

    /// The server connection as an operator sets it up.
    pub fn context(&self) -> HostContext {
        let value = match &self.credential {
            Credential::Token { value, .. } => value,
            Credential::Identity { pem, .. } => pem,
        };
        HostContext {
            config: config_map(&self.config),
            secrets: vec![self.binding(value)],
            egress: EgressPolicy::new(vec![self.rule.clone()]),
            ..HostContext::default()
        }
    }

    /// The connection with a credential the provider refuses: a token with
    /// the wrong value, or no client identity at all. Says which.
    pub fn with_wrong_credential(&self, ctx: &mut HostContext) -> String {
        match &self.credential {
            Credential::Token { name, wrong, .. } => {
                ctx.secrets = vec![self.binding(wrong)];
                format!("`{name}` bound with a wrong value")
            }
            Credential::Identity { name, .. } => {
                ctx.secrets.clear();
                format!("no `{name}` bound")
            }
        }
    }

    /// A service the simulator accepts, named `user` (lowercase letters and
    /// digits, under 16 characters: a valid name on every provider).
    pub fn service(&self, user: &str) -> Value {
        json!({
            "service_id": format!("svc-{user}"),
            "username": user,
            "domain": format!("{user}.example.com"),
            "plan": self.plan,
            "contact_email": format!("{user}@example.net"),
        })
    }

    /// The provider call that creates an account: a lost answer is
    /// injected there.
    pub fn creating_call(&self) -> &'static str {
        match self.sim {
            Sim::Whm(_) => "createacct",
            Sim::Plesk(_) => "POST /domains",
            Sim::Docker(_) => "POST /containers/create",
            Sim::Kube(_) => "PATCH /api/v1/namespaces/{name}",
        }
    }

    /// What an account is here, for messages.
    pub fn account_word(&self) -> &'static str {
        match self.sim {
            Sim::Whm(_) => "WHM accounts",
            Sim::Plesk(_) => "Plesk subscriptions",
            Sim::Docker(_) => "containers",
            Sim::Kube(_) => "namespaces labelled panel1.io/service-id",
        }
    }

    /// Accounts the simulator holds: WHM accounts, Plesk subscriptions,
    /// Docker containers, Kubernetes namespaces labelled with a service id.
    pub fn accounts(&self) -> usize {
        match &self.sim {
            Sim::Whm(s) => s.accounts().len(),
            Sim::Plesk(s) => s.domains().len(),
            Sim::Docker(s) => s.containers().len(),
            Sim::Kube(s) => s
                .namespaces()
                .iter()
                .filter(|n| {
                    n.pointer("/metadata/labels/panel1.io~1service-id")
                        .is_some()
                })
                .count(),
        }
    }

    /// Values no report may contain: the credential (and the wrong one the
    /// suite used), or for a PEM identity each line of its private key.
    pub fn secret_values(&self) -> Vec<String> {
        match &self.credential {
            Credential::Token { value, wrong, .. } => vec![value.clone(), wrong.clone()],
            Credential::Identity { pem, .. } => private_key_lines(pem),
        }
    }

    pub async fn shutdown(self) {
        match self.sim {
            Sim::Whm(s) => s.shutdown().await,
            Sim::Plesk(s) => s.shutdown().await,
            Sim::Docker(s) => s.shutdown().await,
            Sim::Kube(s) => s.shutdown().await,
        }
    }
}

/// Config values are strings to the adapter, as the worker gives them:
/// JSON scalars plainly, structures as JSON, nulls left out.
pub fn config_map(config: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Value::Object(map) = config {
        for (k, v) in map {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            out.insert(k.clone(), s);
        }
    }
    out
}

/// The base64 lines of every private key block in a PEM bundle (long
/// enough that finding one in a report cannot be chance).
pub fn private_key_lines(pem: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_key = false;
    for line in pem.lines().map(str::trim) {
        if line.starts_with("-----BEGIN") {
            in_key = line.contains("PRIVATE KEY");
        } else if line.starts_with("-----END") {
            in_key = false;
        } else if in_key && line.len() >= 16 {
            lines.push(line.to_string());
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_are_strings_as_the_worker_gives_them() {
        let m = config_map(&json!({"host": "h", "port": 1, "plans": {"a": 1}, "none": null}));
        assert_eq!(m["host"], "h");
        assert_eq!(m["port"], "1");
        assert_eq!(m["plans"], r#"{"a":1}"#);
        assert!(!m.contains_key("none"));
    }

    #[test]
    fn only_private_key_lines_are_secret() {
        let pem = "-----BEGIN CERTIFICATE-----\nCERTLINECERTLINECERTLINE\n-----END CERTIFICATE-----\n\
                   -----BEGIN PRIVATE KEY-----\nKEYLINEKEYLINEKEYLINE\nshort\n-----END PRIVATE KEY-----\n";
        assert_eq!(private_key_lines(pem), ["KEYLINEKEYLINEKEYLINE"]);
    }
}
