//! One tour per provider. With the provider's environment variables set, a tour
//! talks to the real provider; otherwise it starts the local emulator.

use std::time::Duration;

use http::Method;
use tower::Layer;
use tower_client_auth::providers::{agrello, algoreg, altrata, generic};
use tower_client_auth::testing;
use tower_client_auth::{AuthLayer, BoxError, Error};

use super::{env, http, send, status};

/// Algoreg: `ALGOREG_EMAIL`, `ALGOREG_PASSWORD`, `ALGOREG_URL` (an API URL to
/// GET), optional `ALGOREG_BASE` (default https://api.algoreg.com).
pub async fn algoreg(allow_real: bool) -> Result<(), BoxError> {
    if !allow_real {
        return algoreg_emulated().await;
    }
    if let (Some(email), Some(password), Some(url)) = (
        env("ALGOREG_EMAIL"),
        env("ALGOREG_PASSWORD"),
        env("ALGOREG_URL"),
    ) {
        let base = env("ALGOREG_BASE").unwrap_or_else(|| algoreg::API_BASE.to_owned());
        println!("Algoreg (real, {base}): password grant, JSON body, Bearer");
        let cred = algoreg::oauth2(&base, email, password, http())?;
        let svc = AuthLayer::new(cred.clone()).layer(http());
        send(&svc, Method::GET, &url, "").await?;
        println!("  stats: {:?}", cred.stats());
        return Ok(());
    }
    algoreg_emulated().await
}

/// The emulator half of the tour.
pub async fn algoreg_emulated() -> Result<(), BoxError> {
    let emu = testing::algoreg::Algoreg::start("api@acme.com", "my_password", 3).await;
    let base = emu.base_url();
    println!("Algoreg (emulator at {base}; set ALGOREG_EMAIL, ALGOREG_PASSWORD, ALGOREG_URL for the real one)");
    let svc = AuthLayer::new(algoreg::basic(&base, "api@acme.com", "my_password")?).layer(http());
    println!(" Basic email:password:");
    send(&svc, Method::GET, &format!("{base}/api/v1/cases"), "").await?;
    println!(" OAuth2 password grant (JSON body) then Bearer, 20 concurrent calls:");
    let cred = algoreg::oauth2(&base, "api@acme.com", "my_password", http())?;
    let svc = AuthLayer::new(cred.clone()).layer(http());
    let calls = (0..20).map(|_| {
        let svc = svc.clone();
        let uri = format!("{base}/api/v1/cases");
        async move { status(&svc, Method::GET, &uri, "").await }
    });
    let ok = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(200)))
        .count();
    println!("  {ok}/20 OK, token requests: {}", emu.token_requests());
    println!(" Wrong password, 10 calls (the account locks after 3 wrong passwords):");
    let wrong = algoreg::oauth2(&base, "api@acme.com", "not-my-password", http())?;
    let svc = AuthLayer::new(wrong).layer(http());
    for i in 0..10 {
        let uri = format!("{base}/api/v1/cases");
        let result = if i < 2 {
            send(&svc, Method::GET, &uri, "").await
        } else {
            status(&svc, Method::GET, &uri, "").await
        };
        if let Err(e) = result {
            let e = e.downcast::<Error>()?;
            assert!(e.is_invalid_grant() || e.is_cooling_down());
        }
    }
    println!(
        "  wrong passwords the server saw: {} (locked: {})",
        emu.wrong_passwords(),
        emu.is_locked()
    );
    Ok(())
}

/// Altrata: `ALTRATA_API_KEY`, `ALTRATA_USERNAME`, `ALTRATA_PASSWORD`; optional
/// `ALTRATA_QUERY` (a GraphQL body, default `{"query":"{ __typename }"}`).
pub async fn altrata(allow_real: bool) -> Result<(), BoxError> {
    if !allow_real {
        return altrata_emulated().await;
    }
    if let (Some(key), Some(user), Some(pass)) = (
        env("ALTRATA_API_KEY"),
        env("ALTRATA_USERNAME"),
        env("ALTRATA_PASSWORD"),
    ) {
        println!("Altrata (real): client credentials, x-api-key + Bearer on GraphQL");
        let cred = altrata::client_credentials(key, user, pass).build(http())?;
        let svc = AuthLayer::new(cred.clone()).layer(http());
        let body: &'static str = Box::leak(
            env("ALTRATA_QUERY")
                .unwrap_or_else(|| r#"{"query":"{ __typename }"}"#.into())
                .into_boxed_str(),
        );
        send(
            &svc,
            Method::POST,
            &format!("{}/v1/graphql", altrata::PROFILE_API),
            body,
        )
        .await?;
        println!("  stats: {:?}", cred.stats());
        return Ok(());
    }
    altrata_emulated().await
}

/// The emulator half of the tour.
pub async fn altrata_emulated() -> Result<(), BoxError> {
    let emu = testing::altrata::Altrata::start("KEY-1", "user", "pass").await;
    println!(
        "Altrata (emulator at {}; set ALTRATA_API_KEY, ALTRATA_USERNAME, ALTRATA_PASSWORD for the real one)",
        emu.api_base()
    );
    let cred = altrata::client_credentials("KEY-1", "user", "pass")
        .token_url(emu.token_url())
        .api_origin(emu.api_base())
        .build(http())?;
    let svc = AuthLayer::new(cred.clone()).layer(http());
    send(
        &svc,
        Method::POST,
        &emu.graphql_url(),
        r#"{"query":"{ me { id } }"}"#,
    )
    .await?;
    println!(" another client takes a token (ours is terminated), then 50 concurrent calls:");
    emu.revoke_all();
    let calls = (0..50).map(|_| {
        let svc = svc.clone();
        let uri = emu.graphql_url();
        async move { status(&svc, Method::POST, &uri, r#"{"query":"{ me { id } }"}"#).await }
    });
    let ok = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(200)))
        .count();
    println!(
        "  {ok}/50 OK; token requests {} (one for the whole 401 storm); valid tokens we terminated: {}",
        emu.token_requests(),
        emu.terminated_valid_tokens()
    );
    Ok(())
}

/// Agrello: `AGRELLO_CLIENT_ID`, `AGRELLO_CLIENT_SECRET`, `AGRELLO_REDIRECT_URI`,
/// `AGRELLO_API_URL` (an API URL to GET). Prints the authorization URL and reads
/// the callback's query string from standard input.
pub async fn agrello(allow_real: bool) -> Result<(), BoxError> {
    if !allow_real {
        return agrello_emulated().await;
    }
    if let (Some(id), Some(secret), Some(redirect), Some(api_url)) = (
        env("AGRELLO_CLIENT_ID"),
        env("AGRELLO_CLIENT_SECRET"),
        env("AGRELLO_REDIRECT_URI"),
        env("AGRELLO_API_URL"),
    ) {
        let request = agrello::authorization_url(&id, &redirect).build()?;
        println!(
            "Open this URL, approve, then paste the query string of the redirect:\n{}",
            request.url()
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let code = request.verify_callback(line.trim())?;
        let client = agrello::token_client(id, secret, http())?;
        let token = client
            .exchange_code(code.code, Some(&redirect), request.verifier())
            .await?;
        let origin: http::Uri = api_url.parse()?;
        let origin = format!(
            "{}://{}",
            origin.scheme_str().unwrap_or("https"),
            origin.authority().map(|a| a.as_str()).unwrap_or("")
        );
        let cred = agrello::credential(&origin, client, token)?;
        let svc = AuthLayer::new(cred).layer(http());
        send(&svc, Method::GET, &api_url, "").await?;
        return Ok(());
    }
    agrello_emulated().await
}

/// The emulator half of the tour.
pub async fn agrello_emulated() -> Result<(), BoxError> {
    let emu = testing::oauth::OAuthServer::start("agrello-app", "agrello-secret").await;
    emu.set_token_lifetime(Duration::from_secs(1));
    println!(
        "Agrello (emulator at {}; set AGRELLO_CLIENT_ID, AGRELLO_CLIENT_SECRET, AGRELLO_REDIRECT_URI, AGRELLO_API_URL for the real one)",
        emu.base_url()
    );
    let request = tower_client_auth::oauth2::AuthorizationUrl::new(
        emu.authorize_url(),
        "agrello-app",
        "http://127.0.0.1/callback",
    )
    .scope("documents")
    .build()?;
    println!("  authorization URL: {}", request.url());
    let callback = emu.approve(request.url()).await?;
    let code = request.verify_callback(&callback)?;
    println!(
        "  callback checked (state matches), exchanging the code with PKCE + Basic client auth"
    );
    let client =
        agrello::token_client_at(&emu.token_url(), "agrello-app", "agrello-secret", http())?;
    let token = client
        .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
        .await?;
    let cred = agrello::credential(&emu.base_url(), client, token)?;
    let svc = AuthLayer::new(cred.clone()).layer(http());
    for _ in 0..3 {
        send(
            &svc,
            Method::GET,
            &format!("{}/api/v1/documents", emu.base_url()),
            "",
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    println!(
        "  1 s tokens over ~2 s: token requests {} (code exchange + refreshes), refresh tokens rotated {}",
        emu.token_requests(),
        emu.refresh_tokens_used()
    );
    Ok(())
}

/// A generic OAuth2 API with a personal access token: `GENERIC_API_URL` and
/// `GENERIC_PAT`.
pub async fn generic(allow_real: bool) -> Result<(), BoxError> {
    if !allow_real {
        return generic_emulated().await;
    }
    if let (Some(url), Some(pat)) = (env("GENERIC_API_URL"), env("GENERIC_PAT")) {
        let uri: http::Uri = url.parse()?;
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map(|a| a.as_str()).unwrap_or("")
        );
        let svc = AuthLayer::new(generic::personal_access_token(&origin, pat)?).layer(http());
        send(&svc, Method::GET, &url, "").await?;
        return Ok(());
    }
    generic_emulated().await
}

/// The emulator half of the tour.
pub async fn generic_emulated() -> Result<(), BoxError> {
    let emu = testing::oauth::OAuthServer::start("app", "secret").await;
    println!(
        "Generic OAuth2 API (emulator at {}; set GENERIC_API_URL and GENERIC_PAT for a real one)",
        emu.base_url()
    );
    let pat = emu.issue_personal_access_token(Duration::from_secs(86_400));
    let svc = AuthLayer::new(generic::personal_access_token(&emu.base_url(), pat)?).layer(http());
    send(
        &svc,
        Method::GET,
        &format!("{}/api/v1/me", emu.base_url()),
        "",
    )
    .await?;
    Ok(())
}
