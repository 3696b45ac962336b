//! Memory per cached user: 10,000 users logged in (tokens in a `MemoryStore`),
//! then one request each through a `UsersLayer`, which makes each user's entry
//! (credential, token cache, shared-store link, copies of what is stamped,
//! background driver task). Live heap bytes are counted by a global allocator.
//!
//! `cargo bench --bench users_memory`

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_client_auth::oauth2::TokenClient;
use tower_client_auth::store::{MemoryStore, SharedStore};
use tower_client_auth::token::Token;
use tower_client_auth::users::{UserKey, Users, UsersLayer};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const USERS: usize = 10_000;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let never = tower::service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
        });
        let client = TokenClient::builder("https://auth.example.com/token")
            .client_id("bench")
            .build(never)
            .unwrap();
        let users = Users::builder("https://api.example.com", client)
            .store(SharedStore::new(MemoryStore::new()))
            .build()
            .unwrap();
        let keys: Vec<UserKey> = (0..USERS)
            .map(|i| UserKey::new(format!("user-{i:05}")))
            .collect();
        let before_login = LIVE.load(Ordering::Relaxed);
        for key in &keys {
            // A realistic JWT-sized access token and an opaque refresh token.
            let token = Token::bearer(
                format!(
                    "eyJhbGciOiJSUzI1NiJ9.{}.{}",
                    "p".repeat(300),
                    "s".repeat(43)
                ),
                Some(Duration::from_secs(3600)),
            )
            .with_refresh_token("r".repeat(64));
            users.login(key, token).await.unwrap();
        }
        let stored = LIVE.load(Ordering::Relaxed) - before_login;
        let api = UsersLayer::new(users.clone())
            .without_retry()
            .layer(support::Noop);
        let before = LIVE.load(Ordering::Relaxed);
        for key in &keys {
            let mut req = Request::get("https://api.example.com/v1")
                .body(Full::new(Bytes::new()))
                .unwrap();
            req.extensions_mut().insert(key.clone());
            api.clone().oneshot(req).await.unwrap();
        }
        let cached = LIVE.load(Ordering::Relaxed) - before;
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert_eq!(users.len(), USERS);
        println!("users_memory: {USERS} users, a ~390-byte access token each");
        println!(
            "  in the MemoryStore (encoded tokens): {:>6} bytes per user",
            stored / USERS as isize
        );
        println!(
            "  cached entry (credential, cache, token, task): {:>6} bytes per user",
            cached / USERS as isize
        );
        println!("  background tasks: {tasks}");
        drop(api);
        users.evict_idle();
        for k in &keys {
            users.evict(k);
        }
        // Let the drivers of the dropped entries see their credential gone.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        println!("  tasks left after evicting every entry: {tasks}");
        println!(
            "  left after evicting every entry: {:>6} bytes per user",
            (LIVE.load(Ordering::Relaxed) - before) / USERS as isize
        );
    });
}
