//! Local emulators of the providers' authorization servers and APIs, for tests
//! (yours and ours). Each listens on 127.0.0.1 with a free port, behaves as the
//! provider's documentation says, counts what it receives, and fails on demand.
//!
//! ```
//! use tower_client_auth::testing::{altrata::Altrata, Failure};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let altrata = Altrata::start("api-key", "user", "password").await;
//! altrata.fail_next(Failure::ServerError);
//! assert_eq!(altrata.token_requests(), 0);
//! # }
//! ```
//!
//! Emulators in this module:
//!
//! * [`algoreg::Algoreg`]: Basic `email:password` or a JSON password grant at
//!   `/api/v1/token`; locks the account after too many wrong passwords.
//! * [`altrata::Altrata`]: client credentials with `grant_type` in the query,
//!   `x-api-key` + Basic; issuing a token revokes the previous one; the API wants
//!   `x-api-key` and the bearer token.
//! * [`oauth::OAuthServer`]: an authorization-code server (Agrello, and the generic
//!   OAuth2 API): authorize endpoint that approves at once, code exchange with
//!   Basic client authentication and PKCE, refresh-token rotation, personal
//!   access tokens.
//! * [`token_server::TokenServer`]: a plain RFC 6749 authorization server for
//!   your own tests: `client_credentials`, `password` and `refresh_token`,
//!   Basic or form client authentication, lifetimes, rotation, lock-out and
//!   failures on demand, per-grant counters.

// Handlers return ready responses as their errors.
#![allow(clippy::result_large_err)]

pub mod algoreg;
pub mod altrata;
pub mod oauth;
mod server;
pub mod token_server;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;

pub use server::{serve, Server};

/// A failure an emulator's token endpoint produces on demand, once per call to
/// `fail_next`.
///
/// ```
/// use std::time::Duration;
/// use tower_client_auth::oauth2::TokenClient;
/// use tower_client_auth::testing::token_server::TokenServer;
/// use tower_client_auth::testing::Failure;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
/// server.fail_next(Failure::TooManyRequests { retry_after_secs: 120 });
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let tokens = TokenClient::builder(server.token_url())
///     .client_id("my-client")
///     .client_secret("my-secret")
///     .build(http)?;
/// let err = tokens.client_credentials(&[]).await.unwrap_err();
/// assert!(err.is_transient());
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
/// tokens.client_credentials(&[]).await?; // one failure per `fail_next`
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Failure {
    /// `500 Internal Server Error`.
    ServerError,
    /// `429 Too Many Requests` with `Retry-After` in seconds.
    TooManyRequests {
        /// The `Retry-After` value.
        retry_after_secs: u64,
    },
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// `200` with a body that is not JSON.
    MalformedJson,
}

/// What every emulator shares: issued tokens, counters, failure injection.
#[derive(Debug)]
pub(crate) struct Common {
    tokens: Mutex<HashMap<String, Issued>>,
    failures: Mutex<VecDeque<Failure>>,
    lifetime: Mutex<Duration>,
    token_requests: AtomicU64,
    api_requests: AtomicU64,
    api_rejections: AtomicU64,
    counter: AtomicU64,
}

#[derive(Debug, Clone)]
struct Issued {
    expires: Instant,
    revoked: bool,
    subject: String,
}

impl Common {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Common {
            tokens: Mutex::new(HashMap::new()),
            failures: Mutex::new(VecDeque::new()),
            lifetime: Mutex::new(lifetime),
            token_requests: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            api_rejections: AtomicU64::new(0),
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn lifetime(&self) -> Duration {
        *lock(&self.lifetime)
    }

    pub(crate) fn set_lifetime(&self, d: Duration) {
        *lock(&self.lifetime) = d;
    }

    pub(crate) fn fail_next(&self, f: Failure) {
        lock(&self.failures).push_back(f);
    }

    /// Counts a token request and applies a queued failure, if any: `Some` is the
    /// response to send instead.
    pub(crate) async fn token_request(&self) -> Option<Response<Full<Bytes>>> {
        self.token_requests.fetch_add(1, Ordering::SeqCst);
        let failure = lock(&self.failures).pop_front();
        match failure? {
            Failure::ServerError => Some(json(500, r#"{"error":"server_error"}"#)),
            Failure::TooManyRequests { retry_after_secs } => {
                let mut r = json(429, r#"{"message":"slow down"}"#);
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(retry_after_secs),
                );
                Some(r)
            }
            Failure::Slow(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Failure::MalformedJson => Some(json(200, "{\"access_token\": ")),
        }
    }

    /// Issues a token for `subject`, living the configured lifetime.
    pub(crate) fn issue(&self, prefix: &str, subject: &str) -> (String, Duration) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("{prefix}-{n}-{:016x}", random_u64());
        let lifetime = self.lifetime();
        lock(&self.tokens).insert(
            token.clone(),
            Issued {
                expires: Instant::now() + lifetime,
                revoked: false,
                subject: subject.to_owned(),
            },
        );
        (token, lifetime)
    }

    /// Revokes every token of `subject`; returns how many were still valid.
    pub(crate) fn revoke_subject(&self, subject: &str) -> usize {
        let now = Instant::now();
        let mut valid = 0;
        for t in lock(&self.tokens).values_mut() {
            if t.subject == subject {
                if !t.revoked && now < t.expires {
                    valid += 1;
                }
                t.revoked = true;
            }
        }
        valid
    }

    /// Revokes every token issued so far.
    pub(crate) fn revoke_all(&self) {
        for t in lock(&self.tokens).values_mut() {
            t.revoked = true;
        }
    }

    /// Checks an `Authorization: Bearer` value; counts the API request.
    pub(crate) fn check_bearer(
        &self,
        authorization: Option<&str>,
    ) -> Result<String, Response<Full<Bytes>>> {
        self.api_requests.fetch_add(1, Ordering::SeqCst);
        let token = authorization.and_then(|a| {
            let (scheme, rest) = a.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        });
        let valid = token.and_then(|t| {
            let tokens = lock(&self.tokens);
            let issued = tokens.get(t)?;
            (!issued.revoked && Instant::now() < issued.expires).then(|| issued.subject.clone())
        });
        valid.ok_or_else(|| {
            self.api_rejections.fetch_add(1, Ordering::SeqCst);
            unauthorized()
        })
    }

    pub(crate) fn count_api(&self) {
        self.api_requests.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn reject_api(&self) -> Response<Full<Bytes>> {
        self.api_rejections.fetch_add(1, Ordering::SeqCst);
        unauthorized()
    }
}

/// Counters an emulator exposes.
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower_client_auth::testing::altrata::Altrata;
/// use tower_client_auth::testing::Counts;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let emulator = Altrata::start("my-api-key", "my-user", "my-password").await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// // A call without credentials is counted, and refused.
/// let req = Request::post(emulator.graphql_url()).body(Full::new(Bytes::new()))?;
/// assert_eq!(http.request(req).await?.status(), 401);
/// let counts = Counts { token_requests: 0, api_requests: 1, api_rejections: 1 };
/// assert_eq!(emulator.counts(), counts);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Requests to the token endpoint, including failed ones.
    pub token_requests: u64,
    /// Requests to the API.
    pub api_requests: u64,
    /// API requests answered 401.
    pub api_rejections: u64,
}

impl Common {
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            token_requests: self.token_requests.load(Ordering::SeqCst),
            api_requests: self.api_requests.load(Ordering::SeqCst),
            api_rejections: self.api_rejections.load(Ordering::SeqCst),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn json(status: u16, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn unauthorized() -> Response<Full<Bytes>> {
    let mut r = json(401, r#"{"message":"Unauthorized"}"#);
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
    );
    r
}

/// `(user, password)` of a `Basic` authorization value.
pub(crate) fn basic(authorization: Option<&str>) -> Option<(String, String)> {
    use base64::Engine as _;
    let encoded = authorization?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // Test tokens only need to be unique; fall back to a counter-ish value.
    if getrandom::fill(&mut b).is_err() {
        return 0x5eed;
    }
    u64::from_le_bytes(b)
}

pub(crate) fn header<'a>(req: &'a http::Request<Bytes>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}
