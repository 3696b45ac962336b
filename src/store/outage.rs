//! When the store cannot be reached: what `WhenUnavailable` says to do, and
//! the one thing it never does by default (send a refresh token without the
//! lease).

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::shared::{Fetched, Pending, Shared};
use super::WhenUnavailable;
use crate::error::Error;
use crate::token::{Token, TokenSource, Version};

impl Shared {
    pub(super) async fn unavailable(
        &self,
        error: Error,
        source: &dyn TokenSource,
        previous: Option<&Token>,
        held: Option<Version>,
        pending: &mut Option<Pending>,
    ) -> Result<Fetched, Error> {
        let inner = &*self.inner;
        if !inner.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(credential = &*inner.credential, key = inner.key.as_str(), error = %error, policy = ?inner.when_unavailable, "shared token store unavailable");
        }
        if let Some(p) = pending.as_ref() {
            // Still unstored, and still the newest: keep serving it.
            self.start_writer();
            if p.token.expires_at().is_none_or(|at| at > Instant::now()) {
                return Ok(Fetched {
                    token: p.token.clone(),
                    version: None,
                    fetched_here: false,
                });
            }
        }
        // From here on, a token request without the lease.
        let from = pending.as_ref().map(|p| &p.token).or(previous);
        let refreshes = source.needs_previous() || from.and_then(|t| t.refresh_token()).is_some();
        match inner.when_unavailable {
            WhenUnavailable::FailClosed => Err(Error::store_unavailable(error)),
            WhenUnavailable::FetchLocally if refreshes => {
                // Every process holds the same refresh token: refreshing from
                // it here and there is a reuse a rotating provider punishes.
                Err(Error::store_unavailable(error))
            }
            WhenUnavailable::FetchLocally => Ok(Fetched {
                token: source.fetch(from).await?,
                version: None,
                fetched_here: true,
            }),
            WhenUnavailable::FetchLocallyReusingRefreshTokens => {
                let token = source.fetch(from).await?;
                if refreshes {
                    // Its refresh token may be the only live one: store it as
                    // soon as the store answers.
                    // It was fetched on top of what this process held (or of
                    // what its earlier unstored token was).
                    let from = match pending.as_ref() {
                        Some(p) => p.from,
                        None => held,
                    };
                    *pending = Some(Pending {
                        token: token.clone(),
                        from,
                    });
                    self.start_writer();
                }
                Ok(Fetched {
                    token,
                    version: None,
                    fetched_here: true,
                })
            }
        }
    }
}
