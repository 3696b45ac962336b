//! Mutual TLS (RFC 8705) against oidc-provider terminating TLS itself
//! (tests/oidc/server.mjs with MTLS_DIR): the token client authenticates
//! with a client certificate (`tls_client_auth`, no secret), the token is
//! bound to the certificate (`x5t#S256`), and the API accepts it only over a
//! connection presenting the same certificate. Certificates are made for the
//! run with the `openssl` command. Never skipped.

use crate::common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::process::Command;

use common::start_server;
use tower::{Layer, ServiceExt};
use tower_client_auth::https::TlsSettings;
use tower_client_auth::oauth2::{ClientAuth, OAuth2Source, TokenClient};
use tower_client_auth::{AuthLayer, BoxError, Credential};

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and client certificates for
/// CN=mtls-client and CN=someone-else, all P-256, valid a day.
fn certificates() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tca-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=tca-test-ca",
    ]);
    openssl(&dir, &ca);
    for (name, subject, ext) in [
        (
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "/CN=mtls-client", "extendedKeyUsage=clientAuth\n"),
        ("other", "/CN=someone-else", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let mut req = vec!["req"];
        req.extend(ec);
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        req.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
        openssl(&dir, &req);
        let (pem, ext) = (format!("{name}.pem"), format!("{name}.ext"));
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &ext,
            ],
        );
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_with_tls_client_auth() -> Result<(), BoxError> {
    let certs = certificates();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc");
    assert!(
        Path::new(dir).join("node_modules/oidc-provider").exists(),
        "run `npm ci --prefix tests/oidc` first (.ci/run does)"
    );
    let mut command = Command::new("node");
    command
        .arg("server.mjs")
        .current_dir(dir)
        .env("MTLS_DIR", &certs);
    let (_server, issuer) = start_server(command, "tca-oidc-mtls.log").await;
    assert!(issuer.starts_with("https://"));

    let read = |f: &str| std::fs::read(certs.join(f)).unwrap();
    let with_identity = |cert: &str, key: &str| -> Result<_, tower_client_auth::Error> {
        TlsSettings::new()
            .add_roots_pem(&read("ca.pem"))?
            .identity_pem(&read(cert), &read(key))?
            .client()
    };
    let http = with_identity("client.pem", "client.key")?;
    let tokens = TokenClient::builder(format!("{issuer}/token"))
        .client_id("mtls-client")
        .client_auth(ClientAuth::None)
        .build(http.clone())?;
    let token = tokens.client_credentials(&[]).await?;
    assert_eq!(token.token_type(), "Bearer");

    // The API through the same client (the same certificate): accepted.
    let credential = Credential::builder()
        .origin(&issuer)
        .token_source(OAuth2Source::client_credentials(tokens))
        .build()?;
    let api = AuthLayer::new(credential.clone()).layer(http.clone());
    let get = || {
        Request::get(format!("{issuer}/mtls-resource"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let res = api.clone().oneshot(get()).await?;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
    assert_eq!(body["client_id"], "mtls-client");

    // The same token over a connection with another certificate: refused
    // (and the layer's one retry gets a new token, bound to the first
    // certificate again, so it is refused too).
    let other = with_identity("other.pem", "other.key")?;
    let api_elsewhere = AuthLayer::new(credential).layer(other);
    let res = api_elsewhere.oneshot(get()).await?;
    assert_eq!(res.status(), 401);

    // Another certificate at the token endpoint: not this client.
    let impostor = TokenClient::builder(format!("{issuer}/token"))
        .client_id("mtls-client")
        .client_auth(ClientAuth::None)
        .build(with_identity("other.pem", "other.key")?)?;
    let e = impostor.client_credentials(&[]).await.unwrap_err();
    assert!(e.is_invalid_client(), "{e}");
    // No certificate at all: refused too.
    let anonymous = TokenClient::builder(format!("{issuer}/token"))
        .client_id("mtls-client")
        .client_auth(ClientAuth::None)
        .build(
            TlsSettings::new()
                .add_roots_pem(&read("ca.pem"))?
                .client()?,
        )?;
    assert!(anonymous.client_credentials(&[]).await.is_err());
    let _ = std::fs::remove_dir_all(&certs);
    Ok(())
}
