//! Operational endpoints.
pub mod health;
