//! One process's steps in the model: read, lease, wait, re-read and request,
//! write, and the background writer, as `shared.rs` takes them.

use super::*;

impl World {
    pub(super) fn step(&self, i: usize, out: &mut Vec<World>) {
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
