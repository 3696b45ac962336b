//! The token cache: one current token per credential, single-flight refresh,
//! refresh ahead, backoff and cool-down.
//!
//! Design:
//!
//! * `current` is an `ArcSwapOption<Stamped>`: the hot path loads it without a lock
//!   or allocation and checks one atomic flag (`stale`). No clock is read per
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
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::HeaderValue;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{ManagedOptions, Stats, Token, TokenSource};
use crate::error::{Error, Kind};

type Flight = Shared<BoxFuture<'static, Result<Arc<Stamped>, Error>>>;

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
    current: ArcSwapOption<Stamped>,
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
    flight: Option<(u64, Flight)>,
    flights_started: u64,
    generation: u64,
    /// No new token request before this instant (backoff or cool-down).
    not_before: Option<Instant>,
    last_error: Option<Error>,
    consecutive_failures: u32,
    consecutive_permanent: u32,
    driver_started: bool,
}

/// What the driver found when a refresh ahead was due.
enum Ahead {
    Running,
    NotBefore(Instant),
}

impl TokenManager {
    pub(crate) fn new(source: Arc<dyn TokenSource>, options: ManagedOptions) -> Arc<Self> {
        Arc::new(TokenManager {
            current: ArcSwapOption::empty(),
            state: Mutex::new(State::default()),
            source,
            options,
            changed: Arc::new(Notify::new()),
            counters: Counters::default(),
        })
    }

    /// The current token, if there is one and it is not stale. Lock-free.
    #[inline]
    pub(crate) fn load_valid(&self) -> Option<arc_swap::Guard<Option<Arc<Stamped>>>> {
        let guard = self.current.load();
        match &*guard {
            Some(s) if !s.is_stale() => Some(guard),
            _ => None,
        }
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
        if let Some(cur) = &current {
            if let Some(g) = failed {
                if cur.generation <= g {
                    cur.stale.store(true, Ordering::Release);
                }
            }
            if !cur.is_stale() {
                let cur = cur.clone();
                return Box::pin(async move { Ok(cur) });
            }
        }
        if let Some((_, flight)) = &state.flight {
            self.counters
                .coalesced_waiters
                .fetch_add(1, Ordering::Relaxed);
            return Box::pin(flight.clone());
        }
        if let (Some(nb), Some(err)) = (state.not_before, &state.last_error) {
            if Instant::now() < nb {
                let err = if err.is_transient() {
                    err.clone()
                } else {
                    Error::new(Kind::CoolingDown {
                        cause: Box::new(err.clone()),
                    })
                };
                return Box::pin(async move { Err(err) });
            }
        }
        let flight = self.start_flight(&mut state, current.map(|s| s.token.clone()));
        Box::pin(flight)
    }

    fn start_flight(self: &Arc<Self>, state: &mut State, previous: Option<Arc<Token>>) -> Flight {
        state.flights_started += 1;
        let id = state.flights_started;
        let task = tokio::spawn(Arc::clone(self).run_flight(previous));
        let weak = Arc::downgrade(self);
        let flight = async move {
            match task.await {
                Ok(result) => result,
                Err(join) => {
                    // The source panicked or the runtime is shutting down: free the
                    // slot so later requests can try again.
                    if let Some(m) = weak.upgrade() {
                        let mut state = m.lock();
                        if matches!(state.flight, Some((fid, _)) if fid == id) {
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
        .shared();
        state.flight = Some((id, flight.clone()));
        flight
    }

    async fn run_flight(
        self: Arc<Self>,
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
                    let stamped = self.install(stamped);
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
                    self.record_failure(&e);
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

    fn install(self: &Arc<Self>, mut stamped: Stamped) -> Arc<Stamped> {
        let mut state = self.lock();
        state.generation += 1;
        stamped.generation = state.generation;
        let stamped = Arc::new(stamped);
        // Store before clearing the flight, under the lock: a request that finds no
        // flight finds the new token.
        self.current.store(Some(stamped.clone()));
        state.flight = None;
        state.not_before = None;
        state.last_error = None;
        state.consecutive_failures = 0;
        state.consecutive_permanent = 0;
        let start_driver = !state.driver_started;
        state.driver_started = true;
        drop(state);
        if start_driver {
            tokio::spawn(drive(Arc::downgrade(self), self.changed.clone()));
        }
        self.changed.notify_waiters();
        stamped
    }

    fn record_failure(&self, e: &Error) {
        let mut state = self.lock();
        let now = Instant::now();
        state.flight = None;
        state.consecutive_failures += 1;
        let delay = if e.is_transient() {
            state.consecutive_permanent = 0;
            backoff(&self.options, state.consecutive_failures, e.retry_after())
        } else {
            state.consecutive_permanent += 1;
            let doublings = state.consecutive_permanent.saturating_sub(1).min(20);
            self.options
                .cooldown
                .saturating_mul(1 << doublings)
                .min(self.options.max_cooldown)
        };
        state.not_before = Some(now + delay);
        state.last_error = Some(e.clone());
        drop(state);
        self.changed.notify_waiters();
    }

    /// Starts a background refresh unless one runs or the backoff forbids it.
    fn refresh_ahead(self: &Arc<Self>, generation: u64) -> Ahead {
        let mut state = self.lock();
        if state.flight.is_some() {
            return Ahead::Running;
        }
        if let Some(nb) = state.not_before {
            if Instant::now() < nb {
                return Ahead::NotBefore(nb);
            }
        }
        let current = self.current.load_full();
        match current {
            Some(cur) if cur.generation == generation => {
                self.counters
                    .refreshes_ahead
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(generation, "refreshing token ahead of expiry");
                let _flight = self.start_flight(&mut state, Some(cur.token.clone()));
            }
            _ => {}
        }
        Ahead::Running
    }
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
                                Ahead::Running => Some(stale_at),
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

/// Exponential backoff with full jitter in its upper half, at least `retry_after`.
fn backoff(options: &ManagedOptions, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = options
        .backoff_base
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(options.backoff_max);
    let jittered = exp / 2 + exp.mul_f64(jitter() / 2.0);
    match retry_after {
        Some(r) => jittered.max(r.min(options.max_cooldown)),
        None => jittered,
    }
}

/// A number in [0, 1) from a SplitMix64 sequence: good enough to spread retries,
/// with no dependency on a random-number crate.
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0));
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("stats", &self.stats())
            .field("options", &self.options)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let o = ManagedOptions::default();
        for attempt in 1..30 {
            let d = backoff(&o, attempt, None);
            let exp = o
                .backoff_base
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(o.backoff_max);
            assert!(d >= exp / 2 && d <= exp, "{attempt}: {d:?}");
        }
        let d = backoff(&o, 1, Some(Duration::from_secs(7)));
        assert_eq!(d, Duration::from_secs(7));
    }
}
