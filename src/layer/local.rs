//! Per-clone copies of what a service stamps, so that the cached path bumps no
//! reference count that another clone or thread also bumps.
//!
//! Cloning a `HeaderValue` is a refcount increment on its buffer. When every
//! clone of a service stamps the same `HeaderValue`, every request on every core
//! increments (and later decrements) one shared counter, and that cache line
//! caps throughput on many cores (tower-http's `AddAuthorization` shows it, see
//! BENCHMARKS.md). So each service clone that serves more than one request makes
//! its own copies: of the static headers (names and values), and of the current
//! token's `Authorization` value, re-copied when the token changes. A clone made
//! for a single request (`svc.clone().oneshot(req)`) keeps sharing its parent's
//! copies: copying would cost it more than the one shared increment it saves.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::cache::{Stamped, TokenCache};
use crate::credential::Credential;

/// What one service clone stamps besides the token: its credential and its own
/// copies of the static headers. Shared by the clone's in-flight requests (a
/// retry stamps again), never with another clone once the clone owns it.
pub struct Stamp {
    pub(crate) credential: Credential,
    statics: Box<[(HeaderName, HeaderValue)]>,
    /// The DPoP key of the credential's tokens, looked up once: the check on
    /// the hot path is then one load.
    #[cfg(feature = "jose")]
    pub(crate) dpop: Option<crate::jose::Dpop>,
}

impl Stamp {
    pub(crate) fn new(credential: Credential) -> Arc<Stamp> {
        let statics = credential
            .static_headers()
            .iter()
            .map(|(n, v)| (deep_name(n), deep_value(v)))
            .collect();
        Arc::new(Stamp {
            #[cfg(feature = "jose")]
            dpop: credential.manager().and_then(|m| m.dpop().cloned()),
            credential,
            statics,
        })
    }

    /// Adds each static header the caller has not set.
    #[inline(always)]
    pub(crate) fn stamp_statics(&self, headers: &mut HeaderMap) {
        // Most managed credentials have none: no call for them.
        if !self.statics.is_empty() {
            self.stamp_each_static(headers);
        }
    }

    fn stamp_each_static(&self, headers: &mut HeaderMap) {
        for (name, value) in self.statics.iter() {
            if !has_header(headers, name) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn static_values(&self) -> impl Iterator<Item = &HeaderValue> {
        self.statics.iter().map(|(_, v)| v)
    }
}

/// How far a clone is from owning its copies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ownership {
    /// A new clone, sharing its parent's copies.
    Borrowed,
    /// Has served one request with its parent's copies.
    ServedOnce,
    /// Has its own.
    Own,
}

/// A service clone's copies, and its view of the managed token. See the
/// module docs.
pub struct Local {
    pub(crate) stamp: Arc<Stamp>,
    ownership: Ownership,
    /// This clone's copy of the `Authorization` value of `token` (held to
    /// recognise it: while held, no other token can have its address).
    pub(super) token: Option<(Arc<Stamped>, HeaderValue)>,
    /// This clone's view of the managed token (see `TokenManager::cache`);
    /// `None` for a static credential.
    cache: Option<TokenCache>,
}

impl Local {
    /// A clone's copies from `stamp`: its own from the start (`own`: the
    /// service a layer makes, which made the stamp for itself), or shared with
    /// others (a user's, shared by every service clone) until this clone serves
    /// a second request with them.
    pub(crate) fn new(stamp: Arc<Stamp>, own: bool) -> Local {
        Local {
            cache: stamp.credential.manager().map(|m| m.cache()),
            stamp,
            ownership: if own {
                Ownership::Own
            } else {
                Ownership::Borrowed
            },
            token: None,
        }
    }

    /// The managed token to stamp, if it is fresh, as this clone's own
    /// `Authorization` value and its generation; with the stamp for the rest.
    #[inline(always)]
    pub(crate) fn fresh_token(&mut self) -> Option<((&HeaderValue, u64), &Arc<Stamp>)> {
        let current = self.cache.as_mut()?.load().as_ref()?;
        if !current.is_fresh() {
            return None;
        }
        let own = self.ownership == Ownership::Own;
        let authorization = Local::authorization(&mut self.token, own, current);
        Some(((authorization, current.generation), &self.stamp))
    }

    /// Called once per request that gets stamped: a clone that serves a second
    /// request makes its own copies.
    #[inline(always)]
    pub(crate) fn on_request(&mut self) {
        if self.ownership != Ownership::Own {
            self.advance();
        }
    }

    #[cold]
    #[inline(never)]
    fn advance(&mut self) {
        self.ownership = match self.ownership {
            Ownership::Borrowed => Ownership::ServedOnce,
            _ => {
                self.stamp = Stamp::new(self.stamp.credential.clone());
                Ownership::Own
            }
        };
    }

    /// The `Authorization` value to stamp for the token `current`: this clone's
    /// own copy once it owns its copies (made when the token changes), else the
    /// token's shared one.
    #[inline(always)]
    fn authorization<'a>(
        token: &'a mut Option<(Arc<Stamped>, HeaderValue)>,
        own: bool,
        current: &'a Arc<Stamped>,
    ) -> &'a HeaderValue {
        if !own {
            return &current.authorization;
        }
        let held = token.as_ref().is_some_and(|(t, _)| Arc::ptr_eq(t, current));
        if !held {
            *token = Some(copy_token(current));
        }
        match token {
            Some((_, value)) => value,
            None => &current.authorization,
        }
    }
}

impl Clone for Local {
    fn clone(&self) -> Self {
        Local {
            stamp: self.stamp.clone(),
            ownership: Ownership::Borrowed,
            token: None,
            cache: self.cache.clone(),
        }
    }
}

#[cold]
#[inline(never)]
fn copy_token(current: &Arc<Stamped>) -> (Arc<Stamped>, HeaderValue) {
    (current.clone(), deep_value(&current.authorization))
}

/// A copy of `value` in a buffer of its own.
fn deep_value(value: &HeaderValue) -> HeaderValue {
    let mut copy = HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(value.as_bytes()))
        .unwrap_or_else(|_| value.clone());
    copy.set_sensitive(value.is_sensitive());
    copy
}

/// A copy of `name` in a buffer of its own (standard names have none).
fn deep_name(name: &HeaderName) -> HeaderName {
    HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone())
}

/// Whether `headers` has `name`. A request carries a handful of headers: comparing
/// names in order is cheaper than hashing, and leaves the one hash to `insert`.
#[inline]
pub(crate) fn has_header(headers: &HeaderMap, name: &http::header::HeaderName) -> bool {
    if headers.keys_len() > 8 {
        return headers.contains_key(name);
    }
    headers.keys().any(|k| k == name)
}
