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
pub fn authorization_url(client_id: &str, redirect_uri: &str) -> AuthorizationUrl {
    AuthorizationUrl::new(AUTHORIZE_URL, client_id, redirect_uri)
}

/// A token client for [`TOKEN_URL`] with Basic `client_id:client_secret`.
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
pub fn credential(
    api_origin: &str,
    client: TokenClient,
    token: Token,
) -> Result<Credential, Error> {
    super::generic::authorization_code(api_origin, client, token)
}
