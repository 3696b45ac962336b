//! The crate's one error type.
//!
//! [`Error`] is opaque: what went wrong is told by the `is_*()` predicates and
//! the accessors for OAuth2 error fields. Its `Display` and `Debug` never carry a
//! secret: messages are written by this crate from fixed text, and anything that
//! came from a token endpoint is limited to the RFC 6749 §5.2 error fields and the
//! HTTP status.
//!
//! Errors reach the caller boxed (tower's `BoxError`); downcast to read them:
//!
//! ```
//! use tower_client_auth::{BoxError, Credential, Error};
//!
//! let err = Credential::bearer("https://api.example.com", "bad\ntoken").unwrap_err();
//! assert!(err.is_config());
//! assert!(!err.to_string().contains("bad"));
//!
//! let boxed: BoxError = err.into();
//! match boxed.downcast::<Error>() {
//!     Ok(e) if e.is_invalid_grant() => { /* wrong password: fix the credentials */ }
//!     Ok(e) if e.is_cooling_down() => { /* no token request was made */ }
//!     Ok(e) => assert!(e.is_config()),
//!     Err(other) => panic!("from the inner service: {other}"),
//! }
//! ```
//!
//! # Which errors, and what to do
//!
//! A request through the layer fails with this crate's `Error` only when it
//! needed a token and could not get one; errors of the inner service (the HTTP
//! client) come back as they are, boxed. What the managed cache does next depends
//! on [`Error::is_transient`]:
//!
//! | predicate | what happened | the cache | what you do |
//! |---|---|---|---|
//! | [`is_transport`](Error::is_transport), [`is_timeout`](Error::is_timeout), a 5xx or 429 [`status`](Error::status) | the token endpoint is unreachable, slow or overloaded | retries with backoff and jitter within the request, then backs off (honouring [`retry_after`](Error::retry_after), failing at once when that exceeds the backoff cap) | retry later; alert if it lasts |
//! | [`is_invalid_client`](Error::is_invalid_client), [`is_invalid_grant`](Error::is_invalid_grant), [`is_unauthorized_client`](Error::is_unauthorized_client), [`is_invalid_scope`](Error::is_invalid_scope), other OAuth2 codes | credentials, grant or scope refused | **cools down** (60 s, doubling to 1 h by default): no token request at all, so wrong passwords never lock an account | fix the configuration, then [`Credential::end_cooldown`](crate::Credential::end_cooldown) |
//! | [`is_cooling_down`](Error::is_cooling_down) | a request arrived during a cool-down; every other predicate looks through to the cause ([`cause_of_cooldown`](Error::cause_of_cooldown)) | nothing was sent | as for the cause |
//! | [`is_wrong_endpoint`](Error::is_wrong_endpoint) | the URL is not a token endpoint: a `404`, a redirect, a web page | cools down | fix the token URL |
//! | [`is_invalid_response`](Error::is_invalid_response), [`is_response_too_large`](Error::is_response_too_large), [`is_unsupported_token_type`](Error::is_unsupported_token_type) | the token endpoint answered something unusable (a `DPoP` token, say) | cools down | check the endpoint and its configuration |
//! | [`is_no_token`](Error::is_no_token) | expired, with no refresh token and no grant to run again | cools down | authorize again |
//! | [`is_login_required`](Error::is_login_required) | a user's refresh token was rejected, or they never logged in ([`user_key`](Error::user_key) says who) | backs off; no process sends that refresh token again | send the user to the login |
//! | [`is_store_unavailable`](Error::is_store_unavailable) | the shared store is unreachable and the credential fails closed | backs off; recovers when the store answers | watch the store |
//! | [`is_store`](Error::is_store) (not unavailable) | the stored token cannot be read (another encryption key) | the lease holder replaces it | check the fleet's keys |
//! | [`is_no_runtime`](Error::is_no_runtime) | a token was needed outside a Tokio runtime | — | run requests on a runtime |
//! | [`is_config`](Error::is_config) | a bad header value, origin, URL or option | — | fix the code or configuration |
//!
//! `Display` tells one level; the cause is [`std::error::Error::source`]. Walk
//! the chain (or use a reporter that does) to print it all; no level carries a
//! secret.

// Some kinds come only from the token client or the stores, which features
// can leave out.
#![cfg_attr(not(all(feature = "oauth2", feature = "users")), allow(dead_code))]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

mod resource;
pub(crate) use resource::ResourceError;
pub(crate) mod lifecycle;

/// Boxed error, as used by tower.
///
/// A request through the layer fails with a `BoxError`: this crate's [`Error`]
/// when no token could be had, or the inner service's own error.
///
/// ```
/// use tower_client_auth::{BoxError, Credential, Error};
///
/// fn blame(e: &BoxError) -> &'static str {
///     match e.downcast_ref::<Error>() {
///         Some(e) if e.is_config() => "configuration",
///         Some(_) => "token",
///         None => "HTTP client",
///     }
/// }
///
/// let config: BoxError = Credential::bearer("not a URL", "my-token").unwrap_err().into();
/// assert_eq!(blame(&config), "configuration");
/// let io: BoxError = std::io::Error::other("connection reset").into();
/// assert_eq!(blame(&io), "HTTP client");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from building a credential, calling a token endpoint or managing tokens.
///
/// Cheap to clone (an `Arc` inside), so one failed token request can be handed to
/// every request that was waiting for it.
///
/// A token endpoint that refuses the client, and the cool-down that follows:
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::service_fn;
/// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
/// use tower_client_auth::Credential;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let endpoint = service_fn(|_: Request<Full<Bytes>>| async {
///     Response::builder()
///         .status(401)
///         .header("content-type", "application/json")
///         .body(Full::new(Bytes::from_static(br#"{"error":"invalid_client"}"#)))
/// });
/// let tokens = TokenClient::builder("https://auth.example.com/token")
///     .client_id("my-client")
///     .client_secret("wrong-secret")
///     .build(endpoint)?;
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source(OAuth2Source::client_credentials(tokens))
///     .build()?;
///
/// let err = credential.token().await.unwrap_err();
/// assert!(err.is_invalid_client() && !err.is_transient());
/// assert_eq!(err.oauth2_code(), Some("invalid_client"));
/// // No token request during the cool-down; the predicates see the cause.
/// let again = credential.token().await.unwrap_err();
/// assert!(again.is_cooling_down() && again.is_invalid_client());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    source: Option<BoxError>,
    /// Where the failed request went: scheme, host, port and path (never a
    /// query or user information), as [`Error::at_endpoint`] sets it.
    endpoint: Option<Box<str>>,
    /// What came back when it was unusable: status, content type and the
    /// first bytes, escaped and cut short.
    answer: Option<Box<str>>,
    /// That answer was a web page (`text/html`): not a token endpoint's.
    answered_html: bool,
}

#[derive(Debug)]
pub(crate) enum Kind {
    /// Invalid configuration: a bad header value, origin or URL.
    Config(String),
    /// Connecting to or talking with the token endpoint failed.
    Transport,
    /// The token endpoint did not answer in time.
    Timeout,
    /// The token endpoint answered with an OAuth2 error (RFC 6749 §5.2).
    OAuth2(OAuth2Error),
    /// The token endpoint answered with a status and no OAuth2 error body.
    Status(StatusCode, Option<Duration>),
    /// The token response could not be understood.
    InvalidResponse(String),
    /// The token response body was larger than the cap.
    ResponseTooLarge(usize),
    /// No token can be had: it expired and there is nothing to refresh it with.
    NoToken,
    /// A permanent error happened recently; no token request is made until the
    /// cool-down ends (`left`: how long it still lasts, when known).
    CoolingDown {
        cause: Box<Error>,
        left: Option<Duration>,
    },
    /// The callback's `state` did not match.
    StateMismatch,
    /// A token source of the user's own failed.
    Source { permanent: bool },
    /// A token request had to be started and no Tokio runtime was running.
    NoRuntime,
    /// The token endpoint issued a token type this crate does not send (`DPoP`,
    /// `mac`, ...). The name is kept escaped and cut short.
    UnsupportedTokenType(String),
    /// The shared token store could not be reached or failed.
    StoreUnavailable,
    /// What the shared token store holds cannot be used (wrong key, bad data).
    StoreData(&'static str),
    /// This user's refresh token was rejected (or there is none): they must log
    /// in again. Holds the user key as the application gave it (not a secret);
    /// `Display` escapes it.
    LoginRequired(String),
    /// A protected resource's metadata, registration or step-up.
    Resource(ResourceError),
    /// Assertions from a source, revocation, pushed authorization requests.
    Lifecycle(lifecycle::Lifecycle),
}

#[derive(Debug, Clone)]
pub(crate) struct OAuth2Error {
    pub(crate) code: String,
    pub(crate) description: Option<String>,
    pub(crate) uri: Option<String>,
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<Duration>,
}

impl Error {
    pub(crate) fn new(kind: Kind) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind,
                source: None,
                endpoint: None,
                answer: None,
                answered_html: false,
            }),
        }
    }

    pub(crate) fn with_source(kind: Kind, source: impl Into<BoxError>) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind,
                source: Some(source.into()),
                endpoint: None,
                answer: None,
                answered_html: false,
            }),
        }
    }

    /// Names the endpoint the failed request went to, as
    /// `crate::wire::origin::describe_url` writes it (no query, no user
    /// information), unless a deeper level named one already.
    #[cfg(feature = "oauth2")]
    pub(crate) fn at_endpoint(mut self, described: String) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            if inner.endpoint.is_none() {
                inner.endpoint = Some(escape(&described, 160).into_boxed_str());
            }
        }
        self
    }

    /// Describes an unusable answer: its status, content type and first bytes.
    #[cfg(feature = "oauth2")]
    pub(crate) fn with_answer(
        mut self,
        status: StatusCode,
        content_type: &str,
        body: &[u8],
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            let text = String::from_utf8_lossy(&body[..body.len().min(96)]);
            let text = text.trim();
            let mut parts = Vec::new();
            // A status error says its status already.
            if !matches!(inner.kind, Kind::Status(..)) {
                parts.push(format!("HTTP {status}"));
            }
            if !content_type.is_empty() {
                parts.push(escape(content_type, 64));
            }
            inner.answered_html = content_type
                .trim_start()
                .get(..9)
                .is_some_and(|t| t.eq_ignore_ascii_case("text/html"));
            parts.push(if text.is_empty() {
                "empty body".to_owned()
            } else {
                format!("body begins `{}`", escape(text, 48))
            });
            inner.answer = Some(parts.join(", ").into_boxed_str());
        }
        self
    }

    /// The endpoint the failed request went to, as the error names it:
    /// scheme, host, port and path, never a query or user information.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::service_fn;
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// // A login page where the token endpoint should be.
    /// let html = service_fn(|_: Request<Full<Bytes>>| async {
    ///     Response::builder()
    ///         .header("content-type", "text/html")
    ///         .body(Full::new(Bytes::from_static(b"<!DOCTYPE html><title>Sign in</title>")))
    /// });
    /// let client = TokenClient::builder("https://auth.example.com/login?next=/")
    ///     .client_id("my-client")
    ///     .client_secret("secret")
    ///     .build(html)?;
    /// let err = client.client_credentials(&[]).await.unwrap_err();
    /// assert_eq!(err.endpoint(), Some("https://auth.example.com/login"));
    /// assert!(err.to_string().contains("text/html"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn endpoint(&self) -> Option<&str> {
        self.root().inner.endpoint.as_deref()
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Error::new(Kind::Config(msg.into()))
    }

    pub(crate) fn invalid_response(msg: impl Into<String>) -> Self {
        Error::new(Kind::InvalidResponse(msg.into()))
    }

    pub(crate) fn no_runtime() -> Self {
        Error::new(Kind::NoRuntime)
    }

    pub(crate) fn store_codec(what: &'static str) -> Self {
        Error::new(Kind::StoreData(what))
    }

    /// The store could not be reached. An error that already says so is kept
    /// as it is, so that the message is not printed twice down the chain.
    pub(crate) fn store_unavailable(source: impl Into<BoxError>) -> Self {
        match source.into().downcast::<Error>() {
            Ok(e) if e.is_store() => *e,
            Ok(e) => Error::with_source(Kind::StoreUnavailable, e),
            Err(other) => Error::with_source(Kind::StoreUnavailable, other),
        }
    }

    /// A store driver's error (Redis, PostgreSQL): its chain of messages
    /// folded into one cause, each message once (drivers often repeat their
    /// cause in their own text, which a reporter would then print twice).
    #[cfg(any(feature = "redis", feature = "postgres"))]
    pub(crate) fn store_driver(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut text = String::new();
        let mut next = Some(error);
        while let Some(e) = next {
            let message = e.to_string();
            if !message.is_empty() && !text.contains(&message) {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&message);
            }
            next = e.source();
        }
        Error::with_source(Kind::StoreUnavailable, DriverError(text))
    }

    /// The fleet's cool-down, recorded in the shared store by the process
    /// whose token request failed for good: no request is made until it ends.
    /// `code`, `description` and `status` are the failure's, as recorded.
    #[cfg(feature = "store")]
    pub(crate) fn fleet_cooling_down(
        code: Option<&str>,
        description: Option<&str>,
        status: Option<u16>,
        left: Duration,
    ) -> Self {
        let known = status.and_then(|s| StatusCode::from_u16(s).ok());
        let status_or_400 = known.unwrap_or(StatusCode::BAD_REQUEST);
        let cause = match code {
            Some(code) => Error::new(Kind::OAuth2(OAuth2Error {
                code: code.to_owned(),
                description: description.map(str::to_owned),
                uri: None,
                status: status_or_400,
                retry_after: None,
            })),
            None if known.is_some() => Error::new(Kind::Status(status_or_400, None)),
            None => Error::new(Kind::Source { permanent: true }),
        };
        Error::with_source(
            Kind::CoolingDown {
                cause: Box::new(cause),
                left: Some(left),
            },
            FleetCooldown(left),
        )
    }

    /// Wraps an error from a [`TokenStore`](crate::store::TokenStore) of your own:
    /// the store could not be reached or failed. Transient.
    ///
    /// ```
    /// use tower_client_auth::Error;
    ///
    /// // In a `TokenStore` of your own: the database did not answer.
    /// let err = Error::store(std::io::Error::other("connection refused"));
    /// assert!(err.is_store_unavailable());
    /// assert!(err.is_transient()); // worth asking the store again
    /// ```
    pub fn store(source: impl Into<BoxError>) -> Self {
        Error::store_unavailable(source)
    }

    /// The shared token store failed: unreachable ([`is_store_unavailable`](Self::is_store_unavailable)),
    /// or what it holds cannot be used (encrypted with another key, say).
    ///
    /// ```
    /// use tower_client_auth::Error;
    ///
    /// assert!(Error::store("redis is down").is_store());
    /// assert!(!Error::from_source("vault is down").is_store());
    /// ```
    pub fn is_store(&self) -> bool {
        matches!(
            self.root().kind(),
            Kind::StoreUnavailable | Kind::StoreData(_)
        )
    }

    /// The shared token store could not be reached, and the credential fails
    /// closed (or the error came from the store itself). Transient: requests
    /// succeed again once the store answers.
    ///
    /// ```
    /// use tower_client_auth::Error;
    ///
    /// let err = Error::store(std::io::Error::other("timed out"));
    /// assert!(err.is_store() && err.is_store_unavailable());
    /// ```
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self.root().kind(), Kind::StoreUnavailable)
    }

    pub(crate) fn login_required(user: &str) -> Self {
        Error::new(Kind::LoginRequired(user.to_owned()))
    }

    /// The user's refresh token was rejected (`invalid_grant`) or there is none:
    /// send them through the login again ([`Error::user_key`] says who). No
    /// token request is made for that user until a new login is stored
    /// ([`Users::login`](crate::users::Users::login)).
    pub fn is_login_required(&self) -> bool {
        matches!(self.root().kind(), Kind::LoginRequired(_))
    }

    /// For [`is_login_required`](Self::is_login_required), the user's key.
    pub fn user_key(&self) -> Option<&str> {
        match self.root().kind() {
            Kind::LoginRequired(user) => Some(user),
            _ => None,
        }
    }

    pub(crate) fn unsupported_token_type(token_type: &str) -> Self {
        Error::new(Kind::UnsupportedTokenType(escape(token_type, 32)))
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.inner.kind
    }

    /// Wraps an error from a token source of the user's own (see
    /// [`TokenSource`](crate::token::TokenSource)). It counts as transient: the
    /// cache retries with backoff.
    ///
    /// ```
    /// use tower_client_auth::Error;
    ///
    /// let err = Error::from_source(std::io::Error::other("vault sealed"));
    /// assert!(err.is_source());
    /// assert!(err.is_transient()); // the cache retries with backoff
    /// ```
    pub fn from_source(source: impl Into<BoxError>) -> Self {
        Error::with_source(Kind::Source { permanent: false }, source)
    }

    /// Wraps an error from a token source of the user's own that will not go away
    /// by retrying (wrong credentials, say): the cache cools down.
    ///
    /// ```
    /// use tower_client_auth::Error;
    ///
    /// let err = Error::permanent("the vault refused our role");
    /// assert!(err.is_source());
    /// assert!(!err.is_transient()); // the cache cools down instead of retrying
    /// ```
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        Error::with_source(Kind::Source { permanent: true }, source)
    }

    /// The error came from a token source of the user's own.
    ///
    /// ```
    /// use tower_client_auth::Error;
    ///
    /// assert!(Error::permanent("wrong role").is_source());
    /// assert!(!Error::store("unreachable").is_source());
    /// ```
    pub fn is_source(&self) -> bool {
        matches!(self.root().kind(), Kind::Source { .. })
    }

    /// A configuration error: an invalid header value, origin, URL or option.
    ///
    /// ```
    /// use tower_client_auth::Credential;
    ///
    /// // Plain http to a host that is not loopback is refused.
    /// let err = Credential::bearer("http://api.example.com", "my-token").unwrap_err();
    /// assert!(err.is_config());
    /// assert!(!err.is_transient());
    /// ```
    pub fn is_config(&self) -> bool {
        matches!(self.root().kind(), Kind::Config(_))
    }

    /// The token endpoint could not be reached or the connection failed.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// // Nothing listens on port 1.
    /// let tokens = TokenClient::builder("http://127.0.0.1:1/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert!(err.is_transport() && err.is_transient());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_transport(&self) -> bool {
        matches!(self.root().kind(), Kind::Transport)
    }

    /// The token endpoint did not answer within the timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// // A token endpoint that never answers.
    /// let silent = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| {
    ///     std::future::pending::<Result<http::Response<http_body_util::Full<bytes::Bytes>>, std::io::Error>>()
    /// });
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .timeout(Duration::from_millis(50))
    ///     .build(silent)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert!(err.is_timeout() && err.is_transient());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self.root().kind(), Kind::Timeout)
    }

    /// A token was needed and no Tokio runtime was running to fetch it on. The
    /// layer needs a Tokio runtime (any flavour) for managed tokens; static
    /// credentials and a cached token that is still valid work without one.
    pub fn is_no_runtime(&self) -> bool {
        matches!(self.root().kind(), Kind::NoRuntime)
    }

    /// The token endpoint issued a token of a type this crate does not send
    /// (only `Bearer` is sent; a `DPoP` or `mac` token is never stamped as if it
    /// were one). Permanent: the credential cools down.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::Credential;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     http::Response::builder().header("content-type", "application/json").body(
    /// #         http_body_util::Full::new(bytes::Bytes::from_static(br#"{"access_token":"t0k","token_type":"mac"}"#)))
    /// # });
    /// // The token endpoint answers `"token_type": "mac"`.
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(endpoint)?;
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .token_source(OAuth2Source::client_credentials(tokens))
    ///     .build()?;
    /// let err = credential.token().await.unwrap_err();
    /// assert!(err.is_unsupported_token_type());
    /// assert!(err.is_invalid_response() && !err.is_transient());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_unsupported_token_type(&self) -> bool {
        matches!(self.root().kind(), Kind::UnsupportedTokenType(_))
    }

    /// The token endpoint answered with an OAuth2 error body (`{"error": ...}`).
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::token_server::TokenServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("not-my-secret")
    ///     .build(http)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert!(err.is_oauth2() && err.is_invalid_client());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_oauth2(&self) -> bool {
        matches!(self.root().kind(), Kind::OAuth2(_))
    }

    /// The OAuth2 error code is `invalid_client`, or the token endpoint answered 401
    /// without an error body: the client credentials are wrong.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::token_server::TokenServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("last-year-secret")
    ///     .build(http)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert!(err.is_invalid_client());
    /// assert!(!err.is_transient()); // asking again will not help
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_invalid_client(&self) -> bool {
        match self.root().kind() {
            Kind::OAuth2(e) => e.code == "invalid_client",
            Kind::Status(s, _) => *s == StatusCode::UNAUTHORIZED,
            _ => false,
        }
    }

    /// The OAuth2 error code is `invalid_grant`: wrong user password, or an expired,
    /// used or revoked authorization code or refresh token.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::token_server::TokenServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder()
    ///     .client("my-client", "my-secret")
    ///     .user("alice", "wonderland")
    ///     .start()
    ///     .await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let err = tokens.password("alice", "looking-glass", &[]).await.unwrap_err();
    /// assert!(err.is_invalid_grant());
    /// assert_eq!(err.oauth2_code(), Some("invalid_grant"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_invalid_grant(&self) -> bool {
        self.oauth2_code() == Some("invalid_grant")
    }

    /// The OAuth2 error code is `unauthorized_client`.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     http::Response::builder().status(400).header("content-type", "application/json").body(
    /// #         http_body_util::Full::new(bytes::Bytes::from_static(br#"{"error":"unauthorized_client"}"#)))
    /// # });
    /// // This client may not use the client credentials grant.
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(endpoint)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert!(err.is_unauthorized_client() && !err.is_invalid_client());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_unauthorized_client(&self) -> bool {
        self.oauth2_code() == Some("unauthorized_client")
    }

    /// The OAuth2 error code is `invalid_scope`.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     http::Response::builder().status(400).header("content-type", "application/json").body(
    /// #         http_body_util::Full::new(bytes::Bytes::from_static(br#"{"error":"invalid_scope"}"#)))
    /// # });
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(endpoint)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert!(err.is_invalid_scope() && err.is_oauth2());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_invalid_scope(&self) -> bool {
        self.oauth2_code() == Some("invalid_scope")
    }

    /// The token response could not be parsed or lacked a usable access token.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::{token_server::TokenServer, Failure};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// server.fail_next(Failure::MalformedJson);
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert!(err.is_invalid_response() && !err.is_oauth2());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_invalid_response(&self) -> bool {
        matches!(
            self.root().kind(),
            Kind::InvalidResponse(_) | Kind::ResponseTooLarge(_) | Kind::UnsupportedTokenType(_)
        )
    }

    /// The token response body was larger than the cap.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::token_server::TokenServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .max_response_bytes(16) // no token response is that short
    ///     .build(http)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert!(err.is_response_too_large() && err.is_invalid_response());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_response_too_large(&self) -> bool {
        matches!(self.root().kind(), Kind::ResponseTooLarge(_))
    }

    /// The answer says the URL is not a token endpoint at all: `404`, `405`
    /// or `410`, a redirect, or a web page (`text/html`) where a token
    /// response was expected. A configuration mistake (the token URL, or a
    /// login page in front of it), not a refused credential.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let server = tower_client_auth::testing::serve(|_req| async {
    /// #     http::Response::builder().status(404).header("content-type", "text/html")
    /// #         .body(http_body_util::Full::new(bytes::Bytes::from_static(b"<h1>Not found</h1>"))).unwrap()
    /// # }).await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(format!("{}/oauth/tokn", server.base_url()))
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert!(err.is_wrong_endpoint());
    /// assert!(!err.is_invalid_client()); // nothing was refused
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_wrong_endpoint(&self) -> bool {
        let root = self.root();
        match root.kind() {
            Kind::Status(s, _) => {
                matches!(s.as_u16(), 404 | 405 | 410)
                    || s.is_redirection()
                    || root.inner.answered_html
            }
            Kind::InvalidResponse(_) => root.inner.answered_html,
            _ => false,
        }
    }

    /// The credentials themselves were refused: `invalid_client`,
    /// `invalid_grant`, `unauthorized_client`, a 401 or 403 from the token
    /// endpoint, or a source of your own that failed for good. What a fleet
    /// cools down for together (asking again would lock the account); a
    /// response that could not be used is this process's own trouble.
    #[cfg(feature = "store")]
    pub(crate) fn is_credential_refusal(&self) -> bool {
        match self.root().kind() {
            Kind::OAuth2(e) => {
                matches!(
                    e.code.as_str(),
                    "invalid_client" | "invalid_grant" | "unauthorized_client" | "access_denied"
                ) || matches!(e.status.as_u16(), 401 | 403)
            }
            Kind::Status(s, _) => matches!(s.as_u16(), 401 | 403),
            Kind::Source { permanent } => *permanent,
            _ => false,
        }
    }

    /// The token expired and there was no refresh token nor grant to get a new one.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
    /// use tower_client_auth::token::TokenSource;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .build(http)?;
    /// // No grant and no refresh token: nothing to ask the token endpoint for.
    /// let source = OAuth2Source::new(tokens, None);
    /// let err = source.fetch(None).await.unwrap_err();
    /// assert!(err.is_no_token());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_no_token(&self) -> bool {
        matches!(self.root().kind(), Kind::NoToken)
    }

    /// A recent permanent failure put the credential in cool-down: no token request
    /// was made. [`Error::cause_of_cooldown`] tells the failure.
    ///
    /// ```
    /// use tower_client_auth::{Credential, Error};
    /// # use tower_client_auth::token::{Token, TokenSource};
    /// # struct Refused;
    /// # impl TokenSource for Refused {
    /// #     fn fetch(&self, _: Option<&Token>) -> futures_util::future::BoxFuture<'static, Result<Token, Error>> {
    /// #         Box::pin(async { Err(Error::permanent("wrong password")) })
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// // `Refused` is a token source whose every fetch fails with `Error::permanent`.
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .token_source(Refused)
    ///     .build()?;
    /// let first = credential.token().await.unwrap_err();
    /// assert!(!first.is_cooling_down()); // the source was asked, and refused
    /// let second = credential.token().await.unwrap_err();
    /// assert!(second.is_cooling_down()); // not asked again
    /// assert_eq!(credential.stats().unwrap().token_requests, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_cooling_down(&self) -> bool {
        matches!(self.kind(), Kind::CoolingDown { .. })
    }

    /// For a cool-down error, the permanent failure that started it.
    ///
    /// ```
    /// use tower_client_auth::{Credential, Error};
    /// # use tower_client_auth::token::{Token, TokenSource};
    /// # struct Refused;
    /// # impl TokenSource for Refused {
    /// #     fn fetch(&self, _: Option<&Token>) -> futures_util::future::BoxFuture<'static, Result<Token, Error>> {
    /// #         Box::pin(async { Err(Error::permanent("wrong password")) })
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// // `Refused` is a token source whose every fetch fails with `Error::permanent`.
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .token_source(Refused)
    ///     .build()?;
    /// let _ = credential.token().await;
    /// let err = credential.token().await.unwrap_err();
    /// let cause = err.cause_of_cooldown().unwrap();
    /// assert!(cause.is_source() && !cause.is_cooling_down());
    /// # Ok(())
    /// # }
    /// ```
    pub fn cause_of_cooldown(&self) -> Option<&Error> {
        match self.kind() {
            Kind::CoolingDown { cause, .. } => Some(cause),
            _ => None,
        }
    }

    /// The `state` returned to the redirect URI did not match the one sent.
    ///
    /// ```
    /// use tower_client_auth::oauth2::AuthorizationUrl;
    ///
    /// let request = AuthorizationUrl::new("https://auth.example.com/authorize", "my-client", "https://my.app/cb")
    ///     .build()?;
    /// // A callback whose `state` is not the one we sent: possibly forged.
    /// let err = request.verify_callback("code=abc&state=guessed").unwrap_err();
    /// assert!(err.is_state_mismatch());
    /// # Ok::<(), tower_client_auth::Error>(())
    /// ```
    pub fn is_state_mismatch(&self) -> bool {
        matches!(self.root().kind(), Kind::StateMismatch)
    }

    /// Worth trying again later: connection failures, timeouts, 5xx, 429, and the
    /// `temporarily_unavailable`/`server_error` OAuth2 codes. Everything else from a
    /// token endpoint is permanent and starts a cool-down. A cool-down error is
    /// not transient (no request was made); every other predicate looks through it
    /// to the failure that started it.
    ///
    /// ```
    /// use tower_client_auth::Error;
    ///
    /// assert!(Error::from_source("vault restarting").is_transient());
    /// assert!(Error::store("redis unreachable").is_transient());
    /// assert!(!Error::permanent("role refused").is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self.kind() {
            Kind::Transport | Kind::Timeout => true,
            Kind::Source { permanent } => !permanent,
            Kind::Status(s, _) => {
                s.is_server_error()
                    || *s == StatusCode::TOO_MANY_REQUESTS
                    || *s == StatusCode::REQUEST_TIMEOUT
            }
            Kind::OAuth2(e) => {
                matches!(
                    e.code.as_str(),
                    "temporarily_unavailable" | "server_error" | "slow_down"
                ) || e.status.is_server_error()
                    || e.status == StatusCode::TOO_MANY_REQUESTS
            }
            // A body we could not read whole or parse, on a 5xx, is the server's trouble.
            Kind::InvalidResponse(_) | Kind::ResponseTooLarge(_) => false,
            Kind::CoolingDown { .. } => false,
            Kind::Config(_) | Kind::NoToken | Kind::StateMismatch => false,
            // Nothing will start a runtime for us; a token type we cannot send
            // will not change by asking again soon.
            Kind::NoRuntime | Kind::UnsupportedTokenType(_) => false,
            Kind::StoreUnavailable => true,
            // Worth asking again soon: another replica may store a new login,
            // and asking costs a store read, never a token request.
            Kind::LoginRequired(_) => true,
            // A key mismatch will not fix itself: cool down, say why.
            Kind::StoreData(_) => false,
            Kind::Resource(_) => false,
            Kind::Lifecycle(l) => l.is_transient(self.crate_source()),
        }
    }

    /// The OAuth2 `error` code, if the token endpoint sent one.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     http::Response::builder().status(400).header("content-type", "application/json").body(
    /// #         http_body_util::Full::new(bytes::Bytes::from_static(br#"{"error":"access_denied"}"#)))
    /// # });
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(endpoint)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// // A code without a predicate of its own is still there to read.
    /// assert_eq!(err.oauth2_code(), Some("access_denied"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn oauth2_code(&self) -> Option<&str> {
        match self.root().kind() {
            Kind::OAuth2(e) => Some(&e.code),
            _ => None,
        }
    }

    /// The OAuth2 `error_description`, if any.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     http::Response::builder().status(400).header("content-type", "application/json").body(
    /// #         http_body_util::Full::new(bytes::Bytes::from_static(
    /// #             br#"{"error":"invalid_scope","error_description":"unknown scope: admin"}"#)))
    /// # });
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(endpoint)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert_eq!(err.oauth2_description(), Some("unknown scope: admin"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn oauth2_description(&self) -> Option<&str> {
        match self.root().kind() {
            Kind::OAuth2(e) => e.description.as_deref(),
            _ => None,
        }
    }

    /// The OAuth2 `error_uri`, if any.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let endpoint = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     http::Response::builder().status(401).header("content-type", "application/json").body(
    /// #         http_body_util::Full::new(bytes::Bytes::from_static(
    /// #             br#"{"error":"invalid_client","error_uri":"https://auth.example.com/help/clients"}"#)))
    /// # });
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(endpoint)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert_eq!(err.oauth2_uri(), Some("https://auth.example.com/help/clients"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn oauth2_uri(&self) -> Option<&str> {
        match self.root().kind() {
            Kind::OAuth2(e) => e.uri.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of the token endpoint's answer, when it gave one.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::{token_server::TokenServer, Failure};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// server.fail_next(Failure::ServerError);
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert_eq!(err.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    /// assert!(err.is_transient());
    /// # Ok(())
    /// # }
    /// ```
    pub fn status(&self) -> Option<StatusCode> {
        match self.root().kind() {
            Kind::OAuth2(e) => Some(e.status),
            Kind::Status(s, _) => Some(*s),
            _ => None,
        }
    }

    /// The delay asked for by the token endpoint's `Retry-After` header, if any.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::{token_server::TokenServer, Failure};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// server.fail_next(Failure::TooManyRequests { retry_after_secs: 30 });
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let err = tokens.client_credentials(&[]).await.unwrap_err();
    /// assert_eq!(err.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self.root().kind() {
            Kind::OAuth2(e) => e.retry_after,
            Kind::Status(_, r) => *r,
            _ => None,
        }
    }

    fn root(&self) -> &Error {
        match self.kind() {
            Kind::CoolingDown { cause, .. } => cause,
            _ => self,
        }
    }

    /// For [`is_cooling_down`](Self::is_cooling_down), how long the cool-down
    /// still lasts, when known.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::{Credential, Error};
    /// # use tower_client_auth::token::{Token, TokenSource};
    /// # struct Refused;
    /// # impl TokenSource for Refused {
    /// #     fn fetch(&self, _: Option<&Token>) -> futures_util::future::BoxFuture<'static, Result<Token, Error>> {
    /// #         Box::pin(async { Err(Error::permanent("wrong password")) })
    /// #     }
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// // `Refused` is a token source whose every fetch fails with `Error::permanent`.
    /// let credential = Credential::builder()
    ///     .origin("https://api.example.com")
    ///     .token_source(Refused)
    ///     .build()?;
    /// let _ = credential.token().await;
    /// let err = credential.token().await.unwrap_err();
    /// let left = err.cooldown_left().unwrap();
    /// assert!(left > Duration::ZERO && left <= Duration::from_secs(60)); // the first cool-down
    /// # Ok(())
    /// # }
    /// ```
    pub fn cooldown_left(&self) -> Option<Duration> {
        match self.kind() {
            Kind::CoolingDown { left, .. } => *left,
            _ => None,
        }
    }
}

/// Server-supplied text as it may be shown: printable ASCII only (anything else
/// escaped), at most `max` characters, so that a token endpoint cannot inject
/// lines or control characters into logs.
pub(crate) fn escape(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// `Display` tells this error's own level only; what caused it is reached through
/// [`std::error::Error::source`], so a reporter that walks the chain prints each
/// cause once.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.inner.endpoint.as_deref();
        match self.kind() {
            Kind::Config(msg) => write!(f, "invalid configuration: {msg}")?,
            Kind::Transport => match at {
                Some(url) => write!(f, "token endpoint request to {url} failed")?,
                None => f.write_str("token endpoint request failed")?,
            },
            Kind::Timeout => match at {
                Some(url) => write!(f, "token endpoint request to {url} timed out")?,
                None => f.write_str("token endpoint request timed out")?,
            },
            Kind::OAuth2(e) => {
                let code = escape(&e.code, 64);
                write!(f, "token endpoint ")?;
                if let Some(url) = at {
                    write!(f, "{url} ")?;
                }
                write!(f, "answered error `{code}` (HTTP {})", e.status)?;
                if let Some(d) = &e.description {
                    write!(f, ": {}", escape(d, 256))?;
                }
            }
            Kind::Status(s, _) => {
                write!(f, "token endpoint ")?;
                if let Some(url) = at {
                    write!(f, "{url} ")?;
                }
                write!(f, "answered HTTP {s}")?;
            }
            Kind::InvalidResponse(msg) => match at {
                Some(url) => write!(f, "invalid token response from {url}: {msg}")?,
                None => write!(f, "invalid token response: {msg}")?,
            },
            Kind::ResponseTooLarge(cap) => match at {
                Some(url) => write!(f, "token response from {url} larger than {cap} bytes")?,
                None => write!(f, "token response larger than {cap} bytes")?,
            },
            Kind::NoToken => f.write_str("access token expired and cannot be refreshed")?,
            Kind::CoolingDown { left, .. } => {
                f.write_str("no token request made: cooling down after a permanent failure")?;
                match (&self.inner.source, left) {
                    // Another process's failure, from the shared store (it
                    // says how long).
                    (Some(fleet), _) => write!(f, " ({fleet})")?,
                    (None, Some(left)) => write!(f, " ({} left)", Seconds(*left))?,
                    (None, None) => {}
                }
            }
            Kind::StateMismatch => f.write_str("authorization callback `state` does not match")?,
            Kind::Source { .. } => f.write_str("token source failed")?,
            Kind::NoRuntime => {
                f.write_str("a token request needs a Tokio runtime and none is running")?
            }
            Kind::UnsupportedTokenType(t) => {
                write!(f, "token type `{t}` is not supported (only Bearer is sent)")?
            }
            Kind::StoreUnavailable => f.write_str("shared token store unavailable")?,
            Kind::StoreData(what) => write!(f, "shared token store: {what}")?,
            Kind::LoginRequired(user) => {
                write!(f, "user `{}` must log in again", escape(user, 128))?
            }
            Kind::Resource(e) => write!(f, "{e}")?,
            Kind::Lifecycle(l) => l.fmt_at(f, at)?,
        }
        if let Some(answer) = &self.inner.answer {
            write!(f, " ({answer}): is the token URL right?")?;
        }
        Ok(())
    }
}

/// A duration in whole seconds, rounded up (a cool-down of 0.4 s left is
/// "1 s", never "0 s").
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        write!(f, "{secs} s")
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.kind() {
            Kind::CoolingDown { cause, .. } => Some(&**cause),
            _ => self
                .inner
                .source
                .as_ref()
                .map(|e| &**e as &(dyn std::error::Error + 'static)),
        }
    }
}

/// A store driver's message, folded (see [`Error::store_driver`]).
#[cfg(any(feature = "redis", feature = "postgres"))]
#[derive(Debug)]
struct DriverError(String);

#[cfg(any(feature = "redis", feature = "postgres"))]
impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(any(feature = "redis", feature = "postgres"))]
impl std::error::Error for DriverError {}

/// Where a cool-down came from when another process of the fleet started it.
#[cfg(feature = "store")]
#[derive(Debug)]
struct FleetCooldown(Duration);

#[cfg(feature = "store")]
impl fmt::Display for FleetCooldown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "recorded in the shared store for the whole fleet, {} s left",
            self.0.as_secs().max(1)
        )
    }
}

#[cfg(feature = "store")]
impl std::error::Error for FleetCooldown {}

#[cfg(test)]
mod tests;
