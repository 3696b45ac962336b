//! What a store is to the crate: the [`TokenStore`] trait (an entry read
//! whole, a fenced compare-and-set, a lease, a change notification, the
//! fleet's cool-down record), the keys it is handed, and what it holds.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// The keys of one credential's entry, lease and change channel. All three share
/// a Redis Cluster hash tag (`{…}`), so a credential's keys live on one slot.
///
/// A [`TokenStore`] of your own is handed one in every call:
///
/// ```
/// use tower_client_auth::store::StoreKey;
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
    /// The keys of the credential with `identity` under `namespace` (what
    /// [`SharedStore::namespace`](super::SharedStore::namespace) and [`SharedStore::identity`](super::SharedStore::identity) set): to find
    /// its entry from outside, in an operator's script or a test.
    ///
    /// ```
    /// use tower_client_auth::store::StoreKey;
    ///
    /// let key = StoreKey::for_identity("billing-service", "billing-api-token");
    /// assert!(key.entry().starts_with("billing-service:{"));
    /// ```
    pub fn for_identity(namespace: &str, identity: &str) -> StoreKey {
        StoreKey::new(namespace, identity)
    }

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
/// bytes (opaque to the store; encrypted when the [`SharedStore`](super::SharedStore) has a key).
///
/// ```
/// use tower_client_auth::store::StoredEntry;
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
/// [`MemoryStore`](super::MemoryStore) shares within one process; `RedisStore` and `PgStore`
/// (features `redis`, `postgres`) across processes.
///
/// Errors are the crate's [`Error`]; wrap your own with [`Error::store`].
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// # use std::time::Duration;
/// use futures_util::future::BoxFuture;
/// use tower_client_auth::store::{MemoryStore, SharedStore, StoreKey, StoredEntry, TokenStore};
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

/// A store operation, bounded by `limit` (the store timeout): a store that
/// accepts commands and never answers counts as unavailable.
pub(crate) async fn within<T>(
    limit: Duration,
    op: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(limit, op).await.unwrap_or_else(|_| {
        Err(Error::store_unavailable(
            "the shared store did not answer within the store timeout",
        ))
    })
}
