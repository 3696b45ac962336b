//! What a request that may be re-sent after a 401 keeps: the head as it was
//! before stamping, the recording of its body, the token generation it
//! carried, and the service to send it again on. Shared by the retry modes
//! (`mode.rs`) and the response future (`future.rs`), which both depend on
//! it and not on each other.

use std::sync::Arc;

use super::local::Stamp;
use crate::wire::replay::ReplayHandle;

/// What a recording body leaves behind for its replay.
pub struct Recording<B>(pub(crate) ReplayHandle<B>);

/// What a request that carried a managed token keeps to be re-sent.
pub(crate) struct Replay<B> {
    /// The request without its body, as it was before stamping.
    pub(crate) head: Option<http::request::Parts>,
    /// `None`: the body cannot be replayed (larger than the cap).
    pub(crate) recording: Option<Recording<B>>,
    /// The generation of the token the request carried.
    pub(crate) generation: u64,
}

/// A sent request's retry context: kept until its response shows whether a
/// second send is needed.
pub struct RetryCtx<S, B, Sent> {
    pub(crate) replay: Replay<B>,
    /// The replay body, taken from the recording when the 401 came.
    pub(crate) body: Option<Sent>,
    pub(crate) service: S,
    pub(crate) stamp: Arc<Stamp>,
    /// The retry is for a new DPoP nonce (same token, new proof).
    #[cfg(feature = "jose")]
    pub(crate) dpop_nonce: bool,
    /// Where the re-sent request went, to learn a nonce from its answer too
    /// (DPoP credentials only).
    #[cfg(feature = "jose")]
    pub(crate) resent_to: Option<http::Uri>,
}
