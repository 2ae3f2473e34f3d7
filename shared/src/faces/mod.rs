//! The five "rotate webhook secret" contracts this product serves besides its own API, one
//! module each, exactly as their public documents describe them (paths, auth headers,
//! bodies, status codes). They all stand on the same tenants, keys and endpoints as the
//! native API: a secret rotated through any of them is the one the native API reveals and
//! verifies. Every one of these documents promises that the old secret stops verifying at
//! once, so their rotations use `Rotation::immediate`.

pub mod composio;
pub mod featurebase;
pub mod fyatu;
pub mod inklink;
pub mod openformat;

use crate::auth::Principal;
use crate::config::App;
use crate::endpoint::{EndpointRecord, SecretSource};
use crate::http::{ApiError, Call};
use crate::ids::EndpointId;
use crate::secret::SecretSpec;
use crate::vault::Rotation;

/// Rotates an endpoint's secret to a new `whsec_` one that alone verifies from now on; owners
/// and admins only.
async fn rotate_endpoint_now(
    app: &App,
    call: &Call,
    principal: &Principal,
    id: &EndpointId,
) -> Result<EndpointRecord, ApiError> {
    principal.require_write()?;
    let rotation = Rotation::immediate(SecretSource::Generate(SecretSpec::default()));
    let written = app
        .vault
        .rotate_secret(&principal.tenant, id, rotation)
        .await?;
    call.audit_versions([written.record.secret.version_id.as_str()], false);
    Ok(written.record)
}
