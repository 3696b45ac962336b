//! reqwest as the HTTP client, under the layer and at the token endpoint:
//! Altrata's API (client credentials with an API key; a new token terminates the
//! previous one) through one `reqwest::Client`, with reqwest's request builder.
//! Runs against the local Altrata emulator:
//!
//! ```sh
//! cargo run --example reqwest_client --features reqwest   # from the repository root
//! ```
//!
//! Against the real API, drop the emulator and the two URL overrides.

use tower::ServiceBuilder;
use tower_client_auth::providers::altrata;
use tower_client_auth::reqwest::{ReqwestService, SendRequest};
use tower_client_auth::testing::altrata::Altrata;
use tower_client_auth::{AuthLayer, BoxError};
use tower_http::follow_redirect::FollowRedirectLayer;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let emulator = Altrata::start("api-key", "user", "password").await;

    // Redirects within an origin are followed by reqwest; any other comes back
    // to the follower above the layer, which stamps each hop for its own origin.
    // `ReqwestService::from_builder(reqwest::Client::builder()...)` for a client
    // of your own settings.
    let http = ReqwestService::new()?;
    let credential = altrata::client_credentials("api-key", "user", "password")
        .token_url(emulator.token_url())
        .api_origin(emulator.api_base())
        .build(&http)?;
    let api = ServiceBuilder::new()
        .timeout(std::time::Duration::from_secs(20))
        .layer(FollowRedirectLayer::new())
        .layer(AuthLayer::new(credential))
        .service(http.clone());

    for _ in 0..3 {
        let res = api
            .send(
                http.client()
                    .post(emulator.graphql_url())
                    .header("content-type", "application/json")
                    .body(r#"{"query":"{ me { id } }"}"#),
            )
            .await?
            .error_for_status()?;
        println!("{} {}", res.status(), res.text().await?);
    }
    // The emulator revokes every token: the next call gets a 401, and the layer
    // fetches a new token and sends the request (body and all) once more.
    emulator.revoke_all();
    let res = api
        .send(http.client().post(emulator.graphql_url()).body("{}"))
        .await?;
    println!("after revocation: {}", res.status());
    println!("token requests: {}", emulator.token_requests());
    assert_eq!(emulator.token_requests(), 2);
    Ok(())
}
