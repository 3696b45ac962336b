//! [`RedisStore`]: a [`TokenStore`] on Redis (a single server, or a Redis
//! Cluster), through the `redis` crate's reconnecting connections.
//!
//! Why `redis` and not `fred`: it is the crate most Rust services already
//! depend on, its `ConnectionManager` reconnects on its own (what "Redis went
//! away and came back" needs), and its cluster client routes a credential's keys,
//! which share a hash tag, to one node; the protocol needs nothing more than
//! `SET NX PX`, `HGET`/`HSET`, three short Lua scripts and `PUBLISH`.
//!
//! Layout, per credential (`ns:{hash}` is the [`StoreKey`]):
//!
//! * `ns:{hash}:token`: a hash with `g` (the generation) and `d` (the encoded,
//!   optionally encrypted token);
//! * `ns:{hash}:lease`: the lease, `SET NX PX` with the holder's owner token;
//! * `ns:{hash}:changed`: the channel a write or a release is published on.
//!
//! Waiters subscribe to the channel, then read again, so a notification cannot
//! slip between their read and their subscription; on a cluster (or if
//! subscribing fails) they poll.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, Script};

use super::store::{StoreKey, StoredEntry, TokenStore};
use crate::error::Error;

const COMPARE_AND_SET: &str = r"
local current = redis.call('HGET', KEYS[1], 'g')
if (not current and ARGV[1] == '0') or current == ARGV[1] then
  redis.call('HSET', KEYS[1], 'g', ARGV[2], 'd', ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[2])
  return 1
end
return 0
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0
";

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A [`TokenStore`] on Redis. Cheap to clone; share one per process.
///
/// ```no_run
/// use tower_client_auth::token::{RedisStore, SharedStore};
///
/// # async fn f() -> Result<(), tower_client_auth::Error> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// let shared = SharedStore::new(store).namespace("billing-service");
/// # let _ = shared; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    /// For change notifications (a single server only).
    pubsub: Option<redis::Client>,
    timeout: Duration,
}

impl RedisStore {
    /// Connects to one Redis server (`redis://host:port/db`), with 1 s
    /// connection and response timeouts: a store that does not answer counts as
    /// unavailable rather than holding token requests up.
    pub async fn connect(url: &str) -> Result<RedisStore, Error> {
        Self::connect_with_timeout(url, Duration::from_secs(1)).await
    }

    /// Like [`connect`](Self::connect), with another timeout.
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<RedisStore, Error> {
        let client = redis::Client::open(url).map_err(config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let manager = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(Error::store_unavailable)?;
        Ok(RedisStore {
            connection: Connection::Single(manager),
            pubsub: Some(client),
            timeout,
        })
    }

    /// Connects to a Redis Cluster through any of its nodes. Waiters poll
    /// instead of subscribing.
    pub async fn cluster(nodes: &[&str]) -> Result<RedisStore, Error> {
        let timeout = Duration::from_secs(1);
        let client = ClusterClient::builder(nodes.iter().copied())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .build()
            .map_err(config)?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(Error::store_unavailable)?;
        Ok(RedisStore {
            connection: Connection::Cluster(connection),
            pubsub: None,
            timeout,
        })
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &str,
        keys: &[String],
        args: &[&[u8]],
    ) -> Result<T, Error> {
        let script = Script::new(script);
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(*a);
        }
        match self.connection.clone() {
            Connection::Single(mut c) => invocation.invoke_async(&mut c).await,
            Connection::Cluster(mut c) => invocation.invoke_async(&mut c).await,
        }
        .map_err(Error::store_unavailable)
    }

    async fn wait_subscribed(
        &self,
        client: &redis::Client,
        key: &StoreKey,
        seen: u64,
        timeout: Duration,
    ) -> Result<(), Error> {
        let mut pubsub = tokio::time::timeout(self.timeout, client.get_async_pubsub())
            .await
            .map_err(|_| Error::store_unavailable("subscribing timed out"))?
            .map_err(Error::store_unavailable)?;
        pubsub
            .subscribe(key.channel())
            .await
            .map_err(Error::store_unavailable)?;
        // Subscribed first, then read: nothing published after our caller's read
        // can be missed.
        let generation = self.load(key).await?.map_or(0, |e| e.generation);
        if generation > seen {
            return Ok(());
        }
        let mut messages = pubsub.on_message();
        let _ = tokio::time::timeout(timeout, messages.next()).await;
        Ok(())
    }
}

fn config(e: redis::RedisError) -> Error {
    tracing::debug!(error = %e, "invalid Redis configuration");
    Error::config("invalid Redis URL or cluster nodes")
}

impl TokenStore for RedisStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<StoredEntry>, Error>> {
        Box::pin(async move {
            let entry = key.entry();
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(&entry).arg("g").arg("d");
            let (generation, data): (Option<u64>, Option<Vec<u8>>) =
                match self.connection.clone() {
                    Connection::Single(mut c) => cmd.query_async(&mut c).await,
                    Connection::Cluster(mut c) => cmd.query_async(&mut c).await,
                }
                .map_err(Error::store_unavailable)?;
            Ok(match (generation, data) {
                (Some(generation), Some(data)) => Some(StoredEntry { generation, data }),
                _ => None,
            })
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
        entry: StoredEntry,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let expected = expected.to_string();
            let generation = entry.generation.to_string();
            let channel = key.channel();
            let written: i64 = self
                .run(
                    COMPARE_AND_SET,
                    &[key.entry()],
                    &[
                        expected.as_bytes(),
                        generation.as_bytes(),
                        &entry.data,
                        channel.as_bytes(),
                    ],
                )
                .await?;
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
            let options = redis::SetOptions::default()
                .conditional_set(redis::ExistenceCheck::NX)
                .with_expiration(redis::SetExpiry::PX(ttl.as_millis().max(1) as u64));
            let set: Option<String> = match self.connection.clone() {
                Connection::Single(mut c) => c.set_options(key.lease(), owner, options).await,
                Connection::Cluster(mut c) => c.set_options(key.lease(), owner, options).await,
            }
            .map_err(Error::store_unavailable)?;
            Ok(set.is_some())
        })
    }

    fn renew_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let ms = ttl.as_millis().max(1).to_string();
            let renewed: i64 = self
                .run(RENEW, &[key.lease()], &[owner.as_bytes(), ms.as_bytes()])
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
            let channel = key.channel();
            let _: i64 = self
                .run(
                    RELEASE,
                    &[key.lease()],
                    &[owner.as_bytes(), channel.as_bytes()],
                )
                .await?;
            Ok(())
        })
    }

    fn wait_change<'a>(
        &'a self,
        key: &'a StoreKey,
        seen: u64,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if let Some(client) = &self.pubsub {
                match self.wait_subscribed(client, key, seen, timeout).await {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::debug!(error = %e, "change notification unavailable; polling")
                    }
                }
            }
            tokio::time::sleep(timeout).await;
            Ok(())
        })
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.connection {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore").field("kind", &kind).finish()
    }
}
