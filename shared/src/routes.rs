//! The native API's routes, one public function per Lambda function. Each parses the request,
//! makes one vault call and shapes the response.

use crate::config::App;
use crate::endpoint::{
    EndpointRecord, NewEndpoint, SecretSource, SecretVersion, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS,
};
use crate::http::{json_body, path_param, query_param, ApiError, Call, Reply};
use crate::ids::EndpointId;
use crate::secret::{SecretFormat, SecretSpec, WebhookSecret};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

/// `POST /v1/endpoints`
pub async fn create_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "create-endpoint");
    let outcome = async {
        let principal = call.authenticate(app, &req).await?;
        principal.require_write()?;
        let body: CreateEndpointBody = json_body(&req, false)?;
        let new = body.validate()?;
        let record = app.vault.create_endpoint(&principal.tenant, new).await?;
        tracing::debug!(request_id = call.request_id(), endpoint = %record.endpoint.id, secret = %record.secret.value, "endpoint created");
        Reply::json(StatusCode::CREATED, &EndpointView::new(&record, true))
    }
    .await;
    Ok(call.finish(outcome))
}

/// `GET /v1/endpoints/{id}`
pub async fn get_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "get-endpoint");
    let outcome = async {
        let principal = call.authenticate(app, &req).await?;
        let id = endpoint_id(&req, "/v1/endpoints/{id}")?;
        let stored = app.vault.get_endpoint(&principal.tenant, &id).await?;
        Reply::json(StatusCode::OK, &EndpointView::new(&stored.record, false))
    }
    .await;
    Ok(call.finish(outcome))
}

/// `GET /v1/endpoints?limit=&cursor=`
pub async fn list_endpoints(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "list-endpoints");
    let outcome = async {
        let principal = call.authenticate(app, &req).await?;
        let limit = match query_param(&req, "limit") {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "limit must be a whole number from 1 to {MAX_PAGE_SIZE}"
                    ))
                })?,
        };
        let cursor = query_param(&req, "cursor").filter(|c| !c.is_empty());
        let page = app
            .vault
            .list_endpoints(&principal.tenant, cursor, limit)
            .await
            .map_err(|err| match err {
                crate::vault::VaultError::Invalid(_) if cursor.is_some() => {
                    ApiError::invalid("cursor is not one this API returned")
                }
                other => other.into(),
            })?;
        let data: Vec<EndpointView> = page
            .endpoints
            .iter()
            .map(|record| EndpointView::new(record, false))
            .collect();
        Reply::json(
            StatusCode::OK,
            &serde_json::json!({"data": data, "next_cursor": page.next_cursor}),
        )
    }
    .await;
    Ok(call.finish(outcome))
}

/// `DELETE /v1/endpoints/{id}`
pub async fn delete_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "delete-endpoint");
    let outcome = async {
        let principal = call.authenticate(app, &req).await?;
        principal.require_write()?;
        let id = endpoint_id(&req, "/v1/endpoints/{id}")?;
        app.vault.delete_endpoint(&principal.tenant, &id).await?;
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    }
    .await;
    Ok(call.finish(outcome))
}

/// `POST /v1/endpoints/{id}/secret/rotate`
pub async fn rotate_secret(app: &App, req: Request) -> Result<Response<Body>, Error> {
    let call = Call::begin(&req, "rotate-secret");
    let outcome = async {
        let principal = call.authenticate(app, &req).await?;
        principal.require_write()?;
        let id = endpoint_id(&req, "/v1/endpoints/{id}/secret/rotate")?;
        let body: RotateSecretBody = json_body(&req, true)?;
        let source = secret_source(body.secret, body.secret_format, body.secret_bytes)?;
        let record = app.vault.rotate_secret(&principal.tenant, &id, source).await?;
        tracing::debug!(request_id = call.request_id(), endpoint = %id, secret = %record.secret.value, "secret rotated");
        Reply::json(
            StatusCode::OK,
            &RotatedView {
                endpoint_id: record.endpoint.id.as_str(),
                secret: SecretView::new(&record.secret, true),
            },
        )
    }
    .await;
    Ok(call.finish(outcome))
}

fn endpoint_id(req: &Request, template: &str) -> Result<EndpointId, ApiError> {
    let raw = path_param(req, "id", template)
        .ok_or_else(|| ApiError::invalid("the path has no endpoint id"))?;
    EndpointId::parse(&raw).map_err(|e| ApiError::invalid(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEndpointBody {
    id: Option<String>,
    url: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    topics: Vec<String>,
    secret_format: Option<String>,
    secret_bytes: Option<usize>,
    secret: Option<String>,
}

impl CreateEndpointBody {
    fn validate(self) -> Result<NewEndpoint, ApiError> {
        let invalid = |e: crate::endpoint::InvalidEndpoint| ApiError::invalid(e.0);
        let id = self
            .id
            .map(|raw| EndpointId::parse(&raw))
            .transpose()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let mut secret = secret_source(self.secret, self.secret_format, self.secret_bytes)?;
        if matches!(secret, SecretSource::LikeCurrent) {
            secret = SecretSource::Generate(SecretSpec::default());
        }
        Ok(NewEndpoint {
            id,
            url: NewEndpoint::validate_url(&self.url).map_err(invalid)?,
            name: NewEndpoint::validate_text("name", &self.name, MAX_NAME_CHARS)
                .map_err(invalid)?,
            description: NewEndpoint::validate_text(
                "description",
                &self.description,
                MAX_DESCRIPTION_CHARS,
            )
            .map_err(invalid)?,
            topics: NewEndpoint::validate_topics(self.topics).map_err(invalid)?,
            secret,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateSecretBody {
    secret_format: Option<String>,
    secret_bytes: Option<usize>,
    secret: Option<String>,
}

/// Where the next secret comes from: the caller's own (validated), or generated to the
/// requested format and length, or — with neither — generated like the current one.
fn secret_source(
    supplied: Option<String>,
    format: Option<String>,
    bytes: Option<usize>,
) -> Result<SecretSource, ApiError> {
    let format = format.as_deref().map(SecretFormat::parse).transpose()?;
    if let Some(raw) = supplied {
        let raw = Zeroizing::new(raw);
        let secret = WebhookSecret::parse(&raw)?;
        if bytes.is_some() {
            return Err(ApiError::invalid(
                "secret_bytes applies only to generated secrets; omit it when supplying a secret",
            ));
        }
        if format.is_some_and(|f| f != secret.format()) {
            return Err(ApiError::invalid("secret does not match secret_format"));
        }
        return Ok(SecretSource::Supplied(secret));
    }
    match (format, bytes) {
        (None, None) => Ok(SecretSource::LikeCurrent),
        (Some(SecretFormat::Uuid), Some(_)) => Err(ApiError::invalid(
            "secret_bytes applies only to the whsec format",
        )),
        (format, bytes) => Ok(SecretSource::Generate(SecretSpec::new(
            format.unwrap_or(SecretFormat::Whsec),
            bytes,
        )?)),
    }
}

#[derive(Serialize)]
pub struct SecretView<'a> {
    /// Present only in the response that creates the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    masked: String,
    format: SecretFormat,
    version_id: &'a str,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

impl<'a> SecretView<'a> {
    fn new(version: &'a SecretVersion, reveal: bool) -> Self {
        Self {
            value: reveal.then(|| version.value.expose()),
            masked: version.value.fingerprint(),
            format: version.value.format(),
            version_id: version.version_id.as_str(),
            created_at: version.created_at,
            expires_at: version.expires_at,
        }
    }
}

#[derive(Serialize)]
pub struct EndpointView<'a> {
    id: &'a str,
    url: &'a str,
    name: &'a str,
    description: &'a str,
    topics: &'a [String],
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    secret: SecretView<'a>,
}

impl<'a> EndpointView<'a> {
    fn new(record: &'a EndpointRecord, reveal: bool) -> Self {
        let endpoint = &record.endpoint;
        Self {
            id: endpoint.id.as_str(),
            url: &endpoint.url,
            name: &endpoint.name,
            description: &endpoint.description,
            topics: &endpoint.topics,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
            secret: SecretView::new(&record.secret, reveal),
        }
    }
}

#[derive(Serialize)]
struct RotatedView<'a> {
    endpoint_id: &'a str,
    secret: SecretView<'a>,
}
