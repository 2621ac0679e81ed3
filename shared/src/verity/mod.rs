//! Verity, the company's platform (SPEC §13): the API gateway ([`gateway`]) and the MCP
//! server ([`mcp`], [`mcp_http`]). The catalog and the tools generated from it are pure
//! domain rules (`domain::verity`); the HTTP client is `providers::verity_api`, the
//! catalog's source `adapters::catalog_source`; building both from settings is
//! `app::verity`.
pub mod gateway;
pub mod guard;
pub mod mcp;
pub mod mcp_http;
pub mod principal;
