//! A simulator to poke at by hand:
//! `cargo run --release -p panel1-sims --example whm_sim`
//! Env: WHM_SIM_TOKEN, WHM_SIM_PORT, WHM_SIM_LOG (request log written as
//! JSON lines on Ctrl-C).

use panel1_sims::{Account, SimConfig, WhmSimulator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = SimConfig::default();
    if let Ok(token) = std::env::var("WHM_SIM_TOKEN") {
        config.token = token;
    }
    if let Ok(port) = std::env::var("WHM_SIM_PORT") {
        config.port = port.parse()?;
    }
    let sim = WhmSimulator::start(config).await?;
    sim.add_account(Account::new("demo", "demo.example").with_plan("basic"))?;

    println!("WHM simulator at {}", sim.base_url());
    println!("certificate sha256 {}", sim.cert_sha256());
    println!("try:");
    println!(
        "  curl -sk -H 'Authorization: {}' '{}/json-api/listaccts?api.version=1'",
        sim.auth_header(),
        sim.base_url()
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;

    if let Ok(path) = std::env::var("WHM_SIM_LOG") {
        sim.write_log_jsonl(&path)?;
        println!("request log written to {path}");
    }
    sim.shutdown().await;
    Ok(())
}
