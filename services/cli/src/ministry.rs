//! The demo's ministry: once the history is counted it publishes last week's ranking of
//! provinces by the demo's metric, as the press would print it; a little later the system of
//! the province ranked last re-syncs dossiers of that week it had not sent, so that the
//! publication has revisions to show (`govpulse revisions`, the dashboard's Publications
//! view). What it did is one line of the demo's header.

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use govpulse::simulate::{Country, Tally};
use govpulse_core::{Catalog, Metric, Period, period::vietnam_day};
use govpulse_proto::{
    catalog::Block as PbBlock,
    ingest::{SubmitEventsRequest, ingest_service_client::IngestServiceClient},
    ranking::{
        GetRevisionsRequest, Publication, PublishRequest, RankingQuery,
        ranking_service_client::RankingServiceClient,
    },
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::connect::Remote;

/// How long after publishing the province re-syncs: long enough to look at the publication
/// as it was published first.
const RESYNC_AFTER: Duration = Duration::from_secs(20);

/// How many dossiers the re-sync sends.
const RESYNC_DOSSIERS: u32 = 400;

/// What the ministry did, for the demo's header.
#[derive(Debug, Default)]
pub struct Status(Mutex<String>);

impl Status {
    /// The line to show.
    pub fn line(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, line: String) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = line;
    }
}

/// Publishes, then re-syncs, as the module says, until `stop`. Failures are said in the
/// status line, never fatal to the demo.
pub async fn run(
    ranking: Remote,
    ingest_url: String,
    catalog: Arc<Catalog>,
    metric: Metric,
    tally: Arc<Tally>,
    status: Arc<Status>,
    stop: CancellationToken,
) {
    // The history first: a publication of last week before its events are in would be
    // nothing but revisions.
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    while tally.history_took.get().is_none() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
    }
    let today = vietnam_day(OffsetDateTime::now_utc());
    let week = Period::week_of(today - time::Duration::days(7));
    let id = format!("demo-{}", week.expression().to_ascii_lowercase());
    let mut client = RankingServiceClient::new(ranking.channel());
    let request = PublishRequest {
        publication_id: id.clone(),
        title: format!("Provinces by {metric}, week {}", week.expression()),
        query: Some(RankingQuery {
            metric: metric.name().to_owned(),
            block: PbBlock::Province.into(),
            period: week.expression().to_owned(),
            ..Default::default()
        }),
        block_metrics: None,
    };
    let published = match client.publish(ranking.request(request)).await {
        Ok(response) => response.into_inner().publication.unwrap_or_default(),
        Err(status_) => {
            status.set(format!(
                "publishing last week's ranking failed: {}",
                status_.message()
            ));
            return;
        }
    };
    status.set(format!(
        "published {id} (last week's ranking): govpulse publication {id}, or Publications on the dashboard"
    ));
    tokio::select! {
        () = stop.cancelled() => return,
        () = tokio::time::sleep(RESYNC_AFTER) => {}
    }
    let Some(last) = last_ranked(&published) else {
        return;
    };
    let day = week.first_day() + time::Duration::days(2);
    let events = Country::new(&catalog, today.to_julian_day().unsigned_abs().into()).resync(
        &last,
        day,
        RESYNC_DOSSIERS,
    );
    let count = events.len();
    let sent = match IngestServiceClient::connect(ingest_url).await {
        Ok(mut ingest) => {
            let mut outcome = Ok(());
            for chunk in events.chunks(1000) {
                match ingest
                    .submit_events(SubmitEventsRequest {
                        events: chunk.to_vec(),
                    })
                    .await
                {
                    Ok(response) => {
                        tally.outcomes.accepted.fetch_add(
                            u64::from(response.into_inner().accepted),
                            Ordering::Relaxed,
                        );
                    }
                    Err(e) => {
                        outcome = Err(e.message().to_owned());
                        break;
                    }
                }
            }
            outcome
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(reason) = sent {
        status.set(format!(
            "published {id}; the re-sync of {last} failed: {reason}"
        ));
        return;
    }
    let revised = client
        .get_revisions(ranking.request(GetRevisionsRequest {
            publication_id: id.clone(),
        }))
        .await
        .map(|r| r.into_inner().rows.len());
    status.set(match revised {
        Ok(rows) => format!(
            "published {id}; then {last} re-synced {count} events of {day}: {rows} rows revised (govpulse revisions {id})"
        ),
        Err(e) => format!("published {id}; {last} re-synced {count} events of {day}; revisions: {}", e.message()),
    });
}

/// The agency ranked last in a published ranking.
fn last_ranked(publication: &Publication) -> Option<String> {
    publication
        .ranking
        .as_ref()?
        .rows
        .iter()
        .rfind(|r| r.rank > 0)
        .map(|r| r.agency_id.clone())
}
