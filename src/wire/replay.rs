//! A request body that can be sent twice.
//!
//! Retrying a request after a 401 needs its body again, but the inner service
//! consumed the first one. [`ReplayBody`] wraps any [`http_body::Body`]: while the
//! inner service streams it, each data frame is kept (a refcount bump for `Bytes`
//! data, a copy otherwise) up to a cap, and the trailers too. On a retry, a second
//! `ReplayBody` yields the kept frames, then takes over the original body for
//! whatever the first send had not read yet.
//!
//! Rules that keep it correct (two known bugs in prior art were a panic and
//! duplicated bytes on replay):
//!
//! * there is at most one replay, and once it is created the first body stops
//!   reading the original (it yields an error instead), so no byte is read by
//!   both and none is lost;
//! * the kept frames are frozen when the replay starts: the replay yields each
//!   of them exactly once, in order, then new frames straight from the original;
//! * past the cap, or after the original failed, nothing can be replayed and the
//!   layer hands back the 401 unchanged;
//! * a body that is already empty costs nothing: its replay is an empty body.
//!
//! [`AuthService`](crate::AuthService) gives the inner service
//! `Request<ReplayBody<B>>`; with retries off or for requests that carry no managed
//! token, `ReplayBody` only forwards to `B`:
//!
//! ```
//! use bytes::Bytes;
//! use http_body::Body;
//! use http_body_util::{BodyExt, Full};
//! use tower_client_auth::ReplayBody;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let body = ReplayBody::passthrough(Full::new(Bytes::from_static(b"hello")));
//! assert_eq!(body.size_hint().exact(), Some(5));
//! assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
//! # }
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::error::BoxError;

/// The default cap on the bytes kept for a replay: 64 KiB.
pub const DEFAULT_MAX_REPLAY_BODY: usize = 64 * 1024;

pin_project! {
    /// A request body that forwards to `B` and, when asked to, keeps what it sends
    /// so the request can be sent again. See the [module docs](self).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_client_auth::{AuthLayer, BoxError, Credential, ReplayBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let credential = Credential::bearer("https://api.example.com", "my-token")?;
    /// // Stands in for a hyper-util client built for `ReplayBody<Full<Bytes>>`.
    /// let http_client = service_fn(|req: Request<ReplayBody<Full<Bytes>>>| async move {
    ///     let body = req.into_body().collect().await?.to_bytes();
    ///     Ok::<_, BoxError>(Response::new(body))
    /// });
    /// let api = AuthLayer::new(credential).layer(http_client);
    /// let req = Request::post("https://api.example.com/v1/items").body(Full::from(r#"{"id":1}"#))?;
    /// assert_eq!(api.oneshot(req).await?.into_body(), r#"{"id":1}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub struct ReplayBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Passthrough { #[pin] body: B },
        Empty,
        Recorded {
            shared: Arc<Mutex<Recording<B>>>,
            replay: bool,
            pos: usize,
            trailers_sent: bool,
        },
    }
}

pub(crate) struct Recording<B> {
    body: Option<Pin<Box<B>>>,
    chunks: Chunks,
    len: usize,
    cap: usize,
    overflowed: bool,
    failed: bool,
    trailers: Option<HeaderMap>,
    ended: bool,
    replay_started: bool,
}

/// The kept data frames. Most request bodies are one frame (`Full`), kept
/// without a `Vec` allocation.
#[derive(Default)]
struct Chunks {
    first: Option<Bytes>,
    rest: Vec<Bytes>,
}

impl Chunks {
    fn len(&self) -> usize {
        self.first.is_some() as usize + self.rest.len()
    }

    /// The `i`-th chunk (a refcount bump). `i < len()`.
    fn get(&self, i: usize) -> Bytes {
        match (i, &self.first) {
            (0, Some(first)) => first.clone(),
            _ => self.rest[i - 1].clone(),
        }
    }

    fn push(&mut self, chunk: Bytes) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest.push(chunk);
        }
    }

    /// Bytes in chunks `i..`.
    fn bytes_from(&self, i: usize) -> u64 {
        let first = match (&self.first, i) {
            (Some(f), 0) => f.len() as u64,
            _ => 0,
        };
        first
            + self
                .rest
                .iter()
                .skip(i.saturating_sub(1))
                .map(|c| c.len() as u64)
                .sum::<u64>()
    }
}

/// What the layer keeps to make the replay later.
pub(crate) enum ReplayHandle<B> {
    Empty,
    Recorded(Arc<Mutex<Recording<B>>>),
}

fn lock<B>(m: &Mutex<Recording<B>>) -> MutexGuard<'_, Recording<B>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<B: Clone> ReplayBody<B> {
    /// A copy of this body, if it can be had without reading it: a body passed
    /// through as it is (a request that carries no managed token) whose `B` is
    /// `Clone`, or an empty one. A body being recorded for the layer's own 401
    /// retry is `None`: it is the layer's to send twice.
    ///
    /// This is what a `tower::retry` policy below [`AuthLayer`](crate::AuthLayer)
    /// needs in `clone_request` (above the layer, it sees your own body type):
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::Request;
    /// use http_body_util::Full;
    /// use tower_client_auth::ReplayBody;
    ///
    /// fn clone_request(req: &Request<ReplayBody<Full<Bytes>>>) -> Option<Request<ReplayBody<Full<Bytes>>>> {
    ///     let body = req.body().try_clone()?;
    ///     let mut copy = Request::new(body);
    ///     *copy.method_mut() = req.method().clone();
    ///     *copy.uri_mut() = req.uri().clone();
    ///     *copy.headers_mut() = req.headers().clone();
    ///     Some(copy)
    /// }
    ///
    /// let req = Request::post("https://api.example.com/")
    ///     .body(ReplayBody::passthrough(Full::new(Bytes::from_static(b"{}"))))
    ///     .unwrap();
    /// assert!(clone_request(&req).is_some());
    /// ```
    pub fn try_clone(&self) -> Option<Self> {
        let inner = match &self.inner {
            Inner::Passthrough { body } => Inner::Passthrough { body: body.clone() },
            Inner::Empty => Inner::Empty,
            Inner::Recorded { .. } => return None,
        };
        Some(ReplayBody { inner })
    }
}

/// An empty body: what tower-http's `FollowRedirect` and other middleware that
/// re-send a request without its body (a redirect turned into a `GET`) need.
impl<B> Default for ReplayBody<B> {
    fn default() -> Self {
        ReplayBody {
            inner: Inner::Empty,
        }
    }
}

impl<B: Body> ReplayBody<B> {
    /// A body that only forwards to `body`.
    pub fn passthrough(body: B) -> Self {
        ReplayBody {
            inner: Inner::Passthrough { body },
        }
    }

    /// Wraps `body` so that it can be replayed once, keeping up to `cap` bytes.
    /// `None` for the handle when the body is known to be larger than `cap`.
    #[inline(always)]
    pub(crate) fn recorded(body: B, cap: usize) -> (Self, Option<ReplayHandle<B>>) {
        // A body without bytes (most GETs) is replayed as one: nothing kept.
        if body.is_end_stream() {
            return (ReplayBody::passthrough(body), Some(ReplayHandle::Empty));
        }
        Self::recorded_bytes(body, cap)
    }

    #[inline(never)]
    fn recorded_bytes(body: B, cap: usize) -> (Self, Option<ReplayHandle<B>>) {
        if body.size_hint().lower() > cap as u64 {
            return (ReplayBody::passthrough(body), None);
        }
        let shared = Arc::new(Mutex::new(Recording {
            body: Some(Box::pin(body)),
            chunks: Chunks::default(),
            len: 0,
            cap,
            overflowed: false,
            failed: false,
            trailers: None,
            ended: false,
            replay_started: false,
        }));
        let first = ReplayBody {
            inner: Inner::Recorded {
                shared: shared.clone(),
                replay: false,
                pos: 0,
                trailers_sent: false,
            },
        };
        (first, Some(ReplayHandle::Recorded(shared)))
    }
}

impl<B> ReplayHandle<B> {
    /// The second body, or `None` when what was sent cannot be replayed.
    pub(crate) fn replay(self) -> Option<ReplayBody<B>> {
        match self {
            ReplayHandle::Empty => Some(ReplayBody {
                inner: Inner::Empty,
            }),
            ReplayHandle::Recorded(shared) => {
                let mut rec = lock(&shared);
                if rec.overflowed || rec.failed || rec.replay_started {
                    return None;
                }
                rec.replay_started = true;
                drop(rec);
                Some(ReplayBody {
                    inner: Inner::Recorded {
                        shared,
                        replay: true,
                        pos: 0,
                        trailers_sent: false,
                    },
                })
            }
        }
    }
}

/// The first body was superseded by its replay and will not yield more.
///
/// An HTTP client that still reads a request's first body after the layer
/// re-sent the request gets this error from it:
///
/// ```
/// use tower_client_auth::replay::BodyReplayed;
/// use tower_client_auth::BoxError;
///
/// let err: BoxError = Box::new(BodyReplayed);
/// assert!(err.is::<BodyReplayed>());
/// assert_eq!(err.to_string(), "request body was handed over to a retry");
/// ```
#[derive(Debug)]
pub struct BodyReplayed;

impl fmt::Display for BodyReplayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body was handed over to a retry")
    }
}

impl std::error::Error for BodyReplayed {}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().inner.project() {
            InnerProj::Passthrough { body } => match body.poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(
                    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
                ))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            InnerProj::Empty => Poll::Ready(None),
            InnerProj::Recorded {
                shared,
                replay,
                pos,
                trailers_sent,
            } => {
                let mut rec = lock(shared);
                let rec = &mut *rec;
                if !*replay && rec.replay_started {
                    return Poll::Ready(Some(Err(BodyReplayed.into())));
                }
                if *replay && *pos < rec.chunks.len() {
                    *pos += 1;
                    return Poll::Ready(Some(Ok(Frame::data(rec.chunks.get(*pos - 1)))));
                }
                if rec.ended {
                    // Only the replay re-sends kept trailers; the first body sent
                    // them straight from the original.
                    if *replay && !*trailers_sent {
                        *trailers_sent = true;
                        if let Some(t) = rec.trailers.clone() {
                            return Poll::Ready(Some(Ok(Frame::trailers(t))));
                        }
                    }
                    return Poll::Ready(None);
                }
                let Some(body) = rec.body.as_mut() else {
                    return Poll::Ready(None);
                };
                match body.as_mut().poll_frame(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => {
                        rec.ended = true;
                        rec.body = None;
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Err(e))) => {
                        rec.failed = true;
                        Poll::Ready(Some(Err(e.into())))
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        let frame = frame.map_data(|mut d| d.copy_to_bytes(d.remaining()));
                        if let Some(data) = frame.data_ref() {
                            // Keep frames only while a replay may still happen.
                            if !rec.replay_started && !rec.overflowed {
                                if rec.len + data.len() > rec.cap {
                                    rec.overflowed = true;
                                    rec.chunks = Chunks::default();
                                } else {
                                    rec.len += data.len();
                                    rec.chunks.push(data.clone());
                                }
                            }
                        } else if let Some(t) = frame.trailers_ref() {
                            // Trailers end the body.
                            if *replay {
                                *trailers_sent = true;
                            } else {
                                rec.trailers = Some(t.clone());
                            }
                            rec.ended = true;
                            rec.body = None;
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Passthrough { body } => body.is_end_stream(),
            Inner::Empty => true,
            Inner::Recorded {
                shared,
                replay,
                pos,
                trailers_sent,
            } => {
                let rec = lock(shared);
                if !*replay {
                    return rec.ended || rec.replay_started;
                }
                *pos >= rec.chunks.len() && rec.ended && (*trailers_sent || rec.trailers.is_none())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Passthrough { body } => body.size_hint(),
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Recorded {
                shared,
                replay,
                pos,
                ..
            } => {
                let rec = lock(shared);
                let kept: u64 = if *replay {
                    rec.chunks.bytes_from(*pos)
                } else {
                    0
                };
                let rest = match &rec.body {
                    Some(b) if !rec.ended => b.size_hint(),
                    _ => SizeHint::with_exact(0),
                };
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + kept);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + kept);
                }
                hint
            }
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Inner::Passthrough { .. } => "passthrough",
            Inner::Empty => "empty",
            Inner::Recorded { replay: false, .. } => "recording",
            Inner::Recorded { replay: true, .. } => "replay",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Full;

    use super::*;

    #[test]
    fn only_bodies_that_are_not_being_recorded_clone() {
        let full = || Full::new(Bytes::from_static(b"payload"));
        assert!(ReplayBody::passthrough(full()).try_clone().is_some());
        assert!(ReplayBody::<Full<Bytes>>::default().try_clone().is_some());
        let (recording, _handle) = ReplayBody::recorded(full(), 1024);
        assert!(recording.try_clone().is_none());
    }
}
