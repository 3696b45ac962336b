//! The token endpoint client, one test binary: the wire format of every grant
//! against a loopback server, the provider presets against their emulators,
//! and the testing kit's authorization server. With feature `jose` or `https`,
//! the suites against real authorization servers started on loopback
//! (oidc-provider on Node, Authlib in a virtualenv; mutual TLS): they fail,
//! never skip, without those servers' packages.
//!
//! The feature-gated modules run in `.ci/run`, one filter each
//! (`oidc_provider::`, `oidc_lifecycle::`, `authlib_jwt_bearer::`, `oidc_mtls::`,
//! `mcp_resource::`) after the server
//! they need is installed, in the one `--all-features` build; a filter that
//! runs no test fails.

#[path = "../common/mod.rs"]
mod common;

mod error_messages;
mod oauth2_wire;
mod providers;
mod resource_hostile;
mod token_server;

#[cfg(feature = "jose")]
mod authlib_jwt_bearer;
#[cfg(feature = "jose")]
mod oidc_lifecycle;
// Needs Node (tests/oidc) and openssl: with the other server suites (jose's),
// not in the default `cargo test`, where `https` is on.
#[cfg(all(feature = "https", feature = "jose"))]
mod oidc_mtls;
#[cfg(feature = "jose")]
mod oidc_provider;
// Needs Node (tests/mcp) and Redis: with the other server suites, not in
// the default `cargo test`.
#[cfg(feature = "redis")]
mod mcp_resource;
