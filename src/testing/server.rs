//! A small HTTP/1 server on loopback: the emulators' base, and [`serve`] for
//! stand-in servers in your own tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub(crate) type Handler =
    Arc<dyn Fn(Request<Bytes>) -> BoxFuture<'static, Response<Full<Bytes>>> + Send + Sync>;

/// A running loopback server; stops when dropped (or runs on, see [`Server::detach`]).
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use tower::{Layer, ServiceExt};
/// use tower_client_auth::testing::{serve, Server};
/// use tower_client_auth::{AuthLayer, Credential};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// // An API that wants `x-api-key`.
/// let api: Server = serve(|req| async move {
///     let mut res = Response::new(Full::new(Bytes::new()));
///     if req.headers().get("x-api-key").is_none_or(|key| key != "my-api-key") {
///         *res.status_mut() = StatusCode::UNAUTHORIZED;
///     }
///     res
/// })
/// .await;
/// # let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let credential = Credential::api_key(&api.base_url(), "x-api-key", "my-api-key")?;
/// let client = AuthLayer::new(credential).without_retry().layer(http);
/// let req = Request::get(format!("{}/v1/items", api.base_url())).body(Full::new(Bytes::new()))?;
/// assert_eq!(client.oneshot(req).await?.status(), 200);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

/// Starts an HTTP/1 server on 127.0.0.1 with a free port. `handler` gets each
/// request with its body read (up to 1 MiB) and returns the response.
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use http_body_util::Full;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = tower_client_auth::testing::serve(|req| async move {
///     let auth = req.headers().contains_key("authorization");
///     Response::new(Full::new(Bytes::from(if auth { "hello" } else { "who?" })))
/// })
/// .await;
/// assert!(server.base_url().starts_with("http://127.0.0.1:"));
/// # }
/// ```
pub async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(Request<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
    Server::start(handler).await
}

impl Server {
    pub(crate) async fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an emulator on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            // Emulators read at most 1 MiB of a request.
                            let body = match Limited::new(body, 1 << 20).collect().await {
                                Ok(c) => c.to_bytes(),
                                Err(_) => Bytes::new(),
                            };
                            Ok::<_, Infallible>(handler(Request::from_parts(parts, body)).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Server {
            addr,
            task: Some(task),
        }
    }

    /// Lets the server run until the runtime shuts down, and returns its address.
    pub fn detach(mut self) -> SocketAddr {
        self.task.take();
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
