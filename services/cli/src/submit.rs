//! `govpulse submit`: JSON lines (the protobuf JSON mapping of `DossierEvent`) to ingest, in
//! batches, retrying whole batches on transient failures. Retrying is safe: the event ids
//! make a resent event come back DUPLICATE instead of being counted twice.

use std::{io::BufRead, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use govpulse_proto::{
    event::{DossierEvent, OutcomeStatus},
    ingest::{SubmitEventsRequest, ingest_service_client::IngestServiceClient},
};
use tonic::{Code, Status, transport::Channel};

use crate::json_lines::{self, BadLine};

/// Parses JSON lines of `DossierEvent`; blank lines are skipped. Returns the events with
/// their line numbers, or every bad line.
pub fn parse_lines(input: impl BufRead) -> Result<Vec<(usize, DossierEvent)>, Vec<BadLine>> {
    json_lines::parse(input, "a DossierEvent")
}

/// What ingest answered for a whole submission.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Events counted now.
    pub accepted: u64,
    /// Events counted before.
    pub duplicate: u64,
    /// Events whose id was counted before with other content: line, field and reason.
    pub conflicts: Vec<(usize, String, String)>,
    /// Refused events: line, field and reason.
    pub rejected: Vec<(usize, String, String)>,
}

impl Report {
    /// Events answered so far, whatever the answer.
    pub fn answered(&self) -> u64 {
        self.accepted + self.duplicate + (self.conflicts.len() + self.rejected.len()) as u64
    }

    /// The tallies in one line: `accepted 10, duplicate 2, conflict 1, rejected 0`.
    pub fn tallies(&self) -> String {
        let conflicts = match self.conflicts.len() {
            0 => String::new(),
            n => format!(", conflict {n}"),
        };
        format!(
            "accepted {}, duplicate {}{conflicts}, rejected {}",
            self.accepted,
            self.duplicate,
            self.rejected.len()
        )
    }
}

fn transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted
    )
}

/// Sends the events in batches of `batch_size`, each retried with backoff (200 ms doubling
/// to 5 s) while ingest is unavailable, for up to `retry_for` of waiting, with `token` as the
/// bearer credential when given; `progress` sees the report so far after each batch.
pub async fn send(
    client: &IngestServiceClient<Channel>,
    events: Vec<(usize, DossierEvent)>,
    batch_size: usize,
    retry_for: Duration,
    token: Option<&str>,
    mut progress: impl FnMut(&Report),
) -> Result<Report, Status> {
    let authorization = token
        .map(|t| {
            format!("Bearer {t}")
                .parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>()
                .map_err(|_| Status::invalid_argument("the token is not printable ASCII"))
        })
        .transpose()?;
    let mut report = Report::default();
    for chunk in events.chunks(batch_size.max(1)) {
        let request = SubmitEventsRequest {
            events: chunk.iter().map(|(_, e)| e.clone()).collect(),
        };
        let call = || {
            let mut client = client.clone();
            let mut request = tonic::Request::new(request.clone());
            if let Some(authorization) = &authorization {
                request
                    .metadata_mut()
                    .insert("authorization", authorization.clone());
            }
            async move { client.submit_events(request).await }
        };
        let response = call
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    .without_max_times()
                    .with_total_delay(Some(retry_for)),
            )
            .when(transient)
            .notify(|status, delay| tracing::warn!(code = ?status.code(), retry_in = ?delay, "ingest unavailable; retrying the batch"))
            .await?
            .into_inner();
        for ((line, _), outcome) in chunk.iter().zip(response.outcomes) {
            match OutcomeStatus::try_from(outcome.status) {
                Ok(OutcomeStatus::Accepted) => report.accepted += 1,
                Ok(OutcomeStatus::Duplicate) => report.duplicate += 1,
                Ok(OutcomeStatus::Conflict) => {
                    report
                        .conflicts
                        .push((*line, outcome.field, outcome.reason));
                }
                _ => report.rejected.push((*line, outcome.field, outcome.reason)),
            }
        }
        progress(&report);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_follow_the_protobuf_json_mapping() {
        let input = r#"{"eventId":"e1","agencyId":"hoa-binh","dossierId":"d1","procedureId":"hoa-binh.p01","occurredAt":"2026-08-15T09:00:00+07:00","received":{"channel":"CHANNEL_ONLINE","digitized":true}}

{"event_id":"e2","agency_id":"hoa-binh","dossier_id":"d1","procedure_id":"hoa-binh.p01","occurred_at":"2026-08-16T02:00:00Z","resolved":{"due_at":"2026-08-20T00:00:00Z","result_electronic":true}}
"#;
        let events = parse_lines(input.as_bytes()).expect("valid");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].0, 1);
        assert_eq!(events[1].0, 3);
        assert_eq!(events[0].1.event_id, "e1");
        assert_eq!(
            events[0].1.occurred_at.as_ref().map(|t| t.seconds),
            Some(1_786_759_200)
        );
    }

    #[test]
    fn malformed_lines_are_all_reported_with_their_numbers() {
        let input = "{\"eventId\":\"ok\"}\n{not json\n{\"eventId\":1}\n";
        let bad = parse_lines(input.as_bytes()).expect_err("invalid");
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3]);
        assert!(
            bad[0].reason.starts_with("not a DossierEvent in JSON: "),
            "{}",
            bad[0].reason
        );
    }
}
