//! The token cache: one current token per credential, single-flight refresh,
//! refresh ahead, backoff and cool-down.
//!
//! Design:
//!
//! * `current` is an `ArcSwapOption<Stamped>`: the hot path reads it through a
//!   per-service `arc_swap::Cache` (a relaxed load and a pointer compare, no
//!   lock, no allocation, no refcount) and checks one atomic byte (`state`). No
//!   clock is read per request: a background driver task retires the token at its
//!   time and starts the refresh-ahead.
//! * Expiry never depends on that task being alive. The task carries a guard
//!   whose `Drop` (the runtime shut down, or the task was cancelled) marks the
//!   current token *unwatched*; an unwatched token is not "fresh", so requests
//!   take the slow path, which checks the deadline against the clock itself and
//!   restarts the driver on the caller's runtime if there is one. The driver
//!   holds only a weak reference and is woken when the manager drops, so it ends
//!   with the credential.
//! * Everything else (starting or joining a token request, recording failures)
//!   happens under one `std::sync::Mutex`, held only for a few field updates and
//!   never across an `.await`; [`Core`] owns the decisions and the in-flight
//!   handle.
//! * A token request runs in its own spawned task; requests wait on a `Shared`
//!   handle to it. Dropping the request that started it drops only that waiter.

mod driver;
mod flight;
#[cfg(not(feature = "store"))]
mod no_store;
mod telemetry;

#[cfg(feature = "store")]
pub(crate) use crate::store::Shared;
#[cfg(not(feature = "store"))]
pub(crate) use no_store::Shared;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwapOption;
use futures_util::future::{self, BoxFuture, FutureExt};
use http::HeaderValue;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{Error, Kind};
use crate::token::{
    later, ManagedOptions, Stats, Token, TokenHook, TokenSource, Version, MAX_LIFETIME,
};
use driver::{drive, DriverAlive};
use flight::{Ahead, Core, Current, Decision};

type Flight = future::Shared<BoxFuture<'static, Result<Arc<Stamped>, Error>>>;

/// See [`TokenManager::cache`].
pub(crate) type TokenCache = arc_swap::Cache<Arc<ArcSwapOption<Stamped>>, Option<Arc<Stamped>>>;

/// How many of the latest `Authorization` values the guard recognises: a
/// redirect hop may carry a value stamped just before a refresh.
const RECENT_VALUES: usize = 8;

// `Stamped::state` values.
const FRESH: u8 = 0;
/// The driver that would retire this token is gone: check the clock.
const UNWATCHED: u8 = 1;
const RETIRED: u8 = 2;

/// A token with its header value computed, as the hot path reads it.
pub(crate) struct Stamped {
    pub(crate) authorization: HeaderValue,
    pub(crate) generation: u64,
    /// The shared store's version of this token (None: no store, or fetched
    /// or kept without it).
    store_version: Option<Version>,
    state: AtomicU8,
    token: Arc<Token>,
    refresh_at: Option<Instant>,
    stale_at: Option<Instant>,
}

impl Stamped {
    /// Usable without any further check: not retired, and watched by a driver.
    #[inline]
    pub(crate) fn is_fresh(&self) -> bool {
        self.state.load(Ordering::Acquire) == FRESH
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.state.load(Ordering::Acquire) == RETIRED
    }

    fn retire(&self) {
        self.state.store(RETIRED, Ordering::Release);
    }

    pub(crate) fn token(&self) -> &Arc<Token> {
        &self.token
    }
}

pub(crate) struct TokenManager {
    // In its own `Arc` so each `AuthService` can keep an `arc_swap::Cache` of it.
    current: Arc<ArcSwapOption<Stamped>>,
    state: Mutex<State>,
    source: Arc<dyn TokenSource>,
    options: ManagedOptions,
    shared: Option<Shared>,
    on_change: Option<TokenHook>,
    /// Names the credential in every span and event (never a secret).
    name: Arc<str>,
    changed: Arc<Notify>,
    counters: Counters,
    /// The DPoP key the tokens are bound to, if the source has one.
    #[cfg(feature = "jose")]
    dpop: Option<crate::jose::Dpop>,
}

#[derive(Default)]
struct Counters {
    token_requests: AtomicU64,
    token_failures: AtomicU64,
    tokens_fetched: AtomicU64,
    coalesced_waiters: AtomicU64,
    retries_on_401: AtomicU64,
    refreshes_ahead: AtomicU64,
    dpop_nonce_retries: AtomicU64,
}

#[derive(Default)]
struct State {
    core: Core<Flight>,
    driver_alive: bool,
    /// The latest `Authorization` values, newest last (see [`RECENT_VALUES`]).
    recent: VecDeque<HeaderValue>,
}

impl TokenManager {
    pub(crate) fn new(
        source: Arc<dyn TokenSource>,
        options: ManagedOptions,
        shared: Option<Shared>,
        on_change: Option<TokenHook>,
        name: Arc<str>,
    ) -> Arc<Self> {
        #[cfg(feature = "jose")]
        let dpop = source.dpop();
        Arc::new(TokenManager {
            current: Arc::new(ArcSwapOption::empty()),
            state: Mutex::new(State::default()),
            source,
            options,
            shared,
            on_change,
            name,
            changed: Arc::new(Notify::new()),
            counters: Counters::default(),
            #[cfg(feature = "jose")]
            dpop,
        })
    }

    /// A per-service view of the current token: its `load` is one relaxed atomic
    /// load and a pointer compare while the token is unchanged (no refcount, no
    /// fence), which keeps the hot path as cheap as a static header.
    pub(crate) fn cache(&self) -> TokenCache {
        arc_swap::Cache::new(Arc::clone(&self.current))
    }

    /// The credential's name in spans and events.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether the source asks for a token that the API's refusal says
    /// would do (see [`TokenSource::step_up`]).
    pub(crate) fn step_up(&self, status: http::StatusCode, headers: &http::HeaderMap) -> bool {
        self.source.step_up(status, headers)
    }

    /// Shows the source a 401 the layer is about to retry (see
    /// [`TokenSource::unauthorized`]).
    pub(crate) fn unauthorized(&self, uri: &http::Uri, headers: &http::HeaderMap) {
        self.source.unauthorized(uri, headers);
    }

    /// The DPoP key of this credential's tokens.
    #[cfg(feature = "jose")]
    #[inline]
    pub(crate) fn dpop(&self) -> Option<&crate::jose::Dpop> {
        self.dpop.as_ref()
    }

    pub(crate) fn count_dpop_nonce_retry(&self) {
        self.counters
            .dpop_nonce_retries
            .fetch_add(1, Ordering::Relaxed);
        telemetry::dpop_nonce_retry(&self.name);
    }

    pub(crate) fn count_retry(&self) {
        self.counters.retries_on_401.fetch_add(1, Ordering::Relaxed);
        telemetry::retry_on_401(&self.name);
    }

    pub(crate) fn stats(&self) -> Stats {
        let current = self.current.load();
        let c = &self.counters;
        Stats {
            token_requests: c.token_requests.load(Ordering::Relaxed),
            token_failures: c.token_failures.load(Ordering::Relaxed),
            tokens_fetched: c.tokens_fetched.load(Ordering::Relaxed),
            coalesced_waiters: c.coalesced_waiters.load(Ordering::Relaxed),
            retries_on_401: c.retries_on_401.load(Ordering::Relaxed),
            refreshes_ahead: c.refreshes_ahead.load(Ordering::Relaxed),
            dpop_nonce_retries: c.dpop_nonce_retries.load(Ordering::Relaxed),
            generation: current.as_ref().map_or(0, |s| s.generation),
            expires_at: current.as_ref().and_then(|s| s.token.expires_at()),
        }
    }

    /// The current token's strong count, not counting the one this call takes.
    #[cfg(test)]
    pub(crate) fn current_strong_count(&self) -> Option<usize> {
        self.current.load_full().map(|c| Arc::strong_count(&c) - 1)
    }

    #[cfg(test)]
    pub(crate) fn current_authorization(&self) -> Option<HeaderValue> {
        self.current.load_full().map(|c| c.authorization.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only plain fields behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `value` is an `Authorization` value this manager stamped lately.
    pub(crate) fn issued(&self, value: &HeaderValue) -> bool {
        self.lock().recent.iter().any(|v| v == value)
    }

    /// Retires the current token: the next request fetches a new one.
    pub(crate) fn invalidate(&self) {
        let state = self.lock();
        if let Some(cur) = self.current.load_full() {
            cur.retire();
            tracing::debug!(credential = %self.name, generation = cur.generation, "token invalidated");
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Ends a backoff or cool-down now.
    pub(crate) fn end_cooldown(&self) {
        self.lock().core.reset_gate();
        if let Some(shared) = &self.shared {
            shared.end_cooldown();
        }
        tracing::debug!(credential = %self.name, "cool-down ended early");
    }

    /// A token that is usable right now, without waiting: the fresh current one,
    /// or an unwatched one that the clock says is still valid (its driver is
    /// restarted on the caller's runtime if there is one).
    pub(crate) fn usable_now(self: &Arc<Self>) -> Option<Arc<Stamped>> {
        let current = self.current.load_full()?;
        if current.is_fresh() {
            return Some(current);
        }
        let mut state = self.lock();
        let spawn = self.check_unwatched(&mut state, &current, Instant::now());
        drop(state);
        self.spawn_driver(spawn);
        (!current.is_retired()).then_some(current)
    }

    /// An unwatched token: retire it if the clock says so, else hand it back to a
    /// new driver when one can be started. Returns the runtime to start it on.
    fn check_unwatched(
        self: &Arc<Self>,
        state: &mut State,
        cur: &Stamped,
        now: Instant,
    ) -> Option<tokio::runtime::Handle> {
        if cur.state.load(Ordering::Acquire) != UNWATCHED {
            return None;
        }
        if cur.stale_at.is_some_and(|at| now >= at) {
            cur.retire();
            tracing::debug!(credential = %self.name, generation = cur.generation, "token retired at expiry");
            return None;
        }
        let handle = self.claim_driver(state)?;
        let _ = cur
            .state
            .compare_exchange(UNWATCHED, FRESH, Ordering::AcqRel, Ordering::Acquire);
        Some(handle)
    }

    /// Marks the driver as alive if it is not and a runtime is at hand: the caller
    /// spawns it with [`spawn_driver`](Self::spawn_driver) after unlocking.
    fn claim_driver(&self, state: &mut State) -> Option<tokio::runtime::Handle> {
        if state.driver_alive {
            return None;
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        state.driver_alive = true;
        Some(handle)
    }

    /// Spawns the driver; never under the lock (a runtime that is shutting down
    /// drops the task at once, and its guard takes the lock).
    fn spawn_driver(self: &Arc<Self>, on: Option<tokio::runtime::Handle>) {
        if let Some(handle) = on {
            let alive = DriverAlive(Arc::downgrade(self));
            handle.spawn(drive(Arc::downgrade(self), self.changed.clone(), alive));
        }
    }

    /// A valid token, fetching one if needed. With `failed = Some(g)`, the caller got
    /// a 401 with generation `g`: a token newer than `g` is returned if there is one,
    /// otherwise `g` is marked stale and a refresh is started or joined.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        failed: Option<u64>,
    ) -> BoxFuture<'static, Result<Arc<Stamped>, Error>> {
        let mut state = self.lock();
        let current = self.current.load_full();
        let now = Instant::now();
        let driver = match &current {
            Some(cur) => self.check_unwatched(&mut state, cur, now),
            None => None,
        };
        let previous = current.clone();
        let view = current.as_ref().map(|c| {
            let view = Current {
                generation: c.generation,
                stale: c.is_retired(),
            };
            (view, c.clone())
        });
        let (mark_stale, decision) = state
            .core
            .acquire(view, failed, now, |id| self.spawn_flight(id, previous));
        if mark_stale {
            if let Some(cur) = &current {
                cur.retire();
            }
        }
        drop(state);
        self.spawn_driver(driver);
        match decision {
            Decision::UseCurrent(cur) => Box::pin(async move { Ok(cur) }),
            Decision::Join(flight) => {
                self.counters
                    .coalesced_waiters
                    .fetch_add(1, Ordering::Relaxed);
                telemetry::coalesced_waiter(&self.name);
                Box::pin(flight)
            }
            Decision::Start(flight) => Box::pin(flight),
            Decision::Fail(err) => Box::pin(async move { Err(err) }),
        }
    }

    /// Runs token request `id` in its own task, so that no waiter's cancellation
    /// can stop it, and returns the handle waiters share. Fails without a Tokio
    /// runtime to run it on.
    fn spawn_flight(
        self: &Arc<Self>,
        id: u64,
        previous: Option<Arc<Stamped>>,
    ) -> Result<Flight, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::no_runtime())?;
        let span = tracing::debug_span!("token_request", credential = %self.name, flight = id);
        let task = runtime.spawn(Arc::clone(self).run_flight(id, previous).instrument(span));
        let weak = Arc::downgrade(self);
        let flight = async move {
            match task.await {
                Ok(result) => result,
                Err(join) => {
                    // The source panicked or the runtime is shutting down: free the
                    // slot so later requests can try again.
                    if let Some(m) = weak.upgrade() {
                        m.lock().core.abandoned(id);
                        m.changed.notify_waiters();
                    }
                    Err(Error::with_source(
                        Kind::Source { permanent: false },
                        if join.is_panic() {
                            "token source panicked"
                        } else {
                            "token request cancelled (runtime shutting down)"
                        },
                    ))
                }
            }
        };
        Ok(flight.boxed().shared())
    }

    async fn run_flight(
        self: Arc<Self>,
        id: u64,
        previous: Option<Arc<Stamped>>,
    ) -> Result<Arc<Stamped>, Error> {
        let started = Instant::now();
        let mut attempt = 0u32;
        let held = previous.as_ref().and_then(|p| p.store_version);
        let previous = previous.map(|p| p.token.clone());
        loop {
            attempt += 1;
            self.counters.token_requests.fetch_add(1, Ordering::Relaxed);
            let result = match &self.shared {
                None => self
                    .source
                    .fetch(previous.as_deref())
                    .await
                    .map(|t| (t, None, true)),
                Some(shared) => shared
                    .fetch(&*self.source, previous.as_deref(), held, |t| {
                        self.adoptable(t)
                    })
                    .await
                    .map(|f| (f.token, f.version, f.fetched_here)),
            };
            let result = result.and_then(|(token, store_version, here)| {
                let stamped = self.stamp(token, previous.as_deref(), store_version)?;
                if here {
                    self.counters.tokens_fetched.fetch_add(1, Ordering::Relaxed);
                }
                if let (true, Some(hook)) = (here, &self.on_change) {
                    // Before the new token replaces the old one. A hook that
                    // panics must not cost the token it was shown.
                    let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        hook(&stamped.token)
                    }));
                    if shown.is_err() {
                        tracing::error!(credential = %self.name, "token-change hook panicked");
                    }
                }
                Ok(stamped)
            });
            telemetry::token_request(&self.name, result.as_ref().map(|_| ()));
            match result {
                Ok(stamped) => {
                    telemetry::token_flight(&self.name, Ok(()), started.elapsed());
                    telemetry::token_installed(
                        &self.name,
                        stamped
                            .token
                            .expires_at()
                            .map(|at| at.saturating_duration_since(Instant::now())),
                    );
                    let stamped = self.install(id, stamped);
                    tracing::debug!(
                        credential = %self.name,
                        generation = stamped.generation,
                        attempts = attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "token fetched"
                    );
                    return Ok(stamped);
                }
                Err(e) => {
                    self.counters.token_failures.fetch_add(1, Ordering::Relaxed);
                    // A server that asks for more than our longest backoff would park
                    // every waiter that long: fail them now and hold the gate instead.
                    let wait_too_long = e
                        .retry_after()
                        .is_some_and(|r| r > self.options.backoff_max);
                    // "Log in again" is transient for the gate (another replica
                    // may store a login) but not worth asking again at once.
                    if e.is_transient()
                        && !e.is_login_required()
                        && attempt < self.options.max_attempts
                        && !wait_too_long
                    {
                        let delay =
                            self.lock()
                                .core
                                .backoff(&self.options, attempt, e.retry_after());
                        tracing::debug!(credential = %self.name, attempt, delay_ms = delay.as_millis() as u64, error = %e, "token request failed, retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    self.record_failure(id, &e);
                    telemetry::token_flight(&self.name, Err(&e), started.elapsed());
                    if !e.is_transient() {
                        telemetry::cooldown(&self.name);
                    }
                    tracing::warn!(
                        credential = %self.name,
                        attempts = attempt,
                        transient = e.is_transient(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        error = %e,
                        "token request failed"
                    );
                    return Err(e);
                }
            }
        }
    }

    /// Whether a token another process stored is worth using rather than
    /// fetching: not about to be retired.
    fn adoptable(&self, token: &Token) -> bool {
        match token.expires_in {
            Some(left) => left > self.options.max_expiry_margin.min(left / 2) && !left.is_zero(),
            None => true,
        }
    }

    fn stamp(
        &self,
        mut token: Token,
        previous: Option<&Token>,
        store_version: Option<Version>,
    ) -> Result<Stamped, Error> {
        // A refresh response without a refresh token keeps the old one (RFC 6749 §6).
        if token.refresh_token.is_none() {
            token.refresh_token = previous.and_then(|p| p.refresh_token.clone());
        }
        // A lifetime that rounds to zero says as little as none: a server's `0`
        // must not make every request refresh.
        if token.expires_in.is_some_and(|d| d.is_zero()) {
            token.expires_in = None;
        }
        if token.expires_in.is_none() && self.options.jwt_expiry {
            token.expires_in = self.jwt_lifetime(&token)?;
        }
        if token.expires_in.is_none() {
            token.expires_in = self.options.default_lifetime;
        }
        token.expires_in = token.expires_in.map(|d| d.min(MAX_LIFETIME));
        let scheme = if token.token_type.eq_ignore_ascii_case("bearer") {
            "Bearer"
        } else if token.token_type.eq_ignore_ascii_case("dpop") && self.has_dpop() {
            "DPoP"
        } else {
            return Err(Error::unsupported_token_type(&token.token_type));
        };
        let secret = token.access_token.expose_secret();
        if secret.is_empty() {
            return Err(Error::invalid_response("empty access_token"));
        }
        let mut authorization = HeaderValue::try_from(format!("{scheme} {secret}"))
            .map_err(|_| Error::invalid_response("access token is not a valid header value"))?;
        authorization.set_sensitive(true);
        let (refresh_at, stale_at) = match token.expires_in {
            Some(lifetime) => {
                let (r, s) = self.options.schedule(lifetime);
                (
                    Some(later(token.received_at, r)),
                    Some(later(token.received_at, s)),
                )
            }
            None => (None, None),
        };
        Ok(Stamped {
            authorization,
            generation: 0,
            store_version,
            state: AtomicU8::new(FRESH),
            token: Arc::new(token),
            refresh_at,
            stale_at,
        })
    }

    /// The lifetime an access token that is a JWT gives itself, capped by
    /// the default lifetime (see [`ManagedOptions::jwt_expiry`]).
    fn jwt_lifetime(&self, token: &Token) -> Result<Option<std::time::Duration>, Error> {
        use crate::token::jwt::{lifetime, JwtLifetime};
        let secret = token.access_token.expose_secret();
        match lifetime(secret, std::time::SystemTime::now()) {
            JwtLifetime::Unknown => Ok(None),
            JwtLifetime::Expired => Err(Error::invalid_response(
                "the access token's `exp` has already passed",
            )),
            JwtLifetime::Left(left) => Ok(Some(match self.options.default_lifetime {
                Some(cap) => left.min(cap),
                None => left,
            })),
        }
    }

    /// The token held now, if any.
    #[cfg(feature = "users")]
    pub(crate) fn current_token(&self) -> Option<Arc<Token>> {
        self.current.load_full().map(|c| c.token.clone())
    }

    /// Revokes the current token through the source and drops it here.
    /// Nothing held: nothing to revoke.
    pub(crate) fn revoke(&self) -> BoxFuture<'static, Result<(), Error>> {
        let Some(current) = self.current.load_full() else {
            return Box::pin(async { Ok(()) });
        };
        let revoked = self.source.revoke(&current.token);
        self.invalidate();
        revoked
    }

    fn has_dpop(&self) -> bool {
        #[cfg(feature = "jose")]
        return self.dpop.is_some();
        #[cfg(not(feature = "jose"))]
        false
    }

    fn install(self: &Arc<Self>, id: u64, mut stamped: Stamped) -> Arc<Stamped> {
        let mut state = self.lock();
        stamped.generation = state.core.succeeded(id);
        let stamped = Arc::new(stamped);
        if state.recent.len() == RECENT_VALUES {
            state.recent.pop_front();
        }
        state.recent.push_back(stamped.authorization.clone());
        // A token that expires needs a driver; one is started on this runtime if
        // none is alive. A token without expiry needs none.
        let driver = if stamped.stale_at.is_some() {
            self.claim_driver(&mut state)
        } else {
            None
        };
        if stamped.stale_at.is_some() && !state.driver_alive {
            // No runtime to watch it (cannot happen inside a flight task, which runs
            // on one): requests check the clock themselves.
            stamped.state.store(UNWATCHED, Ordering::Release);
        }
        // Store under the lock: a request that finds no flight finds the new token.
        self.current.store(Some(stamped.clone()));
        drop(state);
        self.spawn_driver(driver);
        self.changed.notify_waiters();
        stamped
    }

    fn record_failure(&self, id: u64, e: &Error) {
        // With a shared store, the fleet's cool-down record decides how long.
        let gate = self.shared.as_ref().and_then(|s| s.gate_after_failure(e));
        let mut state = self.lock();
        state
            .core
            .failed(id, e, Instant::now(), &self.options, gate);
        drop(state);
        self.changed.notify_waiters();
    }

    /// Starts a background refresh unless one runs or the backoff forbids it.
    fn refresh_ahead(self: &Arc<Self>, generation: u64) -> Ahead {
        let mut state = self.lock();
        let current = self.current.load_full();
        let view = current.as_ref().map(|c| Current {
            generation: c.generation,
            stale: c.is_retired(),
        });
        let previous = current;
        let ahead = state
            .core
            .refresh_due(view, generation, Instant::now(), |id| {
                self.spawn_flight(id, previous)
            });
        if ahead == Ahead::Running(true) {
            self.counters
                .refreshes_ahead
                .fetch_add(1, Ordering::Relaxed);
            telemetry::refresh_ahead(&self.name);
            tracing::debug!(credential = %self.name, generation, "refreshing token ahead of expiry");
        }
        ahead
    }
}

impl Drop for TokenManager {
    fn drop(&mut self) {
        // Wake the driver so that it sees the manager gone and ends now, not at
        // its next deadline (never, for a token without expiry).
        self.changed.notify_waiters();
    }
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("name", &self.name)
            .field("stats", &self.stats())
            .field("options", &self.options)
            .finish()
    }
}
