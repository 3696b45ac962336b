//! [`ResponseFuture`]: waits for a token when there is none, drives the inner
//! service to readiness only then, sends the request, and re-sends it once
//! after a 401.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::local::Stamp;
use super::mode::{Mode, Retry};
use super::policy;
pub(crate) use super::retry_state::{Replay, RetryCtx};
use super::{stamp_and_send, stamp_headers};
use crate::cache::Stamped;
use crate::error::BoxError;
use crate::error::Error;

type Acquire = BoxFuture<'static, Result<Arc<Stamped>, Error>>;

pin_project! {
    /// Response future of [`AuthService`](crate::AuthService).
    ///
    /// On the hot path (static credential, or a valid cached token without 401
    /// retry) it only polls the inner future; nothing is boxed.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, Service, ServiceExt};
    /// use tower_client_auth::{AuthService, Credential, ReplayBody, ResponseFuture};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_auth::BoxError> {
    /// let credential = Credential::bearer("https://api.example.com", "my-token")?;
    /// let mut api = AuthService::new(
    ///     service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
    ///         Ok::<_, std::convert::Infallible>(Response::new(req.headers().contains_key("authorization")))
    ///     }),
    ///     credential,
    /// );
    /// let req = Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?;
    /// let future: ResponseFuture<_, Full<Bytes>> = api.ready().await?.call(req);
    /// assert!(future.await?.into_body());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, B, M = Retry>
    where
        M: Mode,
        S: Service<Request<M::Body<B>>>,
    {
        #[pin]
        kind: Kind<S::Future, S, B, M::Kept<S, B, S::Response>, M::Held<S::Response>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, B, K, H> {
        // Sent as it is: nothing to do but poll the inner future.
        Direct { #[pin] fut: F },
        // Waiting for a token, or able to retry after a 401.
        Managed {
            #[pin]
            state: State<F, H>,
            // Boxed: only the slow path (no token yet) uses it.
            waiting: Option<Box<Waiting<S, B>>>,
            // A `RetryCtx` in `Retry` mode; nothing at all in `NoRetry` mode.
            retry: Option<K>,
        },
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, H> {
        // No valid token when the request came: wait for one.
        Acquiring { fut: Acquire },
        // Got it: wait for the inner service to be ready, then stamp and send.
        Readying { token: Arc<Stamped> },
        Calling { #[pin] fut: F },
        // The answer to a request that may be re-sent, to look at (in
        // `NoRetry` mode, never made: `H` is uninhabited).
        Answered { response: Option<H> },
        // Got a 401: wait for a newer token, keeping the 401 to hand back on
        // failure (in `NoRetry` mode, `H` is uninhabited: no space taken).
        Refreshing { fut: Acquire, response: Option<H> },
        // Stamped afresh; waiting for the service to be ready (the request is
        // built from the retry context then, keeping this enum small).
        RetryReadying,
        Retried { #[pin] fut: F },
    }
}

/// The request and an (unready) service held while waiting for a first token.
/// The request is an `Option` only to be taken out through a pinned projection.
struct Waiting<S, B> {
    request: Option<Request<B>>,
    service: S,
    stamp: Arc<Stamp>,
    max_replay_body: usize,
    /// Whether the token was already replaced once after a retirement.
    reacquired: bool,
}

impl<S, B, M> ResponseFuture<S, B, M>
where
    M: Mode,
    S: Service<Request<M::Body<B>>>,
{
    #[inline(always)]
    pub(crate) fn direct(fut: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Direct { fut },
        }
    }

    #[inline(always)]
    pub(crate) fn sent(fut: S::Future, retry: RetryCtx<S, B, M::Body<B>>) -> Self {
        // Only the mode that retries sends with a context (a `NoRetry` future
        // made here would hand back its answer as it is).
        ResponseFuture {
            kind: Kind::Managed {
                state: State::Calling { fut },
                waiting: None,
                retry: M::keep::<S, B, S::Response>(retry),
            },
        }
    }

    /// A future that fails at once with `error`.
    #[cold]
    pub(crate) fn failed(error: Error) -> Self {
        ResponseFuture {
            kind: Kind::Managed {
                state: State::Acquiring {
                    fut: Box::pin(std::future::ready(Err(error))),
                },
                waiting: None,
                retry: None,
            },
        }
    }

    pub(crate) fn acquire(
        fut: Acquire,
        request: Request<B>,
        service: S,
        stamp: Arc<Stamp>,
        max_replay_body: usize,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Managed {
                state: State::Acquiring { fut },
                waiting: Some(Box::new(Waiting {
                    request: Some(request),
                    service,
                    stamp,
                    max_replay_body,
                    reacquired: false,
                })),
                retry: None,
            },
        }
    }
}

impl<S, B, M, ResBody> Future for ResponseFuture<S, B, M>
where
    M: Mode,
    S: Service<Request<M::Body<B>>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
{
    type Output = Result<Response<ResBody>, BoxError>;

    /// The hot path, inlined: a request sent as it is polls its inner future
    /// and nothing else (the state machine's frame is set up only for the
    /// others).
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self;
        match this.as_mut().project().kind.project() {
            KindProj::Direct { fut } => return fut.poll(cx).map_err(Into::into),
            // Sent with a retry context: an answer that is not a retryable 401
            // or a 403 is the answer (a DPoP credential looks at every
            // answer's nonce).
            KindProj::Managed {
                mut state, retry, ..
            } => {
                if let StateProj::Calling { fut } = state.as_mut().project() {
                    let response = match ready!(fut.poll(cx)) {
                        Ok(response) => response,
                        Err(e) => return Poll::Ready(Err(e.into())),
                    };
                    let Some(ctx) = retry.as_mut().map(M::kept::<S, B, S::Response>) else {
                        return Poll::Ready(Ok(response));
                    };
                    if !second_look(ctx, &response) {
                        return Poll::Ready(Ok(response));
                    }
                    state.set(State::Answered {
                        response: M::hold(response),
                    });
                }
            }
        }
        this.poll_managed(cx)
    }
}

impl<S, B, M, ResBody> ResponseFuture<S, B, M>
where
    M: Mode,
    S: Service<Request<M::Body<B>>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
{
    /// Waiting for a token, sent with a retry context, or re-sending.
    #[inline(never)]
    fn poll_managed(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResBody>, BoxError>> {
        macro_rules! done {
            ($r:expr) => {
                return Poll::Ready($r)
            };
        }
        macro_rules! attempt {
            ($r:expr) => {
                match $r {
                    Ok(v) => v,
                    Err(e) => done!(Err(e.into())),
                }
            };
        }
        loop {
            let (mut state, waiting, retry) = match self.as_mut().project().kind.project() {
                KindProj::Direct { fut } => return fut.poll(cx).map_err(Into::into),
                KindProj::Managed {
                    state,
                    waiting,
                    retry,
                } => (state, waiting, retry),
            };
            // A request that waited for its token becomes, once stamped and sent,
            // exactly the future the hot path returns for a cached token.
            let sent = loop {
                match state.as_mut().project() {
                    StateProj::Acquiring { fut } => {
                        let token = attempt!(ready!(fut.as_mut().poll(cx)));
                        state.set(State::Readying { token });
                    }
                    StateProj::Readying { token } => {
                        let Some(w) = waiting.as_deref_mut() else {
                            done!(Err(polled_after_completion()));
                        };
                        attempt!(ready!(w.service.poll_ready(cx)));
                        if token.is_retired() && !w.reacquired {
                            // Retired (expired, invalidated) while the service got
                            // ready: give the readiness back and wait for the
                            // successor, as on the first wait.
                            if let Some(manager) = w.stamp.credential.manager() {
                                let fut = manager.acquire(None);
                                let fresh = w.service.clone();
                                drop(std::mem::replace(&mut w.service, fresh));
                                // Once: a request must not starve behind a stream
                                // of retirements (a 401 retry covers the rest).
                                w.reacquired = true;
                                state.set(State::Acquiring { fut });
                                continue;
                            }
                        }
                        let (Some(mut w), token) = (waiting.take(), token.clone()) else {
                            done!(Err(polled_after_completion()));
                        };
                        let Some(request) = w.request.take() else {
                            done!(Err(polled_after_completion()));
                        };
                        break stamp_and_send::<S, B, M>(
                            &mut w.service,
                            request,
                            (&token.authorization, token.generation),
                            &w.stamp,
                            w.max_replay_body,
                        );
                    }
                    StateProj::Calling { fut } => {
                        let response = attempt!(ready!(fut.poll(cx)));
                        if retry.is_none() {
                            done!(Ok(response));
                        }
                        state.set(State::Answered {
                            response: M::hold(response),
                        });
                    }
                    StateProj::Answered { response } => {
                        let Some(response) = response.take().map(M::unhold) else {
                            done!(Err(polled_after_completion()));
                        };
                        let Some(ctx) = retry.as_mut().map(M::kept::<S, B, S::Response>) else {
                            done!(Ok(response));
                        };
                        #[cfg(feature = "jose")]
                        {
                            // Learned from every response, asked for or not.
                            let asked = learn_nonce(ctx, &response);
                            ctx.dpop_nonce =
                                asked && response.status() == http::StatusCode::UNAUTHORIZED;
                        }
                        #[cfg(feature = "jose")]
                        let nonce_retry = ctx.dpop_nonce;
                        #[cfg(not(feature = "jose"))]
                        let nonce_retry = false;
                        let retry_401 = !nonce_retry && policy::retryable_401(&response);
                        if !nonce_retry
                            && !retry_401
                            && !policy::step_up(&response, ctx.stamp.credential.manager())
                        {
                            done!(Ok(response));
                        }
                        let Some(manager) = ctx.stamp.credential.manager().cloned() else {
                            done!(Ok(response));
                        };
                        if retry_401 {
                            // The source reads the 401 before the newer token is
                            // fetched: its challenge may say where the resource's
                            // metadata is now (RFC 9728 §5).
                            if let Some(head) = &ctx.replay.head {
                                manager.unauthorized(&head.uri, response.headers());
                            }
                        }
                        let generation = ctx.replay.generation;
                        let body = ctx.replay.recording.take().and_then(M::replay);
                        let Some(body) = body else {
                            // Cannot re-send, but later requests must not reuse a
                            // refused token (a nonce 401 says nothing against it).
                            if !nonce_retry {
                                drop(manager.acquire(Some(generation)));
                            }
                            tracing::debug!(
                                credential = manager.name(),
                                "401 not retried: request body cannot be replayed"
                            );
                            done!(Ok(response));
                        };
                        ctx.body = Some(body);
                        // A new nonce: the same token with a new proof. Otherwise
                        // a token newer than the one refused.
                        let retired = (!nonce_retry).then_some(generation);
                        state.set(State::Refreshing {
                            fut: manager.acquire(retired),
                            response: M::hold(response),
                        });
                    }
                    StateProj::Refreshing { fut, response } => {
                        let result = ready!(fut.as_mut().poll(cx));
                        let Some(ctx) = retry.as_mut().map(M::kept::<S, B, S::Response>) else {
                            done!(Err(polled_after_completion()));
                        };
                        let Some(response) = response.take().map(M::unhold) else {
                            done!(Err(polled_after_completion()));
                        };
                        let token = match result {
                            Ok(t) => t,
                            Err(e) => {
                                tracing::debug!(
                                    credential = ctx.stamp.credential.manager().map(|m| m.name()),
                                    error = %e,
                                    "401 not retried: no newer token"
                                );
                                done!(Ok(response));
                            }
                        };
                        let Some(head) = ctx.replay.head.as_mut() else {
                            done!(Err(polled_after_completion()));
                        };
                        stamp_headers(&mut head.headers, Some(&token.authorization), &ctx.stamp);
                        #[cfg(feature = "jose")]
                        if let Some(proof) = super::dpop_proof(
                            &ctx.stamp,
                            &head.method,
                            &head.uri,
                            &token.authorization,
                        ) {
                            head.headers.insert(crate::jose::dpop::DPOP, proof);
                        }
                        #[cfg(feature = "jose")]
                        let nonce_retry = ctx.dpop_nonce;
                        #[cfg(not(feature = "jose"))]
                        let nonce_retry = false;
                        if let Some(m) = ctx.stamp.credential.manager() {
                            if nonce_retry {
                                m.count_dpop_nonce_retry();
                            } else {
                                m.count_retry();
                            }
                        }
                        tracing::debug!(
                            credential = ctx.stamp.credential.manager().map(|m| m.name()),
                            failed_generation = ctx.replay.generation,
                            generation = token.generation,
                            "retrying request after 401"
                        );
                        state.set(State::RetryReadying);
                    }
                    StateProj::RetryReadying => {
                        let Some(ctx) = retry.as_mut().map(M::kept::<S, B, S::Response>) else {
                            done!(Err(polled_after_completion()));
                        };
                        attempt!(ready!(ctx.service.poll_ready(cx)));
                        let Some(body) = ctx.body.take() else {
                            done!(Err(polled_after_completion()));
                        };
                        let Some(parts) = ctx.replay.head.take() else {
                            done!(Err(polled_after_completion()));
                        };
                        #[cfg(feature = "jose")]
                        if ctx.stamp.dpop.is_some() {
                            ctx.resent_to = Some(parts.uri.clone());
                        }
                        let fut = ctx.service.call(Request::from_parts(parts, body));
                        state.set(State::Retried { fut });
                    }
                    StateProj::Retried { fut } => {
                        let result = ready!(fut.poll(cx));
                        #[cfg(feature = "jose")]
                        if let (Ok(response), Some(ctx)) =
                            (&result, retry.as_mut().map(M::kept::<S, B, S::Response>))
                        {
                            if let (Some(dpop), Some(uri)) = (&ctx.stamp.dpop, &ctx.resent_to) {
                                dpop.remember_nonce(
                                    answered_from(response, uri),
                                    response.headers(),
                                );
                            }
                        }
                        done!(result.map_err(Into::into))
                    }
                }
            };
            self.as_mut().project().kind.set(sent.kind);
        }
    }
}

/// Whether the answer to a request that may be re-sent needs more than
/// handing back: a 401 that a newer token may fix, a 403 that the token
/// source may step up from, or any answer to a DPoP credential's request
/// (it may carry a nonce).
#[inline(always)]
fn second_look<S, B, Sent, ResBody>(
    _ctx: &RetryCtx<S, B, Sent>,
    response: &Response<ResBody>,
) -> bool {
    #[cfg(feature = "jose")]
    if _ctx.stamp.dpop.is_some() {
        return true;
    }
    policy::retryable_401(response) || response.status() == http::StatusCode::FORBIDDEN
}

/// Keeps the `DPoP-Nonce` of any response to a DPoP credential's request
/// (RFC 9449 §8.2) under the origin that sent it, and says whether the
/// response asks for a nonce with a new one given: the request is then sent
/// once more with a new proof. Whether this request's nonce or a concurrent
/// one's was stale does not matter: a request is re-sent at most once. An
/// answer from another origin (a redirect followed below the layer) asks
/// nothing of this request's proof.
#[cfg(feature = "jose")]
fn learn_nonce<S, B, Sent, ResBody>(
    ctx: &RetryCtx<S, B, Sent>,
    response: &Response<ResBody>,
) -> bool {
    let Some(dpop) = ctx.stamp.dpop.as_ref() else {
        return false;
    };
    let Some(head) = ctx.replay.head.as_ref() else {
        return false;
    };
    let from = answered_from(response, &head.uri);
    dpop.remember_nonce(from, response.headers());
    crate::wire::origin::same_origin(from, &head.uri)
        && crate::jose::dpop::asks_for_nonce(response.headers())
}

/// Where `response` came from: the hop the guard below saw answer it, else
/// `sent_to`, where the request was sent.
#[cfg(feature = "jose")]
fn answered_from<'a, ResBody>(
    response: &'a Response<ResBody>,
    sent_to: &'a http::Uri,
) -> &'a http::Uri {
    response
        .extensions()
        .get::<crate::wire::marks::HopUri>()
        .map_or(sent_to, |hop| &hop.0)
}

fn polled_after_completion() -> BoxError {
    "tower-client-auth ResponseFuture polled after completion".into()
}
