//! Shared token stores: where a fleet of processes keeps one credential's token,
//! so that the fleet fetches one token per lifetime (see [`SharedStore`]).
//!
//! A [`TokenStore`] is a key-value store with four things: a versioned entry
//! read whole, a compare-and-set on its generation, a lease with an owner, and a
//! change notification. [`MemoryStore`] keeps them in this process (for tests, or
//! several credentials of one process); [`RedisStore`](super::RedisStore) (feature
//! `redis`) shares them across processes and hosts. The same four operations fit
//! a SQL table (a row with a version column, a lease row with an expiry,
//! `LISTEN`/`NOTIFY`).
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

use super::{Token, MAX_LIFETIME};
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
/// compare-and-set on its generation, a lease with an owner, and a change
/// notification. [`MemoryStore`] shares within one process; `RedisStore` and
/// `PgStore` (features `redis`, `postgres`) across processes.
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
///         entry: StoredEntry,
///     ) -> BoxFuture<'a, Result<bool, Error>> {
///         self.1.fetch_add(1, Ordering::SeqCst);
///         self.0.compare_and_set(key, expected, entry)
///     }
///     // `load` and the lease and wait methods forward to `self.0` likewise.
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

    /// Writes `entry` if the stored generation is `expected` (0: no entry yet),
    /// and notifies waiters; `Ok(false)` if the generation moved on.
    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
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
        entry: StoredEntry,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let written = self.with(key, |e| {
            let current = e.entry.as_ref().map_or(0, |s| s.generation);
            if current != expected {
                return false;
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
    FetchLocally,
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
    pub(crate) poll_interval: Duration,
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
            poll_interval: Duration::from_millis(250),
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
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.clamp(Duration::from_secs(1), MAX_LIFETIME);
        self
    }

    /// How often a waiter looks again when no change notification comes
    /// (default 250 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.clamp(Duration::from_millis(10), Duration::from_secs(60));
        self
    }

    /// Encrypts stored tokens with XChaCha20-Poly1305 under `key` (32 bytes of
    /// your own, from a secret manager), bound to the credential's store key.
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
            .field("encrypted", &self.cipher.is_some())
            .finish()
    }
}

const PLAIN: &[u8; 2] = b"p1";
const SEALED: &[u8; 2] = b"x1";
/// A user who must log in again (their refresh token was rejected), then the
/// user key: kept in the store so that no process, after any restart, sends the
/// dead refresh token again.
const LOGIN_REQUIRED: &[u8; 2] = b"l1";

/// The stored marker for a user who must log in again.
pub(crate) fn encode_login_required(user: &str) -> Vec<u8> {
    [LOGIN_REQUIRED.as_slice(), user.as_bytes()].concat()
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

/// Encodes `token` for the store: JSON with an absolute expiry (processes do not
/// share a monotonic clock), sealed when there is a cipher.
pub(crate) fn encode(
    token: &Token,
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Vec<u8>, Error> {
    let now = SystemTime::now();
    let remaining = token
        .expires_at()
        .map(|at| at.saturating_duration_since(Instant::now()));
    let json = serde_json::json!({
        "access_token": token.access_token.expose_secret(),
        "token_type": token.token_type,
        "expires_at_ms": remaining.map(|r| unix_ms(now + r)),
        "refresh_token": token.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()),
        "scope": token.scope,
        "extra": token.extra,
    });
    let plain = serde_json::to_vec(&json).map_err(|_| Error::store_codec("cannot encode"))?;
    let Some(cipher) = cipher else {
        return Ok([PLAIN.as_slice(), &plain].concat());
    };
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|_| Error::store_codec("no randomness for a nonce"))?;
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plain,
                aad: key.as_str().as_bytes(),
            },
        )
        .map_err(|_| Error::store_codec("cannot encrypt"))?;
    Ok([SEALED.as_slice(), &nonce, &sealed].concat())
}

/// Encodes `token` as `shared` stores it (sealed when it has a key).
#[cfg(feature = "users")]
pub(crate) fn encode_for_store(
    token: &Token,
    key: &StoreKey,
    shared: &SharedStore,
) -> Result<Vec<u8>, Error> {
    encode(token, key, shared.cipher.as_deref())
}

/// Decodes what [`encode`] wrote. Never panics on bytes from the store.
pub(crate) fn decode(
    data: &[u8],
    key: &StoreKey,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Token, Error> {
    if data.starts_with(LOGIN_REQUIRED) {
        return Err(Error::login_required(&String::from_utf8_lossy(&data[2..])));
    }
    let nonce = |d: &[u8]| -> Option<XNonce> { XNonce::try_from(d.get(2..26)?).ok() };
    let plain = match (data.get(..2), cipher) {
        (Some(tag), None) if tag == PLAIN => data[2..].to_vec(),
        (Some(tag), Some(cipher)) if tag == SEALED && data.len() > 26 => cipher
            .decrypt(
                &nonce(data).ok_or_else(|| Error::store_codec("stored token is cut short"))?,
                Payload {
                    msg: &data[26..],
                    aad: key.as_str().as_bytes(),
                },
            )
            .map_err(|_| Error::store_codec("stored token does not decrypt with this key"))?,
        (Some(tag), None) if tag == SEALED => {
            return Err(Error::store_codec(
                "stored token is encrypted and no key is set",
            ))
        }
        (Some(tag), Some(_)) if tag == PLAIN => {
            return Err(Error::store_codec(
                "stored token is not encrypted and a key is set: refusing it",
            ))
        }
        _ => return Err(Error::store_codec("stored token has an unknown format")),
    };
    let v: serde_json::Value = serde_json::from_slice(&plain)
        .map_err(|_| Error::store_codec("stored token is not JSON"))?;
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

    #[test]
    fn round_trip_plain_and_sealed() {
        let key = StoreKey::new("ns", "id");
        let plain = encode(&token(), &key, None).unwrap();
        let t = decode(&plain, &key, None).unwrap();
        assert_eq!(t.access_token().expose_secret(), "acc-123");
        assert_eq!(t.refresh_token().unwrap().expose_secret(), "ref-456");
        let left = t.expires_in().unwrap();
        assert!(left <= Duration::from_secs(600) && left > Duration::from_secs(590));

        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let sealed = encode(&token(), &key, Some(&cipher)).unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"acc-123"));
        assert!(!sealed.windows(7).any(|w| w == b"ref-456"));
        let t = decode(&sealed, &key, Some(&cipher)).unwrap();
        assert_eq!(t.access_token().expose_secret(), "acc-123");
        // Bound to its key, and to the cipher's key.
        assert!(decode(&sealed, &StoreKey::new("ns", "other"), Some(&cipher)).is_err());
        let wrong = XChaCha20Poly1305::new(&[8u8; 32].into());
        assert!(decode(&sealed, &key, Some(&wrong)).is_err());
        assert!(decode(&sealed, &key, None).is_err());
        assert!(decode(&plain, &key, Some(&cipher)).is_err());
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
        ] {
            assert!(decode(data, &key, None).is_err());
            assert!(decode(data, &key, Some(&cipher)).is_err());
        }
        let e = decode(b"p1{}", &key, None).unwrap_err();
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
        assert!(store.compare_and_set(&key, 0, e(1)).await.unwrap());
        assert!(!store.compare_and_set(&key, 0, e(1)).await.unwrap());
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
