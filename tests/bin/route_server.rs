//! `route-server`: every function's route on one HTTP/1.1 port, in one process, so that tests
//! can run several processes on one vault as production runs many Lambda execution
//! environments.
//!
//! It is the Lambda runtime's stand-in, not product code: it builds the app exactly as each
//! function's `lambda::run_http` does (`App::from_env()`: `VAULT_BACKEND`, `VAULT_PATH`, `VAULT_PREFIX`,
//! `AWS_ENDPOINT_URL`, ...), and hands each request to its route function as API Gateway
//! (HTTP API, payload 2.0) does: the matched path parameters and the decoded query string
//! attached to the request. The routes are the `[workspace.metadata.lambda.watch.router]`
//! table of the root `Cargo.toml`.
//!
//! ```text
//! route-server [--listen 127.0.0.1:0] [--addr-file PATH] [--exit-on-stdin-eof]
//! ```
//!
//! `--addr-file` receives the bound address (`127.0.0.1:PORT`) once it accepts connections.
//! With `--exit-on-stdin-eof` the server exits when its stdin closes, so a test that dies
//! without cleaning up cannot leave it running.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use webhook_secrets::{api as routes, compat as faces, App};

/// The functions, one per route, as named in the router table.
#[derive(Debug, Clone, Copy)]
enum Function {
    ListEndpoints,
    CreateEndpoint,
    GetEndpoint,
    DeleteEndpoint,
    UpdateEndpoint,
    RotateSecret,
    RevealSecret,
    SignMessage,
    VerifyMessage,
    OpenformatWebhookSecret,
    InklinkRotateSecret,
    ComposioRotateSecret,
    FyatuAuthToken,
    FyatuRegenerateSecret,
    FeaturebaseRefreshSecret,
}

/// The root `Cargo.toml`'s `[workspace.metadata.lambda.watch.router]`, path by path.
const ROUTER: &[(&str, Method, Function)] = &[
    ("/v1/endpoints", Method::GET, Function::ListEndpoints),
    ("/v1/endpoints", Method::POST, Function::CreateEndpoint),
    ("/v1/endpoints/{id}", Method::GET, Function::GetEndpoint),
    (
        "/v1/endpoints/{id}",
        Method::DELETE,
        Function::DeleteEndpoint,
    ),
    (
        "/v1/endpoints/{id}",
        Method::PATCH,
        Function::UpdateEndpoint,
    ),
    (
        "/v1/endpoints/{id}/secret/rotate",
        Method::POST,
        Function::RotateSecret,
    ),
    (
        "/v1/endpoints/{id}/secret",
        Method::GET,
        Function::RevealSecret,
    ),
    (
        "/v1/endpoints/{id}/sign",
        Method::POST,
        Function::SignMessage,
    ),
    (
        "/v1/endpoints/{id}/verify",
        Method::POST,
        Function::VerifyMessage,
    ),
    (
        "/v1/webhook/secret",
        Method::POST,
        Function::OpenformatWebhookSecret,
    ),
    (
        "/api/v1/webhook/endpoints/{id}/rotate-secret",
        Method::POST,
        Function::InklinkRotateSecret,
    ),
    (
        "/api/v3/webhook_subscriptions/{id}/rotate_secret",
        Method::POST,
        Function::ComposioRotateSecret,
    ),
    ("/api/v3/auth/token", Method::POST, Function::FyatuAuthToken),
    (
        "/api/v3/webhooks/secret/regenerate",
        Method::POST,
        Function::FyatuRegenerateSecret,
    ),
    (
        "/v2/webhooks/{id}/secret",
        Method::POST,
        Function::FeaturebaseRefreshSecret,
    ),
];

async fn invoke(app: &App, function: Function, req: Request) -> Result<Response<Body>, Error> {
    match function {
        Function::ListEndpoints => routes::list_endpoints(app, req).await,
        Function::CreateEndpoint => routes::create_endpoint(app, req).await,
        Function::GetEndpoint => routes::get_endpoint(app, req).await,
        Function::DeleteEndpoint => routes::delete_endpoint(app, req).await,
        Function::UpdateEndpoint => routes::update_endpoint(app, req).await,
        Function::RotateSecret => routes::rotate_secret(app, req).await,
        Function::RevealSecret => routes::reveal_secret(app, req).await,
        Function::SignMessage => routes::sign_message(app, req).await,
        Function::VerifyMessage => routes::verify_message(app, req).await,
        Function::OpenformatWebhookSecret => {
            faces::openformat::generate_webhook_secret(app, req).await
        }
        Function::InklinkRotateSecret => faces::inklink::rotate_endpoint_secret(app, req).await,
        Function::ComposioRotateSecret => {
            faces::composio::rotate_subscription_secret(app, req).await
        }
        Function::FyatuAuthToken => faces::fyatu::issue_token(app, req).await,
        Function::FyatuRegenerateSecret => faces::fyatu::regenerate_secret(app, req).await,
        Function::FeaturebaseRefreshSecret => {
            faces::featurebase::refresh_webhook_secret(app, req).await
        }
    }
}

/// The function for `method` and `path`, with the path parameters the template captured.
fn route(method: &Method, path: &str) -> Option<(Function, HashMap<String, String>)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    ROUTER.iter().find_map(|(template, wanted, function)| {
        let pattern: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        if wanted != method || pattern.len() != segments.len() {
            return None;
        }
        let mut params = HashMap::new();
        for (pattern, segment) in pattern.iter().zip(&segments) {
            match pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => {
                    params.insert(name.to_owned(), (*segment).to_owned());
                }
                None if pattern == segment => {}
                None => return None,
            }
        }
        Some((*function, params))
    })
}

async fn handle(app: &App, request: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Some((function, path_params)) = route(&parts.method, parts.uri.path()) else {
        // What API Gateway's HTTP API answers for a route it does not have.
        return plain(StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#);
    };
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return plain(StatusCode::BAD_REQUEST, r#"{"message":"Bad Request"}"#),
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(_) => Body::Binary(bytes.to_vec()),
        }
    };
    let query = parts.uri.query().map(str::to_owned);
    let mut req = lambda_http::http::Request::from_parts(parts, body);
    if !path_params.is_empty() {
        req = req.with_path_parameters(path_params);
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let map: QueryMap = query.parse().unwrap_or_default();
        req = req.with_query_string_parameters(map);
    }
    match invoke(app, function, req).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let bytes = match body {
                Body::Empty => Bytes::new(),
                Body::Text(text) => Bytes::from(text),
                Body::Binary(bytes) => Bytes::from(bytes),
                _ => Bytes::new(),
            };
            hyper::Response::from_parts(parts, Full::new(bytes))
        }
        // A failed invocation: API Gateway answers 500 with this body.
        Err(err) => {
            tracing::error!(error = %err, "the function failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message":"Internal Server Error"}"#,
            )
        }
    }
}

fn plain(status: StatusCode, body: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    response
}

struct Options {
    listen: SocketAddr,
    addr_file: Option<std::path::PathBuf>,
    exit_on_stdin_eof: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        addr_file: None,
        exit_on_stdin_eof: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let raw = args.next().ok_or("--listen needs an address")?;
                options.listen = raw.parse().map_err(|e| format!("--listen {raw:?}: {e}"))?;
            }
            "--addr-file" => {
                options.addr_file = Some(args.next().ok_or("--addr-file needs a path")?.into());
            }
            "--exit-on-stdin-eof" => options.exit_on_stdin_eof = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    webhook_secrets::lambda::logging::init();
    let options = options()?;
    let app = match App::from_env().await {
        Ok(app) => Arc::new(app),
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            return Err(err.into());
        }
    };
    let listener = TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    if let Some(path) = &options.addr_file {
        // Written whole, then renamed, so a reader never sees half an address.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, addr.to_string())?;
        std::fs::rename(&partial, path)?;
    }
    eprintln!("route-server listening on http://{addr}");
    if options.exit_on_stdin_eof {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: pause rather than spin.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(handle(&app, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
