//! Adapters: everything that talks to Postgres (ours and, read only, Verity's), SQS
//! or Secrets Manager.
pub mod admin_store;
pub mod broadcast_store;
pub mod bulk_store;
pub mod catalog_source;
pub mod db;
pub mod db_tls;
pub mod event_store;
pub mod migrations;
pub mod ops_store;
pub mod optout_store;
pub mod people_store;
pub mod provider_pause;
pub mod queue;
pub mod rate_budget;
pub mod secrets;
pub mod sync_store;
pub mod verity_db;
