//! Algoreg: Basic `email:password` on every request, or (recommended by Algoreg)
//! a password grant with a **JSON** body at `{base}/api/v1/token` that yields a
//! bearer token valid one hour.
//!
//! Too many wrong passwords lock the programmatic account. The OAuth2 preset
//! never retries a rejected password: the first `invalid_grant` fails every
//! waiting request and starts a cool-down of 15 minutes (doubling up to 6 hours)
//! during which no token request is sent at all.
//!
//! ```
//! use tower_client_auth::providers::algoreg;
//!
//! // Basic on every call:
//! let basic = algoreg::basic(algoreg::API_BASE, "api@acme.com", "my_password")?;
//! // A dedicated instance:
//! let base = algoreg::instance_base("acme")?;
//! assert_eq!(base, "https://api.acme.algoreg.com");
//! # let _ = basic;
//! # Ok::<(), tower_client_auth::Error>(())
//! ```
//!
//! The OAuth2 preset needs an HTTP client for the token endpoint:
//! `algoreg::oauth2(algoreg::API_BASE, email, password, hyper_client)`.

use std::time::Duration;

use secrecy::SecretString;

use crate::oauth2::{ClientAuth, IntoHttpService, OAuth2Source, ParamStyle, TokenClient};
use crate::{Credential, Error};

/// The shared API base.
pub const API_BASE: &str = "https://api.algoreg.com";

/// Token lifetime when the answer gives none, as documented.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The API base of a dedicated instance: `https://api.{instance}.algoreg.com`.
///
/// ```
/// use tower_client_auth::providers::algoreg;
///
/// assert_eq!(algoreg::instance_base("acme")?, "https://api.acme.algoreg.com");
/// assert!(algoreg::instance_base("acme.evil.example").unwrap_err().is_config());
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
pub fn instance_base(instance: &str) -> Result<String, Error> {
    let ok = !instance.is_empty()
        && instance.len() <= 63
        && instance
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !instance.starts_with('-')
        && !instance.ends_with('-');
    if !ok {
        return Err(Error::config(
            "Algoreg instance must be a DNS label ([a-z0-9-])",
        ));
    }
    Ok(format!("https://api.{instance}.algoreg.com"))
}

/// Basic `email:password` on every request to `api_base`.
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower::{Layer, ServiceExt};
/// use tower_client_auth::providers::algoreg;
/// use tower_client_auth::testing::algoreg::Algoreg;
/// use tower_client_auth::AuthLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let emulator = Algoreg::start("api@acme.com", "my-password", 5).await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// // `algoreg::API_BASE` in production:
/// let credential = algoreg::basic(&emulator.base_url(), "api@acme.com", "my-password")?;
/// let api = AuthLayer::new(credential).without_retry().layer(http);
/// let req = Request::get(format!("{}/api/v1/me", emulator.base_url())).body(Full::new(Bytes::new()))?;
/// assert_eq!(api.oneshot(req).await?.status(), 200);
/// assert_eq!(emulator.token_requests(), 0);
/// # Ok(())
/// # }
/// ```
pub fn basic(
    api_base: &str,
    email: impl Into<String>,
    password: impl Into<SecretString>,
) -> Result<Credential, Error> {
    Credential::basic(api_base, email, password)
}

/// Bearer tokens from the JSON password grant at `{api_base}/api/v1/token`, sent
/// through `http` (a plain client, not one wrapped in the layer).
///
/// ```
/// use tower_client_auth::providers::algoreg;
/// use tower_client_auth::testing::algoreg::Algoreg;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let emulator = Algoreg::start("api@acme.com", "my-password", 5).await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let credential = algoreg::oauth2(&emulator.base_url(), "api@acme.com", "my-password", http)?;
/// credential.token().await?;
/// assert_eq!(emulator.token_requests(), 1);
/// // Algoreg's answer has no `expires_in`: the documented hour is assumed.
/// assert!(credential.stats().unwrap().expires_at.is_some());
/// # Ok(())
/// # }
/// ```
pub fn oauth2<H, M>(
    api_base: &str,
    email: impl Into<String>,
    password: impl Into<SecretString>,
    http: H,
) -> Result<Credential, Error>
where
    H: IntoHttpService<M>,
{
    let base = api_base.trim_end_matches('/');
    let client = TokenClient::builder(format!("{base}/api/v1/token"))
        .client_auth(ClientAuth::None)
        .params_in(ParamStyle::Json)
        .build(http)?;
    let options = super::lockout_safe().default_lifetime(Some(TOKEN_LIFETIME));
    Credential::builder()
        .origin(base)
        .token_source_with(OAuth2Source::password(client, email, password), options)
        .build()
}
