//! df-middleware library: everything the Lambda binaries in `functions/` run.
//!
//! - [`domain`]: pure rules (classification, dedupe keys, phones, event filters).
//! - [`auth`]: webhook authentication (constant-time secrets, GHL signatures).
//! - [`adapters`]: Postgres, SQS, Secrets Manager, migrations.
//! - [`ingest`]: the webhook ingest contract joining them.
//! - [`providers`]: GHL, Aloware clients with typed, retry-aware errors.
//! - [`sync`]: the sync routers (SPEC §6); [`pipeline`]: the SQS consumer (SPEC §5).
//! - [`ops`]: operational endpoints (health, admin, jobs).
//! - [`verity`]: Verity's API catalog, the gateway and the MCP server (SPEC §13).
//! - [`lambda`]: configuration, tracing and HTTP glue.
//! - [`app`]: the composition root — what each function is built from.
pub mod adapters;
pub mod app;
pub mod auth;
pub mod domain;
pub mod ingest;
pub mod lambda;
pub mod ops;
pub mod pipeline;
pub mod providers;
pub mod sync;
pub mod verity;
