//! Tower middleware that authenticates outgoing HTTP client requests.
//!
//! Wrap any HTTP client service (hyper-util's client, a `tower::service_fn`, an
//! axum app's upstream client) with [`AuthLayer`] and every request to the
//! credential's origins gets the right headers: Basic, a bearer or personal access
//! token, API keys, or an OAuth2 access token that is fetched, cached, refreshed
//! ahead of expiry with one request at a time, and renewed once on a 401.
//!
//! The common case, a backend calling an API with OAuth2 client credentials,
//! is one expression (features `providers` and `https`, on by default):
//!
//! ```
//! use bytes::Bytes;
//! use http::Request;
//! use http_body_util::Full;
//! use tower::ServiceExt;
//! use tower_client_auth::providers::generic;
//! # use tower_client_auth::testing::token_server::TokenServer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_client_auth::BoxError> {
//! # let server = TokenServer::builder().client("my-client-id", "my-secret").start().await;
//! # let (token_url, api_origin, me) = (server.token_url(), server.base_url(), server.api_url("me"));
//! // token_url: "https://auth.example.com/oauth2/token", api_origin: "https://api.example.com"
//! let api = generic::client_credentials(token_url, "my-client-id", "my-secret")
//!     .api_origin(&api_origin)
//!     .scopes(["read"])
//!     .https()?;
//! let request = Request::get(me).body(Full::new(Bytes::new()))?; // an API URL
//! assert_eq!(api.oneshot(request).await?.status(), 200);
//! # Ok(())
//! # }
//! ```
//!
//! Any other credential goes on any client the same way:
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_client_auth::{AuthLayer, Credential};
//!
//! # fn wrap<S>(http_client: S) -> Result<(), tower_client_auth::Error> {
//! let credential = Credential::builder()
//!     .origin("https://api.example.com")
//!     .api_key("x-api-key", "my-key")
//!     .bearer("my-personal-access-token")
//!     .build()?;
//! let auth = AuthLayer::new(credential);
//! let client = ServiceBuilder::new()
//!     .layer(auth.clone())
//!     .layer(auth.guard()) // no stamped header leaves its origin, redirects included
//!     .service(http_client);
//! # let _ = client; Ok(())
//! # }
//! ```
//!
//! The [`guide`] has the longer walks: your own client and the rest of the
//! stack, providers, fleets, many users, modern OAuth2, a client configured
//! from an API's URL, the CLI.
//!
//! Modules, by concern, from the ground up (each builds only on those above it
//! in this list):
//!
//! * [`error`]: the one [`Error`] type;
//! * [`origin`] and [`replay`]: HTTP primitives (origin scoping, the request
//!   body that can be sent twice), with the `WWW-Authenticate` parser and the
//!   request marks beside them in the crate's `wire` module;
//! * [`token`]: the vocabulary: [`Token`](token::Token), the
//!   [`TokenSource`](token::TokenSource) trait, [`ManagedOptions`](token::ManagedOptions), [`Stats`](token::Stats);
//! * `store` (feature `store`): shared token stores ([`TokenStore`](store::TokenStore),
//!   [`SharedStore`](store::SharedStore), `RedisStore`, `PgStore`) and the
//!   fleet's lease protocol;
//! * the token cache (single flight, refresh ahead, cool-downs) stays inside
//!   the crate, behind [`Credential`];
//! * [`credential`]: [`Credential`] and its builder;
//! * [`layer`]: [`AuthLayer`], [`AuthService`], what is stamped where, 401 retry,
//!   and [`GuardLayer`]; one layer whatever it stamps, a [`Credential`] or a
//!   user's (the [`Select`](layer::Select) seam);
//! * [`oauth2`]: the token endpoint client, grants, PKCE, device flow,
//!   discovery, pushed and signed authorization requests (PAR, JAR),
//!   revocation, rotating assertions (and, feature `jose`, DPoP and
//!   `private_key_jwt` keys);
//! * `users` (feature `users`): many users' tokens behind one layer
//!   (`UsersLayer` is `AuthLayer` with `Users` as its selector);
//! * [`retry_policy`]: a ready `tower::retry` policy for transient failures;
//! * `providers`, `https`, `reqwest`, `testing`: presets, ready clients and
//!   emulators, built on the public API;
//! * [`guide`]: documentation only, the longer walks.
//!
//! Nothing secret is ever printed: every public type's `Debug` is redacted, stamped
//! header values are marked sensitive, errors carry no credential, and tracing
//! events name generations and outcomes, never tokens.
//!
//! # Composing with other middleware
//!
//! The layer goes among tower's and tower-http's middleware like any other. The
//! recommended order, outermost first:
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::retry::RetryLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_client_auth::retry_policy::RetryTransient;
//! use tower_client_auth::{AuthLayer, Credential};
//! use tower_http::follow_redirect::FollowRedirectLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_client_auth::BoxError> {
//! # let http_client = service_fn(|_: Request<Full<Bytes>>| async {
//! #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
//! # });
//! let credential = Credential::builder()
//!     .origin("https://api.example.com")
//!     .api_key("x-api-key", "k3y")
//!     .bearer("pat")
//!     .build()?;
//! let auth = AuthLayer::new(credential).without_retry();
//! let client = ServiceBuilder::new()
//!     // 1. tracing (tower-http's TraceLayer), to see requests as the caller sent them
//!     // 2. an overall deadline: it covers a token wait and a 401 retry
//!     .timeout(Duration::from_secs(30))
//!     // 3. retries of transient failures (transport errors, 5xx, 429 with
//!     //    Retry-After): each attempt is stamped afresh by the layer below
//!     .layer(RetryLayer::new(RetryTransient::new()))
//!     // 4. a redirect follower above the layer: every hop is stamped, or not, by
//!     //    its own origin
//!     .layer(FollowRedirectLayer::new())
//!     // 5. the layer
//!     .layer(auth.clone())
//!     // 6. concurrency limit, rate limit or buffer: taken only when a request is
//!     //    sent; a request waiting for a token holds no permit
//!     .concurrency_limit(64)
//!     // 7. the guard, last before the wire
//!     .layer(auth.guard())
//!     .service(http_client);
//! # let req = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
//! # client.oneshot(req).await?;
//! # Ok(())
//! # }
//! ```
//!
//! * **The guard** ([`GuardLayer`]) removes everything the layer added (every
//!   header the credential stamped, and the `DPoP` proof of a DPoP-bound token)
//!   from any request to an origin it is not for, hop by hop. The layer itself
//!   stamps only requests to its origins, but it cannot see the hops that a
//!   redirect follower *below* it makes: tower-http's `FollowRedirect` copies the
//!   request's headers and strips only `Authorization` and `Cookie` across
//!   origins, so without the guard an API key such as `x-api-key` goes to whatever
//!   host the redirect names (and so does everything with a client that follows
//!   redirects on its own). With the guard directly above the client, any order of
//!   the layers above is safe. A `UsersLayer` has its own, built the same way
//!   (`UsersLayer::guard`, feature `users`). The guard also marks a response's
//!   `DPoP-Nonce` with the hop that sent it, so that the layer files it under
//!   that origin.
//! * **URLs**: every URL a credential goes to (its origins, the token URL, the
//!   device authorization endpoint, a discovery issuer) follows one rule, that
//!   of [`Origin`]: `https://`, plain `http://` only to loopback or when allowed
//!   explicitly, and no user information.
//! * **Readiness**: a request that must wait for a token gives back the readiness
//!   it was granted (a `ConcurrencyLimit` permit, a `Buffer` slot) and drives the
//!   inner service to readiness only once the token is there, as tower's retry
//!   does before re-sending. So the token client may share the API's limited
//!   client: token requests always get a permit.
//! * **Retry**: this crate's own 401 retry happens inside the layer. A
//!   `tower::retry` layer for other failures goes above it, where the caller's
//!   body type is seen: [`retry_policy::RetryTransient`] is a ready policy
//!   (transport errors, 5xx for idempotent methods, 429 with `Retry-After`)
//!   for `Full<Bytes>`, `String`, `reqwest::Body` and [`ReplayBody`].
//!   Below the layer in the default mode the body is a [`ReplayBody`], which is
//!   `Default` (for redirects turned into `GET`) and has
//!   [`try_clone`](ReplayBody::try_clone) for a retry policy's `clone_request`
//!   (a body the layer records for its own 401 retry is not cloned).
//! * **Body types**: with [`AuthLayer::without_retry`] the inner service gets the
//!   caller's `Request<B>` unchanged. With 401 retry on (the default) it gets
//!   `Request<ReplayBody<B>>`: build the client for that body type, or the
//!   compiler reports that the client does not implement
//!   `Service<Request<ReplayBody<..>>>`.
//! * **Runtime**: managed tokens are fetched, refreshed and retired on the Tokio
//!   runtime of the request that needs them (any flavour). Without one, a request
//!   that needs a token fails with [`Error::is_no_runtime`]; static credentials
//!   and a cached token that the clock says is valid work anywhere. A token is
//!   retired by a task on the runtime that fetched it; if that runtime shuts
//!   down, requests check the expiry themselves and the task restarts on theirs.
//!   A runtime that stays alive but is never driven again (a `current_thread`
//!   runtime left outside `block_on` while requests run elsewhere) stalls that
//!   task: keep the credential's requests on runtimes that run, or call
//!   [`Credential::invalidate`] when you move them.

//!
//! # Observability
//!
//! **Tracing.** Every span and event names its credential in a `credential`
//! field, on the event or on the `token_request` span around it: the name given
//! to [`CredentialBuilder::name`], else the credential's origins and, for an
//! OAuth2 source, its token URL without the query
//! ([`Credential::name`]). No field carries a token, secret or header value. A
//! token request runs in its own task, inside a `token_request` span (DEBUG;
//! fields `credential`, `flight`) whose parent is the span of the request that
//! started it, so a first fetch shows up under the caller's own request span.
//! Targets are the module paths below `tower_client_auth`:
//!
//! | target | level | message | fields |
//! |---|---|---|---|
//! | `cache` | DEBUG | `token fetched` | `credential`, `generation`, `attempts`, `elapsed_ms` |
//! | `cache` | DEBUG | `token request failed, retrying` | `credential`, `attempt`, `delay_ms`, `error` |
//! | `cache` | WARN | `token request failed` | `credential`, `attempts`, `transient`, `elapsed_ms`, `error` |
//! | `cache`, `cache::driver` | DEBUG | `refreshing token ahead of expiry`, `token retired at expiry`, `token invalidated`, `cool-down ended early` | `credential`, `generation` |
//! | `cache` | ERROR | `token-change hook panicked` | `credential` |
//! | `layer::future` | DEBUG | `retrying request after 401` | `credential`, `failed_generation`, `generation` |
//! | `layer::future` | DEBUG | `401 not retried: request body cannot be replayed`, `401 not retried: no newer token` | `credential` (`error`) |
//! | `layer::guard` | DEBUG | `credential headers removed from a request to another origin` | `credential`, `removed` |
//! | `oauth2::source` | DEBUG | `refresh token rejected, running the grant again` | |
//! | `store::shared` | DEBUG / INFO | `token adopted from the shared store`, `token stored for the fleet`, `shared token store reachable again` | `credential`, `key` (the store key: a hash, no secret) |
//! | `store::shared`, `store::outage`, `store::renewal` | WARN | `shared token store unavailable`, `token write failed; retrying under the lease`, `token not stored: serving it here…`, `token write lost (lease expired, or a newer entry): reading again`, `an unstored token was superseded`, `stored entry unusable; it will be replaced`, `lease lost while fetching; …`, `the shared store holds an older entry than this process (it lost writes): …` | `credential`, `key`, `error` |
//! | `store::cooldown` | WARN / INFO | `permanent failure: the whole fleet cools down`, `fleet cool-down ended`, `fleet cool-down not recorded: this process cools down alone` | `credential`, `key`, `cooldown_ms`, `failures_in_a_row` |
//! | `store::redis` | WARN | `Redis change notifications unavailable …: waiters poll` | |
//! | `users::registry` | DEBUG | `login stored` | `credential`, `user` (the application's user key) |
//! | `users::source` | INFO | `refresh token rejected: login required` | `user`; `credential` on its `token_request` span |
//! | `layer` | WARN | `no DPoP proof` (the system random source failed) | `credential`, `error` |
//!
//! **Metrics** (feature `metrics`) go through the [`metrics`](https://docs.rs/metrics)
//! facade, so whatever exporter the application installs (Prometheus,
//! OpenTelemetry, StatsD) gets them; without a recorder they cost nothing more
//! than a check. Each has the label `credential` (as above; one value per
//! credential, never per user) and, where said, `outcome` =
//! `success` / `transient_error` / `permanent_error`:
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `tower_client_auth_token_requests_total` | counter, `outcome` | token requests sent, each attempt |
//! | `tower_client_auth_token_fetch_duration_seconds` | histogram, `outcome` | a token fetch from start to token (retries included) |
//! | `tower_client_auth_retries_on_401_total` | counter | requests re-sent after a 401 |
//! | `tower_client_auth_coalesced_waiters_total` | counter | requests that waited on a fetch someone else started |
//! | `tower_client_auth_refreshes_ahead_total` | counter | background refreshes before expiry |
//! | `tower_client_auth_cooldowns_total` | counter | permanent failures that started a cool-down |
//! | `tower_client_auth_dpop_nonce_retries_total` | counter | API requests re-sent with a new DPoP nonce (feature `jose`; the token endpoint's own nonce round trip is part of its token request) |
//! | `tower_client_auth_token_expiry_timestamp_seconds` | gauge | when the current token expires (Unix time): `… - time()` in PromQL is the seconds left, always current (a "seconds left" gauge would be right only when set) |
//!
//! Under [`users::Users`] every user's credential has the one label of the
//! `Users` (never a user key), so the counters add up over the users and the
//! expiry gauge shows the latest token fetched for any of them.
//!
//! [`Credential::stats`] gives the same counts without the feature.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::return_self_not_must_use)]

mod cache;
pub mod credential;
pub mod error;
pub mod guide;
#[cfg(feature = "https")]
#[cfg_attr(docsrs, doc(cfg(feature = "https")))]
pub mod https;
#[cfg(feature = "jose")]
mod jose;
pub mod layer;
#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub mod oauth2;
#[cfg(feature = "providers")]
#[cfg_attr(docsrs, doc(cfg(feature = "providers")))]
pub mod providers;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
pub mod retry_policy;
mod rng;
#[cfg(feature = "store")]
#[cfg_attr(docsrs, doc(cfg(feature = "store")))]
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod token;
mod wire;
pub use wire::{origin, replay};
#[cfg(feature = "users")]
#[cfg_attr(docsrs, doc(cfg(feature = "users")))]
pub mod users;

pub use credential::{Credential, CredentialBuilder};
pub use error::{BoxError, Error};
pub use layer::{AuthLayer, AuthService, GuardLayer, ResponseFuture};
pub use origin::Origin;
pub use replay::ReplayBody;
/// The `secrecy` crate this crate's secrets are typed with
/// ([`Token::access_token`](token::Token::access_token) is a `SecretString`):
/// `use tower_client_auth::secrecy::ExposeSecret` reads one without depending on
/// the exact version yourself.
pub use secrecy;

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
