//! An authorization-code server with refresh-token rotation, as Agrello's and
//! the generic OAuth2 API's documentation describe: the authorize endpoint
//! approves at once and redirects with a code; the token endpoint takes Basic
//! `client_id:client_secret`, checks the code, redirect URI and PKCE verifier,
//! and rotates refresh tokens (a used refresh token is dead). The API accepts
//! valid bearer tokens and personal access tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::FutureExt;
use http::{Request, Response};
use sha2::{Digest, Sha256};

use super::{basic, header, json, lock, Common, Counts, Failure, Server};

/// Paths of Agrello's OAuth endpoints.
pub const AUTHORIZE_PATH: &str = "/identity/auth/oauth/authorize";
/// The token path next to the authorize path.
pub const TOKEN_PATH: &str = "/identity/auth/oauth/token";
/// The token revocation path (RFC 7009), next to the token path.
pub const REVOKE_PATH: &str = "/identity/auth/oauth/revoke";

#[derive(Debug, Default)]
struct Grants {
    /// code -> (redirect_uri, challenge, scope)
    codes: HashMap<String, (String, Option<String>, String)>,
    /// live refresh tokens -> scope
    refresh: HashMap<String, String>,
    used_refresh: u64,
    /// Refresh tokens already used once (rotation): sending one again is reuse.
    spent: std::collections::HashSet<String>,
    reused_refresh: u64,
    /// Live refresh tokens revoked at the revocation endpoint.
    revoked_refresh: u64,
}

/// The authorization-code emulator. Stops when dropped.
///
/// ```
/// use tower_client_auth::oauth2::{AuthorizationUrl, TokenClient};
/// use tower_client_auth::testing::oauth::OAuthServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let server = OAuthServer::start("my-client-id", "my-client-secret").await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let tokens = TokenClient::builder(server.token_url())
///     .client_id("my-client-id")
///     .client_secret("my-client-secret")
///     .build(http)?;
/// let request = AuthorizationUrl::new(server.authorize_url(), "my-client-id", "http://127.0.0.1/cb").build()?;
/// let code = request.verify_callback(&server.approve(request.url()).await?)?;
/// let first = tokens.exchange_code(code.code, Some(request.redirect_uri()), request.verifier()).await?;
///
/// // Refresh-token rotation: a refresh token works once.
/// let old = first.refresh_token().unwrap();
/// tokens.refresh(old, &[]).await?;
/// assert!(tokens.refresh(old, &[]).await.unwrap_err().is_invalid_grant());
/// assert_eq!(server.refresh_token_reuses(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct OAuthServer {
    server: Server,
    state: Arc<Common>,
    grants: Arc<Mutex<Grants>>,
}

impl OAuthServer {
    /// Starts a server for one client.
    pub async fn start(client_id: &str, client_secret: &str) -> OAuthServer {
        let state = Arc::new(Common::new(Duration::from_secs(3600)));
        let grants = Arc::new(Mutex::new(Grants::default()));
        let (id, secret) = (client_id.to_owned(), client_secret.to_owned());
        let (s, g) = (state.clone(), grants.clone());
        let handler: super::server::Handler = Arc::new(move |req: Request<bytes::Bytes>| {
            let (s, g) = (s.clone(), g.clone());
            let (id, secret) = (id.clone(), secret.clone());
            async move {
                let query: HashMap<String, String> = form(req.uri().query().unwrap_or(""));
                match (req.method().as_str(), req.uri().path()) {
                    ("GET", AUTHORIZE_PATH) => {
                        if query.get("response_type").map(String::as_str) != Some("code")
                            || query.get("client_id") != Some(&id)
                        {
                            return json(400, r#"{"error":"invalid_request"}"#);
                        }
                        let Some(redirect) = query.get("redirect_uri") else {
                            return json(400, r#"{"error":"invalid_request"}"#);
                        };
                        let challenge = match query.get("code_challenge_method").map(String::as_str) {
                            Some("S256") | None => query.get("code_challenge").cloned(),
                            Some(_) => return json(400, r#"{"error":"invalid_request"}"#),
                        };
                        let code = s.issue("code", "code").0;
                        let scope = query.get("scope").cloned().unwrap_or_default();
                        lock(&g).codes.insert(code.clone(), (redirect.clone(), challenge, scope));
                        let mut location = format!("{redirect}?code={code}");
                        if let Some(st) = query.get("state") {
                            location.push_str("&state=");
                            location.push_str(&form_urlencoded::byte_serialize(st.as_bytes()).collect::<String>());
                        }
                        let mut r = Response::new(http_body_util::Full::new(bytes::Bytes::new()));
                        *r.status_mut() = http::StatusCode::FOUND;
                        r.headers_mut().insert(http::header::LOCATION, location.parse().expect("valid location"));
                        r
                    }
                    ("POST", TOKEN_PATH) => {
                        if let Some(r) = s.token_request().await {
                            return r;
                        }
                        match basic(header(&req, "authorization")) {
                            Some((u, p)) if u == id && p == secret => {}
                            _ => return json(401, r#"{"error":"invalid_client"}"#),
                        }
                        let params = form(std::str::from_utf8(req.body()).unwrap_or(""));
                        let scope = match params.get("grant_type").map(String::as_str) {
                            Some("authorization_code") => {
                                let code = params.get("code").cloned().unwrap_or_default();
                                let Some((redirect, challenge, scope)) = lock(&g).codes.remove(&code) else {
                                    return json(400, r#"{"error":"invalid_grant","error_description":"unknown or used code"}"#);
                                };
                                if params.get("redirect_uri") != Some(&redirect) {
                                    return json(400, r#"{"error":"invalid_grant","error_description":"redirect_uri mismatch"}"#);
                                }
                                if let Some(challenge) = challenge {
                                    let verifier = params.get("code_verifier").cloned().unwrap_or_default();
                                    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                                        .encode(Sha256::digest(verifier.as_bytes()));
                                    if computed != challenge {
                                        return json(400, r#"{"error":"invalid_grant","error_description":"PKCE verification failed"}"#);
                                    }
                                }
                                scope
                            }
                            Some("refresh_token") => {
                                let rt = params.get("refresh_token").cloned().unwrap_or_default();
                                let mut grants = lock(&g);
                                // Rotation: a refresh token works once.
                                match grants.refresh.remove(&rt) {
                                    Some(scope) => {
                                        grants.used_refresh += 1;
                                        grants.spent.insert(rt);
                                        scope
                                    }
                                    None => {
                                        // Reuse detection: a spent token sent again.
                                        if grants.spent.contains(&rt) {
                                            grants.reused_refresh += 1;
                                        }
                                        return json(400, r#"{"error":"invalid_grant","error_description":"refresh token invalid"}"#);
                                    }
                                }
                            }
                            _ => return json(400, r#"{"error":"unsupported_grant_type"}"#),
                        };
                        let (access, lifetime) = s.issue("access", "user");
                        let refresh = s.issue("refresh", "refresh-tokens").0;
                        lock(&g).refresh.insert(refresh.clone(), scope.clone());
                        json(
                            200,
                            &format!(
                                r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{},"refresh_token":"{refresh}","scope":"{scope}"}}"#,
                                lifetime.as_secs()
                            ),
                        )
                    }
                    ("POST", REVOKE_PATH) => {
                        match basic(header(&req, "authorization")) {
                            Some((u, p)) if u == id && p == secret => {}
                            _ => return json(401, r#"{"error":"invalid_client"}"#),
                        }
                        let params = form(std::str::from_utf8(req.body()).unwrap_or(""));
                        let token = params.get("token").cloned().unwrap_or_default();
                        let mut grants = lock(&g);
                        if grants.refresh.remove(&token).is_some() {
                            grants.revoked_refresh += 1;
                        }
                        // Unknown tokens too: RFC 7009 §2.2.
                        json(200, "")
                    }
                    (_, path) if path.starts_with("/api/") => {
                        match s.check_bearer(header(&req, "authorization")) {
                            Ok(_) => json(200, r#"{"ok":true}"#),
                            Err(r) => r,
                        }
                    }
                    _ => json(404, r#"{"message":"Not Found"}"#),
                }
            }
            .boxed()
        });
        OAuthServer {
            server: Server::start(handler).await,
            state,
            grants,
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The authorize endpoint.
    pub fn authorize_url(&self) -> String {
        format!("{}{AUTHORIZE_PATH}", self.server.base_url())
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.server.base_url())
    }

    /// Follows an authorization URL as a browser would when the user approves:
    /// returns the query string the redirect URI receives (`code=...&state=...`).
    pub async fn approve(&self, authorization_url: &str) -> Result<String, crate::BoxError> {
        use http_body_util::BodyExt as _;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let res = client.get(authorization_url.parse()?).await?;
        let status = res.status();
        let location = res
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let _ = res.into_body().collect().await;
        let location =
            location.ok_or_else(|| format!("authorize answered {status} without a redirect"))?;
        Ok(location
            .split_once('?')
            .map(|(_, q)| q.to_owned())
            .unwrap_or_default())
    }

    /// A personal access token the API accepts, living `lifetime`.
    pub fn issue_personal_access_token(&self, lifetime: Duration) -> String {
        let before = self.state.lifetime();
        self.state.set_lifetime(lifetime);
        let token = self.state.issue("pat", "pat").0;
        self.state.set_lifetime(before);
        token
    }

    /// Counters.
    pub fn counts(&self) -> Counts {
        self.state.counts()
    }

    /// Token requests so far.
    pub fn token_requests(&self) -> u64 {
        self.counts().token_requests
    }

    /// Refresh tokens used (each one once: rotation).
    pub fn refresh_tokens_used(&self) -> u64 {
        lock(&self.grants).used_refresh
    }

    /// A refresh token the server accepts, as if a user had logged in (for
    /// seeding many users in a test without running each login).
    pub fn issue_refresh_token(&self) -> String {
        let refresh = self.state.issue("refresh", "refresh-tokens").0;
        lock(&self.grants)
            .refresh
            .insert(refresh.clone(), String::new());
        refresh
    }

    /// The token revocation endpoint (RFC 7009): a live refresh token sent
    /// there with the client's Basic authentication is dead afterwards.
    pub fn revocation_url(&self) -> String {
        format!("{}{REVOKE_PATH}", self.server.base_url())
    }

    /// Live refresh tokens revoked at the [`revocation_url`](Self::revocation_url).
    pub fn refresh_tokens_revoked(&self) -> u64 {
        lock(&self.grants).revoked_refresh
    }

    /// Revokes a refresh token: its next use gets `invalid_grant` (not counted
    /// as reuse).
    pub fn revoke_refresh_token(&self, refresh_token: &str) {
        lock(&self.grants).refresh.remove(refresh_token);
    }

    /// Refresh tokens sent again after they were used (rotation reuse, which a
    /// real server answers by revoking the whole grant).
    pub fn refresh_token_reuses(&self) -> u64 {
        lock(&self.grants).reused_refresh
    }

    /// Makes the next token request fail.
    pub fn fail_next(&self, failure: Failure) {
        self.state.fail_next(failure);
    }

    /// Lifetime of access tokens issued from now on (default 1 hour).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.set_lifetime(lifetime);
    }

    /// Revokes every access token issued so far.
    pub fn revoke_all(&self) {
        self.state.revoke_all();
    }
}

fn form(s: &str) -> HashMap<String, String> {
    form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}
