//! `/v1/endpoints/{id}/secret/rotate` and `/v1/endpoints/{id}/secret`: rotate and reveal.

use super::http::{
    from_json, idempotency, json_value, path_param, respond, ApiError, Reply, Route, MAX_BODY_BYTES,
};
use super::views::SecretsView;
use super::{changeable, endpoint_id, secret_source, version_ids};
use crate::config::App;
use crate::domain::endpoint::GracePeriod;
use crate::vault::{EndpointRepository, Rotation};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

/// `POST /v1/endpoints/{id}/secret/rotate`
pub async fn rotate_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(app, req, Route::native("rotate-secret"), async |call, req| {
        let raw_id = path_param(req, "id", "/v1/endpoints/{id}/secret/rotate");
        call.audit("secret.rotate", raw_id.as_deref());
        let writer = call.writer(app, req).await?;
        let id = changeable(endpoint_id(raw_id.as_deref())?)?;
        let raw = json_value(req, true, MAX_BODY_BYTES)?;
        let idempotency = idempotency(req, "rotate-secret", &raw)?;
        let body: RotateSecretBody = from_json(raw)?;
        let grace = match body.grace_period_seconds {
            Some(seconds) => GracePeriod::seconds(seconds).map_err(|e| ApiError::invalid(e.0))?,
            None => GracePeriod::default(),
        };
        let source = secret_source(body.secret, body.secret_format, body.secret_bytes)?;
        let rotation = Rotation {
            source,
            grace,
            idempotency: idempotency.as_ref(),
            invalidate_older: false,
        };
        let written = app.endpoints.rotate_secret(&writer, &id, rotation)
            .await?;
        let record = &written.record;
        call.audit_versions(version_ids(record, app), written.replayed);
        tracing::debug!(request_id = call.request_id(), endpoint = %id, secret = %record.secret.value, "secret rotated");
        // The new secret is shown this once; older ones were shown before and stay masked
        // (reveal, which is audited, shows them again).
        Reply::json(StatusCode::OK, &SecretsView::new(record, false, app))
    })
    .await
}

/// `GET /v1/endpoints/{id}/secret`: the current secret and the older ones still valid, for
/// owners and admins. Every reveal is audited.
pub async fn reveal_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(
        app,
        req,
        Route::native("reveal-secret"),
        async |call, req| {
            let raw = path_param(req, "id", "/v1/endpoints/{id}/secret");
            call.audit("secret.reveal", raw.as_deref());
            let writer = call.writer(app, req).await?;
            let id = endpoint_id(raw.as_deref())?;
            let stored = app.endpoints.get_endpoint(writer.tenant(), &id).await?;
            call.audit_versions(version_ids(&stored.record, app), false);
            Reply::json(StatusCode::OK, &SecretsView::new(&stored.record, true, app))
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateSecretBody {
    grace_period_seconds: Option<u64>,
    secret_format: Option<String>,
    secret_bytes: Option<usize>,
    secret: Option<String>,
}
