//! Operator command on the configured vault (the embedded store by default, Secrets Manager
//! with `VAULT_BACKEND=secretsmanager`): mint, list and revoke API keys, rotate the token
//! signing key, and migrate endpoints between storage layouts.

use clap::{Parser, Subcommand};
use serde_json::json;
use std::process::ExitCode;
use webhook_secrets::audit::{AuditRecord, AuditSink, JsonLinesAudit};
use webhook_secrets::auth::keys::ApiKeyRecord;
use webhook_secrets::auth::Role;
use webhook_secrets::domain::ids::{KeyId, TenantId};
use webhook_secrets::store::StoreError;
use webhook_secrets::vault::migrate::{self, MigrationOptions};
use webhook_secrets::vault::{VaultError, VaultLayout};
use webhook_secrets::Config;

#[derive(Parser)]
#[command(
    name = "admin",
    about = "Manage API keys, signing keys and the storage layout of the webhook-secrets vault"
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
    /// Move every endpoint between layouts: first copy (the deployment keeps serving from
    /// the old layout), then, once it runs with the new VaultLayout, again with --delete-old.
    /// Resumable and safe to re-run.
    Migrate {
        /// The layout to move to: keyrings, or per-endpoint (back from keyrings).
        #[arg(long, value_parser = parse_layout)]
        to: VaultLayout,
        /// Delete what the old layout held once its copy is verified: each endpoint's own
        /// secret, or (moving back) a tenant's keyrings once all its endpoints are.
        #[arg(long)]
        delete_old: bool,
        /// Read everything and report what would be done; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
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

fn parse_layout(raw: &str) -> Result<VaultLayout, String> {
    VaultLayout::parse(raw).ok_or_else(|| "--to takes keyrings or per-endpoint".to_owned())
}

/// A progress bar on a terminal, a line per tenth otherwise (a log keeps every line).
fn progress_bar(unit: &'static str) -> impl Fn(usize, usize) + Sync {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let last = std::sync::Mutex::new(usize::MAX);
    move |done: usize, total: usize| {
        let tenth = (done * 10).checked_div(total).unwrap_or(10);
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if terminal {
            let filled = (done * 30).checked_div(total).unwrap_or(30);
            eprint!(
                "\rmigrating [{:<30}] {done}/{total} {unit}",
                "#".repeat(filled)
            );
            if done == total {
                eprintln!();
            }
        } else if tenth != *last {
            eprintln!("migrating: {done}/{total} {unit}");
        }
        *last = tenth;
    }
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
        Command::Migrate {
            to,
            delete_old,
            dry_run,
            json,
        } => {
            let options = MigrationOptions {
                delete_old,
                dry_run,
            };
            let (store, clock) = (app.store.clone(), app.clock.clone());
            let report = match to {
                VaultLayout::Keyrings => {
                    let progress = progress_bar("endpoints");
                    migrate::to_keyrings(store, &config.prefix, clock, options, &progress).await
                }
                VaultLayout::PerEndpoint => {
                    let progress = progress_bar("tenants");
                    migrate::to_per_endpoint(store, &config.prefix, clock, options, &progress).await
                }
            }
            .map_err(|e| format!("the migration stopped (re-run it to resume): {e}"))?;
            // API keys live in key rings on both layouts; any kept one per secret from before
            // move with the first migration.
            let keys_moved = keys.move_into_rings(dry_run).await.map_err(|e| {
                format!("moving API keys into key rings stopped (re-run it to resume): {e}")
            })?;
            JsonLinesAudit::stderr().record(&AuditRecord {
                outcome: if report.problems.is_empty() {
                    "success".to_owned()
                } else {
                    "partial".to_owned()
                },
                ..AuditRecord::new(chrono::Utc::now(), admin_request_id(), "vault.migrate")
            });
            if json {
                let mut out = json!(report);
                out["api_keys_moved_into_rings"] = json!(keys_moved);
                println!("{out}");
            } else {
                let verb = if dry_run { "would be" } else { "were" };
                let (there, old) = match to {
                    VaultLayout::Keyrings => ("in keyrings", "own secrets"),
                    VaultLayout::PerEndpoint => ("in their own secrets", "keyrings"),
                };
                println!(
                    "{} endpoints of {} tenants: {} {verb} copied, {} already {there}, {} verified, {} {old} {verb} deleted",
                    report.endpoints, report.tenants, report.copied, report.already, report.verified, report.deleted
                );
                println!("{keys_moved} API keys kept one per secret {verb} moved into key rings");
                for problem in &report.problems {
                    println!("  {problem}");
                }
            }
            return if report.problems.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} endpoints need attention (listed above)",
                    report.problems.len()
                ))
            };
        }
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
