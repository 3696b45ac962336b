//! [`OAuth2Source`]: a grant as a [`TokenSource`] for the layer, run through a
//! [`TokenClient`].

use std::fmt;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use secrecy::SecretString;
use tokio::time::Instant;

use super::grant::Grant;
use super::TokenClient;
use crate::error::{Error, Kind};
use crate::token::{Token, TokenSource};

/// An OAuth2 grant as a [`TokenSource`]: fetches tokens with the grant, refreshes
/// with the refresh token when one is held, and falls back to the grant when the
/// refresh token is rejected (`invalid_grant`).
///
/// ```
/// # use tower_client_auth::oauth2::{OAuth2Source, TokenClient};
/// # use tower_client_auth::{AuthLayer, Credential};
/// # fn f(token_client: TokenClient) -> Result<(), tower_client_auth::Error> {
/// let source = OAuth2Source::client_credentials(token_client).scopes(["read", "write"]);
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source(source)
///     .build()?;
/// let layer = AuthLayer::new(credential);
/// # let _ = layer; Ok(()) }
/// ```
#[must_use]
pub struct OAuth2Source {
    client: TokenClient,
    grant: Option<Grant>,
    scopes: Vec<String>,
    // Shared with the fetch in flight, which clears it only once a fetch has
    // succeeded: a seed survives any number of failed attempts.
    seed: Arc<Mutex<Seed>>,
}

/// What a source starts from before its first successful fetch.
#[derive(Clone)]
enum Seed {
    Nothing,
    Token(Token),
    RefreshToken(SecretString),
}

impl OAuth2Source {
    /// Client credentials: re-run on every refresh (such responses normally carry
    /// no refresh token).
    pub fn client_credentials(client: TokenClient) -> Self {
        Self::new(client, Some(Grant::ClientCredentials))
    }

    /// Password grant: re-run when there is no refresh token, or when it is rejected.
    pub fn password(
        client: TokenClient,
        username: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Self {
        Self::new(client, Some(Grant::password(username, password)))
    }

    /// Starts from a token you already have, such as the result of an authorization
    /// code exchange, and keeps it fresh with its refresh token. When the refresh
    /// token is gone or rejected, requests fail with a typed error and no request
    /// is sent: the user has to authorize again.
    pub fn from_token(client: TokenClient, token: Token) -> Self {
        let source = Self::new(client, None);
        *source.seed.lock().unwrap_or_else(|e| e.into_inner()) = Seed::Token(token);
        source
    }

    /// Starts from a stored refresh token.
    pub fn from_refresh_token(client: TokenClient, refresh_token: impl Into<SecretString>) -> Self {
        Self::new(client, None).with_refresh_token(refresh_token)
    }

    /// Any grant.
    pub fn new(client: TokenClient, grant: Option<Grant>) -> Self {
        OAuth2Source {
            client,
            grant,
            scopes: Vec::new(),
            seed: Arc::new(Mutex::new(Seed::Nothing)),
        }
    }

    /// The scopes to ask for.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A refresh token to use before the grant.
    pub fn with_refresh_token(self, refresh_token: impl Into<SecretString>) -> Self {
        *self.seed.lock().unwrap_or_else(|e| e.into_inner()) =
            Seed::RefreshToken(refresh_token.into());
        self
    }
}

impl TokenSource for OAuth2Source {
    #[cfg(feature = "jose")]
    fn dpop(&self) -> Option<super::Dpop> {
        self.client.dpop().cloned()
    }

    fn revoke(&self, token: &Token) -> BoxFuture<'static, Result<(), Error>> {
        // Revoking the refresh token ends the grant (RFC 7009 §2.1: servers
        // should then revoke its access tokens too).
        let (secret, hint) = match &token.refresh_token {
            Some(rt) => (rt.clone(), "refresh_token"),
            None => (token.access_token.clone(), "access_token"),
        };
        let client = self.client.clone();
        Box::pin(async move { client.revoke(&secret, Some(hint)).await })
    }

    fn endpoint(&self) -> Option<String> {
        Some(crate::wire::origin::describe_url(self.client.token_url()))
    }

    fn identity(&self) -> Option<String> {
        let user = match &self.grant {
            Some(Grant::Password { username, .. }) => username.as_str(),
            Some(Grant::ClientCredentials) => "",
            // A source seeded with one user's token or refresh token (or a
            // one-off code): nothing here says whose it is, and two users of one
            // client must never share a key. `SharedStore::identity` must say.
            _ => return None,
        };
        let grant = self
            .grant
            .as_ref()
            .map_or("refresh_token", Grant::grant_type);
        let mut scopes = self.scopes.clone();
        scopes.sort();
        // Each field escaped: a `|` in a username must not make another
        // credential's identity.
        let field = |s: &str| crate::token::identity_field(s, &['|']).into_owned();
        Some(format!(
            "oauth2|{}|{}|{grant}|{}|{}|{}{}",
            field(&self.client.token_url().to_string()),
            field(self.client.client_id().unwrap_or("")),
            field(user),
            field(&scopes.join(" ")),
            self.client.identity_params(),
            self.client.key_binding()
        ))
    }

    fn fetch(&self, previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        // Read, not taken: a fetch that fails must find the seed again.
        let seed = self.seed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut refresh_token = previous.and_then(|p| p.refresh_token.clone());
        match seed {
            Seed::Nothing => {}
            Seed::Token(token) => {
                if token.expires_at().is_none_or(|at| at > Instant::now()) {
                    *self.seed.lock().unwrap_or_else(|e| e.into_inner()) = Seed::Nothing;
                    return Box::pin(async move { Ok(token) });
                }
                refresh_token = refresh_token.or(token.refresh_token);
            }
            Seed::RefreshToken(rt) => refresh_token = refresh_token.or(Some(rt)),
        }
        let client = self.client.clone();
        let grant = self.grant.clone();
        let scopes = Arc::new(self.scopes.clone());
        let seed = Arc::clone(&self.seed);
        // Once a token is in hand, the cache passes it as `previous` (with its
        // refresh token): the seed has served its purpose.
        let used = move || *seed.lock().unwrap_or_else(|e| e.into_inner()) = Seed::Nothing;
        Box::pin(async move {
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            if let Some(rt) = refresh_token {
                match client.refresh(&rt, &scopes).await {
                    Ok(token) => {
                        used();
                        return Ok(token);
                    }
                    // A rejected refresh token is dead: never send it again.
                    Err(e) if e.is_invalid_grant() && grant.is_some() => {
                        used();
                        tracing::debug!("refresh token rejected, running the grant again");
                    }
                    Err(e) => {
                        if e.is_invalid_grant() {
                            used();
                        }
                        return Err(e);
                    }
                }
            }
            match grant {
                Some(grant) => {
                    let token = client.request_token(&grant, &scopes).await?;
                    used();
                    Ok(token)
                }
                None => Err(Error::new(Kind::NoToken)),
            }
        })
    }
}

impl fmt::Debug for OAuth2Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Source")
            .field("client", &self.client)
            .field("grant", &self.grant)
            .field("scopes", &self.scopes)
            .finish()
    }
}
