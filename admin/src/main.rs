//! Operator command: mint, list and revoke API keys on the configured vault (the embedded
//! store by default, Secrets Manager with `VAULT_BACKEND=secretsmanager`).

use clap::{Parser, Subcommand};
use serde_json::json;
use std::process::ExitCode;
use webhook_secrets::audit::{AuditRecord, AuditSink, JsonLinesAudit};
use webhook_secrets::auth::keys::ApiKeyRecord;
use webhook_secrets::auth::Role;
use webhook_secrets::domain::ids::{KeyId, TenantId};
use webhook_secrets::store::StoreError;
use webhook_secrets::vault::VaultError;
use webhook_secrets::Config;

#[derive(Parser)]
#[command(
    name = "admin",
    about = "Manage API keys for the webhook-secrets vault"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// API keys: create, list, revoke.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The key that signs access tokens for the JWT-authenticated contract.
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
}

#[derive(Subcommand)]
enum SigningKeyCommand {
    /// Make a new signing key; tokens signed by the old one keep working until they expire.
    Rotate {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Mint a key; its secret is printed this once and never stored.
    Create {
        #[arg(long, value_parser = parse_tenant)]
        tenant: TenantId,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets), optionally only one tenant's.
    List {
        #[arg(long, value_parser = parse_tenant)]
        tenant: Option<TenantId>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; warm functions stop accepting it within 60 seconds.
    Revoke {
        #[arg(value_parser = parse_key_id)]
        key_id: KeyId,
        #[arg(long)]
        json: bool,
    },
}

fn parse_tenant(raw: &str) -> Result<TenantId, String> {
    TenantId::parse(raw).map_err(|e| e.to_string())
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).ok_or_else(|| "a role is owner, admin or member".to_owned())
}

fn parse_key_id(raw: &str) -> Result<KeyId, String> {
    KeyId::parse(raw).map_err(|e| e.to_string())
}

/// Key changes are audited like API actions; the actor is this command, not an API key.
fn audit(action: &'static str, record: &ApiKeyRecord, outcome: &str) {
    JsonLinesAudit::stderr().record(&AuditRecord {
        tenant: Some(record.tenant.to_string()),
        key_id: Some(record.key_id.to_string()),
        outcome: outcome.to_owned(),
        ..AuditRecord::new(chrono::Utc::now(), admin_request_id(), action)
    });
}

/// The admin command's audit records carry an id of their own, as a request's would.
fn admin_request_id() -> String {
    format!("admin-{}", uuid::Uuid::new_v4())
}

fn record_json(record: &ApiKeyRecord) -> serde_json::Value {
    json!({
        "key_id": record.key_id,
        "tenant": record.tenant,
        "role": record.role,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("admin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let app = config
        .build(std::sync::Arc::new(
            webhook_secrets::domain::clock::SystemClock,
        ))
        .await
        .map_err(|e| e.to_string())?;
    let keys = app.auth.keys();
    let command = match cli.command {
        Command::Keys { command } => command,
        Command::SigningKey {
            command: SigningKeyCommand::Rotate { json },
        } => {
            let kid = app
                .tokens
                .rotate_signing_key()
                .await
                .map_err(|e| format!("could not rotate the signing key: {e}"))?;
            JsonLinesAudit::stderr().record(&AuditRecord {
                key_id: Some(kid.clone()),
                ..AuditRecord::new(chrono::Utc::now(), admin_request_id(), "signing_key.rotate")
            });
            if json {
                println!("{}", json!({"kid": kid}));
            } else {
                println!("new signing key {kid}; tokens signed by the previous key work until they expire");
            }
            return Ok(());
        }
    };
    match command {
        KeysCommand::Create { tenant, role, json } => {
            let (key, record) = keys
                .mint(tenant, role)
                .await
                .map_err(|e| format!("could not store the key: {e}"))?;
            audit("api_key.create", &record, "success");
            let whole = key.expose();
            if json {
                println!(
                    "{}",
                    json!({"key_id": record.key_id, "api_key": whole.as_str(), "tenant": record.tenant, "role": record.role})
                );
            } else {
                println!("key_id:  {}", record.key_id);
                println!("api_key: {}", whole.as_str());
                println!("tenant:  {}", record.tenant);
                println!("role:    {}", record.role.as_str());
                println!("The api_key is shown this once; store it now.");
            }
        }
        KeysCommand::List { tenant, json } => {
            let keys = keys
                .list(tenant.as_ref())
                .await
                .map_err(|e| format!("could not list keys: {e}"))?;
            if json {
                let keys: Vec<_> = keys.iter().map(record_json).collect();
                println!("{}", serde_json::Value::Array(keys));
            } else {
                for key in &keys {
                    let state = match key.revoked_at {
                        Some(at) => format!("revoked {}", at.to_rfc3339()),
                        None => "active".to_owned(),
                    };
                    println!(
                        "{}  {:<20} {:<6}  created {}  {state}",
                        key.key_id,
                        key.tenant,
                        key.role.as_str(),
                        key.created_at.to_rfc3339()
                    );
                }
            }
        }
        KeysCommand::Revoke { key_id, json } => {
            let record = keys.revoke(&key_id).await.map_err(|e| match e {
                VaultError::Store(StoreError::NotFound) => format!("no key {key_id}"),
                other => format!("could not revoke {key_id}: {other}"),
            })?;
            audit("api_key.revoke", &record, "success");
            if json {
                println!("{}", record_json(&record));
            } else {
                println!("revoked {}", record.key_id);
            }
        }
    }
    Ok(())
}
