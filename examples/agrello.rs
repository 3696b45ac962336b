//! The agrello preset: against the real provider when its environment variables
//! are set (see `examples/common/tours.rs`), against the local emulator
//! otherwise. `cargo run --example agrello`

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() -> Result<(), tower_client_auth::BoxError> {
    common::tours::agrello(true).await
}
