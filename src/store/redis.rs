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
//! * `ns:{hash}:changed`: the channel a write or a release is published on;
//! * `ns:{hash}:cooldown`: the fleet's cool-down record, `SET PX`.
//!
//! A write is fenced: its script checks the lease's owner and the generation in
//! one atomic step (the lease key shares the entry's hash slot).
//!
//! Change notifications come through **one** pub/sub connection per
//! [`RedisStore`] (a pattern subscription on `*:changed`, kept by a background
//! task that reconnects), shared by every wait of every credential on it. A
//! waiter registers, then reads again, so a notification cannot slip between
//! its read and its wait; while that connection is down, or on a cluster,
//! waiters poll.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use futures_util::future::{self, BoxFuture, Either};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, Script};
use tokio::sync::{oneshot, Notify};

use super::{StoreKey, StoredEntry, TokenStore};
use crate::error::Error;

/// KEYS: entry, lease. ARGV: expected generation, new generation, data,
/// channel, lease owner ('' for a write outside the lease).
static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], 'g')
if not ((not current and ARGV[1] == '0') or current == ARGV[1]) then
  return 0
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[5] then
  return 0
end
redis.call('HSET', KEYS[1], 'g', ARGV[2], 'd', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
",
    )
});

static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0
",
    )
});

/// The pattern every change channel matches (`StoreKey::channel`).
const CHANNELS: &str = "*:changed";

/// The waits of one store, woken by its one pub/sub connection.
struct Notifier {
    waits: Mutex<HashMap<String, Weak<Notify>>>,
    /// Dropped with the last clone of the store: ends the subscriber task.
    _stop: oneshot::Sender<()>,
}

impl Notifier {
    /// The `Notify` a wait on `channel` parks on (shared by concurrent waits).
    fn register(&self, channel: String) -> Arc<Notify> {
        let mut waits = self.waits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = waits.get(&channel).and_then(Weak::upgrade) {
            return n;
        }
        if waits.len() >= 64 {
            waits.retain(|_, w| w.strong_count() > 0);
        }
        let n = Arc::new(Notify::new());
        waits.insert(channel, Arc::downgrade(&n));
        n
    }

    fn wake(&self, channel: &str) {
        let waits = self.waits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = waits.get(channel).and_then(Weak::upgrade) {
            n.notify_waiters();
        }
    }
}

/// Keeps the pub/sub connection: subscribes, dispatches, reconnects with
/// backoff; ends when the store is dropped.
async fn subscriber(
    client: redis::Client,
    notifier: Weak<Notifier>,
    mut stop: oneshot::Receiver<()>,
    timeout: Duration,
) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let connect = std::pin::pin!(async {
            let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
                .await
                .ok()?
                .ok()?;
            tokio::time::timeout(timeout, pubsub.psubscribe(CHANNELS))
                .await
                .ok()?
                .ok()?;
            Some(pubsub)
        });
        let pubsub = match future::select(&mut stop, connect).await {
            Either::Left(_) => return,
            Either::Right((p, _)) => p,
        };
        if pubsub.is_none() && !warned {
            // Waits poll meanwhile: slower, not wrong. Said once per outage.
            tracing::warn!("Redis change notifications unavailable (connecting or subscribing failed): waiters poll");
            warned = true;
        }
        if let Some(pubsub) = pubsub {
            warned = false;
            backoff = Duration::from_millis(100);
            let mut messages = pubsub.into_on_message();
            loop {
                let message = match future::select(&mut stop, messages.next()).await {
                    Either::Left(_) => return,
                    Either::Right((m, _)) => m,
                };
                let Some(message) = message else { break };
                let Some(n) = notifier.upgrade() else { return };
                n.wake(message.get_channel_name());
            }
            tracing::debug!("Redis change notifications lost; reconnecting");
        }
        let pause = std::pin::pin!(tokio::time::sleep(backoff));
        if let Either::Left(_) = future::select(&mut stop, pause).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A [`TokenStore`] on Redis. Cheap to clone; share one per process.
///
/// ```no_run
/// use tower_client_auth::store::{RedisStore, SharedStore};
///
/// # async fn f() -> Result<(), tower_client_auth::Error> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// let shared = SharedStore::new(store).namespace("billing-service");
/// # let _ = shared; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    /// Change notifications (a single server only).
    notifier: Option<Arc<Notifier>>,
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
            .map_err(|e| Error::store_driver(&e))?;
        let (stop, stopped) = oneshot::channel();
        let notifier = Arc::new(Notifier {
            waits: Mutex::new(HashMap::new()),
            _stop: stop,
        });
        tokio::spawn(subscriber(
            client,
            Arc::downgrade(&notifier),
            stopped,
            timeout,
        ));
        Ok(RedisStore {
            connection: Connection::Single(manager),
            notifier: Some(notifier),
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
            .map_err(|e| Error::store_driver(&e))?;
        Ok(RedisStore {
            connection: Connection::Cluster(connection),
            notifier: None,
        })
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[&[u8]],
    ) -> Result<T, Error> {
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
        .map_err(|e| Error::store_driver(&e))
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, Error> {
        match self.connection.clone() {
            Connection::Single(mut c) => cmd.query_async(&mut c).await,
            Connection::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
        .map_err(|e| Error::store_driver(&e))
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
            let (generation, data): (Option<u64>, Option<Vec<u8>>) = self.query(cmd).await?;
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
        lease_owner: Option<&'a str>,
        entry: StoredEntry,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let expected = expected.to_string();
            let generation = entry.generation.to_string();
            let channel = key.channel();
            let written: i64 = self
                .run(
                    &COMPARE_AND_SET,
                    &[key.entry(), key.lease()],
                    &[
                        expected.as_bytes(),
                        generation.as_bytes(),
                        &entry.data,
                        channel.as_bytes(),
                        lease_owner.unwrap_or("").as_bytes(),
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
            .map_err(|e| Error::store_driver(&e))?;
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
                .run(&RENEW, &[key.lease()], &[owner.as_bytes(), ms.as_bytes()])
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
                    &RELEASE,
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
            let Some(notifier) = &self.notifier else {
                tokio::time::sleep(timeout).await;
                return Ok(());
            };
            let changed = notifier.register(key.channel());
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Registered first, then read: nothing published after our caller's
            // read can be missed (while the subscription is up).
            let generation = self.load(key).await?.map_or(0, |e| e.generation);
            if generation > seen {
                return Ok(());
            }
            let _ = tokio::time::timeout(timeout, notified).await;
            Ok(())
        })
    }

    fn load_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, Error>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(key.cooldown());
            self.query(cmd).await
        })
    }

    fn set_cooldown<'a>(
        &'a self,
        key: &'a StoreKey,
        record: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key.cooldown())
                .arg(record)
                .arg("PX")
                .arg(ttl.as_millis().clamp(1, u64::MAX as u128) as u64);
            self.query::<()>(cmd).await
        })
    }

    fn clear_cooldown<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(key.cooldown());
            self.query::<()>(cmd).await
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
