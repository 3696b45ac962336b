//! The three commands: `check`, `login`, `request`.

use std::convert::Infallible;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_client_auth::https::{self, HttpsClient};
use tower_client_auth::oauth2::{AuthorizationUrl, ClientAuth, OAuth2Source, TokenClient};
use tower_client_auth::secrecy::{ExposeSecret, SecretString};
use tower_client_auth::token::Token;
use tower_client_auth::{AuthLayer, Credential};

use crate::config::{Config, Grant};
use crate::progress::slow;
use crate::{refresh_file, Exit, Failure};

/// A URL without its query and fragment, for messages (a query may carry
/// something private).
fn without_query(url: &str) -> String {
    // The crate's `Origin` already leaves user information out.
    match url
        .parse::<Uri>()
        .ok()
        .and_then(|u| tower_client_auth::Origin::from_uri(&u).map(|o| format!("{o}{}", u.path())))
    {
        Some(shown) => shown,
        None => url.split(['?', '#']).next().unwrap_or(url).to_owned(),
    }
}

/// Plain `http://` to a host that is not loopback, refused with the setting
/// that allows it named (the library's own message cannot know the CLI's).
fn refuse_plain_http(cfg: &Config, what: &str, url: &str) -> Result<(), Failure> {
    if cfg.allow_http || tower_client_auth::Origin::parse(url).is_ok() {
        return Ok(());
    }
    if tower_client_auth::Origin::parse_allow_http(url).is_ok() {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "{what} {} is plain http:// to a host that is not loopback: the credentials would \
                 cross the network unencrypted. Use https://, or set TCA_ALLOW_HTTP=1 \
                 (allow_http = true in the file) if you mean it",
                without_query(url)
            ),
        ));
    }
    Ok(())
}

/// A client authentication that sends a secret, with none configured: said
/// before anything is sent, rather than a request the server can only refuse.
fn require_client_secret(cfg: &Config) -> Result<(), Failure> {
    let sends_secret = matches!(
        cfg.client_auth,
        ClientAuth::Basic | ClientAuth::BasicRaw | ClientAuth::Body
    );
    if sends_secret && cfg.client_secret.is_none() {
        return Err(Failure::new(
            Exit::Usage,
            "no client secret configured: set TCA_CLIENT_SECRET, or client_secret_env = \"VAR\" \
             or client_secret_file = \"PATH\" in the file (or client_auth = \"none\" for a \
             public client)",
        ));
    }
    Ok(())
}

fn token_client(cfg: &Config, http: HttpsClient) -> Result<TokenClient, Failure> {
    refuse_plain_http(cfg, "the token URL", &cfg.token_url)?;
    require_client_secret(cfg)?;
    let mut b = TokenClient::builder(cfg.token_url.clone())
        .client_auth(cfg.client_auth)
        .timeout(cfg.timeout);
    if let Some(id) = &cfg.client_id {
        b = b.client_id(id.clone());
    }
    if let Some(secret) = &cfg.client_secret {
        b = b.client_secret(secret.clone());
    }
    if cfg.allow_http {
        b = b.allow_http();
    }
    b.build(http)
        .map_err(|e| Failure::from_error("the token endpoint settings are not usable", &e))
}

fn password_grant(cfg: &Config) -> Result<(String, SecretString), Failure> {
    let user = cfg.username.clone().ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            "the password grant needs a username (TCA_USERNAME)",
        )
    })?;
    let password = cfg.password.clone().ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            "the password grant needs a password (TCA_PASSWORD, password_env or password_file)",
        )
    })?;
    Ok((user, password))
}

fn stored_refresh_token(cfg: &Config) -> Result<SecretString, Failure> {
    refresh_file::load(
        &cfg.refresh_token_file,
        &cfg.token_url,
        cfg.client_id.as_deref(),
    )
}

fn print_token(token: &Token, took: Duration, show_token: bool) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "token type     {}", token.token_type());
    let _ = writeln!(
        out,
        "scopes         {}",
        token.scope().unwrap_or("(not stated by the server)")
    );
    match token.expires_in() {
        Some(d) => {
            let _ = writeln!(out, "expires in     {} s", d.as_secs());
        }
        None => {
            let _ = writeln!(out, "expires in     (not stated by the server)");
        }
    }
    let _ = writeln!(
        out,
        "refresh token  {}",
        if token.refresh_token().is_some() {
            "yes (not shown)"
        } else {
            "no"
        }
    );
    let _ = writeln!(out, "fetched in     {} ms", took.as_millis());
    if show_token {
        let _ = writeln!(
            out,
            "access token   {}",
            token.access_token().expose_secret()
        );
    }
}

/// `check`: one token request with the configured grant, never retried.
pub async fn check(cfg: &Config, show_token: bool) -> Result<(), Failure> {
    let tokens = token_client(cfg, https::client())?;
    let endpoint = without_query(&cfg.token_url);
    eprintln!(
        "requesting a token ({}) from {endpoint}",
        cfg.grant.as_str()
    );
    let stored = match cfg.grant {
        Grant::AuthorizationCode => Some(stored_refresh_token(cfg)?),
        _ => None,
    };
    let credentials = match cfg.grant {
        Grant::Password => Some(password_grant(cfg)?),
        _ => None,
    };
    let scopes: Vec<&str> = cfg.scopes.iter().map(String::as_str).collect();
    let started = Instant::now();
    let fetched = slow("token request", async {
        match (cfg.grant, &credentials, &stored) {
            (Grant::Password, Some((user, password)), _) => {
                tokens
                    .password(user.clone(), password.clone(), &scopes)
                    .await
            }
            (Grant::AuthorizationCode, _, Some(rt)) => tokens.refresh(rt, &scopes).await,
            _ => tokens.client_credentials(&scopes).await,
        }
    })
    .await;
    let took = started.elapsed();
    let token = fetched.map_err(|e| Failure::from_error("the token request failed", &e))?;
    if let (Some(old), Some(new)) = (&stored, token.refresh_token()) {
        if old.expose_secret() != new.expose_secret() {
            // Rotation: the old one is spent; keep the new one.
            refresh_file::store(
                &cfg.refresh_token_file,
                &cfg.token_url,
                cfg.client_id.as_deref(),
                new,
            )?;
            eprintln!(
                "the server rotated the refresh token; stored the new one in {}",
                cfg.refresh_token_file.display()
            );
        }
    }
    print_token(&token, took, show_token);
    Ok(())
}

/// Serves `GET /callback` on `listener` until one arrives with our `state`
/// and a `code` or an `error`, and returns its query string. Others (another
/// tab, a stale link, a local process guessing) get a 400 and change nothing.
async fn wait_for_callback(listener: TcpListener, state: String) -> String {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1);
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (tx, state) = (tx.clone(), state.clone());
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (tx, state) = (tx.clone(), state.clone());
                async move {
                    let query = req.uri().query().unwrap_or("").to_owned();
                    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                        .into_owned()
                        .collect();
                    let ours = params.iter().any(|(k, v)| k == "state" && *v == state);
                    let answer = params.iter().any(|(k, _)| k == "code" || k == "error");
                    let (status, text) = if req.uri().path() != "/callback" {
                        (404, "not found")
                    } else if ours && answer {
                        let _ = tx.send(query).await;
                        (200, "tower-client-auth: the login went back to the terminal; you can close this tab.")
                    } else {
                        eprintln!(
                            "ignored a callback that is not this login's (its state differs)"
                        );
                        (400, "not this login's callback")
                    };
                    let mut res = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
                    *res.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
                    Ok::<_, Infallible>(res)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let query = rx.recv().await.unwrap_or_default();
    accept.abort();
    query
}

/// `login`: authorization code with PKCE through a local redirect listener.
pub async fn login(cfg: &Config) -> Result<(), Failure> {
    let authorize = cfg.authorize_url.as_deref().ok_or_else(|| {
        Failure::new(Exit::Usage, "login needs authorize_url (TCA_AUTHORIZE_URL)")
    })?;
    let client_id = cfg
        .client_id
        .as_deref()
        .ok_or_else(|| Failure::new(Exit::Usage, "login needs a client id (TCA_CLIENT_ID)"))?;
    let tokens = token_client(cfg, https::client())?;
    let listener = TcpListener::bind(("127.0.0.1", cfg.redirect_port))
        .await
        .map_err(|e| {
            Failure::new(
                Exit::Usage,
                format!("cannot listen on 127.0.0.1:{}: {e}", cfg.redirect_port),
            )
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::new(Exit::Usage, format!("no local address: {e}")))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let mut url = AuthorizationUrl::new(authorize, client_id, &redirect_uri);
    for scope in &cfg.scopes {
        url = url.scope(scope.clone());
    }
    let request = url
        .build()
        .map_err(|e| Failure::from_error("cannot build the authorization URL", &e))?;
    println!(
        "Open this URL in a browser and approve the access:\n{}",
        request.url()
    );
    let _ = std::io::stdout().flush();
    eprintln!("listening for the redirect on {redirect_uri}");

    let query = slow(
        "waiting for the browser",
        tokio::time::timeout(
            cfg.login_timeout,
            wait_for_callback(listener, request.state().to_owned()),
        ),
    )
    .await
    .map_err(|_| {
        Failure::new(
            Exit::Login,
            format!(
                "no redirect reached {redirect_uri} within {} s",
                cfg.login_timeout.as_secs()
            ),
        )
    })?;
    let code = request.verify_callback(&query).map_err(|e| {
        let mut f = Failure::from_error("the login was not completed", &e);
        f.exit_as(Exit::Login);
        f
    })?;
    let started = Instant::now();
    let token = slow(
        "exchanging the code",
        tokens.exchange_code(code.code, Some(request.redirect_uri()), request.verifier()),
    )
    .await
    .map_err(|e| Failure::from_error("the code exchange failed", &e))?;
    let took = started.elapsed();
    let refresh = token.refresh_token().ok_or_else(|| {
        Failure::new(
            Exit::BadResponse,
            "the server issued no refresh token: nothing to store (is offline access allowed?)",
        )
    })?;
    refresh_file::store(
        &cfg.refresh_token_file,
        &cfg.token_url,
        Some(client_id),
        refresh,
    )?;
    println!(
        "logged in; refresh token stored in {}",
        cfg.refresh_token_file.display()
    );
    print_token(&token, took, false);
    Ok(())
}

/// `request`: one request through `AuthLayer` with a managed token.
pub async fn request(
    cfg: &Config,
    method: http::Method,
    url: &str,
    headers: &[(String, String)],
    data_file: Option<&Path>,
) -> Result<(), Failure> {
    let uri: Uri = url
        .parse()
        .map_err(|_| Failure::new(Exit::Usage, format!("not a URL: {url:?}")))?;
    let origin = match &cfg.api_origin {
        Some(o) => o.clone(),
        None => match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => format!("{s}://{a}"),
            _ => return Err(Failure::new(Exit::Usage, "the URL must be absolute")),
        },
    };
    refuse_plain_http(cfg, "the API origin", &origin)?;
    let http = https::client();
    let tokens = token_client(cfg, http.clone())?;
    let source = match cfg.grant {
        Grant::ClientCredentials => OAuth2Source::client_credentials(tokens),
        Grant::Password => {
            let (user, password) = password_grant(cfg)?;
            OAuth2Source::password(tokens, user, password)
        }
        Grant::AuthorizationCode => {
            OAuth2Source::from_refresh_token(tokens, stored_refresh_token(cfg)?)
        }
    }
    .scopes(cfg.scopes.clone());
    let mut credential = Credential::builder().origin(origin).name("cli");
    if cfg.allow_http {
        credential = credential.allow_http();
    }
    if cfg.grant == Grant::AuthorizationCode {
        // Rotation: store each new refresh token as it arrives.
        let (path, token_url, client_id) = (
            cfg.refresh_token_file.clone(),
            cfg.token_url.clone(),
            cfg.client_id.clone(),
        );
        let last = Arc::new(std::sync::Mutex::new(None::<String>));
        credential = credential.on_token_change(move |t| {
            let Some(rt) = t.refresh_token() else { return };
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.as_deref() == Some(rt.expose_secret()) {
                return;
            }
            match refresh_file::store(&path, &token_url, client_id.as_deref(), rt) {
                Ok(()) => *last = Some(rt.expose_secret().to_owned()),
                Err(e) => eprintln!("warning: {e}"),
            }
        });
    }
    let credential = credential
        .token_source(source)
        .build()
        .map_err(|e| Failure::from_error("the credential is not usable", &e))?;
    let api = AuthLayer::new(credential.clone()).layer(https::guarded(credential));

    let body = match data_file {
        Some(path) => std::fs::read(path).map_err(|e| {
            Failure::new(Exit::Usage, format!("cannot read {}: {e}", path.display()))
        })?,
        None => Vec::new(),
    };
    let mut req = Request::builder().method(method.clone()).uri(uri);
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::new(Exit::Usage, format!("bad request: {e}")))?;
    let what = format!("{method} {}", without_query(url));
    let res = slow(&what, api.oneshot(req))
        .await
        .map_err(|e| Failure::from_error("the request failed", &*e))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| Failure::from_error("reading the response failed", &e))?
        .to_bytes();
    eprintln!("{what}: HTTP {status}");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&body);
    let _ = out.flush();
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure::new(Exit::Status, format!("HTTP {status}")))
    }
}

/// `serve-test`: the crate's test token server on loopback, with the settings
/// that reach it printed, so the other commands can be tried without a real
/// provider. Runs until interrupted.
pub async fn serve_test() -> Result<(), Failure> {
    use tower_client_auth::testing::token_server::TokenServer;

    let server = TokenServer::builder()
        .client("demo-client", "demo-secret")
        .user("demo-user", "demo-password")
        .start()
        .await;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "A test token server on {} (client credentials, password, refresh; tokens last an hour).",
        server.base_url()
    );
    let _ = writeln!(out, "Try it from another terminal:\n");
    let _ = writeln!(
        out,
        "export TCA_TOKEN_URL={} TCA_CLIENT_ID=demo-client TCA_CLIENT_SECRET=demo-secret",
        server.token_url()
    );
    let _ = writeln!(out, "tower-client-auth check");
    let _ = writeln!(
        out,
        "tower-client-auth request {}",
        server.api_url("whoami")
    );
    let _ = writeln!(
        out,
        "TCA_GRANT=password TCA_USERNAME=demo-user TCA_PASSWORD=demo-password tower-client-auth check"
    );
    let _ = writeln!(
        out,
        "\n(plain http is allowed because the server is on loopback; Ctrl-C stops it)"
    );
    let _ = out.flush();
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}
