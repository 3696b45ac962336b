//! Metrics through the `metrics` facade (feature `metrics`): one function per
//! thing measured, each a no-op without the feature, so that the manager says
//! *what* happened in one line and the names live in one place.
//!
//! The one label is `credential`: the credential's name (user-given, else its
//! origins and token URL), never a secret and never a user key, so its
//! cardinality is the number of credentials, not of users.

#[cfg(feature = "metrics")]
mod on {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use metrics::{counter, gauge, histogram, SharedString};

    use crate::error::Error;

    fn label(name: &Arc<str>) -> SharedString {
        SharedString::from_shared(Arc::clone(name))
    }

    fn outcome(result: Result<(), &Error>) -> &'static str {
        match result {
            Ok(()) => "success",
            Err(e) if e.is_transient() => "transient_error",
            Err(_) => "permanent_error",
        }
    }

    pub(crate) fn token_request(name: &Arc<str>, result: Result<(), &Error>) {
        counter!("tower_client_auth_token_requests_total",
            "credential" => label(name), "outcome" => outcome(result))
        .increment(1);
    }

    pub(crate) fn token_flight(name: &Arc<str>, result: Result<(), &Error>, took: Duration) {
        histogram!("tower_client_auth_token_fetch_duration_seconds",
            "credential" => label(name), "outcome" => outcome(result))
        .record(took.as_secs_f64());
    }

    pub(crate) fn cooldown(name: &Arc<str>) {
        counter!("tower_client_auth_cooldowns_total", "credential" => label(name)).increment(1);
    }

    pub(crate) fn retry_on_401(name: &Arc<str>) {
        counter!("tower_client_auth_retries_on_401_total", "credential" => label(name))
            .increment(1);
    }

    pub(crate) fn coalesced_waiter(name: &Arc<str>) {
        counter!("tower_client_auth_coalesced_waiters_total", "credential" => label(name))
            .increment(1);
    }

    pub(crate) fn refresh_ahead(name: &Arc<str>) {
        counter!("tower_client_auth_refreshes_ahead_total", "credential" => label(name))
            .increment(1);
    }

    pub(crate) fn dpop_nonce_retry(name: &Arc<str>) {
        counter!("tower_client_auth_dpop_nonce_retries_total", "credential" => label(name))
            .increment(1);
    }

    /// The expiry as a timestamp: a gauge of "seconds left" would be right
    /// only at the moment it was set; `timestamp - time()` is right always.
    pub(crate) fn token_installed(name: &Arc<str>, expires_in: Option<Duration>) {
        let Some(left) = expires_in else { return };
        if let Some(at) = SystemTime::now().checked_add(left) {
            if let Ok(unix) = at.duration_since(UNIX_EPOCH) {
                gauge!("tower_client_auth_token_expiry_timestamp_seconds",
                    "credential" => label(name))
                .set(unix.as_secs_f64());
            }
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod on {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::error::Error;

    #[inline(always)]
    pub(crate) fn token_request(_: &Arc<str>, _: Result<(), &Error>) {}
    #[inline(always)]
    pub(crate) fn token_flight(_: &Arc<str>, _: Result<(), &Error>, _: Duration) {}
    #[inline(always)]
    pub(crate) fn cooldown(_: &Arc<str>) {}
    #[inline(always)]
    pub(crate) fn retry_on_401(_: &Arc<str>) {}
    #[inline(always)]
    pub(crate) fn coalesced_waiter(_: &Arc<str>) {}
    #[inline(always)]
    pub(crate) fn refresh_ahead(_: &Arc<str>) {}
    #[inline(always)]
    pub(crate) fn dpop_nonce_retry(_: &Arc<str>) {}
    #[inline(always)]
    pub(crate) fn token_installed(_: &Arc<str>, _: Option<Duration>) {}
}

pub(crate) use on::*;
