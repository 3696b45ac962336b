//! Altrata's authorization server and GraphQL API, as their documentation says:
//! `POST /oauth2/token?grant_type=client_credentials` with `x-api-key` and Basic
//! `username:password` and a form content type, answering 8-hour bearer tokens;
//! **a new token terminates the previous one**; API calls need both `x-api-key`
//! and the bearer token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::Request;

use super::{basic, header, json, Common, Counts, Failure, Server};

/// The Altrata emulator. Stops when dropped.
///
/// Like Altrata, it ends a token when it issues the next:
///
/// ```
/// use tower_client_auth::oauth2::{ClientAuth, ParamStyle, TokenClient};
/// use tower_client_auth::testing::altrata::Altrata;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let emulator = Altrata::start("my-api-key", "my-user", "my-password").await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let tokens = TokenClient::builder(emulator.token_url())
///     .client_id("my-user")
///     .client_secret("my-password")
///     .client_auth(ClientAuth::BasicRaw)
///     .params_in(ParamStyle::Query)
///     .header("x-api-key", "my-api-key")
///     .build(http)?;
/// tokens.client_credentials(&[]).await?;
/// tokens.client_credentials(&[]).await?;
/// assert_eq!(emulator.terminated_valid_tokens(), 1); // the second ended the first
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Altrata {
    server: Server,
    state: Arc<Common>,
    terminated: Arc<AtomicU64>,
}

impl Altrata {
    /// Starts an emulator that accepts this API key and these credentials.
    pub async fn start(api_key: &str, username: &str, password: &str) -> Altrata {
        let state = Arc::new(Common::new(Duration::from_secs(28_800)));
        let (key, user, pass) = (api_key.to_owned(), username.to_owned(), password.to_owned());
        let terminated = Arc::new(AtomicU64::new(0));
        let (s, t) = (state.clone(), terminated.clone());
        let handler: super::server::Handler = Arc::new(move |req: Request<bytes::Bytes>| {
            let (s, t) = (s.clone(), t.clone());
            let (key, user, pass) = (key.clone(), user.clone(), pass.clone());
            async move {
                let key_ok = header(&req, "x-api-key") == Some(key.as_str());
                match (req.method().as_str(), req.uri().path()) {
                    ("POST", "/oauth2/token") => {
                        if let Some(r) = s.token_request().await {
                            return r;
                        }
                        if !key_ok {
                            return json(403, r#"{"message":"Forbidden"}"#);
                        }
                        if req.uri().query() != Some("grant_type=client_credentials") {
                            return json(400, r#"{"error":"unsupported_grant_type"}"#);
                        }
                        let form = header(&req, "content-type")
                            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
                        if !form {
                            return json(415, r#"{"message":"Unsupported Media Type"}"#);
                        }
                        match basic(header(&req, "authorization")) {
                            Some((u, p)) if u == user && p == pass => {}
                            _ => return json(401, r#"{"error":"invalid_client"}"#),
                        }
                        // A new token terminates the previous one.
                        let killed = s.revoke_subject(&user);
                        t.fetch_add(killed as u64, Ordering::SeqCst);
                        let (token, lifetime) = s.issue("altrata", &user);
                        json(
                            200,
                            &format!(
                                r#"{{"access_token":"{token}","expires_in":{},"token_type":"bearer"}}"#,
                                lifetime.as_secs()
                            ),
                        )
                    }
                    ("POST", "/v1/graphql") => {
                        if !key_ok {
                            s.count_api();
                            return s.reject_api();
                        }
                        match s.check_bearer(header(&req, "authorization")) {
                            Ok(_) => json(200, r#"{"data":{"me":{"id":"42"}}}"#),
                            Err(r) => r,
                        }
                    }
                    _ => json(404, r#"{"message":"Not Found"}"#),
                }
            }
            .boxed()
        });
        Altrata {
            server: Server::start(handler).await,
            state,
            terminated,
        }
    }

    /// The token URL, like `https://api-auth.altrata.com/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.server.base_url())
    }

    /// The API origin, like `https://profile.altrata.com`.
    pub fn api_base(&self) -> String {
        self.server.base_url()
    }

    /// The GraphQL endpoint.
    pub fn graphql_url(&self) -> String {
        format!("{}/v1/graphql", self.server.base_url())
    }

    /// Counters.
    pub fn counts(&self) -> Counts {
        self.state.counts()
    }

    /// Token requests so far.
    pub fn token_requests(&self) -> u64 {
        self.counts().token_requests
    }

    /// Makes the next token request fail.
    pub fn fail_next(&self, failure: Failure) {
        self.state.fail_next(failure);
    }

    /// Lifetime of tokens issued from now on (default 8 hours).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.set_lifetime(lifetime);
    }

    /// Tokens that were still valid when a new token terminated them: a client
    /// that never requests a second token while one is valid keeps this at 0.
    pub fn terminated_valid_tokens(&self) -> u64 {
        self.terminated.load(Ordering::SeqCst)
    }

    /// Revokes every token issued so far (as another client's new token would).
    pub fn revoke_all(&self) {
        self.state.revoke_all();
    }
}
