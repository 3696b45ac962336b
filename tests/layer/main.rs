//! The layer around a request, one test binary: what it stamps (static
//! credentials, through tower-test's mock and a real hyper server), the body
//! types it lets through and the bodies it replays after a 401, readiness
//! while a token is awaited, the guard under redirect followers, and what never
//! leaves with a request or a log line (`Debug`, tracing events). With feature
//! `reqwest` or `https`, the clients that sit under it.
//!
//! The feature-gated modules run in `.ci/run`, which builds this binary with
//! `--all-features` and fails if a filter such as `reqwest_client::` runs no
//! test: a module compiled out cannot pass as empty.

#[path = "../common/mod.rs"]
mod common;

mod body_types;
mod hyper_static;
mod no_secret_in_logs;
mod redaction;
mod replay_body;
mod stack_guard;
mod stack_readiness;
mod static_credentials;
mod step_up;

#[cfg(feature = "https")]
mod https_client;
#[cfg(feature = "reqwest")]
mod reqwest_client;
