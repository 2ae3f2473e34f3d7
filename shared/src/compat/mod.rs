//! The five "rotate webhook secret" contracts this product serves besides its own API, one
//! module each, exactly as their public documents describe them (paths, auth headers,
//! bodies, status codes). They all stand on the same tenants, keys and endpoints as the
//! native API: a secret rotated through any of them is the one the native API reveals and
//! verifies. Every one of these documents promises that the old secret stops verifying at
//! once, so their rotations use `Rotation::immediate`. Each face answers only the statuses
//! its document lists: its error shape maps every other status to a listed one.

pub mod composio;
pub mod featurebase;
pub mod fyatu;
pub mod inklink;
pub mod openformat;

use crate::api::http::{ApiError, Call};
use crate::auth::Writer;
use crate::config::App;
use crate::domain::endpoint::{EndpointRecord, SecretSource};
use crate::domain::ids::EndpointId;
use crate::domain::secret::SecretSpec;
use crate::store::StoreError;
use crate::vault::{AccountSecret, EndpointRepository, Rotation, VaultError};
use std::future::Future;
use std::time::Duration;

/// How many times a contract's rotation is tried when it loses a compare-and-swap. None of
/// the five documents has a 409, so a lost race is retried here (each attempt reads the
/// record afresh); what still loses after this many is answered as each document's
/// "try again later" status by its error shape.
pub const SWAP_ATTEMPTS: u32 = 4;

/// Runs `attempt` until it does not lose a race, at most [`SWAP_ATTEMPTS`] times, with a short
/// random pause between tries so that racing processes fall out of step.
async fn retry_lost_races<T, F, Fut>(mut attempt: F) -> Result<T, VaultError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, VaultError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(VaultError::Store(StoreError::Conflict)) if tries < SWAP_ATTEMPTS => {
                tokio::time::sleep(jitter(tries)).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Up to 10 ms times the attempt number.
fn jitter(tries: u32) -> Duration {
    let mut byte = [0u8; 2];
    let random = match getrandom::fill(&mut byte) {
        Ok(()) => u64::from(u16::from_le_bytes(byte)),
        Err(_) => 0,
    };
    Duration::from_micros(random % (10_000 * u64::from(tries)))
}

/// Rotates an endpoint's secret to a new `whsec_` one that alone verifies from now on; owners
/// and admins only. An account-level secret is not an endpoint of these contracts: it changes
/// only through its own (`openformat`, `fyatu`), so it answers as not found.
async fn rotate_endpoint_now(
    app: &App,
    call: &Call,
    writer: &Writer,
    id: &EndpointId,
) -> Result<EndpointRecord, ApiError> {
    if id.is_account_secret() {
        return Err(VaultError::not_found().into());
    }
    let written = retry_lost_races(|| {
        let rotation = Rotation::immediate(SecretSource::Generate(SecretSpec::default()));
        app.endpoints.rotate_secret(writer, id, rotation)
    })
    .await?;
    call.audit_versions([written.record.secret.version_id.as_str()], false);
    Ok(written.record)
}

/// Rotates a tenant's account-level secret, retrying a lost race like [`rotate_endpoint_now`].
async fn rotate_account_now(
    app: &App,
    writer: &Writer,
    account: AccountSecret,
) -> Result<EndpointRecord, ApiError> {
    Ok(retry_lost_races(|| app.endpoints.rotate_account_secret(writer, account)).await?)
}
