//! Verity's API catalog ([`catalog`]) and the MCP tools generated from it ([`tools`]):
//! pure rules (parsing, naming, schemas, argument validation), no I/O.
pub mod access;
pub mod catalog;
pub mod tools;
