//! A plain OAuth2 authorization server (RFC 6749) for your tests:
//! `client_credentials`, `password` and `refresh_token` grants at
//! [`TOKEN_PATH`], client authentication by Basic or in the form, and an API
//! under `/api/` that accepts the tokens it issued. It counts what it gets per
//! grant, issues tokens of the lifetime you set, rotates refresh tokens if
//! asked, locks a user after too many wrong passwords if asked, and fails on
//! demand ([`Failure`]).
//!
//! ```
//! use std::time::Duration;
//! use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
//! use tower_client_auth::testing::token_server::TokenServer;
//! use tower_client_auth::testing::Failure;
//! use tower_client_auth::Credential;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_client_auth::BoxError> {
//! let server = TokenServer::builder()
//!     .client("my-client", "my-secret")
//!     .user("alice", "wonderland")
//!     .token_lifetime(Duration::from_secs(300))
//!     .start()
//!     .await;
//! server.fail_next(Failure::ServerError); // the first token request gets a 500
//!
//! # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
//! #     .build_http::<http_body_util::Full<bytes::Bytes>>();
//! let tokens = TokenClient::builder(server.token_url())
//!     .client_id("my-client")
//!     .client_secret("my-secret")
//!     .build(http)?; // plain http:// is fine: the server is on loopback
//! let credential = Credential::builder()
//!     .origin(&server.base_url())
//!     .token_source(OAuth2Source::password(tokens, "alice", "wonderland"))
//!     .build()?;
//! let token = credential.token().await?; // retried after the 500
//! assert_eq!(server.token_requests(), 2);
//! assert_eq!(server.grants("password"), 1);
//! # let _ = token; Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use http::Request;

use super::{basic, header, json, lock, Common, Counts, Failure, Server};

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth/token";

/// Builds a [`TokenServer`].
///
/// ```
/// use std::time::Duration;
/// use tower_client_auth::oauth2::TokenClient;
/// use tower_client_auth::testing::token_server::TokenServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let server = TokenServer::builder()
///     .client("my-client", "my-secret")
///     .user("alice", "alice-password")
///     .token_lifetime(Duration::from_secs(60))
///     .rotate_refresh_tokens(true)
///     .lock_after_wrong_passwords(3)
///     .start()
///     .await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let tokens = TokenClient::builder(server.token_url())
///     .client_id("my-client")
///     .client_secret("my-secret")
///     .build(http)?;
/// let token = tokens.password("alice", "alice-password", &[]).await?;
/// assert_eq!(token.expires_in(), Some(Duration::from_secs(60)));
/// tokens.refresh(token.refresh_token().unwrap(), &[]).await?;
/// assert_eq!(server.spent_refresh_tokens(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenServerBuilder {
    clients: HashMap<String, String>,
    users: HashMap<String, String>,
    lifetime: Duration,
    refresh_tokens: bool,
    rotate: bool,
    lock_after: Option<u32>,
}

impl TokenServerBuilder {
    /// A client the token endpoint accepts (any number; none means none).
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
    /// let stranger = TokenClient::builder(server.token_url())
    ///     .client_id("someone-else")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// assert!(stranger.client_credentials(&[]).await.unwrap_err().is_invalid_client());
    /// assert_eq!(server.refused(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn client(mut self, id: &str, secret: &str) -> Self {
        self.clients.insert(id.to_owned(), secret.to_owned());
        self
    }

    /// A resource owner for the password grant.
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
    /// tokens.password("alice", "wonderland", &[]).await?;
    /// assert_eq!(server.grants("password"), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn user(mut self, username: &str, password: &str) -> Self {
        self.users.insert(username.to_owned(), password.to_owned());
        self
    }

    /// Access-token lifetime (default one hour); change it later with
    /// [`TokenServer::set_token_lifetime`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::token_server::TokenServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder()
    ///     .client("my-client", "my-secret")
    ///     .token_lifetime(Duration::from_secs(90))
    ///     .start()
    ///     .await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let token = tokens.client_credentials(&[]).await?;
    /// assert_eq!(token.expires_in(), Some(Duration::from_secs(90)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Whether the password and refresh grants answer with a refresh token
    /// (default yes; `client_credentials` never does).
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
    ///     .refresh_tokens(false) // the password grant runs again on every refresh
    ///     .start()
    ///     .await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let token = tokens.password("alice", "wonderland", &[]).await?;
    /// assert!(token.refresh_token().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn refresh_tokens(mut self, issue: bool) -> Self {
        self.refresh_tokens = issue;
        self
    }

    /// Refresh-token rotation: a refresh token works once (default: it works
    /// until revoked).
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
    ///     .rotate_refresh_tokens(true)
    ///     .start()
    ///     .await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// let first = tokens.password("alice", "wonderland", &[]).await?;
    /// let old = first.refresh_token().unwrap();
    /// tokens.refresh(old, &[]).await?;
    /// assert!(tokens.refresh(old, &[]).await.unwrap_err().is_invalid_grant()); // used up
    /// # Ok(())
    /// # }
    /// ```
    pub fn rotate_refresh_tokens(mut self, rotate: bool) -> Self {
        self.rotate = rotate;
        self
    }

    /// Locks a user after `n` wrong passwords: from then on even the right one
    /// gets `invalid_grant` (as many real identity providers do).
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
    ///     .lock_after_wrong_passwords(2)
    ///     .start()
    ///     .await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url())
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .build(http)?;
    /// for _ in 0..2 {
    ///     let _ = tokens.password("alice", "guess", &[]).await;
    /// }
    /// assert_eq!(server.wrong_passwords("alice"), 2);
    /// // Locked: even the right password is refused now.
    /// assert!(tokens.password("alice", "wonderland", &[]).await.unwrap_err().is_invalid_grant());
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock_after_wrong_passwords(mut self, n: u32) -> Self {
        self.lock_after = Some(n);
        self
    }

    /// Starts the server on 127.0.0.1 with a free port.
    ///
    /// ```
    /// use tower_client_auth::testing::token_server::{TokenServer, TOKEN_PATH};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// assert!(server.base_url().starts_with("http://127.0.0.1:"));
    /// assert_eq!(server.token_url(), format!("{}{TOKEN_PATH}", server.base_url()));
    /// # }
    /// ```
    pub async fn start(self) -> TokenServer {
        let state = Arc::new(Common::new(self.lifetime));
        let book = Arc::new(Mutex::new(Book::default()));
        let config = Arc::new(self);
        let (s, b, c) = (state.clone(), book.clone(), config.clone());
        let handler: super::server::Handler = Arc::new(move |req: Request<bytes::Bytes>| {
            let (s, b, c) = (s.clone(), b.clone(), c.clone());
            async move {
                match (req.method().as_str(), req.uri().path()) {
                    ("POST", TOKEN_PATH) => {
                        if let Some(r) = s.token_request().await {
                            return r;
                        }
                        token_endpoint(&req, &s, &b, &c)
                    }
                    (_, path) if path.starts_with("/api/") => {
                        match s.check_bearer(header(&req, "authorization")) {
                            Ok(subject) => {
                                json(200, &serde_json::json!({ "subject": subject }).to_string())
                            }
                            Err(r) => r,
                        }
                    }
                    _ => json(404, r#"{"error":"not_found"}"#),
                }
            }
            .boxed()
        });
        TokenServer {
            server: Server::start(handler).await,
            state,
            book,
        }
    }
}

/// What the token endpoint has seen and handed out.
#[derive(Debug, Default)]
struct Book {
    /// Live refresh tokens -> (subject, scope).
    refresh: HashMap<String, (String, String)>,
    /// Refresh tokens used under rotation.
    spent: HashSet<String>,
    /// Successful grants by `grant_type`.
    grants: HashMap<String, u64>,
    /// Wrong passwords by user.
    wrong: HashMap<String, u32>,
    /// Token requests refused for bad client authentication or a bad grant.
    refused: u64,
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn token_endpoint(
    req: &Request<bytes::Bytes>,
    state: &Common,
    book: &Mutex<Book>,
    config: &TokenServerBuilder,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let params = form(req.body());
    let refuse = |status: u16, code: &str| {
        lock(book).refused += 1;
        json(status, &serde_json::json!({ "error": code }).to_string())
    };
    // Client authentication: Basic, else client_id + client_secret in the form.
    let client = basic(header(req, "authorization")).or_else(|| {
        Some((
            params.get("client_id")?.clone(),
            params.get("client_secret")?.clone(),
        ))
    });
    let client_id = match client {
        Some((id, secret)) if config.clients.get(&id) == Some(&secret) => id,
        _ => return refuse(401, "invalid_client"),
    };
    let scope = params.get("scope").cloned().unwrap_or_default();
    let grant = params.get("grant_type").cloned().unwrap_or_default();
    let (subject, scope, refresh) = match grant.as_str() {
        "client_credentials" => (client_id, scope, false),
        "password" => {
            let user = params.get("username").cloned().unwrap_or_default();
            let password = params.get("password").map(String::as_str);
            let mut b = lock(book);
            let wrong = b.wrong.get(&user).copied().unwrap_or(0);
            let locked = config.lock_after.is_some_and(|n| wrong >= n);
            if locked || config.users.get(&user).map(String::as_str) != password {
                if !locked {
                    *b.wrong.entry(user).or_default() += 1;
                }
                drop(b);
                return refuse(400, "invalid_grant");
            }
            (user, scope, config.refresh_tokens)
        }
        "refresh_token" => {
            let rt = params.get("refresh_token").cloned().unwrap_or_default();
            let mut b = lock(book);
            let found = if config.rotate {
                b.refresh.remove(&rt)
            } else {
                b.refresh.get(&rt).cloned()
            };
            let Some((subject, granted)) = found else {
                drop(b);
                return refuse(400, "invalid_grant");
            };
            if config.rotate {
                b.spent.insert(rt);
            }
            let scope = if scope.is_empty() { granted } else { scope };
            (subject, scope, config.refresh_tokens)
        }
        _ => return refuse(400, "unsupported_grant_type"),
    };
    *lock(book).grants.entry(grant).or_default() += 1;
    let (access, lifetime) = state.issue("access", &subject);
    let mut body = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
    });
    if !scope.is_empty() {
        body["scope"] = scope.clone().into();
    }
    if refresh {
        let rt = state.issue("refresh", "refresh-tokens").0;
        lock(book).refresh.insert(rt.clone(), (subject, scope));
        body["refresh_token"] = rt.into();
    }
    json(200, &body.to_string())
}

/// The plain authorization server. Stops when dropped.
///
/// Its API answers 401 to a revoked token, and the layer renews the token once:
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower::{Layer, ServiceExt};
/// use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
/// use tower_client_auth::testing::token_server::TokenServer;
/// use tower_client_auth::{AuthLayer, Credential};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<tower_client_auth::ReplayBody<http_body_util::Full<bytes::Bytes>>>();
/// let tokens = TokenClient::builder(server.token_url())
///     .client_id("my-client")
///     .client_secret("my-secret")
///     .build(http.clone())?;
/// let credential = Credential::builder()
///     .origin(&server.base_url())
///     .token_source(OAuth2Source::client_credentials(tokens))
///     .build()?;
/// let api = AuthLayer::new(credential).layer(http);
/// let whoami = || Request::get(server.api_url("whoami")).body(Full::new(Bytes::new()));
/// assert_eq!(api.clone().oneshot(whoami()?).await?.status(), 200);
///
/// server.revoke_access_tokens();
/// assert_eq!(api.oneshot(whoami()?).await?.status(), 200); // renewed and re-sent
/// assert_eq!(server.grants("client_credentials"), 2);
/// assert_eq!(server.counts().api_rejections, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TokenServer {
    server: Server,
    state: Arc<Common>,
    book: Arc<Mutex<Book>>,
}

impl TokenServer {
    /// Starts configuring a server.
    ///
    /// ```
    /// use tower_client_auth::testing::token_server::TokenServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // No client configured: every token request is refused.
    /// let server = TokenServer::builder().start().await;
    /// assert_eq!(server.token_requests(), 0);
    /// # }
    /// ```
    pub fn builder() -> TokenServerBuilder {
        TokenServerBuilder {
            clients: HashMap::new(),
            users: HashMap::new(),
            lifetime: Duration::from_secs(3600),
            refresh_tokens: true,
            rotate: false,
            lock_after: None,
        }
    }

    /// `http://127.0.0.1:PORT`: the API's origin.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.server.base_url())
    }

    /// A URL of the API (`path` under `/api/`), which answers 200 with the
    /// token's subject, or 401.
    ///
    /// ```
    /// use tower_client_auth::testing::token_server::TokenServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TokenServer::builder().start().await;
    /// assert_eq!(server.api_url("/v1/me"), format!("{}/api/v1/me", server.base_url()));
    /// # }
    /// ```
    pub fn api_url(&self, path: &str) -> String {
        format!(
            "{}/api/{}",
            self.server.base_url(),
            path.trim_start_matches('/')
        )
    }

    /// Counters: token requests (all), API requests, API 401s.
    ///
    /// ```
    /// use tower_client_auth::testing::token_server::TokenServer;
    /// use tower_client_auth::testing::Counts;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// // An API call without a token is counted, and refused.
    /// let res = http.get(server.api_url("me").parse()?).await?;
    /// assert_eq!(res.status(), 401);
    /// assert_eq!(server.counts(), Counts { token_requests: 0, api_requests: 1, api_rejections: 1 });
    /// # Ok(())
    /// # }
    /// ```
    pub fn counts(&self) -> Counts {
        self.state.counts()
    }

    /// Requests to the token endpoint, failed ones included.
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
    /// let tokens = TokenClient::builder(server.token_url()).client_id("my-client").client_secret("nope").build(http)?;
    /// let _ = tokens.client_credentials(&[]).await;
    /// assert_eq!(server.token_requests(), 1); // refused ones count too
    /// # Ok(())
    /// # }
    /// ```
    pub fn token_requests(&self) -> u64 {
        self.counts().token_requests
    }

    /// Successful grants of `grant_type` (`"password"`, ...).
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
    /// let tokens = TokenClient::builder(server.token_url()).client_id("my-client").client_secret("my-secret").build(http)?;
    /// tokens.client_credentials(&[]).await?;
    /// assert_eq!(server.grants("client_credentials"), 1);
    /// assert_eq!(server.grants("password"), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn grants(&self, grant_type: &str) -> u64 {
        lock(&self.book)
            .grants
            .get(grant_type)
            .copied()
            .unwrap_or(0)
    }

    /// Token requests refused (bad client, wrong password, unknown or spent
    /// refresh token, unsupported grant).
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
    /// let tokens = TokenClient::builder(server.token_url()).client_id("my-client").client_secret("my-secret").build(http)?;
    /// let _ = tokens.refresh(&"never-issued".into(), &[]).await;
    /// assert_eq!(server.refused(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn refused(&self) -> u64 {
        lock(&self.book).refused
    }

    /// Wrong passwords seen for `username`.
    pub fn wrong_passwords(&self, username: &str) -> u32 {
        lock(&self.book).wrong.get(username).copied().unwrap_or(0)
    }

    /// Refresh tokens used up under rotation.
    pub fn spent_refresh_tokens(&self) -> usize {
        lock(&self.book).spent.len()
    }

    /// Queues a failure for the next token request.
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::{token_server::TokenServer, Failure};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url()).client_id("my-client").client_secret("my-secret").build(http)?;
    /// server.fail_next(Failure::ServerError);
    /// server.fail_next(Failure::MalformedJson); // queued after the first
    /// assert!(tokens.client_credentials(&[]).await.unwrap_err().is_transient());
    /// assert!(tokens.client_credentials(&[]).await.unwrap_err().is_invalid_response());
    /// tokens.client_credentials(&[]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn fail_next(&self, failure: Failure) {
        self.state.fail_next(failure);
    }

    /// Lifetime of tokens issued from now on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::token_server::TokenServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url()).client_id("my-client").client_secret("my-secret").build(http)?;
    /// server.set_token_lifetime(Duration::from_secs(5));
    /// assert_eq!(tokens.client_credentials(&[]).await?.expires_in(), Some(Duration::from_secs(5)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.set_lifetime(lifetime);
    }

    /// Revokes every access token issued so far (the API answers 401).
    pub fn revoke_access_tokens(&self) {
        self.state.revoke_all();
    }

    /// Revokes every refresh token (their next use gets `invalid_grant`).
    ///
    /// ```
    /// use tower_client_auth::oauth2::TokenClient;
    /// use tower_client_auth::testing::token_server::TokenServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let server = TokenServer::builder().client("my-client", "my-secret").user("alice", "pw").start().await;
    /// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let tokens = TokenClient::builder(server.token_url()).client_id("my-client").client_secret("my-secret").build(http)?;
    /// let token = tokens.password("alice", "pw", &[]).await?;
    /// server.revoke_refresh_tokens(); // say, the user changed their password
    /// let err = tokens.refresh(token.refresh_token().unwrap(), &[]).await.unwrap_err();
    /// assert!(err.is_invalid_grant());
    /// # Ok(())
    /// # }
    /// ```
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.book).refresh.clear();
    }
}
