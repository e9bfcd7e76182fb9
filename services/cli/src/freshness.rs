//! Freshness under load: the time from an event's acknowledgement by ingest to its effect in
//! a `WatchRanking` stream, as a dashboard sees it.
//!
//! The probe watches the provinces' ranking by online dossier rate for one past day that the
//! load generator never writes to (it dates its events now), so only the probe's own events
//! move that ranking and each one's effect is known exactly: one more dossier received in
//! the province's row. Probes go one at a time, to the provinces in turn; a probe whose
//! effect has not arrived within the timeout counts as missed.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use govpulse_core::{Block, Catalog, period};
use govpulse_proto::{
    catalog::Block as ProtoBlock,
    event::{Channel, DossierEvent, DossierReceived, OutcomeStatus, dossier_event::Kind},
    ingest::{SubmitEventsRequest, ingest_service_client::IngestServiceClient},
    ranking::{
        RankingQuery, WatchRankingRequest, ranking_service_client::RankingServiceClient,
        watch_ranking_response::Event,
    },
};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel as GrpcChannel;

use crate::loadgen::{Latency, reporting_agencies, ts};

/// How the probe runs.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Pause between one probe's effect (or timeout) and the next probe.
    pub every: Duration,
    /// Longest wait for a probe's effect before it counts as missed.
    pub timeout: Duration,
    /// How many days before today (Vietnam time) the probed day is: inside the accepted
    /// horizon, outside what the load generator writes.
    pub days_back: i64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
            days_back: 3,
        }
    }
}

/// What the probe measured.
#[derive(Debug, Default)]
pub struct Freshness {
    /// Acknowledgement → effect in the stream, of every probe that arrived.
    pub latency: Latency,
    /// Probes whose effect did not arrive within the timeout.
    pub missed: u64,
    /// Probes ingest did not accept (an error, or an outcome other than ACCEPTED).
    pub refused: u64,
}

/// Each province's dossiers received on the probed day, as the stream shows them.
type Shown = HashMap<String, u64>;

/// Probes until `stop` is cancelled; the ranking stream is opened (and its snapshot read)
/// before the first probe.
pub async fn probe(
    ingest: GrpcChannel,
    ranking: GrpcChannel,
    catalog: &Catalog,
    config: ProbeConfig,
    stop: CancellationToken,
) -> anyhow::Result<Freshness> {
    let day =
        period::vietnam_day(OffsetDateTime::now_utc()) - time::Duration::days(config.days_back);
    let provinces: Vec<(String, String)> = reporting_agencies(catalog, day)
        .into_iter()
        .filter(|(agency, _)| {
            catalog
                .agency_by_str(agency)
                .is_some_and(|a| a.block == Block::Province)
        })
        .filter_map(|(agency, procedures)| Some((agency, procedures.first()?.clone())))
        .collect();
    anyhow::ensure!(!provinces.is_empty(), "no province reports on {day}");

    let query = RankingQuery {
        metric: "online-dossier-rate".to_owned(),
        block: ProtoBlock::Province.into(),
        period: day.to_string(),
        ..RankingQuery::default()
    };
    let mut stream = RankingServiceClient::new(ranking)
        .watch_ranking(WatchRankingRequest {
            query: Some(query),
            resume_revision: 0,
        })
        .await?
        .into_inner();
    let (shown_tx, mut shown) = watch::channel((Shown::new(), false));
    let watcher = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let rows = match message.event {
                Some(Event::Snapshot(snapshot)) => snapshot.rows,
                Some(Event::Changes(changes)) => {
                    changes.changes.into_iter().filter_map(|c| c.row).collect()
                }
                Some(Event::SnapshotComplete(_)) => {
                    shown_tx.send_modify(|(_, complete)| *complete = true);
                    continue;
                }
                _ => continue,
            };
            shown_tx.send_modify(|(shown, _)| {
                for row in rows {
                    let received = row.rate.map_or(0, |r| r.denominator);
                    shown.insert(row.agency_id, received);
                }
            });
        }
    });
    shown.wait_for(|(_, complete)| *complete).await?;

    let mut client = IngestServiceClient::new(ingest);
    let run = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let at = day
        .with_time(time::macros::time!(12:00))
        .assume_offset(period::VIETNAM);
    let mut latencies = Vec::new();
    let mut result = Freshness::default();
    for n in 0u64.. {
        if stop.is_cancelled() {
            break;
        }
        let (agency, procedure) = &provinces[(n as usize) % provinces.len()];
        let before = shown.borrow().0.get(agency).copied().unwrap_or(0);
        let dossier = format!("fresh-{run}-{n}");
        let event = DossierEvent {
            event_id: format!("{dossier}:rcv"),
            agency_id: agency.clone(),
            dossier_id: dossier,
            procedure_id: procedure.clone(),
            occurred_at: Some(ts(at)),
            kind: Some(Kind::Received(DossierReceived {
                channel: Channel::Online.into(),
                digitized: true,
                due_at: None,
            })),
            corrects: String::new(),
        };
        let answer = client
            .submit_events(SubmitEventsRequest {
                events: vec![event],
            })
            .await;
        let acknowledged = Instant::now();
        let accepted = answer.is_ok_and(|a| {
            a.into_inner()
                .outcomes
                .first()
                .is_some_and(|o| o.status() == OutcomeStatus::Accepted)
        });
        if !accepted {
            result.refused += 1;
        } else {
            let arrived = tokio::time::timeout(
                config.timeout,
                shown.wait_for(|(shown, _)| shown.get(agency).copied().unwrap_or(0) > before),
            )
            .await;
            match arrived {
                Ok(Ok(_)) => latencies.push(acknowledged.elapsed()),
                Ok(Err(_)) => anyhow::bail!("the WatchRanking stream ended after {n} probes"),
                Err(_) => result.missed += 1,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(config.every) => {}
            () = stop.cancelled() => break,
        }
    }
    watcher.abort();
    result.latency = Latency::of_durations(latencies);
    Ok(result)
}
