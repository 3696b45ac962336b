//! [`Users`]: many users' credentials, created on first use from the store,
//! dropped when idle or beyond the capacity; their login and counts.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::layer::local::Stamp;
use crate::oauth2::TokenClient;
use crate::store::{SharedStore, StoreKey};
use crate::token::{ManagedOptions, Token, TokenHook};
use crate::{Credential, Error};

use super::*;

/// The lease a user's refresh takes by default (a fleet's single credential
/// takes 30 s): a process that crashes mid-refresh holds that user up this long.
pub(super) const USERS_LEASE_TTL: Duration = Duration::from_secs(10);

/// Called with each new token of a user (see [`UsersBuilder::on_token_change`]).
pub(super) type UserTokenHook = Arc<dyn Fn(&UserKey, &Token) + Send + Sync>;

/// What [`UsersLayer`] does with a request that carries no [`UserKey`].
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_client_auth::store::{MemoryStore, SharedStore};
/// use tower_client_auth::users::{Users, UsersLayer, WithoutUser};
/// use tower_client_auth::Error;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let token_client = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/oauth/token")
/// #     .client_id("my-app")
/// #     .build(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
/// #     }))?;
/// let users = Users::builder("https://api.example.com", token_client)
///     .store(SharedStore::new(MemoryStore::new()))
///     .without_user(WithoutUser::Fail)
///     .build()?;
/// let api = UsersLayer::new(users).without_retry().layer(service_fn(|_: Request<Full<Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(()))
/// }));
/// let anonymous = Request::get("https://api.example.com/v1/status").body(Full::new(Bytes::new()))?;
/// let err = api.oneshot(anonymous).await.unwrap_err();
/// assert!(err.downcast_ref::<Error>().is_some_and(|e| e.is_config()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithoutUser {
    /// Send it as it is, unauthenticated. The default.
    PassThrough,
    /// Fail it with a configuration error, unsent.
    Fail,
}

/// Many users' credentials, created on first use from the store. Cheap to clone.
///
/// ```
/// use tower_client_auth::secrecy::ExposeSecret;
/// use tower_client_auth::token::Token;
/// use tower_client_auth::store::{MemoryStore, SharedStore};
/// use tower_client_auth::users::{UserKey, Users};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let token_client = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/oauth/token")
/// #     .client_id("my-app")
/// #     .build(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
/// #     }))?;
/// let users = Users::builder("https://api.example.com", token_client)
///     .store(SharedStore::new(MemoryStore::new())) // `PgStore` or `RedisStore` in production
///     .build()?;
/// let alice = UserKey::new("alice");
/// let login = Token::bearer("alice-access-token", None).with_refresh_token("alice-refresh-token");
/// users.login(&alice, login).await?;
/// let token = users.credential(&alice)?.token().await?;
/// assert_eq!(token.access_token().expose_secret(), "alice-access-token");
///
/// // Someone who never logged in:
/// let err = users.credential(&UserKey::new("bob"))?.token().await.unwrap_err();
/// assert!(err.is_login_required());
/// assert_eq!(err.user_key(), Some("bob"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Users {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// Every user's credential goes by this name in spans, events and metric
    /// labels: the origin and token URL, never a user.
    pub(super) name: Arc<str>,
    pub(super) origin: String,
    pub(super) allow_http: bool,
    pub(super) client: TokenClient,
    pub(super) shared: SharedStore,
    pub(super) options: ManagedOptions,
    pub(super) on_change: Option<UserTokenHook>,
    pub(super) max_users: usize,
    pub(super) idle: Duration,
    pub(super) without_user: WithoutUser,
    pub(super) entries: Mutex<Entries>,
    pub(super) started: Instant,
}

#[derive(Default)]
pub(super) struct Entries {
    pub(super) map: KeyMap<Arc<Entry>>,
    pub(super) last_sweep: u64,
    /// Requests since the last look at the clock for a sweep.
    pub(super) since_sweep: u32,
    /// The counts of entries that are gone.
    pub(super) retired: UsersStats,
    /// Whether the background sweep was started.
    pub(super) sweeper: bool,
}

/// Counts over every user of a [`Users`] (see [`Users::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsersStats {
    /// Users with an entry in this process now.
    pub users: usize,
    /// Token requests (each refresh, or a stored token adopted, counts).
    pub token_requests: u64,
    /// Refreshes this process made (tokens adopted from the store are not).
    pub refreshes: u64,
    /// Token requests that failed (a rejected refresh token among them).
    pub token_failures: u64,
    /// Requests that waited for a token request started by someone else.
    pub coalesced_waiters: u64,
    /// Requests re-sent after a 401.
    pub retries_on_401: u64,
}

impl UsersStats {
    pub(super) fn add(&mut self, credential: &Credential) {
        if let Some(s) = credential.stats() {
            self.token_requests += s.token_requests;
            self.refreshes += s.tokens_fetched;
            self.token_failures += s.token_failures;
            self.coalesced_waiters += s.coalesced_waiters;
            self.retries_on_401 += s.retries_on_401;
        }
    }
}

/// Idle tracking without a clock read per request (second chance): a request
/// sets `touched`; a sweep keeps touched entries (clearing the flag and noting
/// the sweep's time as `untouched_since`) and drops entries untouched since
/// longer than the idle time.
pub(super) struct Entry {
    pub(super) credential: Credential,
    pub(super) stamp: Arc<Stamp>,
    pub(super) touched: AtomicBool,
    /// Milliseconds since `Inner::started`: when the entry was last seen
    /// untouched by a sweep (or made).
    pub(super) untouched_since: AtomicU64,
}

impl Entry {
    #[inline]
    pub(super) fn touch(&self) {
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
    }
}

/// Builds [`Users`].
///
/// ```
/// use std::time::Duration;
/// use tower_client_auth::store::{MemoryStore, SharedStore};
/// use tower_client_auth::users::Users;
///
/// # let token_client = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/oauth/token")
/// #     .client_id("my-app")
/// #     .build(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
/// #     }))?;
/// let users = Users::builder("https://api.example.com", token_client.clone())
///     // A placeholder key: take yours from a secret manager.
///     .store(SharedStore::new(MemoryStore::new()).encrypt_with([7u8; 32]))
///     .max_users(50_000)
///     .idle_timeout(Duration::from_secs(600))
///     .on_token_change(|user, _token| eprintln!("new token for {}", user.as_str()))
///     .build()?;
/// assert!(users.is_empty());
///
/// // The store is required.
/// let err = Users::builder("https://api.example.com", token_client).build().unwrap_err();
/// assert!(err.is_config());
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
#[must_use]
pub struct UsersBuilder {
    pub(super) origin: String,
    pub(super) allow_http: bool,
    pub(super) client: TokenClient,
    pub(super) shared: Option<SharedStore>,
    pub(super) options: ManagedOptions,
    pub(super) on_change: Option<UserTokenHook>,
    pub(super) max_users: usize,
    pub(super) idle: Duration,
    pub(super) without_user: WithoutUser,
}

impl Users {
    /// Users of the API at `origin`, whose tokens `client` refreshes.
    pub fn builder(origin: impl Into<String>, client: TokenClient) -> UsersBuilder {
        UsersBuilder {
            origin: origin.into(),
            allow_http: false,
            client,
            shared: None,
            // Refresh when a request needs it, not ahead: idle users cost the
            // provider nothing.
            options: ManagedOptions::default().max_refresh_ahead(Duration::ZERO),
            on_change: None,
            max_users: 10_000,
            idle: Duration::from_secs(15 * 60),
            without_user: WithoutUser::PassThrough,
        }
    }

    /// Stores `token` (from the authorization-code exchange) as `user`'s, for
    /// every process: their next request uses it. Replaces whatever was stored,
    /// including a "must log in again" mark.
    pub async fn login(&self, user: &UserKey, token: Token) -> Result<(), Error> {
        let inner = &self.inner;
        let key = self.store_key(user);
        inner.shared.put(&key, &token).await?;
        // A fresh credential picks the new token up (and drops any cool-down
        // of the old one).
        let removed = self.lock().map.remove(user);
        if let Some(e) = removed {
            self.retire(&e);
        }
        tracing::debug!(
            credential = &*self.inner.name,
            user = user.as_str(),
            "login stored"
        );
        Ok(())
    }

    /// The token client users' tokens are exchanged and refreshed with: the
    /// login's callback exchanges the code with it.
    pub fn token_client(&self) -> &TokenClient {
        &self.inner.client
    }

    /// Forgets `user` here (their stored token stays).
    pub fn evict(&self, user: &UserKey) {
        let removed = self.lock().map.remove(user);
        if let Some(e) = removed {
            self.retire(&e);
        }
    }

    /// Drops the entries of users idle for at least the idle time; returns how
    /// many are left. Also done on its own: by a background task every eighth
    /// of the idle time (started with the first user, on the runtime at hand,
    /// ended with the last clone of `Users`), so an entry goes at most the idle
    /// time plus two of those sweeps after its last use, whatever the traffic.
    pub fn evict_idle(&self) -> usize {
        let now = self.now_ms();
        let mut entries = self.lock();
        self.sweep(&mut entries, now);
        entries.map.len()
    }

    pub(super) fn sweep(&self, entries: &mut Entries, now: u64) {
        let idle = self.inner.idle.as_millis() as u64;
        let mut gone = Vec::new();
        entries.map.retain(|_, e| {
            if e.touched.swap(false, Ordering::Relaxed) {
                e.untouched_since.store(now, Ordering::Relaxed);
                return true;
            }
            let keep = now.saturating_sub(e.untouched_since.load(Ordering::Relaxed)) < idle;
            if !keep {
                gone.push(e.clone());
            }
            keep
        });
        entries.last_sweep = now;
        for e in gone {
            entries.retired.add(&e.credential);
        }
    }

    /// Keeps the counts of an entry that goes.
    pub(super) fn retire(&self, entry: &Entry) {
        self.lock().retired.add(&entry.credential);
    }

    /// Counts summed over every user's credential, past entries included, and
    /// how many users have an entry now.
    ///
    /// ```
    /// use tower_client_auth::token::Token;
    /// use tower_client_auth::store::{MemoryStore, SharedStore};
    /// use tower_client_auth::users::{UserKey, Users};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// # let token_client = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/oauth/token")
    /// #     .client_id("my-app")
    /// #     .build(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
    /// #     }))?;
    /// let users = Users::builder("https://api.example.com", token_client)
    ///     .store(SharedStore::new(MemoryStore::new()))
    ///     .build()?;
    /// let alice = UserKey::new("alice");
    /// users.login(&alice, Token::bearer("alice-access-token", None)).await?;
    /// // Looking a user up creates no entry.
    /// assert!(users.find(&alice).is_none());
    /// users.credential(&alice)?.token().await?;
    /// assert!(users.find(&alice).is_some());
    /// let stats = users.stats();
    /// assert_eq!(stats.users, 1);
    /// assert_eq!(stats.token_requests, 1); // the stored login, adopted
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> UsersStats {
        let entries = self.lock();
        let mut total = entries.retired.clone();
        for e in entries.map.values() {
            total.add(&e.credential);
        }
        total.users = entries.map.len();
        total
    }

    /// `user`'s credential if they have an entry in this process; creates none.
    pub fn find(&self, user: &UserKey) -> Option<Credential> {
        self.lock().map.get(user).map(|e| e.credential.clone())
    }

    /// Users with an entry in this process.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no user has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `user`'s credential, created from the store on first use.
    pub fn credential(&self, user: &UserKey) -> Result<Credential, Error> {
        self.entry(user).map(|e| e.credential.clone())
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    pub(super) fn store_key(&self, user: &UserKey) -> StoreKey {
        StoreKey::new(&self.inner.shared.namespace, &self.identity(user))
    }

    pub(super) fn identity(&self, user: &UserKey) -> String {
        let c = &self.inner.client;
        // Each field escaped: a user key with a `|` must not name another
        // user of another client.
        let field = |s| crate::token::identity_field(s, &['|']);
        format!(
            "user|{}|{}|{}{}{}",
            field(&c.token_url().to_string()),
            field(c.client_id().unwrap_or("")),
            field(user.as_str()),
            c.key_binding(),
            c.details_binding()
        )
    }

    #[inline]
    pub(super) fn entry(&self, user: &UserKey) -> Result<Arc<Entry>, Error> {
        let mut entries = self.lock();
        entries.since_sweep += 1;
        if entries.since_sweep >= 1_024 {
            // Every 1,024 requests, whichever service clone sends them.
            entries.since_sweep = 0;
            let now = self.now_ms();
            if now.saturating_sub(entries.last_sweep) >= self.inner.idle.as_millis() as u64 / 4 {
                self.sweep(&mut entries, now);
            }
        }
        if let Some(e) = entries.map.get(user) {
            e.touch();
            return Ok(e.clone());
        }
        drop(entries);
        self.new_entry(user)
    }

    #[cold]
    pub(super) fn new_entry(&self, user: &UserKey) -> Result<Arc<Entry>, Error> {
        let now = self.now_ms();
        let mut entries = self.lock();
        if let Some(e) = entries.map.get(user) {
            e.touch();
            return Ok(e.clone());
        }
        let inner = &self.inner;
        // Sweeps ride on new users: at most once per quarter of the idle time.
        // Beyond the capacity, the tenth least recently used goes (untouched
        // ones first, oldest first).
        let idle = inner.idle.as_millis() as u64;
        if now.saturating_sub(entries.last_sweep) >= idle / 4 {
            self.sweep(&mut entries, now);
        }
        if entries.map.len() >= inner.max_users {
            let mut ages: Vec<((bool, u64), UserKey)> = entries
                .map
                .iter()
                .map(|(k, e)| {
                    let age = (
                        e.touched.load(Ordering::Relaxed),
                        e.untouched_since.load(Ordering::Relaxed),
                    );
                    (age, k.clone())
                })
                .collect();
            ages.sort_unstable_by_key(|(t, _)| *t);
            let drop = (inner.max_users / 10).max(1);
            for (_, k) in ages.into_iter().take(drop) {
                if let Some(e) = entries.map.remove(&k) {
                    entries.retired.add(&e.credential);
                }
            }
        }
        if !entries.sweeper {
            entries.sweeper = self.start_sweeper();
        }
        let credential = self.build_credential(user)?;
        let entry = Arc::new(Entry {
            stamp: Stamp::new(credential.clone()),
            credential,
            touched: AtomicBool::new(false),
            untouched_since: AtomicU64::new(now),
        });
        entries.map.insert(user.clone(), entry.clone());
        Ok(entry)
    }

    /// Starts the idle sweep on the runtime at hand; `false` without one (then
    /// sweeps ride on requests and new users).
    pub(super) fn start_sweeper(&self) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let every = (self.inner.idle / 8).max(Duration::from_millis(1));
        let users = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = users.upgrade() else { return };
                Users { inner }.evict_idle();
            }
        });
        true
    }

    pub(super) fn build_credential(&self, user: &UserKey) -> Result<Credential, Error> {
        let inner = &self.inner;
        let source = UserSource {
            client: inner.client.clone(),
            user: user.clone(),
        };
        let mut b = Credential::builder()
            .origin(inner.origin.clone())
            .name(&*inner.name);
        if inner.allow_http {
            b = b.allow_http();
        }
        if let Some(hook) = &inner.on_change {
            let (hook, user) = (hook.clone(), user.clone());
            let hook: TokenHook = Arc::new(move |t: &Token| hook(&user, t));
            b = b.on_token_change(move |t| hook(t));
        }
        b.token_source_with(source, inner.options.clone())
            .shared_store(inner.shared.clone().identity(self.identity(user)))
            .build()
    }
}

impl UsersBuilder {
    /// Where users' tokens live (required): a [`SharedStore`] on a durable
    /// [`TokenStore`](crate::store::TokenStore), with its namespace, encryption
    /// and lease settings. Its [`WhenUnavailable`](crate::store::WhenUnavailable)
    /// is set to `FailClosed`: without the store a process cannot know a user's
    /// latest (rotated) refresh token, so a request fails with
    /// [`Error::is_store_unavailable`] rather than use a stale one or send the
    /// user to the login. Each user's key is its namespace and a hash of the
    /// token URL, client id and user key, and of the DPoP key's thumbprint when
    /// the token client has one (feature `jose`): a DPoP key must then be kept
    /// (loaded with [`PrivateKey::from_pkcs8_pem`](crate::oauth2::PrivateKey::from_pkcs8_pem)
    /// on every start, the same for every replica), or every stored login is
    /// lost when it changes.
    ///
    /// Unless the [`SharedStore`] sets its own
    /// [`lease_ttl`](SharedStore::lease_ttl), a user's refresh takes a 10 s
    /// lease: a process that crashes mid-refresh holds only that user's next
    /// refresh up, and for at most that long.
    pub fn store(mut self, shared: SharedStore) -> Self {
        // Without the store a process cannot know the user's latest refresh
        // token (rotation): fail the request rather than send the user to login.
        let mut shared = shared.when_unavailable(crate::store::WhenUnavailable::FailClosed);
        if !shared.lease_ttl_set {
            // An interactive user waits for a crashed holder's lease to run
            // out: keep that short (a refresh takes well under a second).
            shared.lease_ttl = USERS_LEASE_TTL;
        }
        self.shared = Some(shared);
        self
    }

    /// Allows a plain `http://` API origin that is not loopback.
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Expiry, refresh and failure options for every user's token.
    pub fn options(mut self, options: ManagedOptions) -> Self {
        self.options = options;
        self
    }

    /// Called with each new token fetched for a user (after a refresh-token
    /// rotation), before it replaces the old one.
    pub fn on_token_change(
        mut self,
        hook: impl Fn(&UserKey, &Token) + Send + Sync + 'static,
    ) -> Self {
        self.on_change = Some(Arc::new(hook));
        self
    }

    /// At most this many users' entries in memory (default 10,000); beyond it
    /// the least recently used tenth is dropped.
    pub fn max_users(mut self, n: usize) -> Self {
        self.max_users = n.max(1);
        self
    }

    /// Entries unused this long are dropped, with their background task
    /// (default 15 minutes).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle.clamp(Duration::from_millis(1), crate::token::MAX_LIFETIME);
        self
    }

    /// What to do with a request that carries no [`UserKey`].
    pub fn without_user(mut self, policy: WithoutUser) -> Self {
        self.without_user = policy;
        self
    }

    /// Builds [`Users`].
    pub fn build(self) -> Result<Users, Error> {
        let shared = self
            .shared
            .ok_or_else(|| Error::config("Users needs a store for the users' tokens"))?;
        // Check the origin now rather than on the first user.
        let mut probe = Credential::builder()
            .origin(self.origin.clone())
            .bearer("probe");
        if self.allow_http {
            probe = probe.allow_http();
        }
        let probe = probe.build()?;
        let name = format!(
            "{} via {}",
            probe.name(),
            crate::wire::origin::describe_url(self.client.token_url())
        );
        Ok(Users {
            inner: Arc::new(Inner {
                name: name.into(),
                origin: self.origin,
                allow_http: self.allow_http,
                client: self.client,
                shared,
                options: self.options,
                on_change: self.on_change,
                max_users: self.max_users,
                idle: self.idle,
                without_user: self.without_user,
                entries: Mutex::new(Entries::default()),
                started: Instant::now(),
            }),
        })
    }
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("origin", &self.inner.origin)
            .field("entries", &self.len())
            .field("max_users", &self.inner.max_users)
            .field("idle", &self.inner.idle)
            .finish()
    }
}

impl fmt::Debug for UsersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersBuilder")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}
