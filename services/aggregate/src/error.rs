//! The aggregate service's request errors, with their one mapping to gRPC statuses (those of
//! starting are [`govpulse_edge::StartError`], which never reach a caller).

use govpulse_edge::convert::Invalid;
use govpulse_store::StoreError;
use tonic::Status;

/// What can go wrong with one request to aggregate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field, or one element of a request (an assessed score, `scores[2].points`),
    /// is wrong: INVALID_ARGUMENT naming its field path.
    #[error(transparent)]
    InvalidArgument(#[from] Invalid),
    /// Nothing is kept under what the request names (a publication id): NOT_FOUND, with
    /// this message.
    #[error("{0}")]
    NotFound(String),
    /// The counter store failed: UNAVAILABLE, the caller retries (safe: batches are
    /// idempotent).
    #[error("counter store: {0}")]
    Store(#[from] StoreError),
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::InvalidArgument(invalid) => invalid.into(),
            Error::NotFound(message) => Status::not_found(message),
            Error::Store(e) => {
                // The store's own words (addresses, key names, server messages) stay in the
                // log; the caller gets an incident id to quote.
                let incident = format!("{:016x}", rand::random::<u64>());
                tracing::warn!(error = %e, incident, "counter store unavailable");
                Status::unavailable(format!(
                    "counter store unavailable; retry the batch (incident {incident})"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_failure_tells_the_caller_to_retry_without_the_store_s_words() {
        let error = Error::Store(StoreError::Unexpected(
            "ERR wrong kind at gp:{ha-noi}:e:17 on 10.0.3.7:6379".to_owned(),
        ));
        let status = Status::from(error);
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            status
                .message()
                .starts_with("counter store unavailable; retry the batch (incident "),
            "{}",
            status.message()
        );
        for leak in ["gp:", "10.0.3.7", "ERR"] {
            assert!(!status.message().contains(leak), "{}", status.message());
        }
    }
}
