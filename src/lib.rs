//! callscope: one durable, queryable copy of the call records that AI
//! outbound-call robots and IVR platforms report, served over gRPC.
//!
//! Layers, outside in: [`api`] (tonic adapters) → [`service`] (operations) →
//! [`domain`] (plain types and rules) → [`store`] (SQL). [`server`] wires them.

pub mod api;
pub mod auth;
pub mod config;
pub mod domain;
pub mod export;
pub mod http;
pub mod import;
pub mod proto;
pub mod retention;
pub mod server;
pub mod service;
pub mod sources;
pub mod store;
pub mod tls;

pub use server::Application;
