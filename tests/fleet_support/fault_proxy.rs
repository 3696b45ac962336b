//! A fault-injecting TCP proxy for the real-server suites: it sits between the
//! crate and Redis or PostgreSQL, in this process, and misbehaves on demand.
//!
//! ```text
//! let proxy = FaultProxy::start(redis_addr).await;
//! let store = RedisStore::connect(&format!("redis://{}/", proxy.addr())).await?;
//! proxy.set(Fault::Stall);   // new and existing connections stop answering
//! proxy.set(Fault::Pass);    // what was held goes through, late
//! ```
//!
//! Each connection is relayed by one task that reads both sides and keeps what
//! it read in a queue per direction, each chunk with the instant it may leave:
//!
//! * `Pass`: chunks leave at once.
//! * `Delay(d)`: each chunk leaves `d` after it was read (latency, not a
//!   bandwidth limit: chunks read together leave together).
//! * `Stall`: connections are accepted and read, nothing leaves in either
//!   direction. What was read is held, not lost: when the fault is lifted it is
//!   delivered, late, as TCP would after a network stall. A command sent into a
//!   stall therefore lands after its sender gave up waiting for it.
//! * `ResetMidCommand`: while it is set, each connection's next chunk from the
//!   client is cut: its first half goes upstream, then both sockets are closed
//!   with a TCP reset (`SO_LINGER` 0), so the server saw half a command and the
//!   client an `ECONNRESET`.
//! * `Blackhole`: no connection is accepted (connects wait in the kernel's
//!   backlog) and every byte on the open ones is dropped, both ways. Those
//!   connections are broken for good: when the fault is lifted they are reset.
//!
//! [`FaultProxy::reset_connections`] resets every open connection at once
//! (a failover: what a stall was holding is lost).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// What the proxy does to the traffic, switchable at any time; it applies to
/// new and existing connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Stall,
    Delay(Duration),
    ResetMidCommand,
    Blackhole,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    /// Upstream-side local addresses of the open connections (what the server
    /// sees as the client's address, e.g. in Redis's `CLIENT LIST`).
    upstream_addrs: Mutex<Vec<SocketAddr>>,
}

/// The proxy. Stops accepting when dropped; relayed connections end with it.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bumped to reset every open connection.
    kill: watch::Sender<u64>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and relays to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (fault, _) = watch::channel(Fault::Pass);
        let (kill, _) = watch::channel(0u64);
        let counters = Arc::new(Counters::default());
        let (mut faults, kills, c) = (fault.subscribe(), kill.subscribe(), counters.clone());
        let task = tokio::spawn(async move {
            loop {
                // A blackhole accepts nothing.
                while *faults.borrow_and_update() == Fault::Blackhole {
                    if faults.changed().await.is_err() {
                        return;
                    }
                }
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    // Looks at the fault again before accepting.
                    _ = faults.changed() => continue,
                };
                let Ok((client, _)) = accepted else { continue };
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(upstream) = TcpStream::connect(upstream).await else {
                    reset(client, None);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let local = upstream.local_addr().ok();
                c.open.fetch_add(1, Ordering::SeqCst);
                if let Some(a) = local {
                    c.upstream_addrs.lock().unwrap().push(a);
                }
                let (faults, kills, c) = (faults.clone(), kills.clone(), c.clone());
                tokio::spawn(async move {
                    relay(client, upstream, faults, kills).await;
                    c.open.fetch_sub(1, Ordering::SeqCst);
                    if let Some(a) = local {
                        c.upstream_addrs.lock().unwrap().retain(|x| *x != a);
                    }
                });
            }
        });
        FaultProxy {
            addr,
            fault,
            kill,
            counters,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://ADDR/`.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    /// Resets every open connection now (what they held is lost).
    pub fn reset_connections(&self) {
        self.kill.send_modify(|k| *k += 1);
    }

    /// Connections open now.
    pub fn connections(&self) -> u64 {
        self.counters.open.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// The proxy's own addresses towards the server, one per open connection.
    pub fn upstream_addrs(&self) -> Vec<SocketAddr> {
        self.counters.upstream_addrs.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.reset_connections();
    }
}

/// Closes with a TCP reset rather than a FIN.
fn reset(a: TcpStream, b: Option<TcpStream>) {
    for s in std::iter::once(a).chain(b) {
        let _ = s.set_zero_linger();
        drop(s);
    }
}

/// One direction of a connection.
struct Side {
    /// Read chunks waiting to leave, each with the instant it may.
    queue: VecDeque<(Instant, Vec<u8>)>,
    /// The reader's end sent EOF.
    eof: bool,
    /// EOF passed on (after the queue drained).
    shut: bool,
}

impl Side {
    fn new() -> Side {
        Side {
            queue: VecDeque::new(),
            eof: false,
            shut: false,
        }
    }

    /// When the next chunk may leave under `fault` (`None`: nothing may).
    fn due(&self, fault: Fault) -> Option<Instant> {
        match fault {
            Fault::Stall | Fault::Blackhole => None,
            _ => self.queue.front().map(|(at, _)| *at),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether nothing may leave now (the fault may have changed since the loop
/// looked).
fn holding(faults: &watch::Receiver<Fault>) -> bool {
    matches!(*faults.borrow(), Fault::Stall | Fault::Blackhole)
}

async fn relay(
    mut client: TcpStream,
    mut upstream: TcpStream,
    mut faults: watch::Receiver<Fault>,
    mut kills: watch::Receiver<u64>,
) {
    kills.borrow_and_update();
    let (mut up, mut down) = (Side::new(), Side::new());
    let (mut from_client, mut from_upstream) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    // Bytes were dropped in a blackhole: the stream is broken for good.
    let mut lost = false;
    loop {
        if kills.has_changed().unwrap_or(true) {
            return reset(client, Some(upstream));
        }
        let fault = *faults.borrow_and_update();
        if fault == Fault::Blackhole {
            lost |= !up.queue.is_empty() || !down.queue.is_empty();
            up.queue.clear();
            down.queue.clear();
        } else if lost {
            return reset(client, Some(upstream));
        }
        // EOF travels once what came before it has left.
        if up.eof && !up.shut && up.queue.is_empty() {
            up.shut = true;
            let _ = upstream.shutdown().await;
        }
        if down.eof && !down.shut && down.queue.is_empty() {
            down.shut = true;
            let _ = client.shutdown().await;
        }
        if up.shut && down.shut {
            return;
        }
        let (up_due, down_due) = (up.due(fault), down.due(fault));
        tokio::select! {
            r = client.read(&mut from_client), if !up.eof => match r {
                Ok(0) | Err(_) => up.eof = true,
                Ok(n) => {
                    let chunk = from_client[..n].to_vec();
                    // The fault as it is now, not as it was when the loop began.
                    let now = *faults.borrow();
                    match now {
                        Fault::ResetMidCommand => {
                            let _ = upstream.write_all(&chunk[..n / 2]).await;
                            return reset(client, Some(upstream));
                        }
                        Fault::Blackhole => lost = true,
                        Fault::Delay(d) => up.queue.push_back((Instant::now() + d, chunk)),
                        Fault::Pass | Fault::Stall => up.queue.push_back((Instant::now(), chunk)),
                    }
                }
            },
            r = upstream.read(&mut from_upstream), if !down.eof => match r {
                Ok(0) | Err(_) => down.eof = true,
                Ok(n) => {
                    let chunk = from_upstream[..n].to_vec();
                    let now = *faults.borrow();
                    match now {
                        Fault::Blackhole => lost = true,
                        Fault::Delay(d) => down.queue.push_back((Instant::now() + d, chunk)),
                        _ => down.queue.push_back((Instant::now(), chunk)),
                    }
                }
            },
            _ = sleep_until(up_due), if !holding(&faults) => {
                let (_, chunk) = up.queue.pop_front().unwrap();
                if upstream.write_all(&chunk).await.is_err() {
                    return reset(client, Some(upstream));
                }
            },
            _ = sleep_until(down_due), if !holding(&faults) => {
                let (_, chunk) = down.queue.pop_front().unwrap();
                if client.write_all(&chunk).await.is_err() {
                    return reset(client, Some(upstream));
                }
            },
            _ = faults.changed() => {},
            _ = kills.changed() => return reset(client, Some(upstream)),
        }
    }
}

// ---------------------------------------------------------------- self-test

/// An echo server: answers each chunk with the same bytes.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Sends `msg`, reads the echo within `limit`.
async fn echo(s: &mut TcpStream, msg: &[u8], limit: Duration) -> std::io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut got = vec![0u8; msg.len()];
    match tokio::time::timeout(limit, s.read_exact(&mut got)).await {
        Ok(r) => r.map(|_| got),
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// The proxy itself, against an echo server: each fault does what it says.
pub async fn self_test() {
    let proxy = FaultProxy::start(echo_server().await).await;
    let short = Duration::from_millis(300);
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(echo(&mut a, b"one", short).await.unwrap(), b"one");
    assert_eq!((proxy.accepted(), proxy.connections()), (1, 1));

    // Delay: per chunk, each way.
    proxy.set(Fault::Delay(Duration::from_millis(150)));
    let started = Instant::now();
    assert_eq!(echo(&mut a, b"two", short * 3).await.unwrap(), b"two");
    let delayed = started.elapsed();
    assert!(delayed >= Duration::from_millis(300), "{delayed:?}");

    // Stall: an existing and a new connection are accepted and silent; what
    // they sent is delivered once the stall ends.
    proxy.set(Fault::Stall);
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    let e = echo(&mut a, b"held", short).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(echo(&mut b, b"new", short).await.is_err());
    assert_eq!(proxy.accepted(), 2);
    proxy.set(Fault::Pass);
    let mut late = [0u8; 4];
    a.read_exact(&mut late).await.unwrap();
    assert_eq!(&late, b"held");
    b.read_exact(&mut late[..3]).await.unwrap();
    assert_eq!(&late[..3], b"new");

    // A reset in the middle of a command.
    proxy.set(Fault::ResetMidCommand);
    let e = echo(&mut a, b"cut", short).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    proxy.set(Fault::Pass);

    // Blackhole: traffic dropped, no new connection accepted; on recovery the
    // broken connection is reset and new ones work.
    proxy.set(Fault::Blackhole);
    assert!(echo(&mut b, b"void", short).await.is_err());
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(echo(&mut c, b"queued", short).await.is_err());
    assert_eq!(proxy.accepted(), 2, "accepted during a blackhole");
    proxy.set(Fault::Pass);
    let mut rest = [0u8; 8];
    let broken = tokio::time::timeout(short, b.read(&mut rest))
        .await
        .unwrap();
    assert!(
        broken.is_err() || broken.as_ref().is_ok_and(|n| *n == 0),
        "{broken:?}"
    );
    // The connection that waited in the backlog is served now.
    let mut got = [0u8; 6];
    tokio::time::timeout(short, c.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"queued");
    let mut d = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(echo(&mut d, b"back", short).await.unwrap(), b"back");

    // Failover: open connections reset at once.
    proxy.reset_connections();
    let mut buf = [0u8; 1];
    let r = tokio::time::timeout(short, d.read(&mut buf)).await.unwrap();
    assert!(r.is_err() || r.is_ok_and(|n| n == 0));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(proxy.connections(), 0);
    println!(
        "  delay 150 ms each way: echo in {:?}; {} connections accepted",
        delayed,
        proxy.accepted()
    );
}
