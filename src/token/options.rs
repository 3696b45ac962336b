//! [`ManagedOptions`]: how a managed credential keeps its token fresh (how far
//! ahead it refreshes, the margin before expiry, the lifetime assumed when
//! none is given or a JWT's `exp` says, attempts and backoff, the cool-down
//! after a permanent failure).

use std::time::Duration;

use super::MAX_LIFETIME;

/// Every duration option is clamped to this (a year), so that no deadline
/// arithmetic can overflow whatever a user passes.
fn clamp(d: Duration) -> Duration {
    d.min(MAX_LIFETIME)
}

/// How a managed token is kept fresh, and how failures are handled.
///
/// The defaults suit tokens from a few seconds to many hours:
///
/// * a token is refreshed in the background when it enters the last tenth of its
///   lifetime, but no earlier than [`max_refresh_ahead`](Self::max_refresh_ahead)
///   (5 minutes) before expiry: an 8-hour token refreshes 5 minutes early, a 1-hour
///   token 5 minutes early, a 2-second token 0.2 s early;
/// * requests stop using a token a margin before its expiry (a twentieth of its
///   lifetime, at most [`max_expiry_margin`](Self::max_expiry_margin), 10 s), so it
///   does not expire in flight;
/// * a transient failure (connection error, timeout, 5xx, 429) is retried within the
///   same token request up to [`max_attempts`](Self::max_attempts) times with
///   exponential backoff and jitter, honouring `Retry-After`;
/// * a permanent failure (`invalid_client`, `invalid_grant`, a 401 from the token
///   endpoint, ...) starts a cool-down of [`cooldown`](Self::cooldown), doubling on
///   each repeat up to a cap (1 hour; both set by `cooldown`), during which no token
///   request is made at all: wrong credentials never lock an account.
///
/// ```
/// use std::time::Duration;
/// use tower_client_auth::token::ManagedOptions;
/// use tower_client_auth::Credential;
///
/// # struct MySource;
/// # impl tower_client_auth::token::TokenSource for MySource {
/// #     fn fetch(
/// #         &self,
/// #         _: Option<&tower_client_auth::token::Token>,
/// #     ) -> futures_util::future::BoxFuture<'static, Result<tower_client_auth::token::Token, tower_client_auth::Error>> {
/// #         let lifetime = Some(std::time::Duration::from_secs(600));
/// #         Box::pin(async move { Ok(tower_client_auth::token::Token::bearer("my-token", lifetime)) })
/// #     }
/// # }
/// let options = ManagedOptions::new()
///     .max_refresh_ahead(Duration::from_secs(60))
///     // for a token endpoint that gives no `expires_in`
///     .default_lifetime(Some(Duration::from_secs(3600)))
///     .max_attempts(5)
///     .cooldown(Duration::from_secs(300), Duration::from_secs(6 * 3600));
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source_with(MySource, options)
///     .build()?;
/// assert!(credential.is_managed());
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ManagedOptions {
    pub(crate) max_refresh_ahead: Duration,
    pub(crate) max_expiry_margin: Duration,
    pub(crate) default_lifetime: Option<Duration>,
    pub(crate) jwt_expiry: bool,
    pub(crate) max_attempts: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) max_cooldown: Duration,
}

impl Default for ManagedOptions {
    fn default() -> Self {
        ManagedOptions {
            max_refresh_ahead: Duration::from_secs(300),
            max_expiry_margin: Duration::from_secs(10),
            default_lifetime: None,
            jwt_expiry: true,
            max_attempts: 3,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            cooldown: Duration::from_secs(60),
            max_cooldown: Duration::from_secs(3600),
        }
    }
}

impl ManagedOptions {
    /// Defaults (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// The most a token is refreshed ahead of its expiry (default 5 minutes).
    pub fn max_refresh_ahead(mut self, d: Duration) -> Self {
        self.max_refresh_ahead = clamp(d);
        self
    }

    /// The most a token is retired ahead of its expiry (default 10 s).
    pub fn max_expiry_margin(mut self, d: Duration) -> Self {
        self.max_expiry_margin = clamp(d);
        self
    }

    /// The lifetime assumed when the server gives none (`expires_in` absent, null,
    /// zero or negative). Default: none, the token is used until a 401. Clamped
    /// to [`MAX_LIFETIME`]; `Some(Duration::ZERO)` counts as none.
    pub fn default_lifetime(mut self, d: Option<Duration>) -> Self {
        self.default_lifetime = d.filter(|d| !d.is_zero()).map(clamp);
        self
    }

    /// Whether an access token that is a JWT sets its own lifetime when the
    /// server gives no `expires_in` (default: yes). Its `exp` and `iat`
    /// (RFC 9068 §2.2) are read without verifying the signature or trusting
    /// any other claim: a client cannot verify an access token, and needs
    /// nothing from it but a hint of when to refresh.
    ///
    /// The lifetime of a token, in order of precedence:
    ///
    /// 1. the server's `expires_in` (positive);
    /// 2. the JWT's `exp` minus now, at most `exp - iat` (so a clock behind
    ///    the issuer's cannot stretch it), at most the
    ///    [`default_lifetime`](Self::default_lifetime) when one is set;
    /// 3. the [`default_lifetime`](Self::default_lifetime);
    /// 4. none: the token is used until a 401.
    ///
    /// A JWT whose `exp` has already passed is refused as an
    /// [invalid response](crate::Error::is_invalid_response) (the cache cools
    /// down rather than fetching expired tokens in a loop). Opaque tokens and
    /// malformed JWTs go on to step 3.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_auth::token::ManagedOptions;
    ///
    /// // JWT access tokens, but never trusted for more than an hour.
    /// let options = ManagedOptions::new().default_lifetime(Some(Duration::from_secs(3600)));
    /// // Or: ignore what the token says.
    /// let opaque_only = ManagedOptions::new().jwt_expiry(false);
    /// # let _ = (options, opaque_only);
    /// ```
    pub fn jwt_expiry(mut self, read_exp: bool) -> Self {
        self.jwt_expiry = read_exp;
        self
    }

    /// Attempts per token request for transient failures (default 3, at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// First backoff delay and the cap (defaults 200 ms and 30 s). A token
    /// endpoint whose `Retry-After` asks for longer than the cap fails the waiting
    /// requests at once (the error carries [`retry_after`](crate::Error::retry_after))
    /// and no new token request is made before that time.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = clamp(base);
        self.backoff_max = clamp(max.max(base));
        self
    }

    /// Cool-down after a permanent failure and its cap (defaults 60 s and 1 h).
    /// [`Credential::end_cooldown`](crate::Credential::end_cooldown) ends one early.
    pub fn cooldown(mut self, first: Duration, max: Duration) -> Self {
        self.cooldown = clamp(first);
        self.max_cooldown = clamp(max.max(first));
        self
    }

    /// When to refresh ahead and when to stop using a token, as delays after it was
    /// received, for a token that lives `lifetime`.
    pub(crate) fn schedule(&self, lifetime: Duration) -> (Duration, Duration) {
        let ahead = (lifetime / 10).min(self.max_refresh_ahead);
        let margin = (lifetime / 20).min(self.max_expiry_margin);
        (lifetime - ahead, lifetime - margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_suits_short_and_long_tokens() {
        let o = ManagedOptions::default();
        let s = Duration::from_secs;
        // 8-hour Altrata token: refresh 5 min early, retire 10 s early.
        assert_eq!(o.schedule(s(28_800)), (s(28_500), s(28_790)));
        // 1-hour Algoreg token.
        assert_eq!(o.schedule(s(3_600)), (s(3_300), s(3_590)));
        // 2-second token: refresh at 1.8 s, retire at 1.9 s, not on every request.
        assert_eq!(
            o.schedule(s(2)),
            (Duration::from_millis(1_800), Duration::from_millis(1_900))
        );
    }
}
