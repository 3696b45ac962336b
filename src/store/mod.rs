//! Shared token stores: where a fleet of processes keeps one credential's token,
//! so that the fleet fetches one token per lifetime (see [`SharedStore`]).
//!
//! A [`TokenStore`] is a key-value store with five things: a versioned entry
//! read whole, a compare-and-set on its generation fenced by the lease's owner,
//! a lease with an owner, a change notification, and the fleet's cool-down
//! record. [`MemoryStore`] keeps them in this process (for tests, or several
//! credentials of one process); [`RedisStore`] (feature
//! `redis`) and [`PgStore`] (feature `postgres`) share them
//! across processes and hosts. What the fleet does when the store fails (a
//! write lost, a stall, an empty restart) is in the repository's
//! `RELIABILITY.md`.
//!
//! ```
//! use tower_client_auth::store::{MemoryStore, SharedStore};
//!
//! let shared = SharedStore::new(MemoryStore::new())
//!     .namespace("billing-service")
//!     .encrypt_with([7u8; 32]); // a key of your own, from your secret manager
//! # let _ = shared;
//! ```

mod codec;
mod config;
mod contract;
mod cooldown;
mod lease;
#[cfg(test)]
mod lease_model;
mod memory;
mod outage;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod renewal;
mod shared;
mod writer;

#[cfg(feature = "oauth2")]
pub(crate) use codec::{open_document, seal_document};
pub use config::{SharedStore, WhenUnavailable};
pub(crate) use contract::within;
pub use contract::{StoreKey, StoredEntry, TokenStore};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisStore;
pub(crate) use shared::Shared;
