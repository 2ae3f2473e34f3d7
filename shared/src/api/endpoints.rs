//! `/v1/endpoints` and `/v1/endpoints/{id}`: create, get, list, update and delete.

use super::http::{
    from_json, idempotency, json_value, path_param, query_param, respond, ApiError, Reply, Route,
    MAX_BODY_BYTES,
};
use super::views::EndpointView;
use super::{changeable, endpoint_id, secret_source, version_ids};
use crate::config::App;
use crate::domain::endpoint::{
    EndpointPatch, EndpointStatus, GracePeriod, NewEndpoint, RequestConfig, RotationPolicy,
    SecretSource, DEFAULT_VERSION, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS,
};
use crate::domain::ids::EndpointId;
use crate::domain::secret::SecretSpec;
use crate::vault::EndpointRepository;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Error, Request, Response};
use serde::Deserialize;

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

/// `POST /v1/endpoints`
pub async fn create_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(app, req, Route::native("create-endpoint"), async |call, req| {
        call.audit("endpoint.create", None);
        let writer = call.writer(app, req).await?;
        let raw = json_value(req, false, MAX_BODY_BYTES)?;
        let idempotency = idempotency(req, "create-endpoint", &raw)?;
        let new = from_json::<CreateEndpointBody>(raw)?.validate()?;
        let written = app.endpoints.create_endpoint(&writer, new, idempotency.as_ref())
            .await?;
        let record = &written.record;
        call.audit("endpoint.create", Some(record.endpoint.id.as_str()));
        call.audit_versions([record.secret.version_id.as_str()], written.replayed);
        tracing::debug!(request_id = call.request_id(), endpoint = %record.endpoint.id, secret = %record.secret.value, "endpoint created");
        Reply::json(StatusCode::CREATED, &EndpointView::new(record, true, app))
    })
    .await
}

/// `GET /v1/endpoints/{id}`
pub async fn get_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(
        app,
        req,
        Route::native("get-endpoint"),
        async |call, req| {
            let principal = call.authenticate(app, req).await?;
            let id = endpoint_id(path_param(req, "id", "/v1/endpoints/{id}").as_deref())?;
            let stored = app.endpoints.get_endpoint(&principal.tenant, &id).await?;
            Reply::json(
                StatusCode::OK,
                &EndpointView::new(&stored.record, false, app),
            )
        },
    )
    .await
}

/// `GET /v1/endpoints?limit=&cursor=`
pub async fn list_endpoints(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(
        app,
        req,
        Route::native("list-endpoints"),
        async |call, req| {
            let principal = call.authenticate(app, req).await?;
            let limit = match query_param(req, "limit") {
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
            // A cursor is checked against its tag before the store sees it (see
            // `store::decode_cursor`): one this API never issued for this tenant is 400.
            let cursor = query_param(req, "cursor").filter(|c| !c.is_empty());
            let page = app
                .endpoints
                .list_endpoints(&principal.tenant, cursor, limit)
                .await?;
            let data: Vec<EndpointView> = page
                .endpoints
                .iter()
                .map(|record| EndpointView::new(record, false, app))
                .collect();
            Reply::json(
                StatusCode::OK,
                &serde_json::json!({"data": data, "next_cursor": page.next_cursor}),
            )
        },
    )
    .await
}

/// `DELETE /v1/endpoints/{id}`
pub async fn delete_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(
        app,
        req,
        Route::native("delete-endpoint"),
        async |call, req| {
            // Audited from the start, so an attempt refused for its key or its id is on record too.
            let raw = path_param(req, "id", "/v1/endpoints/{id}");
            call.audit("endpoint.delete", raw.as_deref());
            let writer = call.writer(app, req).await?;
            let id = changeable(endpoint_id(raw.as_deref())?)?;
            let deleted = app.endpoints.delete_endpoint(&writer, &id).await?;
            call.audit_versions(version_ids(&deleted, app), false);
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        },
    )
    .await
}

/// `PATCH /v1/endpoints/{id}`: changes metadata and the rotation policy; never the secret.
pub async fn update_endpoint(app: &App, req: Request) -> Result<Response<Body>, Error> {
    respond(
        app,
        req,
        Route::native("update-endpoint"),
        async |call, req| {
            let raw = path_param(req, "id", "/v1/endpoints/{id}");
            call.audit("endpoint.update", raw.as_deref());
            let writer = call.writer(app, req).await?;
            let id = changeable(endpoint_id(raw.as_deref())?)?;
            let patch = from_json::<UpdateEndpointBody>(json_value(req, false, MAX_BODY_BYTES)?)?
                .validate()?;
            let record = app.endpoints.update_endpoint(&writer, &id, patch).await?;
            Reply::json(StatusCode::OK, &EndpointView::new(&record, false, app))
        },
    )
    .await
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
    status: Option<String>,
    request_config: Option<RequestConfigBody>,
    version: Option<String>,
    rotation_policy: Option<RotationPolicyBody>,
    secret_format: Option<String>,
    secret_bytes: Option<usize>,
    secret: Option<String>,
}

impl CreateEndpointBody {
    fn validate(self) -> Result<NewEndpoint, ApiError> {
        let invalid = |e: crate::domain::endpoint::InvalidEndpoint| ApiError::invalid(e.0);
        let id = self
            .id
            .map(|raw| EndpointId::parse(&raw))
            .transpose()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        if id.as_ref().is_some_and(EndpointId::is_account_secret) {
            return Err(ApiError::invalid(
                "ids starting with '_' are reserved for account-level secrets",
            ));
        }
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
            status: self
                .status
                .as_deref()
                .map(EndpointStatus::parse)
                .transpose()
                .map_err(invalid)?
                .unwrap_or_default(),
            request_config: match self.request_config {
                Some(config) => {
                    RequestConfig::validate(config.timeout_ms, config.headers).map_err(invalid)?
                }
                None => RequestConfig::default(),
            },
            version: NewEndpoint::validate_version(
                self.version.as_deref().unwrap_or(DEFAULT_VERSION),
            )
            .map_err(invalid)?,
            rotation_policy: self
                .rotation_policy
                .map(RotationPolicyBody::validate)
                .transpose()?,
            secret,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationPolicyBody {
    period_days: u64,
    grace_period_seconds: Option<u64>,
}

impl RotationPolicyBody {
    fn validate(self) -> Result<RotationPolicy, ApiError> {
        let grace = match self.grace_period_seconds {
            Some(seconds) => GracePeriod::seconds(seconds)
                .map_err(|e| ApiError::invalid(format!("rotation_policy.{}", e.0)))?,
            None => GracePeriod::default(),
        };
        RotationPolicy::new(self.period_days, grace).map_err(|e| ApiError::invalid(e.0))
    }
}

/// `PATCH` fields: absent leaves a field alone; `rotation_policy: null` turns it off.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEndpointBody {
    url: Option<String>,
    name: Option<String>,
    description: Option<String>,
    topics: Option<Vec<String>>,
    status: Option<String>,
    request_config: Option<RequestConfigBody>,
    version: Option<String>,
    #[serde(default, deserialize_with = "present")]
    rotation_policy: Option<Option<RotationPolicyBody>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl UpdateEndpointBody {
    fn validate(self) -> Result<EndpointPatch, ApiError> {
        let invalid = |e: crate::domain::endpoint::InvalidEndpoint| ApiError::invalid(e.0);
        Ok(EndpointPatch {
            url: self
                .url
                .map(|url| NewEndpoint::validate_url(&url))
                .transpose()
                .map_err(invalid)?,
            name: self
                .name
                .map(|name| NewEndpoint::validate_text("name", &name, MAX_NAME_CHARS))
                .transpose()
                .map_err(invalid)?,
            description: self
                .description
                .map(|d| NewEndpoint::validate_text("description", &d, MAX_DESCRIPTION_CHARS))
                .transpose()
                .map_err(invalid)?,
            topics: self
                .topics
                .map(NewEndpoint::validate_topics)
                .transpose()
                .map_err(invalid)?,
            status: self
                .status
                .as_deref()
                .map(EndpointStatus::parse)
                .transpose()
                .map_err(invalid)?,
            request_config: self
                .request_config
                .map(|c| RequestConfig::validate(c.timeout_ms, c.headers))
                .transpose()
                .map_err(invalid)?,
            version: self
                .version
                .as_deref()
                .map(NewEndpoint::validate_version)
                .transpose()
                .map_err(invalid)?,
            rotation_policy: self
                .rotation_policy
                .map(|policy| policy.map(RotationPolicyBody::validate).transpose())
                .transpose()?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestConfigBody {
    timeout_ms: Option<u32>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}
