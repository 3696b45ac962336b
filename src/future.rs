//! [`ResponseFuture`]: waits for a token when there is none, sends the request,
//! and re-sends it once after a 401.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_util::future::BoxFuture;
use http::{header, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::credential::Credential;
use crate::error::Error;
use crate::replay::{ReplayBody, ReplayHandle};
use crate::token::Stamped;
use crate::BoxError;

type Acquire = BoxFuture<'static, Result<Arc<Stamped>, Error>>;

pin_project! {
    /// Response future of [`AuthService`](crate::AuthService).
    ///
    /// On the hot path (static credential, or a valid cached token without 401
    /// retry) it only polls the inner future; nothing is boxed.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        kind: Kind<S::Future, S, B, S::Response>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, B, R> {
        // Sent as it is: nothing to do but poll the inner future.
        Direct { #[pin] fut: F },
        // Waiting for a token, or able to retry after a 401.
        Managed {
            #[pin]
            state: State<F, R>,
            // Boxed: only the slow path (no token yet) uses it.
            waiting: Option<Box<Waiting<S, B>>>,
            retry: Option<RetryCtx<S, B>>,
        },
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        // No valid token when the request came: wait for one.
        Acquiring { fut: Acquire },
        Calling { #[pin] fut: F },
        // Got a 401: wait for a newer token, keeping the 401 to hand back on failure.
        Refreshing { fut: Acquire, response: Option<R> },
        // Stamped afresh; waiting for the service to be ready (the request is
        // built from the retry context then, keeping this enum small).
        Readying,
        Retried { #[pin] fut: F },
    }
}

/// The request and the ready service held while waiting for a first token.
struct Waiting<S, B> {
    request: Request<B>,
    service: S,
    credential: Credential,
    retry_on_401: bool,
    max_replay_body: usize,
}

/// What a request that carried a managed token keeps to be re-sent.
pub(crate) struct RetryCtx<S, B> {
    pub(crate) head: Request<()>,
    pub(crate) handle: Option<ReplayHandle<B>>,
    pub(crate) body: Option<ReplayBody<B>>,
    pub(crate) generation: u64,
    pub(crate) service: S,
    pub(crate) credential: Credential,
}

/// A copy of the request without its body: what a retry needs besides the body.
pub(crate) fn copy_head<B>(req: &Request<B>) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = req.uri().clone();
    *head.version_mut() = req.version();
    *head.headers_mut() = req.headers().clone();
    *head.extensions_mut() = req.extensions().clone();
    head
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(crate) fn call(fut: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Direct { fut },
        }
    }

    pub(crate) fn call_with_retry(fut: S::Future, retry: RetryCtx<S, B>) -> Self {
        ResponseFuture {
            kind: Kind::Managed {
                state: State::Calling { fut },
                waiting: None,
                retry: Some(retry),
            },
        }
    }

    pub(crate) fn acquire(
        fut: Acquire,
        request: Request<B>,
        service: S,
        credential: Credential,
        retry_on_401: bool,
        max_replay_body: usize,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Managed {
                state: State::Acquiring { fut },
                waiting: Some(Box::new(Waiting {
                    request,
                    service,
                    credential,
                    retry_on_401,
                    max_replay_body,
                })),
                retry: None,
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (mut state, waiting, retry) = match self.project().kind.project() {
            KindProj::Direct { fut } => return fut.poll(cx).map_err(Into::into),
            KindProj::Managed {
                state,
                waiting,
                retry,
            } => (state, waiting, retry),
        };
        loop {
            match state.as_mut().project() {
                StateProj::Acquiring { fut } => {
                    let stamped = match ready!(fut.as_mut().poll(cx)) {
                        Ok(s) => s,
                        Err(e) => return Poll::Ready(Err(e.into())),
                    };
                    let Waiting {
                        mut request,
                        mut service,
                        credential,
                        retry_on_401,
                        max_replay_body,
                    } = *waiting
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let head = retry_on_401.then(|| copy_head(&request));
                    let headers = request.headers_mut();
                    headers.insert(header::AUTHORIZATION, stamped.authorization.clone());
                    credential.stamp_static(headers);
                    let (parts, body) = request.into_parts();
                    let fut = match head {
                        Some(head) => {
                            let (body, handle) = ReplayBody::recorded(body, max_replay_body);
                            let fut = service.call(Request::from_parts(parts, body));
                            *retry = Some(RetryCtx {
                                head,
                                handle,
                                body: None,
                                generation: stamped.generation,
                                service,
                                credential,
                            });
                            fut
                        }
                        None => {
                            service.call(Request::from_parts(parts, ReplayBody::passthrough(body)))
                        }
                    };
                    state.set(State::Calling { fut });
                }
                StateProj::Calling { fut } => {
                    let response = ready!(fut.poll(cx)).map_err(Into::into)?;
                    if response.status() != StatusCode::UNAUTHORIZED || !retryable_401(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    let Some(retry) = retry.as_mut() else {
                        return Poll::Ready(Ok(response));
                    };
                    let Some(manager) = retry.credential.inner.managed.clone() else {
                        return Poll::Ready(Ok(response));
                    };
                    let replay = retry.handle.take().and_then(ReplayHandle::replay);
                    let Some(body) = replay else {
                        // Cannot re-send, but later requests must not reuse the token.
                        drop(manager.acquire(Some(retry.generation)));
                        tracing::debug!("401 not retried: request body cannot be replayed");
                        return Poll::Ready(Ok(response));
                    };
                    retry.body = Some(body);
                    let fut = manager.acquire(Some(retry.generation));
                    state.set(State::Refreshing {
                        fut,
                        response: Some(response),
                    });
                }
                StateProj::Refreshing { fut, response } => {
                    let result = ready!(fut.as_mut().poll(cx));
                    let retry = retry.as_mut().expect("retry state present");
                    let stamped = match result {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(error = %e, "401 not retried: no newer token");
                            let response = response.take().expect("401 kept while refreshing");
                            return Poll::Ready(Ok(response));
                        }
                    };
                    let headers = retry.head.headers_mut();
                    headers.insert(header::AUTHORIZATION, stamped.authorization.clone());
                    retry.credential.stamp_static(headers);
                    if let Some(m) = &retry.credential.inner.managed {
                        m.count_retry();
                    }
                    tracing::debug!(
                        failed_generation = retry.generation,
                        generation = stamped.generation,
                        "retrying request after 401"
                    );
                    state.set(State::Readying);
                }
                StateProj::Readying => {
                    let retry = retry.as_mut().expect("retry state present");
                    ready!(retry.service.poll_ready(cx)).map_err(Into::into)?;
                    let body = retry
                        .body
                        .take()
                        .expect("replay body stored before refreshing");
                    let (parts, ()) =
                        std::mem::replace(&mut retry.head, Request::new(())).into_parts();
                    let fut = retry.service.call(Request::from_parts(parts, body));
                    state.set(State::Retried { fut });
                }
                StateProj::Retried { fut } => return fut.poll(cx).map_err(Into::into),
            }
        }
    }
}

/// A 401 is worth one retry when its challenge names no error, or `invalid_token`
/// (RFC 6750 §3.1). `insufficient_scope` or `invalid_request` will not get better
/// with a new token.
pub(crate) fn retryable_401<B>(response: &Response<B>) -> bool {
    for value in response.headers().get_all(header::WWW_AUTHENTICATE) {
        let Ok(value) = value.to_str() else { continue };
        if let Some(code) = challenge_error(value) {
            if code != "invalid_token" {
                return false;
            }
        }
    }
    true
}

/// The `error` auth-param of a challenge, if any.
fn challenge_error(challenge: &str) -> Option<&str> {
    let bytes = challenge.as_bytes();
    let mut from = 0;
    while let Some(i) = challenge[from..].find("error") {
        let at = from + i;
        from = at + 5;
        let starts_param = at == 0 || matches!(bytes[at - 1], b' ' | b',' | b'\t');
        let rest = challenge[at + 5..].trim_start();
        if !starts_param || !rest.starts_with('=') {
            continue;
        }
        let value = rest[1..].trim_start();
        let value = match value.strip_prefix('"') {
            Some(quoted) => &quoted[..quoted.find('"').unwrap_or(quoted.len())],
            None => &value[..value.find([',', ' ']).unwrap_or(value.len())],
        };
        return Some(value);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_errors() {
        assert_eq!(
            challenge_error(
                r#"Bearer realm="x", error="invalid_token", error_description="expired""#
            ),
            Some("invalid_token")
        );
        assert_eq!(
            challenge_error(r#"Bearer error_description="x error", error=insufficient_scope"#),
            Some("insufficient_scope")
        );
        assert_eq!(challenge_error(r#"Bearer realm="example""#), None);
        assert_eq!(challenge_error("Bearer"), None);
        assert_eq!(challenge_error(r#"Bearer error=""#), Some(""));
    }

    #[test]
    fn retry_decision() {
        let r = |v: &str| {
            Response::builder()
                .status(401)
                .header("www-authenticate", v)
                .body(())
                .unwrap()
        };
        assert!(retryable_401(
            &Response::builder().status(401).body(()).unwrap()
        ));
        assert!(retryable_401(&r(r#"Bearer error="invalid_token""#)));
        assert!(!retryable_401(&r(r#"Bearer error="insufficient_scope""#)));
        assert!(!retryable_401(&r(r#"Bearer error="invalid_request""#)));
    }
}
