//! Whether a layer can re-send a request after a 401, at the type level: that
//! decides which body type the inner service receives.

use http_body::Body;

use crate::replay::{ReplayBody, ReplayHandle};

/// What body the inner service receives, by layer mode: [`Retry`] wraps the
/// caller's body in [`ReplayBody`] so that a request can be sent twice;
/// [`NoRetry`] passes the caller's body through untouched, like tower-http's
/// `AddAuthorization`. Sealed: these two are the modes.
pub trait Mode: sealed::Sealed {
    /// The body type the inner service receives for a caller's body `B`.
    type Body<B>;
}

/// The default mode: a request that carried a managed token and got a 401 is
/// re-sent once with a newer token. The inner service receives
/// `Request<ReplayBody<B>>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retry;

/// No 401 retry: the inner service receives the caller's `Request<B>` unchanged
/// (see [`AuthLayer::without_retry`](crate::AuthLayer::without_retry)).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetry;

impl Mode for Retry {
    type Body<B> = ReplayBody<B>;
}

impl Mode for NoRetry {
    type Body<B> = B;
}

/// What a recording body leaves behind for its replay.
pub struct Recording<B>(pub(crate) ReplayHandle<B>);

pub(crate) mod sealed {
    use super::*;

    pub trait Sealed: Send + Sync + 'static {
        /// Whether requests may be re-sent.
        const RETRY: bool;
        /// The body sent as it is.
        fn wrap<B: Body>(body: B) -> <Self as Mode>::Body<B>
        where
            Self: Mode;
        /// The body sent once more may follow: record it (up to `cap` bytes).
        fn record<B: Body>(body: B, cap: usize) -> (<Self as Mode>::Body<B>, Option<Recording<B>>)
        where
            Self: Mode;
        /// The second body, if what was sent can be replayed.
        fn replay<B>(recording: Recording<B>) -> Option<<Self as Mode>::Body<B>>
        where
            Self: Mode;
    }

    impl Sealed for Retry {
        const RETRY: bool = true;

        #[inline]
        fn wrap<B: Body>(body: B) -> ReplayBody<B> {
            ReplayBody::passthrough(body)
        }

        #[inline]
        fn record<B: Body>(body: B, cap: usize) -> (ReplayBody<B>, Option<Recording<B>>) {
            let (body, handle) = ReplayBody::recorded(body, cap);
            (body, handle.map(Recording))
        }

        fn replay<B>(recording: Recording<B>) -> Option<ReplayBody<B>> {
            recording.0.replay()
        }
    }

    impl Sealed for NoRetry {
        const RETRY: bool = false;

        #[inline]
        fn wrap<B: Body>(body: B) -> B {
            body
        }

        // Never called (`RETRY` is false); nothing is recorded.
        fn record<B: Body>(body: B, _cap: usize) -> (B, Option<Recording<B>>) {
            (body, None)
        }

        fn replay<B>(_recording: Recording<B>) -> Option<B> {
            None
        }
    }
}
