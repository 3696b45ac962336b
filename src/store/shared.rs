//! The cross-process single flight over a [`TokenStore`], wired to I/O. The
//! decisions are [`lease`](super::lease)'s, model-checked there.
//!
//! Every store operation is bounded by the configured store timeout, so a
//! store that accepts connections and never answers costs a token request a
//! few timeouts, not minutes. A token this process fetched and could not store
//! (a failed or fenced write) is kept as *pending*: it may hold the only copy
//! of a rotated refresh token, so it is written as soon as the store takes it,
//! by the next token request or by a background task, unless a newer token was
//! stored meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chacha20poly1305::XChaCha20Poly1305;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::codec::{decode, encode, Record};
use super::lease::{after_read, new_incarnation, next_version, AfterRead, Holds, Stored, Version};
use super::{SharedStore, StoreKey, StoredEntry, TokenStore, WhenUnavailable};
use crate::error::Error;
use crate::token::{later, ManagedOptions, Token, TokenSource};

/// How many times a write after a token request is tried while the lease is
/// held, before the token is kept pending for the background writer.
const WRITE_ATTEMPTS: u32 = 3;

/// A credential's resolved link to its shared store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn TokenStore>,
    pub(super) key: StoreKey,
    /// This process's owner token for the lease: unique per process and credential.
    pub(super) owner: String,
    pub(super) when_unavailable: WhenUnavailable,
    pub(super) lease_ttl: Duration,
    pub(super) poll_interval: Duration,
    pub(super) store_timeout: Duration,
    pub(super) cooldown: Duration,
    pub(super) max_cooldown: Duration,
    pub(super) cipher: Option<Arc<XChaCha20Poly1305>>,
    /// Set while the store is unreachable, so that it is logged once.
    pub(super) down: AtomicBool,
    /// A token fetched here and not stored yet; locked for a whole fetch (and
    /// by the background writer), so that one process writes it once.
    pub(super) pending: Mutex<Option<Pending>>,
    /// Whether the background writer runs.
    pub(super) writer: AtomicBool,
    /// The fleet's cool-down as this process last saw it (read or written).
    pub(super) fleet_gate: StdMutex<Option<FleetGate>>,
    /// Epochs of the store this process held before the current one (the
    /// latest few): an entry of one of them is the store rolling back.
    pub(super) retired: StdMutex<Vec<u64>>,
    /// The credential's name, on every event (warnings too, which a WARN
    /// filter shows without the DEBUG span around them).
    pub(super) credential: Arc<str>,
}

/// The fleet's cool-down as one process saw it. The store decides whether it
/// holds (the record is there until its time-to-live ends, by the store's own
/// clock); this only paces the re-reads and carries the count of failures in
/// a row to the next one, which doubles the cool-down.
#[derive(Clone, Copy)]
pub(super) struct FleetGate {
    pub(super) count: u32,
    pub(super) seen_at: Instant,
    /// Until when it holds, as far as this process knows (never trusted for
    /// the decision, which is the record's presence).
    pub(super) until: Instant,
    pub(super) delay: Duration,
}

/// A token fetched here that is not in the store yet.
pub(super) struct Pending {
    pub(super) token: Token,
    /// The version it was fetched from (None: nothing readable was stored).
    pub(super) from: Option<Version>,
}

/// A token from the fleet's protocol, with its store version (None: fetched
/// or kept without the store).
pub(crate) struct Fetched {
    pub(crate) token: Token,
    pub(crate) version: Option<Version>,
    /// Fetched from the source by this process (not adopted from the store).
    pub(crate) fetched_here: bool,
}

/// What the lease holder's turn ended with.
pub(super) enum Turn {
    Done(Fetched),
    /// The write did not land (fenced out, or the entry moved), or the lease
    /// was lost before the request: read again.
    ReadAgain,
    /// The store failed while the lease was held: the `WhenUnavailable`
    /// policy decides.
    StoreDown(Error),
}

impl Shared {
    pub(crate) fn new(
        config: SharedStore,
        source_identity: Option<String>,
        options: &ManagedOptions,
        credential: Arc<str>,
    ) -> Result<Shared, Error> {
        let identity = config.identity.or(source_identity).ok_or_else(|| {
            Error::config(
                "a shared store needs the credential's identity: this token source reports none, \
                 set SharedStore::identity",
            )
        })?;
        Ok(Shared {
            inner: Arc::new(Inner {
                store: config.store,
                key: StoreKey::new(&config.namespace, &identity),
                owner: format!("{}-{:016x}", std::process::id(), random_u64()?),
                when_unavailable: config.when_unavailable,
                lease_ttl: config.lease_ttl,
                poll_interval: config.poll_interval,
                store_timeout: config.store_timeout,
                cooldown: options.cooldown,
                max_cooldown: options.max_cooldown,
                cipher: config.cipher,
                down: AtomicBool::new(false),
                pending: Mutex::new(None),
                writer: AtomicBool::new(false),
                fleet_gate: StdMutex::new(None),
                retired: StdMutex::new(Vec::new()),
                credential,
            }),
        })
    }

    /// Gets a token the fleet agrees on. `held` is the store version of the
    /// token this process holds (None: none, or one not from the store);
    /// `usable` says whether a stored token is worth adopting; `previous` is
    /// this process's current token.
    pub(crate) async fn fetch(
        &self,
        source: &dyn TokenSource,
        previous: Option<&Token>,
        held: Option<Version>,
        usable: impl Fn(&Token) -> bool,
    ) -> Result<Fetched, Error> {
        let inner = &*self.inner;
        let mut pending = inner.pending.lock().await;
        // Waiting on a holder is bounded: its lease ends within `lease_ttl` of its
        // last renewal, and a new holder's request within two thirds of that.
        let give_up = later(Instant::now(), inner.lease_ttl.saturating_mul(4));
        // Writes lost to another process's: an entry that keeps moving under
        // every write is a fault, not a reason to go on forever.
        let mut lost = 0u32;
        let retired = lock(&inner.retired).clone();
        let result = self
            .fetch_locked(
                source,
                previous,
                held,
                &usable,
                &mut pending,
                give_up,
                &retired,
                &mut lost,
            )
            .await;
        if let (
            Some(h),
            Ok(Fetched {
                version: Some(v), ..
            }),
        ) = (held, &result)
        {
            if h.epoch != v.epoch {
                let mut retired = lock(&inner.retired);
                if !retired.contains(&h.epoch) {
                    if retired.len() == 16 {
                        retired.remove(0);
                    }
                    retired.push(h.epoch);
                }
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch_locked(
        &self,
        source: &dyn TokenSource,
        previous: Option<&Token>,
        held: Option<Version>,
        usable: &impl Fn(&Token) -> bool,
        pending: &mut Option<Pending>,
        give_up: Instant,
        retired: &[u64],
        lost: &mut u32,
    ) -> Result<Fetched, Error> {
        let inner = &*self.inner;
        loop {
            // Step 1: read.
            let stored = match inner.bounded(inner.store.load(&inner.key)).await {
                Ok(s) => s,
                Err(e) => return self.unavailable(e, source, previous, held, pending).await,
            };
            inner.up();
            let (view, record) = inner.view(stored.as_ref(), usable);
            match after_read(view, held, pending.as_ref().map(|p| p.from), retired) {
                AfterRead::Adopt => {
                    if let (Some(Record::Token(token)), Some(v)) = (record, view) {
                        self.drop_pending(pending, "a newer token was stored").await;
                        tracing::debug!(
                            credential = &*inner.credential,
                            key = inner.key.as_str(),
                            generation = v.version.generation,
                            "token adopted from the shared store"
                        );
                        return Ok(Fetched {
                            token,
                            version: Some(v.version),
                            fetched_here: false,
                        });
                    }
                }
                AfterRead::LoginRequired => {
                    self.drop_pending(pending, "a login-required mark").await;
                    return Err(match record {
                        Some(Record::LoginRequired(user)) => Error::login_required(&user),
                        _ => Error::store_codec("stored entry is a mark without a user"),
                    });
                }
                AfterRead::Fetch { .. } | AfterRead::RolledBack { .. } => {
                    // A newer token was stored than the one ours came from, and
                    // it is not usable: ours is superseded all the same.
                    self.drop_pending(pending, "a newer token was stored").await;
                }
                AfterRead::WritePending { .. } => {}
            }
            if view.is_none() && previous.is_none() && pending.is_none() && source.needs_previous()
            {
                // Nothing to refresh from (a user who never logged in): let the
                // source say so, with no lease and nothing written.
                return Err(match source.fetch(None).await {
                    Ok(_) => Error::store_codec("a source that needs a previous token made one"),
                    Err(e) => e,
                });
            }
            // Step 2: the lease (ours still, if we kept it for a pending token).
            let taken = match self.take_lease(pending.is_some()).await {
                Ok(t) => t,
                Err(e) => return self.unavailable(e, source, previous, held, pending).await,
            };
            if !taken {
                if Instant::now() >= give_up {
                    return Err(Error::store_unavailable(
                        "the shared store's lease holder did not finish in time",
                    ));
                }
                let seen = view.map_or(0, |v| v.version.generation);
                let wait = inner
                    .store
                    .wait_change(&inner.key, seen, inner.poll_interval);
                // A notification that never comes ends with the poll interval;
                // a store that never answers, with the store timeout after it.
                let bound = inner.poll_interval + inner.store_timeout;
                let waited = match tokio::time::timeout(bound, wait).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::store_unavailable(
                        "the shared store did not answer in time",
                    )),
                };
                if let Err(e) = waited {
                    return self.unavailable(e, source, previous, held, pending).await;
                }
                continue;
            }
            let turn = self
                .holding_lease(source, previous, held, usable, retired, pending)
                .await;
            if matches!(turn, Ok(Turn::Done(_))) && pending.is_some() {
                // The store did not take the token: the lease stays ours (the
                // writer renews it) so that nobody refreshes from the old
                // refresh token before it is written.
                self.start_writer();
            } else {
                self.release_lease().await;
            }
            match turn {
                Ok(Turn::Done(fetched)) => return Ok(fetched),
                Ok(Turn::ReadAgain) => {
                    *lost += 1;
                    if *lost > 16 {
                        return Err(Error::store_unavailable(
                            "the shared entry kept changing under every write",
                        ));
                    }
                }
                // The store failed under the lease: the policy decides, as
                // for a failure before it.
                Ok(Turn::StoreDown(e)) => {
                    return self.unavailable(e, source, previous, held, pending).await
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops a pending token that another one superseded, and the lease kept
    /// for it.
    async fn drop_pending(&self, pending: &mut Option<Pending>, why: &'static str) {
        if pending.take().is_some() {
            let inner = &*self.inner;
            tracing::warn!(
                credential = &*inner.credential,
                key = inner.key.as_str(),
                why,
                "an unstored token was superseded"
            );
            self.release_lease().await;
        }
    }

    /// Takes the lease, or (`ours`: kept for a pending token) renews it.
    pub(super) async fn take_lease(&self, ours: bool) -> Result<bool, Error> {
        let inner = &*self.inner;
        if ours {
            let renew = inner
                .store
                .renew_lease(&inner.key, &inner.owner, inner.lease_ttl);
            if inner.bounded(renew).await? {
                return Ok(true);
            }
        }
        inner
            .bounded(
                inner
                    .store
                    .try_lease(&inner.key, &inner.owner, inner.lease_ttl),
            )
            .await
    }

    /// Compare-and-delete: a lease that expired and was taken is not ours.
    pub(super) async fn release_lease(&self) {
        let inner = &*self.inner;
        let release = inner.store.release_lease(&inner.key, &inner.owner);
        if let Err(e) = inner.bounded(release).await {
            tracing::debug!(credential = &*inner.credential, key = inner.key.as_str(), error = %e, "lease not released; it will expire");
        }
    }

    /// Steps 3 to 5, with the lease held.
    async fn holding_lease(
        &self,
        source: &dyn TokenSource,
        previous: Option<&Token>,
        held: Option<Version>,
        usable: &impl Fn(&Token) -> bool,
        retired: &[u64],
        pending: &mut Option<Pending>,
    ) -> Result<Turn, Error> {
        let inner = &*self.inner;
        // Step 3: someone may have written between our read and our lease.
        let stored = match inner.bounded(inner.store.load(&inner.key)).await {
            Ok(s) => s,
            Err(e) => return Ok(Turn::StoreDown(e)),
        };
        let (view, record) = inner.view(stored.as_ref(), usable);
        let rolled_back = match after_read(view, held, pending.as_ref().map(|p| p.from), retired) {
            AfterRead::Adopt | AfterRead::LoginRequired => return Ok(Turn::ReadAgain),
            AfterRead::WritePending { .. } => {
                let p = pending.take().expect("a pending token to write");
                let version = next_version(view, random_u64()?);
                return self.write(p, view, version, pending).await;
            }
            AfterRead::Fetch { .. } => false,
            AfterRead::RolledBack { .. } => true,
        };
        pending.take();
        // The fleet's cool-down: a refused credential anywhere holds every process.
        let prior = match self.check_cooldown().await {
            Ok(prior) => prior,
            Err(e) if e.is_store_unavailable() => return Ok(Turn::StoreDown(e)),
            Err(e) => return Err(e),
        };
        // Step 4: fetch from the freshest token there is: the stored one (its
        // refresh token is the latest), unless the store rolled back past the
        // one held here, whose refresh token is then the live one.
        let latest = match record {
            Some(Record::Token(t)) if !rolled_back => Some(t),
            _ => None,
        };
        let from = if rolled_back {
            tracing::warn!(
                credential = &*inner.credential,
                key = inner.key.as_str(),
                "the shared store holds an older entry than this process (it lost writes): \
                 refreshing from the token held here"
            );
            previous
        } else {
            latest.as_ref().or(previous)
        };
        // The lease is checked once more right before the request: a holder
        // that stalled since taking it must not make a request its successor
        // makes too (a second token ends the first at Altrata).
        let renew = inner
            .store
            .renew_lease(&inner.key, &inner.owner, inner.lease_ttl);
        match inner.bounded(renew).await {
            Ok(true) => {}
            Ok(false) => return Ok(Turn::ReadAgain),
            Err(e) => return Ok(Turn::StoreDown(e)),
        }
        let token = match self.fetch_renewing(source, from).await {
            Ok(t) => t,
            Err(e) => {
                if e.is_login_required() && from.and_then(|f| f.refresh_token()).is_some() {
                    // The refresh token we sent was rejected: mark the user, still
                    // under the lease, by a fenced compare-and-set on what we
                    // refreshed from, so that a login written meanwhile is not
                    // overwritten and no process sends the dead token again.
                    if let Some(user) = e.user_key() {
                        self.mark_login_required(user, view).await;
                    }
                } else if e.is_credential_refusal() {
                    self.record_cooldown(&e, prior).await;
                }
                return Err(e);
            }
        };
        // The credentials work: the count of failures in a row starts over.
        *lock(&inner.fleet_gate) = None;
        // Step 5: write, fenced by the lease, which also notifies.
        let fresh = random_u64()?;
        let version = if rolled_back {
            new_incarnation(view.map_or(0, |v| v.version.generation), fresh)
        } else {
            next_version(view, fresh)
        };
        let fetched = Pending {
            token,
            from: view.and_then(|v| (v.holds != Holds::Unreadable).then_some(v.version)),
        };
        self.write(fetched, view, version, pending).await
    }

    /// Writes a token fetched here as `version`, on top of `stored`, while the
    /// lease is ours. A store error is retried (with backoff, the lease renewed
    /// between tries); if the store stays down the token is kept pending and
    /// served here, to be written when the store answers.
    pub(super) async fn write(
        &self,
        token: Pending,
        stored: Option<Stored>,
        version: Version,
        pending: &mut Option<Pending>,
    ) -> Result<Turn, Error> {
        let inner = &*self.inner;
        let base = stored.map_or(0, |s| s.version.generation);
        let entry = StoredEntry {
            generation: version.generation,
            data: encode(
                &Record::Token(token.token.clone()),
                &inner.key,
                version,
                inner.cipher.as_deref(),
            )?,
        };
        let mut delay = inner.store_timeout / 4;
        for attempt in 1..=WRITE_ATTEMPTS {
            let cas =
                inner
                    .store
                    .compare_and_set(&inner.key, base, Some(&inner.owner), entry.clone());
            match inner.bounded(cas).await {
                Ok(true) => {
                    tracing::debug!(
                        credential = &*inner.credential,
                        key = inner.key.as_str(),
                        generation = version.generation,
                        "token stored for the fleet"
                    );
                    return Ok(Turn::Done(Fetched {
                        token: token.token,
                        version: Some(version),
                        fetched_here: true,
                    }));
                }
                Ok(false) => {
                    // Fenced out (our lease ran out) or the entry moved. A token
                    // with a refresh token is kept, and the decisions say from
                    // a new read whether it is still the newest; one without is
                    // only a token, which the next holder's may have revoked.
                    tracing::warn!(
                        credential = &*inner.credential,
                        key = inner.key.as_str(),
                        base,
                        "token write lost (lease expired, or a newer entry): reading again"
                    );
                    if token.token.refresh_token().is_some() {
                        *pending = Some(token);
                    }
                    return Ok(Turn::ReadAgain);
                }
                Err(e) if attempt < WRITE_ATTEMPTS => {
                    tracing::warn!(credential = &*inner.credential, key = inner.key.as_str(), attempt, error = %e, "token write failed; retrying under the lease");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    let renew = inner
                        .store
                        .renew_lease(&inner.key, &inner.owner, inner.lease_ttl);
                    if let Ok(false) = inner.bounded(renew).await {
                        if token.token.refresh_token().is_some() {
                            *pending = Some(token);
                        }
                        return Ok(Turn::ReadAgain);
                    }
                }
                Err(e) => {
                    let fetched = Fetched {
                        token: token.token.clone(),
                        version: None,
                        fetched_here: true,
                    };
                    if token.token.refresh_token().is_some() {
                        // Its refresh token may be the only live one: keep it,
                        // and the lease (nobody refreshes from the old one
                        // meanwhile), until the store takes it.
                        tracing::warn!(credential = &*inner.credential, key = inner.key.as_str(), error = %e, "token not stored: serving it here, holding the lease, writing it when the store answers");
                        *pending = Some(token);
                    } else {
                        tracing::warn!(credential = &*inner.credential, key = inner.key.as_str(), error = %e, "token not stored: serving it here");
                    }
                    return Ok(Turn::Done(fetched));
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Marks the user "log in again", fenced, on top of `stored`.
    async fn mark_login_required(&self, user: &str, stored: Option<Stored>) {
        let inner = &*self.inner;
        let base = stored.map_or(0, |s| s.version.generation);
        let result = async {
            let version = next_version(stored, random_u64()?);
            let entry = StoredEntry {
                generation: version.generation,
                data: encode(
                    &Record::LoginRequired(user.to_owned()),
                    &inner.key,
                    version,
                    inner.cipher.as_deref(),
                )?,
            };
            let cas = inner
                .store
                .compare_and_set(&inner.key, base, Some(&inner.owner), entry);
            inner.bounded(cas).await
        }
        .await;
        match result {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    credential = &*inner.credential,
                    key = inner.key.as_str(),
                    "login-required mark not stored: the entry moved on"
                )
            }
            Err(e) => {
                tracing::warn!(credential = &*inner.credential, key = inner.key.as_str(), error = %e, "login-required mark not stored")
            }
        }
    }
}

impl Inner {
    /// A store operation, bounded by the store timeout.
    pub(super) async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        super::within(self.store_timeout, op).await
    }

    /// The stored entry as the decisions see it, and its record if it decodes.
    pub(super) fn view(
        &self,
        stored: Option<&StoredEntry>,
        usable: &impl Fn(&Token) -> bool,
    ) -> (Option<Stored>, Option<Record>) {
        let Some(s) = stored else {
            return (None, None);
        };
        match decode(&s.data, &self.key, s.generation, self.cipher.as_deref()) {
            Ok((epoch, record)) => {
                let holds = match &record {
                    Record::Token(t) => Holds::Token { usable: usable(t) },
                    Record::LoginRequired(_) => Holds::LoginRequired,
                };
                let version = Version {
                    epoch,
                    generation: s.generation,
                };
                (Some(Stored { version, holds }), Some(record))
            }
            Err(e) => {
                // Another key, damaged, or an older entry written back: not
                // usable, so the lease holder fetches and overwrites it (by
                // compare-and-set) rather than the whole fleet failing on it.
                tracing::warn!(credential = &*self.credential, key = self.key.as_str(), error = %e, "stored entry unusable; it will be replaced");
                let version = Version {
                    epoch: 0,
                    generation: s.generation,
                };
                let view = Stored {
                    version,
                    holds: Holds::Unreadable,
                };
                (Some(view), None)
            }
        }
    }

    pub(super) fn up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(
                credential = &*self.credential,
                key = self.key.as_str(),
                "shared token store reachable again"
            );
        }
    }
}

pub(super) fn random_u64() -> Result<u64, Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|_| Error::config("no randomness for the shared store"))?;
    Ok(u64::from_le_bytes(bytes))
}

pub(super) fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
