//! Managed tokens, one test binary: the cache, refresh ahead, expiry, backoff
//! and cool-down under paused time; single flight under load on loopback; and
//! the credential's lifecycle (seeds, runtimes, background tasks, edge inputs,
//! operator control). What the cache reports through `metrics` is
//! tests/observability.rs, a binary of its own: it installs the process-wide
//! recorder, which would count these tests' metrics too.

#[path = "../common/mod.rs"]
mod common;

mod managed_concurrency;
mod managed_time;
mod stack_lifecycle;
