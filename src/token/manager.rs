//! The token cache: one current token per credential, single-flight refresh,
//! refresh ahead, backoff and cool-down.
//!
//! Design:
//!
//! * `current` is an `ArcSwapOption<Stamped>`: the hot path reads it through a
//!   per-service `arc_swap::Cache` (a relaxed load and a pointer compare, no
//!   lock, no allocation, no refcount) and checks one atomic flag (`stale`). No clock is read per
//!   request: a background driver task marks the token stale at its retirement
//!   time and starts the refresh-ahead, so expiry costs nothing on the hot path.
//! * Everything else (starting or joining a token request, recording failures)
//!   happens under one `std::sync::Mutex`, held only for a few field updates and
//!   never across an `.await`.
//! * A token request runs in its own spawned task; requests wait on a `Shared`
//!   handle to it. Dropping the request that started it drops only that waiter.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use arc_swap::ArcSwapOption;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::HeaderValue;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::Instrument;

use super::core::{backoff, Ahead, Core, Current, Decision};
use super::{ManagedOptions, Stats, Token, TokenSource};
use crate::error::{Error, Kind};

type Flight = Shared<BoxFuture<'static, Result<Arc<Stamped>, Error>>>;

/// See [`TokenManager::cache`].
pub(crate) type TokenCache = arc_swap::Cache<Arc<ArcSwapOption<Stamped>>, Option<Arc<Stamped>>>;

/// A token with its header value computed, as the hot path reads it.
pub(crate) struct Stamped {
    pub(crate) authorization: HeaderValue,
    pub(crate) generation: u64,
    stale: AtomicBool,
    token: Arc<Token>,
    refresh_at: Option<Instant>,
    stale_at: Option<Instant>,
}

impl Stamped {
    #[inline]
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
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
    changed: Arc<Notify>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    token_requests: AtomicU64,
    token_failures: AtomicU64,
    coalesced_waiters: AtomicU64,
    retries_on_401: AtomicU64,
    refreshes_ahead: AtomicU64,
}

#[derive(Default)]
struct State {
    core: Core,
    /// The shared handle of the token request `core` says is in flight.
    flight: Option<Flight>,
    driver_started: bool,
}

impl TokenManager {
    pub(crate) fn new(source: Arc<dyn TokenSource>, options: ManagedOptions) -> Arc<Self> {
        Arc::new(TokenManager {
            current: Arc::new(ArcSwapOption::empty()),
            state: Mutex::new(State::default()),
            source,
            options,
            changed: Arc::new(Notify::new()),
            counters: Counters::default(),
        })
    }

    /// A per-service view of the current token: its `load` is one relaxed atomic
    /// load and a pointer compare while the token is unchanged (no refcount, no
    /// fence), which keeps the hot path as cheap as a static header.
    pub(crate) fn cache(&self) -> TokenCache {
        arc_swap::Cache::new(Arc::clone(&self.current))
    }

    pub(crate) fn count_retry(&self) {
        self.counters.retries_on_401.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> Stats {
        let current = self.current.load();
        let c = &self.counters;
        Stats {
            token_requests: c.token_requests.load(Ordering::Relaxed),
            token_failures: c.token_failures.load(Ordering::Relaxed),
            coalesced_waiters: c.coalesced_waiters.load(Ordering::Relaxed),
            retries_on_401: c.retries_on_401.load(Ordering::Relaxed),
            refreshes_ahead: c.refreshes_ahead.load(Ordering::Relaxed),
            generation: current.as_ref().map_or(0, |s| s.generation),
            expires_at: current.as_ref().and_then(|s| s.token.expires_at()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only plain fields behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
        let view = current.as_ref().map(|c| Current {
            generation: c.generation,
            stale: c.is_stale(),
        });
        let (mark_stale, decision) = state.core.acquire(view, failed, Instant::now());
        if mark_stale {
            if let Some(cur) = &current {
                cur.stale.store(true, Ordering::Release);
            }
        }
        match decision {
            Decision::UseCurrent => match current {
                Some(cur) => Box::pin(async move { Ok(cur) }),
                None => unreachable_token(),
            },
            Decision::Join(_) => {
                self.counters
                    .coalesced_waiters
                    .fetch_add(1, Ordering::Relaxed);
                match &state.flight {
                    Some(flight) => Box::pin(flight.clone()),
                    None => unreachable_token(),
                }
            }
            Decision::Fail(err) => Box::pin(async move { Err(err) }),
            Decision::Start(id) => {
                let flight = self.spawn_flight(id, current.map(|s| s.token.clone()));
                state.flight = Some(flight.clone());
                Box::pin(flight)
            }
        }
    }

    /// Runs token request `id` in its own task, so that no waiter's cancellation
    /// can stop it, and returns the handle waiters share.
    fn spawn_flight(self: &Arc<Self>, id: u64, previous: Option<Arc<Token>>) -> Flight {
        let span = tracing::debug_span!("token_request", flight = id);
        let task = tokio::spawn(Arc::clone(self).run_flight(id, previous).instrument(span));
        let weak = Arc::downgrade(self);
        async move {
            match task.await {
                Ok(result) => result,
                Err(join) => {
                    // The source panicked or the runtime is shutting down: free the
                    // slot so later requests can try again.
                    if let Some(m) = weak.upgrade() {
                        let mut state = m.lock();
                        state.core.abandoned(id);
                        if state.core.flight().is_none() {
                            state.flight = None;
                        }
                        drop(state);
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
        }
        .boxed()
        .shared()
    }

    async fn run_flight(
        self: Arc<Self>,
        id: u64,
        previous: Option<Arc<Token>>,
    ) -> Result<Arc<Stamped>, Error> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.counters.token_requests.fetch_add(1, Ordering::Relaxed);
            let result = self.source.fetch(previous.as_deref()).await;
            let result = result.and_then(|token| self.stamp(token, previous.as_deref()));
            match result {
                Ok(stamped) => {
                    let stamped = self.install(id, stamped);
                    tracing::debug!(
                        generation = stamped.generation,
                        attempts = attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "token fetched"
                    );
                    return Ok(stamped);
                }
                Err(e) => {
                    self.counters.token_failures.fetch_add(1, Ordering::Relaxed);
                    if e.is_transient() && attempt < self.options.max_attempts {
                        let delay = backoff(&self.options, attempt, e.retry_after());
                        tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, error = %e, "token request failed, retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    self.record_failure(id, &e);
                    tracing::warn!(
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

    fn stamp(&self, mut token: Token, previous: Option<&Token>) -> Result<Stamped, Error> {
        // A refresh response without a refresh token keeps the old one (RFC 6749 §6).
        if token.refresh_token.is_none() {
            token.refresh_token = previous.and_then(|p| p.refresh_token.clone());
        }
        if token.expires_in.is_none() {
            token.expires_in = self.options.default_lifetime;
        }
        let secret = token.access_token.expose_secret();
        if secret.is_empty() {
            return Err(Error::invalid_response("empty access_token"));
        }
        let mut authorization =
            HeaderValue::try_from(format!("{} {}", token.token_type, secret))
                .map_err(|_| Error::invalid_response("access token is not a valid header value"))?;
        authorization.set_sensitive(true);
        let (refresh_at, stale_at) = match token.expires_in {
            Some(lifetime) => {
                let (r, s) = self.options.schedule(lifetime);
                (Some(token.received_at + r), Some(token.received_at + s))
            }
            None => (None, None),
        };
        Ok(Stamped {
            authorization,
            generation: 0,
            stale: AtomicBool::new(false),
            token: Arc::new(token),
            refresh_at,
            stale_at,
        })
    }

    fn install(self: &Arc<Self>, id: u64, mut stamped: Stamped) -> Arc<Stamped> {
        let mut state = self.lock();
        stamped.generation = state.core.succeeded(id);
        let stamped = Arc::new(stamped);
        // Store before clearing the flight, under the lock: a request that finds no
        // flight finds the new token.
        self.current.store(Some(stamped.clone()));
        state.flight = None;
        let start_driver = !state.driver_started;
        state.driver_started = true;
        drop(state);
        if start_driver {
            tokio::spawn(drive(Arc::downgrade(self), self.changed.clone()));
        }
        self.changed.notify_waiters();
        stamped
    }

    fn record_failure(&self, id: u64, e: &Error) {
        let mut state = self.lock();
        state.core.failed(id, e, Instant::now(), &self.options);
        state.flight = None;
        drop(state);
        self.changed.notify_waiters();
    }

    /// Starts a background refresh unless one runs or the backoff forbids it.
    fn refresh_ahead(self: &Arc<Self>, generation: u64) -> Ahead {
        let mut state = self.lock();
        let current = self.current.load_full();
        let view = current.as_ref().map(|c| Current {
            generation: c.generation,
            stale: c.is_stale(),
        });
        let ahead = state.core.refresh_due(view, generation, Instant::now());
        if let Ahead::Running(Some(id)) = ahead {
            self.counters
                .refreshes_ahead
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(generation, "refreshing token ahead of expiry");
            let flight = self.spawn_flight(id, current.map(|c| c.token.clone()));
            state.flight = Some(flight);
        }
        ahead
    }
}

fn unreachable_token() -> BoxFuture<'static, Result<Arc<Stamped>, Error>> {
    // `Core` answers UseCurrent only with a current token and Join only with a
    // flight; fail softly rather than panic if that ever breaks.
    debug_assert!(false, "token core and manager disagree");
    Box::pin(async { Err(Error::new(Kind::NoToken)) })
}

/// The background task of one credential: refreshes ahead and retires the token
/// at its time. Holds only a weak reference, so it ends with the credential.
async fn drive(manager: Weak<TokenManager>, changed: Arc<Notify>) {
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let wake = {
            let Some(m) = manager.upgrade() else { return };
            let current = m.current.load_full();
            let now = Instant::now();
            match current {
                Some(cur) if !cur.is_stale() => match (cur.refresh_at, cur.stale_at) {
                    (Some(refresh_at), Some(stale_at)) => {
                        if now >= stale_at {
                            cur.stale.store(true, Ordering::Release);
                            tracing::debug!(generation = cur.generation, "token retired at expiry");
                            None
                        } else if now < refresh_at {
                            // With no refresh-ahead window, retirement comes first.
                            Some(refresh_at.min(stale_at))
                        } else {
                            match m.refresh_ahead(cur.generation) {
                                Ahead::Running(_) => Some(stale_at),
                                Ahead::NotBefore(nb) => Some(nb.min(stale_at)),
                            }
                        }
                    }
                    _ => None,
                },
                _ => None,
            }
        };
        match wake {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("stats", &self.stats())
            .field("options", &self.options)
            .finish()
    }
}
