//! Errors of a protected resource that configures the client (RFC 9728
//! metadata, RFC 7591 registration) or asks for more (step-up: RFC 6750
//! `insufficient_scope`, RFC 9470 `insufficient_user_authentication`).

use std::fmt;

use super::{escape, Error, Kind};

/// What went wrong with a protected resource, kept in [`Kind::Resource`].
#[derive(Debug, Clone)]
pub(crate) enum ResourceError {
    /// The resource's metadata is unusable or does not speak for the resource
    /// (fixed text of this crate; anything from the network escaped).
    Metadata(String),
    /// A metadata URL answered with a redirect, which is never followed.
    Redirect(u16),
    /// A metadata URL answered an error status (it names the URL, escaped).
    Unavailable(String),
    /// Dynamic client registration failed or answered something unusable.
    Registration(String),
    /// `403 insufficient_scope`: the token lacks these scopes, and asking for
    /// them again would not help (or the caller must ask a user for them).
    InsufficientScope(Vec<String>),
    /// `401 insufficient_user_authentication` (RFC 9470): the user must log in
    /// again with one of these authentication context classes, or more
    /// recently than `max_age` seconds.
    UserAuthentication {
        acr_values: Vec<String>,
        max_age: Option<u64>,
    },
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceError::Metadata(msg) => write!(f, "protected resource metadata: {msg}"),
            ResourceError::Redirect(status) => write!(
                f,
                "protected resource metadata answered a redirect (HTTP {status}), which is not followed"
            ),
            ResourceError::Unavailable(msg) => write!(f, "protected resource metadata: {msg}"),
            ResourceError::Registration(msg) => write!(f, "client registration: {msg}"),
            ResourceError::InsufficientScope(scopes) => write!(
                f,
                "the resource needs scopes `{}` (insufficient_scope)",
                escape(&scopes.join(" "), 200)
            ),
            ResourceError::UserAuthentication {
                acr_values,
                max_age,
            } => {
                f.write_str("the resource needs a stronger or more recent user authentication")?;
                if !acr_values.is_empty() {
                    write!(f, " (acr_values `{}`)", escape(&acr_values.join(" "), 200))?;
                }
                if let Some(age) = max_age {
                    write!(f, " (max_age {age} s)")?;
                }
                Ok(())
            }
        }
    }
}

impl Error {
    pub(crate) fn resource(e: ResourceError) -> Self {
        Error::new(Kind::Resource(e))
    }

    fn resource_error(&self) -> Option<&ResourceError> {
        match self.root().kind() {
            Kind::Resource(e) => Some(e),
            _ => None,
        }
    }

    /// A protected resource's metadata (RFC 9728) could not be used: its URL
    /// answered an error status or a redirect, or the document does not name
    /// the resource it was fetched for, lists no (or too many, or not the
    /// configured) authorization servers, is too large or is not JSON.
    /// Nothing was sent to any server it names.
    pub fn is_resource_metadata(&self) -> bool {
        matches!(
            self.resource_error(),
            Some(
                ResourceError::Metadata(_)
                    | ResourceError::Redirect(_)
                    | ResourceError::Unavailable(_)
            )
        )
    }

    /// A metadata URL answered an error status (a 404 where the well-known
    /// location was tried, say).
    pub(crate) fn is_metadata_unavailable(&self) -> bool {
        matches!(self.resource_error(), Some(ResourceError::Unavailable(_)))
    }

    /// A metadata URL answered with a redirect (never followed).
    pub fn is_metadata_redirect(&self) -> bool {
        matches!(self.resource_error(), Some(ResourceError::Redirect(_)))
    }

    /// Dynamic client registration (RFC 7591) failed or answered something
    /// unusable.
    pub fn is_registration(&self) -> bool {
        matches!(self.resource_error(), Some(ResourceError::Registration(_)))
    }

    /// The resource asks for more than the token gives: scopes
    /// ([`step_up_scopes`](Self::step_up_scopes)) or a stronger, more recent
    /// user authentication ([`acr_values`](Self::acr_values),
    /// [`max_age`](Self::max_age)).
    pub fn is_step_up(&self) -> bool {
        matches!(
            self.resource_error(),
            Some(ResourceError::InsufficientScope(_) | ResourceError::UserAuthentication { .. })
        )
    }

    /// `403 insufficient_scope`: [`step_up_scopes`](Self::step_up_scopes)
    /// names what to ask for.
    pub fn is_insufficient_scope(&self) -> bool {
        matches!(
            self.resource_error(),
            Some(ResourceError::InsufficientScope(_))
        )
    }

    /// `401 insufficient_user_authentication` (RFC 9470): send the user to a
    /// login asking for [`acr_values`](Self::acr_values) /
    /// [`max_age`](Self::max_age).
    pub fn is_user_authentication_required(&self) -> bool {
        matches!(
            self.resource_error(),
            Some(ResourceError::UserAuthentication { .. })
        )
    }

    /// For [`is_insufficient_scope`](Self::is_insufficient_scope), every
    /// scope to ask for: what the token had and what the resource named.
    pub fn step_up_scopes(&self) -> Option<&[String]> {
        match self.resource_error() {
            Some(ResourceError::InsufficientScope(s)) => Some(s),
            _ => None,
        }
    }

    /// For [`is_user_authentication_required`](Self::is_user_authentication_required),
    /// the authentication context classes the resource accepts.
    pub fn acr_values(&self) -> Option<&[String]> {
        match self.resource_error() {
            Some(ResourceError::UserAuthentication { acr_values, .. }) => Some(acr_values),
            _ => None,
        }
    }

    /// For [`is_user_authentication_required`](Self::is_user_authentication_required),
    /// how recent (in seconds) the user's authentication must be, if the
    /// resource said.
    pub fn max_age(&self) -> Option<u64> {
        match self.resource_error() {
            Some(ResourceError::UserAuthentication { max_age, .. }) => *max_age,
            _ => None,
        }
    }
}
