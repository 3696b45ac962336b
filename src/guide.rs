//! Guides: the longer walks the README leaves out, compiled as doctests so
//! that their examples stay true. Start with the README's quick start (or
//! [`providers::generic::client_credentials`](crate::providers::generic::client_credentials));
//! come here for:
//!
//! * [`your_own_client`]: a hyper or reqwest client of your own, static
//!   credentials, body types, and the middleware around the layer (timeout,
//!   retries, redirects, limits, the guard);
//! * [`providers`]: the presets for real providers and the test servers;
//! * [`fleet`]: many replicas sharing one token through Redis, and what
//!   happens when the store fails;
//! * [`many_users`]: a token per user, durable on PostgreSQL;
//! * [`modern_oauth2`]: DPoP, `private_key_jwt`, mutual TLS, the device
//!   flow, token exchange and discovery;
//! * [`token_lifecycle`]: pushed, signed and rich authorization requests
//!   (PAR, JAR, RAR), revocation and logout, JWT expiry, rotating assertions
//!   (workload identity);
//! * [`self_configuring`]: a client configured from nothing but the API's
//!   URL (protected resource metadata, dynamic registration, resource
//!   indicators, step-up);
//! * [`cli`]: checking a credential from the terminal.

#[doc = include_str!("../docs/guide/your-own-client.md")]
pub mod your_own_client {}

#[doc = include_str!("../docs/guide/providers.md")]
pub mod providers {}

#[doc = include_str!("../docs/guide/fleet.md")]
pub mod fleet {}

#[doc = include_str!("../docs/guide/many-users.md")]
pub mod many_users {}

#[doc = include_str!("../docs/guide/modern-oauth2.md")]
pub mod modern_oauth2 {}

#[doc = include_str!("../docs/guide/token-lifecycle.md")]
pub mod token_lifecycle {}

#[doc = include_str!("../docs/guide/self-configuring.md")]
pub mod self_configuring {}

#[doc = include_str!("../docs/guide/cli.md")]
pub mod cli {}
