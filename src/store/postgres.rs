//! [`PgStore`]: a [`TokenStore`] on PostgreSQL, durable across restarts: many
//! users' refresh tokens, one row each.
//!
//! Why `tokio-postgres` with `deadpool-postgres`: plain SQL with no compile-time
//! database, a small dependency tree, and a pool that reconnects; `sqlx` would
//! bring its macros and drivers for one table.
//!
//! The schema, created by [`PgStore::migrate`] (idempotent) or by running
//! [`PgStore::MIGRATION`] yourself:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS tower_client_auth_tokens (
//!     key         text PRIMARY KEY,         -- namespace:{hash of the identity}
//!     generation  bigint NOT NULL DEFAULT 0, -- grows by one per write
//!     data        bytea,                     -- the encoded (optionally sealed) token
//!     lease_owner text,
//!     lease_until timestamptz,
//!     updated_at  timestamptz NOT NULL DEFAULT now()
//! );
//! ALTER TABLE tower_client_auth_tokens
//!     ADD COLUMN IF NOT EXISTS cooldown_data  bytea,       -- the fleet's cool-down record
//!     ADD COLUMN IF NOT EXISTS cooldown_until timestamptz;
//! ```
//!
//! Writes are compare-and-set on `generation`, fenced by the lease in the same
//! statement (`UPDATE … WHERE generation = $2 AND lease_owner = $5 AND
//! lease_until >= now()`), the lease is an `INSERT … ON CONFLICT DO UPDATE …
//! WHERE lease_until < now()`, and waiters poll (no `LISTEN` connection is
//! held). Every operation is bounded by the store's timeout (2 s by default);
//! a connection that did not answer in time is closed, not reused.

use std::fmt;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::BoxFuture;

use super::{StoreKey, StoredEntry, TokenStore};
use crate::error::Error;

/// A [`TokenStore`] on PostgreSQL. Cheap to clone (a pool inside).
///
/// ```no_run
/// use tower_client_auth::store::PgStore;
///
/// # async fn f() -> Result<(), tower_client_auth::Error> {
/// let store = PgStore::connect("host=127.0.0.1 user=postgres dbname=app").await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    timeout: Duration,
}

impl PgStore {
    /// The schema: one row per key, compare-and-set on `generation`, the lease
    /// in `lease_owner`/`lease_until`.
    pub const MIGRATION: &'static str = "CREATE TABLE IF NOT EXISTS tower_client_auth_tokens (
    key         text PRIMARY KEY,
    generation  bigint NOT NULL DEFAULT 0,
    data        bytea,
    lease_owner text,
    lease_until timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tower_client_auth_tokens
    ADD COLUMN IF NOT EXISTS cooldown_data bytea,
    ADD COLUMN IF NOT EXISTS cooldown_until timestamptz";

    /// Connects with a libpq-style configuration string (`host=… user=…
    /// dbname=…`) and a pool of up to 16 connections, without TLS (for a server
    /// on the same host or network; put TLS in front otherwise).
    pub async fn connect(config: &str) -> Result<PgStore, Error> {
        Self::connect_with_timeout(config, Duration::from_secs(2)).await
    }

    /// Like [`connect`](Self::connect), with another bound on each operation
    /// (connecting, taking a connection from the pool, each statement).
    pub async fn connect_with_timeout(config: &str, timeout: Duration) -> Result<PgStore, Error> {
        let mut pg: tokio_postgres::Config = config
            .parse()
            .map_err(|_| Error::config("invalid PostgreSQL configuration string"))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(timeout);
        }
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|_| Error::config("cannot build the PostgreSQL pool"))?;
        let store = PgStore { pool, timeout };
        // Fail now, not on the first token request, if the server is not there.
        drop(store.client().await?);
        Ok(store)
    }

    /// Creates the table if it does not exist.
    pub async fn migrate(&self) -> Result<(), Error> {
        let client = self.client().await?;
        client
            .batch_execute(Self::MIGRATION)
            .await
            .map_err(|e| Error::store_driver(&e))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(|e| Error::store_driver(&e))
    }

    /// What a statement that did not answer in time leaves: its connection is
    /// taken out of the pool and closed (a later statement on it would queue
    /// behind the stuck one).
    fn timed_out(&self, client: deadpool_postgres::Object) -> Error {
        drop(deadpool_postgres::Object::take(client));
        Error::store_unavailable("PostgreSQL did not answer within the store timeout")
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, Error> {
        let client = self.client().await?;
        let result = tokio::time::timeout(self.timeout, async {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        })
        .await;
        match result {
            Ok(r) => r.map_err(|e| Error::store_driver(&e)),
            Err(_) => Err(self.timed_out(client)),
        }
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, Error> {
        let client = self.client().await?;
        let result = tokio::time::timeout(self.timeout, async {
            let statement = client.prepare_cached(sql).await?;
            client.query_opt(&statement, params).await
        })
        .await;
        match result {
            Ok(r) => r.map_err(|e| Error::store_driver(&e)),
            Err(_) => Err(self.timed_out(client)),
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_millis().min(i64::MAX as u128) as f64
}

fn generation(g: u64) -> Result<i64, Error> {
    i64::try_from(g).map_err(|_| Error::store_codec("generation out of range"))
}

impl TokenStore for PgStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<StoredEntry>, Error>> {
        Box::pin(async move {
            let row = self
                .query_opt(
                    "SELECT generation, data FROM tower_client_auth_tokens \
                     WHERE key = $1 AND data IS NOT NULL",
                    &[&key.as_str()],
                )
                .await?;
            Ok(match row {
                Some(row) => {
                    let generation: i64 = row.try_get(0).map_err(|e| Error::store_driver(&e))?;
                    let data: Vec<u8> = row.try_get(1).map_err(|e| Error::store_driver(&e))?;
                    Some(StoredEntry {
                        generation: u64::try_from(generation).unwrap_or(0),
                        data,
                    })
                }
                None => None,
            })
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
        lease_owner: Option<&'a str>,
        entry: StoredEntry,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let (expected, next) = (generation(expected)?, generation(entry.generation)?);
            // Fenced: with an owner, only while that owner's lease runs, in the
            // same statement as the generation check.
            let written = if expected == 0 && lease_owner.is_none() {
                // First write outside the lease: the row may be missing, or
                // hold only a lease.
                self.execute(
                    "INSERT INTO tower_client_auth_tokens AS t (key, generation, data) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE \
                     SET generation = EXCLUDED.generation, data = EXCLUDED.data, updated_at = now() \
                     WHERE t.generation = 0",
                    &[&key.as_str(), &next, &entry.data],
                )
                .await?
            } else {
                // A lease holder's row exists (its lease is in it).
                self.execute(
                    "UPDATE tower_client_auth_tokens \
                     SET generation = $3, data = $4, updated_at = now() \
                     WHERE key = $1 AND generation = $2 \
                     AND ($5::text IS NULL OR (lease_owner = $5 AND lease_until >= now()))",
                    &[&key.as_str(), &expected, &next, &entry.data, &lease_owner],
                )
                .await?
            };
            Ok(written == 1)
        })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let taken = self
                .execute(
                    "INSERT INTO tower_client_auth_tokens AS t (key, lease_owner, lease_until) \
                     VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
                     ON CONFLICT (key) DO UPDATE \
                     SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until \
                     WHERE t.lease_until IS NULL OR t.lease_until < now()",
                    &[&key.as_str(), &owner, &millis(ttl)],
                )
                .await?;
            Ok(taken == 1)
        })
    }

    fn renew_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let renewed = self
                .execute(
                    "UPDATE tower_client_auth_tokens \
                     SET lease_until = now() + $3 * interval '1 millisecond' \
                     WHERE key = $1 AND lease_owner = $2 AND lease_until >= now()",
                    &[&key.as_str(), &owner, &millis(ttl)],
                )
                .await?;
            Ok(renewed == 1)
        })
    }

    fn release_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.execute(
                "UPDATE tower_client_auth_tokens SET lease_owner = NULL, lease_until = NULL \
                 WHERE key = $1 AND lease_owner = $2",
                &[&key.as_str(), &owner],
            )
            .await?;
            Ok(())
        })
    }

    fn wait_change<'a>(
        &'a self,
        _key: &'a StoreKey,
        _seen: u64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(tokio::time::sleep(timeout).map(Ok))
    }

    fn load_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        Box::pin(async move {
            let row = self
                .query_opt(
                    "SELECT cooldown_data FROM tower_client_auth_tokens \
                     WHERE key = $1 AND cooldown_until > now()",
                    &[&key.as_str()],
                )
                .await?;
            match row {
                Some(row) => row
                    .try_get::<_, Option<Vec<u8>>>(0)
                    .map_err(|e| Error::store_driver(&e)),
                None => Ok(None),
            }
        })
    }

    fn set_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
        record: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO tower_client_auth_tokens AS t (key, cooldown_data, cooldown_until) \
                 VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
                 ON CONFLICT (key) DO UPDATE \
                 SET cooldown_data = EXCLUDED.cooldown_data, cooldown_until = EXCLUDED.cooldown_until",
                &[&key.as_str(), &record, &millis(ttl)],
            )
            .await?;
            Ok(())
        })
    }

    fn clear_cooldown<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.execute(
                "UPDATE tower_client_auth_tokens SET cooldown_data = NULL, cooldown_until = NULL \
                 WHERE key = $1",
                &[&key.as_str()],
            )
            .await?;
            Ok(())
        })
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("pool_size", &self.pool.status().size)
            .finish()
    }
}

use futures_util::FutureExt as _;
