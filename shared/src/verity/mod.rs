//! Verity, the company's platform (SPEC §13): its API catalog ([`catalog`]), the tools
//! generated from it ([`tools`]), the API gateway ([`gateway`]) and the MCP server
//! ([`mcp`], [`mcp_http`]). Catalog and tools are pure; the HTTP client is
//! `providers::verity_api`, the catalog's source `adapters::catalog_source`.
pub mod catalog;
pub mod gateway;
pub mod mcp;
pub mod mcp_http;
pub mod setup;
pub mod tools;
