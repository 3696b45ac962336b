//! Agrello: OAuth2 authorization code. The user's browser goes to
//! `https://service.agrello.org/identity/auth/oauth/authorize?response_type=code&client_id=…&redirect_uri=…`;
//! the backend exchanges the code with Basic `client_id:client_secret`, and keeps
//! access going with refresh tokens (a rotated refresh token replaces the old).
//!
//! The token URL is not in Agrello's document: [`TOKEN_URL`] is the authorize
//! URL's sibling `…/oauth/token`. Override it with [`token_client_at`] if
//! Agrello tells you otherwise.
//!
//! ```
//! use tower_client_auth::providers::agrello;
//!
//! let request = agrello::authorization_url("MYAPP_CLIENT_ID", "https://myapp.io/auth/agrello")
//!     .scope("documents")
//!     .build()?;
//! assert!(request.url().starts_with(agrello::AUTHORIZE_URL));
//! // Keep `request` for this user until the callback: `request.verify_callback(query)?`
//! // gives the code; `token_client.exchange_code(...)` the token; then
//! // `agrello::credential(api_origin, token_client, token)` keeps it fresh.
//! # Ok::<(), tower_client_auth::Error>(())
//! ```

use secrecy::SecretString;

use crate::oauth2::{AuthorizationUrl, ClientAuth, IntoHttpService, TokenClient};
use crate::token::Token;
use crate::{Credential, Error};

/// The authorization endpoint, as documented.
pub const AUTHORIZE_URL: &str = "https://service.agrello.org/identity/auth/oauth/authorize";
/// The token endpoint: the authorize URL's sibling (not in Agrello's document).
pub const TOKEN_URL: &str = "https://service.agrello.org/identity/auth/oauth/token";

/// The authorization URL builder for Agrello, with `state` and PKCE S256.
///
/// ```
/// use tower_client_auth::providers::agrello;
///
/// let request = agrello::authorization_url("my-client-id", "https://my.app/auth/agrello")
///     .scope("documents")
///     .build()?;
/// assert!(request.url().starts_with(agrello::AUTHORIZE_URL));
/// assert!(request.url().contains("code_challenge_method=S256"));
/// // Keep `request` for this user, and send their browser to `request.url()`.
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
pub fn authorization_url(client_id: &str, redirect_uri: &str) -> AuthorizationUrl {
    AuthorizationUrl::new(AUTHORIZE_URL, client_id, redirect_uri)
}

/// A token client for [`TOKEN_URL`] with Basic `client_id:client_secret`.
///
/// ```
/// use tower_client_auth::providers::agrello;
///
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let tokens = agrello::token_client("my-client-id", "my-client-secret", http)?;
/// assert_eq!(tokens.token_url(), agrello::TOKEN_URL);
/// // On the callback: `tokens.exchange_code(code.code, Some(redirect_uri), request.verifier())`.
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
pub fn token_client<H, M>(
    client_id: impl Into<String>,
    client_secret: impl Into<SecretString>,
    http: H,
) -> Result<TokenClient, Error>
where
    H: IntoHttpService<M>,
{
    token_client_at(TOKEN_URL, client_id, client_secret, http)
}

/// Like [`token_client`], at another token URL.
///
/// The code flow against a local stand-in for Agrello:
///
/// ```
/// use tower_client_auth::oauth2::AuthorizationUrl;
/// use tower_client_auth::providers::agrello;
/// use tower_client_auth::testing::oauth::OAuthServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let server = OAuthServer::start("my-client-id", "my-client-secret").await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let tokens = agrello::token_client_at(&server.token_url(), "my-client-id", "my-client-secret", http)?;
///
/// let request = AuthorizationUrl::new(server.authorize_url(), "my-client-id", "http://127.0.0.1/cb")
///     .build()?;
/// let callback = server.approve(request.url()).await?; // the user says yes
/// let code = request.verify_callback(&callback)?;
/// let token = tokens
///     .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
///     .await?;
/// assert!(token.refresh_token().is_some());
/// # Ok(())
/// # }
/// ```
pub fn token_client_at<H, M>(
    token_url: &str,
    client_id: impl Into<String>,
    client_secret: impl Into<SecretString>,
    http: H,
) -> Result<TokenClient, Error>
where
    H: IntoHttpService<M>,
{
    TokenClient::builder(token_url)
        .client_id(client_id)
        .client_secret(client_secret)
        .client_auth(ClientAuth::BasicRaw)
        .build(http)
}

/// A credential for `api_origin` that starts from an exchanged token and keeps it
/// fresh with its refresh token (rotation kept). When the refresh token is gone or
/// rejected, requests fail with a typed error: the user must authorize again.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower::{Layer, ServiceExt};
/// use tower_client_auth::providers::agrello;
/// use tower_client_auth::testing::oauth::OAuthServer;
/// use tower_client_auth::token::Token;
/// use tower_client_auth::AuthLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let server = OAuthServer::start("my-client-id", "my-client-secret").await; // stands in for Agrello
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<tower_client_auth::ReplayBody<http_body_util::Full<bytes::Bytes>>>();
/// let tokens = agrello::token_client_at(&server.token_url(), "my-client-id", "my-client-secret", http.clone())?;
/// // The token from the code exchange; this one has expired already.
/// let token = Token::bearer("expired", Some(Duration::ZERO)).with_refresh_token(server.issue_refresh_token());
///
/// let credential = agrello::credential(&server.base_url(), tokens, token)?;
/// let api = AuthLayer::new(credential).layer(http);
/// let req = Request::get(format!("{}/api/v1/documents", server.base_url())).body(Full::new(Bytes::new()))?;
/// assert_eq!(api.oneshot(req).await?.status(), 200);
/// assert_eq!(server.refresh_tokens_used(), 1);
/// # Ok(())
/// # }
/// ```
pub fn credential(
    api_origin: &str,
    client: TokenClient,
    token: Token,
) -> Result<Credential, Error> {
    super::generic::authorization_code(api_origin, client, token)
}
