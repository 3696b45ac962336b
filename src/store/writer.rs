//! The background writer: a token fetched here that the store did not take
//! (it may hold the only live refresh token) is written as soon as it does,
//! unless a newer one was stored meanwhile.

use std::sync::atomic::Ordering;

use super::lease::{after_read, next_version, AfterRead};
use super::shared::{random_u64, Pending, Shared, Turn};
use crate::error::Error;
use crate::token::Token;

impl Shared {
    /// Starts the background writer of the pending token, unless it runs. It
    /// tries with backoff until the token is stored or superseded.
    pub(super) fn start_writer(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.writer.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.clone();
        handle.spawn(async move {
            let inner = &*shared.inner;
            loop {
                // Often: the store may answer again any moment, and the next
                // holder must not get there first.
                tokio::time::sleep(inner.poll_interval).await;
                let mut pending = inner.pending.lock().await;
                let done = pending.is_none()
                    || match shared.flush(&mut pending).await {
                        Ok(done) => done,
                        Err(e) => {
                            tracing::debug!(credential = &*inner.credential, error = %e, "pending token not written yet");
                            false
                        }
                    };
                if done {
                    // Under the lock: a fetch that leaves a token pending starts
                    // a writer under it too, and must not see this one running.
                    inner.writer.store(false, Ordering::Release);
                    break;
                }
            }
        });
    }

    /// One try at writing the pending token. `Ok(true)`: nothing is pending any
    /// more (written, or superseded).
    async fn flush(&self, pending: &mut Option<Pending>) -> Result<bool, Error> {
        let inner = &*self.inner;
        if !self.take_lease(true).await? {
            return Ok(false);
        }
        let result = async {
            let stored = inner.bounded(inner.store.load(&inner.key)).await?;
            inner.up();
            let (view, _) = inner.view(stored.as_ref(), &|_: &Token| true);
            match after_read(view, None, pending.as_ref().map(|p| p.from), &[]) {
                AfterRead::WritePending { .. } => {
                    let p = pending.take().expect("a pending token to write");
                    let version = next_version(view, random_u64()?);
                    match self.write(p, view, version, pending).await? {
                        Turn::Done(f) => Ok(f.version.is_some()),
                        Turn::ReadAgain => Ok(false),
                        Turn::StoreDown(e) => Err(e),
                    }
                }
                _ => {
                    tracing::warn!(
                        credential = &*inner.credential,
                        key = inner.key.as_str(),
                        "an unstored token was superseded by a newer stored one"
                    );
                    pending.take();
                    Ok(true)
                }
            }
        }
        .await;
        if pending.is_none() {
            self.release_lease().await;
        }
        result
    }
}
