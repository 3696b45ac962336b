//! Errors of the token lifecycle beyond one token request: client assertions
//! that come from a source, revocation, and authorization requests pushed to
//! the server.

use std::fmt;

use super::{Error, Kind};

/// What went wrong around a token's life, past the token request itself.
#[derive(Debug)]
pub(crate) enum Lifecycle {
    /// An assertion from an [`AssertionSource`](crate::oauth2::AssertionSource)
    /// had expired (its own `exp`): it was not sent.
    AssertionExpired,
    /// The assertion could not be had (a file missing or unreadable, a
    /// closure that failed, an empty one); the cause is the source.
    AssertionUnavailable(&'static str),
    /// Revoking a token failed after `attempts` tries; the cause is the last
    /// failure.
    RevocationFailed { attempts: u32 },
    /// A pushed authorization request (RFC 9126) was refused or its answer
    /// could not be used; the cause, if any, says why.
    PushedAuthorization(&'static str),
}

impl Lifecycle {
    pub(super) fn is_transient(&self, source: Option<&Error>) -> bool {
        match self {
            // A rotating source renews its assertion: worth asking again soon.
            Lifecycle::AssertionExpired | Lifecycle::AssertionUnavailable(_) => true,
            Lifecycle::RevocationFailed { .. } | Lifecycle::PushedAuthorization(_) => {
                source.is_some_and(Error::is_transient)
            }
        }
    }
}

impl Lifecycle {
    /// This level's message, naming the endpoint `at` when there is one.
    pub(super) fn fmt_at(&self, f: &mut fmt::Formatter<'_>, at: Option<&str>) -> fmt::Result {
        fmt::Display::fmt(self, f)?;
        match at {
            Some(url) => write!(f, " (at {url})"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lifecycle::AssertionExpired => {
                f.write_str("the client assertion has expired (its `exp` has passed): not sent")
            }
            Lifecycle::AssertionUnavailable(what) => write!(f, "no client assertion: {what}"),
            Lifecycle::RevocationFailed { attempts } => {
                write!(f, "token revocation failed after {attempts} attempt(s)")
            }
            Lifecycle::PushedAuthorization(what) => {
                write!(f, "pushed authorization request failed: {what}")
            }
        }
    }
}

impl Error {
    pub(crate) fn lifecycle(kind: Lifecycle) -> Self {
        Error::new(Kind::Lifecycle(kind))
    }

    pub(crate) fn lifecycle_from(kind: Lifecycle, cause: impl Into<super::BoxError>) -> Self {
        Error::with_source(Kind::Lifecycle(kind), cause)
    }

    fn lifecycle_kind(&self) -> Option<&Lifecycle> {
        match self.root().kind() {
            Kind::Lifecycle(l) => Some(l),
            _ => None,
        }
    }

    /// An assertion (a client assertion or a JWT-bearer grant's) from an
    /// [`AssertionSource`](crate::oauth2::AssertionSource) had expired by its
    /// own `exp`: it was not sent. Transient: a rotating source renews it.
    pub fn is_assertion_expired(&self) -> bool {
        matches!(self.lifecycle_kind(), Some(Lifecycle::AssertionExpired))
    }

    /// An [`AssertionSource`](crate::oauth2::AssertionSource) gave no
    /// assertion (a missing or unreadable file, a failed closure, an empty
    /// assertion); the cause is the [`source`](std::error::Error::source).
    pub fn is_assertion_unavailable(&self) -> bool {
        matches!(
            self.lifecycle_kind(),
            Some(Lifecycle::AssertionUnavailable(_))
        )
    }

    /// Revoking a token (RFC 7009) failed after its retries; the last
    /// failure is the [`source`](std::error::Error::source).
    pub fn is_revocation_failed(&self) -> bool {
        matches!(
            self.lifecycle_kind(),
            Some(Lifecycle::RevocationFailed { .. })
        )
    }

    /// A pushed authorization request (RFC 9126) failed; the cause, if any,
    /// is the [`source`](std::error::Error::source).
    pub fn is_pushed_authorization_failed(&self) -> bool {
        matches!(
            self.lifecycle_kind(),
            Some(Lifecycle::PushedAuthorization(_))
        )
    }

    /// The cause as this crate's error, if it is one.
    pub(super) fn crate_source(&self) -> Option<&Error> {
        self.inner.source.as_ref()?.downcast_ref::<Error>()
    }
}
