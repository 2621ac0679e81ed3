//! Operational endpoints: health and the admin routes.
pub mod admin;
pub mod events;
pub mod health;
pub mod jobs;
pub mod optouts;
