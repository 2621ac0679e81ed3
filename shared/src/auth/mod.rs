//! Authentication of incoming webhooks.
pub mod broadcast_signature;
pub mod clerk;
pub mod ghl_signature;
pub mod secret;

pub use ghl_signature::{GhlKeys, Scheme, SignatureError};
pub use secret::{basic_auth_matches, bearer_matches, secret_eq};
