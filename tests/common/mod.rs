//! Shared test helpers: a hyper server on loopback and a hyper-util client.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A request as the server saw it, body collected.
pub type Seen = Request<Bytes>;

/// Starts an HTTP/1 server on 127.0.0.1 with a free port (the crate's own
/// `testing::serve`); it runs until the runtime stops.
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Seen) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tower_client_auth::testing::serve(handler).await.detach()
}

/// A plain hyper-util client for any body type.
pub fn client<B>() -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn json(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

pub fn text(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

pub fn header<'a>(req: &'a Seen, name: &str) -> Option<&'a str> {
    req.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Requests a test server received, in order.
#[derive(Clone, Default)]
pub struct Log(pub Arc<std::sync::Mutex<Vec<Seen>>>);

impl Log {
    pub fn push(&self, req: &Seen) {
        let mut copy = Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.headers_mut() = req.headers().clone();
        self.0.lock().unwrap().push(copy);
    }
    /// Everything logged so far, leaving the log empty.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn get(&self, i: usize) -> Seen {
        let log = self.0.lock().unwrap();
        let r = &log[i];
        let mut copy = Request::new(r.body().clone());
        *copy.method_mut() = r.method().clone();
        *copy.uri_mut() = r.uri().clone();
        *copy.headers_mut() = r.headers().clone();
        copy
    }
    pub fn body(&self, i: usize) -> String {
        String::from_utf8(self.get(i).body().to_vec()).unwrap()
    }
}

/// A server that logs every request and answers with `respond`.
pub async fn logging_server<F>(respond: F) -> (String, Log)
where
    F: Fn(&Seen, usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let log = Log::default();
    let l = log.clone();
    let addr = serve(move |req: Seen| {
        l.push(&req);
        let n = l.len();
        let res = respond(&req, n);
        async move { res }
    })
    .await;
    (format!("http://{addr}"), log)
}

pub mod source {
    //! An in-process token source with a script, for paused-time tests.
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use futures_util::future::BoxFuture;
    use tower_client_auth::token::{Token, TokenSource};
    use tower_client_auth::Error;

    type Script = dyn Fn(usize) -> (Duration, Result<Token, Error>) + Send + Sync;

    #[derive(Clone)]
    pub struct Scripted {
        pub calls: Arc<AtomicUsize>,
        script: Arc<Script>,
    }

    impl Scripted {
        /// `script(n)` for the n-th fetch (from 1): a delay, then the outcome.
        pub fn new(
            script: impl Fn(usize) -> (Duration, Result<Token, Error>) + Send + Sync + 'static,
        ) -> Self {
            Scripted {
                calls: Arc::new(AtomicUsize::new(0)),
                script: Arc::new(script),
            }
        }

        /// Tokens `tok-1`, `tok-2`, ... living `lifetime`, after `delay`.
        pub fn tokens(lifetime: Option<Duration>, delay: Duration) -> Self {
            Scripted::new(move |n| (delay, Ok(Token::bearer(format!("tok-{n}"), lifetime))))
        }

        pub fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl TokenSource for Scripted {
        fn fetch(&self, _previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let script = self.script.clone();
            Box::pin(async move {
                let (delay, outcome) = (script)(n);
                tokio::time::sleep(delay).await;
                // The token's lifetime starts when it arrives.
                outcome.map(|t| {
                    let lifetime = t.expires_in();
                    let access = secrecy::ExposeSecret::expose_secret(t.access_token()).to_owned();
                    let fresh = Token::bearer(access, lifetime);
                    match t.refresh_token() {
                        Some(rt) => fresh.with_refresh_token(rt.clone()),
                        None => fresh,
                    }
                })
            })
        }
    }
}

/// A server process of a real-server suite (oidc-provider, Authlib,
/// idpyoidc), killed when dropped.
pub struct ServerProcess {
    _child: tokio::process::Child,
}

/// Starts `command`, waits for its `listening <rest>` line on stdout and
/// returns `<rest>`. Its stderr goes to `$TMPDIR/<log>` (read it when a suite
/// fails); the rest of its stdout is drained, since a server that logs to a
/// closed pipe dies.
pub async fn start_server(
    mut command: tokio::process::Command,
    log: &str,
) -> (ServerProcess, String) {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(std::env::temp_dir().join(log))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .kill_on_drop(true)
        .spawn()
        .expect("the server's program runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = async {
        loop {
            let line = lines.next_line().await.unwrap().unwrap_or_else(|| {
                let log =
                    std::fs::read_to_string(std::env::temp_dir().join(log)).unwrap_or_default();
                panic!("the server exited before listening:\n{log}")
            });
            if let Some(rest) = line.strip_prefix("listening ") {
                break rest.to_owned();
            }
        }
    };
    let rest = tokio::time::timeout(std::time::Duration::from_secs(60), listening)
        .await
        .unwrap_or_else(|_| panic!("the server did not listen within 60 s; see $TMPDIR/{log}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (ServerProcess { _child: child }, rest)
}

/// Two loopback origins (different ports) for redirect tests: `own` answers
/// `/cross` with a `status` redirect to `other`'s `/landing` and `/same` with
/// one to its own `/landing`; both log what they receive. `other` answers with
/// a `DPoP-Nonce` of its own, [`OTHER_NONCE`] (a nonce belongs to the origin
/// that sent it).
pub struct RedirectingOrigins {
    /// `http://127.0.0.1:PORT` of the origin a credential is for.
    pub own: String,
    /// `http://127.0.0.1:PORT` of the other origin.
    pub other: String,
    pub own_log: Log,
    pub other_log: Log,
}

/// The `DPoP-Nonce` the other origin of [`redirecting_origins`] sends.
pub const OTHER_NONCE: &str = "nonce-of-the-other-origin";

pub async fn redirecting_origins(status: u16) -> RedirectingOrigins {
    let other_log = Log::default();
    let log = other_log.clone();
    let other = serve(move |req| {
        log.push(&req);
        async {
            let mut res = text(200, "other");
            res.headers_mut()
                .insert("dpop-nonce", http::HeaderValue::from_static(OTHER_NONCE));
            res
        }
    })
    .await;
    let own_log = Log::default();
    let log = own_log.clone();
    let own = serve(move |req| {
        log.push(&req);
        let path = req.uri().path().to_owned();
        async move {
            let location = match path.as_str() {
                "/cross" => format!("http://{other}/landing"),
                "/same" => "/landing".to_owned(),
                _ => return text(200, "own"),
            };
            Response::builder()
                .status(status)
                .header("location", location)
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
    })
    .await;
    RedirectingOrigins {
        own: format!("http://{own}"),
        other: format!("http://{other}"),
        own_log,
        other_log,
    }
}
