//! Without the `store` feature there is no shared store: `Shared` has no
//! values, so the manager's store paths compile away.

use std::time::Duration;

use crate::error::Error;
use crate::token::{Token, TokenSource, Version};

/// Uninhabited: a credential without a shared store.
pub(crate) enum Shared {}

/// What a shared fetch gives (never made here).
pub(crate) struct Fetched {
    pub(crate) token: Token,
    pub(crate) version: Option<Version>,
    pub(crate) fetched_here: bool,
}

impl Shared {
    pub(crate) async fn fetch(
        &self,
        _source: &dyn TokenSource,
        _previous: Option<&Token>,
        _held: Option<Version>,
        _usable: impl Fn(&Token) -> bool,
    ) -> Result<Fetched, Error> {
        match *self {}
    }

    pub(crate) fn gate_after_failure(&self, _e: &Error) -> Option<Duration> {
        match *self {}
    }

    pub(crate) fn end_cooldown(&self) {
        match *self {}
    }
}
