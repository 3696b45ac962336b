//! Algoreg's API as its documentation says: Basic `email:password` on any call, or
//! `POST /api/v1/token` with a JSON password grant answering an access token
//! valid one hour (no `expires_in` in the answer). Too many wrong passwords lock
//! the account: after that even the right password is refused.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::Request;

use super::{basic, header, json, Common, Counts, Failure, Server};

/// The Algoreg emulator. Stops when dropped.
///
/// A wrong password is sent once, never again during the cool-down:
///
/// ```
/// use tower_client_auth::providers::algoreg;
/// use tower_client_auth::testing::algoreg::Algoreg;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// let emulator = Algoreg::start("api@acme.com", "my-password", 3).await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let credential = algoreg::oauth2(&emulator.base_url(), "api@acme.com", "wrong-password", http)?;
/// assert!(credential.token().await.unwrap_err().is_invalid_grant());
/// assert!(credential.token().await.unwrap_err().is_cooling_down());
/// assert_eq!(emulator.wrong_passwords(), 1);
/// assert!(!emulator.is_locked());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Algoreg {
    server: Server,
    state: Arc<Common>,
    wrong: Arc<AtomicU32>,
    lock_after: u32,
}

impl Algoreg {
    /// Starts an emulator for one programmatic user; the account locks after
    /// `lock_after` wrong passwords.
    pub async fn start(email: &str, password: &str, lock_after: u32) -> Algoreg {
        let state = Arc::new(Common::new(Duration::from_secs(3600)));
        let wrong = Arc::new(AtomicU32::new(0));
        let (email, password) = (email.to_owned(), password.to_owned());
        let (s, w) = (state.clone(), wrong.clone());
        let handler: super::server::Handler = Arc::new(move |req: Request<bytes::Bytes>| {
            let (s, w) = (s.clone(), w.clone());
            let (email, password) = (email.clone(), password.clone());
            async move {
                // Checks credentials, counting wrong passwords towards the lock.
                let login = |u: &str, p: &str| -> Result<(), http::Response<_>> {
                    if w.load(Ordering::SeqCst) >= lock_after {
                        return Err(json(403, r#"{"error":"account_locked","error_description":"Account locked: contact Algoreg support"}"#));
                    }
                    if u == email && p == password {
                        return Ok(());
                    }
                    w.fetch_add(1, Ordering::SeqCst);
                    Err(json(401, r#"{"error":"invalid_grant","error_description":"Invalid credentials"}"#))
                };
                match (req.method().as_str(), req.uri().path()) {
                    ("POST", "/api/v1/token") => {
                        if let Some(r) = s.token_request().await {
                            return r;
                        }
                        let body: serde_json::Value = match serde_json::from_slice(req.body()) {
                            Ok(v) => v,
                            Err(_) => return json(400, r#"{"error":"invalid_request"}"#),
                        };
                        if body["grant_type"] != "password" {
                            return json(400, r#"{"error":"unsupported_grant_type"}"#);
                        }
                        let u = body["username"].as_str().unwrap_or("");
                        let p = body["password"].as_str().unwrap_or("");
                        if let Err(r) = login(u, p) {
                            return r;
                        }
                        let (token, _) = s.issue("algoreg", u);
                        json(200, &format!(r#"{{"access_token":"{token}"}}"#))
                    }
                    (_, path) if path.starts_with("/api/") => {
                        if let Some((u, p)) = basic(header(&req, "authorization")) {
                            s.count_api();
                            return match login(&u, &p) {
                                Ok(()) => json(200, r#"{"ok":true,"auth":"basic"}"#),
                                Err(r) => r,
                            };
                        }
                        match s.check_bearer(header(&req, "authorization")) {
                            Ok(_) => json(200, r#"{"ok":true,"auth":"bearer"}"#),
                            Err(r) => r,
                        }
                    }
                    _ => json(404, r#"{"message":"Not Found"}"#),
                }
            }
            .boxed()
        });
        Algoreg {
            server: Server::start(handler).await,
            state,
            wrong,
            lock_after,
        }
    }

    /// The API base, like `https://api.algoreg.com`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Counters.
    pub fn counts(&self) -> Counts {
        self.state.counts()
    }

    /// Token requests so far.
    pub fn token_requests(&self) -> u64 {
        self.counts().token_requests
    }

    /// Wrong passwords received so far.
    pub fn wrong_passwords(&self) -> u32 {
        self.wrong.load(Ordering::SeqCst)
    }

    /// Whether the account is locked.
    pub fn is_locked(&self) -> bool {
        self.wrong_passwords() >= self.lock_after
    }

    /// Makes the next token request fail.
    pub fn fail_next(&self, failure: Failure) {
        self.state.fail_next(failure);
    }

    /// Lifetime of tokens issued from now on (default 1 hour).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state.set_lifetime(lifetime);
    }

    /// Revokes every token issued so far.
    pub fn revoke_all(&self) {
        self.state.revoke_all();
    }
}
