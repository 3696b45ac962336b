//! What gets stamped on a request, and for which origins.
//!
//! A [`Credential`] is one or more headers bound to one or more [`Origin`]s. Static
//! credentials (Basic, Bearer / personal access token, API keys, any fixed header
//! set) are turned into [`HeaderValue`]s once, at construction, and marked
//! sensitive. A managed credential adds an `Authorization` header taken from a
//! token that is fetched and refreshed by a [`TokenSource`](crate::token::TokenSource).
//!
//! ```
//! use tower_client_auth::Credential;
//!
//! // Altrata's API shape: an API key and a bearer token on every call.
//! let cred = Credential::builder()
//!     .origin("https://profile.altrata.com")
//!     .api_key("x-api-key", "my-api-key")
//!     .bearer("my-token")
//!     .build()?;
//! assert!(!format!("{cred:?}").contains("my-api-key"));
//! # Ok::<(), tower_client_auth::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Uri;
use secrecy::SecretString;

use crate::cache::TokenManager;
use crate::error::Error;
use crate::wire::origin::Origin;

mod builder;
pub use builder::CredentialBuilder;

/// A credential: the headers to stamp and the origins they may go to.
///
/// Cheap to clone (an `Arc` inside). `Debug` shows header names and origins, never
/// a value.
///
/// ```
/// use tower_client_auth::Credential;
///
/// let credential = Credential::basic("https://api.example.com", "me@example.com", "my-password")?;
/// assert!(!credential.is_managed());
/// assert_eq!(credential.origins()[0].host(), "api.example.com");
/// assert!(!format!("{credential:?}").contains("my-password"));
///
/// // Clones share one credential (and, for a managed one, one token).
/// let for_another_client = credential.clone();
/// assert_eq!(for_another_client.name(), credential.name());
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct Credential {
    inner: Arc<Inner>,
}

struct Inner {
    /// Names the credential in spans, events and metric labels.
    name: Arc<str>,
    origins: Box<[Origin]>,
    headers: Box<[(HeaderName, HeaderValue)]>,
    managed: Option<Arc<TokenManager>>,
}

impl Credential {
    /// Starts a credential builder.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .bearer("my-token")
    ///     .build()?;
    /// assert!(!credential.is_managed());
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn builder() -> CredentialBuilder {
        CredentialBuilder::default()
    }

    /// HTTP Basic `user:password` (RFC 7617) for one origin.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let credential = Credential::basic("https://api.example.com", "me@example.com", "my-password")?;
    /// assert_eq!(credential.origins().len(), 1);
    /// // A colon would end the user name early: refused.
    /// assert!(Credential::basic("https://api.example.com", "me:you", "pw").unwrap_err().is_config());
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn basic(
        origin: &str,
        user: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Result<Credential, Error> {
        Credential::builder()
            .origin(origin)
            .basic(user, password)
            .build()
    }

    /// `Authorization: Bearer <token>` with a fixed token (a personal access token)
    /// for one origin.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let pat = Credential::bearer("https://api.github.com", "my-personal-access-token")?;
    /// assert_eq!(pat.origins()[0].host(), "api.github.com");
    /// // An empty token is a mistake, not a credential.
    /// assert!(Credential::bearer("https://api.github.com", "").unwrap_err().is_config());
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn bearer(origin: &str, token: impl Into<SecretString>) -> Result<Credential, Error> {
        Credential::builder().origin(origin).bearer(token).build()
    }

    /// One API-key header, such as `x-api-key`, for one origin.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let key = Credential::api_key("https://api.example.com", "x-api-key", "my-api-key")?;
    /// assert!(!format!("{key:?}").contains("my-api-key"));
    /// assert!(Credential::api_key("https://api.example.com", "bad header", "k").is_err());
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn api_key(
        origin: &str,
        header: &str,
        key: impl Into<SecretString>,
    ) -> Result<Credential, Error> {
        Credential::builder()
            .origin(origin)
            .api_key(header, key)
            .build()
    }

    /// The name this credential goes by in spans, events and metric labels:
    /// the one given to [`CredentialBuilder::name`], else its origins and, for
    /// an OAuth2 source, its token URL.
    ///
    /// ```
    /// let credential = tower_client_auth::Credential::bearer("https://api.example.com", "pat")?;
    /// assert_eq!(credential.name(), "https://api.example.com:443");
    /// # Ok::<_, tower_client_auth::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The origins this credential is sent to.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .origin("http://localhost:8080") // loopback: plain http is fine
    ///     .bearer("my-token")
    ///     .build()?;
    /// let hosts: Vec<&str> = credential.origins().iter().map(|o| o.host()).collect();
    /// assert_eq!(hosts, ["api.example.com", "localhost"]);
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn origins(&self) -> &[Origin] {
        &self.inner.origins
    }

    /// Whether the `Authorization` header comes from a managed token.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_util::future::BoxFuture;
    /// use tower_client_auth::token::{Token, TokenSource};
    /// use tower_client_auth::{Credential, Error};
    ///
    /// struct Fixed;
    /// impl TokenSource for Fixed {
    ///     fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
    ///         Box::pin(async { Ok(Token::bearer("t0k", Some(Duration::from_secs(60)))) })
    ///     }
    /// }
    ///
    /// let managed = Credential::builder().origin("https://api.example.com").token_source(Fixed).build()?;
    /// assert!(managed.is_managed());
    /// assert!(!Credential::bearer("https://api.example.com", "t0k")?.is_managed());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_managed(&self) -> bool {
        self.inner.managed.is_some()
    }

    /// A snapshot of the managed token's counters, or `None` for a static credential.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::testing::token_server::TokenServer;
    /// use tower_client_auth::Credential;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let credential = Credential::builder()
    ///     .origin(&server.base_url())
    ///     .token_source(OAuth2Source::client_credentials(tokens))
    ///     .build()?;
    /// credential.token().await?;
    /// credential.token().await?; // still valid: served from the cache
    /// assert_eq!(credential.stats().unwrap().token_requests, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> Option<crate::token::Stats> {
        self.inner.managed.as_ref().map(|m| m.stats())
    }

    /// Gets a valid access token now (fetching one if needed), for callers that
    /// want to warm the cache at start-up or use the token outside the layer.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::testing::token_server::TokenServer;
    /// use tower_client_auth::Credential;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let credential = Credential::builder()
    ///     .origin(&server.base_url())
    ///     .token_source(OAuth2Source::client_credentials(tokens))
    ///     .build()?;
    /// // Warm the cache at start-up: a wrong secret shows now, not on the first call.
    /// let token = credential.token().await?;
    /// assert_eq!(token.token_type(), "Bearer");
    /// // A static credential has no token to fetch.
    /// assert!(Credential::bearer("https://api.example.com", "pat")?.token().await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn token(&self) -> Result<Arc<crate::token::Token>, Error> {
        match &self.inner.managed {
            Some(m) => m.acquire(None).await.map(|s| s.token().clone()),
            None => Err(Error::config("not a managed credential")),
        }
    }

    /// Drops the current managed token: the next request fetches a new one (joining
    /// any token request in flight). For a token you know was revoked. Does nothing
    /// for a static credential.
    ///
    /// ```
    /// # use tower_client_auth::Credential;
    /// let pat = Credential::bearer("https://api.example.com", "t")?;
    /// pat.invalidate(); // static: nothing to drop
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn invalidate(&self) {
        if let Some(m) = &self.inner.managed {
            m.invalidate();
        }
    }

    /// Revokes the managed token at its source (for OAuth2, RFC 7009: the
    /// refresh token if there is one, else the access token) and drops it,
    /// so the next request fetches a new one. Nothing held (or a static
    /// credential): nothing to do. A revocation that fails after its retries
    /// is an error ([`is_revocation_failed`](Error::is_revocation_failed));
    /// the token is dropped here all the same. With a shared store, the
    /// stored entry is left as it is (the next token request finds the
    /// refresh token refused and says so); for many users,
    /// [`Users::logout`](crate::users::Users::logout) also marks the entry
    /// for every process.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::testing::oauth::OAuthServer;
    /// use tower_client_auth::Credential;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = OAuthServer::start("my-client", "my-secret").await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .revocation_url(server.revocation_url())
    ///     .build(http)?;
    /// let credential = Credential::builder()
    ///     .origin(&server.base_url())
    ///     .token_source(OAuth2Source::from_refresh_token(tokens, server.issue_refresh_token()))
    ///     .build()?;
    /// credential.token().await?;
    /// credential.revoke().await?; // the user logged out
    /// assert_eq!(server.refresh_tokens_revoked(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revoke(&self) -> Result<(), Error> {
        match &self.inner.managed {
            Some(m) => m.revoke().await,
            None => Ok(()),
        }
    }

    /// Ends a cool-down (or backoff) now, so that the next request may make a token
    /// request: for an operator who has just fixed a wrong password. Does nothing
    /// for a static credential.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::testing::token_server::TokenServer;
    /// use tower_client_auth::Credential;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "new-secret").start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("old-secret")
    ///     .build(http)?;
    /// let credential = Credential::builder()
    ///     .origin(&server.base_url())
    ///     .token_source(OAuth2Source::client_credentials(tokens))
    ///     .build()?;
    /// assert!(credential.token().await.unwrap_err().is_invalid_client());
    /// assert!(credential.token().await.unwrap_err().is_cooling_down());
    /// assert_eq!(server.token_requests(), 1);
    ///
    /// credential.end_cooldown(); // the operator says: try again now
    /// let _ = credential.token().await;
    /// assert_eq!(server.token_requests(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn end_cooldown(&self) {
        if let Some(m) = &self.inner.managed {
            m.end_cooldown();
        }
    }

    /// The managed token's cache, if any.
    #[inline]
    pub(crate) fn manager(&self) -> Option<&Arc<TokenManager>> {
        self.inner.managed.as_ref()
    }

    /// Removes from `headers` every value this credential stamps (its static
    /// values, its managed token's latest `Authorization` values, and `DPoP`
    /// proofs signed with its token's key), leaving other values of the same
    /// names alone. Returns how many were removed.
    pub(crate) fn remove_stamped(&self, headers: &mut HeaderMap) -> usize {
        let mut removed = remove_values(headers, &header::AUTHORIZATION, |v| {
            self.inner.managed.as_ref().is_some_and(|m| m.issued(v))
        });
        for (name, value) in self.inner.headers.iter() {
            removed += remove_values(headers, name, |v| v == value);
        }
        #[cfg(feature = "jose")]
        if let Some(dpop) = self.inner.managed.as_ref().and_then(|m| m.dpop()) {
            removed += remove_dpop_proofs(headers, dpop);
        }
        removed
    }

    /// Whether a request to `uri` should get this credential.
    #[inline(always)]
    pub(crate) fn applies_to(&self, uri: &Uri) -> bool {
        match &*self.inner.origins {
            // Most credentials have one origin: no loop.
            [only] => only.matches(uri),
            all => all.iter().any(|o| o.matches(uri)),
        }
    }

    /// The static headers this credential stamps.
    pub(crate) fn static_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.inner.headers
    }

    #[cfg(test)]
    pub(crate) fn strong_count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }
}

/// Removes the values of `name` that `ours` recognises; keeps the others in order.
fn remove_values(
    headers: &mut HeaderMap,
    name: &HeaderName,
    ours: impl Fn(&HeaderValue) -> bool,
) -> usize {
    if !headers.get_all(name).iter().any(&ours) {
        return 0;
    }
    let all: Vec<HeaderValue> = headers.get_all(name).iter().cloned().collect();
    headers.remove(name);
    let mut removed = 0;
    for value in all {
        if ours(&value) {
            removed += 1;
        } else {
            headers.append(name.clone(), value);
        }
    }
    removed
}

/// Removes the `DPoP` proofs signed with `dpop`'s key; keeps any other.
#[cfg(feature = "jose")]
pub(crate) fn remove_dpop_proofs(headers: &mut HeaderMap, dpop: &crate::jose::Dpop) -> usize {
    let name = HeaderName::from_static(crate::jose::dpop::DPOP);
    remove_values(headers, &name, |v| dpop.is_own_proof(v))
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Credential")
            .field("origins", &self.inner.origins)
            .field("headers", &names)
            .field("managed", &self.inner.managed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn basic_encodes_user_and_password() {
        let c = Credential::basic("https://api.algoreg.com", "me@example.com", "hunter2").unwrap();
        let (name, value) = &c.inner.headers[0];
        assert_eq!(name, header::AUTHORIZATION);
        let expected = base64::engine::general_purpose::STANDARD.encode("me@example.com:hunter2");
        assert_eq!(value.to_str().unwrap(), format!("Basic {expected}"));
        assert!(value.is_sensitive());
    }

    #[test]
    fn invalid_values_are_config_errors_not_panics() {
        let e = Credential::bearer("https://a.example", "s3cr3t\nvalue").unwrap_err();
        assert!(e.is_config());
        assert!(!e.to_string().contains("s3cr3t"));
        let e = Credential::api_key("https://a.example", "x-api-key", "kéy").unwrap_err();
        assert!(e.is_config());
        let e = Credential::api_key("https://a.example", "bad header", "k").unwrap_err();
        assert!(e.is_config());
        let e = Credential::bearer("https://a.example", "").unwrap_err();
        assert!(e.is_config());
        let e = Credential::basic("https://a.example", "a:b", "c").unwrap_err();
        assert!(e.is_config());
        let e = Credential::bearer("not an origin", "t").unwrap_err();
        assert!(e.is_config());
        let e = Credential::bearer("http://api.example.com", "t").unwrap_err();
        assert!(e.is_config());
        let e = Credential::builder().bearer("t").build().unwrap_err();
        assert!(e.is_config());
        let e = Credential::builder()
            .origin("https://a.example")
            .bearer("t")
            .basic("u", "p")
            .build()
            .unwrap_err();
        assert!(e.is_config());
    }

    #[test]
    fn allow_http_opt_in() {
        let c = Credential::builder()
            .origin("http://intranet.example")
            .allow_http()
            .bearer("t")
            .build();
        assert!(c.is_ok());
    }
}
