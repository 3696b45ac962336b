//! [`ProtectedResource`]: a client that configures itself from an API's URL.
//!
//! From the URL alone it reads the resource's metadata (RFC 9728), the
//! metadata of an authorization server the resource lists (RFC 8414 /
//! OpenID Connect Discovery, the issuer matched exactly), registers itself
//! there when it has no client id (RFC 7591; once per fleet with a
//! [`SharedStore`](crate::store::SharedStore)), and asks for tokens bound to
//! the resource (RFC 8707 `resource`) with the scopes the resource names.
//! Nothing is ever sent to a server the resource's metadata did not list.
//!
//! For a service it is a [`TokenSource`] (client credentials); for a user it
//! makes the authorization URL (PKCE, `resource`, and on step-up the
//! `acr_values` / `max_age` the resource asked for) and exchanges the code.
//!
//! ```no_run
//! use tower_client_auth::oauth2::{HttpService, ProtectedResource};
//! use tower_client_auth::Credential;
//!
//! # fn f(http: HttpService) -> Result<(), tower_client_auth::Error> {
//! let api = ProtectedResource::builder("https://api.example.com/mcp")
//!     .client_name("billing-agent")
//!     .build(http)?;
//! // The layer's token source: discovery, registration and tokens on demand.
//! let credential = Credential::builder()
//!     .origin("https://api.example.com")
//!     .token_source(api)
//!     .build()?;
//! # let _ = credential; Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{HeaderMap, StatusCode};
use secrecy::SecretString;

use super::discovery::{Discovery, ProviderMetadata};
use super::registration::{register, ClientRegistration, RegistrationRequest};
use super::resource_metadata::{step_up, ResourceChallenge, ResourceDiscovery, ResourceMetadata};
use super::transport::{HttpService, IntoHttpService};
use super::{AuthorizationRequest, AuthorizationUrl, OAuth2Source, TokenClient};
use crate::error::{Error, ResourceError};
use crate::token::{Token, TokenSource};

/// What discovery found for a resource: its metadata and its authorization
/// server's.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The resource's metadata (RFC 9728).
    pub resource: Arc<ResourceMetadata>,
    /// The metadata of the authorization server chosen from those it lists.
    pub server: Arc<ProviderMetadata>,
}

/// Configures a [`ProtectedResource`].
#[must_use]
pub struct ProtectedResourceBuilder {
    url: String,
    client_name: String,
    client: Option<(String, Option<SecretString>)>,
    metadata_document: Option<String>,
    authorization_server: Option<String>,
    scopes: Option<Vec<String>>,
    allow_http: bool,
    #[cfg(feature = "store")]
    shared: Option<crate::store::SharedStore>,
}

impl ProtectedResourceBuilder {
    /// The name registered for the client (default `tower-client-auth`).
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// A client id (and secret) of your own: no registration.
    pub fn client(mut self, id: impl Into<String>, secret: Option<SecretString>) -> Self {
        self.client = Some((id.into(), secret));
        self
    }

    /// The URL of the client's own metadata document (an `https` URL with a
    /// path, where you publish a JSON document whose `client_id` is that URL
    /// and whose `redirect_uris` hold the user flow's redirect URI), used as
    /// the client id of a user's login at an authorization server that
    /// advertises `client_id_metadata_document_supported` (the OAuth client
    /// ID metadata document draft, which the Model Context Protocol prefers
    /// to registration): nothing is registered there. A server that does not
    /// advertise it gets a registration as before.
    ///
    /// ```
    /// use tower_client_auth::oauth2::{HttpService, ProtectedResource};
    ///
    /// # fn f(http: HttpService) -> Result<(), tower_client_auth::Error> {
    /// let api = ProtectedResource::builder("https://api.example.com/mcp")
    ///     .client_metadata_document("https://app.example.com/oauth/client.json")
    ///     .build(http.clone())?;
    /// # let _ = api;
    /// // Not https, or no path: refused when built.
    /// let e = ProtectedResource::builder("https://api.example.com/mcp")
    ///     .client_metadata_document("https://app.example.com")
    ///     .build(http)
    ///     .unwrap_err();
    /// assert!(e.is_config());
    /// # Ok(()) }
    /// # let client = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # });
    /// # use tower_client_auth::oauth2::IntoHttpService;
    /// # f(client.into_http_service()).unwrap();
    /// ```
    pub fn client_metadata_document(mut self, url: impl Into<String>) -> Self {
        self.metadata_document = Some(url.into());
        self
    }

    /// The only authorization server to use: refused (before anything is sent
    /// to it) unless the resource lists it.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_server = Some(issuer.into());
        self
    }

    /// The scopes to ask for (default: those the resource's challenge or
    /// metadata names).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Allows plain `http://` beyond loopback (metadata, servers, endpoints).
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Keeps the client registration in `shared` (sealed with its key), so
    /// that a fleet registers once.
    #[cfg(feature = "store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "store")))]
    pub fn shared_store(mut self, shared: crate::store::SharedStore) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Builds it, sending through `http` (a client that does not follow
    /// redirects, as hyper-util's).
    pub fn build<H, M>(self, http: H) -> Result<ProtectedResource, Error>
    where
        H: IntoHttpService<M>,
    {
        crate::wire::origin::parse_url(&self.url, self.allow_http, "resource URL")?;
        if let Some(url) = &self.metadata_document {
            check_metadata_document_url(url)?;
            if self.client.is_some() {
                return Err(Error::config(
                    "a client id of your own and a client metadata document: choose one",
                ));
            }
        }
        let http = http.into_http_service();
        let mut resources = ResourceDiscovery::new(http.clone());
        let mut discovery = Discovery::new(http.clone());
        if self.allow_http {
            resources = resources.allow_http();
            discovery = discovery.allow_http();
        }
        Ok(ProtectedResource {
            inner: Arc::new(Inner {
                url: self.url,
                client_name: self.client_name,
                client: self.client,
                metadata_document: self.metadata_document,
                authorization_server: self.authorization_server,
                allow_http: self.allow_http,
                http,
                resources,
                discovery,
                #[cfg(feature = "store")]
                shared: self.shared,
                state: Mutex::new(State {
                    scopes: self.scopes,
                    asked: None,
                    widened_from: None,
                    refused: Vec::new(),
                    metadata_url: None,
                    learned: None,
                    issuer: None,
                    registrations: HashMap::new(),
                }),
            }),
        })
    }
}

/// An API that configures its client from its URL alone.
///
/// It reads the resource's metadata (RFC 9728), the metadata of an
/// authorization server the resource lists (the issuer matched exactly),
/// registers there when it has no client id (RFC 7591; once per fleet with a
/// [`SharedStore`](crate::store::SharedStore)), and asks for tokens bound to
/// the resource (RFC 8707 `resource`) with the scopes the resource names.
/// Nothing is sent to a server the resource's metadata did not list. For a
/// service it is a [`TokenSource`] (client credentials); for a user it makes
/// the authorization URL ([`authorization_url`](Self::authorization_url)) and
/// exchanges the code ([`exchange_code`](Self::exchange_code)).
///
/// ```no_run
/// use tower_client_auth::oauth2::{HttpService, ProtectedResource};
/// use tower_client_auth::Credential;
///
/// # fn f(http: HttpService) -> Result<(), tower_client_auth::Error> {
/// let api = ProtectedResource::builder("https://api.example.com/mcp").build(http)?;
/// let credential = Credential::builder()
///     .origin("https://api.example.com")
///     .token_source(api)
///     .build()?;
/// # let _ = credential; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ProtectedResource {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    client_name: String,
    client: Option<(String, Option<SecretString>)>,
    metadata_document: Option<String>,
    authorization_server: Option<String>,
    allow_http: bool,
    http: HttpService,
    resources: ResourceDiscovery,
    discovery: Discovery,
    #[cfg(feature = "store")]
    shared: Option<crate::store::SharedStore>,
    state: Mutex<State>,
}

struct State {
    /// The scopes asked for: configured, learned from a challenge or widened
    /// by a step-up; `None`: the metadata's.
    scopes: Option<Vec<String>>,
    /// The scopes the last service token was asked with.
    asked: Option<Vec<String>>,
    /// What the scopes were before a step-up widened them, until a token
    /// with the wider ones comes.
    widened_from: Option<Vec<String>>,
    /// Scope sets the authorization server refused (`invalid_scope`) after
    /// a step-up: never asked for again.
    refused: Vec<Vec<String>>,
    /// Where the metadata was last read from, when not the well-known URL.
    metadata_url: Option<String>,
    /// Where a later refusal of the API says the metadata is now: tried at
    /// the next discovery, kept only if it holds (else dropped, and the
    /// metadata read as before), so one refusal cannot disable the client.
    learned: Option<String>,
    /// The authorization server a configured client secret went to: a
    /// secret is never sent to another one the metadata later names.
    issuer: Option<String>,
    /// Registrations made or read, by what was registered.
    registrations: HashMap<String, ClientRegistration>,
}

impl ProtectedResource {
    /// For the API at `url` (its resource identifier or a URL under it).
    pub fn builder(url: impl Into<String>) -> ProtectedResourceBuilder {
        ProtectedResourceBuilder {
            url: url.into(),
            client_name: "tower-client-auth".to_owned(),
            client: None,
            metadata_document: None,
            authorization_server: None,
            scopes: None,
            allow_http: false,
            #[cfg(feature = "store")]
            shared: None,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The API URL it was configured with.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Learns from a refusal of the API: the metadata URL of a `401`'s
    /// challenge (`resource_metadata`) and the scopes it names (unless
    /// scopes were configured). A metadata URL is taken only on the API's
    /// own origin, and is tried at the next discovery: kept if its document
    /// holds (the `resource`, the authorization server), dropped otherwise.
    pub fn learn(&self, headers: &HeaderMap) {
        if let Some(challenge) = ResourceChallenge::from_headers(headers) {
            let mut state = self.state();
            if let Some(at) = challenge.resource_metadata() {
                if self.on_resource_origin(at) && state.metadata_url.as_deref() != Some(at) {
                    state.learned = Some(at.to_owned());
                }
            }
            learn_scopes(&mut state, &challenge);
        }
    }

    /// Whether `url` is on the resource's origin.
    fn on_resource_origin(&self, url: &str) -> bool {
        match (
            url.parse::<http::Uri>(),
            self.inner.url.parse::<http::Uri>(),
        ) {
            (Ok(url), Ok(resource)) => crate::wire::origin::same_origin(&url, &resource),
            _ => false,
        }
    }

    /// The authorization server to use from those `resource` lists: the
    /// configured one, or the first; never, for a configured client secret,
    /// another server than the one it went to before.
    fn choose_issuer(&self, resource: &ResourceMetadata) -> Result<String, Error> {
        let listed = resource.authorization_servers();
        let issuer = match &self.inner.authorization_server {
            Some(wanted) if listed.iter().any(|s| s == wanted) => wanted.clone(),
            Some(_) => {
                return Err(Error::resource(ResourceError::Metadata(
                    "the resource does not list the configured authorization server".to_owned(),
                )))
            }
            None => listed[0].clone(),
        };
        crate::wire::origin::parse_url(&issuer, self.inner.allow_http, "authorization server")?;
        if matches!(&self.inner.client, Some((_, Some(_)))) {
            let mut state = self.state();
            match &state.issuer {
                Some(first) if *first != issuer => {
                    return Err(Error::resource(ResourceError::Metadata(
                        "the resource now names another authorization server than the one the \
                         configured client secret is for (pin it with `authorization_server`)"
                            .to_owned(),
                    )))
                }
                Some(_) => {}
                None => state.issuer = Some(issuer.clone()),
            }
        }
        Ok(issuer)
    }

    /// The resource's metadata and its authorization server's (cached).
    pub async fn discover(&self) -> Result<Discovered, Error> {
        let url = &self.inner.url;
        let resources = &self.inner.resources;
        let learned = self.state().learned.clone();
        if let Some(at) = learned {
            match self.try_metadata_at(&at).await {
                Ok(found) => return Ok(found),
                Err(e) => {
                    // Described: no query or user information in a log line.
                    let resource = url
                        .parse::<http::Uri>()
                        .map(|u| crate::wire::origin::describe_url(&u))
                        .unwrap_or_default();
                    tracing::warn!(
                        resource = %resource,
                        error = %e,
                        "metadata named by the API's refusal not used; reading it as before"
                    );
                    let mut state = self.state();
                    if state.learned.as_deref() == Some(at.as_str()) {
                        state.learned = None;
                    }
                }
            }
        }
        let metadata_url = self.state().metadata_url.clone();
        let resource = match metadata_url {
            Some(at) => resources.metadata_at(url, &at).await?,
            None => match resources.metadata(url).await {
                Ok(found) => found,
                // Not at the well-known location: the API's own 401 says
                // where (RFC 9728 §5), asked without credentials.
                Err(e) if e.is_metadata_unavailable() => {
                    let Some(challenge) = resources.probe(url).await? else {
                        return Err(e);
                    };
                    let Some(at) = challenge.resource_metadata() else {
                        return Err(e);
                    };
                    if !self.on_resource_origin(at) {
                        return Err(Error::resource(ResourceError::Metadata(
                            "the API's 401 names metadata on another origin".to_owned(),
                        )));
                    }
                    let found = resources.metadata_at(url, at).await?;
                    let mut state = self.state();
                    state.metadata_url = Some(at.to_owned());
                    learn_scopes(&mut state, &challenge);
                    found
                }
                Err(e) => return Err(e),
            },
        };
        let issuer = self.choose_issuer(&resource)?;
        let server = self.inner.discovery.metadata(&issuer).await?;
        Ok(Discovered { resource, server })
    }

    /// Reads the metadata at a URL a refusal named and its authorization
    /// server's; kept as the metadata URL only if both hold.
    async fn try_metadata_at(&self, at: &str) -> Result<Discovered, Error> {
        let resource = self
            .inner
            .resources
            .metadata_at(&self.inner.url, at)
            .await?;
        let issuer = self.choose_issuer(&resource)?;
        let server = self.inner.discovery.metadata(&issuer).await?;
        let mut state = self.state();
        state.metadata_url = Some(at.to_owned());
        state.learned = None;
        Ok(Discovered { resource, server })
    }

    /// The scopes a token is asked with now.
    pub fn scopes(&self, resource: &ResourceMetadata) -> Vec<String> {
        self.state()
            .scopes
            .clone()
            .unwrap_or_else(|| resource.scopes_supported().to_vec())
    }

    /// A client id for `request` at `server`: the one configured, one
    /// registered before, or a new registration (through the shared store
    /// when there is one).
    async fn registration(
        &self,
        server: Arc<ProviderMetadata>,
        request: RegistrationRequest,
    ) -> Result<ClientRegistration, Error> {
        if let Some((id, secret)) = &self.inner.client {
            return Ok(ClientRegistration::configured(id.clone(), secret.clone()));
        }
        let key = format!("{}|{}", server.issuer(), request.fingerprint());
        if let Some(found) = self.state().registrations.get(&key) {
            return Ok(found.clone());
        }
        let endpoint = server
            .endpoint("registration_endpoint")
            .ok_or_else(|| {
                Error::resource(ResourceError::Registration(
                    "the authorization server has no registration_endpoint and no client id is configured"
                        .to_owned(),
                ))
            })?
            .to_owned();
        let http = self.inner.http.clone();
        let allow_http = self.inner.allow_http;
        let run: BoxFuture<'static, Result<ClientRegistration, Error>> =
            Box::pin(async move { register(http, &endpoint, &request, allow_http).await });
        #[cfg(feature = "store")]
        let registered = match self.inner.shared.clone() {
            Some(shared) => super::registration::register_once(shared, key.clone(), run).await?,
            None => run.await?,
        };
        #[cfg(not(feature = "store"))]
        let registered = run.await?;
        let mut state = self.state();
        // Bounded: a resource that keeps moving does not grow this.
        if state.registrations.len() >= MAX_REGISTRATIONS {
            state.registrations.clear();
        }
        state.registrations.insert(key, registered.clone());
        drop(state);
        Ok(registered)
    }

    /// The token client of a service (client credentials), bound to the
    /// resource, and the scopes to ask with.
    pub async fn service_client(&self) -> Result<(TokenClient, Vec<String>), Error> {
        let found = self.discover().await?;
        let registered = self
            .registration(
                found.server.clone(),
                RegistrationRequest::service(self.inner.client_name.clone()),
            )
            .await?;
        let client = registered
            .token_client(&found.server)
            .param("resource", found.resource.resource())
            .build(self.inner.http.clone())?;
        let scopes = self.scopes(&found.resource);
        self.state().asked = Some(scopes.clone());
        Ok((client, scopes))
    }

    /// A client credentials token for the resource. When the authorization
    /// server refuses scopes a step-up added (`invalid_scope`), the scopes
    /// go back to what they were and that set is never asked for again.
    pub async fn client_credentials(&self) -> Result<Token, Error> {
        self.client_credentials_reverting().await.0
    }

    /// [`client_credentials`](Self::client_credentials), and whether a
    /// refused step-up put the scopes back.
    async fn client_credentials_reverting(&self) -> (Result<Token, Error>, bool) {
        let (client, scopes) = match self.service_client().await {
            Ok(found) => found,
            Err(e) => return (Err(e), false),
        };
        let asked: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let result = client.client_credentials(&asked).await;
        let mut state = self.state();
        let mut reverted = false;
        match &result {
            Ok(_) => state.widened_from = None,
            Err(e) if e.is_invalid_scope() => {
                if let Some(previous) = state.widened_from.take() {
                    // A bounded memory: the oldest refusal goes first.
                    if state.refused.len() >= MAX_REFUSED_SCOPE_SETS {
                        state.refused.remove(0);
                    }
                    state.refused.push(scope_set(&scopes));
                    state.asked = Some(previous.clone());
                    state.scopes = Some(previous);
                    reverted = true;
                }
            }
            Err(_) => {}
        }
        drop(state);
        (result, reverted)
    }

    /// Reads a refusal of the API. `403 insufficient_scope` naming scopes the
    /// last token was not asked with: they are added (the next token asks
    /// for the union) and `Ok(true)` says to get a new token
    /// ([`Credential::invalidate`](crate::Credential::invalidate)) and send
    /// the request once more; the layer does this by itself for a service
    /// (see [`TokenSource::step_up`]). A step-up that adds nothing (which
    /// would loop) or `401 insufficient_user_authentication` is the typed
    /// error to hand to the user's login
    /// ([`authorization_url`](Self::authorization_url)). Any other refusal:
    /// its challenge is learned ([`learn`](Self::learn)), and `Ok(false)`.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use tower_client_auth::oauth2::{HttpService, ProtectedResource};
    ///
    /// # fn f(http: HttpService) -> Result<(), tower_client_auth::Error> {
    /// let api = ProtectedResource::builder("https://api.example.com/mcp")
    ///     .scopes(["mcp:read"])
    ///     .build(http)?;
    /// let mut refusal = HeaderMap::new();
    /// refusal.insert(
    ///     "www-authenticate",
    ///     r#"Bearer error="insufficient_scope", scope="mcp:admin""#.parse().unwrap(),
    /// );
    /// // New scopes: widened, get a new token and retry once.
    /// assert!(api.step_up(StatusCode::FORBIDDEN, &refusal)?);
    /// // The same refusal again: a typed error, never a loop.
    /// let e = api.step_up(StatusCode::FORBIDDEN, &refusal).unwrap_err();
    /// assert_eq!(e.step_up_scopes().unwrap(), ["mcp:read", "mcp:admin"]);
    /// # Ok(()) }
    /// # let client = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # });
    /// # use tower_client_auth::oauth2::IntoHttpService;
    /// # f(client.into_http_service()).unwrap();
    /// ```
    pub fn step_up(&self, status: StatusCode, headers: &HeaderMap) -> Result<bool, Error> {
        let held = {
            let state = self.state();
            state
                .asked
                .clone()
                .or_else(|| state.scopes.clone())
                .unwrap_or_default()
        };
        let Some(error) = step_up(status, headers, &held) else {
            self.learn(headers);
            return Ok(false);
        };
        if let Some(wanted) = error.step_up_scopes() {
            let mut state = self.state();
            let set = scope_set(wanted);
            if wanted.len() > held.len() && !state.refused.contains(&set) {
                state.widened_from = Some(held.clone());
                state.scopes = Some(wanted.to_vec());
                state.asked = Some(wanted.to_vec());
                return Ok(true);
            }
        }
        Err(error)
    }

    /// The token client of a user's login (a public client, PKCE), bound to
    /// the resource, registered for `redirect_uri` if need be.
    pub async fn user_client(
        &self,
        redirect_uri: &str,
    ) -> Result<(TokenClient, Discovered), Error> {
        let found = self.discover().await?;
        let document = self.inner.metadata_document.as_deref().filter(|_| {
            self.inner.client.is_none()
                && found
                    .server
                    .document()
                    .get("client_id_metadata_document_supported")
                    .and_then(serde_json::Value::as_bool)
                    == Some(true)
        });
        let registered = match document {
            // The document's URL is the client id: a public client the server
            // reads from there, nothing registered.
            Some(url) => ClientRegistration::from_json(
                serde_json::json!({ "client_id": url })
                    .to_string()
                    .as_bytes(),
            )?,
            None => {
                self.registration(
                    found.server.clone(),
                    RegistrationRequest::user(self.inner.client_name.clone(), redirect_uri),
                )
                .await?
            }
        };
        let client = registered
            .token_client(&found.server)
            .param("resource", found.resource.resource())
            .build(self.inner.http.clone())?;
        Ok((client, found))
    }

    /// The authorization URL of a user's login (PKCE S256, `resource`, the
    /// scopes), asking also for what `step_up` (an error of
    /// [`step_up`](Self::step_up)) needs: its scopes, or its `acr_values`
    /// and `max_age`. Keep the request until the callback
    /// ([`exchange_code`](Self::exchange_code)).
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        step_up: Option<&Error>,
    ) -> Result<AuthorizationRequest, Error> {
        let (client, found) = self.user_client(redirect_uri).await?;
        let endpoint = found
            .server
            .endpoint("authorization_endpoint")
            .ok_or_else(|| Error::invalid_response("metadata has no authorization_endpoint"))?;
        crate::wire::origin::parse_url(endpoint, true, "authorization endpoint")?;
        let mut scopes = self.scopes(&found.resource);
        if let Some(more) = step_up.and_then(Error::step_up_scopes) {
            for s in more {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
        }
        let mut url = AuthorizationUrl::new(
            endpoint,
            client.client_id().unwrap_or_default(),
            redirect_uri,
        )
        .param("resource", found.resource.resource());
        if !scopes.is_empty() {
            url = url.scope(scopes.join(" "));
        }
        if let Some(acr) = step_up.and_then(Error::acr_values) {
            if !acr.is_empty() {
                url = url.param("acr_values", acr.join(" "));
            }
        }
        if let Some(age) = step_up.and_then(Error::max_age) {
            url = url.param("max_age", age.to_string());
        }
        url.build()
    }

    /// Exchanges the callback of `request` (its query string) for the user's
    /// token, bound to the resource.
    pub async fn exchange_code(
        &self,
        request: &AuthorizationRequest,
        callback_query: &str,
    ) -> Result<Token, Error> {
        let code = request.verify_callback(callback_query)?;
        let (client, _) = self.user_client(request.redirect_uri()).await?;
        client
            .exchange_code(code.code, Some(request.redirect_uri()), request.verifier())
            .await
    }

    /// A token source for the user whose `token` came from
    /// [`exchange_code`](Self::exchange_code): refreshed through the same
    /// client, bound to the resource.
    pub async fn user_source(
        &self,
        redirect_uri: &str,
        token: Token,
    ) -> Result<OAuth2Source, Error> {
        let (client, _) = self.user_client(redirect_uri).await?;
        Ok(OAuth2Source::from_token(client, token))
    }
}

/// How many registrations (by authorization server and what was
/// registered) a resource keeps.
const MAX_REGISTRATIONS: usize = 16;

/// How many refused scope sets a resource remembers.
const MAX_REFUSED_SCOPE_SETS: usize = 16;

/// Scopes as a set: sorted, without repeats, so that an order or a repeat
/// does not make a refused set new.
fn scope_set(scopes: &[String]) -> Vec<String> {
    let mut set = scopes.to_vec();
    set.sort_unstable();
    set.dedup();
    set
}

/// The scopes a challenge names, unless scopes were configured or learned.
fn learn_scopes(state: &mut State, challenge: &ResourceChallenge) {
    if state.scopes.is_none() && !challenge.scopes().is_empty() {
        state.scopes = Some(challenge.scopes().to_vec());
    }
}

/// A client ID metadata document's URL, as the draft wants a URL that is a
/// client id: `https` (written so: it is compared as a string), a path
/// beyond `/`, no query, fragment, dot segments (plain or percent-encoded)
/// or user information (`parse_url` refuses that).
fn check_metadata_document_url(url: &str) -> Result<(), Error> {
    let (uri, _) = crate::wire::origin::parse_url(url, false, "client metadata document URL")?;
    let dot_segment = |seg: &str| {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == "." || seg == ".."
    };
    if !url.starts_with("https://")
        || uri.path().len() < 2
        || url.contains(['?', '#'])
        || uri.path().split('/').any(dot_segment)
    {
        return Err(Error::config(
            "a client metadata document URL must be https (lowercase), with a path, without \
             a query, a fragment or dot segments",
        ));
    }
    Ok(())
}

impl TokenSource for ProtectedResource {
    fn identity(&self) -> Option<String> {
        let field = |s: &str| crate::token::identity_field(s, &['|']).into_owned();
        let client = self.inner.client.as_ref().map_or("", |(id, _)| id.as_str());
        Some(format!(
            "protected-resource|{}|{}|{}",
            field(&self.inner.url),
            field(client),
            field(&self.inner.client_name)
        ))
    }

    /// A `403 insufficient_scope` naming new scopes: asks for the union.
    fn step_up(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        matches!(ProtectedResource::step_up(self, status, headers), Ok(true))
    }

    /// A `401` to a URL of this resource: its challenge may name where the
    /// metadata is now ([`learn`](ProtectedResource::learn)); one to any
    /// other URL of the origin is not this resource's to say.
    fn unauthorized(&self, uri: &http::Uri, headers: &HeaderMap) {
        if let Ok(resource) = self.inner.url.parse::<http::Uri>() {
            if super::resource_metadata::covers(&resource, uri) {
                self.learn(headers);
            }
        }
    }

    fn fetch(&self, previous: Option<&Token>) -> BoxFuture<'static, Result<Token, Error>> {
        let this = self.clone();
        // The token the step-up was for, while it lasts.
        let current = previous
            .filter(|t| {
                t.expires_at()
                    .is_none_or(|at| at > tokio::time::Instant::now() + Duration::from_secs(30))
            })
            .cloned();
        Box::pin(async move {
            match this.client_credentials_reverting().await {
                // A step-up the server refused: the token held before (or
                // one for the scopes granted before) keeps the credential
                // working. The layer's one retry then meets the API's 403
                // again and hands it to the caller, instead of the refusal
                // cooling the credential down for every other request.
                (Err(_), true) => match current {
                    Some(token) => Ok(token),
                    None => this.client_credentials().await,
                },
                (result, _) => result,
            }
        })
    }
}

impl fmt::Debug for ProtectedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedResource")
            .field("url", &self.inner.url)
            .field("client_name", &self.inner.client_name)
            .field("client_id", &self.inner.client.as_ref().map(|(id, _)| id))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ProtectedResourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedResourceBuilder")
            .field("url", &self.url)
            .field("client_name", &self.client_name)
            .finish_non_exhaustive()
    }
}
