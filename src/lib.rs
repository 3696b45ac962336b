//! Tower middleware that authenticates outgoing HTTP client requests.
//!
//! Wrap any HTTP client service (hyper-util's client, a `tower::service_fn`, an
//! axum app's upstream client) with [`AuthLayer`] and every request to the
//! credential's origins gets the right headers: Basic, a bearer or personal access
//! token, API keys, or an OAuth2 access token that is fetched, cached, refreshed
//! ahead of expiry with one request at a time, and renewed once on a 401.
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
//! let client = ServiceBuilder::new()
//!     .layer(AuthLayer::new(credential))
//!     .service(http_client);
//! # let _ = client; Ok(())
//! # }
//! ```
//!
//! Modules, by concern:
//!
//! * [`layer`]: [`AuthLayer`], [`AuthService`], what is stamped where, 401 retry;
//! * [`credential`]: [`Credential`] and its builder; [`origin`]: origin scoping;
//! * [`token`]: the managed-token cache and the [`TokenSource`](token::TokenSource) trait;
//! * [`oauth2`]: token endpoint client, grants, PKCE;
//! * [`replay`]: the request body that can be sent twice;
//! * [`error`]: the one [`Error`] type.
//!
//! Nothing secret is ever printed: every public type's `Debug` is redacted, stamped
//! header values are marked sensitive, errors carry no credential, and tracing
//! events name generations and outcomes, never tokens.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod credential;
pub mod error;
pub mod layer;
pub mod oauth2;
pub mod origin;
pub mod providers;
pub mod replay;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod token;

pub use credential::{Credential, CredentialBuilder};
pub use error::{BoxError, Error};
pub use layer::{AuthLayer, AuthService, GuardLayer, ResponseFuture};
pub use origin::Origin;
pub use replay::ReplayBody;
