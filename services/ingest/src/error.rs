//! The ingest service's request errors, with their one mapping to gRPC statuses (those of
//! starting are [`govpulse_edge::StartError`], which never reach a caller).

use std::time::Duration;

use govpulse_edge::auth::{AuthError, Refusal};
use govpulse_edge::convert::Invalid;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What can go wrong with one request to ingest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The call as a whole is wrong (for example an oversized batch), or one element of it
    /// (an assessed score, `scores[2].points`): INVALID_ARGUMENT naming its field path;
    /// nothing was counted or stored.
    #[error(transparent)]
    InvalidArgument(#[from] Invalid),
    /// Aggregate refused assessed scores that ingest accepted (their configurations
    /// differ): its INVALID_ARGUMENT, with its field violations, is passed on.
    #[error("aggregate refused: {}", .0.message())]
    Refused(Status),
    /// The call carries no valid credential: UNAUTHENTICATED, nothing was counted.
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    /// The credential lacks the role the call needs: PERMISSION_DENIED, nothing counted.
    #[error("agency {agency} lacks the {role} role")]
    PermissionDenied { agency: String, role: &'static str },
    /// The agency sent more than its rate allows: RESOURCE_EXHAUSTED with a
    /// google.rpc.RetryInfo saying when to send again; nothing was counted.
    #[error("agency {agency} is over its rate of events; retry in {retry_after:?}")]
    RateLimited {
        agency: String,
        retry_after: Duration,
    },
    /// The agency already holds as many open StreamEvents calls as it may:
    /// RESOURCE_EXHAUSTED; close one or send with SubmitEvents.
    #[error("agency {agency} already has {limit} open event streams; close one first")]
    TooManyStreams { agency: String, limit: usize },
    /// Aggregate failed or could not be reached. Some events may have been counted; the
    /// sender retries the same batch and gets DUPLICATE for those.
    #[error("aggregate: {}", .0.message())]
    Aggregate(Status),
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthenticated(e) => Error::Unauthenticated(e),
            Refusal::MissingRole { agency, role } => Error::PermissionDenied { agency, role },
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::InvalidArgument(invalid) => invalid.into(),
            Error::Refused(status) => status,
            Error::Unauthenticated(e) => Status::from(e),
            e @ Error::PermissionDenied { .. } => Status::permission_denied(e.to_string()),
            e @ Error::TooManyStreams { .. } => Status::resource_exhausted(e.to_string()),
            e @ Error::RateLimited { retry_after, .. } => Status::with_error_details(
                Code::ResourceExhausted,
                e.to_string(),
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
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
        }
    }
}
