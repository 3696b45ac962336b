//! Managed tokens: the [`Token`] type, the [`TokenSource`] trait that yields them,
//! and the cache that keeps one fresh for a credential.
//!
//! The cache ([`ManagedOptions`] tunes it) holds the current token with its
//! `Authorization` header value computed once, so that a request with a valid token
//! costs one atomic load and a refcount bump. A background task refreshes the
//! token ahead of expiry; a request that finds no valid token, or that got a 401,
//! joins the single token request in flight for that credential.
//!
//! A token source of your own:
//!
//! ```
//! use std::time::Duration;
//! use futures_util::future::BoxFuture;
//! use tower_client_auth::{Credential, Error};
//! use tower_client_auth::token::{Token, TokenSource};
//!
//! struct Vault;
//!
//! impl TokenSource for Vault {
//!     fn fetch(&self, _previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
//!         Box::pin(async {
//!             // ask your secret store here
//!             Ok(Token::bearer("from-the-vault", Some(Duration::from_secs(600))))
//!         })
//!     }
//! }
//!
//! let cred = Credential::builder()
//!     .origin("https://api.example.com")
//!     .token_source(Vault)
//!     .build()?;
//! assert!(cred.is_managed());
//! # Ok::<(), Error>(())
//! ```

pub(crate) mod jwt;
mod options;

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::SecretString;
use tokio::time::Instant;

use crate::error::Error;

/// One field of a shared store identity, with `\\` and each of `special`
/// escaped by a backslash, so that fields joined by one of them cannot run
/// into each other (a user key `a|b` must not name user `a` of another
/// client). A field with none of them is unchanged: identities, and so store
/// keys, stay what earlier versions made them.
#[allow(dead_code)] // used by the `oauth2` and `users` features
pub(crate) fn identity_field<'a>(field: &'a str, special: &[char]) -> std::borrow::Cow<'a, str> {
    if !field.contains(|c| c == '\\' || special.contains(&c)) {
        return std::borrow::Cow::Borrowed(field);
    }
    let mut escaped = String::with_capacity(field.len() + 4);
    for c in field.chars() {
        if c == '\\' || special.contains(&c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    std::borrow::Cow::Owned(escaped)
}

/// Where an entry sits in the store's history: the incarnation of the store it
/// was written in (an epoch drawn at random by the first write into an empty
/// store) and its generation within that incarnation. Generations restart at 1
/// when a store comes back empty; the epoch tells the two histories apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Version {
    pub(crate) epoch: u64,
    pub(crate) generation: u64,
}

pub use options::ManagedOptions;

/// `at + d`, saturating instead of panicking: far enough in the future is the same
/// as never for a token cache.
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(MAX_LIFETIME))
        .unwrap_or(at)
}

/// Called with each new token a credential fetched (after a refresh-token
/// rotation, say), before it replaces the old one: for applications that keep
/// tokens in storage of their own. See
/// [`CredentialBuilder::on_token_change`](crate::CredentialBuilder::on_token_change).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tower_client_auth::token::{Token, TokenHook};
///
/// // Keeps the latest refresh token (in your database, in real life).
/// let saved = Arc::new(Mutex::new(None));
/// let hook: TokenHook = {
///     let saved = saved.clone();
///     Arc::new(move |token: &Token| *saved.lock().unwrap() = token.refresh_token().cloned())
/// };
/// hook(&Token::bearer("my-access-token", None).with_refresh_token("my-refresh-token"));
/// assert!(saved.lock().unwrap().is_some());
/// ```
pub type TokenHook = std::sync::Arc<dyn Fn(&Token) + Send + Sync>;

/// The longest lifetime a token is taken to have; larger `expires_in` values are
/// clamped to it so that deadline arithmetic cannot overflow.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// An access token with what came with it.
///
/// ```
/// use std::time::Duration;
/// use tower_client_auth::secrecy::ExposeSecret;
/// use tower_client_auth::token::Token;
///
/// let token = Token::bearer("my-access-token", Some(Duration::from_secs(3600)))
///     .with_refresh_token("my-refresh-token");
/// assert_eq!(token.token_type(), "Bearer");
/// assert_eq!(token.access_token().expose_secret(), "my-access-token");
/// assert_eq!(token.expires_in(), Some(Duration::from_secs(3600)));
/// assert!(token.expires_at().is_some());
/// // `Debug` never shows the secrets.
/// assert!(!format!("{token:?}").contains("my-"));
/// ```
#[derive(Clone)]
pub struct Token {
    pub(crate) access_token: SecretString,
    pub(crate) token_type: String,
    pub(crate) expires_in: Option<Duration>,
    pub(crate) received_at: Instant,
    pub(crate) refresh_token: Option<SecretString>,
    pub(crate) scope: Option<String>,
    pub(crate) extra: serde_json::Map<String, serde_json::Value>,
}

impl Token {
    /// A bearer token that lives `expires_in` from now (`None`: until a 401 says otherwise).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::token::Token;
    ///
    /// let token = Token::bearer("my-access-token", Some(Duration::from_secs(600)));
    /// assert_eq!(token.token_type(), "Bearer");
    /// assert!(token.refresh_token().is_none());
    /// // No lifetime: valid until the API answers 401.
    /// assert_eq!(Token::bearer("my-access-token", None).expires_at(), None);
    /// ```
    pub fn bearer(access_token: impl Into<SecretString>, expires_in: Option<Duration>) -> Token {
        Token {
            access_token: access_token.into(),
            token_type: "Bearer".to_owned(),
            expires_in: expires_in.map(|d| d.min(MAX_LIFETIME)),
            received_at: Instant::now(),
            refresh_token: None,
            scope: None,
            extra: serde_json::Map::new(),
        }
    }

    /// Sets the token type: `DPoP` for a token bound to the source's
    /// [`dpop`](TokenSource::dpop) key; any casing of `bearer` is `Bearer`.
    /// A credential refuses a type it cannot send.
    ///
    /// ```
    /// use tower_client_auth::token::Token;
    ///
    /// let token = Token::bearer("t0k", None).with_token_type("DPoP");
    /// assert_eq!(token.token_type(), "DPoP");
    /// ```
    #[must_use]
    pub fn with_token_type(mut self, token_type: impl Into<String>) -> Token {
        let t = token_type.into();
        self.token_type = if t.eq_ignore_ascii_case("bearer") {
            "Bearer".to_owned()
        } else {
            t
        };
        self
    }

    /// Sets the refresh token.
    ///
    /// ```
    /// use tower_client_auth::secrecy::ExposeSecret;
    /// use tower_client_auth::token::Token;
    ///
    /// let token = Token::bearer("my-access-token", None).with_refresh_token("my-refresh-token");
    /// assert_eq!(token.refresh_token().unwrap().expose_secret(), "my-refresh-token");
    /// ```
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: impl Into<SecretString>) -> Token {
        self.refresh_token = Some(refresh_token.into());
        self
    }

    /// The access token. Handle with care: this is the secret.
    ///
    /// ```
    /// use tower_client_auth::secrecy::ExposeSecret;
    /// use tower_client_auth::token::Token;
    ///
    /// let token = Token::bearer("my-access-token", None);
    /// // Only an explicit `expose_secret` shows it.
    /// assert_eq!(token.access_token().expose_secret(), "my-access-token");
    /// assert!(!format!("{:?}", token.access_token()).contains("my-access-token"));
    /// ```
    pub fn access_token(&self) -> &SecretString {
        &self.access_token
    }

    /// The token type, normalised: `Bearer` for any casing of `bearer`.
    ///
    /// ```
    /// use tower_client_auth::token::Token;
    ///
    /// let token = Token::bearer("t0k", None).with_token_type("bearer");
    /// assert_eq!(token.token_type(), "Bearer");
    /// ```
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// The lifetime the server gave (clamped to [`MAX_LIFETIME`]), if any.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::token::{Token, MAX_LIFETIME};
    ///
    /// let token = Token::bearer("t0k", Some(Duration::from_secs(3600)));
    /// assert_eq!(token.expires_in(), Some(Duration::from_secs(3600)));
    /// // A lifetime of a thousand years is taken as the longest there is.
    /// let forever = Token::bearer("t0k", Some(Duration::from_secs(1000 * 365 * 24 * 3600)));
    /// assert_eq!(forever.expires_in(), Some(MAX_LIFETIME));
    /// ```
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// When the token expires, if known.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::token::Token;
    ///
    /// let token = Token::bearer("t0k", Some(Duration::from_secs(60)));
    /// let at = token.expires_at().unwrap();
    /// assert_eq!(at - token.received_at(), Duration::from_secs(60));
    /// ```
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_in.map(|d| self.received_at + d)
    }

    /// When the token was received.
    ///
    /// ```
    /// use tower_client_auth::token::Token;
    ///
    /// let before = tokio::time::Instant::now();
    /// let token = Token::bearer("t0k", None);
    /// assert!(token.received_at() >= before);
    /// ```
    pub fn received_at(&self) -> Instant {
        self.received_at
    }

    /// The refresh token, if the server sent one (or one was kept from before).
    ///
    /// ```
    /// use tower_client_auth::secrecy::ExposeSecret;
    /// use tower_client_auth::token::Token;
    ///
    /// assert!(Token::bearer("t0k", None).refresh_token().is_none());
    /// let token = Token::bearer("t0k", None).with_refresh_token("r3fresh");
    /// assert_eq!(token.refresh_token().map(|r| r.expose_secret()), Some("r3fresh"));
    /// ```
    pub fn refresh_token(&self) -> Option<&SecretString> {
        self.refresh_token.as_ref()
    }

    /// The granted scope, which may differ from the one requested (RFC 6749 §3.3).
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     http::Response::builder().header("content-type", "application/json").body(
    /// #         http_body_util::Full::new(bytes::Bytes::from_static(
    /// #             br#"{"access_token":"t0k","token_type":"Bearer","scope":"read"}"#)))
    /// # });
    /// // The token endpoint grants the scope it sees fit.
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(endpoint)?;
    /// let token = tokens.client_credentials(&[]).await?;
    /// assert_eq!(token.scope(), Some("read"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The authorization details the server granted (RFC 9396 §7), as the
    /// token response gave them, if it did. Kept with the token in a shared
    /// store.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     http::Response::builder().header("content-type", "application/json").body(
    /// #         http_body_util::Full::new(bytes::Bytes::from_static(
    /// #             br#"{"access_token":"t0k","token_type":"Bearer","authorization_details":[{"type":"payment_initiation"}]}"#)))
    /// # });
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(endpoint)?;
    /// let token = tokens.client_credentials(&[]).await?;
    /// let granted = token.authorization_details().unwrap();
    /// assert_eq!(granted[0]["type"], "payment_initiation");
    /// # Ok(())
    /// # }
    /// ```
    pub fn authorization_details(&self) -> Option<&serde_json::Value> {
        self.extra.get("authorization_details")
    }

    /// Members of the token response this crate does not interpret (for example
    /// `id_token`). They may be secret: `Debug` prints only their names.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     http::Response::builder().header("content-type", "application/json").body(
    /// #         http_body_util::Full::new(bytes::Bytes::from_static(
    /// #             br#"{"access_token":"t0k","token_type":"Bearer","id_token":"eyJ-secret"}"#)))
    /// # });
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(endpoint)?;
    /// let token = tokens.client_credentials(&[]).await?;
    /// assert!(token.extra().contains_key("id_token"));
    /// assert!(!format!("{token:?}").contains("eyJ-secret")); // only its name is shown
    /// # Ok(())
    /// # }
    /// ```
    pub fn extra(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.extra
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra: Vec<&String> = self.extra.keys().collect();
        f.debug_struct("Token")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .field("extra", &extra)
            .finish()
    }
}

/// Something that yields access tokens: an OAuth2 grant
/// ([`oauth2::OAuth2Source`](crate::oauth2::OAuth2Source)), or a source of your own.
///
/// The cache calls `fetch` once per refresh, never concurrently for one credential.
/// `previous` is the token being replaced, if any, so that a source can use its
/// refresh token. Return errors built by this crate (for OAuth2) or wrap your own
/// with [`Error::from_source`]; [`Error::is_transient`] decides whether the cache
/// retries with backoff or cools down.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use futures_util::future::BoxFuture;
/// use tower_client_auth::secrecy::ExposeSecret;
/// use tower_client_auth::token::{Token, TokenSource};
/// use tower_client_auth::{Credential, Error};
///
/// /// Numbers its tokens.
/// struct Numbered(AtomicU64);
///
/// impl TokenSource for Numbered {
///     fn fetch(&self, _previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
///         let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
///         Box::pin(async move { Ok(Token::bearer(format!("token-{n}"), Some(Duration::from_secs(600)))) })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source(Numbered(AtomicU64::new(0)))
///     .build()?;
/// credential.token().await?;
/// let cached = credential.token().await?; // still valid: not fetched again
/// assert_eq!(cached.access_token().expose_secret(), "token-1");
/// credential.invalidate();
/// assert_eq!(credential.token().await?.access_token().expose_secret(), "token-2");
/// # Ok(())
/// # }
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// Fetches a new token.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_util::future::BoxFuture;
    /// use tower_client_auth::secrecy::ExposeSecret;
    /// use tower_client_auth::token::{Token, TokenSource};
    /// use tower_client_auth::Error;
    ///
    /// struct Renewing;
    /// impl TokenSource for Renewing {
    ///     fn fetch(&self, previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
    ///         let n = previous.map_or(1, |_| 2);
    ///         Box::pin(async move { Ok(Token::bearer(format!("token-{n}"), Some(Duration::from_secs(60)))) })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let first = Renewing.fetch(None).await?;
    /// let second = Renewing.fetch(Some(&first)).await?;
    /// assert_eq!(second.access_token().expose_secret(), "token-2");
    /// # Ok(())
    /// # }
    /// ```
    fn fetch(&self, previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>>;

    /// What identifies the token this source fetches across processes (token
    /// URL, client id, grant, user, scopes: never a secret), for the key of a
    /// [`SharedStore`](crate::store::SharedStore). `None` (the default): a shared store needs
    /// [`SharedStore::identity`](crate::store::SharedStore::identity).
    ///
    /// ```
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::token::TokenSource;
    ///
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let identity = OAuth2Source::client_credentials(tokens).identity().unwrap();
    /// assert!(identity.contains("https://auth.example.com/token") && identity.contains("my-client"));
    /// assert!(!identity.contains("my-secret")); // never a secret
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    fn identity(&self) -> Option<String> {
        None
    }

    /// Whether a token can only come from a previous one (a stored refresh
    /// token). With a [`SharedStore`](crate::store::SharedStore) and nothing stored, such a source is asked
    /// at once (to say who must log in) without taking a lease or writing.
    ///
    /// ```
    /// use futures_util::future::BoxFuture;
    /// use tower_client_auth::token::{Token, TokenSource};
    /// use tower_client_auth::Error;
    ///
    /// /// Refreshes a token that was stored at login; cannot start from nothing.
    /// struct FromLogin;
    /// impl TokenSource for FromLogin {
    ///     fn fetch(&self, previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
    ///         let has = previous.is_some_and(|p| p.refresh_token().is_some());
    ///         Box::pin(async move {
    ///             if !has { return Err(Error::permanent("log in first")) }
    ///             Ok(Token::bearer("refreshed", None))
    ///         })
    ///     }
    ///     fn needs_previous(&self) -> bool {
    ///         true
    ///     }
    /// }
    ///
    /// assert!(FromLogin.needs_previous());
    /// ```
    fn needs_previous(&self) -> bool {
        false
    }

    /// Where tokens come from (a token URL without its query), to name the
    /// credential in spans, events and metrics when no
    /// [`name`](crate::CredentialBuilder::name) was given. `None` (the
    /// default): the credential is named by its origins alone.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::token::TokenSource;
    ///
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder("https://auth.example.com/token?tenant=acme")
    ///     .client_id("my-client")
    ///     .build(http)?;
    /// let source = OAuth2Source::client_credentials(tokens);
    /// assert_eq!(source.endpoint().as_deref(), Some("https://auth.example.com/token"));
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    fn endpoint(&self) -> Option<String> {
        None
    }

    /// Reads the API's refusal of a request that carried this source's token
    /// (a `403`): `true` when a token asked for differently would be
    /// accepted and the source now asks for it (a `403 insufficient_scope`
    /// naming scopes it did not ask for: RFC 6750 §3.1). The layer then gets a
    /// newer token and sends the request once more, never more than once.
    /// `false` (the default): the refusal stands.
    ///
    /// ```
    /// use futures_util::future::BoxFuture;
    /// use http::{HeaderMap, StatusCode};
    /// use tower_client_auth::token::{Token, TokenSource};
    /// use tower_client_auth::Error;
    ///
    /// struct Fixed;
    /// impl TokenSource for Fixed {
    ///     fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
    ///         Box::pin(async { Ok(Token::bearer("t0k", None)) })
    ///     }
    /// }
    ///
    /// // By default a 403 stands: the request is not sent again.
    /// assert!(!Fixed.step_up(StatusCode::FORBIDDEN, &HeaderMap::new()));
    /// ```
    fn step_up(&self, status: http::StatusCode, headers: &http::HeaderMap) -> bool {
        let _ = (status, headers);
        false
    }

    /// Sees a `401` to `uri` that carried this source's token, before the
    /// layer fetches a newer token and sends the request once more: a source
    /// may learn from its challenge (the OAuth2 `ProtectedResource` learns
    /// where the resource's metadata now is). The default: nothing.
    ///
    /// ```
    /// use futures_util::future::BoxFuture;
    /// use http::{HeaderMap, Uri};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use tower_client_auth::token::{Token, TokenSource};
    /// use tower_client_auth::Error;
    ///
    /// #[derive(Default)]
    /// struct Counting(AtomicUsize);
    /// impl TokenSource for Counting {
    ///     fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
    ///         Box::pin(async { Ok(Token::bearer("t0k", None)) })
    ///     }
    ///     fn unauthorized(&self, _: &Uri, _: &HeaderMap) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let source = Counting::default();
    /// source.unauthorized(&Uri::from_static("https://api.example.com/v1"), &HeaderMap::new());
    /// assert_eq!(source.0.load(Ordering::Relaxed), 1);
    /// ```
    fn unauthorized(&self, uri: &http::Uri, headers: &http::HeaderMap) {
        let _ = (uri, headers);
    }

    /// Revokes `token` where it came from (for OAuth2, RFC 7009: its refresh
    /// token if it has one, else the access token), for
    /// [`Credential::revoke`](crate::Credential::revoke). The default: a
    /// [configuration error](Error::is_config), as the source cannot.
    ///
    /// ```
    /// use futures_util::future::BoxFuture;
    /// use tower_client_auth::token::{Token, TokenSource};
    /// use tower_client_auth::Error;
    ///
    /// struct Fixed;
    /// impl TokenSource for Fixed {
    ///     fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
    ///         Box::pin(async { Ok(Token::bearer("t0k", None)) })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Without a `revoke` of its own, a source says it cannot.
    /// let err = Fixed.revoke(&Token::bearer("t0k", None)).await.unwrap_err();
    /// assert!(err.is_config());
    /// # }
    /// ```
    fn revoke(&self, token: &Token) -> BoxFuture<'static, Result<(), Error>> {
        let _ = token;
        Box::pin(async { Err(Error::config("this token source cannot revoke tokens")) })
    }

    /// The DPoP key the source's tokens are bound to (RFC 9449): a
    /// credential with one sends `DPoP` tokens as `Authorization: DPoP …`
    /// with a fresh proof per request. `None` (the default): bearer tokens
    /// only.
    #[cfg(feature = "jose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
    fn dpop(&self) -> Option<crate::jose::Dpop> {
        None
    }
}

/// A snapshot of a managed credential's counters.
///
/// ```
/// use tower_client_auth::Credential;
///
/// # struct MySource;
/// # impl tower_client_auth::token::TokenSource for MySource {
/// #     fn fetch(
/// #         &self,
/// #         _: Option<&tower_client_auth::token::Token>,
/// #     ) -> futures_util::future::BoxFuture<'static, Result<tower_client_auth::token::Token, tower_client_auth::Error>> {
/// #         let lifetime = Some(std::time::Duration::from_secs(600));
/// #         Box::pin(async move { Ok(tower_client_auth::token::Token::bearer("my-token", lifetime)) })
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::Error> {
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source(MySource)
///     .build()?;
/// assert_eq!(credential.stats().unwrap().generation, 0); // nothing fetched yet
/// credential.token().await?;
/// let stats = credential.stats().unwrap();
/// assert_eq!((stats.token_requests, stats.generation), (1, 1));
/// assert!(stats.expires_at.is_some());
///
/// // A static credential has no counters.
/// assert!(Credential::bearer("https://api.example.com", "my-token")?.stats().is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Token requests made to the source (each attempt counts).
    pub token_requests: u64,
    /// Token requests that failed.
    pub token_failures: u64,
    /// Tokens this process got from its source (a shared store's lease holder
    /// counts them; a token adopted from the store does not).
    pub tokens_fetched: u64,
    /// Requests that waited for a token request started by someone else.
    pub coalesced_waiters: u64,
    /// Requests re-sent after a 401.
    pub retries_on_401: u64,
    /// Refreshes started in the background before expiry.
    pub refreshes_ahead: u64,
    /// Requests re-sent with a new DPoP proof because the resource asked for a
    /// new nonce (`use_dpop_nonce`); not counted in `retries_on_401`.
    pub dpop_nonce_retries: u64,
    /// The generation of the current token (1 for the first, 0 for none yet).
    pub generation: u64,
    /// When the current token expires, if known.
    pub expires_at: Option<Instant>,
}
