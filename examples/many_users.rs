//! Many users, one layer: an axum backend that acts for each of its users on an
//! OAuth2 API (Agrello's shape: authorization code with PKCE, rotating refresh
//! tokens). Three routes:
//!
//! * `GET /login?user=…`: sends the browser to the provider's consent page;
//! * `GET /callback?code=…&state=…`: checks `state`, exchanges the code and
//!   stores the user's token (refresh token included) in the store;
//! * `GET /me?user=…`: calls the provider's API as that user; a user whose
//!   refresh token was rejected is sent back to `/login`.
//!
//! Tokens live in the `SharedStore` given to `Users`: a `PgStore` (feature
//! `postgres`) keeps them across restarts and replicas. This example runs the
//! whole flow against the local code-flow emulator, with a `MemoryStore`, and
//! plays the browser itself:
//!
//! ```sh
//! cargo run --example many_users
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_client_auth::oauth2::{AuthorizationRequest, AuthorizationUrl, TokenClient};
use tower_client_auth::providers::agrello;
use tower_client_auth::store::{MemoryStore, SharedStore};
use tower_client_auth::users::{UserKey, Users, UsersLayer, UsersService};
use tower_client_auth::{BoxError, Error, ReplayBody};

type Http = Client<HttpConnector, ReplayBody<Full<Bytes>>>;

#[derive(Clone)]
struct App {
    users: Users,
    /// Calls the provider's API as the request's `UserKey`.
    api: UsersService<Http>,
    api_base: String,
    authorize_url: String,
    client_id: String,
    redirect_uri: String,
    /// Logins under way, by `state`.
    pending: Arc<Mutex<HashMap<String, (UserKey, AuthorizationRequest)>>>,
}

/// `?user=alice`: which of the backend's users a request is for.
type UserQuery = std::collections::HashMap<String, String>;

fn user_of(q: &UserQuery) -> UserKey {
    UserKey::new(q.get("user").cloned().unwrap_or_default())
}

async fn login(State(app): State<App>, Query(q): Query<UserQuery>) -> Response {
    // `agrello::authorization_url` for Agrello itself; the emulator is elsewhere.
    let request =
        AuthorizationUrl::new(&app.authorize_url, &app.client_id, &app.redirect_uri).build();
    let Ok(request) = request else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let url = request.url().to_owned();
    app.pending
        .lock()
        .unwrap()
        .insert(request.state().to_owned(), (user_of(&q), request));
    Redirect::to(&url).into_response()
}

async fn callback(State(app): State<App>, uri: axum::http::Uri) -> Response {
    let query = uri.query().unwrap_or("");
    let state = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let Some((user, request)) = app.pending.lock().unwrap().remove(&state) else {
        return (StatusCode::BAD_REQUEST, "unknown login").into_response();
    };
    let code = match request.verify_callback(query) {
        Ok(code) => code,
        Err(_) => return (StatusCode::BAD_REQUEST, "state mismatch").into_response(),
    };
    let exchanged = app
        .users
        .token_client()
        .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
        .await;
    match exchanged {
        Ok(token) => match app.users.login(&user, token).await {
            Ok(()) => format!("{} logged in", user.as_str()).into_response(),
            Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        },
        Err(_) => (StatusCode::BAD_GATEWAY, "code exchange failed").into_response(),
    }
}

async fn me(State(app): State<App>, Query(q): Query<UserQuery>) -> Response {
    let user = user_of(&q);
    let mut req = http::Request::get(format!("{}/api/me", app.api_base))
        .body(Full::new(Bytes::new()))
        .unwrap_or_default();
    req.extensions_mut().insert(user.clone());
    match app.api.clone().oneshot(req).await {
        Ok(res) => {
            let status = res.status();
            let body = res.into_body().collect().await.map(|b| b.to_bytes());
            (status, body.unwrap_or_default()).into_response()
        }
        Err(e) => match e.downcast::<Error>() {
            Ok(e) if e.is_login_required() => {
                let user: String =
                    form_urlencoded::byte_serialize(user.as_str().as_bytes()).collect();
                Redirect::to(&format!("/login?user={user}")).into_response()
            }
            _ => StatusCode::BAD_GATEWAY.into_response(),
        },
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The provider: the crate's code-flow emulator on loopback.
    let provider = tower_client_auth::testing::oauth::OAuthServer::start("my-app", "s3cret").await;
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);

    let token_client: TokenClient =
        agrello::token_client_at(&provider.token_url(), "my-app", "s3cret", http.clone())?;
    let users = Users::builder(provider.base_url(), token_client)
        .allow_http() // the emulator is plain http on loopback
        .store(SharedStore::new(MemoryStore::new())) // PgStore in production
        .build()?;
    let app = App {
        api: UsersLayer::new(users.clone()).layer(http),
        users,
        api_base: provider.base_url(),
        authorize_url: provider.authorize_url(),
        client_id: "my-app".into(),
        redirect_uri: format!("{base}/callback"),
        pending: Arc::default(),
    };
    let router = Router::new()
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/me", get(me))
        .with_state(app);
    tokio::spawn(async move { axum::serve(listener, router).await });

    // The browser: log alice in, then call the API as her.
    let browser: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let get = |url: String| {
        let browser = browser.clone();
        async move {
            let res = browser.get(url.parse()?).await?;
            let location = res
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let status = res.status();
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((
                status,
                location,
                String::from_utf8_lossy(&body).into_owned(),
            ))
        }
    };
    let (_, to_provider, _) = get(format!("{base}/login?user=alice")).await?;
    let consent = to_provider.ok_or("no redirect to the provider")?;
    let callback_query = provider.approve(&consent).await?;
    let (status, _, body) = get(format!("{base}/callback?{callback_query}")).await?;
    println!("callback: {status} {body}");
    let (status, _, body) = get(format!("{base}/me?user=alice")).await?;
    println!("GET /me as alice: {status} {body}");
    assert_eq!(status, 200);
    let (status, location, _) = get(format!("{base}/me?user=bob")).await?;
    println!(
        "GET /me as bob (never logged in): {status} -> {}",
        location.unwrap_or_default()
    );
    Ok(())
}
