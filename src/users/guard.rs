//! The users' guard: every user's token kept on their origin (see
//! [`UsersLayer::guard`](super::UsersLayer::guard)).

use std::fmt;
use std::sync::Arc;

use http::header;

use crate::layer::guard::Guarded;
use crate::layer::local::has_header;
use crate::layer::GuardLayer;

use super::*;

/// What the users' guard keeps on their origin (see [`UsersLayer::guard`]):
/// every user's token, and the origin they all go to (`None` if it does not
/// parse, which [`UsersBuilder::build`] has ruled out: every hop is then
/// another origin).
pub(super) struct UsersGuarded {
    pub(super) users: Users,
    pub(super) origin: Option<crate::wire::origin::Origin>,
}

impl Guarded for UsersGuarded {
    #[inline]
    fn applies_to(&self, uri: &http::Uri) -> bool {
        self.origin.as_ref().is_some_and(|o| o.matches(uri))
    }

    /// Removes what any user's credential stamped: the request's own user's
    /// first, then, while an `Authorization` is left, every other user's in
    /// memory (a hop to another origin is rare; a scan there is the price of
    /// not trusting extensions, which followers drop across origins).
    fn remove_stamped(
        &self,
        headers: &mut http::HeaderMap,
        extensions: &http::Extensions,
    ) -> usize {
        let users = &self.users;
        let mut removed = 0;
        // One key for every user's proofs.
        #[cfg(feature = "jose")]
        if let Some(dpop) = users.inner.client.dpop() {
            removed += crate::credential::remove_dpop_proofs(headers, dpop);
        }
        if !has_header(headers, &header::AUTHORIZATION) {
            return removed;
        }
        let user = extensions.get::<UserKey>();
        if let Some(entry) = user.and_then(|u| users.lock().map.get(u).cloned()) {
            removed += entry.credential.remove_stamped(headers);
        }
        if has_header(headers, &header::AUTHORIZATION) {
            // Taken out of the lock first: a manager's lock is never taken
            // under the users' one.
            let entries: Vec<Arc<Entry>> = users.lock().map.values().cloned().collect();
            for entry in entries {
                removed += entry.credential.remove_stamped(headers);
                if !has_header(headers, &header::AUTHORIZATION) {
                    break;
                }
            }
        }
        removed
    }

    fn name(&self) -> &str {
        &self.users.inner.name
    }

    fn signs_dpop_proofs(&self) -> bool {
        #[cfg(feature = "jose")]
        return self.users.inner.client.dpop().is_some();
        #[cfg(not(feature = "jose"))]
        false
    }
}

impl fmt::Debug for UsersGuarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.users.fmt(f)
    }
}

impl Users {
    /// The guard for every user's token.
    pub(crate) fn guard_layer(&self) -> GuardLayer {
        let origin = crate::wire::origin::Origin::parse_allow_http(&self.inner.origin).ok();
        let guarded = UsersGuarded {
            users: self.clone(),
            origin,
        };
        GuardLayer::guarding(Arc::from([Box::new(guarded) as Box<dyn Guarded>]))
    }
}
