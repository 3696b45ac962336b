//! The single-flight decisions, as a plain state machine.
//!
//! Every change to which token request is in flight, to the generation counter
//! and to the backoff/cool-down gate goes through [`Core`], under the manager's
//! one lock. Keeping it free of I/O, tasks and clocks lets the test at the bottom
//! of this file explore every interleaving of requests, 401s, token request
//! outcomes, refresh-ahead and retirement, and check that nothing wedges and that
//! at most one token request is ever in flight.

use std::time::Duration;

use tokio::time::Instant;

use super::ManagedOptions;
use crate::error::{Error, Kind};

/// The current token as the decisions need it: generation and whether retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Current {
    pub(crate) generation: u64,
    pub(crate) stale: bool,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Core {
    /// The id of the token request in flight, if any.
    flight: Option<u64>,
    flights_started: u64,
    generation: u64,
    /// No new token request before this instant (backoff or cool-down).
    not_before: Option<Instant>,
    last_error: Option<Error>,
    consecutive_failures: u32,
    consecutive_permanent: u32,
}

/// What a request that needs a token does.
#[derive(Debug)]
pub(crate) enum Decision {
    /// The current token is good: use it.
    UseCurrent,
    /// Wait for the token request in flight (its id).
    Join(#[allow(dead_code)] u64),
    /// Start token request `id` and wait for it.
    Start(u64),
    /// Fail now: within backoff or cool-down after this error.
    Fail(Error),
}

/// What the background driver does when a refresh ahead is due.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ahead {
    /// A token request is in flight (maybe just started: `Some(id)`).
    Running(Option<u64>),
    /// Backing off until then.
    NotBefore(Instant),
}

impl Core {
    pub(crate) fn flight(&self) -> Option<u64> {
        self.flight
    }

    /// A request needs a token. `failed` is the generation that just got a 401.
    /// Returns whether the current token must now be marked stale, and what to do.
    pub(crate) fn acquire(
        &mut self,
        current: Option<Current>,
        failed: Option<u64>,
        now: Instant,
    ) -> (bool, Decision) {
        let mut mark_stale = false;
        if let Some(cur) = current {
            let rejected = failed.is_some_and(|g| cur.generation <= g);
            mark_stale = rejected && !cur.stale;
            if !cur.stale && !rejected {
                return (false, Decision::UseCurrent);
            }
        }
        if let Some(id) = self.flight {
            return (mark_stale, Decision::Join(id));
        }
        if let (Some(nb), Some(err)) = (self.not_before, &self.last_error) {
            if now < nb {
                let err = if err.is_transient() {
                    err.clone()
                } else {
                    Error::new(Kind::CoolingDown {
                        cause: Box::new(err.clone()),
                    })
                };
                return (mark_stale, Decision::Fail(err));
            }
        }
        (mark_stale, Decision::Start(self.start()))
    }

    /// A refresh ahead of expiry is due for the token of generation `generation`.
    pub(crate) fn refresh_due(
        &mut self,
        current: Option<Current>,
        generation: u64,
        now: Instant,
    ) -> Ahead {
        if self.flight.is_some() {
            return Ahead::Running(None);
        }
        if let Some(nb) = self.not_before {
            if now < nb {
                return Ahead::NotBefore(nb);
            }
        }
        match current {
            Some(cur) if cur.generation == generation && !cur.stale => {
                Ahead::Running(Some(self.start()))
            }
            _ => Ahead::Running(None),
        }
    }

    fn start(&mut self) -> u64 {
        debug_assert!(self.flight.is_none(), "one token request at a time");
        self.flights_started += 1;
        self.flight = Some(self.flights_started);
        self.flights_started
    }

    /// Token request `id` succeeded: returns the new token's generation.
    pub(crate) fn succeeded(&mut self, id: u64) -> u64 {
        debug_assert_eq!(self.flight, Some(id));
        self.flight = None;
        self.generation += 1;
        self.not_before = None;
        self.last_error = None;
        self.consecutive_failures = 0;
        self.consecutive_permanent = 0;
        self.generation
    }

    /// Token request `id` failed for good (after its own retries): sets the
    /// backoff (transient) or cool-down (permanent) gate.
    pub(crate) fn failed(&mut self, id: u64, err: &Error, now: Instant, options: &ManagedOptions) {
        debug_assert_eq!(self.flight, Some(id));
        self.flight = None;
        self.consecutive_failures += 1;
        let delay = if err.is_transient() {
            self.consecutive_permanent = 0;
            backoff(options, self.consecutive_failures, err.retry_after())
        } else {
            self.consecutive_permanent += 1;
            let doublings = self.consecutive_permanent.saturating_sub(1).min(20);
            options
                .cooldown
                .saturating_mul(1 << doublings)
                .min(options.max_cooldown)
        };
        self.not_before = Some(now + delay);
        self.last_error = Some(err.clone());
    }

    /// Token request `id` ended without an outcome (its task panicked or was
    /// cancelled by runtime shutdown): free the slot.
    pub(crate) fn abandoned(&mut self, id: u64) {
        if self.flight == Some(id) {
            self.flight = None;
        }
    }
}

/// Exponential backoff with jitter in its upper half, at least `retry_after`.
pub(crate) fn backoff(
    options: &ManagedOptions,
    attempt: u32,
    retry_after: Option<Duration>,
) -> Duration {
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
    use std::sync::atomic::{AtomicU64, Ordering};
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

/// Exhaustive interleaving check of the single-flight protocol.
///
/// A small world: three requests, an API that rejects generation 1 with 401,
/// a token endpoint whose each request may succeed, fail transiently or fail
/// permanently, the driver's refresh-ahead and retirement, a clock that can jump
/// past the backoff gate, and requests that may be cancelled while waiting. A
/// depth-first search runs every order of these events (memoised on the world
/// state) through the real `Core`, and checks in every reachable state:
///
/// * at most one token request is in flight, and `Core` agrees on which;
/// * no request waits on a token request that is not in flight (no wedge);
/// * no request is sent with a retired token or a generation it saw rejected;
/// * each request is re-sent at most once after a 401;
/// * without failures, all 401s on one generation cause at most one refresh;
/// * in every final state, every request has finished.
#[cfg(test)]
mod model {
    use std::collections::HashSet;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum Req {
        Idle,
        Waiting { flight: u64, retried: bool },
        Sent { generation: u64, retried: bool },
        Done,
        Cancelled,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    enum Outcome {
        Ok,
        Transient,
        Permanent,
    }

    #[derive(Clone)]
    struct World {
        core: Core,
        /// The token request really running (the model's truth, not `Core`'s).
        running: Option<u64>,
        current: Option<Current>,
        reqs: Vec<Req>,
        failures_left: u32,
        retires_left: u32,
        ahead_left: u32,
        ticks_left: u32,
        cancels_left: u32,
        now: Instant,
        /// Refreshes started because of a 401 on each generation (index).
        refreshes_for_401: Vec<u32>,
        any_failure: bool,
    }

    impl World {
        fn key(&self, base: Instant) -> String {
            format!(
                "{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{}{}{}{}{}|{:?}",
                self.running,
                self.core.flight,
                self.core.generation,
                self.core.not_before.map(|t| t - base),
                self.core
                    .last_error
                    .as_ref()
                    .map_or(0, |e| 1 + e.is_transient() as u8),
                self.current,
                self.reqs,
                self.failures_left,
                self.retires_left,
                self.ahead_left,
                self.ticks_left,
                self.cancels_left,
                self.now - base,
            )
        }

        fn check(&self) {
            let waiting: Vec<u64> = self
                .reqs
                .iter()
                .filter_map(|r| match r {
                    Req::Waiting { flight, .. } => Some(*flight),
                    _ => None,
                })
                .collect();
            assert_eq!(
                self.core.flight, self.running,
                "Core's flight is not the running one"
            );
            for f in &waiting {
                assert_eq!(
                    Some(*f),
                    self.running,
                    "a request waits on a dead flight: {self:?}"
                );
            }
            if !self.any_failure {
                for (g, n) in self.refreshes_for_401.iter().enumerate() {
                    assert!(*n <= 1, "{n} refreshes for 401s on generation {g}");
                }
            }
        }

        /// The API rejects generation 1 only.
        fn rejects(generation: u64) -> bool {
            generation == 1
        }

        /// A request decides with the real `Core`; returns the new request state.
        fn acquire(&mut self, failed: Option<u64>, retried: bool) -> Req {
            let (mark, decision) = self.core.acquire(self.current, failed, self.now);
            if mark {
                let cur = self
                    .current
                    .as_mut()
                    .expect("mark only with a current token");
                cur.stale = true;
            }
            let next = match decision {
                Decision::UseCurrent => {
                    let cur = self.current.expect("use current only if there is one");
                    assert!(!cur.stale, "sent with a retired token");
                    if let Some(g) = failed {
                        assert!(cur.generation > g, "re-sent with the rejected generation");
                    }
                    Req::Sent {
                        generation: cur.generation,
                        retried,
                    }
                }
                Decision::Join(id) => Req::Waiting {
                    flight: id,
                    retried,
                },
                Decision::Start(id) => {
                    assert!(self.running.is_none(), "second token request in flight");
                    self.running = Some(id);
                    // A refresh counts against the 401 only if the rejected token
                    // was still the newest; a newer one retired meanwhile is expiry.
                    let newest_rejected = self
                        .current
                        .is_none_or(|c| c.generation <= failed.unwrap_or(0));
                    if let Some(g) = failed.filter(|_| newest_rejected) {
                        let g = g as usize;
                        if self.refreshes_for_401.len() <= g {
                            self.refreshes_for_401.resize(g + 1, 0);
                        }
                        self.refreshes_for_401[g] += 1;
                    }
                    Req::Waiting {
                        flight: id,
                        retried,
                    }
                }
                Decision::Fail(_) => Req::Done,
            };
            next
        }

        fn successors(&self) -> Vec<World> {
            let mut out = Vec::new();
            for i in 0..self.reqs.len() {
                match self.reqs[i].clone() {
                    Req::Idle => {
                        let mut w = self.clone();
                        w.reqs[i] = w.acquire(None, false);
                        out.push(w);
                    }
                    Req::Sent {
                        generation,
                        retried,
                    } => {
                        let mut w = self.clone();
                        w.reqs[i] = if World::rejects(generation) && !retried {
                            w.acquire(Some(generation), true)
                        } else {
                            Req::Done
                        };
                        out.push(w);
                    }
                    Req::Waiting { .. } if self.cancels_left > 0 => {
                        let mut w = self.clone();
                        w.cancels_left -= 1;
                        w.reqs[i] = Req::Cancelled;
                        out.push(w);
                    }
                    _ => {}
                }
            }
            if let Some(id) = self.running {
                let outcomes: &[Outcome] = if self.failures_left > 0 {
                    &[Outcome::Ok, Outcome::Transient, Outcome::Permanent]
                } else {
                    &[Outcome::Ok]
                };
                for outcome in outcomes {
                    let mut w = self.clone();
                    w.running = None;
                    match outcome {
                        Outcome::Ok => {
                            let generation = w.core.succeeded(id);
                            w.current = Some(Current {
                                generation,
                                stale: false,
                            });
                            for r in &mut w.reqs {
                                if let Req::Waiting { flight, retried } = *r {
                                    assert_eq!(flight, id);
                                    *r = Req::Sent {
                                        generation,
                                        retried,
                                    };
                                }
                            }
                        }
                        Outcome::Transient | Outcome::Permanent => {
                            w.failures_left -= 1;
                            w.any_failure = true;
                            let err = if *outcome == Outcome::Transient {
                                Error::from_source("down")
                            } else {
                                Error::permanent("wrong password")
                            };
                            w.core.failed(id, &err, w.now, &ManagedOptions::default());
                            for r in &mut w.reqs {
                                if matches!(r, Req::Waiting { .. }) {
                                    *r = Req::Done;
                                }
                            }
                        }
                    }
                    out.push(w);
                }
            }
            if let Some(cur) = self.current {
                if !cur.stale && self.retires_left > 0 {
                    let mut w = self.clone();
                    w.retires_left -= 1;
                    w.current = Some(Current { stale: true, ..cur });
                    out.push(w);
                }
                if !cur.stale && self.ahead_left > 0 {
                    let mut w = self.clone();
                    w.ahead_left -= 1;
                    let current = w.current;
                    if let Ahead::Running(Some(id)) =
                        w.core.refresh_due(current, cur.generation, w.now)
                    {
                        assert!(w.running.is_none(), "second token request in flight");
                        w.running = Some(id);
                    }
                    out.push(w);
                }
            }
            if self.ticks_left > 0 && self.core.not_before.is_some_and(|nb| nb > self.now) {
                let mut w = self.clone();
                w.ticks_left -= 1;
                w.now = self.core.not_before.unwrap_or(w.now) + Duration::from_millis(1);
                out.push(w);
            }
            out
        }
    }

    impl std::fmt::Debug for World {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "flight={:?} current={:?} reqs={:?}",
                self.core.flight, self.current, self.reqs
            )
        }
    }

    fn explore(start: World) -> (usize, usize) {
        let base = start.now;
        let mut seen = HashSet::new();
        let mut stack = vec![start];
        let mut finals = 0;
        while let Some(w) = stack.pop() {
            if !seen.insert(w.key(base)) {
                continue;
            }
            w.check();
            let next = w.successors();
            if next.is_empty() {
                finals += 1;
                assert!(
                    w.reqs
                        .iter()
                        .all(|r| matches!(r, Req::Done | Req::Cancelled)),
                    "stuck: {w:?}"
                );
                assert!(w.core.flight.is_none() && w.running.is_none());
            }
            stack.extend(next);
        }
        (seen.len(), finals)
    }

    fn world(requests: usize, failures: u32) -> World {
        World {
            core: Core::default(),
            running: None,
            current: None,
            reqs: vec![Req::Idle; requests],
            failures_left: failures,
            retires_left: 1,
            ahead_left: 1,
            ticks_left: 1,
            cancels_left: 1,
            now: Instant::now(),
            refreshes_for_401: Vec::new(),
            any_failure: false,
        }
    }

    #[test]
    fn every_interleaving_without_failures() {
        let (states, finals) = explore(world(3, 0));
        eprintln!("explored {states} states, {finals} final");
        assert!(states > 1_000, "explored {states} states");
        assert!(finals > 1);
    }

    #[test]
    fn every_interleaving_with_failures() {
        let (states, finals) = explore(world(3, 2));
        eprintln!("explored {states} states, {finals} final");
        assert!(states > 10_000, "explored {states} states");
    }
}
