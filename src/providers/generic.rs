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
pub fn personal_access_token(
    api_origin: &str,
    token: impl Into<SecretString>,
) -> Result<Credential, Error> {
    Credential::bearer(api_origin, token)
}

/// Bearer access tokens from an authorization code exchange, refreshed with the
/// refresh token.
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
