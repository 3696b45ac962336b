//! Shared token stores: where a fleet of processes keeps one credential's token,
//! so that the fleet fetches one token per lifetime (see [`SharedStore`]).
//!
//! A [`TokenStore`] is a key-value store with five things: a versioned entry
//! read whole, a compare-and-set on its generation fenced by the lease's owner,
//! a lease with an owner, a change notification, and the fleet's cool-down
//! record. [`MemoryStore`] keeps them in this process (for tests, or several
//! credentials of one process); [`RedisStore`](super::RedisStore) (feature
//! `redis`) and [`PgStore`](super::PgStore) (feature `postgres`) share them
//! across processes and hosts. What the fleet does when the store fails (a
//! write lost, a stall, an empty restart) is in the repository's
//! `RELIABILITY.md`.
//!
//! ```
//! use tower_client_auth::token::{MemoryStore, SharedStore};
//!
//! let shared = SharedStore::new(MemoryStore::new())
//!     .namespace("billing-service")
//!     .encrypt_with([7u8; 32]); // a key of your own, from your secret manager
//! # let _ = shared;
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Token, Version, MAX_LIFETIME};
use crate::error::Error;

/// The keys of one credential's entry, lease and change channel. All three share
/// a Redis Cluster hash tag (`{…}`), so a credential's keys live on one slot.
///
/// A [`TokenStore`] of your own is handed one in every call:
///
/// ```
/// use tower_client_auth::token::StoreKey;
///
/// /// The rows a SQL store keeps for one credential: `namespace:{hash}:token`
/// /// and the like.
/// fn rows(key: &StoreKey) -> [String; 3] {
///     [key.entry(), key.lease(), key.channel()]
/// }
/// # let _ = rows;
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreKey {
    base: String,
}

impl StoreKey {
    /// `namespace:{hash}`: the hash of the credential's identity (never a secret).
    pub(crate) fn new(namespace: &str, identity: &str) -> StoreKey {
        let digest = Sha256::digest(identity.as_bytes());
        let hash: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        StoreKey {
            base: format!("{namespace}:{{{hash}}}"),
        }
    }

    /// The entry's key.
    pub fn entry(&self) -> String {
        format!("{}:token", self.base)
    }

    /// The lease's key.
    pub fn lease(&self) -> String {
        format!("{}:lease", self.base)
    }

    /// The change notification channel.
    pub fn channel(&self) -> String {
        format!("{}:changed", self.base)
    }

    /// The fleet's cool-down record's key.
    pub fn cooldown(&self) -> String {
        format!("{}:cooldown", self.base)
    }

    /// `namespace:{hash}`, for logs.
    pub fn as_str(&self) -> &str {
        &self.base
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// A stored token: its generation (grows by one per write) and its encoded
/// bytes (opaque to the store; encrypted when the [`SharedStore`] has a key).
///
/// ```
/// use tower_client_auth::token::StoredEntry;
///
/// let entry = StoredEntry { generation: 1, data: vec![0; 48] };
/// // `Debug` shows the size of the data, never the data.
/// assert_eq!(format!("{entry:?}"), "StoredEntry { generation: 1, data: [48 bytes] }");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// 1 for the first token written, then one more per write.
    pub generation: u64,
    /// The encoded token.
    pub data: Vec<u8>,
}

impl fmt::Debug for StoredEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredEntry")
            .field("generation", &self.generation)
            .field("data", &format_args!("[{} bytes]", self.data.len()))
            .finish()
    }
}

/// Where a fleet keeps a credential's token: a versioned entry read whole, a
/// compare-and-set on its generation fenced by the lease's owner, a lease with
/// an owner, a change notification, and the fleet's cool-down record.
/// [`MemoryStore`] shares within one process; `RedisStore` and `PgStore`
/// (features `redis`, `postgres`) across processes.
///
/// Errors are the crate's [`Error`]; wrap your own with [`Error::store`].
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// # use std::time::Duration;
/// use futures_util::future::BoxFuture;
/// use tower_client_auth::token::{MemoryStore, SharedStore, StoreKey, StoredEntry, TokenStore};
/// use tower_client_auth::{Credential, Error};
///
/// /// Keeps tokens in memory, and counts the writes.
/// struct Counting(MemoryStore, Arc<AtomicU64>);
///
/// impl TokenStore for Counting {
///     fn compare_and_set<'a>(
///         &'a self,
///         key: &'a StoreKey,
///         expected: u64,
///         lease_owner: Option<&'a str>,
///         entry: StoredEntry,
///     ) -> BoxFuture<'a, Result<bool, Error>> {
///         self.1.fetch_add(1, Ordering::SeqCst);
///         self.0.compare_and_set(key, expected, lease_owner, entry)
///     }
///     // `load`, the lease, wait and cool-down methods forward to `self.0` likewise.
/// #   fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<StoredEntry>, Error>> {
/// #       self.0.load(key)
/// #   }
/// #   fn try_lease<'a>(&'a self, key: &'a StoreKey, owner: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, Error>> {
/// #       self.0.try_lease(key, owner, ttl)
/// #   }
/// #   fn renew_lease<'a>(&'a self, key: &'a StoreKey, owner: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, Error>> {
/// #       self.0.renew_lease(key, owner, ttl)
/// #   }
/// #   fn release_lease<'a>(&'a self, key: &'a StoreKey, owner: &'a str) -> BoxFuture<'a, Result<(), Error>> {
/// #       self.0.release_lease(key, owner)
/// #   }
/// #   fn wait_change<'a>(&'a self, key: &'a StoreKey, seen: u64, timeout: Duration) -> BoxFuture<'a, Result<(), Error>> {
/// #       self.0.wait_change(key, seen, timeout)
/// #   }
/// #   fn load_cooldown<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
/// #       self.0.load_cooldown(key)
/// #   }
/// #   fn set_cooldown<'a>(&'a self, key: &'a StoreKey, record: Vec<u8>, ttl: Duration) -> BoxFuture<'a, Result<(), Error>> {
/// #       self.0.set_cooldown(key, record, ttl)
/// #   }
/// #   fn clear_cooldown<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), Error>> {
/// #       self.0.clear_cooldown(key)
/// #   }
/// }
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
/// # async fn main() -> Result<(), Error> {
/// let writes = Arc::new(AtomicU64::new(0));
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source(MySource)
///     .shared_store(SharedStore::new(Counting(MemoryStore::new(), writes.clone())).identity("my-api"))
///     .build()?;
/// credential.token().await?;
/// assert_eq!(writes.load(Ordering::SeqCst), 1);
/// # Ok(())
/// # }
/// ```
pub trait TokenStore: Send + Sync + 'static {
    /// The entry under `key`, if any.
    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<StoredEntry>, Error>>;

    /// Writes `entry` if the stored generation is `expected` (0: no entry yet)
    /// and, with `lease_owner`, only while that owner holds the lease, both
    /// checked in one atomic step (the fencing that keeps a holder whose lease
    /// ran out from overwriting its successor's token); then notifies waiters.
    /// `Ok(false)` if either check failed. `lease_owner` is `None` for writes
    /// made outside the lease ([`Users::login`](crate::users::Users::login)).
    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
        lease_owner: Option<&'a str>,
        entry: StoredEntry,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Takes the lease for `ttl` as `owner` if nobody holds it; `Ok(false)` if
    /// somebody does.
    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Extends the lease to `ttl` from now if `owner` still holds it.
    fn renew_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Releases the lease if `owner` holds it (compare-and-delete), and notifies
    /// waiters.
    fn release_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Returns once the entry's generation is past `seen`, the lease was
    /// released, or `timeout` has passed, whichever comes first. A store without
    /// notifications may simply sleep for `timeout`.
    fn wait_change<'a>(
        &'a self,
        key: &'a StoreKey,
        seen: u64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// The fleet's cool-down record for `key` (opaque bytes, sealed like the
    /// entry), if one was set and its `ttl` has not passed.
    fn load_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>>;

    /// Sets the cool-down record, to vanish after `ttl`: after a permanent
    /// failure (a wrong password), every process of the fleet sees it and
    /// makes no token request until it is gone.
    fn set_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
        record: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Removes the cool-down record (an operator fixed the credentials).
    fn clear_cooldown<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), Error>>;
}

/// A [`TokenStore`] in this process's memory: processes do not share it. For
/// tests, and for several credentials of one process sharing one token.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tower_client_auth::secrecy::ExposeSecret;
/// use tower_client_auth::token::{MemoryStore, SharedStore};
/// use tower_client_auth::Credential;
///
/// # static FETCHES: AtomicU64 = AtomicU64::new(0);
/// # struct MySource;
/// # impl tower_client_auth::token::TokenSource for MySource {
/// #     fn fetch(
/// #         &self,
/// #         _: Option<&tower_client_auth::token::Token>,
/// #     ) -> futures_util::future::BoxFuture<'static, Result<tower_client_auth::token::Token, tower_client_auth::Error>> {
/// #         let n = FETCHES.fetch_add(1, Ordering::SeqCst) + 1;
/// #         let lifetime = Some(std::time::Duration::from_secs(600));
/// #         Box::pin(async move { Ok(tower_client_auth::token::Token::bearer(format!("token-{n}"), lifetime)) })
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::Error> {
/// // Two APIs that accept the same token: one token request for both.
/// let shared = SharedStore::new(MemoryStore::new()).identity("my-token");
/// let api = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source(MySource)
///     .shared_store(shared.clone())
///     .build()?;
/// let uploads = Credential::builder()
///     .origin("https://uploads.example.com")
///     .token_source(MySource)
///     .shared_store(shared)
///     .build()?;
/// assert_eq!(api.token().await?.access_token().expose_secret(), "token-1");
/// assert_eq!(uploads.token().await?.access_token().expose_secret(), "token-1");
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<HashMap<String, MemoryEntry>>,
}

#[derive(Default)]
struct MemoryEntry {
    entry: Option<StoredEntry>,
    lease: Option<(String, Instant)>,
    cooldown: Option<(Vec<u8>, Instant)>,
    changed: Arc<Notify>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, key: &StoreKey, f: impl FnOnce(&mut MemoryEntry) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(state.entry(key.as_str().to_owned()).or_default())
    }
}

impl TokenStore for MemoryStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<StoredEntry>, Error>> {
        let entry = self.with(key, |e| e.entry.clone());
        Box::pin(async move { Ok(entry) })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
        lease_owner: Option<&'a str>,
        entry: StoredEntry,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let now = Instant::now();
        let written = self.with(key, |e| {
            let current = e.entry.as_ref().map_or(0, |s| s.generation);
            if current != expected {
                return false;
            }
            if let Some(owner) = lease_owner {
                let holds = matches!(&e.lease, Some((o, until)) if o == owner && *until > now);
                if !holds {
                    return false;
                }
            }
            e.entry = Some(entry);
            e.changed.notify_waiters();
            true
        });
        Box::pin(async move { Ok(written) })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let now = Instant::now();
        let taken = self.with(key, |e| match &e.lease {
            Some((_, until)) if *until > now => false,
            _ => {
                e.lease = Some((owner.to_owned(), super::core::later(now, ttl)));
                true
            }
        });
        Box::pin(async move { Ok(taken) })
    }

    fn renew_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let now = Instant::now();
        let renewed = self.with(key, |e| match &mut e.lease {
            Some((o, until)) if o == owner && *until > now => {
                *until = super::core::later(now, ttl);
                true
            }
            _ => false,
        });
        Box::pin(async move { Ok(renewed) })
    }

    fn release_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.with(key, |e| {
            if e.lease.as_ref().is_some_and(|(o, _)| o == owner) {
                e.lease = None;
                e.changed.notify_waiters();
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn wait_change<'a>(
        &'a self,
        key: &'a StoreKey,
        seen: u64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let (changed, generation) = self.with(key, |e| {
            (
                e.changed.clone(),
                e.entry.as_ref().map_or(0, |s| s.generation),
            )
        });
        Box::pin(async move {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if generation > seen {
                return Ok(());
            }
            let _ = tokio::time::timeout(timeout, notified).await;
            Ok(())
        })
    }

    fn load_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        let now = Instant::now();
        let record = self.with(key, |e| match &e.cooldown {
            Some((record, until)) if *until > now => Some(record.clone()),
            _ => None,
        });
        Box::pin(async move { Ok(record) })
    }

    fn set_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
        record: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let until = super::core::later(Instant::now(), ttl);
        self.with(key, |e| e.cooldown = Some((record, until)));
        Box::pin(async { Ok(()) })
    }

    fn clear_cooldown<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), Error>> {
        self.with(key, |e| e.cooldown = None);
        Box::pin(async { Ok(()) })
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

/// What a credential does when its shared store cannot be reached.
///
/// ```
/// use tower_client_auth::token::{MemoryStore, SharedStore, WhenUnavailable};
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
    /// [`Error::is_store_unavailable`] until the store answers again. For
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
/// use tower_client_auth::token::{MemoryStore, SharedStore};
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
    /// entry's version, so that an older entry written back does not open.
    pub fn encrypt_with(mut self, key: [u8; 32]) -> Self {
        self.cipher = Some(Arc::new(XChaCha20Poly1305::new(&key.into())));
        self
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

/// What an entry holds.
pub(crate) enum Record {
    Token(Token),
    /// The user's refresh token was rejected: no process sends it again, after
    /// any restart, until a new login is stored.
    LoginRequired(String),
}

/// A permanent failure recorded for the whole fleet (see
/// [`TokenStore::set_cooldown`]): what it was, and until when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CooldownRecord {
    pub(crate) until_ms: u64,
    /// Permanent failures in a row, this one included: the cool-down doubles.
    pub(crate) count: u32,
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<String>,
    pub(crate) description: Option<String>,
}

const PLAIN_V1: &[u8; 2] = b"p1";
const SEALED_V1: &[u8; 2] = b"x1";
/// Version 1's unsealed "log in again" mark (the user key followed).
const LOGIN_REQUIRED_V1: &[u8; 2] = b"l1";
const PLAIN: &[u8; 2] = b"p2";
const SEALED: &[u8; 2] = b"x2";
/// Tag, epoch; then the JSON, or a nonce and the sealed JSON.
const HEADER: usize = 2 + 8;
const NONCE: usize = 24;

/// Associated data: binds a sealed record to its key, its kind of slot, and
/// (for entries) the version it was written as, so that neither another
/// credential's entry nor an older entry of the same credential passes for it.
fn associated_data(domain: &[u8], key: &StoreKey, version: Version) -> Vec<u8> {
    let mut aad = Vec::with_capacity(domain.len() + key.as_str().len() + 18);
    aad.extend_from_slice(domain);
    aad.push(0);
    aad.extend_from_slice(key.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.epoch.to_le_bytes());
    aad.extend_from_slice(&version.generation.to_le_bytes());
    aad
}

const ENTRY: &[u8] = b"tower-client-auth entry v2";
const COOLDOWN: &[u8] = b"tower-client-auth cooldown v2";

pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

fn token_json(token: &Token) -> serde_json::Value {
    let now = SystemTime::now();
    let remaining = token
        .expires_at()
        .map(|at| at.saturating_duration_since(Instant::now()));
    serde_json::json!({
        "kind": "token",
        "access_token": token.access_token.expose_secret(),
        "token_type": token.token_type,
        "expires_at_ms": remaining.map(|r| unix_ms(now + r)),
        "refresh_token": token.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()),
        "scope": token.scope,
        "extra": token.extra,
    })
}

fn token_from_json(v: &serde_json::Value) -> Result<Token, Error> {
    let access = v["access_token"]
        .as_str()
        .ok_or_else(|| Error::store_codec("stored token has no access_token"))?;
    let expires_in = match v["expires_at_ms"].as_u64() {
        Some(at) => {
            let now = unix_ms(SystemTime::now());
            Some(Duration::from_millis(at.saturating_sub(now)).min(MAX_LIFETIME))
        }
        None => None,
    };
    Ok(Token {
        access_token: SecretString::from(access.to_owned()),
        token_type: v["token_type"].as_str().unwrap_or("Bearer").to_owned(),
        expires_in,
        received_at: Instant::now(),
        refresh_token: v["refresh_token"]
            .as_str()
            .map(|r| SecretString::from(r.to_owned())),
        scope: v["scope"].as_str().map(str::to_owned),
        extra: v["extra"].as_object().cloned().unwrap_or_default(),
    })
}

/// JSON, sealed when there is a cipher: `p2`/`x2`, the epoch, then the JSON or
/// a nonce and the sealed JSON.
fn seal(
    json: &serde_json::Value,
    epoch: u64,
    aad: &[u8],
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Vec<u8>, Error> {
    let plain = serde_json::to_vec(json).map_err(|_| Error::store_codec("cannot encode"))?;
    let Some(cipher) = cipher else {
        return Ok([PLAIN.as_slice(), &epoch.to_le_bytes(), &plain].concat());
    };
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|_| Error::store_codec("no randomness for a nonce"))?;
    let sealed = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad })
        .map_err(|_| Error::store_codec("cannot encrypt"))?;
    Ok([SEALED.as_slice(), &epoch.to_le_bytes(), &nonce, &sealed].concat())
}

/// The epoch in a version-2 record's header (it is needed, before opening, to
/// build the associated data).
fn epoch_of(data: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(2..HEADER)?.try_into().ok()?))
}

/// Opens what [`seal`] wrote. Never panics on bytes from the store.
fn open(
    data: &[u8],
    aad: &[u8],
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<serde_json::Value, Error> {
    let plain = match (data.get(..2), cipher) {
        (Some(tag), None) if tag == PLAIN && data.len() >= HEADER => data[HEADER..].to_vec(),
        (Some(tag), Some(cipher)) if tag == SEALED && data.len() > HEADER + NONCE => {
            let nonce = XNonce::try_from(&data[HEADER..HEADER + NONCE])
                .map_err(|_| Error::store_codec("stored record is cut short"))?;
            cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: &data[HEADER + NONCE..],
                        aad,
                    },
                )
                .map_err(|_| {
                    Error::store_codec(
                        "stored record does not open with this key for this credential and version",
                    )
                })?
        }
        (Some(tag), None) if tag == SEALED => {
            return Err(Error::store_codec(
                "stored record is encrypted and no key is set",
            ))
        }
        (Some(tag), Some(_)) if tag == PLAIN => {
            return Err(Error::store_codec(
                "stored record is not encrypted and a key is set: refusing it",
            ))
        }
        _ => return Err(Error::store_codec("stored record has an unknown format")),
    };
    serde_json::from_slice(&plain).map_err(|_| Error::store_codec("stored record is not JSON"))
}

/// Encodes an entry for the store as `version` (JSON with an absolute expiry,
/// as processes share no monotonic clock), sealed when there is a cipher; the
/// seal binds the key and the version.
pub(crate) fn encode(
    record: &Record,
    key: &StoreKey,
    version: Version,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Vec<u8>, Error> {
    let json = match record {
        Record::Token(token) => token_json(token),
        Record::LoginRequired(user) => serde_json::json!({"kind": "login_required", "user": user}),
    };
    seal(
        &json,
        version.epoch,
        &associated_data(ENTRY, key, version),
        cipher,
    )
}

/// Encodes `token` as `shared` stores it under `version` (sealed when it has a key).
#[cfg(feature = "users")]
pub(crate) fn encode_for_store(
    token: &Token,
    key: &StoreKey,
    version: Version,
    shared: &SharedStore,
) -> Result<Vec<u8>, Error> {
    encode(
        &Record::Token(token.clone()),
        key,
        version,
        shared.cipher.as_deref(),
    )
}

/// The version a write outside the lease (a login) gives on top of `stored`:
/// the next generation of its incarnation, or a new incarnation when nothing
/// readable is stored.
#[cfg(feature = "users")]
pub(crate) fn version_after(
    stored: Option<&StoredEntry>,
    key: &StoreKey,
    shared: &SharedStore,
) -> Result<Version, Error> {
    let mut fresh = [0u8; 8];
    getrandom::fill(&mut fresh).map_err(|_| Error::store_codec("no randomness for an epoch"))?;
    let fresh = u64::from_le_bytes(fresh);
    Ok(match stored {
        Some(e) => Version {
            epoch: decode(&e.data, key, e.generation, shared.cipher.as_deref())
                .map_or(fresh, |(epoch, _)| epoch),
            generation: e.generation.saturating_add(1),
        },
        None => Version {
            epoch: fresh,
            generation: 1,
        },
    })
}

/// Decodes the entry stored as generation `generation`: its epoch and record.
/// Entries of the crate's first format (`p1`, `x1`, `l1`) are read as epoch 0,
/// so that stored logins survive an upgrade; an unsealed `l1` mark is refused
/// when a key is set (anyone could have written it). Never panics on bytes
/// from the store.
pub(crate) fn decode(
    data: &[u8],
    key: &StoreKey,
    generation: u64,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<(u64, Record), Error> {
    match data.get(..2) {
        Some(tag) if tag == LOGIN_REQUIRED_V1 => {
            if cipher.is_some() {
                return Err(Error::store_codec(
                    "stored login-required mark is not sealed and a key is set: refusing it",
                ));
            }
            let user = String::from_utf8_lossy(&data[2..]).into_owned();
            return Ok((0, Record::LoginRequired(user)));
        }
        Some(tag) if tag == PLAIN_V1 || tag == SEALED_V1 => {
            return decode_v1(data, key, cipher).map(|t| (0, Record::Token(t)));
        }
        _ => {}
    }
    let epoch = epoch_of(data).ok_or_else(|| Error::store_codec("stored record is cut short"))?;
    let aad = associated_data(ENTRY, key, Version { epoch, generation });
    let v = open(data, &aad, cipher)?;
    let record = match v["kind"].as_str() {
        Some("token") => Record::Token(token_from_json(&v)?),
        Some("login_required") => Record::LoginRequired(
            v["user"]
                .as_str()
                .ok_or_else(|| Error::store_codec("stored mark names no user"))?
                .to_owned(),
        ),
        _ => return Err(Error::store_codec("stored record has an unknown kind")),
    };
    Ok((epoch, record))
}

/// The first format: `p1` + JSON, or `x1` + nonce + JSON sealed to the key alone.
fn decode_v1(
    data: &[u8],
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Token, Error> {
    let plain = match (data.get(..2), cipher) {
        (Some(tag), None) if tag == PLAIN_V1 => data[2..].to_vec(),
        (Some(tag), Some(cipher)) if tag == SEALED_V1 && data.len() > 2 + NONCE => {
            let nonce = XNonce::try_from(&data[2..2 + NONCE])
                .map_err(|_| Error::store_codec("stored token is cut short"))?;
            cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: &data[2 + NONCE..],
                        aad: key.as_str().as_bytes(),
                    },
                )
                .map_err(|_| Error::store_codec("stored token does not decrypt with this key"))?
        }
        (_, None) => {
            return Err(Error::store_codec(
                "stored token is encrypted and no key is set",
            ))
        }
        (_, Some(_)) => {
            return Err(Error::store_codec(
                "stored token is not encrypted and a key is set: refusing it",
            ))
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&plain)
        .map_err(|_| Error::store_codec("stored token is not JSON"))?;
    token_from_json(&v)
}

/// Encodes the fleet's cool-down record, sealed like the entries.
pub(crate) fn encode_cooldown(
    record: &CooldownRecord,
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Vec<u8>, Error> {
    let json = serde_json::json!({
        "kind": "cooldown",
        "until_ms": record.until_ms,
        "count": record.count,
        "status": record.status,
        "code": record.code,
        "description": record.description,
    });
    seal(
        &json,
        0,
        &associated_data(COOLDOWN, key, Version::default()),
        cipher,
    )
}

/// Decodes what [`encode_cooldown`] wrote.
pub(crate) fn decode_cooldown(
    data: &[u8],
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<CooldownRecord, Error> {
    let v = open(
        data,
        &associated_data(COOLDOWN, key, Version::default()),
        cipher,
    )?;
    if v["kind"].as_str() != Some("cooldown") {
        return Err(Error::store_codec("stored cool-down has an unknown kind"));
    }
    let text = |k: &str| v[k].as_str().map(|s| s.chars().take(256).collect());
    Ok(CooldownRecord {
        until_ms: v["until_ms"]
            .as_u64()
            .ok_or_else(|| Error::store_codec("stored cool-down has no end"))?,
        count: v["count"]
            .as_u64()
            .map_or(1, |c| u32::try_from(c).unwrap_or(u32::MAX)),
        status: v["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
        code: text("code"),
        description: text("description"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::bearer("acc-123", Some(Duration::from_secs(600))).with_refresh_token("ref-456")
    }

    #[test]
    fn keys_share_a_hash_tag_and_carry_no_secret() {
        let k = StoreKey::new("ns", "https://auth/token|client|client_credentials||");
        assert!(k.entry().starts_with("ns:{") && k.entry().ends_with("}:token"));
        let tag = |s: &str| s[s.find('{').unwrap()..=s.find('}').unwrap()].to_owned();
        assert_eq!(tag(&k.entry()), tag(&k.lease()));
        assert_eq!(tag(&k.entry()), tag(&k.channel()));
        assert!(!k.entry().contains("client"));
    }

    const V1: Version = Version {
        epoch: 77,
        generation: 1,
    };

    fn token_of(record: (u64, Record)) -> (u64, Token) {
        match record {
            (epoch, Record::Token(t)) => (epoch, t),
            (_, Record::LoginRequired(_)) => panic!("a mark"),
        }
    }

    #[test]
    fn round_trip_plain_and_sealed() {
        let key = StoreKey::new("ns", "id");
        let record = Record::Token(token());
        let plain = encode(&record, &key, V1, None).unwrap();
        let (epoch, t) = token_of(decode(&plain, &key, 1, None).unwrap());
        assert_eq!(epoch, 77);
        assert_eq!(t.access_token().expose_secret(), "acc-123");
        assert_eq!(t.refresh_token().unwrap().expose_secret(), "ref-456");
        let left = t.expires_in().unwrap();
        assert!(left <= Duration::from_secs(600) && left > Duration::from_secs(590));

        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let sealed = encode(&record, &key, V1, Some(&cipher)).unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"acc-123"));
        assert!(!sealed.windows(7).any(|w| w == b"ref-456"));
        let (_, t) = token_of(decode(&sealed, &key, 1, Some(&cipher)).unwrap());
        assert_eq!(t.access_token().expose_secret(), "acc-123");
        // Bound to its key, its version, and to the cipher's key.
        assert!(decode(&sealed, &StoreKey::new("ns", "other"), 1, Some(&cipher)).is_err());
        assert!(decode(&sealed, &key, 2, Some(&cipher)).is_err());
        let wrong = XChaCha20Poly1305::new(&[8u8; 32].into());
        assert!(decode(&sealed, &key, 1, Some(&wrong)).is_err());
        assert!(decode(&sealed, &key, 1, None).is_err());
        assert!(decode(&plain, &key, 1, Some(&cipher)).is_err());
    }

    /// An older sealed entry written back (with its own generation, or under
    /// the current one) is refused: the seal binds the version, and the epoch
    /// in the clear header cannot be changed either.
    #[test]
    fn an_old_sealed_entry_written_back_does_not_open() {
        let key = StoreKey::new("ns", "id");
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let old = encode(&Record::Token(token()), &key, V1, Some(&cipher)).unwrap();
        // Under a later generation: does not open.
        assert!(decode(&old, &key, 3, Some(&cipher))
            .err()
            .unwrap()
            .is_store());
        // Its epoch rewritten to pass for another incarnation: does not open.
        let mut forged = old.clone();
        forged[2] ^= 1;
        assert!(decode(&forged, &key, 1, Some(&cipher)).is_err());
        // Under its own generation it opens, as what it is: generation 1 of
        // epoch 77, which a process holding a later generation never adopts.
        let (epoch, _) = token_of(decode(&old, &key, 1, Some(&cipher)).unwrap());
        let held = Some(Version {
            epoch,
            generation: 3,
        });
        assert!(!super::super::fleet::is_newer(V1, held));
    }

    /// With a key, the "log in again" mark is sealed (no user key in the
    /// clear) and an unsealed one is refused, so nobody can plant it.
    #[test]
    fn marks_are_sealed_and_unsealed_ones_refused() {
        let key = StoreKey::new("ns", "id");
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let user = "alice@example.com";
        let mark = encode(
            &Record::LoginRequired(user.to_owned()),
            &key,
            V1,
            Some(&cipher),
        )
        .unwrap();
        assert!(!mark.windows(user.len()).any(|w| w == user.as_bytes()));
        match decode(&mark, &key, 1, Some(&cipher)).unwrap() {
            (_, Record::LoginRequired(u)) => assert_eq!(u, user),
            _ => panic!("not a mark"),
        }
        let planted = [b"l1".as_slice(), user.as_bytes()].concat();
        assert!(decode(&planted, &key, 1, Some(&cipher))
            .err()
            .unwrap()
            .is_store());
        // Without a key the first format's mark still reads (stores written
        // by an earlier version keep their users marked).
        assert!(matches!(
            decode(&planted, &key, 1, None),
            Ok((0, Record::LoginRequired(_)))
        ));
    }

    #[test]
    fn cooldown_records_round_trip_sealed() {
        let key = StoreKey::new("ns", "id");
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let record = CooldownRecord {
            until_ms: 1_234,
            count: 2,
            status: Some(400),
            code: Some("invalid_grant".into()),
            description: Some("bad password".into()),
        };
        let data = encode_cooldown(&record, &key, Some(&cipher)).unwrap();
        assert!(!data.windows(12).any(|w| w == b"bad password"));
        assert_eq!(decode_cooldown(&data, &key, Some(&cipher)).unwrap(), record);
        assert!(decode_cooldown(&data, &StoreKey::new("ns", "x"), Some(&cipher)).is_err());
        // An entry does not pass for a cool-down record, nor the reverse.
        let entry = encode(
            &Record::Token(token()),
            &key,
            Version::default(),
            Some(&cipher),
        )
        .unwrap();
        assert!(decode_cooldown(&entry, &key, Some(&cipher)).is_err());
        assert!(decode(&data, &key, 0, Some(&cipher)).is_err());
    }

    /// Entries of the first format (`p1`, `x1`) still read, as epoch 0.
    #[test]
    fn first_format_entries_still_read() {
        let key = StoreKey::new("ns", "id");
        let json = br#"{"access_token":"acc-1","token_type":"Bearer","refresh_token":"ref-1"}"#;
        let plain = [b"p1".as_slice(), json].concat();
        let (epoch, t) = token_of(decode(&plain, &key, 4, None).unwrap());
        assert_eq!((epoch, t.access_token().expose_secret()), (0, "acc-1"));
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let nonce = [3u8; 24];
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: json,
                    aad: key.as_str().as_bytes(),
                },
            )
            .unwrap();
        let v1 = [b"x1".as_slice(), &nonce, &sealed].concat();
        let (_, t) = token_of(decode(&v1, &key, 4, Some(&cipher)).unwrap());
        assert_eq!(t.refresh_token().unwrap().expose_secret(), "ref-1");
    }

    /// Identities are escaped field by field: `|` in a field cannot make
    /// another credential's identity, and a field without one is unchanged.
    #[test]
    fn identity_fields_are_unambiguous() {
        use super::super::identity_field;
        let join = |a: &str, b: &str| {
            format!(
                "{}|{}",
                identity_field(a, &['|']),
                identity_field(b, &['|'])
            )
        };
        assert_ne!(join("a|b", "c"), join("a", "b|c"));
        assert_ne!(join("a\\", "|c"), join("a\\|", "c"));
        assert_eq!(
            join("user-42", "https://auth/token"),
            "user-42|https://auth/token"
        );
        assert_ne!(
            StoreKey::new("ns", &join("a|b", "c")),
            StoreKey::new("ns", &join("a", "b|c"))
        );
    }

    #[test]
    fn garbage_from_the_store_is_an_error_not_a_panic() {
        let key = StoreKey::new("ns", "id");
        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        for data in [
            &b""[..],
            b"p",
            b"p1",
            b"p1{",
            b"x1",
            b"x1short",
            b"zz{}",
            b"p1[]",
            b"p2",
            b"p2\0\0\0\0\0\0\0\0{}",
            b"x2\0\0\0\0\0\0\0\0short",
            b"l",
        ] {
            assert!(decode(data, &key, 1, None).is_err(), "{data:?}");
            assert!(decode(data, &key, 1, Some(&cipher)).is_err(), "{data:?}");
            assert!(decode_cooldown(data, &key, Some(&cipher)).is_err());
        }
        let e = decode(b"p1{}", &key, 1, None).err().unwrap();
        assert!(e.is_store());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_store_lease_cas_and_wait() {
        let store = MemoryStore::new();
        let key = StoreKey::new("ns", "id");
        assert!(store.load(&key).await.unwrap().is_none());
        assert!(store
            .try_lease(&key, "a", Duration::from_secs(5))
            .await
            .unwrap());
        assert!(!store
            .try_lease(&key, "b", Duration::from_secs(5))
            .await
            .unwrap());
        let e = |g| StoredEntry {
            generation: g,
            data: vec![g as u8],
        };
        assert!(store
            .compare_and_set(&key, 0, Some("a"), e(1))
            .await
            .unwrap());
        assert!(!store
            .compare_and_set(&key, 0, Some("a"), e(1))
            .await
            .unwrap());
        // Fenced: only the lease's owner writes.
        assert!(!store
            .compare_and_set(&key, 1, Some("b"), e(2))
            .await
            .unwrap());
        assert_eq!(store.load(&key).await.unwrap(), Some(e(1)));
        // Someone else's release does nothing; the lease expires.
        store.release_lease(&key, "b").await.unwrap();
        assert!(!store
            .try_lease(&key, "b", Duration::from_secs(5))
            .await
            .unwrap());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!store
            .renew_lease(&key, "a", Duration::from_secs(5))
            .await
            .unwrap());
        assert!(store
            .try_lease(&key, "b", Duration::from_secs(5))
            .await
            .unwrap());
        // A waiter past `seen` returns at once; one that is not waits for the write.
        store
            .wait_change(&key, 0, Duration::from_secs(60))
            .await
            .unwrap();
        let start = Instant::now();
        store
            .wait_change(&key, 1, Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
