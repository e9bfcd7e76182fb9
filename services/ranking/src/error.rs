//! What can go wrong with one request to ranking, and its one mapping to a gRPC status.
//! Start-up errors are [`crate::StartError`].

use govpulse_edge::convert::Invalid;
use tonic::Status;

/// Why a ranking request (or a live ranking's computation) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query field is wrong: INVALID_ARGUMENT naming the field (with `BadRequest` details).
    #[error(transparent)]
    InvalidArgument(#[from] Invalid),
    /// A cap is reached (the live rankings of this replica, the streams of this caller):
    /// RESOURCE_EXHAUSTED, saying which cap and what to do.
    #[error("{0}")]
    Exhausted(String),
    /// The replica is shutting down: UNAVAILABLE, the caller reconnects (to another replica).
    #[error("ranking service is shutting down; reconnect")]
    ShuttingDown,
    /// Aggregate did not answer: its status passes through (UNAVAILABLE, DEADLINE_EXCEEDED…),
    /// so a caller retries exactly when it would have retried aggregate itself.
    #[error("aggregate: {}", .0.message())]
    Aggregate(Status),
    /// Aggregate answered something ranking cannot read: INTERNAL (a version mismatch or a
    /// bug, never the caller's doing).
    #[error("aggregate answered {0}")]
    BadAnswer(String),
    /// A publication id is taken by another publication: ALREADY_EXISTS.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request cannot be answered as things stand (a publication's query names an index
    /// profile no longer in force): FAILED_PRECONDITION.
    #[error("{0}")]
    Precondition(String),
    /// The caller's credential is missing, invalid or lacks the role: UNAUTHENTICATED or
    /// PERMISSION_DENIED (audited where it was checked).
    #[error(transparent)]
    Refused(#[from] govpulse_edge::auth::Refusal),
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::InvalidArgument(invalid) => invalid.into(),
            Error::Exhausted(reason) => Status::resource_exhausted(reason),
            e @ Error::ShuttingDown => Status::unavailable(e.to_string()),
            Error::Aggregate(status) => status,
            e @ Error::BadAnswer(_) => Status::internal(e.to_string()),
            Error::AlreadyExists(reason) => Status::already_exists(reason),
            Error::Precondition(reason) => Status::failed_precondition(reason),
            Error::Refused(refusal) => Status::from(refusal),
        }
    }
}

#[cfg(test)]
mod tests {
    use govpulse_edge::convert::InvalidField;
    use tonic::Code;

    use super::*;

    #[test]
    fn each_error_has_its_code_and_words() {
        let cases = [
            (
                Error::invalid("query.period", "is not a period"),
                Code::InvalidArgument,
                "query.period: is not a period",
            ),
            (
                Error::Exhausted("too many live rankings".into()),
                Code::ResourceExhausted,
                "too many live rankings",
            ),
            (
                Error::ShuttingDown,
                Code::Unavailable,
                "ranking service is shutting down; reconnect",
            ),
            (
                Error::Aggregate(Status::deadline_exceeded("late")),
                Code::DeadlineExceeded,
                "late",
            ),
            (
                Error::BadAnswer("a snapshot without its last day".into()),
                Code::Internal,
                "aggregate answered a snapshot without its last day",
            ),
            (
                Error::AlreadyExists("publication w49 was published before".into()),
                Code::AlreadyExists,
                "publication w49 was published before",
            ),
            (
                Error::Precondition("the publication's query.index no longer reads".into()),
                Code::FailedPrecondition,
                "the publication's query.index no longer reads",
            ),
            (
                Error::Refused(govpulse_edge::auth::Refusal::MissingRole {
                    agency: "ha-noi".into(),
                    role: "publisher",
                }),
                Code::PermissionDenied,
                "agency ha-noi lacks the publisher role",
            ),
        ];
        for (error, code, message) in cases {
            let status = Status::from(error);
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }
}
