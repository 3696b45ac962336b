//! HTTP primitives that know nothing else of the crate: origins and how a URL
//! is shown without its secrets, `WWW-Authenticate` challenges, the request
//! body that can be sent twice, `Retry-After`, and the marks a request or a response carries
//! across layers. Everything else builds on these; they build on nothing.

pub(crate) mod challenge;
pub(crate) mod marks;
pub mod origin;
pub mod replay;
pub(crate) mod retry_after;
