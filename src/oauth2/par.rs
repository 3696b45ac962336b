//! Pushed authorization requests (RFC 9126): the authorization request's
//! parameters go to the server directly, with the client's authentication;
//! the browser is sent with only `client_id` and the `request_uri` the
//! server gave back. Nothing of the request shows in the browser's history
//! or can be changed on the way, and a server can refuse a request before
//! the user sees a page.

use serde_json::Value;
use tower::ServiceExt;

use super::endpoint::ClientAuth;
use super::exchange::read_body;
use super::response::parse_token_response;
use super::{AuthorizationRequest, AuthorizationUrl, TokenClient};
use crate::error::lifecycle::Lifecycle;
use crate::error::{Error, Kind};

impl TokenClient {
    /// The pushed authorization request endpoint, if one was set or
    /// discovery says the server requires pushed requests.
    pub fn pushed_authorization_url(&self) -> Option<&http::Uri> {
        self.endpoint.par_url.as_ref()
    }

    /// Builds the authorization request the way this client's server wants
    /// it: signed as a request object (JAR, RFC 9101) when the client has a
    /// [`request_object`](super::TokenClientBuilder::request_object) key,
    /// then pushed (PAR, RFC 9126) when it has a
    /// [`pushed_authorization_url`](super::TokenClientBuilder::pushed_authorization_url)
    /// (discovery sets it when the server requires pushed requests).
    /// Otherwise the plain request of [`AuthorizationUrl::build`]. A client
    /// with a DPoP key (`TokenClientBuilder::dpop`, feature `jose`)
    /// adds `dpop_jkt`, the key's thumbprint, binding the code to that key
    /// (RFC 9449 §10).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::service_fn;
    /// use tower_client_auth::oauth2::{AuthorizationUrl, TokenClient};
    /// use tower_client_auth::BoxError;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let server = service_fn(|req: Request<Full<Bytes>>| async move {
    ///     assert_eq!(req.uri().path(), "/par");
    ///     let form = req.into_body().collect().await?.to_bytes();
    ///     assert!(form.starts_with(b"response_type=code&client_id=app&redirect_uri="));
    ///     Ok::<_, BoxError>(
    ///         Response::builder().status(201).body(Full::new(Bytes::from_static(
    ///             br#"{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}"#,
    ///         )))?,
    ///     )
    /// });
    /// let tokens = TokenClient::builder("https://auth.example.com/token")
    ///     .client_id("app")
    ///     .client_secret("secret")
    ///     .pushed_authorization_url("https://auth.example.com/par")
    ///     .build(server)?;
    /// let request = tokens
    ///     .authorization_request(
    ///         AuthorizationUrl::new("https://auth.example.com/authorize", "app", "https://app/cb")
    ///             .scope("openid"),
    ///     )
    ///     .await?;
    /// assert_eq!(
    ///     request.url(),
    ///     "https://auth.example.com/authorize?client_id=app&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc"
    /// );
    /// // The callback is checked against the state pushed with it.
    /// let code = request.verify_callback(&format!("code=xyz&state={}", request.state()))?;
    /// # let _ = code;
    /// # Ok(()) }
    /// ```
    pub async fn authorization_request(
        &self,
        url: AuthorizationUrl,
    ) -> Result<AuthorizationRequest, Error> {
        // A DPoP-bound client binds the code to its key (RFC 9449 §10): a code
        // taken on its way back cannot be redeemed without the key.
        #[cfg(feature = "jose")]
        let url = match &self.endpoint.jose.dpop {
            Some(dpop) => url.param("dpop_jkt", dpop.thumbprint()),
            None => url,
        };
        let request = url.build()?;
        #[cfg(feature = "jose")]
        let request = match &self.endpoint.jose.request_object {
            Some((key, audience)) => super::jar::sign(request, key, audience)?,
            None => request,
        };
        match self.endpoint.par_url {
            Some(_) => self.push_authorization(request).await,
            None => Ok(request),
        }
    }

    /// Pushes `request` (RFC 9126 §2) to the
    /// [`pushed_authorization_url`](Self::pushed_authorization_url) with this
    /// client's authentication, and returns it carried by the `request_uri`
    /// the server answered with. A refusal, or an answer without a
    /// `request_uri`, fails with
    /// [`is_pushed_authorization_failed`](Error::is_pushed_authorization_failed)
    /// (the server's error as the cause).
    pub async fn push_authorization(
        &self,
        request: AuthorizationRequest,
    ) -> Result<AuthorizationRequest, Error> {
        let Some(url) = self.endpoint.par_url.clone() else {
            return Err(Error::config("no pushed authorization request endpoint"));
        };
        // The client authentication names the client, except Basic.
        let names_client = !matches!(self.endpoint.auth, ClientAuth::Basic | ClientAuth::BasicRaw);
        let params: Vec<(&str, &str)> = request
            .params
            .iter()
            .filter(|(k, _)| !(names_client && k == "client_id"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let http_request = self.build_request_with(&url, None, &[], &params)?;
        let (endpoint, http) = (self.endpoint.clone(), self.http.clone());
        let answer = async move {
            let response = http
                .oneshot(http_request)
                .await
                .map_err(|e| Error::with_source(Kind::Transport, e))?;
            let (parts, body) = response.into_parts();
            let bytes = read_body(body, &endpoint).await?;
            if !parts.status.is_success() {
                let refused = match parse_token_response(parts.status, &parts.headers, &bytes) {
                    Err(e) => e,
                    Ok(_) => Error::new(Kind::Status(parts.status, None)),
                };
                return Err(Error::lifecycle_from(
                    Lifecycle::PushedAuthorization("the server refused the request"),
                    refused,
                ));
            }
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => match map.get("request_uri") {
                    Some(Value::String(uri)) if !uri.is_empty() => Ok(uri.clone()),
                    _ => Err(Error::lifecycle(Lifecycle::PushedAuthorization(
                        "the answer has no request_uri",
                    ))),
                },
                _ => Err(Error::lifecycle(Lifecycle::PushedAuthorization(
                    "the answer is not a JSON object",
                ))),
            }
        };
        let request_uri = match tokio::time::timeout(self.endpoint.timeout, answer).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(Kind::Timeout)),
        }
        .map_err(|e| e.at_endpoint(crate::wire::origin::describe_url(&url)))?;
        let client_id = request.client_id.clone();
        request.carried_by(vec![
            ("client_id".into(), client_id),
            ("request_uri".into(), request_uri),
        ])
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Full;

    use crate::oauth2::{OAuth2Source, TokenClient};
    use crate::token::TokenSource;

    fn client(details: Option<serde_json::Value>) -> TokenClient {
        let http = tower::service_fn(|_: http::Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
        });
        let mut b = TokenClient::builder("https://as.example/token").client_id("app");
        if let Some(d) = details {
            b = b.authorization_details(d);
        }
        b.build(http).unwrap()
    }

    /// Tokens for other authorization details are never shared: the
    /// details are part of the store identity (and nothing changes without).
    #[test]
    fn authorization_details_are_part_of_the_store_identity() {
        let read = serde_json::json!([{"type": "account_information", "actions": ["read"]}]);
        let pay = serde_json::json!([{"type": "payment_initiation"}]);
        let identity = |d| {
            OAuth2Source::client_credentials(client(d))
                .identity()
                .unwrap()
        };
        let (none, a, b) = (
            identity(None),
            identity(Some(read.clone())),
            identity(Some(pay)),
        );
        assert!(none != a && a != b && none != b);
        assert_eq!(a, identity(Some(read.clone())));
        #[cfg(feature = "users")]
        {
            assert_eq!(client(None).details_binding(), "");
            assert!(client(Some(read)).details_binding().starts_with("|rar:["));
        }
    }
}
