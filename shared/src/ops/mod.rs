//! Operational endpoints and jobs (SPEC §8): health, the admin and job routes, alerts
//! and retention.
pub mod admin;
pub mod agents;
pub mod alerts;
pub mod bulk_replay;
pub mod events;
pub mod health;
pub mod jobs;
pub mod lists;
pub mod manual_sync;
pub mod mappings;
pub mod optouts;
pub mod people;
pub mod retention;
pub mod stats;
