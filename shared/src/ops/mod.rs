//! Operational endpoints: health and the admin routes.
pub mod admin;
pub mod health;
pub mod optouts;
