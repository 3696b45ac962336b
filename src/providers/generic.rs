//! A generic OAuth2 API (the fourth provider document): internal systems use a
//! long-lived **personal access token** sent as `Bearer`; third-party apps use the
//! authorization code flow with bearer access tokens that expire and refresh.
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

use crate::oauth2::{OAuth2Source, TokenClient};
use crate::token::{ManagedOptions, Token};
use crate::{Credential, Error};

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
