//! The fleet's cool-down: after a refused credential (a wrong password), one
//! record in the store holds every process, doubling per failure in a row.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::codec::{decode_cooldown, encode_cooldown, unix_ms, CooldownRecord};
use super::lease::fleet_cooldown;
use super::shared::{lock, FleetGate, Shared};
use crate::error::Error;
use crate::token::later;

/// How often a process re-reads the fleet's cool-down record while it is set:
/// an operator's `end_cooldown` reaches every process within this.
const COOLDOWN_RECHECK: Duration = Duration::from_secs(5);

impl Shared {
    /// Fails if the fleet is cooling down (the record is in the store); else
    /// returns how many permanent failures in a row came just before (0: none
    /// lately), for the next cool-down's length.
    pub(super) async fn check_cooldown(&self) -> Result<u32, Error> {
        let inner = &*self.inner;
        let data = inner
            .bounded(inner.store.load_cooldown(&inner.key))
            .await
            .map_err(Error::store_unavailable)?;
        let now = Instant::now();
        let Some(data) = data else {
            // Ended (its time ran out, or an operator ended it): a failure soon
            // after it is one more in a row.
            let mut gate = lock(&inner.fleet_gate);
            let recent = gate.filter(|g| now < g.seen_at + g.delay * 2 + COOLDOWN_RECHECK);
            *gate = recent.map(|g| FleetGate { until: now, ..g });
            return Ok(recent.map_or(0, |g| g.count));
        };
        let record = match decode_cooldown(&data, &inner.key, inner.cipher.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                // Unreadable (another key): it cannot say anything; the next
                // permanent failure overwrites it.
                tracing::warn!(credential = &*inner.credential, key = inner.key.as_str(), error = %e, "fleet cool-down record unreadable; ignoring it");
                return Ok(0);
            }
        };
        // The time left, for people (by the wall clock, which hosts may not
        // agree on: the decision is the record's presence, not this).
        let left =
            Duration::from_millis(record.until_ms.saturating_sub(unix_ms(SystemTime::now())));
        let delay = fleet_cooldown(inner.cooldown, inner.max_cooldown, record.count);
        *lock(&inner.fleet_gate) = Some(FleetGate {
            count: record.count,
            seen_at: now,
            until: later(now, left.max(Duration::from_millis(1))),
            delay,
        });
        Err(Error::fleet_cooling_down(
            record.code.as_deref(),
            record.description.as_deref(),
            record.status,
            left,
        ))
    }

    /// Records a permanent failure for the whole fleet: the record stays in the
    /// store for the cool-down (the store's own time-to-live).
    pub(super) async fn record_cooldown(&self, e: &Error, prior: u32) {
        let inner = &*self.inner;
        let count = prior.saturating_add(1);
        let delay = fleet_cooldown(inner.cooldown, inner.max_cooldown, count);
        let record = CooldownRecord {
            until_ms: unix_ms(SystemTime::now() + delay),
            count,
            status: e.status().map(|s| s.as_u16()),
            code: e.oauth2_code().map(str::to_owned),
            description: e.oauth2_description().map(str::to_owned),
        };
        let result = async {
            let data = encode_cooldown(&record, &inner.key, inner.cipher.as_deref())?;
            inner
                .bounded(inner.store.set_cooldown(&inner.key, data, delay))
                .await
        }
        .await;
        match result {
            Ok(()) => {
                let now = Instant::now();
                *lock(&inner.fleet_gate) = Some(FleetGate {
                    count,
                    seen_at: now,
                    until: later(now, delay),
                    delay,
                });
                tracing::warn!(
                    credential = &*inner.credential,
                    key = inner.key.as_str(),
                    cooldown_ms = delay.as_millis() as u64,
                    failures_in_a_row = count,
                    "permanent failure: the whole fleet cools down"
                );
            }
            Err(err) => {
                tracing::warn!(credential = &*inner.credential, key = inner.key.as_str(), error = %err, "fleet cool-down not recorded: this process cools down alone")
            }
        }
    }

    /// After a permanent failure, how long this process's own gate holds: the
    /// fleet's record decides (re-read every few seconds, so that ending it
    /// anywhere ends it everywhere), when there is one.
    pub(crate) fn gate_after_failure(&self, e: &Error) -> Option<Duration> {
        if e.is_transient() {
            return None;
        }
        let gate = (*lock(&self.inner.fleet_gate))?;
        let left = gate.until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| left.min(COOLDOWN_RECHECK))
    }

    /// Ends the fleet's cool-down (in the background, on the current runtime).
    pub(crate) fn end_cooldown(&self) {
        *lock(&self.inner.fleet_gate) = None;
        let inner = self.inner.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    match inner.bounded(inner.store.clear_cooldown(&inner.key)).await {
                        Ok(()) => tracing::info!(credential = &*inner.credential, key = inner.key.as_str(), "fleet cool-down ended"),
                        Err(e) => tracing::warn!(credential = &*inner.credential, key = inner.key.as_str(), error = %e, "fleet cool-down not ended: the store did not answer"),
                    }
                });
            }
            Err(_) => tracing::warn!(
                credential = &*inner.credential,
                "fleet cool-down not ended: no Tokio runtime to reach the store on"
            ),
        }
    }
}
