//! `panel1 secrets rekey`: move every stored secret to a new master key.
use super::{EXIT_OK, EXIT_USAGE};
use clap::{Args, Subcommand};
use panel1_store::secret_box::SecretBox;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypt every secret under a new master key (one transaction;
    /// rows already under the new key are skipped). Then start Panel1 with
    /// the new key.
    Rekey(RekeyArgs),
}

#[derive(Args)]
pub struct RekeyArgs {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// File with the current key (64 hex digits).
    #[arg(long)]
    old_key_file: PathBuf,
    /// File with the new key (64 hex digits).
    #[arg(long)]
    new_key_file: PathBuf,
}

pub async fn run(cmd: SecretsCommand) -> u8 {
    let SecretsCommand::Rekey(args) = cmd;
    let result = async {
        let old = SecretBox::from_key_file(&args.old_key_file)?;
        let new = SecretBox::from_key_file(&args.new_key_file)?;
        let pool = panel1_store::connect(&args.database_url, 2).await?;
        panel1_store::reencrypt_secrets(&pool, &old, &new).await
    }
    .await;
    match result {
        Ok(n) => {
            eprintln!("panel1: {n} secrets re-encrypted under the new key");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("panel1: {e}");
            EXIT_USAGE
        }
    }
}
