//! The cross-process single flight over a [`TokenStore`], wired to I/O. The
//! decisions are [`fleet`](super::fleet)'s, model-checked there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chacha20poly1305::XChaCha20Poly1305;
use futures_util::future::{self, Either};
use tokio::time::Instant;

use super::fleet::{after_read, next_generation, AfterRead, Stored};
use super::store::{
    decode, encode, SharedStore, StoreKey, StoredEntry, TokenStore, WhenUnavailable,
};
use super::{Token, TokenSource};
use crate::error::Error;

/// A credential's resolved link to its shared store.
pub(crate) struct Shared {
    store: Arc<dyn TokenStore>,
    key: StoreKey,
    /// This process's owner token for the lease: unique per process and credential.
    owner: String,
    when_unavailable: WhenUnavailable,
    lease_ttl: Duration,
    poll_interval: Duration,
    cipher: Option<Arc<XChaCha20Poly1305>>,
    /// Set while the store is unreachable, so that it is logged once.
    down: AtomicBool,
    /// The credential's name, on every event (warnings too, which a WARN
    /// filter shows without the DEBUG span around them).
    credential: Arc<str>,
}

/// A token from the fleet's protocol, with its store generation (0: fetched
/// locally while the store was unreachable).
pub(crate) struct Fetched {
    pub(crate) token: Token,
    pub(crate) generation: u64,
    /// Fetched from the source by this process (not adopted from the store).
    pub(crate) fetched_here: bool,
}

impl Shared {
    pub(crate) fn new(
        config: SharedStore,
        source_identity: Option<String>,
        credential: Arc<str>,
    ) -> Result<Shared, Error> {
        let identity = config.identity.or(source_identity).ok_or_else(|| {
            Error::config(
                "a shared store needs the credential's identity: this token source reports none, \
                 set SharedStore::identity",
            )
        })?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce)
            .map_err(|_| Error::config("no randomness for a lease owner"))?;
        Ok(Shared {
            store: config.store,
            key: StoreKey::new(&config.namespace, &identity),
            owner: format!("{}-{:016x}", std::process::id(), u64::from_le_bytes(nonce)),
            when_unavailable: config.when_unavailable,
            lease_ttl: config.lease_ttl,
            poll_interval: config.poll_interval,
            cipher: config.cipher,
            down: AtomicBool::new(false),
            credential,
        })
    }

    /// Gets a token the fleet agrees on. `held` is the store generation of the
    /// token this process holds (0: none, or one fetched locally); `usable`
    /// says whether a stored token is worth adopting; `previous` is this
    /// process's current token.
    pub(crate) async fn fetch(
        &self,
        source: &dyn TokenSource,
        previous: Option<&Token>,
        held: u64,
        usable: impl Fn(&Token) -> bool,
    ) -> Result<Fetched, Error> {
        // Waiting on a holder is bounded: its lease ends within `lease_ttl` of its
        // last renewal, and a new holder's request within two thirds of that.
        let give_up = super::core::later(Instant::now(), self.lease_ttl.saturating_mul(4));
        loop {
            // Step 1: read.
            let stored = match self.store.load(&self.key).await {
                Ok(s) => s,
                Err(e) => return self.unavailable(e, source, previous).await,
            };
            self.up();
            let (view, decoded) = self.view(stored.as_ref(), &usable)?;
            if stored.is_none() && previous.is_none() && source.needs_previous() {
                // Nothing to refresh from (a user who never logged in): let the
                // source say so, with no lease and nothing written.
                return Err(match source.fetch(None).await {
                    Ok(_) => Error::store_codec("a source that needs a previous token made one"),
                    Err(e) => e,
                });
            }
            if after_read(view, held) == AfterRead::Adopt {
                if let (Some(token), Some(s)) = (decoded, stored) {
                    tracing::debug!(
                        credential = &*self.credential,
                        key = self.key.as_str(),
                        generation = s.generation,
                        "token adopted from the shared store"
                    );
                    return Ok(Fetched {
                        token,
                        generation: s.generation,
                        fetched_here: false,
                    });
                }
            }
            // Step 2: the lease.
            let taken = match self
                .store
                .try_lease(&self.key, &self.owner, self.lease_ttl)
                .await
            {
                Ok(t) => t,
                Err(e) => return self.unavailable(e, source, previous).await,
            };
            if !taken {
                if Instant::now() >= give_up {
                    return Err(Error::store_unavailable(
                        "the shared store's lease holder did not finish in time",
                    ));
                }
                let seen = view.map_or(0, |v| v.generation);
                if let Err(e) = self
                    .store
                    .wait_change(&self.key, seen, self.poll_interval)
                    .await
                {
                    return self.unavailable(e, source, previous).await;
                }
                continue;
            }
            let result = self.holding_lease(source, previous, held, &usable).await;
            // Compare-and-delete: a lease that expired and was taken is not ours.
            if let Err(e) = self.store.release_lease(&self.key, &self.owner).await {
                tracing::debug!(credential = &*self.credential, key = self.key.as_str(), error = %e, "lease not released; it will expire");
            }
            match result {
                Ok(Some(fetched)) => return Ok(fetched),
                // Fenced out: someone wrote a newer token; read again.
                Ok(None) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Steps 3 to 5, with the lease held. `Ok(None)`: the write lost.
    async fn holding_lease(
        &self,
        source: &dyn TokenSource,
        previous: Option<&Token>,
        held: u64,
        usable: &impl Fn(&Token) -> bool,
    ) -> Result<Option<Fetched>, Error> {
        // Step 3: someone may have written between our read and our lease.
        let stored = self
            .store
            .load(&self.key)
            .await
            .map_err(Error::store_unavailable)?;
        let (view, decoded) = self.view(stored.as_ref(), usable)?;
        let base = match after_read(view, held) {
            AfterRead::Adopt => {
                if let (Some(token), Some(s)) = (decoded, &stored) {
                    return Ok(Some(Fetched {
                        token,
                        generation: s.generation,
                        fetched_here: false,
                    }));
                }
                view.map_or(0, |v| v.generation)
            }
            AfterRead::Fetch { base } => base,
        };
        // Step 4: fetch from the freshest token there is (its refresh token is
        // the latest), renewing the lease meanwhile.
        let latest = match &stored {
            Some(s) => decode(&s.data, &self.key, self.cipher.as_deref()).ok(),
            None => None,
        };
        // A token this process got without the store (while it was unreachable)
        // is newer than anything stored: its refresh token is the live one.
        let from = if held == 0 && previous.is_some() {
            previous
        } else {
            latest.as_ref().or(previous)
        };
        let token = match self.fetch_renewing(source, from).await {
            Ok(t) => t,
            Err(e) => {
                if e.is_login_required() && from.and_then(|f| f.refresh_token()).is_some() {
                    // The refresh token we sent was rejected: mark the user, still
                    // under the lease, by compare-and-set on what we refreshed
                    // from, so that a login written meanwhile is not overwritten
                    // and no process sends the dead token again.
                    if let Some(user) = e.user_key() {
                        let entry = StoredEntry {
                            generation: next_generation(base),
                            data: super::store::encode_login_required(user),
                        };
                        if let Err(store) = self.store.compare_and_set(&self.key, base, entry).await
                        {
                            tracing::warn!(credential = &*self.credential, key = self.key.as_str(), error = %store, "login-required mark not stored");
                        }
                    }
                }
                return Err(e);
            }
        };
        // Step 5: write if nobody else did (fencing), which also notifies.
        let generation = next_generation(base);
        let entry = StoredEntry {
            generation,
            data: encode(&token, &self.key, self.cipher.as_deref())?,
        };
        let written = match self.store.compare_and_set(&self.key, base, entry).await {
            Ok(w) => w,
            Err(e) => {
                // The token exists now (and may have rotated a refresh token or
                // ended the previous one): never throw it away. Use it here; the
                // next fetch writes from it.
                tracing::warn!(credential = &*self.credential, key = self.key.as_str(), error = %e, "fetched token not stored: using it locally");
                return Ok(Some(Fetched {
                    token,
                    generation: 0,
                    fetched_here: true,
                }));
            }
        };
        if !written {
            tracing::warn!(
                credential = &*self.credential,
                key = self.key.as_str(),
                base,
                "token write lost to a newer one (lease expired?): adopting the stored token"
            );
            return Ok(None);
        }
        tracing::debug!(
            credential = &*self.credential,
            key = self.key.as_str(),
            generation,
            "token fetched for the fleet"
        );
        Ok(Some(Fetched {
            token,
            generation,
            fetched_here: true,
        }))
    }

    async fn fetch_renewing(
        &self,
        source: &dyn TokenSource,
        from: Option<&Token>,
    ) -> Result<Token, Error> {
        let fetch = tokio::time::timeout(self.lease_ttl * 2 / 3, source.fetch(from));
        tokio::pin!(fetch);
        let mut renew = tokio::time::interval(self.lease_ttl / 3);
        renew.tick().await;
        loop {
            let tick = std::pin::pin!(renew.tick());
            match future::select(fetch.as_mut(), tick).await {
                Either::Left((result, _)) => {
                    return match result {
                        Ok(r) => r,
                        Err(_) => Err(Error::with_source(
                            crate::error::Kind::Timeout,
                            "token request outlived two thirds of the shared store's lease",
                        )),
                    };
                }
                Either::Right((_, _)) => {
                    match self
                        .store
                        .renew_lease(&self.key, &self.owner, self.lease_ttl)
                        .await
                    {
                        Ok(true) => {}
                        // A refresh-token request in flight is let finish: it may
                        // have rotated the only live refresh token (its write is
                        // fenced if someone else wrote).
                        Ok(false)
                            if self.when_unavailable == WhenUnavailable::FailClosed
                                && !source.needs_previous() =>
                        {
                            // Someone else may hold the lease now: a token we got
                            // would end theirs (Altrata). Give the request up.
                            tracing::warn!(
                                credential = &*self.credential,
                                key = self.key.as_str(),
                                "lease lost while fetching; giving the request up"
                            );
                            return Err(Error::store_unavailable("lease lost while fetching"));
                        }
                        Ok(false) => tracing::warn!(
                            credential = &*self.credential,
                            key = self.key.as_str(),
                            "lease lost while fetching; the write is fenced"
                        ),
                        Err(e) => {
                            tracing::debug!(credential = &*self.credential, key = self.key.as_str(), error = %e, "lease renewal failed")
                        }
                    }
                }
            }
        }
    }

    /// The stored entry as the decisions see it, and its token if it decodes.
    #[allow(clippy::type_complexity)]
    fn view(
        &self,
        stored: Option<&StoredEntry>,
        usable: &impl Fn(&Token) -> bool,
    ) -> Result<(Option<Stored>, Option<Token>), Error> {
        let Some(s) = stored else {
            return Ok((None, None));
        };
        let token = match decode(&s.data, &self.key, self.cipher.as_deref()) {
            Ok(t) => t,
            Err(e) if e.is_login_required() => return Err(e),
            Err(e) => {
                // Another key, or damaged: not usable, so the lease holder
                // fetches and overwrites it (by compare-and-set) rather than the
                // whole fleet failing on it forever.
                tracing::warn!(credential = &*self.credential, key = self.key.as_str(), error = %e, "stored token unusable; it will be replaced");
                let view = Stored {
                    generation: s.generation,
                    usable: false,
                };
                return Ok((Some(view), None));
            }
        };
        let view = Stored {
            generation: s.generation,
            usable: usable(&token),
        };
        Ok((Some(view), Some(token)))
    }

    async fn unavailable(
        &self,
        error: Error,
        source: &dyn TokenSource,
        previous: Option<&Token>,
    ) -> Result<Fetched, Error> {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(credential = &*self.credential, key = self.key.as_str(), error = %error, policy = ?self.when_unavailable, "shared token store unavailable");
        }
        match self.when_unavailable {
            WhenUnavailable::FailClosed => Err(Error::store_unavailable(error)),
            WhenUnavailable::FetchLocally => Ok(Fetched {
                token: source.fetch(previous).await?,
                generation: 0,
                fetched_here: true,
            }),
        }
    }

    fn up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(
                credential = &*self.credential,
                key = self.key.as_str(),
                "shared token store reachable again"
            );
        }
    }
}
