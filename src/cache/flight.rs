//! The single-flight decisions, as a plain state machine.
//!
//! Every change to which token request is in flight, to the generation counter
//! and to the backoff/cool-down gate goes through [`Core`], under the manager's
//! one lock. `Core` alone owns the in-flight handle (generic, so the model check
//! below can use a plain id) and the jitter source (injected, like tower's
//! `retry::backoff`), and it reads no clock: the caller passes `now`. Keeping it
//! free of I/O, tasks and clocks lets the test at the bottom of this file explore
//! every interleaving of requests, 401s, token request outcomes, refresh-ahead,
//! retirement, cool-down resets and cancellation, deterministically.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Kind};
use crate::rng::{Jitter, SplitMix};
use crate::token::{later, ManagedOptions};

/// The current token as the decisions need it: generation and whether retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Current {
    pub(crate) generation: u64,
    pub(crate) stale: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Core<F, J = SplitMix> {
    /// The token request in flight, if any: its id and the handle waiters share.
    flight: Option<(u64, F)>,
    flights_started: u64,
    generation: u64,
    /// No new token request before this instant (backoff or cool-down).
    not_before: Option<Instant>,
    last_error: Option<Error>,
    consecutive_failures: u32,
    consecutive_permanent: u32,
    jitter: J,
}

impl<F, J: Default> Default for Core<F, J> {
    fn default() -> Self {
        Core {
            flight: None,
            flights_started: 0,
            generation: 0,
            not_before: None,
            last_error: None,
            consecutive_failures: 0,
            consecutive_permanent: 0,
            jitter: J::default(),
        }
    }
}

/// What a request that needs a token does. `C` is the caller's current token,
/// `F` the shared handle of a token request.
#[derive(Debug)]
pub(crate) enum Decision<C, F> {
    /// The current token is good: use it.
    UseCurrent(C),
    /// Wait for the token request in flight.
    Join(F),
    /// A token request was just started: wait for it.
    Start(F),
    /// Fail now: within backoff or cool-down after this error, or the request
    /// could not be started.
    Fail(Error),
}

/// What the background driver does when a refresh ahead is due.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ahead {
    /// A token request is in flight (`true`: just started by this call).
    Running(bool),
    /// Backing off until then.
    NotBefore(Instant),
}

impl<F: Clone, J: Jitter> Core<F, J> {
    #[cfg(test)]
    pub(crate) fn with_jitter(jitter: J) -> Self {
        Core {
            flight: None,
            flights_started: 0,
            generation: 0,
            not_before: None,
            last_error: None,
            consecutive_failures: 0,
            consecutive_permanent: 0,
            jitter,
        }
    }

    /// The id of the token request in flight.
    pub(crate) fn flight_id(&self) -> Option<u64> {
        self.flight.as_ref().map(|(id, _)| *id)
    }

    /// A request needs a token. `failed` is the generation that just got a 401.
    /// `start` makes the handle of a new token request from its id (it may fail,
    /// for example without a runtime to run it on). Returns whether the current
    /// token must now be marked stale, and what to do.
    pub(crate) fn acquire<C>(
        &mut self,
        current: Option<(Current, C)>,
        failed: Option<u64>,
        now: Instant,
        start: impl FnOnce(u64) -> Result<F, Error>,
    ) -> (bool, Decision<C, F>) {
        let mut mark_stale = false;
        if let Some((cur, c)) = current {
            let rejected = failed.is_some_and(|g| cur.generation <= g);
            mark_stale = rejected && !cur.stale;
            if !cur.stale && !rejected {
                return (false, Decision::UseCurrent(c));
            }
        }
        if let Some((_, handle)) = &self.flight {
            return (mark_stale, Decision::Join(handle.clone()));
        }
        if let (Some(nb), Some(err)) = (self.not_before, &self.last_error) {
            if now < nb {
                // A cool-down error (the fleet's, from the store) is already
                // what to say.
                let err = if err.is_transient() || err.is_cooling_down() {
                    err.clone()
                } else {
                    Error::new(Kind::CoolingDown {
                        cause: Box::new(err.clone()),
                        left: Some(nb.saturating_duration_since(now)),
                    })
                };
                return (mark_stale, Decision::Fail(err));
            }
        }
        match self.start(start) {
            Ok(handle) => (mark_stale, Decision::Start(handle)),
            Err(e) => (mark_stale, Decision::Fail(e)),
        }
    }

    /// A refresh ahead of expiry is due for the token of generation `generation`.
    pub(crate) fn refresh_due(
        &mut self,
        current: Option<Current>,
        generation: u64,
        now: Instant,
        start: impl FnOnce(u64) -> Result<F, Error>,
    ) -> Ahead {
        if self.flight.is_some() {
            return Ahead::Running(false);
        }
        if let Some(nb) = self.not_before {
            if now < nb {
                return Ahead::NotBefore(nb);
            }
        }
        match current {
            Some(cur) if cur.generation == generation && !cur.stale => {
                Ahead::Running(self.start(start).is_ok())
            }
            _ => Ahead::Running(false),
        }
    }

    fn start(&mut self, start: impl FnOnce(u64) -> Result<F, Error>) -> Result<F, Error> {
        debug_assert!(self.flight.is_none(), "one token request at a time");
        let id = self.flights_started + 1;
        let handle = start(id)?;
        self.flights_started = id;
        self.flight = Some((id, handle.clone()));
        Ok(handle)
    }

    /// Token request `id` succeeded: returns the new token's generation.
    pub(crate) fn succeeded(&mut self, id: u64) -> u64 {
        debug_assert_eq!(self.flight_id(), Some(id));
        self.flight = None;
        self.generation += 1;
        self.reset_gate();
        self.generation
    }

    /// Token request `id` failed for good (after its own retries): sets the
    /// backoff (transient) or cool-down (permanent) gate.
    ///
    /// `gate` overrides the delay: the fleet's cool-down, which a shared store
    /// keeps for every process.
    pub(crate) fn failed(
        &mut self,
        id: u64,
        err: &Error,
        now: Instant,
        options: &ManagedOptions,
        gate: Option<Duration>,
    ) {
        debug_assert_eq!(self.flight_id(), Some(id));
        self.flight = None;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let delay = if let Some(gate) = gate {
            gate
        } else if err.is_transient() {
            self.consecutive_permanent = 0;
            let attempt = self.consecutive_failures;
            self.backoff(options, attempt, err.retry_after())
        } else {
            self.consecutive_permanent = self.consecutive_permanent.saturating_add(1);
            let doublings = self.consecutive_permanent.saturating_sub(1).min(20);
            options
                .cooldown
                .saturating_mul(1 << doublings)
                .min(options.max_cooldown)
        };
        self.not_before = Some(later(now, delay));
        self.last_error = Some(err.clone());
    }

    /// Token request `id` ended without an outcome (its task panicked or was
    /// cancelled by runtime shutdown): free the slot.
    pub(crate) fn abandoned(&mut self, id: u64) {
        if self.flight_id() == Some(id) {
            self.flight = None;
        }
    }

    /// Ends any backoff or cool-down now (an operator fixed the credentials).
    pub(crate) fn reset_gate(&mut self) {
        self.not_before = None;
        self.last_error = None;
        self.consecutive_failures = 0;
        self.consecutive_permanent = 0;
    }

    /// Exponential backoff with jitter in its upper half, at least `retry_after`
    /// (itself at most the longest cool-down).
    pub(crate) fn backoff(
        &mut self,
        options: &ManagedOptions,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        let exp = options
            .backoff_base
            .saturating_mul(1 << attempt.saturating_sub(1).min(20))
            .min(options.backoff_max);
        let unit = self.jitter.next_unit().clamp(0.0, 1.0);
        let jittered = exp / 2 + exp.mul_f64(unit / 2.0);
        match retry_after {
            Some(r) => jittered.max(r.min(options.max_cooldown)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let o = ManagedOptions::default();
        let mut core: Core<()> = Core::default();
        for attempt in 1..30 {
            let d = core.backoff(&o, attempt, None);
            let exp = o
                .backoff_base
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(o.backoff_max);
            assert!(d >= exp / 2 && d <= exp, "{attempt}: {d:?}");
        }
        let d = core.backoff(&o, 1, Some(Duration::from_secs(7)));
        assert_eq!(d, Duration::from_secs(7));
    }

    /// A fixed jitter makes the backoff exact: the shape tower's own tests use.
    #[test]
    fn injected_jitter_is_deterministic() {
        struct Half;
        impl Jitter for Half {
            fn next_unit(&mut self) -> f64 {
                0.5
            }
        }
        let o = ManagedOptions::default();
        let mut core: Core<(), Half> = Core::with_jitter(Half);
        // 200 ms base: 100 ms + 200 ms * 0.25 = 150 ms.
        assert_eq!(core.backoff(&o, 1, None), Duration::from_millis(150));
        assert_eq!(core.backoff(&o, 2, None), Duration::from_millis(300));
    }

    #[test]
    fn extreme_delays_saturate() {
        let o = ManagedOptions::default().cooldown(Duration::MAX, Duration::MAX);
        let mut core: Core<()> = Core::default();
        let now = Instant::now();
        let (_, d) = core.acquire::<()>(None, None, now, |_| Ok(()));
        assert!(matches!(d, Decision::Start(())));
        core.failed(1, &Error::permanent("wrong password"), now, &o, None);
        let (_, d) =
            core.acquire::<()>(None, None, later(now, Duration::from_secs(86_400)), |_| {
                Ok(())
            });
        assert!(matches!(d, Decision::Fail(e) if e.is_cooling_down()));
        let huge = Error::new(Kind::Status(
            http::StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(u64::MAX)),
        ));
        core.reset_gate();
        let _ = core.acquire::<()>(None, None, now, |_| Ok(()));
        core.failed(2, &huge, now, &o, None);
        assert!(core.not_before.is_some());
    }
}

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

    /// The model's jitter: fixed, so that every run explores the same states.
    #[derive(Debug, Clone, Default)]
    struct Fixed;

    impl Jitter for Fixed {
        fn next_unit(&mut self) -> f64 {
            0.5
        }
    }

    #[derive(Clone)]
    struct World {
        core: Core<u64, Fixed>,
        /// The token request really running (the model's truth, not `Core`'s).
        running: Option<u64>,
        current: Option<Current>,
        reqs: Vec<Req>,
        failures_left: u32,
        retires_left: u32,
        ahead_left: u32,
        ticks_left: u32,
        cancels_left: u32,
        resets_left: u32,
        now: Instant,
        /// Refreshes started because of a 401 on each generation (index).
        refreshes_for_401: Vec<u32>,
        any_failure: bool,
    }

    impl World {
        fn key(&self, base: Instant) -> String {
            format!(
                "{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{}{}{}{}{}{}|{:?}",
                self.running,
                self.core.flight_id(),
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
                self.resets_left,
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
                self.core.flight_id(),
                self.running,
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
            let current = self.current.map(|c| (c, c));
            let (mark, decision) = self.core.acquire(current, failed, self.now, Ok);
            if mark {
                let cur = self
                    .current
                    .as_mut()
                    .expect("mark only with a current token");
                cur.stale = true;
            }
            let next = match decision {
                Decision::UseCurrent(cur) => {
                    assert_eq!(Some(cur), self.current, "used a token that is not current");
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
                    assert_eq!(self.core.flight_id(), Some(id));
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
                            w.core
                                .failed(id, &err, w.now, &ManagedOptions::default(), None);
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
                    if let Ahead::Running(true) =
                        w.core.refresh_due(current, cur.generation, w.now, Ok)
                    {
                        assert!(w.running.is_none(), "second token request in flight");
                        w.running = w.core.flight_id();
                    }
                    out.push(w);
                }
            }
            // An operator ends a cool-down early (`Credential::end_cooldown`).
            if self.resets_left > 0 && self.core.not_before.is_some() {
                let mut w = self.clone();
                w.resets_left -= 1;
                w.core.reset_gate();
                out.push(w);
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
                self.core.flight_id(),
                self.current,
                self.reqs
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
                assert!(w.core.flight_id().is_none() && w.running.is_none());
            }
            stack.extend(next);
        }
        (seen.len(), finals)
    }

    fn world(requests: usize, failures: u32) -> World {
        World {
            core: Core::with_jitter(Fixed),
            running: None,
            current: None,
            reqs: vec![Req::Idle; requests],
            failures_left: failures,
            retires_left: 1,
            ahead_left: 1,
            ticks_left: 1,
            cancels_left: 1,
            resets_left: 1,
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
