//! The token request made under the lease: abandoned after two thirds of
//! the lease, the lease renewed every third of it meanwhile.

use futures_util::future::{self, Either};

use super::shared::Shared;
use super::WhenUnavailable;
use crate::error::Error;
use crate::token::{Token, TokenSource};

impl Shared {
    pub(super) async fn fetch_renewing(
        &self,
        source: &dyn TokenSource,
        from: Option<&Token>,
    ) -> Result<Token, Error> {
        let inner = &*self.inner;
        let fetch = tokio::time::timeout(inner.lease_ttl * 2 / 3, source.fetch(from));
        tokio::pin!(fetch);
        let mut renew = tokio::time::interval(inner.lease_ttl / 3);
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
                    // Renewal is bounded too: a stalled store must not hold up the
                    // request it guards.
                    let renewal =
                        inner
                            .store
                            .renew_lease(&inner.key, &inner.owner, inner.lease_ttl);
                    match inner.bounded(renewal).await {
                        Ok(true) => {}
                        // A refresh-token request in flight is let finish: it may
                        // have rotated the only live refresh token (its write is
                        // fenced, and the token kept until it is stored).
                        Ok(false)
                            if inner.when_unavailable == WhenUnavailable::FailClosed
                                && !source.needs_previous() =>
                        {
                            // Someone else may hold the lease now: a token we got
                            // would end theirs (Altrata). Give the request up.
                            tracing::warn!(
                                credential = &*inner.credential,
                                key = inner.key.as_str(),
                                "lease lost while fetching; giving the request up"
                            );
                            return Err(Error::store_unavailable("lease lost while fetching"));
                        }
                        Ok(false) => tracing::warn!(
                            credential = &*inner.credential,
                            key = inner.key.as_str(),
                            "lease lost while fetching; the write is fenced"
                        ),
                        Err(e) => {
                            tracing::debug!(credential = &*inner.credential, key = inner.key.as_str(), error = %e, "lease renewal failed")
                        }
                    }
                }
            }
        }
    }
}
