//! The token endpoint client, one test binary: the wire format of every grant
//! against a loopback server, the provider presets against their emulators,
//! and the testing kit's authorization server. With feature `jose` or `https`,
//! the suites against real authorization servers started on loopback
//! (oidc-provider on Node, Authlib in a virtualenv; mutual TLS): they fail,
//! never skip, without those servers' packages.
//!
//! The feature-gated modules run in `.ci/run`, one filter each
//! (`oidc_provider::`, `oidc_lifecycle::`, `authlib_jwt_bearer::`, `oidc_mtls::`) after the server
//! they need is installed, in the one `--all-features` build; a filter that
//! runs no test fails.

#[path = "../common/mod.rs"]
mod common;

mod error_messages;
mod oauth2_wire;
mod providers;
mod token_server;

#[cfg(feature = "jose")]
mod authlib_jwt_bearer;
#[cfg(feature = "jose")]
mod oidc_lifecycle;
#[cfg(feature = "https")]
mod oidc_mtls;
#[cfg(feature = "jose")]
mod oidc_provider;
