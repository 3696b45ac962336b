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

    fn step(&self, i: usize, out: &mut Vec<World>) {
        let mut w = self.clone();
        let p = self.procs[i].clone();
        match p.step {
            Step::Read => {
                match w.decide(w.view(), p.held, i) {
                    AfterRead::Adopt => w.adopt(i),
                    AfterRead::LoginRequired => {
                        w.procs[i].pending = None;
                        w.procs[i].step = Step::LoginRequired;
                    }
                    AfterRead::Fetch { .. } | AfterRead::RolledBack { .. } => {
                        w.procs[i].pending = None;
                        w.procs[i].step = Step::Lease;
                    }
                    AfterRead::WritePending { .. } => w.procs[i].step = Step::Lease,
                }
                out.push(w);
            }
            Step::Lease => {
                if w.lease.is_none() || w.lease == Some(i) {
                    w.lease = Some(i);
                    w.procs[i].step = Step::Reread;
                } else {
                    w.procs[i].step = Step::Waiting;
                }
                out.push(w);
            }
            Step::Waiting => {
                let changed = w.store.is_some_and(|e| is_newer(e.version, p.held));
                if w.lease.is_none() || changed {
                    w.procs[i].step = Step::Read;
                    out.push(w);
                }
            }
            Step::Reread => {
                let view = w.view();
                match w.decide(view, p.held, i) {
                    AfterRead::Adopt | AfterRead::LoginRequired => {
                        w.release(i);
                        w.procs[i].step = Step::Read;
                    }
                    AfterRead::WritePending { base } => {
                        let (token, from) = w.procs[i].pending.take().expect("pending");
                        let version = w.next(view);
                        w.procs[i].step = Step::Writing {
                            base,
                            version,
                            token,
                            from,
                            tries: 0,
                        };
                    }
                    AfterRead::Fetch { base } => {
                        w.procs[i].pending = None;
                        w.request(i, view, base, false);
                    }
                    AfterRead::RolledBack { base } => {
                        w.procs[i].pending = None;
                        w.request(i, view, base, true);
                    }
                }
                out.push(w);
            }
            Step::Writing {
                base,
                version,
                token,
                from,
                tries,
            } => {
                // The write reaches the store.
                let entry = Entry {
                    version,
                    content: Content::Token(token),
                };
                if w.cas(i, base, entry) {
                    w.hold(i, version);
                    let q = &mut w.procs[i];
                    q.token = Some(token);
                    q.step = Step::Done;
                } else {
                    // Lost: keep a token with a refresh token and read again,
                    // or (mutation) drop it. One without is only a token: the
                    // next holder's may have revoked it.
                    if w.rules.keep_unwritten && w.refresh_tokens() {
                        w.procs[i].pending = Some((token, from));
                    }
                    w.procs[i].step = Step::Read;
                }
                w.release(i);
                out.push(w);
                // The store fails the write (a timeout, a failover).
                if self.write_failures > 0 {
                    let mut f = self.clone();
                    f.write_failures -= 1;
                    if tries + 1 < WRITE_ATTEMPTS {
                        f.procs[i].step = Step::Writing {
                            base,
                            version,
                            token,
                            from,
                            tries: tries + 1,
                        };
                    } else {
                        // Served here; written when the store answers.
                        let q = &mut f.procs[i];
                        q.token = Some(token);
                        q.held = None;
                        q.step = Step::Done;
                        if f.rules.keep_unwritten && self.refresh_tokens() {
                            q.pending = Some((token, from));
                        } else {
                            f.release(i);
                        }
                    }
                    out.push(f);
                }
                if self.crashes > 0 {
                    let mut c = self.clone();
                    c.crashes -= 1;
                    c.crashed = true;
                    c.procs[i].step = Step::Crashed;
                    c.procs[i].pending = None;
                    out.push(c);
                }
            }
            Step::Done if p.pending.is_some() && (w.lease.is_none() || w.lease == Some(i)) => {
                // The background writer: lease, read, write if still the newest.
                w.lease = Some(i);
                let view = w.view();
                match after_read(view, None, w.pending_from(i), &[]) {
                    AfterRead::WritePending { base } => {
                        let (token, from) = w.procs[i].pending.take().expect("pending");
                        let version = w.next(view);
                        let entry = Entry {
                            version,
                            content: Content::Token(token),
                        };
                        if w.cas(i, base, entry) {
                            w.hold(i, version);
                        } else {
                            w.procs[i].pending = Some((token, from));
                        }
                    }
                    _ => {
                        // Superseded: its token may be revoked; the next 401
                        // brings this process back to read the newer one.
                        w.procs[i].pending = None;
                        w.procs[i].step = Step::Read;
                    }
                }
                w.release(i);
                out.push(w);
            }
            Step::CooledDown => {
                // The local gate ends: look at the fleet's record again.
                w.procs[i].step = Step::Read;
                out.push(w);
            }
            Step::Done | Step::Crashed | Step::LoginRequired => {}
        }
    }

    /// This process now holds `version`: an epoch it leaves is retired.
    fn hold(&mut self, i: usize, version: Version) {
        let q = &mut self.procs[i];
        if let Some(h) = q.held {
            if h.epoch != version.epoch && !q.retired.contains(&h.epoch) {
                q.retired.push(h.epoch);
            }
        }
        q.held = Some(version);
    }

    fn adopt(&mut self, i: usize) {
        let Some(Entry {
            version,
            content: Content::Token(t),
        }) = self.store
        else {
            unreachable!("adopt a token")
        };
        self.hold(i, version);
        let q = &mut self.procs[i];
        q.token = Some(t);
        q.pending = None;
        q.step = Step::Done;
    }

    /// Step 4 with the lease held: the fleet's cool-down, then the token
    /// request from the freshest refresh token.
    fn request(&mut self, i: usize, view: Option<Stored>, base: u64, rolled_back: bool) {
        if self.rules.fleet_cooldown && self.cooldown {
            self.release(i);
            self.procs[i].step = Step::CooledDown;
            return;
        }
        self.attempts += 1;
        let p = &self.procs[i];
        let stored = match self.store {
            Some(Entry {
                content: Content::Token(t),
                ..
            }) => Some(t),
            _ => None,
        };
        // As in `shared.rs`: the stored refresh token is the latest, unless
        // the store rolled back past the one held here.
        let from = if rolled_back {
            p.token
        } else {
            stored.or(p.token)
        };
        if self.provider == Provider::WrongPassword {
            if self.rules.fleet_cooldown {
                self.cooldown = true;
            }
            self.release(i);
            self.procs[i].step = Step::CooledDown;
            return;
        }
        if let Some(t) = from.filter(|_| self.provider != Provider::Revoking) {
            self.rt_uses[t as usize] += 1;
            if self.rt_uses[t as usize] > 1 {
                self.reuses += 1;
            }
            let dead = self.provider == (Provider::Rejects { dead: t });
            if dead || self.rt_live != Some(t) {
                // Refused: mark the user, fenced, on top of `base`.
                let version = self.next(view);
                let mark = Entry {
                    version,
                    content: Content::Mark,
                };
                self.cas(i, base, mark);
                self.release(i);
                self.procs[i].step = Step::LoginRequired;
                return;
            }
        }
        let token = self.issue();
        let version = if rolled_back {
            let fresh = self.fresh_version(0);
            new_incarnation(base, fresh.epoch)
        } else {
            self.next(view)
        };
        let from = view.and_then(|v| (v.holds != Holds::Unreadable).then_some(v.version));
        self.procs[i].step = Step::Writing {
            base,
            version,
            token,
            from,
            tries: 0,
        };
    }
}

/// Explores every state reachable from `start`, checking the invariants;
/// returns how many there were. A broken invariant panics with the path to it.
fn explore(start: World) -> usize {
    let mut parent: std::collections::HashMap<World, Option<World>> = Default::default();
    let mut stack = vec![(start, None::<World>)];
    while let Some((w, from)) = stack.pop() {
        if parent.contains_key(&w) {
            continue;
        }
        parent.insert(w.clone(), from);
        let checked = std::panic::catch_unwind(|| {
            w.check();
            let next = w.successors();
            if w.quiet() {
                w.check_end();
            } else if next.is_empty() {
                panic!("stuck");
            }
            next
        });
        match checked {
            Ok(next) => stack.extend(next.into_iter().map(|n| (n, Some(w.clone())))),
            Err(e) => {
                let mut path = vec![w.clone()];
                while let Some(Some(p)) = parent.get(path.last().unwrap()) {
                    path.push(p.clone());
                }
                for (n, s) in path.iter().rev().enumerate() {
                    eprintln!(
                        "{n}: {:?} store={:?} lease={:?} valid={:?}",
                        s.procs, s.store, s.lease, s.valid
                    );
                }
                std::panic::resume_unwind(e);
            }
        }
    }
    parent.len()
}

/// The invariant exploring `start` breaks, if any.
fn breaks(start: World) -> Option<String> {
    let result = std::panic::catch_unwind(move || explore(start));
    let panic = result.err()?;
    Some(
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

fn rotating(rules: Rules) -> World {
    World::start(3, Provider::Rotating, rules)
}

#[test]
fn every_interleaving_without_faults() {
    assert!(explore(rotating(ALL_RULES)) > 50);
    assert!(explore(rotating(ALL_RULES).after_a_401()) > 50);
}

#[test]
fn every_interleaving_with_a_login_during_refreshes() {
    let states = explore(rotating(ALL_RULES).after_a_401().with_logins(1))
        + explore(rotating(ALL_RULES).with_logins(1).faults(1, 1, 0, 0));
    assert!(states > 500, "{states}");
}

#[test]
fn every_interleaving_with_a_rejected_refresh_token() {
    let rejects = World::start(3, Provider::Rejects { dead: 1 }, ALL_RULES).after_a_401();
    let states = explore(rejects.clone()) + explore(rejects.with_logins(1));
    assert!(states > 100, "{states}");
}

/// Altrata: a holder stalls past its lease, the next holder's token revokes
/// its own, and its write arrives late: fenced out, it adopts the valid one.
#[test]
fn every_interleaving_with_a_stalled_holder_at_a_revoking_provider() {
    let revoking = World::start(3, Provider::Revoking, ALL_RULES);
    let states = explore(revoking.clone().after_a_401().faults(1, 0, 0, 0))
        + explore(revoking.faults(2, 1, 1, 0));
    assert!(states > 500, "{states}");
}

#[test]
fn every_interleaving_with_a_stalled_holder_and_a_crash() {
    let states = explore(rotating(ALL_RULES).after_a_401().faults(1, 0, 0, 0))
        + explore(rotating(ALL_RULES).after_a_401().faults(1, 1, 0, 0))
        + explore(rotating(ALL_RULES).faults(1, 1, 0, 0));
    assert!(states > 1_000, "{states}");
}

/// The write after a rotation fails (each try): the token is kept, its holder
/// keeps the lease, and it is written when the store answers; nobody sends the
/// old refresh token.
#[test]
fn every_interleaving_with_failed_writes() {
    let states = explore(rotating(ALL_RULES).after_a_401().faults(0, 0, 2, 0))
        + explore(rotating(ALL_RULES).after_a_401().faults(1, 0, 2, 0))
        + explore(
            rotating(ALL_RULES)
                .after_a_401()
                .faults(0, 0, 1, 0)
                .with_logins(1),
        );
    assert!(states > 500, "{states}");
}

/// The store is wiped at any step: one token per need still, and after a
/// restart between needs, exactly one for the whole fleet.
#[test]
fn every_interleaving_with_the_store_wiped() {
    let states = explore(rotating(ALL_RULES).after_a_401().faults(0, 0, 0, 1))
        + explore(rotating(ALL_RULES).after_an_empty_restart())
        + explore(
            rotating(ALL_RULES)
                .after_an_empty_restart()
                .faults(0, 0, 1, 1),
        );
    assert!(states > 500, "{states}");
}

/// A wrong password: one attempt for the whole fleet per cool-down.
#[test]
fn every_interleaving_with_a_wrong_password() {
    let wrong = World::start(3, Provider::WrongPassword, ALL_RULES);
    let states = explore(wrong.clone()) + explore(wrong.with_cooldown_ends(2).faults(0, 0, 0, 1));
    assert!(states > 50, "{states}");
}

/// The store loses its last write after everyone adopted it: the spent
/// refresh token it offers again is never sent; the fleet moves on from the
/// one it holds.
#[test]
fn every_interleaving_with_a_rolled_back_store() {
    let states = explore(rotating(ALL_RULES).after_a_401().with_rollbacks(1))
        + explore(
            rotating(ALL_RULES)
                .after_a_401()
                .with_rollbacks(2)
                .faults(0, 0, 1, 0),
        );
    assert!(states > 200, "{states}");
}

/// An unwritten token outlives a mark made from the refresh token it rotated.
#[test]
fn every_interleaving_with_a_mark_over_an_unwritten_token() {
    let states = explore(rotating(ALL_RULES).after_a_401().faults(1, 0, 2, 0));
    assert!(states > 100, "{states}");
}

// Mutations: each rule switched off, the check must fail.

#[test]
fn mutation_without_fencing_is_caught() {
    let rules = Rules {
        fence: false,
        ..ALL_RULES
    };
    let revoking = World::start(3, Provider::Revoking, rules);
    let broken = breaks(revoking.after_a_401().faults(1, 0, 0, 0)).unwrap();
    assert!(broken.contains("a token was wasted"), "{broken}");
}

#[test]
fn mutation_without_epochs_is_caught() {
    let rules = Rules {
        epochs: false,
        ..ALL_RULES
    };
    // An empty restart then looks like a rollback, or like nothing newer.
    let broken = breaks(rotating(rules).after_an_empty_restart()).unwrap();
    assert!(
        broken.contains("a token was wasted") || broken.contains("refresh token reused"),
        "{broken}"
    );
}

#[test]
fn mutation_dropping_unwritten_tokens_is_caught() {
    let rules = Rules {
        keep_unwritten: false,
        ..ALL_RULES
    };
    let broken = breaks(rotating(rules).after_a_401().faults(0, 0, 2, 0)).unwrap();
    assert!(broken.contains("refresh token reused"), "{broken}");
}

#[test]
fn mutation_without_the_fleet_cooldown_is_caught() {
    let rules = Rules {
        fleet_cooldown: false,
        ..ALL_RULES
    };
    let broken = breaks(World::start(3, Provider::WrongPassword, rules)).unwrap();
    assert!(
        broken.contains("attempts with a wrong password"),
        "{broken}"
    );
}

#[test]
fn mutation_letting_a_mark_win_over_a_newer_token_is_caught() {
    let rules = Rules {
        newer_than_mark: false,
        ..ALL_RULES
    };
    let broken = breaks(rotating(rules).after_a_401().faults(1, 0, 2, 0)).unwrap();
    assert!(broken.contains("not hold the valid token"), "{broken}");
}

#[test]
fn mutation_refreshing_from_a_rolled_back_entry_is_caught() {
    let rules = Rules {
        rollbacks_seen: false,
        ..ALL_RULES
    };
    let broken = breaks(rotating(rules).after_a_401().with_rollbacks(1)).unwrap();
    assert!(broken.contains("refresh token reused"), "{broken}");
}
