//! The background task of one credential: refreshes ahead of expiry and
//! retires the token at its time, holding only a weak reference (it ends with
//! the credential); and the guard that marks the token unwatched when the task
//! is gone, so that requests check the clock themselves.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use futures_util::future;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Ahead, TokenManager, FRESH, UNWATCHED};

/// Owned by the driver task. Dropped when the task ends for any reason,
/// including its runtime shutting down: then the current token is marked
/// unwatched, so that requests check its deadline themselves.
pub(super) struct DriverAlive(pub(super) Weak<TokenManager>);

impl Drop for DriverAlive {
    fn drop(&mut self) {
        let Some(m) = self.0.upgrade() else { return };
        let mut state = m.lock();
        state.driver_alive = false;
        if let Some(cur) = m.current.load_full() {
            if cur.stale_at.is_some() {
                let _ = cur.state.compare_exchange(
                    FRESH,
                    UNWATCHED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
    }
}

/// The background task of one credential: refreshes ahead and retires the token
/// at its time. Holds only a weak reference, so it ends with the credential.
pub(super) async fn drive(manager: Weak<TokenManager>, changed: Arc<Notify>, _alive: DriverAlive) {
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let wake = {
            let Some(m) = manager.upgrade() else { return };
            let current = m.current.load_full();
            let now = Instant::now();
            match current {
                Some(cur) if !cur.is_retired() => match (cur.refresh_at, cur.stale_at) {
                    (Some(refresh_at), Some(stale_at)) => {
                        if now >= stale_at {
                            cur.retire();
                            tracing::debug!(credential = %m.name, generation = cur.generation, "token retired at expiry");
                            None
                        } else if now < refresh_at {
                            // With no refresh-ahead window, retirement comes first.
                            Some(refresh_at.min(stale_at))
                        } else {
                            match m.refresh_ahead(cur.generation) {
                                Ahead::Running(_) => Some(stale_at),
                                Ahead::NotBefore(nb) => Some(nb.min(stale_at)),
                            }
                        }
                    }
                    _ => None,
                },
                _ => None,
            }
        };
        match wake {
            Some(at) => {
                let sleep = std::pin::pin!(tokio::time::sleep_until(at));
                future::select(sleep, notified.as_mut()).await;
            }
            None => notified.await,
        }
    }
}
