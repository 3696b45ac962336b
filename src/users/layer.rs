//! [`UsersLayer`] and [`UsersService`]: each request stamped with its user's
//! token.

use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use http::{header, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::credential::has_header;
use crate::layer::TokenRequestMarker;
use crate::layer::{send_when_not_fresh, stamp_and_send, Mode, NoRetry, ResponseFuture, Retry};
use crate::wire::replay::DEFAULT_MAX_REPLAY_BODY;
use crate::{BoxError, Error};

use super::*;

/// Layer that applies [`UsersService`]: the credential of the request's
/// [`UserKey`]. `M` is [`Retry`] (default) or [`NoRetry`], as for
/// [`AuthLayer`](crate::AuthLayer).
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_client_auth::token::Token;
/// use tower_client_auth::store::{MemoryStore, SharedStore};
/// use tower_client_auth::users::{UserKey, Users, UsersLayer};
/// use tower_client_auth::ReplayBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let token_client = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/oauth/token")
/// #     .client_id("my-app")
/// #     .build(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
/// #     }))?;
/// # let users = Users::builder("https://api.example.com", token_client)
/// #     .store(SharedStore::new(MemoryStore::new()))
/// #     .build()?;
/// let login = Token::bearer("alice-access-token", None).with_refresh_token("alice-refresh-token");
/// users.login(&UserKey::new("alice"), login).await?;
///
/// // With 401 retry (the default), the client under the layer gets `ReplayBody`.
/// let api = UsersLayer::new(users).layer(service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
///     Ok::<_, std::convert::Infallible>(Response::new(req.headers().get("authorization").cloned()))
/// }));
/// let mut req = Request::get("https://api.example.com/v1/me").body(Full::new(Bytes::new()))?;
/// req.extensions_mut().insert(UserKey::new("alice"));
/// assert_eq!(api.clone().oneshot(req).await?.into_body().unwrap(), "Bearer alice-access-token");
///
/// // A request for no user goes out as it is (see `WithoutUser`).
/// let anonymous = Request::get("https://api.example.com/v1/status").body(Full::new(Bytes::new()))?;
/// assert!(api.oneshot(anonymous).await?.into_body().is_none());
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct UsersLayer<M = Retry> {
    pub(super) users: Users,
    pub(super) max_replay_body: usize,
    pub(super) _mode: PhantomData<fn() -> M>,
}

impl<M> Clone for UsersLayer<M> {
    fn clone(&self) -> Self {
        UsersLayer {
            users: self.users.clone(),
            max_replay_body: self.max_replay_body,
            _mode: PhantomData,
        }
    }
}

impl UsersLayer<Retry> {
    /// Stamps each request with its user's token, retrying once on 401.
    pub fn new(users: Users) -> Self {
        UsersLayer {
            users,
            max_replay_body: DEFAULT_MAX_REPLAY_BODY,
            _mode: PhantomData,
        }
    }

    /// No 401 retry; the caller's body type goes through unchanged.
    pub fn without_retry(self) -> UsersLayer<NoRetry> {
        UsersLayer {
            users: self.users,
            max_replay_body: self.max_replay_body,
            _mode: PhantomData,
        }
    }
}

impl<M> UsersLayer<M> {
    /// The [`GuardLayer`](crate::layer::GuardLayer) for every user's token, to put
    /// directly above the HTTP client, as [`AuthLayer::guard`](crate::AuthLayer::guard)
    /// for one credential: a hop that a follower below this layer sends to
    /// another origin goes without the user's `Authorization` and `DPoP`
    /// proof. A same-origin hop keeps them.
    ///
    /// It knows a user's token by value among the users in memory (the
    /// request's own [`UserKey`] first, when its extensions came along), so a
    /// caller's own `Authorization` to another origin is left alone.
    pub fn guard(&self) -> crate::GuardLayer {
        self.users.guard_layer()
    }
}

impl<S, M> Layer<S> for UsersLayer<M> {
    type Service = UsersService<S, M>;

    fn layer(&self, inner: S) -> UsersService<S, M> {
        UsersService {
            inner,
            users: self.users.clone(),
            max_replay_body: self.max_replay_body,
            _mode: PhantomData,
        }
    }
}

/// Middleware that stamps each request with its [`UserKey`]'s token.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_client_auth::layer::NoRetry;
/// use tower_client_auth::token::Token;
/// use tower_client_auth::store::{MemoryStore, SharedStore};
/// use tower_client_auth::users::{UserKey, Users, UsersLayer, UsersService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_auth::BoxError> {
/// # let token_client = tower_client_auth::oauth2::TokenClient::builder("https://auth.example.com/oauth/token")
/// #     .client_id("my-app")
/// #     .build(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
/// #     }))?;
/// # let users = Users::builder("https://api.example.com", token_client)
/// #     .store(SharedStore::new(MemoryStore::new()))
/// #     .build()?;
/// for user in ["alice", "bob"] {
///     let login = Token::bearer(format!("{user}-access-token"), None).with_refresh_token("my-refresh-token");
///     users.login(&UserKey::new(user), login).await?;
/// }
/// let client = service_fn(|req: Request<Full<Bytes>>| async move {
///     Ok::<_, std::convert::Infallible>(Response::new(req.headers()["authorization"].clone()))
/// });
/// let api: UsersService<_, NoRetry> = UsersLayer::new(users).without_retry().layer(client);
///
/// // One service, each request stamped for its own user.
/// for user in ["alice", "bob"] {
///     let mut req = Request::get("https://api.example.com/v1/me").body(Full::new(Bytes::new()))?;
///     req.extensions_mut().insert(UserKey::new(user));
///     let authorization = api.clone().oneshot(req).await?.into_body();
///     assert_eq!(authorization.to_str()?, format!("Bearer {user}-access-token"));
/// }
/// # Ok(())
/// # }
/// ```
pub struct UsersService<S, M = Retry> {
    pub(super) inner: S,
    pub(super) users: Users,
    pub(super) max_replay_body: usize,
    pub(super) _mode: PhantomData<fn() -> M>,
}

impl<S: Clone, M> Clone for UsersService<S, M> {
    fn clone(&self) -> Self {
        UsersService {
            inner: self.inner.clone(),
            users: self.users.clone(),
            max_replay_body: self.max_replay_body,
            _mode: PhantomData,
        }
    }
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for UsersService<S, M>
where
    M: Mode,
    S: Service<Request<M::Body<ReqBody>>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: Body,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqBody, M>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let user = req.extensions().get::<UserKey>().cloned();
        let marked = req.extensions().get::<TokenRequestMarker>().is_some();
        let Some(user) = user.filter(|_| !marked) else {
            if self.users.inner.without_user == WithoutUser::Fail && !marked {
                return ResponseFuture::failed(Error::config("request carries no UserKey"));
            }
            return ResponseFuture::direct(self.inner.call(M::wrap_request(req)));
        };
        let entry = match self.users.entry(&user) {
            Ok(e) => e,
            Err(e) => return ResponseFuture::failed(e),
        };
        if !entry.credential.applies_to(req.uri()) {
            return ResponseFuture::direct(self.inner.call(M::wrap_request(req)));
        }
        let Some(manager) = entry.credential.manager() else {
            return ResponseFuture::direct(self.inner.call(M::wrap_request(req)));
        };
        if has_header(req.headers(), &header::AUTHORIZATION) {
            return ResponseFuture::direct(self.inner.call(M::wrap_request(req)));
        }
        let cap = self.max_replay_body;
        let current = manager.current();
        if let Some(current) = current.as_deref().filter(|c| c.is_fresh()) {
            let token = (&current.authorization, current.generation);
            return stamp_and_send(&mut self.inner, req, token, &entry.stamp, cap);
        }
        drop(current);
        send_when_not_fresh(&mut self.inner, req, manager, &entry.stamp, cap)
    }
}

impl<M> fmt::Debug for UsersLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersLayer")
            .field("users", &self.users)
            .finish()
    }
}

impl<S: fmt::Debug, M> fmt::Debug for UsersService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersService")
            .field("inner", &self.inner)
            .field("users", &self.users)
            .finish()
    }
}
