//! [`Select`]: which credential stamps a request. The one seam between the
//! layer and what it stamps: a [`Credential`] (every request to its origins),
//! or, with the feature `users`, `Users` (each request its user's). The layer's
//! `call`, its future and its retry are the same for both.

use std::fmt;

use http::Request;

use super::local::{Local, Stamp};
use super::GuardLayer;
use crate::credential::Credential;
use crate::error::Error;

/// What an [`AuthLayer`](crate::AuthLayer) stamps: a [`Credential`] or, with
/// the feature `users`, [`Users`](crate::users::Users), whose layer is
/// [`UsersLayer`](crate::users::UsersLayer). Sealed: these two are the
/// selectors.
///
/// ```
/// use tower_client_auth::layer::Select;
/// use tower_client_auth::{AuthLayer, Credential};
///
/// fn describe<P: Select>(layer: &AuthLayer<tower_client_auth::layer::Retry, P>) -> String {
///     format!("{layer:?}")
/// }
/// let layer = AuthLayer::new(Credential::bearer("https://api.example.com", "pat")?);
/// assert!(describe(&layer).starts_with("AuthLayer"));
/// # Ok::<(), tower_client_auth::Error>(())
/// ```
pub trait Select: sealed::Sealed {}

impl Select for Credential {}

pub(crate) mod sealed {
    use super::*;

    pub trait Sealed: Clone + fmt::Debug + Send + Sync + 'static {
        /// The name of the selector in `Debug` output.
        const NAME: &'static str;

        /// What each service clone keeps between requests.
        type Slot: Clone;

        /// The slot of a service made by a layer.
        fn slot(&self) -> Self::Slot;

        /// The copies to stamp `req` with, kept in `slot`; `Ok(None)` to send
        /// it as it is; an error to fail it without sending.
        fn select<'a, B>(
            &self,
            slot: &'a mut Self::Slot,
            req: &Request<B>,
        ) -> Result<Option<&'a mut Local>, Error>;

        /// The guard for everything this selector stamps.
        fn guard_layer(&self) -> GuardLayer;
    }
}

impl sealed::Sealed for Credential {
    const NAME: &'static str = "credential";

    type Slot = Local;

    fn slot(&self) -> Local {
        Local::new(Stamp::new(self.clone()), true)
    }

    #[inline(always)]
    fn select<'a, B>(
        &self,
        slot: &'a mut Local,
        req: &Request<B>,
    ) -> Result<Option<&'a mut Local>, Error> {
        Ok(self.applies_to(req.uri()).then_some(slot))
    }

    fn guard_layer(&self) -> GuardLayer {
        GuardLayer::new(self.clone())
    }
}
