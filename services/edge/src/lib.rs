//! The edge of every govpulse service: what callers reach and how. Serving (the gRPC server
//! and its ports, `host` and `server`), the limits on what one caller may hold (`limits`,
//! `linger`), the protocols beside gRPC (`http_json`, `grpc_web`), callers' identity and
//! the audit log (`auth`, `refusals`), decoding what callers send (`decode`, `assessed`) and
//! converting between the domain and the protos (`convert`, `catalog_service`).
//!
//! What a process runs on, whatever its callers do (files it watches, telemetry, metrics,
//! TLS material, outgoing channels), is `govpulse-runtime`'s; this crate builds on it and
//! never the other way round.

pub mod assessed;
pub mod auth;
pub mod catalog_service;
pub mod convert;
pub mod decode;
pub mod grpc_web;
pub mod host;
pub mod http_json;
pub mod limits;
pub mod linger;
pub mod refusals;
pub mod server;
pub mod start;
pub mod unary;

pub use decode::{Checked, Counted, Violation, check_event, decode_counted, decode_event};
pub use start::StartError;
