//! Without the `store` feature there is no shared store: `Shared` has no
//! values, so the manager's store paths compile away.

use super::{Token, TokenSource};
use crate::error::Error;

/// Uninhabited: a credential without a shared store.
pub(crate) enum Shared {}

/// What a shared fetch gives (never made here).
pub(crate) struct Fetched {
    pub(crate) token: Token,
    pub(crate) generation: u64,
    pub(crate) fetched_here: bool,
}

impl Shared {
    pub(crate) async fn fetch(
        &self,
        _source: &dyn TokenSource,
        _previous: Option<&Token>,
        _held: u64,
        _usable: impl Fn(&Token) -> bool,
    ) -> Result<Fetched, Error> {
        match *self {}
    }
}
