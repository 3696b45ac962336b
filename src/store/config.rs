//! [`SharedStore`]: how a credential uses its store (namespace, identity,
//! lease, timeouts, encryption), and [`WhenUnavailable`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::XChaCha20Poly1305;

use super::*;
use crate::error::Error;
use crate::token::{Token, MAX_LIFETIME};

/// What a credential does when its shared store cannot be reached.
///
/// ```
/// use tower_client_auth::store::{MemoryStore, SharedStore, WhenUnavailable};
///
/// // A provider where a second token ends the first: never fetch without the lease.
/// let shared = SharedStore::new(MemoryStore::new()).when_unavailable(WhenUnavailable::FailClosed);
/// # let _ = shared;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenUnavailable {
    /// Keep serving the cached token and fetch on this process's own single
    /// flight; log once; use the store again as soon as it answers. The default.
    ///
    /// A fetch that would send a refresh token is not made without the store
    /// (as with [`FailClosed`](Self::FailClosed)): every process holds the
    /// same refresh token, and a provider that rotates them takes a second use
    /// for theft and revokes the whole family.
    FetchLocally,
    /// Like [`FetchLocally`](Self::FetchLocally), and refresh tokens too: each
    /// process refreshes from its own copy while the store is down. Safe only
    /// when the provider neither rotates refresh tokens nor detects their
    /// reuse; a token fetched this way is written to the store as soon as it
    /// answers again.
    FetchLocallyReusingRefreshTokens,
    /// Never fetch without the lease: requests that need a token fail with
    /// [`Error::is_store_unavailable`](crate::Error::is_store_unavailable)(crate::Error::is_store_unavailable) until the store answers again. For
    /// providers where a second token kills the first (Altrata).
    FailClosed,
}

/// A managed credential's link to a [`TokenStore`] shared by a fleet:
/// cross-process single flight, fencing, and (optionally) encryption at rest.
/// Give it to [`CredentialBuilder::shared_store`](crate::CredentialBuilder::shared_store).
///
/// Without [`encrypt_with`](Self::encrypt_with) tokens (access and refresh
/// tokens included) are stored as they are: anyone who can read the store can
/// use them.
///
/// ```
/// use std::time::Duration;
/// use tower_client_auth::store::{MemoryStore, SharedStore};
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
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::Error> {
/// let shared = SharedStore::new(MemoryStore::new()) // `RedisStore` or `PgStore` for a fleet
///     .namespace("billing-service")
///     .identity("billing-api-token") // needed for a token source of your own
///     .encrypt_with([7u8; 32]) // a placeholder: take the key from your secret manager
///     .lease_ttl(Duration::from_secs(10));
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source(MySource)
///     .shared_store(shared)
///     .build()?;
/// credential.token().await?;
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Clone)]
pub struct SharedStore {
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) namespace: String,
    pub(crate) identity: Option<String>,
    pub(crate) when_unavailable: WhenUnavailable,
    pub(crate) lease_ttl: Duration,
    /// Whether `lease_ttl` was set, rather than the default (`Users` picks a
    /// shorter default).
    pub(crate) lease_ttl_set: bool,
    pub(crate) poll_interval: Duration,
    pub(crate) store_timeout: Duration,
    pub(crate) cipher: Option<Arc<XChaCha20Poly1305>>,
}

impl SharedStore {
    /// Shares tokens through `store`, namespace `tower-client-auth`, lease 30 s,
    /// fetching locally when the store is unreachable.
    pub fn new(store: impl TokenStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// Like [`new`](Self::new), for a store shared with other credentials.
    pub fn from_arc(store: Arc<dyn TokenStore>) -> Self {
        SharedStore {
            store,
            namespace: "tower-client-auth".to_owned(),
            identity: None,
            when_unavailable: WhenUnavailable::FetchLocally,
            lease_ttl: Duration::from_secs(30),
            lease_ttl_set: false,
            poll_interval: Duration::from_millis(250),
            store_timeout: Duration::from_secs(2),
            cipher: None,
        }
    }

    /// The prefix of every key (default `tower-client-auth`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// What identifies the credential across the fleet, hashed into the key.
    /// Default: what the token source reports (token URL, client id, grant,
    /// user, scopes), which is never a secret. Required for a source of your own
    /// that reports none.
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// What to do when the store cannot be reached (default: fetch locally).
    pub fn when_unavailable(mut self, policy: WhenUnavailable) -> Self {
        self.when_unavailable = policy;
        self
    }

    /// How long a lease lasts without renewal (default 30 s, at least 1 s). The
    /// holder renews it every third of that while its token request runs, and a
    /// token request is abandoned after two thirds of it, so a stalled holder
    /// loses the lease only after its request was given up.
    ///
    /// It is also how long a crashed holder blocks the others: a process killed
    /// mid-request leaves its lease to run out, and requests that need a new
    /// token wait that long (or fail closed).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.clamp(Duration::from_secs(1), MAX_LIFETIME);
        self.lease_ttl_set = true;
        self
    }

    /// How long one store operation (a read, the lease, a write, a
    /// subscription) may take before the store counts as unavailable (default
    /// 2 s, between 10 ms and 60 s). Every operation is bounded by it, so a
    /// store that accepts connections and never answers costs a token request
    /// at most a few of these, never minutes.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout.clamp(Duration::from_millis(10), Duration::from_secs(60));
        self
    }

    /// How often a waiter looks again when no change notification comes
    /// (default 250 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.clamp(Duration::from_millis(10), Duration::from_secs(60));
        self
    }

    /// Encrypts everything stored (tokens, "log in again" marks, cool-down
    /// records) with XChaCha20-Poly1305 under `key` (32 bytes of your own, from
    /// a secret manager), bound to the credential's store key and to the
    /// entry's version: an older entry written back under a later generation
    /// does not open, and one written back as it was is older than what the
    /// processes hold, which never adopt it nor refresh from it.
    pub fn encrypt_with(mut self, key: [u8; 32]) -> Self {
        self.cipher = Some(Arc::new(XChaCha20Poly1305::new(&key.into())));
        self
    }
}

impl SharedStore {
    /// Stores `token` under `key` outside any lease, as the next version of
    /// what is there: what a login does (see `Users::login`), or a token
    /// seeded from elsewhere. It replaces whatever was stored, a "log in
    /// again" mark included; a holder's fenced write under way then fails, and
    /// every process adopts this token at its next look.
    ///
    /// ```
    /// use tower_client_auth::store::{MemoryStore, SharedStore, StoreKey, TokenStore};
    /// use tower_client_auth::token::Token;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::Error> {
    /// let memory = std::sync::Arc::new(MemoryStore::new());
    /// let shared = SharedStore::from_arc(memory.clone());
    /// let key = StoreKey::for_identity("billing", "billing-api-token");
    /// shared.put(&key, &Token::bearer("seeded", None)).await?;
    /// shared.put(&key, &Token::bearer("seeded again", None)).await?;
    /// assert_eq!(memory.load(&key).await?.unwrap().generation, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put(&self, key: &StoreKey, token: &Token) -> Result<(), Error> {
        self.put_record(key, &codec::Record::Token(token.clone()))
            .await
            .map(drop)
    }

    /// Stores `user`'s "log in again" mark under `key` in place of their
    /// token (a logout): every process that reads it sends no refresh token.
    /// Returns the token it replaced, if a readable one was stored (read and
    /// replaced in one compare-and-set: a refresh elsewhere in between makes
    /// it read again).
    #[cfg(feature = "users")]
    pub(crate) async fn put_logged_out(
        &self,
        key: &StoreKey,
        user: &str,
    ) -> Result<Option<Token>, Error> {
        self.put_record(key, &codec::Record::LoginRequired(user.to_owned()))
            .await
    }

    async fn put_record(
        &self,
        key: &StoreKey,
        record: &codec::Record,
    ) -> Result<Option<Token>, Error> {
        let (store, limit) = (&self.store, self.store_timeout);
        // Compare-and-set on what is there, retried if someone wrote meanwhile.
        for _ in 0..16 {
            let stored = within(limit, store.load(key)).await?;
            let version = codec::version_after(stored.as_ref(), key, self)?;
            let base = stored.as_ref().map_or(0, |e| e.generation);
            let entry = StoredEntry {
                generation: version.generation,
                data: codec::encode(record, key, version, self.cipher.as_deref())?,
            };
            // Only a logout needs what it replaces (to revoke it).
            let logout = matches!(record, codec::Record::LoginRequired(_));
            let replaced = stored.as_ref().filter(|_| logout).and_then(|e| {
                match codec::decode(&e.data, key, e.generation, self.cipher.as_deref()) {
                    Ok((_, codec::Record::Token(token))) => Some(token),
                    _ => None,
                }
            });
            if within(limit, store.compare_and_set(key, base, None, entry)).await? {
                return Ok(replaced);
            }
        }
        Err(Error::store_unavailable(
            "token not stored: the entry kept changing",
        ))
    }
}

impl fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStore")
            .field("namespace", &self.namespace)
            .field("when_unavailable", &self.when_unavailable)
            .field("lease_ttl", &self.lease_ttl)
            .field("store_timeout", &self.store_timeout)
            .field("encrypted", &self.cipher.is_some())
            .finish()
    }
}
