//! Webhook signing secrets: generation, rotation, signing and verification, kept in AWS
//! Secrets Manager (or an embedded SQLite twin for local work).
//!
//! The layers, each importing only those listed before it (a test fails on any cycle):
//!
//! - [`settings`]: reading numeric and other settings, one error type for them;
//! - [`domain`]: pure types and rules, no I/O;
//! - [`store`]: the storage port and its two backends;
//! - [`events`]: the events of secret changes, and the sinks they go to (EventBridge, the log);
//! - [`audit`]: audit records and where they go;
//! - [`vault`]: the endpoints repository, the product's own records, the sweep and the
//!   rotation protocol;
//! - [`auth`]: API keys, the authenticator, access tokens;
//! - [`config`]: the [`App`] every function builds once from its settings;
//! - `api`, `compat`, `lambda` (feature `lambda`): the native HTTP routes, the five seed
//!   contracts, and the Lambda entry points.

pub mod settings;

pub mod domain;

pub mod store;

pub mod events;

pub mod audit;

pub mod vault;

pub mod auth;

pub mod config;

#[cfg(feature = "lambda")]
pub mod api;
#[cfg(feature = "lambda")]
pub mod compat;
#[cfg(feature = "lambda")]
pub mod lambda;

pub use config::{App, Config};
pub use settings::ConfigError;
