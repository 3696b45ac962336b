//! Marks that travel with a request or a response across layers, in their
//! extensions: a token request (never stamped, never retried), and the hop a
//! response answers (for a DPoP nonce after a redirect).

use http::Uri;

/// Marks a request as a token request (the crate's token client puts it in the
/// request's extensions). [`AuthService`](crate::AuthService) never stamps such a request, and the
/// [`GuardLayer`](crate::layer::GuardLayer) leaves it alone, so a token client given an authenticated
/// client by mistake cannot send credentials twice or wait on itself.
///
/// ```
/// use tower_client_auth::layer::TokenRequestMarker;
///
/// let mut req = http::Request::post("https://auth.example.com/token").body(())?;
/// req.extensions_mut().insert(TokenRequestMarker); // a token request of your own
/// # Ok::<_, http::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokenRequestMarker;

/// The URI of the hop a response answers, put in the response's extensions by
/// the [`Guard`](crate::layer::Guard) when it carries a `DPoP-Nonce`: after a redirect below the
/// layer, not the URI of the request the layer sent.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "jose"), allow(dead_code))] // only DPoP has nonces
pub(crate) struct HopUri(pub(crate) Uri);

/// The token endpoint a token request was made for, put beside the
/// [`TokenRequestMarker`] by the crate's token client: a hop to another origin
/// (a redirect a follower below the guard took, extensions and all) is no
/// longer that token request, and the guard strips it like any other.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "oauth2"), allow(dead_code))] // set by the token client
pub(crate) struct TokenEndpoint(pub(crate) Uri);
