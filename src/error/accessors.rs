//! What an [`Error`] carries, read by its accessors (the OAuth2 error fields,
//! the HTTP status, `Retry-After`, the endpoint, a cool-down's time left, the
//! user), and the constructors a `TokenSource` of your own uses.

use std::time::Duration;

use http::StatusCode;

use super::{BoxError, Error, Kind};

impl Error {
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

    /// For [`is_login_required`](Self::is_login_required), the user's key.
    pub fn user_key(&self) -> Option<&str> {
        match self.root().kind() {
            Kind::LoginRequired(user) => Some(user),
            _ => None,
        }
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
