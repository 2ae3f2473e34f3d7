//! `sm-strict-proxy`: the quota proxy of `integration_tests::throttle` as a process of its own,
//! so that everything `make test` aims at the Secrets Manager emulator meets AWS's strictness
//! (token reuse, the value size limit, the version quota) rather than moto's leniency.
//!
//! ```text
//! sm-strict-proxy <UPSTREAM_URL> [--port N] [--throttle] [--lenient] [--version-budget N]
//! ```
//!
//! - `UPSTREAM_URL`: the moto server, `http://127.0.0.1:<port>`.
//! - `--port N`: listen on 127.0.0.1:N (default: an ephemeral port).
//! - `--throttle`: also enforce AWS's per-second request quotas (off by default: a test run
//!   is not throttled unless a test asks for it, through a proxy of its own).
//! - `--lenient`: forward writes as moto takes them (strict mode off).
//! - `--version-budget N`: versions allowed per secret within 24 hours (default 100).
//!
//! Prints its base URL (`http://127.0.0.1:<port>`) as the first line on stdout once it is
//! listening, then serves until killed. Each write strict mode answered in moto's place is
//! logged to stderr (operation, secret name, token, outcome; never a value).

use integration_tests::throttle::{Quotas, Strictness, ThrottleProxy, AWS_VERSIONS_PER_WINDOW};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: sm-strict-proxy <UPSTREAM_URL> [--port N] [--throttle] [--lenient] [--version-budget N]";

struct Options {
    upstream: String,
    port: u16,
    throttle: bool,
    strictness: Strictness,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut upstream = None;
    let mut port = 0;
    let mut throttle = false;
    let mut strict = true;
    let mut budget = AWS_VERSIONS_PER_WINDOW;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .and_then(|v| v.parse::<u32>().map_err(|e| format!("{flag} {v:?}: {e}")))
        };
        match arg.as_str() {
            "--port" => {
                port = u16::try_from(number("--port")?).map_err(|e| format!("--port: {e}"))?
            }
            "--version-budget" => budget = number("--version-budget")?,
            "--throttle" => throttle = true,
            "--lenient" => strict = false,
            "-h" | "--help" => return Err(USAGE.into()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            url if upstream.is_none() => upstream = Some(url.to_owned()),
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    let strictness = if strict {
        Strictness::aws()
    } else {
        Strictness::off()
    };
    Ok(Options {
        upstream: upstream.ok_or("the upstream URL is missing")?,
        port,
        throttle,
        strictness: strictness.with_version_budget(budget),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .init();
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(reason) => {
            eprintln!("sm-strict-proxy: {reason}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let quotas = if options.throttle {
        Quotas::aws()
    } else {
        Quotas::unlimited()
    };
    let listen = SocketAddr::from(([127, 0, 0, 1], options.port));
    let proxy =
        match ThrottleProxy::listen_on(listen, &options.upstream, quotas, options.strictness).await
        {
            Ok(proxy) => proxy,
            Err(reason) => {
                eprintln!("sm-strict-proxy: {reason}");
                return ExitCode::FAILURE;
            }
        };
    println!("{}", proxy.url());
    let _ = std::io::stdout().flush();
    eprintln!(
        "sm-strict-proxy: {} -> {} (strict: {}, version budget: {}, throttling: {})",
        proxy.url(),
        options.upstream,
        options.strictness.is_enabled(),
        options.strictness.version_budget(),
        options.throttle
    );

    // Serves until killed.
    std::future::pending::<ExitCode>().await
}
