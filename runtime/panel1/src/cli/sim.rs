//! `panel1 sim whm|plesk`: a provider simulator to develop and demo
//! adapters against, on 127.0.0.1 with a throwaway certificate. Prints what
//! a server connection needs (URL, certificate pin, credential) and, on
//! Ctrl-C, optionally writes the request log.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use panel1_sims::docker::{DockerConfig, DockerSimulator};
use panel1_sims::kube::{KubeAuth, KubeConfig, KubeSimulator};
use panel1_sims::plesk::{Client, Domain, PleskConfig, PleskSimulator};
use panel1_sims::{Account, SimConfig, WhmSimulator};

use super::{EXIT_OK, EXIT_USAGE};

#[derive(Clone, Copy, ValueEnum)]
pub enum Provider {
    /// cPanel's WHM API 1.
    Whm,
    /// Plesk's REST API v2 with its CLI gateway.
    Plesk,
    /// The Docker Engine API over mutual TLS.
    Docker,
    /// A Kubernetes API server (bearer token; the cluster CA to pin).
    Kube,
}

#[derive(Args)]
pub struct SimArgs {
    /// Which provider to simulate.
    provider: Provider,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The credential clients must send (WHM token, Plesk API key or
    /// Kubernetes bearer token);
    /// random when not given. (Docker: a client certificate, always fresh.)
    #[arg(long, env = "PANEL1_SIM_CREDENTIAL")]
    credential: Option<String>,
    /// Write the request log (JSON lines, no secrets) here on exit.
    #[arg(long)]
    log: Option<PathBuf>,
}

pub async fn run(args: SimArgs) -> u8 {
    match serve(args).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("panel1 sim: {e}");
            EXIT_USAGE
        }
    }
}

async fn serve(args: SimArgs) -> Result<(), Box<dyn std::error::Error>> {
    match args.provider {
        Provider::Whm => {
            let mut config = SimConfig {
                port: args.port,
                ..SimConfig::default()
            };
            if let Some(c) = args.credential.clone() {
                config.token = c;
            }
            let sim = WhmSimulator::start(config).await?;
            sim.add_account(Account::new("demo", "demo.example").with_plan("basic"))?;
            let api = format!("{}/json-api/", sim.base_url());
            print_connection(&api, sim.cert_sha256(), ("whm-token", sim.token()));
            println!("seeded: account demo (demo.example, package basic)");
            wait().await?;
            if let Some(path) = &args.log {
                sim.write_log_jsonl(path)?;
            }
            sim.shutdown().await;
        }
        Provider::Plesk => {
            let mut config = PleskConfig {
                port: args.port,
                ..PleskConfig::default()
            };
            if let Some(c) = args.credential.clone() {
                config.api_key = c;
            }
            let sim = PleskSimulator::start(config).await?;
            let id = sim.add_client(Client::new("demo", "demo@example.net"))?;
            sim.add_domain(Domain::new("demo.example", id, "Default Domain", "demo"))?;
            let api = format!("{}/", sim.api_url());
            print_connection(&api, sim.cert_sha256(), ("plesk-api-key", sim.api_key()));
            println!("seeded: customer demo with subscription demo.example; service plans Default Domain, Unlimited");
            wait().await?;
            if let Some(path) = &args.log {
                sim.write_log_jsonl(path)?;
            }
            sim.shutdown().await;
        }
        Provider::Docker => {
            let sim = DockerSimulator::start(DockerConfig {
                port: args.port,
                ..DockerConfig::default()
            })
            .await?;
            // The client identity is a credential for this throwaway CA only.
            let pem_path =
                std::env::temp_dir().join(format!("panel1-sim-docker-{}.pem", sim.addr().port()));
            std::fs::write(&pem_path, sim.client_identity_pem().unwrap_or_default())?;
            let api = format!("{}/", sim.base_url());
            let identity = format!("(PEM in {})", pem_path.display());
            print_connection(
                &api,
                sim.cert_sha256(),
                ("docker-client-identity", &identity),
            );
            println!("images: nginx:1.27, php:8.3-apache; networks: bridge");
            wait().await?;
            if let Some(path) = &args.log {
                sim.write_log_jsonl(path)?;
            }
            let _ = std::fs::remove_file(&pem_path);
            sim.shutdown().await;
        }
        Provider::Kube => {
            let token = args
                .credential
                .clone()
                .unwrap_or_else(|| format!("sim-{}", uuid::Uuid::new_v4().simple()));
            let sim = KubeSimulator::start(KubeConfig {
                port: args.port,
                auth: KubeAuth::Token(token.clone()),
                ..KubeConfig::default()
            })
            .await?;
            let api = format!("{}/", sim.base_url());
            // Pin the cluster CA (the server sends it in its chain), as a
            // kubeconfig's certificate-authority would.
            print_connection(&api, sim.ca_sha256(), ("kubernetes-token", &token));
            println!("kinds: namespaces, resourcequotas, limitranges, persistentvolumeclaims, services, deployments (+scale), ingresses");
            wait().await?;
            if let Some(path) = &args.log {
                sim.write_log_jsonl(path)?;
            }
            sim.shutdown().await;
        }
    }
    if let Some(path) = &args.log {
        println!("request log written to {}", path.display());
    }
    Ok(())
}

/// What a server connection to the simulator needs.
fn print_connection(api: &str, pin: &str, (secret, value): (&str, &str)) {
    println!("API          {api}");
    println!("egress rule  {api} sha256:{pin}");
    println!("secret       {secret} = {value}");
}

async fn wait() -> std::io::Result<()> {
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await
}
