//! [`MemoryStore`]: a [`TokenStore`] in this process's memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;
use crate::error::Error;

/// A [`TokenStore`] in this process's memory: processes do not share it. For
/// tests, and for several credentials of one process sharing one token.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tower_client_auth::secrecy::ExposeSecret;
/// use tower_client_auth::store::{MemoryStore, SharedStore};
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
                e.lease = Some((owner.to_owned(), crate::token::later(now, ttl)));
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
                *until = crate::token::later(now, ttl);
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
        let until = crate::token::later(Instant::now(), ttl);
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

#[cfg(test)]
mod tests {
    use super::*;

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
