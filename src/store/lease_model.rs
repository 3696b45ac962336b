//! The fleet protocol, model-checked: every interleaving of three processes,
//! the store with its faults (a write that fails after the provider answered,
//! a holder stalled past its lease whose write arrives late, a crash, the store
//! wiped empty at any step), a provider that revokes a token when it issues the
//! next one and rotates refresh tokens (or refuses a wrong password), users
//! logging in meanwhile, and the fleet's cool-down. The decisions are the real
//! ones ([`after_read`], [`next_version`], [`is_newer`]); the model does the
//! I/O the way `shared.rs` does.
//!
//! Each rule the protocol relies on can be switched off ([`Rules`]); the
//! mutation tests at the bottom show that the invariants catch every one.

use super::lease::*;
use crate::token::Version;

/// Write attempts under the lease before the token is kept pending (two here:
/// the mechanism is the same as with `shared.rs`'s three, the state space smaller).
const WRITE_ATTEMPTS: u8 = 2;

/// The protocol's rules, each of which a mutation switches off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Rules {
    /// The write checks the lease's owner with the generation.
    fence: bool,
    /// Versions carry the store's incarnation (its epoch).
    epochs: bool,
    /// A fetched token that could not be written is kept and written later
    /// (and its holder keeps the lease meanwhile).
    keep_unwritten: bool,
    /// Permanent failures are recorded in the store for the whole fleet.
    fleet_cooldown: bool,
    /// An unwritten token is newer than a "log in again" mark.
    newer_than_mark: bool,
    /// A stored entry older than the one held is a rollback, never refreshed from.
    rollbacks_seen: bool,
}

const ALL_RULES: Rules = Rules {
    fence: true,
    epochs: true,
    keep_unwritten: true,
    fleet_cooldown: true,
    newer_than_mark: true,
    rollbacks_seen: true,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Content {
    /// A token (by id); its refresh token has the same id.
    Token(u64),
    /// "Log in again".
    Mark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Entry {
    version: Version,
    content: Content,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Provider {
    /// Each token issued revokes the others (Altrata); no refresh tokens.
    Revoking,
    /// Each token issued revokes the others (Altrata); refresh tokens rotate:
    /// one use each, a second use is a reuse (and is refused).
    Rotating,
    /// The refresh token of token `dead` was revoked (the user left the app).
    Rejects { dead: u64 },
    /// A wrong password: every request fails for good.
    WrongPassword,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    /// Needs a token: step 1.
    Read,
    /// Step 2.
    Lease,
    /// Lease not taken: waiting for a change or the lease to go.
    Waiting,
    /// Lease held: step 3 and, if so decided, the token request (step 4).
    Reread,
    /// Step 5: the provider answered with `token` (fetched on top of what was
    /// stored as `from`); writing it as `version` on top of generation `base`.
    Writing {
        base: u64,
        version: Version,
        token: u64,
        from: Option<Version>,
        tries: u8,
    },
    Done,
    Crashed,
    LoginRequired,
    /// Gated after a permanent failure; looks again later.
    CooledDown,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Proc {
    step: Step,
    /// The store version of the token in use (None: none, or not from the store).
    held: Option<Version>,
    /// The token in use.
    token: Option<u64>,
    /// A token fetched here and not stored yet, and what it was fetched from.
    pending: Option<(u64, Option<Version>)>,
    /// Epochs held before the one held now.
    retired: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct World {
    procs: Vec<Proc>,
    store: Option<Entry>,
    /// The entry before the last write: what a store that loses its last
    /// write (a failover to a lagging replica) comes back with.
    previous_entry: Option<Entry>,
    lease: Option<usize>,
    /// The fleet's cool-down record.
    cooldown: bool,
    next_epoch: u64,
    provider: Provider,
    /// Tokens issued so far (ids `1..=issued`).
    issued: u64,
    /// The one token the provider accepts (None: revoked by an outsider).
    valid: Option<u64>,
    /// The refresh token that works (by id).
    rt_live: Option<u64>,
    /// Uses per refresh token id.
    rt_uses: Vec<u8>,
    reuses: u32,
    /// Token requests made.
    attempts: u32,
    // Fault budgets.
    expiries: u8,
    crashes: u8,
    write_failures: u8,
    wipes: u8,
    rollbacks: u8,
    logins: u8,
    cooldown_ends: u8,
    // What happened.
    /// Leases that ran out under a stalled holder, or a crashed one.
    lease_faults: u32,
    wipes_done: u32,
    /// Rollbacks so far: each makes every process need a token again.
    rollbacks_done: u32,
    crashed: bool,
    /// Faults that hit a token request in flight (each may cost one token).
    faults_in_flight: u32,
    logged_in: bool,
    cooldowns_ended: u32,
    /// Tokens issued at the start (the need begins after them).
    start_issued: u64,
    rules: Rules,
}

impl World {
    fn start(procs: usize, provider: Provider, rules: Rules) -> World {
        World {
            procs: vec![
                Proc {
                    step: Step::Read,
                    held: None,
                    token: None,
                    pending: None,
                    retired: Vec::new(),
                };
                procs
            ],
            store: None,
            previous_entry: None,
            lease: None,
            cooldown: false,
            next_epoch: 1,
            provider,
            issued: 0,
            valid: None,
            rt_live: None,
            rt_uses: vec![0],
            reuses: 0,
            attempts: 0,
            expiries: 0,
            crashes: 0,
            write_failures: 0,
            wipes: 0,
            rollbacks: 0,
            logins: 0,
            cooldown_ends: 0,
            lease_faults: 0,
            wipes_done: 0,
            rollbacks_done: 0,
            crashed: false,
            faults_in_flight: 0,
            logged_in: false,
            cooldowns_ended: 0,
            start_issued: 0,
            rules,
        }
    }

    /// Everyone holds token 1, stored as generation 1, and got a 401 on it (an
    /// outsider revoked it); its refresh token still works.
    fn after_a_401(mut self) -> World {
        let v = self.fresh_version(1);
        self.store = Some(Entry {
            version: v,
            content: Content::Token(1),
        });
        self.issue();
        self.valid = None;
        self.start_issued = 1;
        for p in &mut self.procs {
            p.held = Some(v);
            p.token = Some(1);
        }
        self
    }

    /// The store came back empty: everyone holds token 1 of an older
    /// incarnation (generation 5), which just expired.
    fn after_an_empty_restart(mut self) -> World {
        self.next_epoch = 7;
        self.issue();
        self.valid = None;
        self.start_issued = 1;
        for p in &mut self.procs {
            p.held = Some(Version {
                epoch: if self.rules.epochs { 6 } else { 0 },
                generation: 5,
            });
            p.token = Some(1);
        }
        self
    }

    fn faults(mut self, expiries: u8, crashes: u8, write_failures: u8, wipes: u8) -> World {
        self.expiries = expiries;
        self.crashes = crashes;
        self.write_failures = write_failures;
        self.wipes = wipes;
        self
    }

    fn with_rollbacks(mut self, rollbacks: u8) -> World {
        self.rollbacks = rollbacks;
        self
    }

    fn with_logins(mut self, logins: u8) -> World {
        self.logins = logins;
        self
    }

    fn with_cooldown_ends(mut self, ends: u8) -> World {
        self.cooldown_ends = ends;
        self
    }

    /// Whether tokens carry refresh tokens (rotated ones are kept until stored).
    fn refresh_tokens(&self) -> bool {
        self.provider != Provider::Revoking
    }

    fn issue(&mut self) -> u64 {
        self.issued += 1;
        self.valid = Some(self.issued);
        self.rt_live = Some(self.issued);
        self.rt_uses.push(0);
        self.issued
    }

    /// The version a write on top of `view` gets (an epoch drawn if needed).
    fn next(&mut self, view: Option<Stored>) -> Version {
        let fresh = if self.rules.epochs {
            self.next_epoch
        } else {
            0
        };
        let v = next_version(view, fresh);
        if self.rules.epochs && v.epoch == fresh {
            self.next_epoch += 1;
        }
        v
    }

    fn fresh_version(&mut self, generation: u64) -> Version {
        let epoch = if self.rules.epochs {
            self.next_epoch
        } else {
            0
        };
        if self.rules.epochs {
            self.next_epoch += 1;
        }
        Version { epoch, generation }
    }

    fn view(&self) -> Option<Stored> {
        self.store.map(|e| Stored {
            version: e.version,
            holds: match e.content {
                Content::Token(t) => Holds::Token {
                    usable: Some(t) == self.valid,
                },
                Content::Mark => Holds::LoginRequired,
            },
        })
    }

    /// The decision, as the rules in force make it.
    fn decide(&self, view: Option<Stored>, held: Option<Version>, i: usize) -> AfterRead {
        let retired = &self.procs[i].retired;
        match after_read(view, held, self.pending_from(i), retired) {
            // Mutation: a rolled-back entry taken for the current one.
            AfterRead::RolledBack { base } if !self.rules.rollbacks_seen => {
                after_read(view, None, self.pending_from(i), &[]).or_fetch(base)
            }
            decision => decision,
        }
    }

    fn pending_from(&self, i: usize) -> Option<Option<Version>> {
        let from = self.procs[i].pending.map(|(_, from)| from)?;
        if !self.rules.newer_than_mark
            && matches!(self.store, Some(e) if e.content == Content::Mark)
        {
            return None;
        }
        Some(from)
    }

    fn release(&mut self, i: usize) {
        if self.lease == Some(i) {
            self.lease = None;
        }
    }

    /// The fenced compare-and-set.
    fn cas(&mut self, i: usize, base: u64, entry: Entry) -> bool {
        let current = self.store.map_or(0, |e| e.version.generation);
        let fenced_out = self.rules.fence && self.lease != Some(i);
        if current != base || fenced_out {
            return false;
        }
        self.previous_entry = self.store.replace(entry);
        true
    }

    fn in_flight(&self) -> bool {
        self.procs
            .iter()
            .any(|p| matches!(p.step, Step::Reread | Step::Writing { .. }) || p.pending.is_some())
    }

    fn check(&self) {
        // No refresh token sent twice, whatever the store did, unless a lease
        // ran out under its holder or the store lost everything mid-flight.
        // (A store that comes back empty has lost the rotated refresh token
        // unless every process had adopted it: a process holding an older one
        // may send it. Durable stores for refresh tokens; see RELIABILITY.md.)
        if self.lease_faults == 0 && self.faults_in_flight == 0 && self.wipes_done == 0 {
            assert_eq!(self.reuses, 0, "refresh token reused");
        }
        // One token per need: a lost lease or a wipe that hit a token request
        // may cost one each, a login two (its own, and one it supersedes).
        let spent = self.issued - self.start_issued;
        let logins = u64::from(self.logged_in) * 2;
        if matches!(self.provider, Provider::Rotating | Provider::Revoking) {
            let needs = 1 + u64::from(self.rollbacks_done);
            let allowed = needs + u64::from(self.faults_in_flight + self.lease_faults) + logins;
            assert!(spent <= allowed, "a token was wasted: {spent} issued");
        }
        if self.provider == Provider::WrongPassword {
            assert!(
                self.attempts <= 1 + self.cooldowns_ended + self.wipes_done,
                "{} attempts with a wrong password",
                self.attempts
            );
        }
        if self.lease_faults == 0 && self.faults_in_flight == 0 {
            let writing = self
                .procs
                .iter()
                .filter(|p| matches!(p.step, Step::Writing { .. }))
                .count();
            assert!(writing <= 1, "two token requests at once");
        }
    }

    /// Checked where nobody has anything left to do.
    fn check_end(&self) {
        // A crash after the provider answered, or a store that lost
        // everything, may leave a revoked token behind: the next 401 brings
        // the fleet back (the counts in `check` still bound what it cost).
        let kept = matches!(self.provider, Provider::Rotating | Provider::Revoking);
        if self.crashed || self.wipes_done > 0 || !kept {
            return;
        }
        // The fleet ends on the provider's only valid token, and the live
        // refresh token is stored: nothing was lost.
        let stored = match self.store {
            Some(Entry {
                content: Content::Token(t),
                ..
            }) => Some(t),
            _ => None,
        };
        assert_eq!(
            stored, self.valid,
            "the store does not hold the valid token"
        );
        assert_eq!(stored, self.rt_live, "the live refresh token is not stored");
        for p in &self.procs {
            if p.step == Step::Done && !self.logged_in {
                assert_eq!(p.token, self.valid, "a process ended on a revoked token");
            }
        }
    }

    fn quiet(&self) -> bool {
        self.procs.iter().all(|p| {
            p.pending.is_none()
                && matches!(
                    p.step,
                    Step::Done | Step::Crashed | Step::LoginRequired | Step::CooledDown
                )
        }) && self
            .procs
            .iter()
            .all(|p| p.step != Step::CooledDown || self.cooldown)
    }

    fn successors(&self) -> Vec<World> {
        let mut out = Vec::new();
        for i in 0..self.procs.len() {
            self.step(i, &mut out);
        }
        // The lease runs out under a stalled holder (or a crashed one).
        if let Some(owner) = self.lease {
            let p = &self.procs[owner];
            let stalled = matches!(p.step, Step::Writing { .. }) || p.pending.is_some();
            if p.step == Step::Crashed || (stalled && self.expiries > 0) {
                let mut w = self.clone();
                if p.step != Step::Crashed {
                    w.expiries -= 1;
                }
                w.lease_faults += 1;
                w.lease = None;
                out.push(w);
            }
        }
        if self.wipes > 0 {
            // The store restarts empty: entry, lease and cool-down gone.
            let mut w = self.clone();
            w.wipes -= 1;
            w.wipes_done += 1;
            if w.in_flight() {
                w.faults_in_flight += 1;
            }
            w.store = None;
            w.previous_entry = None;
            w.lease = None;
            w.cooldown = false;
            out.push(w);
        }
        // The store loses its last write, once everyone has the token it
        // held (a failover to a replica that lagged): every process needs a
        // token again, and the store offers the spent one.
        let settled = self.procs.iter().all(|p| {
            p.step == Step::Done && p.pending.is_none() && p.held == self.store.map(|e| e.version)
        });
        if self.rollbacks > 0 && settled && self.previous_entry.is_some() {
            let mut w = self.clone();
            w.rollbacks -= 1;
            w.rollbacks_done += 1;
            w.store = w.previous_entry.take();
            for p in &mut w.procs {
                p.step = Step::Read;
            }
            w.valid = None;
            out.push(w);
        }
        if self.logins > 0 && self.provider != Provider::WrongPassword {
            // A user logs in: the code exchange issues a token, written on top
            // of whatever is stored, outside the lease.
            let mut w = self.clone();
            w.logins -= 1;
            w.logged_in = true;
            let t = w.issue();
            let view = w.view();
            let version = w.next(view);
            w.store = Some(Entry {
                version,
                content: Content::Token(t),
            });
            out.push(w);
        }
        if self.cooldown && self.cooldown_ends > 0 {
            let mut w = self.clone();
            w.cooldown_ends -= 1;
            w.cooldown = false;
            w.cooldowns_ended += 1;
            out.push(w);
        }
        out
    }
}

#[path = "lease_checks.rs"]
mod checks;
#[path = "lease_steps.rs"]
mod steps;
