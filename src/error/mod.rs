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

mod accessors;
mod predicates;
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

    pub(crate) fn login_required(user: &str) -> Self {
        Error::new(Kind::LoginRequired(user.to_owned()))
    }

    pub(crate) fn unsupported_token_type(token_type: &str) -> Self {
        Error::new(Kind::UnsupportedTokenType(escape(token_type, 32)))
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.inner.kind
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

    fn root(&self) -> &Error {
        match self.kind() {
            Kind::CoolingDown { cause, .. } => cause,
            _ => self,
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
