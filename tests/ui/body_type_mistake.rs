// A hyper-util client built for `Full<Bytes>` under `AuthLayer` with its 401
// retry on: the layer sends `Request<ReplayBody<Full<Bytes>>>`, so the
// compiler must say so and name both ways out.
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service};
use tower_client_auth::{AuthLayer, Credential};

/// Wherever the service goes next (a `Buffer`, an app's state, `oneshot`).
fn takes_requests_of_full_bytes<S: Service<Request<Full<Bytes>>>>(_: S) {}

fn main() {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let credential = Credential::bearer("https://api.example.com", "t").unwrap();
    let api = AuthLayer::new(credential).layer(client);
    takes_requests_of_full_bytes(api);
}
