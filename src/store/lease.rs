//! The cross-process single flight, as plain decisions.
//!
//! Several processes share one credential through a [`TokenStore`]: an entry
//! (a token and its *version*: the store's incarnation, an epoch drawn by the
//! first write into an empty store, and a generation that grows by one per
//! write), a lease, and the fleet's cool-down record. A process that needs a
//! token (none yet, expiry, refresh ahead, or a 401 on the version it holds)
//! runs this protocol:
//!
//! 1. **Read** the entry. A usable token newer than the one it holds (a later
//!    generation, or another incarnation: the store came back empty) was
//!    fetched by someone else: adopt it, no token request.
//! 2. Otherwise **take the lease** (`SET NX PX` with an owner token). Not taken:
//!    someone else is fetching; **wait** for the change notification (or the
//!    poll interval) and read again.
//! 3. Lease taken: **read again**: someone may have written between 1 and 2.
//!    Newer and usable: adopt it and release the lease. The fleet cooling down
//!    after a permanent failure: no request.
//! 4. Otherwise **fetch** from the token source, starting from the stored token
//!    (its refresh token is the latest), while a watchdog renews the lease; the
//!    request's timeout is shorter than the lease.
//! 5. **Write, fenced**: a compare-and-set on the generation read in 3 *and* on
//!    the lease's owner, in one atomic step, so that a holder whose lease ran
//!    out (a stall, a pause) never overwrites its successor's token; notify;
//!    release the lease with compare-and-delete.
//!
//! A token fetched and not written (the write failed, or was fenced out) may
//! hold the only copy of a rotated refresh token: it is kept *pending*. A
//! failed write is retried under the lease, and the holder keeps the lease
//! while the token is pending, so nobody refreshes from the old refresh token
//! meanwhile; it is written as soon as the store takes it, unless a newer real
//! token was stored since (then it is superseded and dropped). A "log in
//! again" mark never wins over it: a mark is made from an older refresh token.
//!
//! A user's refresh token that the provider rejects is marked in the store by
//! the lease holder (fenced, on the generation it refreshed from), so no
//! process sends it again, and a login written meanwhile is not overwritten. A
//! permanent failure (a wrong password) is recorded with its cool-down for the
//! whole fleet, doubling per failure in a row.
//!
//! The functions here decide each step from what the store said; `shared.rs`
//! does the I/O. `fleet_model.rs` explores every interleaving of three
//! processes with the store's faults and checks the invariants; each rule
//! above, switched off, is caught there.
//!
//! [`TokenStore`]: super::TokenStore

pub(crate) use crate::token::Version;

/// What the stored entry holds, as the decisions need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Holds {
    /// A token; `usable`: not expired (by the reader's clock and margin).
    Token { usable: bool },
    /// A "log in again" mark: the refresh token it replaced was rejected.
    LoginRequired,
    /// Nothing this process can read (another key, damaged, rolled back):
    /// the lease holder replaces it.
    Unreadable,
}

/// The stored entry as the decisions need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Stored {
    pub(crate) version: Version,
    pub(crate) holds: Holds,
}

/// What to do after reading the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterRead {
    /// Someone else fetched a newer token: use it (and drop any token of our
    /// own that is still unwritten: the stored one superseded it).
    Adopt,
    /// The stored refresh token was rejected and this process holds nothing
    /// newer: the user must log in again.
    LoginRequired,
    /// This process holds a token it fetched and could not store yet, and
    /// nothing newer was written since: write it, on top of generation `base`
    /// (under the lease). It may be the only copy of a rotated refresh token.
    WritePending { base: u64 },
    /// Nothing newer: take the lease (step 2) or, lease held, fetch (step 4)
    /// starting from the stored generation `base` (0: none stored).
    Fetch { base: u64 },
    /// The store holds an entry older than the token this process holds: it
    /// lost writes (a failover to a replica that lagged, an old snapshot, an
    /// entry written back). Its refresh token is spent: fetch from the token
    /// held here, and write the result as a new incarnation of the store, on
    /// top of generation `base`.
    RolledBack { base: u64 },
}

#[cfg(test)]
impl AfterRead {
    /// A rolled-back entry taken at face value (the model's mutation).
    pub(crate) fn or_fetch(self, base: u64) -> AfterRead {
        match self {
            AfterRead::RolledBack { .. } => AfterRead::Fetch { base },
            other => other,
        }
    }
}

/// Steps 1 and 3. `held` is the version of the token this process uses (None:
/// none, or one fetched without the store); `pending` is, for a token this
/// process fetched and has not stored, the version it was fetched from
/// (`Some(None)`: nothing readable was stored then); `retired` holds the
/// epochs this process held before the one it holds now, which the store can
/// only offer again by rolling back.
pub(crate) fn after_read(
    stored: Option<Stored>,
    held: Option<Version>,
    pending: Option<Option<Version>>,
    retired: &[u64],
) -> AfterRead {
    let base = stored.map_or(0, |s| s.version.generation);
    if let Some(from) = pending {
        // Our unwritten token is the newest unless a real token was written
        // after the one we fetched from: a mark is older than our token (it
        // was made from the refresh token we rotated), and so is what we read.
        let superseded = match stored {
            Some(s) => matches!(s.holds, Holds::Token { .. }) && Some(s.version) != from,
            None => false,
        };
        if !superseded {
            return AfterRead::WritePending { base };
        }
    }
    if stored.is_some_and(|s| is_rolled_back(s.version, held, retired)) {
        return AfterRead::RolledBack { base };
    }
    match stored {
        Some(Stored {
            holds: Holds::LoginRequired,
            ..
        }) => AfterRead::LoginRequired,
        Some(Stored {
            version,
            holds: Holds::Token { usable: true },
        }) if is_newer(version, held) => AfterRead::Adopt,
        _ => AfterRead::Fetch { base },
    }
}

/// Whether a stored version is newer than the one held: a later generation of
/// the same incarnation of the store, or any version of another incarnation
/// (the store came back empty and generations started again).
pub(crate) fn is_newer(stored: Version, held: Option<Version>) -> bool {
    match held {
        None => true,
        Some(h) => stored.epoch != h.epoch || stored.generation > h.generation,
    }
}

/// Whether a stored version is older than the one held: the same incarnation
/// at a lower generation, an incarnation this process has left (`retired`),
/// or the first format's entries (epoch 0), which no store writes once a
/// process holds a version of its own.
pub(crate) fn is_rolled_back(stored: Version, held: Option<Version>, retired: &[u64]) -> bool {
    held.is_some_and(|h| {
        (stored.epoch == h.epoch && stored.generation < h.generation)
            || (stored.epoch != h.epoch && retired.contains(&stored.epoch))
            || (stored.epoch == 0 && h.epoch != 0)
    })
}

/// Step 5: the version a write on top of `stored` gets. An empty store (or an
/// entry nobody can read) starts a new incarnation with `fresh_epoch`.
pub(crate) fn next_version(stored: Option<Stored>, fresh_epoch: u64) -> Version {
    match stored {
        // Entries of the first format (epoch 0) move to an incarnation of
        // their own with the first write, so that an old one written back is
        // told apart.
        Some(Stored {
            version,
            holds: Holds::Token { .. } | Holds::LoginRequired,
        }) if version.epoch != 0 => Version {
            epoch: version.epoch,
            generation: version.generation.saturating_add(1),
        },
        Some(Stored { version, .. }) => Version {
            epoch: fresh_epoch,
            generation: version.generation.saturating_add(1),
        },
        None => Version {
            epoch: fresh_epoch,
            generation: 1,
        },
    }
}

/// The version a token fetched after a rollback is written as: a new
/// incarnation, which every process takes for newer than what it holds.
pub(crate) fn new_incarnation(base: u64, fresh_epoch: u64) -> Version {
    Version {
        epoch: fresh_epoch,
        generation: base.saturating_add(1),
    }
}

/// After a permanent failure, how long the fleet makes no token request:
/// the configured cool-down, doubled for each failure in a row (`count`,
/// 1 for the first, carried in the store), at most `max`.
pub(crate) fn fleet_cooldown(
    base: std::time::Duration,
    max: std::time::Duration,
    count: u32,
) -> std::time::Duration {
    base.saturating_mul(1 << count.saturating_sub(1).min(20))
        .min(max)
}
