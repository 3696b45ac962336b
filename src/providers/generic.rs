//! A generic OAuth2 API (the fourth provider document): internal systems use a
//! long-lived **personal access token** sent as `Bearer`; third-party apps use the
//! authorization code flow with bearer access tokens that expire and refresh;
//! backends calling an API as themselves use **client credentials**
//! ([`client_credentials`]: a token URL, a client id and a secret, and with the
//! `https` feature a ready client in one expression).
//!
//! ```
//! use tower_client_auth::providers::generic;
//!
//! let pat = generic::personal_access_token("https://api.example.com", "pat_0123")?;
//! # let _ = pat;
//! # Ok::<(), tower_client_auth::Error>(())
//! ```
//!
//! For third-party apps, build the authorization URL with
//! [`AuthorizationUrl`](crate::oauth2::AuthorizationUrl), exchange the code with a
//! `TokenClient`, then [`authorization_code`].

use secrecy::SecretString;

use crate::oauth2::{IntoHttpService, OAuth2Source, TokenClient};
#[cfg(feature = "store")]
use crate::store::SharedStore;
use crate::token::{ManagedOptions, Token};
use crate::{Credential, Error};

/// Client credentials (RFC 6749 §4.4): a backend calling an API as itself with
/// a client id and secret from its authorization server. Tokens are fetched on
/// first use, cached, refreshed ahead of expiry and renewed once on a 401; the
/// secret goes to the token URL in HTTP Basic (`client_secret_basic`).
///
/// With the `https` feature, [`ClientCredentials::https`] gives the whole
/// client in one expression: the token endpoint and the API over one
/// [`HttpsClient`](crate::https::HttpsClient), the guard below the layer.
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower::ServiceExt;
/// use tower_client_auth::providers::generic;
/// # use tower_client_auth::testing::token_server::TokenServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let server = TokenServer::builder().client("my-client", "my-secret").start().await;
/// # let (token_url, api_origin, url) = (server.token_url(), server.base_url(), server.api_url("whoami"));
/// // token_url: "https://auth.example.com/oauth2/token", api_origin: "https://api.example.com"
/// let api = generic::client_credentials(token_url, "my-client", "my-secret")
///     .api_origin(&api_origin)
///     .scopes(["read", "write"])
///     .https()?;
///
/// let request = Request::get(url).body(Full::new(Bytes::new()))?; // an API URL
/// assert_eq!(api.oneshot(request).await?.status(), 200);
/// # Ok(())
/// # }
/// ```
pub fn client_credentials(
    token_url: impl Into<String>,
    client_id: impl Into<String>,
    client_secret: impl Into<SecretString>,
) -> ClientCredentials {
    ClientCredentials {
        token_url: token_url.into(),
        client_id: client_id.into(),
        client_secret: client_secret.into(),
        scopes: Vec::new(),
        origins: Vec::new(),
        options: ManagedOptions::default(),
        #[cfg(feature = "store")]
        shared: None,
    }
}

/// Configures [`client_credentials`]; [`build`](Self::build) it over an HTTP
/// client of your own, or [`https`](Self::https) for the ready one.
#[must_use]
pub struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scopes: Vec<String>,
    origins: Vec<String>,
    options: ManagedOptions,
    #[cfg(feature = "store")]
    shared: Option<SharedStore>,
}

impl ClientCredentials {
    /// The API's origin (`https://api.example.com`): the token goes to it and
    /// nowhere else. Call once per origin; at least one is required.
    pub fn api_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// The scopes to ask for (none: the server's default).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Cache and refresh settings other than the defaults.
    pub fn options(mut self, options: ManagedOptions) -> Self {
        self.options = options;
        self
    }

    /// Shares the token with every process on `shared`'s store (one token
    /// request for the fleet).
    #[cfg(feature = "store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "store")))]
    pub fn shared_store(mut self, shared: SharedStore) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The credential, its token requests sent through `http`; put it under an
    /// [`AuthLayer`](crate::AuthLayer). Fails with [`Error::is_config`] on a
    /// URL that is not `https://` (or loopback `http://`) or when no API
    /// origin was given.
    pub fn build<H, M>(self, http: H) -> Result<Credential, Error>
    where
        H: IntoHttpService<M>,
    {
        let tokens = TokenClient::builder(&self.token_url)
            .client_id(self.client_id)
            .client_secret(self.client_secret)
            .build(http)?;
        let mut b = Credential::builder();
        for origin in self.origins {
            b = b.origin(origin);
        }
        b = b.token_source_with(
            OAuth2Source::client_credentials(tokens).scopes(self.scopes),
            self.options,
        );
        #[cfg(feature = "store")]
        if let Some(shared) = self.shared {
            b = b.shared_store(shared);
        }
        b.build()
    }

    /// The whole client: one [`HttpsClient`](crate::https::HttpsClient) for
    /// the token endpoint and the API, the guard directly above it, the
    /// layer (with 401 retry) on top. Send it `Request<Full<Bytes>>`.
    #[cfg(feature = "https")]
    #[cfg_attr(docsrs, doc(cfg(feature = "https")))]
    pub fn https(
        self,
    ) -> Result<crate::AuthService<crate::layer::Guard<crate::https::HttpsClient>>, Error> {
        use tower_layer::Layer;
        let http = crate::https::client();
        let credential = self.build(http.clone())?;
        let guarded = crate::layer::GuardLayer::new(credential.clone()).layer(http);
        Ok(crate::AuthLayer::new(credential).layer(guarded))
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

/// `Authorization: Bearer <pat>` on every request to `api_origin`.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_client_auth::providers::generic;
/// use tower_client_auth::AuthLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let credential = generic::personal_access_token("https://api.example.com", "my-personal-access-token")?;
/// let api = AuthLayer::new(credential).without_retry().layer(service_fn(|req: Request<Full<Bytes>>| async move {
///     Ok::<_, std::convert::Infallible>(Response::new(req.headers()["authorization"].clone()))
/// }));
/// let req = Request::get("https://api.example.com/v1/me").body(Full::new(Bytes::new()))?;
/// assert_eq!(api.oneshot(req).await?.into_body(), "Bearer my-personal-access-token");
/// # Ok(())
/// # }
/// ```
pub fn personal_access_token(
    api_origin: &str,
    token: impl Into<SecretString>,
) -> Result<Credential, Error> {
    Credential::bearer(api_origin, token)
}

/// Bearer access tokens from an authorization code exchange, refreshed with the
/// refresh token.
///
/// ```
/// use std::time::Duration;
/// use tower_client_auth::oauth2::TokenClient;
/// use tower_client_auth::providers::generic;
/// use tower_client_auth::secrecy::ExposeSecret;
/// use tower_client_auth::testing::oauth::OAuthServer;
/// use tower_client_auth::token::Token;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let server = OAuthServer::start("my-client-id", "my-client-secret").await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let tokens = TokenClient::builder(server.token_url())
///     .client_id("my-client-id")
///     .client_secret("my-client-secret")
///     .build(http)?;
/// // What `tokens.exchange_code(..)` gave; this one has expired already.
/// let token = Token::bearer("expired", Some(Duration::ZERO)).with_refresh_token(server.issue_refresh_token());
///
/// let credential = generic::authorization_code(&server.base_url(), tokens, token)?;
/// let fresh = credential.token().await?; // refreshed with the refresh token
/// assert_ne!(fresh.access_token().expose_secret(), "expired");
/// assert_eq!(server.refresh_tokens_used(), 1);
/// # Ok(())
/// # }
/// ```
pub fn authorization_code(
    api_origin: &str,
    client: TokenClient,
    token: Token,
) -> Result<Credential, Error> {
    Credential::builder()
        .origin(api_origin)
        .token_source_with(
            OAuth2Source::from_token(client, token),
            ManagedOptions::default(),
        )
        .build()
}
