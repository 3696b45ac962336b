//! The `tower-client-auth` command end to end, as a process,
//! against the library's emulators on loopback: `check` (success, a wrong
//! password tried once so the account never locks, a slow endpoint with
//! progress, configuration from a TOML file with the secret in a file),
//! `login` (the authorization code with PKCE, the test playing the browser),
//! and `request` (client credentials; the stored refresh token, rotated and
//! stored again).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tower_client_auth::testing::oauth::OAuthServer;
use tower_client_auth::testing::token_server::TokenServer;
use tower_client_auth::testing::Failure;

const BIN: &str = env!("CARGO_BIN_EXE_tower-client-auth");

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tca-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The command with nothing from this process's environment but what is given.
fn command(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().env("HOME", home).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

async fn run(home: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command(home, env, args).output().await.unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn line<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fetches_a_token_and_shows_it_only_when_asked() {
    let server = TokenServer::builder()
        .client("cli-client", "cli-secret")
        .token_lifetime(Duration::from_secs(600))
        .start()
        .await;
    let home = scratch("check");
    let url = server.token_url();
    let env = [
        ("TCA_TOKEN_URL", url.as_str()),
        ("TCA_CLIENT_ID", "cli-client"),
        ("TCA_CLIENT_SECRET", "cli-secret"),
        ("TCA_SCOPES", "read write"),
        ("TCA_ALLOW_HTTP", "1"),
    ];
    let (code, out, err) = run(&home, &env, &["check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(line(&out, "token type"), "Bearer");
    assert_eq!(line(&out, "scopes"), "read write");
    assert_eq!(line(&out, "expires in"), "600 s");
    assert_eq!(line(&out, "refresh token"), "no");
    assert!(line(&out, "fetched in").ends_with(" ms"));
    assert!(
        !out.contains("access-") && !err.contains("access-"),
        "no token unless asked"
    );
    assert!(!out.contains("cli-secret") && !err.contains("cli-secret"));

    let (code, out, _) = run(&home, &env, &["check", "--show-token"]).await;
    assert_eq!(code, 0);
    assert!(line(&out, "access token").starts_with("access-"), "{out}");
    assert_eq!(server.grants("client_credentials"), 2);

    // A slow token endpoint: progress on stderr while it waits.
    server.fail_next(Failure::Slow(Duration::from_millis(2500)));
    let (code, _, err) = run(&home, &env, &["check"]).await;
    assert_eq!(code, 0);
    assert!(err.contains("token request: still waiting (1 s)"), "{err}");
    assert!(err.contains("token request: still waiting (2 s)"), "{err}");
    assert!(err.contains("token request: done after"), "{err}");

    // A failing endpoint: exit 4; a refused client: exit 3.
    server.fail_next(Failure::ServerError);
    let (code, _, err) = run(&home, &env, &["check"]).await;
    assert_eq!(code, 4, "{err}");
    let mut bad = env;
    bad[2] = ("TCA_CLIENT_SECRET", "not-the-secret");
    let (code, _, err) = run(&home, &bad, &["check"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("invalid_client"), "{err}");
    assert!(!err.contains("not-the-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_tried_once_and_never_locks_the_account() {
    // The server locks a user after 2 wrong passwords.
    let server = TokenServer::builder()
        .client("cli-client", "cli-secret")
        .user("alice", "right-password")
        .lock_after_wrong_passwords(2)
        .start()
        .await;
    let home = scratch("password");
    let url = server.token_url();
    let env = |password: &'static str| {
        vec![
            ("TCA_TOKEN_URL", url.clone()),
            ("TCA_GRANT", "password".to_owned()),
            ("TCA_CLIENT_ID", "cli-client".to_owned()),
            ("TCA_CLIENT_SECRET", "cli-secret".to_owned()),
            ("TCA_USERNAME", "alice".to_owned()),
            ("TCA_PASSWORD", password.to_owned()),
            ("TCA_ALLOW_HTTP", "1".to_owned()),
        ]
    };
    let wrong = env("wrong-password");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out, err) = run(&home, &wrong, &["check"]).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("invalid_grant"), "{err}");
    assert!(
        !err.contains("wrong-password"),
        "the password is never printed: {err}"
    );
    assert_eq!(server.token_requests(), 1, "one attempt, no retry");
    assert_eq!(server.wrong_passwords("alice"), 1);

    // Not locked: the right password works.
    let right = env("right-password");
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out, err) = run(&home, &right, &["check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(line(&out, "refresh token"), "yes (not shown)");
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_from_a_toml_file_with_secrets_in_files_only() {
    let server = TokenServer::builder()
        .client("file-client", "file-secret")
        .start()
        .await;
    let home = scratch("toml");
    let secret = home.join("client_secret");
    std::fs::write(&secret, "file-secret\n").unwrap();
    let config = home.join("tca.toml");
    std::fs::write(
        &config,
        format!(
            "token_url = {:?}\nclient_id = \"file-client\"\nclient_secret_file = {:?}\nclient_auth = \"post\"\nallow_http = true\n",
            server.token_url(),
            secret
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let (code, out, err) = run(&home, &[], &["--config", cfg, "check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    // TCA_CONFIG works as well.
    let (code, _, _) = run(&home, &[("TCA_CONFIG", cfg)], &["check"]).await;
    assert_eq!(code, 0);

    // A secret written into the file is refused, and not echoed.
    std::fs::write(
        &config,
        "token_url = \"https://a.example/t\"\nclient_secret = \"oops-123\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&home, &[], &["--config", cfg, "check"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("client_secret_file"), "{err}");
    assert!(!err.contains("oops-123"), "{err}");
    // And so is one on the command line.
    let (code, _, err) = run(&home, &[], &["check", "--client-secret", "oops-456"]).await;
    assert_eq!(code, 2);
    assert!(!err.contains("oops-456"), "{err}");
    // An unknown key is a configuration error.
    std::fs::write(
        &config,
        "token_url = \"https://a.example/t\"\ntoken_ur = 1\n",
    )
    .unwrap();
    let (code, _, err) = run(&home, &[], &["--config", cfg, "check"]).await;
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_pkce_then_requests_with_the_stored_refresh_token() {
    // The code-flow emulator: Basic client auth, PKCE checked, refresh tokens
    // rotated (a used one is dead).
    let provider = OAuthServer::start("app", "app-secret").await;
    let home = scratch("login");
    let file = home.join("state/refresh.json");
    let (token_url, authorize_url) = (provider.token_url(), provider.authorize_url());
    let env = [
        ("TCA_GRANT", "authorization_code"),
        ("TCA_TOKEN_URL", token_url.as_str()),
        ("TCA_AUTHORIZE_URL", authorize_url.as_str()),
        ("TCA_CLIENT_ID", "app"),
        ("TCA_CLIENT_SECRET", "app-secret"),
        ("TCA_SCOPES", "profile"),
        ("TCA_REDIRECT_PORT", "0"),
        ("TCA_REFRESH_TOKEN_FILE", file.to_str().unwrap()),
        ("TCA_ALLOW_HTTP", "1"),
    ];

    let mut child = command(&home, &env, &["login"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let url = loop {
        let l = stdout
            .next_line()
            .await
            .unwrap()
            .expect("the URL is printed");
        printed.push(l.clone());
        if l.starts_with("http") {
            break l;
        }
    };
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("scope=profile"), "{url}");
    // The browser: the provider approves and redirects to the local listener.
    let query = provider.approve(&url).await.unwrap();
    let redirect = form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    // Another callback first (a stale tab, a local process guessing): ignored.
    let foreign = plain_get(&format!("{redirect}?code=forged&state=not-ours")).await;
    assert!(foreign.contains("not this login"), "{foreign}");
    let page = plain_get(&format!("{redirect}?{query}")).await;
    assert!(page.contains("you can close this tab"), "{page}");
    while let Some(l) = stdout.next_line().await.unwrap() {
        printed.push(l);
    }
    let status = child.wait().await.unwrap();
    let printed = printed.join("\n");
    assert!(status.success(), "{printed}");
    assert!(
        printed.contains(&format!("refresh token stored in {}", file.display())),
        "{printed}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let stored = std::fs::read_to_string(&file).unwrap();
    let refresh: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let first = refresh["refresh_token"].as_str().unwrap().to_owned();
    assert!(
        !printed.contains(&first),
        "the refresh token is not printed"
    );
    assert_eq!(provider.token_requests(), 1);

    // One request with the stored refresh token: refreshed (rotated) and
    // stored again.
    let api = format!("{}/api/me", provider.base_url());
    let (code, out, err) = run(&home, &env, &["request", &api]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, r#"{"ok":true}"#);
    assert!(err.contains("HTTP 200"), "{err}");
    assert_eq!(provider.refresh_tokens_used(), 1);
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let second = again["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "the rotated refresh token was stored");
    // The rotated one works; the spent one would not.
    let (code, _, err) = run(&home, &env, &["request", &api]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(provider.refresh_tokens_used(), 2);
    assert_eq!(provider.refresh_token_reuses(), 0);
    // `check` with the code grant refreshes with the stored token too.
    let (code, out, err) = run(&home, &env, &["check"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(line(&out, "refresh token"), "yes (not shown)");
    assert_eq!(provider.refresh_token_reuses(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_with_client_credentials_and_status_exit_codes() {
    let server = TokenServer::builder().client("c", "s").start().await;
    let home = scratch("request");
    let url = server.token_url();
    let env = [
        ("TCA_TOKEN_URL", url.as_str()),
        ("TCA_CLIENT_ID", "c"),
        ("TCA_CLIENT_SECRET", "s"),
        ("TCA_ALLOW_HTTP", "1"),
    ];
    let (code, out, err) = run(&home, &env, &["request", &server.api_url("me")]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, r#"{"subject":"c"}"#);
    // A path the server does not have: the status, exit 1.
    let missing = format!("{}/nothing", server.base_url());
    let (code, _, err) = run(&home, &env, &["request", "post", &missing]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("HTTP 404"), "{err}");
    // Nothing listening: exit 4.
    let (code, _, err) = run(
        &home,
        &[
            ("TCA_TOKEN_URL", "http://127.0.0.1:9/token"),
            ("TCA_CLIENT_ID", "c"),
            ("TCA_CLIENT_SECRET", "s"),
            ("TCA_ALLOW_HTTP", "1"),
        ],
        &["check"],
    )
    .await;
    assert_eq!(code, 4, "{err}");
    // login without an authorize URL: a usage error.
    let (code, _, err) = run(&home, &env, &["login"]).await;
    assert_eq!(code, 2, "{err}");
}

/// GET with a bare hyper-util client, returning the body as text.
async fn plain_get(url: &str) -> String {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let res = client.get(url.parse().unwrap()).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// A token URL that is a web page (a 404 with HTML): exit 7, "the token URL
/// is not a token endpoint", not exit 3 ("credentials refused") as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_404_is_a_wrong_endpoint_not_refused_credentials() {
    let page = tower_client_auth::testing::serve(|_req| async {
        http::Response::builder()
            .status(404)
            .header("content-type", "text/html; charset=utf-8")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"<!DOCTYPE html><title>Not found</title>",
            )))
            .unwrap()
    })
    .await;
    let home = scratch("wrong-endpoint");
    let url = format!("{}/oauth/tokn", page.base_url());
    let env = [
        ("TCA_TOKEN_URL", url.as_str()),
        ("TCA_CLIENT_ID", "cli-client"),
        ("TCA_CLIENT_SECRET", "cli-secret"),
    ];
    let (code, _, err) = run(&home, &env, &["check"]).await;
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("404 Not Found"), "{err}");
    assert!(err.contains("is the token URL right?"), "{err}");
    assert!(!err.contains("cli-secret"), "{err}");
}

/// No secret configured for a client authentication that sends one: a usage
/// error naming where a secret comes from, and nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_secret_is_said_before_anything_is_sent() {
    let server = TokenServer::builder()
        .client("cli-client", "cli-secret")
        .start()
        .await;
    let home = scratch("no-secret");
    let url = server.token_url();
    let env = [
        ("TCA_TOKEN_URL", url.as_str()),
        ("TCA_CLIENT_ID", "cli-client"),
    ];
    let (code, _, err) = run(&home, &env, &["check"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no client secret configured"), "{err}");
    assert!(err.contains("TCA_CLIENT_SECRET"), "{err}");
    assert_eq!(server.token_requests(), 0);
}

/// Plain http to a host that is not loopback is refused, and the refusal
/// names the setting that allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_http_refusal_names_tca_allow_http() {
    let home = scratch("plain-http");
    let env = [
        (
            "TCA_TOKEN_URL",
            "http://auth.example.com/oauth/token?tenant=x",
        ),
        ("TCA_CLIENT_ID", "cli-client"),
        ("TCA_CLIENT_SECRET", "cli-secret"),
    ];
    let (code, _, err) = run(&home, &env, &["check"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("TCA_ALLOW_HTTP=1"), "{err}");
    assert!(err.contains("http://auth.example.com"), "{err}");
    assert!(!err.contains("tenant=x"), "the query stays out: {err}");
}

/// `serve-test` prints settings that work: `check` and `request` with them
/// succeed against the server it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_test_prints_settings_the_other_commands_can_use() {
    let home = scratch("serve-test");
    let mut server = command(&home, &[], &["serve-test"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut export = None;
    let mut api = None;
    while let Some(l) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        if let Some(rest) = l.strip_prefix("export ") {
            export = Some(rest.to_owned());
        }
        if let Some(url) = l.strip_prefix("tower-client-auth request ") {
            api = Some(url.to_owned());
            break;
        }
    }
    let export = export.expect("an export line");
    let vars: Vec<(String, String)> = export
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, out, err) = run(&home, &env, &["check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&home, &env, &["request", &api.unwrap()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("demo-client"), "{out}");
}
