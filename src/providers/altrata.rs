//! Altrata: `POST https://api-auth.altrata.com/oauth2/token?grant_type=client_credentials`
//! with `x-api-key`, Basic `username:password` and a form content type, answering
//! 8-hour bearer tokens. API calls carry **both** `x-api-key` and the bearer token.
//!
//! **Requesting a new token terminates the previous one.** This preset therefore
//! never refreshes ahead: a token is used to its end, a new one is requested only
//! once it has expired or been rejected, and a burst of 401s on one token leads to
//! exactly one token request. Several processes sharing one Altrata account log
//! each other out unless they share the token: give them one
//! [`SharedStore`] (Redis) with
//! [`AltrataBuilder::shared_store`], which fails closed: no process requests a
//! token without the fleet's lease.
//!
//! ```
//! # fn f<S>(http: S) -> Result<(), tower_client_auth::Error>
//! # where S: tower::Service<http::Request<http_body_util::Full<bytes::Bytes>>, Response = http::Response<http_body_util::Full<bytes::Bytes>>, Error = std::convert::Infallible> + Clone + Send + Sync + 'static, S::Future: Send {
//! use tower_client_auth::providers::altrata;
//!
//! let credential = altrata::client_credentials("api-key", "username", "password")
//!     .api_origin(altrata::PROFILE_API)
//!     .build(http)?;
//! # let _ = credential; Ok(()) }
//! ```

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::oauth2::{ClientAuth, IntoHttpService, OAuth2Source, ParamStyle, TokenClient};
#[cfg(feature = "store")]
use crate::store::{SharedStore, WhenUnavailable};
use crate::token::ManagedOptions;
use crate::{Credential, Error};

/// The token endpoint.
pub const TOKEN_URL: &str = "https://api-auth.altrata.com/oauth2/token";
/// The Profile API (GraphQL at `/v1/graphql`).
pub const PROFILE_API: &str = "https://profile.altrata.com";
/// Token lifetime, as documented.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(28_800);

/// Starts an Altrata credential.
///
/// Against a local stand-in for Altrata:
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower::{Layer, ServiceExt};
/// use tower_client_auth::providers::altrata;
/// use tower_client_auth::testing::altrata::Altrata;
/// use tower_client_auth::AuthLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let emulator = Altrata::start("my-api-key", "my-user", "my-password").await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<tower_client_auth::ReplayBody<http_body_util::Full<bytes::Bytes>>>();
/// let credential = altrata::client_credentials("my-api-key", "my-user", "my-password")
///     .token_url(emulator.token_url())
///     .api_origin(emulator.api_base())
///     .build(http.clone())?;
/// let api = AuthLayer::new(credential).layer(http);
/// let query = Full::new(Bytes::from_static(br#"{"query":"{ me { id } }"}"#));
/// let req = Request::post(emulator.graphql_url()).header("content-type", "application/json").body(query)?;
/// assert_eq!(api.oneshot(req).await?.status(), 200);
/// assert_eq!(emulator.token_requests(), 1);
/// # Ok(())
/// # }
/// ```
pub fn client_credentials(
    api_key: impl Into<SecretString>,
    username: impl Into<String>,
    password: impl Into<SecretString>,
) -> AltrataBuilder {
    AltrataBuilder {
        api_key: api_key.into(),
        username: username.into(),
        password: password.into(),
        token_url: TOKEN_URL.to_owned(),
        origins: Vec::new(),
        #[cfg(feature = "store")]
        shared: None,
    }
}

/// Builds an Altrata credential.
///
/// ```
/// use tower_client_auth::providers::altrata;
/// use tower_client_auth::store::{MemoryStore, SharedStore};
///
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let credential = altrata::client_credentials("my-api-key", "my-user", "my-password")
///     .api_origin(altrata::PROFILE_API)
///     // Processes that share the account share the token (`RedisStore` for a fleet).
///     .shared_store(SharedStore::new(MemoryStore::new()))
///     .build(http)?;
/// assert_eq!(credential.name(), "altrata");
/// assert_eq!(credential.origins()[0].host(), "profile.altrata.com");
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[must_use]
pub struct AltrataBuilder {
    api_key: SecretString,
    username: String,
    password: SecretString,
    token_url: String,
    origins: Vec<String>,
    #[cfg(feature = "store")]
    shared: Option<SharedStore>,
}

impl AltrataBuilder {
    /// Shares the token with every process on `shared`'s store (one token for the
    /// fleet, whoever gets a 401). Set to fail closed: when the store cannot be
    /// reached, requests that need a new token fail with
    /// [`Error::is_store_unavailable`] rather than request one that would log the
    /// rest of the fleet out.
    #[cfg(feature = "store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "store")))]
    pub fn shared_store(mut self, shared: SharedStore) -> Self {
        self.shared = Some(shared.when_unavailable(WhenUnavailable::FailClosed));
        self
    }

    /// An API origin the credential is sent to (default: [`PROFILE_API`]).
    pub fn api_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Another token URL (an emulator's, say).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = url.into();
        self
    }

    /// The options this preset uses: no refresh ahead and no early retirement
    /// (a new token kills the old one), 8-hour default lifetime, long cool-down.
    pub fn options() -> ManagedOptions {
        super::lockout_safe()
            .max_refresh_ahead(Duration::ZERO)
            .max_expiry_margin(Duration::ZERO)
            .default_lifetime(Some(TOKEN_LIFETIME))
    }

    /// Builds the credential; token requests go through `http`.
    pub fn build<H, M>(self, http: H) -> Result<Credential, Error>
    where
        H: IntoHttpService<M>,
    {
        let client = TokenClient::builder(&self.token_url)
            .client_id(self.username)
            .client_secret(self.password)
            // Altrata's examples send the credentials as they are.
            .client_auth(ClientAuth::BasicRaw)
            .params_in(ParamStyle::Query)
            .header("x-api-key", self.api_key.expose_secret().to_owned())
            .build(http)?;
        let mut b = Credential::builder().name("altrata");
        if self.origins.is_empty() {
            b = b.origin(PROFILE_API);
        }
        for o in self.origins {
            b = b.origin(o);
        }
        b = b
            .api_key("x-api-key", self.api_key)
            .token_source_with(OAuth2Source::client_credentials(client), Self::options());
        #[cfg(feature = "store")]
        if let Some(shared) = self.shared {
            b = b.shared_store(shared);
        }
        b.build()
    }
}

impl std::fmt::Debug for AltrataBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AltrataBuilder")
            .field("username", &self.username)
            .field("token_url", &self.token_url)
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}
