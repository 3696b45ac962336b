//! The `is_*` predicates of [`Error`]: what went wrong, asked one question at
//! a time (a cool-down looks through to its cause). The type, its kinds and
//! `Display` are in `mod.rs`; the accessors in `accessors.rs`.

use http::StatusCode;

use super::{Error, Kind};

impl Error {
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

    /// The user's refresh token was rejected (`invalid_grant`) or there is none:
    /// send them through the login again ([`Error::user_key`] says who). No
    /// token request is made for that user until a new login is stored
    /// ([`Users::login`](crate::users::Users::login)).
    pub fn is_login_required(&self) -> bool {
        matches!(self.root().kind(), Kind::LoginRequired(_))
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
}
