//! Presets for real providers: each configures a [`Credential`](crate::Credential)
//! in a few lines, with the provider's quirks handled. Emulators of each live in
//! [`testing`](crate#testing) (feature `testing`).
//!
//! | module | provider | what it sets up |
//! |---|---|---|
//! | [`algoreg`] | Algoreg | Basic `email:password`, or the JSON password grant at `{base}/api/v1/token` (1-hour tokens), lockout-safe |
//! | [`altrata`] | Altrata | client credentials with `grant_type` in the query, Basic + `x-api-key`; `x-api-key` on every API call; never a second token while one is valid |
//! | [`agrello`] | Agrello | authorization code with PKCE, code exchange and refresh with Basic client authentication, refresh-token rotation |
//! | [`generic`] | an OAuth2 API | personal access tokens, and the authorization code flow for third-party apps |

pub mod agrello;
pub mod algoreg;
pub mod altrata;
pub mod generic;

use std::time::Duration;

use crate::token::ManagedOptions;

/// Defaults for providers where wrong credentials have consequences: a long
/// cool-down after a permanent failure (15 minutes, doubling up to 6 hours).
pub(crate) fn lockout_safe() -> ManagedOptions {
    ManagedOptions::default().cooldown(Duration::from_secs(15 * 60), Duration::from_secs(6 * 3600))
}
