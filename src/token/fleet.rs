//! The cross-process single flight, as plain decisions.
//!
//! Several processes share one credential through a [`TokenStore`]: an entry
//! (a token and its *store generation*, which only grows) and a lease. A process
//! that needs a token (none yet, expiry, refresh ahead, or a 401 on the
//! generation it holds) runs this protocol:
//!
//! 1. **Read** the entry. A usable token of a newer generation than the one it
//!    holds was fetched by someone else: adopt it, no token request.
//! 2. Otherwise **take the lease** (`SET NX PX` with an owner token). Not taken:
//!    someone else is fetching; **wait** for the change notification (or the
//!    poll interval) and read again.
//! 3. Lease taken: **read again**: someone may have written between 1 and 2.
//!    Newer and usable: adopt it and release the lease.
//! 4. Otherwise **fetch** from the token source, starting from the stored token
//!    (its refresh token is the latest), while a watchdog renews the lease; the
//!    request's timeout is shorter than the lease.
//! 5. **Write with compare-and-set** on the generation read in 3 (fencing: a
//!    holder whose lease expired cannot overwrite a newer token), notify, and
//!    release the lease with compare-and-delete. If the write lost, adopt what
//!    is stored.
//!
//! A user's refresh token that the provider rejects is marked in the store by
//! the lease holder ("log in again", a compare-and-set on the generation it
//! refreshed from), so no process sends it again, and a login written meanwhile
//! is not overwritten.
//!
//! The functions here decide each step from what the store said; `shared.rs`
//! does the I/O. The test at the bottom explores every interleaving of three
//! processes, a provider that revokes a token when it issues the next one
//! (Altrata) and rotates refresh tokens with reuse detection, lease expiry while
//! a holder stalls, a holder that crashes, a user logging in meanwhile, and a
//! rejected refresh token, and checks the invariants.
//!
//! [`TokenStore`]: super::TokenStore

/// The stored entry as the decisions need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Stored {
    pub(crate) generation: u64,
    /// Not expired (by the reader's clock and margin).
    pub(crate) usable: bool,
}

/// What to do after reading the entry, holding store generation `held`
/// (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterRead {
    /// Someone else fetched a newer token: use it.
    Adopt,
    /// Nothing newer: take the lease (step 2) or, lease held, fetch (step 4)
    /// starting from the stored generation `base` (0: none stored).
    Fetch { base: u64 },
}

/// Steps 1 and 3: adopt a newer usable token, or go on.
pub(crate) fn after_read(stored: Option<Stored>, held: u64) -> AfterRead {
    match stored {
        Some(s) if s.generation > held && s.usable => AfterRead::Adopt,
        Some(s) => AfterRead::Fetch { base: s.generation },
        None => AfterRead::Fetch { base: 0 },
    }
}

/// Step 5: the generation a fetch started from `base` is written as.
pub(crate) fn next_generation(base: u64) -> u64 {
    base.saturating_add(1)
}

#[cfg(test)]
mod model {
    use std::collections::HashSet;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum P {
        /// Needs a token: about to read (step 1).
        Read,
        /// Step 2.
        Lease,
        /// Lease not taken: waiting for a change or the lease to go.
        Waiting,
        /// Step 3.
        Reread,
        /// Step 4 under way: the provider has answered with token `issued`
        /// (already revoking older ones), not yet written.
        Fetched {
            base: u64,
            issued: u64,
        },
        Done,
        Crashed,
        /// The user's refresh token was rejected: "log in again".
        LoginRequired,
    }

    #[derive(Clone)]
    struct World {
        procs: Vec<P>,
        held: Vec<u64>,
        /// Store: generation and the provider token stored under it.
        store_gen: u64,
        store_token: u64,
        /// Lease owner, if any.
        lease: Option<usize>,
        /// Provider: tokens issued (ids 1..), the valid one (a new token revokes
        /// the others), refresh tokens used per base generation.
        issued: u64,
        valid: u64,
        refresh_uses: Vec<u32>,
        expiries_left: u32,
        crashes_left: u32,
        /// A user logs in meanwhile (`Users::login`): a new token and refresh
        /// token written by compare-and-set, outside the lease.
        logins_left: u32,
        /// Tokens fetched and then fenced out (their write lost), and whether a
        /// login happened: only a login may cause that without a fault.
        discarded: u64,
        logged_in: bool,
        /// The provider revoked the refresh token stored under this generation
        /// (a user who revoked the app); the store holds a "log in again" mark.
        dead_base: Option<u64>,
        store_tombstone: bool,
        /// "Log in again" marks written (each takes a generation).
        marks: u64,
        /// A fault (lease expiry, crash) happened: one-token-per-need no longer
        /// has to hold, fencing still does.
        faulted: bool,
    }

    impl World {
        fn key(&self) -> String {
            format!(
                "{:?}|{:?}|{}|{}|{:?}|{}|{}|{:?}|{}{}{}{}",
                self.procs,
                self.held,
                self.store_gen,
                self.store_token,
                self.lease,
                self.issued,
                self.valid,
                self.refresh_uses,
                self.expiries_left,
                self.crashes_left,
                self.logins_left,
                self.faulted
            ) + &format!(
                "|{}{}{:?}{}{}",
                self.discarded, self.logged_in, self.dead_base, self.store_tombstone, self.marks
            )
        }

        fn stored(&self) -> Option<Stored> {
            (self.store_gen > 0).then_some(Stored {
                generation: self.store_gen,
                // Usable unless the provider revoked it (a 401 would say so; the
                // model lets readers know, as expiry would).
                usable: self.store_token == self.valid,
            })
        }

        fn adopt(&mut self, i: usize) {
            self.held[i] = self.store_gen;
            self.procs[i] = P::Done;
        }

        fn check(&self) {
            // Fencing: the store only ever holds a token fetched from the
            // generation below it, so its generation counts successful writes.
            assert!(
                self.store_gen <= self.issued + self.marks,
                "more writes than tokens"
            );
            if !self.faulted {
                // One token per need: every token issued got stored.
                let in_flight = self
                    .procs
                    .iter()
                    .filter(|p| matches!(p, P::Fetched { .. }))
                    .count() as u64;
                assert!(in_flight <= 1, "two token requests at once");
                assert_eq!(
                    self.issued,
                    self.store_gen - self.marks + in_flight + self.discarded,
                    "a token was wasted"
                );
                assert!(
                    self.discarded == 0 || self.logged_in,
                    "a write lost without a login"
                );
                // No refresh token sent twice.
                assert!(
                    self.refresh_uses.iter().all(|&n| n <= 1),
                    "refresh token reused"
                );
            }
        }

        fn successors(&self) -> Vec<World> {
            let mut out = Vec::new();
            for i in 0..self.procs.len() {
                let mut w = self.clone();
                match self.procs[i].clone() {
                    P::Read if w.store_tombstone => {
                        // The mark decodes as "log in again": no lease, no request.
                        w.procs[i] = P::LoginRequired;
                        out.push(w);
                    }
                    P::Read => {
                        match after_read(w.stored(), w.held[i]) {
                            AfterRead::Adopt => w.adopt(i),
                            AfterRead::Fetch { .. } => w.procs[i] = P::Lease,
                        }
                        out.push(w);
                    }
                    P::Lease => {
                        if w.lease.is_none() {
                            w.lease = Some(i);
                            w.procs[i] = P::Reread;
                        } else {
                            w.procs[i] = P::Waiting;
                        }
                        out.push(w);
                    }
                    P::Waiting => {
                        // Woken by a change notification, or by polling once the
                        // lease is gone.
                        if w.lease.is_none() || w.store_gen > w.held[i] {
                            w.procs[i] = P::Read;
                            out.push(w);
                        }
                    }
                    P::Reread if w.store_tombstone => {
                        w.procs[i] = P::LoginRequired;
                        if w.lease == Some(i) {
                            w.lease = None;
                        }
                        out.push(w);
                    }
                    P::Reread => {
                        match after_read(w.stored(), w.held[i]) {
                            AfterRead::Adopt => {
                                w.adopt(i);
                                if w.lease == Some(i) {
                                    w.lease = None;
                                }
                            }
                            AfterRead::Fetch { base } => {
                                // The token request, with the refresh token stored
                                // under `base`; the provider issues a new token
                                // and revokes the others.
                                let b = base as usize;
                                if w.refresh_uses.len() <= b {
                                    w.refresh_uses.resize(b + 1, 0);
                                }
                                w.refresh_uses[b] += 1;
                                if w.dead_base == Some(base) {
                                    // Rejected: mark the user by compare-and-set
                                    // on `base`, still under the lease.
                                    if w.store_gen == base {
                                        w.store_gen = next_generation(base);
                                        w.store_tombstone = true;
                                        w.marks += 1;
                                    }
                                    w.lease = None;
                                    w.procs[i] = P::LoginRequired;
                                    out.push(w);
                                    continue;
                                }
                                w.issued += 1;
                                w.valid = w.issued;
                                w.procs[i] = P::Fetched {
                                    base,
                                    issued: w.issued,
                                };
                            }
                        }
                        out.push(w);
                    }
                    P::Fetched { base, issued } => {
                        // Compare-and-set on `base`, then release (compare-and-delete).
                        if w.store_gen == base {
                            w.store_gen = next_generation(base);
                            w.store_token = issued;
                            w.held[i] = w.store_gen;
                            w.procs[i] = P::Done;
                        } else {
                            // Fenced out: adopt what is stored.
                            w.discarded += 1;
                            w.procs[i] = P::Read;
                        }
                        if w.lease == Some(i) {
                            w.lease = None;
                        }
                        out.push(w.clone());
                        if self.crashes_left > 0 {
                            // Crashes after the provider answered, before writing.
                            let mut c = self.clone();
                            c.crashes_left -= 1;
                            c.faulted = true;
                            c.procs[i] = P::Crashed;
                            out.push(c);
                        }
                    }
                    P::Done | P::Crashed | P::LoginRequired => {}
                }
            }
            if self.logins_left > 0 {
                // The code exchange issues a token; `login` writes it on top of
                // whatever is stored (its compare-and-set retries until it wins).
                let mut w = self.clone();
                w.logins_left -= 1;
                w.logged_in = true;
                w.store_tombstone = false;
                w.issued += 1;
                w.valid = w.issued;
                w.store_gen = next_generation(w.store_gen);
                w.store_token = w.issued;
                out.push(w);
            }
            // The lease expires while its holder stalls (or after it crashed).
            if let Some(owner) = self.lease {
                let stalled = matches!(self.procs[owner], P::Fetched { .. } | P::Crashed);
                if stalled && (self.expiries_left > 0 || self.procs[owner] == P::Crashed) {
                    let mut w = self.clone();
                    if w.procs[owner] != P::Crashed {
                        w.expiries_left -= 1;
                    }
                    w.faulted = true;
                    w.lease = None;
                    out.push(w);
                }
            }
            out
        }
    }

    /// Every process needs a token: none held yet (`held` 0, empty store), or
    /// all got a 401 on the stored generation 1, which an outside party revoked.
    fn explore(procs: usize, start_gen: u64, expiries: u32, crashes: u32) -> usize {
        explore_with(procs, start_gen, expiries, crashes, 0, false)
    }

    fn explore_with(
        procs: usize,
        start_gen: u64,
        expiries: u32,
        crashes: u32,
        logins: u32,
        rejected: bool,
    ) -> usize {
        let start = World {
            procs: vec![P::Read; procs],
            held: vec![start_gen; procs],
            store_gen: start_gen,
            store_token: start_gen,
            lease: None,
            issued: start_gen,
            // An outside token request revoked the stored one.
            valid: start_gen + 100,
            refresh_uses: Vec::new(),
            expiries_left: expiries,
            crashes_left: crashes,
            logins_left: logins,
            discarded: 0,
            logged_in: false,
            dead_base: rejected.then_some(start_gen),
            store_tombstone: false,
            marks: 0,
            faulted: false,
        };
        let mut seen = HashSet::new();
        let mut stack = vec![start];
        while let Some(w) = stack.pop() {
            if !seen.insert(w.key()) {
                continue;
            }
            w.check();
            let next = w.successors();
            if next.is_empty() {
                // Nobody is stuck, and everyone alive holds the stored token.
                for (i, p) in w.procs.iter().enumerate() {
                    match p {
                        // After a fault a process may end with a token that a
                        // later one revoked: its next 401 brings it back here.
                        // A login after a process finished replaces its token
                        // too: its next 401 brings it back here.
                        P::Done if !w.faulted && !w.logged_in => {
                            assert_eq!(w.held[i], w.store_gen, "stale at the end")
                        }
                        P::Done => {}
                        P::Crashed => {}
                        P::LoginRequired => assert!(
                            w.dead_base.is_some(),
                            "log in again without a rejected refresh token"
                        ),
                        other => panic!("stuck in {other:?}"),
                    }
                }
                assert!(w.lease.is_none() || w.procs.contains(&P::Crashed));
                if !w.faulted && logins == 0 && !rejected {
                    assert_eq!(w.issued, start_gen + 1, "one token for the fleet");
                }
                if rejected && logins == 0 && !w.faulted {
                    // Nobody got a token; the dead one was sent exactly once.
                    assert_eq!(w.issued, start_gen);
                    assert_eq!(w.refresh_uses.get(start_gen as usize), Some(&1));
                    assert!(w.procs.iter().all(|p| *p == P::LoginRequired));
                }
            }
            stack.extend(next);
        }
        seen.len()
    }

    #[test]
    fn every_interleaving_of_three_processes_without_faults() {
        assert!(explore(3, 0, 0, 0) > 100);
        assert!(explore(3, 1, 0, 0) > 100);
    }

    /// Per-user entries: a user logs in again while the fleet refreshes their
    /// token. Whoever refreshes from the old refresh token loses its write and
    /// adopts the login's token; no refresh token is used twice.
    #[test]
    fn every_interleaving_with_a_login_during_refreshes() {
        let states = explore_with(3, 1, 0, 0, 1, false) + explore_with(3, 0, 1, 1, 1, false);
        eprintln!("explored {states} states");
        assert!(states > 500);
    }

    /// The stored refresh token was revoked at the provider: exactly one process
    /// sends it (and is told "log in again"), marks the user under the lease,
    /// and every other process reads the mark and sends nothing; a login brings
    /// the user back.
    #[test]
    fn every_interleaving_with_a_rejected_refresh_token() {
        let states = explore_with(3, 1, 0, 0, 0, true) + explore_with(3, 1, 0, 0, 1, true);
        eprintln!("explored {states} states");
        assert!(states > 100);
    }

    #[test]
    fn every_interleaving_with_lease_expiry_and_a_crash() {
        let states = explore(3, 1, 1, 1) + explore(3, 0, 1, 1);
        eprintln!("explored {states} states");
        assert!(states > 1_000);
    }
}
