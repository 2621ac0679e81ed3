//! Adapters: everything that talks to Postgres, SQS or Secrets Manager.
pub mod db;
pub mod events_repo;
pub mod migrations;
pub mod queue;
pub mod rate_budget;
pub mod secrets;
pub mod sync_repo;
