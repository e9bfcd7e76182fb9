//! What every govpulse service shares: decoding events at the API edge, loading the
//! catalog, converting between the domain and the protos, the gRPC server lifecycle
//! (health, reflection, graceful shutdown, TLS), callers' identity and telemetry (logs, traces,
//! Prometheus metrics).

pub mod assessed;
pub mod auth;
pub mod catalog_files;
pub mod catalog_service;
pub mod client;
pub mod convert;
pub mod decode;
pub mod edge;
pub mod grpc_metrics;
pub mod grpc_web;
pub mod host;
pub mod http_json;
pub mod index_file;
pub mod linger;
pub mod live_file;
pub mod prometheus;
pub mod refusals;
pub mod server;
pub mod targets_file;
pub mod telemetry;
pub mod tls;

pub use decode::{Violation, decode_event};
