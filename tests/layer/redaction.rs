//! No secret in any public type's `Debug`, nor in errors.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::service_fn;
use tower_client_auth::oauth2::{AuthorizationUrl, Grant, OAuth2Source, PkceVerifier, TokenClient};
use tower_client_auth::token::{ManagedOptions, Token};
use tower_client_auth::{AuthLayer, AuthService, Credential, ReplayBody};

const SECRETS: &[&str] = &[
    "PASSWORD-1",
    "TOKEN-2",
    "APIKEY-3",
    "CLIENTSECRET-4",
    "REFRESH-5",
    "IDTOKEN-6",
    "HEADER-7",
    // base64 of "user:PASSWORD-1"
    "dXNlcjpQQVNTV09SRC0x",
    // The password of user information in a URL.
    "URLPASSWORD-8",
];

fn assert_clean(what: &str, text: String) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks {s}: {text}");
    }
}

#[test]
fn debug_of_every_public_type_is_redacted() {
    let http = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let client = TokenClient::builder("https://auth.example.com/token")
        .client_id("id")
        .client_secret("CLIENTSECRET-4")
        .header("x-api-key", "APIKEY-3")
        .build(http)
        .unwrap();
    assert_clean("TokenClient", format!("{client:?}"));
    let builder = TokenClient::builder("https://a.example/t").client_secret("CLIENTSECRET-4");
    assert_clean("TokenClientBuilder", format!("{builder:?}"));

    let grant = Grant::password("user", "PASSWORD-1");
    assert_clean("Grant", format!("{grant:?}"));
    let grant = Grant::RefreshToken {
        refresh_token: "REFRESH-5".into(),
    };
    assert_clean("Grant", format!("{grant:?}"));

    let source = OAuth2Source::password(client.clone(), "user", "PASSWORD-1");
    assert_clean("OAuth2Source", format!("{source:?}"));

    let cred_builder = Credential::builder()
        .origin("https://api.example.com")
        .basic("user", "PASSWORD-1")
        .api_key("x-api-key", "APIKEY-3")
        .header("x-other", "HEADER-7");
    assert_clean("CredentialBuilder", format!("{cred_builder:?}"));
    let cred = cred_builder.build().unwrap();
    assert_clean("Credential", format!("{cred:?}"));
    let layer = AuthLayer::new(cred.clone());
    assert_clean("AuthLayer", format!("{layer:?}"));
    let svc = AuthService::new((), cred);
    assert_clean("AuthService", format!("{svc:?}"));

    let managed = Credential::builder()
        .origin("https://api.example.com")
        .api_key("x-api-key", "APIKEY-3")
        .token_source_with(source, ManagedOptions::default())
        .build()
        .unwrap();
    assert_clean("managed Credential", format!("{managed:?}"));
    assert_clean("Stats", format!("{:?}", managed.stats()));

    let mut extra = serde_json::Map::new();
    extra.insert("id_token".into(), "IDTOKEN-6".into());
    let token =
        Token::bearer("TOKEN-2", Some(Duration::from_secs(60))).with_refresh_token("REFRESH-5");
    assert_clean("Token", format!("{token:?}"));

    let verifier = PkceVerifier::generate().unwrap();
    let v = secrecy::ExposeSecret::expose_secret(verifier.secret()).to_owned();
    assert!(!format!("{verifier:?}").contains(&v));
    let req = AuthorizationUrl::new("https://as.example/a", "cid", "https://app/cb")
        .build()
        .unwrap();
    assert!(!format!("{req:?}").contains(req.state()));
    let code = req
        .verify_callback(&format!("code=TOKEN-2&state={}", req.state()))
        .unwrap();
    assert_clean("AuthorizationCode", format!("{code:?}"));

    let body = ReplayBody::passthrough(Full::new(Bytes::from_static(b"TOKEN-2")));
    assert_clean("ReplayBody", format!("{body:?}"));

    // URLs with user information, before they are refused.
    let builder = TokenClient::builder("https://id:URLPASSWORD-8@auth.example.com/token");
    assert_clean("TokenClientBuilder", format!("{builder:?}"));
    let builder = Credential::builder()
        .origin("https://user:URLPASSWORD-8@api.example.com")
        .bearer("TOKEN-2");
    assert_clean("CredentialBuilder", format!("{builder:?}"));
}

/// The users' side: `Users`, `UsersLayer` and its guard.
#[tokio::test]
async fn debug_of_users_and_their_guard_is_redacted() {
    use tower::Layer;
    use tower_client_auth::store::{MemoryStore, SharedStore};
    use tower_client_auth::users::{UserKey, Users, UsersLayer};
    let http = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let client = TokenClient::builder("https://auth.example.com/token")
        .client_id("id")
        .client_secret("CLIENTSECRET-4")
        .build(http)
        .unwrap();
    let users = Users::builder("https://api.example.com", client)
        .store(SharedStore::new(MemoryStore::new()))
        .build()
        .unwrap();
    let login = Token::bearer("TOKEN-2", None).with_refresh_token("REFRESH-5");
    users.login(&UserKey::new("alice"), login).await.unwrap();
    users
        .credential(&UserKey::new("alice"))
        .unwrap()
        .token()
        .await
        .unwrap();
    assert_clean("Users", format!("{users:?}"));
    let layer = UsersLayer::new(users);
    assert_clean("UsersLayer", format!("{layer:?}"));
    let guard = layer.guard();
    assert_clean("GuardLayer", format!("{guard:?}"));
    assert_clean("Guard", format!("{:?}", guard.layer(())));
}

#[test]
fn errors_carry_no_secret() {
    let errors = [
        Credential::bearer("https://a.example", "TOKEN-2\n").unwrap_err(),
        Credential::api_key("https://a.example", "x-api-key", "APIKEY-3\u{e9}").unwrap_err(),
        Credential::basic("https://a.example", "us:er", "PASSWORD-1").unwrap_err(),
        Credential::builder()
            .origin("http://remote.example")
            .bearer("TOKEN-2")
            .build()
            .unwrap_err(),
    ];
    for e in errors {
        assert_clean("Error Display", e.to_string());
        assert_clean("Error Debug", format!("{e:?}"));
    }
}

/// User information refused in every URL a credential goes to, and a device
/// endpoint refused: the errors repeat neither the URL's password nor the
/// client's secret.
#[tokio::test]
async fn url_errors_carry_no_secret() {
    let http = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let client = TokenClient::builder("https://auth.example.com/token")
        .client_id("id")
        .client_secret("CLIENTSECRET-4")
        .build(http)
        .unwrap();
    let errors = [
        TokenClient::builder("https://id:URLPASSWORD-8@auth.example.com/token")
            .build(http)
            .unwrap_err(),
        TokenClient::builder("https://id:URL/PASSWORD-8@auth.example.com/token")
            .build(http)
            .unwrap_err(),
        Credential::bearer("https://u:URLPASSWORD-8@api.example.com", "TOKEN-2").unwrap_err(),
        client
            .device_authorization("https://id:URLPASSWORD-8@auth.example.com/device", &[])
            .await
            .unwrap_err(),
        client
            .device_authorization("http://auth.example.com/device", &[])
            .await
            .unwrap_err(),
        tower_client_auth::oauth2::Discovery::new(http)
            .metadata("https://u:URLPASSWORD-8@login.example.com")
            .await
            .unwrap_err(),
    ];
    for e in errors {
        assert!(e.is_config(), "{e}");
        assert_clean("Error Display", e.to_string());
        assert_clean("Error Debug", format!("{e:?}"));
        assert!(!e.to_string().contains("PASSWORD-8"), "{e}");
    }
}
