//! The ingest service's errors, and their one mapping to gRPC statuses.

use govpulse_common::{catalog_files::LoadError, convert::bad_request, server::ServeError};
use tonic::{Code, Status};

/// Everything that can go wrong in ingest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The call as a whole is wrong (for example an oversized batch): INVALID_ARGUMENT
    /// naming the field; nothing was counted.
    #[error("{field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// One element of a request is wrong (an assessed score): INVALID_ARGUMENT naming its
    /// field path, `scores[2].points`; nothing was stored.
    #[error("{}: {}", .0.field, .0.reason)]
    Violation(govpulse_common::Violation),
    /// Aggregate refused assessed scores that ingest accepted (their configurations
    /// differ): its INVALID_ARGUMENT, with its field violations, is passed on.
    #[error("aggregate refused: {}", .0.message())]
    Refused(Status),
    /// Aggregate failed or could not be reached. Some events may have been counted; the
    /// sender retries the same batch and gets DUPLICATE for those.
    #[error("aggregate: {}", .0.message())]
    Aggregate(Status),
    /// Start-up: the catalog could not be loaded.
    #[error(transparent)]
    Catalog(#[from] LoadError),
    /// Start-up: the index profiles file could not be loaded.
    #[error(transparent)]
    Profiles(#[from] govpulse_common::index_file::ProfilesLoadError),
    /// Start-up: a setting is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Start-up or serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::InvalidArgument { field, reason } => bad_request(field, &reason),
            Error::Violation(v) => bad_request(&v.field, &v.reason),
            Error::Refused(status) => status,
            Error::Aggregate(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "aggregate call failed");
                match status.code() {
                    // Retryable as they are: the batch is idempotent.
                    Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                        Status::new(
                            status.code(),
                            format!("counting failed, retry the batch: {}", status.message()),
                        )
                    }
                    // The client-side timeout towards aggregate surfaces as CANCELLED; to
                    // the sender it is a service that did not answer in time.
                    Code::Cancelled => Status::unavailable(format!(
                        "counting timed out, retry the batch: {}",
                        status.message()
                    )),
                    _ => Status::internal(format!("counting failed: {}", status.message())),
                }
            }
            Error::Catalog(e) => Status::internal(e.to_string()),
            Error::Profiles(e) => Status::internal(e.to_string()),
            Error::Config(e) => Status::internal(e),
            Error::Serve(e) => Status::internal(e.to_string()),
        }
    }
}
