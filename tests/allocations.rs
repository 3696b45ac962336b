//! Allocation targets, counted by a global allocator: on the cached path, no
//! allocation beyond the request itself with 401 retry off, and none beyond one
//! clone of the request with it on. (Counts, not timings: deterministic.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service};
use tower_client_auth::token::{ManagedOptions, Token, TokenSource};
use tower_client_auth::{AuthLayer, Credential, Error};
use tower_http::auth::AddAuthorizationLayer;

struct Counting;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator can run while thread locals are torn down.
    let _ = ACTIVE.try_with(|a| {
        if a.get() {
            COUNT.with(|c| c.set(c.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    ACTIVE.with(|a| a.set(true));
    f();
    ACTIVE.with(|a| a.set(false));
    COUNT.with(|c| c.get())
}

#[derive(Clone, Copy)]
struct Noop;

impl<B> Service<Request<B>> for Noop {
    type Response = Response<()>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<()>, Self::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<B>) -> Self::Future {
        drop(req);
        std::future::ready(Ok(Response::new(())))
    }
}

struct Fixed;

impl TokenSource for Fixed {
    fn fetch(&self, _: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        Box::pin(async {
            Ok(Token::bearer(
                "cached-token",
                Some(Duration::from_secs(3600)),
            ))
        })
    }
}

fn get() -> Request<Full<Bytes>> {
    Request::get("https://api.example.com/v1/accounts/42?limit=50&cursor=abc")
        .header("accept", "application/json")
        .header("user-agent", "alloc-test/1.0")
        .header("x-request-id", "6f1c2a3b-0d4e-4f5a")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn post() -> Request<Full<Bytes>> {
    let mut req = get();
    *req.method_mut() = http::Method::POST;
    *req.body_mut() = Full::new(Bytes::from_static(br#"{"query":"{ me { id } }"}"#));
    req
}

fn ready_now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(
        futures_util::task::noop_waker_ref(),
    )) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not ready"),
    }
}

/// Allocations of one call, request built beforehand; median of a few runs after
/// warming up (first clones of shared buffers and thread-local slots allocate once).
fn per_call<S>(svc: &mut S, make: fn() -> Request<Full<Bytes>>) -> usize
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..3 {
        let req = make();
        ready_now(svc.call(req)).unwrap();
    }
    let mut counts: Vec<usize> = (0..5)
        .map(|_| {
            let req = make();
            allocations(|| {
                ready_now(std::future::poll_fn(|cx| svc.poll_ready(cx))).unwrap();
                drop(ready_now(svc.call(req)).unwrap());
            })
        })
        .collect();
    counts.sort();
    counts[2]
}

fn clone_cost(make: fn() -> Request<Full<Bytes>>) -> usize {
    let req = make();
    let _warm = req.clone();
    let req = make();
    allocations(|| drop(req.clone()))
}

fn managed(rt: &tokio::runtime::Runtime, api_key: bool) -> Credential {
    let mut b = Credential::builder().origin("https://api.example.com");
    if api_key {
        b = b.api_key("x-api-key", "KEY");
    }
    let cred = b
        .token_source_with(Fixed, ManagedOptions::default())
        .build()
        .unwrap();
    rt.block_on(cred.token()).unwrap();
    cred
}

#[test]
fn cached_path_allocation_targets() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let bare = per_call(&mut Noop, get);
    let add_auth = per_call(&mut AddAuthorizationLayer::bearer("t").layer(Noop), get);
    let stamp_cost = add_auth - bare; // growing the header map, if it must

    let pat = Credential::bearer("https://api.example.com", "t").unwrap();
    let static_bearer = per_call(&mut AuthLayer::new(pat).layer(Noop), get);
    let no_retry = per_call(
        &mut AuthLayer::new(managed(&rt, false))
            .without_retry()
            .layer(Noop),
        get,
    );
    let two_no_retry = per_call(
        &mut AuthLayer::new(managed(&rt, true))
            .without_retry()
            .layer(Noop),
        get,
    );
    let retry = per_call(&mut AuthLayer::new(managed(&rt, false)).layer(Noop), get);
    let clone = clone_cost(get);

    println!(
        "allocations per call: bare {bare}, AddAuthorization {add_auth}, static {static_bearer}, \
         managed no-retry {no_retry}, two headers no-retry {two_no_retry}, managed retry {retry}; \
         one request clone {clone}"
    );
    assert_eq!(
        static_bearer, add_auth,
        "static credential: what AddAuthorization costs"
    );
    assert_eq!(
        no_retry,
        bare + stamp_cost,
        "retry off: nothing beyond the request"
    );
    assert!(two_no_retry <= bare + 2 * stamp_cost.max(1));
    assert!(
        retry <= bare + stamp_cost + clone,
        "retry on: at most one request clone ({retry} > {bare} + {stamp_cost} + {clone})"
    );
}

#[test]
fn requests_with_a_body_pay_for_the_replay_buffer() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bare = per_call(&mut Noop, post);
    let add_auth = per_call(&mut AddAuthorizationLayer::bearer("t").layer(Noop), post);
    let retry = per_call(&mut AuthLayer::new(managed(&rt, false)).layer(Noop), post);
    let clone = clone_cost(post);
    println!("POST with a body: bare {bare}, AddAuthorization {add_auth}, managed retry {retry}, clone {clone}");
    // The shared recording (one Arc) and the pinned original body (one Box) are
    // the price of replaying a body of any type; see BENCHMARKS.md.
    assert!(retry <= add_auth + clone + 2, "{retry}");
}
