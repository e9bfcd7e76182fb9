//! Publications (`Publish`, `GetPublication`, `ListPublications`, `GetRevisions`): a ranking
//! computed once and frozen with the counters behind it, kept by aggregate, and compared with
//! the ranking now. The rules (ids, frozen periods, stretches of the basis, what is revised
//! and why) are `govpulse_core::publication`'s; this module reads, encodes and asks.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, stream};
use govpulse_core::{
    AgencyId, Catalog, Period,
    index::Profiles,
    period::parse_day,
    period::vietnam_day,
    publication::{self, Standing, Stretch},
    ranking::Rules,
};
use govpulse_edge::convert::{Invalid, InvalidField, counters_from_proto, moment_from_proto};
use govpulse_proto::{
    aggregate::{
        AgencyMetric, GetBlockMetricsRequest, GetBlockMetricsResponse, GetBlockSnapshotRequest,
        GetKeptPublicationRequest, KeepPublicationRequest, ListKeptPublicationsRequest,
        aggregate_service_client::AggregateServiceClient,
    },
    ranking::{
        CounterRevision, CountersAt, GetRankingResponse, GetRevisionsResponse,
        ListPublicationsResponse, Publication, PublicationSummary, PublishRequest, PublishResponse,
        RankingQuery, RankingRow, RevisionCause, RowRevision, ranking_query,
    },
};
use prost::Message;
use time::OffsetDateTime;
use tonic::transport::Channel;

use govpulse_runtime::index_file::LiveProfiles;
use tracing::warn;

use crate::{
    compute::{Ranking, answered_days, answered_period, compute, ranking_to_proto},
    error::Error,
    query::{Measure, Query, Scope},
};

/// How many stretch snapshots one publication or revision asks aggregate for at once.
const SNAPSHOTS_IN_FLIGHT: usize = 8;

/// What publishing and revising read from.
pub(crate) struct Sources<'a> {
    pub aggregate: &'a AggregateServiceClient<Channel>,
    pub catalog: &'a Catalog,
    /// The composite index profiles in force.
    pub profiles: Arc<Profiles>,
    pub rules: Rules,
}

/// A ranking computed now for `query`, as a message with every row.
async fn ranking_now(
    sources: &Sources<'_>,
    query: &Query,
) -> Result<(GetRankingResponse, Period), Error> {
    let ranking = compute(sources.aggregate, sources.catalog, query, sources.rules).await?;
    let days = ranking.days.clone();
    // Never marked: a publication stands on its own, its rows carry no revised flags.
    Ok((ranking_to_proto(sources.catalog, ranking), days))
}

/// The counters of the agencies of `scopes` over each stretch, read now.
async fn basis(
    aggregate: &AggregateServiceClient<Channel>,
    scopes: &[Scope],
    stretches: &[Period],
) -> Result<Vec<CountersAt>, Error> {
    let reads: Vec<_> = stretches
        .iter()
        .map(|days| {
            let requests: Vec<GetBlockSnapshotRequest> = scopes
                .iter()
                .map(|scope| {
                    let (block, parent_id) = scope.to_proto();
                    GetBlockSnapshotRequest {
                        block,
                        parent_id,
                        period: days.expression().to_owned(),
                        ..Default::default()
                    }
                })
                .collect();
            let (first_day, last_day) = (days.first_day().to_string(), days.last_day().to_string());
            let mut aggregate = aggregate.clone();
            async move {
                let mut agencies = Vec::new();
                for request in requests {
                    let snapshot = aggregate
                        .get_block_snapshot(govpulse_runtime::telemetry::traced(request))
                        .await
                        .map_err(Error::Aggregate)?
                        .into_inner();
                    agencies.extend(snapshot.agencies);
                }
                Ok::<_, Error>(CountersAt {
                    first_day,
                    last_day,
                    agencies,
                })
            }
        })
        .collect();
    stream::iter(reads)
        .buffered(SNAPSHOTS_IN_FLIGHT)
        .try_collect()
        .await
}

/// What a list shows of `publication`.
fn summary_of(publication: &Publication) -> PublicationSummary {
    let (period, count) = match (&publication.ranking, &publication.block_metrics) {
        (Some(ranking), _) => (ranking.period.clone(), ranking.ranked_count),
        (None, Some(block)) => (
            block.period.clone(),
            u32::try_from(block.agencies.len()).unwrap_or(u32::MAX),
        ),
        (None, None) => (None, 0),
    };
    PublicationSummary {
        publication_id: publication.publication_id.clone(),
        title: publication.title.clone(),
        query: publication.query.clone(),
        period,
        published_at: publication.published_at,
        published_by: publication.published_by.clone(),
        ranked_count: count,
        block_metrics_query: publication.block_metrics_query.clone(),
    }
}

/// The figures of a publication, frozen, before they are kept.
struct Figures {
    query: Option<RankingQuery>,
    ranking: Option<GetRankingResponse>,
    block_metrics_query: Option<GetBlockMetricsRequest>,
    block_metrics: Option<GetBlockMetricsResponse>,
    basis: Vec<CountersAt>,
}

/// A ranking's figures, computed now: every row, the period frozen.
async fn ranking_figures(sources: &Sources<'_>, asked: RankingQuery) -> Result<Figures, Error> {
    match asked.selection {
        Some(ranking_query::Selection::Top(_)) => {
            return Err(Error::invalid(
                "query.top",
                "a publication keeps every row; leave top unset and show the top rows",
            ));
        }
        Some(ranking_query::Selection::Bottom(_)) => {
            return Err(Error::invalid(
                "query.bottom",
                "a publication keeps every row; leave bottom unset and show the bottom rows",
            ));
        }
        None => {}
    }
    let query = Query::parse(Some(asked.clone()), &sources.profiles, sources.catalog)?;
    let (ranking, days) = ranking_now(sources, &query).await?;
    let stretches = publication::stretches(&days, ranking.rows.len());
    let basis = basis(
        sources.aggregate,
        std::slice::from_ref(&query.scope),
        &stretches,
    )
    .await?;
    Ok(Figures {
        query: Some(RankingQuery {
            period: publication::frozen_period(&query.period, &days),
            ..asked
        }),
        ranking: Some(ranking),
        block_metrics_query: None,
        block_metrics: None,
        basis,
    })
}

/// The agencies a block metrics request reads, as the scopes of snapshots.
fn scopes_of(request: &GetBlockMetricsRequest, catalog: &Catalog) -> Result<Vec<Scope>, Error> {
    use govpulse_proto::aggregate::get_block_metrics_request::Scope as Pb;
    match &request.scope {
        Some(Pb::Block(block)) => govpulse_edge::convert::block_from_proto(*block)
            .map(|b| vec![Scope::Block(b)])
            .ok_or_else(|| {
                Error::invalid(
                    "block_metrics.block",
                    "must be BLOCK_MINISTRY or BLOCK_PROVINCE",
                )
            }),
        Some(Pb::ParentId(parent)) => catalog
            .agency_by_str(parent.trim())
            .map(|a| vec![Scope::Children(a.id.clone())])
            .ok_or_else(|| {
                Error::invalid(
                    "block_metrics.parent_id",
                    format!("unknown agency {parent:?}; CatalogService.ListAgencies lists them"),
                )
            }),
        Some(Pb::Nation(true)) => Ok(vec![
            Scope::Block(govpulse_core::Block::Ministry),
            Scope::Block(govpulse_core::Block::Province),
        ]),
        Some(Pb::Nation(false)) | None => Err(Error::invalid(
            "block_metrics.block",
            "set block, parent_id or nation",
        )),
    }
}

/// A block's metrics as aggregate answers them now, for `request`.
async fn block_metrics_now(
    aggregate: &AggregateServiceClient<Channel>,
    request: GetBlockMetricsRequest,
) -> Result<(GetBlockMetricsResponse, Period), Error> {
    let response = aggregate
        .clone()
        .get_block_metrics(govpulse_runtime::telemetry::traced(request))
        .await
        .map_err(|status| match status.code() {
            // aggregate names the field of its own request: here it is one of block_metrics.
            tonic::Code::InvalidArgument => Error::invalid("block_metrics", status.message()),
            _ => Error::Aggregate(status),
        })?
        .into_inner();
    let (_, days) = answered_period(response.period.as_ref(), "block metrics' period")?;
    Ok((response, days))
}

/// A block's metrics, computed now, the period frozen.
async fn block_figures(
    sources: &Sources<'_>,
    asked: GetBlockMetricsRequest,
) -> Result<Figures, Error> {
    if asked.daily_events_days > 0 {
        return Err(Error::invalid(
            "block_metrics.daily_events_days",
            "is not published: leave it 0",
        ));
    }
    let scopes = scopes_of(&asked, sources.catalog)?;
    let (response, days) = block_metrics_now(sources.aggregate, asked.clone()).await?;
    let stretches = publication::stretches(&days, response.agencies.len());
    let basis = basis(sources.aggregate, &scopes, &stretches).await?;
    Ok(Figures {
        query: None,
        ranking: None,
        block_metrics_query: Some(GetBlockMetricsRequest {
            period: publication::frozen_period(&asked.period, &days),
            ..asked
        }),
        block_metrics: Some(response),
        basis,
    })
}

/// Publishes `request` as `published_by`, now: computes the ranking, freezes it with its
/// basis and has aggregate keep it unless the id is taken (then the publication kept is
/// returned when it is this one's retry, and ALREADY_EXISTS otherwise).
pub(crate) async fn publish(
    sources: &Sources<'_>,
    request: PublishRequest,
    published_by: String,
) -> Result<PublishResponse, Error> {
    let id = request.publication_id.trim().to_owned();
    publication::check_publication_id(&id).map_err(|e| Error::invalid("publication_id", e))?;
    publication::check_title(&request.title).map_err(|e| Error::invalid("title", e))?;
    let figures = match (request.query, request.block_metrics) {
        (Some(query), None) => ranking_figures(sources, query).await?,
        (None, Some(block)) => block_figures(sources, block).await?,
        (None, None) => {
            return Err(Error::invalid(
                "query",
                "is required: a ranking's query, or block_metrics",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "block_metrics",
                "set either query (a ranking) or block_metrics, not both",
            ));
        }
    };
    let published_at = OffsetDateTime::now_utc();
    let publication = Publication {
        publication_id: id.clone(),
        title: request.title.trim().to_owned(),
        query: figures.query,
        published_at: govpulse_edge::convert::moment_to_proto(Some(published_at)),
        published_by,
        ranking: figures.ranking,
        basis: figures.basis,
        block_metrics_query: figures.block_metrics_query,
        block_metrics: figures.block_metrics,
    };
    let kept = sources
        .aggregate
        .clone()
        .keep_publication(govpulse_runtime::telemetry::traced(
            KeepPublicationRequest {
                publication_id: id.clone(),
                published_at: publication.published_at,
                publication: publication.encode_to_vec(),
                summary: summary_of(&publication).encode_to_vec(),
            },
        ))
        .await
        .map_err(Error::Aggregate)?
        .into_inner();
    if kept.created {
        return Ok(PublishResponse {
            publication: Some(publication),
            created: true,
        });
    }
    let earlier = decode(&kept.publication)?;
    if earlier.title != publication.title
        || earlier.query != publication.query
        || earlier.block_metrics_query != publication.block_metrics_query
    {
        return Err(Error::AlreadyExists(format!(
            "publication {id} was published before with another title or query; choose another id"
        )));
    }
    Ok(PublishResponse {
        publication: Some(earlier),
        created: false,
    })
}

fn decode(bytes: &[u8]) -> Result<Publication, Error> {
    Publication::decode(bytes).map_err(|e| Error::BadAnswer(format!("a publication: {e}")))
}

/// The publication kept under `id`.
pub(crate) async fn get(
    aggregate: &AggregateServiceClient<Channel>,
    id: &str,
) -> Result<Publication, Error> {
    let id = id.trim();
    publication::check_publication_id(id).map_err(|e| Error::invalid("publication_id", e))?;
    let kept = aggregate
        .clone()
        .get_kept_publication(govpulse_runtime::telemetry::traced(
            GetKeptPublicationRequest {
                publication_id: id.to_owned(),
            },
        ))
        .await
        .map_err(Error::Aggregate)?
        .into_inner();
    decode(&kept.publication)
}

/// A page of the publications, newest first.
pub(crate) async fn list(
    aggregate: &AggregateServiceClient<Channel>,
    offset: u32,
    limit: u32,
) -> Result<ListPublicationsResponse, Error> {
    if limit > 500 {
        return Err(Error::invalid("limit", "is at most 500"));
    }
    let page = aggregate
        .clone()
        .list_kept_publications(govpulse_runtime::telemetry::traced(
            ListKeptPublicationsRequest { offset, limit },
        ))
        .await
        .map_err(Error::Aggregate)?
        .into_inner();
    Ok(ListPublicationsResponse {
        publications: page
            .summaries
            .iter()
            .map(|bytes| {
                PublicationSummary::decode(bytes.as_slice())
                    .map_err(|e| Error::BadAnswer(format!("a publication summary: {e}")))
            })
            .collect::<Result<_, _>>()?,
        total: page.total,
    })
}

/// A row as a revision compares it: its rank and exact value.
fn standing(row: &RankingRow) -> Result<Standing, Error> {
    let agency = AgencyId::parse(&row.agency_id)
        .map_err(|e| Error::BadAnswer(format!("a row's agency: {e}")))?;
    Ok(Standing::of(
        agency,
        row.rank,
        row.rate.as_ref().map(|r| (r.numerator, r.denominator)),
        &row.score,
    ))
}

fn standings(rows: &[RankingRow]) -> Result<Vec<Standing>, Error> {
    rows.iter().map(standing).collect()
}

/// A basis as the core compares it.
fn stretches_of(basis: &[CountersAt]) -> Result<Vec<Stretch>, Error> {
    basis
        .iter()
        .map(|at| {
            let days = answered_days(&at.first_day, &at.last_day, "a basis day")?;
            let counters = at
                .agencies
                .iter()
                .filter_map(|a| {
                    let agency = AgencyId::parse(&a.agency_id).ok()?;
                    Some((agency, counters_from_proto(&a.counters.unwrap_or_default())))
                })
                .collect::<HashMap<_, _>>();
            Ok(Stretch { days, counters })
        })
        .collect()
}

/// A block metric row as a ranking row (rank 0): what a revision shows of it.
fn metric_row(metric: &AgencyMetric) -> RankingRow {
    RankingRow {
        agency_id: metric.agency_id.clone(),
        agency_name: metric.agency_name.clone(),
        rate: metric.rate.clone(),
        freshness: metric.freshness,
        ..Default::default()
    }
}

/// A publication's rows beside the same figures now.
struct Compared {
    /// The rows as published.
    published: Vec<RankingRow>,
    /// The rows now.
    now: Vec<RankingRow>,
    /// The agencies of the basis.
    scopes: Vec<Scope>,
    /// The ranking now (a ranking's publication).
    ranking: Option<GetRankingResponse>,
    /// The block's metrics now (a block metrics publication).
    block_metrics: Option<GetBlockMetricsResponse>,
    /// The pooled figure differs now from as published (a block metrics publication).
    summary_revised: bool,
}

/// What no longer reads in a kept publication is a precondition that fails, not a caller's
/// bad argument.
fn no_longer_reads(error: Error) -> Error {
    match error {
        Error::InvalidArgument(Invalid { field, reason }) => Error::Precondition(format!(
            "the publication's {field} no longer reads: {reason}"
        )),
        other => other,
    }
}

/// The figures of `kept` computed again now.
async fn compare(sources: &Sources<'_>, kept: &Publication) -> Result<Compared, Error> {
    if let Some(asked) = &kept.block_metrics_query {
        let scopes = scopes_of(asked, sources.catalog).map_err(no_longer_reads)?;
        let (now, _) = block_metrics_now(sources.aggregate, asked.clone())
            .await
            .map_err(no_longer_reads)?;
        let then = kept.block_metrics.clone().unwrap_or_default();
        let pooled =
            |r: &GetBlockMetricsResponse| r.summary.as_ref().and_then(|s| s.pooled.clone());
        return Ok(Compared {
            published: then.agencies.iter().map(metric_row).collect(),
            now: now.agencies.iter().map(metric_row).collect(),
            scopes,
            ranking: None,
            summary_revised: pooled(&then) != pooled(&now),
            block_metrics: Some(now),
        });
    }
    let query = Query::parse(kept.query.clone(), &sources.profiles, sources.catalog)
        .map_err(no_longer_reads)?;
    let (now, _) = ranking_now(sources, &query).await?;
    Ok(Compared {
        published: kept
            .ranking
            .as_ref()
            .map(|r| r.rows.clone())
            .unwrap_or_default(),
        now: now.rows.clone(),
        scopes: vec![query.scope],
        ranking: Some(now),
        block_metrics: None,
        summary_revised: false,
    })
}

/// Why each revised agency moved: the stretches of the basis whose counters for it changed.
async fn causes_of(
    sources: &Sources<'_>,
    kept: &Publication,
    scopes: &[Scope],
    revised: &[publication::Revision],
) -> Result<HashMap<AgencyId, Vec<RevisionCause>>, Error> {
    let mut causes_by_agency = HashMap::new();
    if revised.is_empty() || kept.basis.is_empty() {
        return Ok(causes_by_agency);
    }
    let then = stretches_of(&kept.basis)?;
    let days: Vec<Period> = then.iter().map(|s| s.days.clone()).collect();
    let current = stretches_of(&basis(sources.aggregate, scopes, &days).await?)?;
    let published_at = moment_from_proto(kept.published_at.as_ref())
        .map_err(|e| Error::BadAnswer(format!("a publication's time: {e}")))?
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let published_day = vietnam_day(published_at);
    for revision in revised {
        let causes = publication::causes(&revision.agency, &then, &current, published_day)
            .into_iter()
            .map(|cause| RevisionCause {
                first_day: cause.days.first_day().to_string(),
                last_day: cause.days.last_day().to_string(),
                late: cause.late,
                events: cause.events,
                withdrawals: cause.withdrawals,
                corrections: cause.corrections,
                counters: cause
                    .counters
                    .into_iter()
                    .map(|(counter, published, now)| CounterRevision {
                        counter: counter.to_owned(),
                        published,
                        now,
                    })
                    .collect(),
            })
            .collect();
        causes_by_agency.insert(revision.agency.clone(), causes);
    }
    Ok(causes_by_agency)
}

/// The revision log of the publication kept under `id`, computed now.
pub(crate) async fn revisions(
    sources: &Sources<'_>,
    id: &str,
) -> Result<GetRevisionsResponse, Error> {
    let kept = get(sources.aggregate, id).await?;
    let compared = compare(sources, &kept).await?;
    let (revised, unchanged) =
        publication::revisions(&standings(&compared.published)?, &standings(&compared.now)?);
    let mut causes = causes_of(sources, &kept, &compared.scopes, &revised).await?;
    let rows = revised
        .into_iter()
        .map(|revision| {
            let published = revision.published.map(|i| compared.published[i].clone());
            let current = revision.now.map(|i| compared.now[i].clone());
            let agency_name = current
                .as_ref()
                .or(published.as_ref())
                .map(|r| r.agency_name.clone())
                .unwrap_or_default();
            RowRevision {
                agency_id: revision.agency.to_string(),
                agency_name,
                published,
                now: current,
                places_gained: revision.places_gained,
                causes: causes.remove(&revision.agency).unwrap_or_default(),
            }
        })
        .collect();
    Ok(GetRevisionsResponse {
        publication: Some(summary_of(&kept)),
        revised_at: govpulse_edge::convert::moment_to_proto(Some(OffsetDateTime::now_utc())),
        now: compared.ranking,
        rows,
        unchanged: u32::try_from(unchanged).unwrap_or(u32::MAX),
        block_metrics_now: compared.block_metrics,
        summary_revised: compared.summary_revised,
    })
}

/// How long a replica trusts its list of publications before reading it again: another
/// replica's publication is seen within this, this replica's own at once.
const LATEST_FRESH_FOR: Duration = Duration::from_secs(30);

/// The most publications a replica looks through, newest first, for the latest of each
/// ranking.
const LATEST_SCAN: u32 = 5_000;

/// How long a ranking waits for the publications list or a publication: past it the ranking
/// goes out unmarked (its flags follow at a later computation), so a slow aggregate never
/// holds every ranking behind the list's lock.
const LATEST_WAIT: Duration = Duration::from_secs(2);

/// A publication as live rankings compare with it: what a ranking message says of it, and
/// its rows' standings. Equal when the ids are (a publication never changes).
#[derive(Debug)]
pub struct Frozen {
    /// What a ranking message shows of it.
    pub summary: PublicationSummary,
    /// Each published row's standing, by agency.
    pub standings: HashMap<AgencyId, Standing>,
}

impl PartialEq for Frozen {
    fn eq(&self, other: &Self) -> bool {
        self.summary.publication_id == other.summary.publication_id
    }
}

impl Eq for Frozen {}

/// What makes two rankings the same ranking: the measure (a metric, an index or a group of
/// its criteria, by name), the agencies ranked, and the days.
type RankingKey = (String, Scope, time::Date, time::Date);

fn key_of(query: &Query, days: &Period) -> RankingKey {
    let measure = match &query.measure {
        Measure::Metric(metric) => metric.name().to_owned(),
        Measure::Index(profile) => profile.name.clone(),
    };
    (
        measure,
        query.scope.clone(),
        days.first_day(),
        days.last_day(),
    )
}

/// The latest publication of each ranking, as this replica knows them.
#[derive(Debug, Default)]
struct LatestState {
    /// When the list was last read.
    read_at: Option<Instant>,
    /// The id of the latest publication of each ranking.
    by_ranking: HashMap<RankingKey, String>,
    /// Those publications, read when a ranking first needed them (never changed, so never
    /// read again); only the latest of some ranking are kept.
    frozen: HashMap<String, Arc<Frozen>>,
}

/// The latest publication of each ranking, for marking rows revised: the list of
/// publications read from aggregate at most every 30 s (newest first, the first of each
/// ranking wins), and each latest publication read once when a ranking needs it.
#[derive(Debug, Clone)]
pub struct Latest {
    aggregate: AggregateServiceClient<Channel>,
    catalog: Arc<Catalog>,
    profiles: LiveProfiles,
    state: Arc<tokio::sync::Mutex<LatestState>>,
}

impl Latest {
    /// Publications kept by `aggregate`, their queries read against `catalog` and `profiles`.
    pub fn new(
        aggregate: AggregateServiceClient<Channel>,
        catalog: Arc<Catalog>,
        profiles: LiveProfiles,
    ) -> Self {
        Self {
            aggregate,
            catalog,
            profiles,
            state: Arc::default(),
        }
    }

    /// The ranking a publication (or its summary) is of, when its query still reads.
    fn key_of_summary(&self, summary: &PublicationSummary) -> Option<RankingKey> {
        let query =
            Query::parse(summary.query.clone(), &self.profiles.get(), &self.catalog).ok()?;
        let period = summary.period.as_ref()?;
        let days = Period::from_days(
            parse_day(&period.first_day).ok()?,
            parse_day(&period.last_day).ok()?,
        );
        Some(key_of(&query, &days))
    }

    /// Reads the list again: the first (newest) publication of each ranking.
    async fn refresh(&self, state: &mut LatestState) -> Result<(), Error> {
        let mut by_ranking = HashMap::new();
        let mut offset = 0;
        while offset < LATEST_SCAN {
            let page = list(&self.aggregate, offset, 500).await?;
            let read = u32::try_from(page.publications.len()).unwrap_or(u32::MAX);
            for summary in &page.publications {
                if let Some(key) = self.key_of_summary(summary) {
                    by_ranking
                        .entry(key)
                        .or_insert_with(|| summary.publication_id.clone());
                }
            }
            offset = offset.saturating_add(read);
            if read == 0 || offset >= page.total {
                break;
            }
        }
        state
            .frozen
            .retain(|id, _| by_ranking.values().any(|latest| latest == id));
        state.by_ranking = by_ranking;
        Ok(())
    }

    /// The latest publication of `query` over `days`, if any.
    async fn of(&self, query: &Query, days: &Period) -> Option<Arc<Frozen>> {
        let mut state = self.state.lock().await;
        if state
            .read_at
            .is_none_or(|at| at.elapsed() >= LATEST_FRESH_FOR)
        {
            // Read again at the next turn either way: an unreachable aggregate is asked
            // again in 30 s, not on every ranking.
            state.read_at = Some(Instant::now());
            match tokio::time::timeout(LATEST_WAIT, self.refresh(&mut state)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    warn!(%error, "the publications list could not be read; revised flags may be late");
                }
                Err(_) => warn!("the publications list took too long; revised flags may be late"),
            }
        }
        let id = state.by_ranking.get(&key_of(query, days))?.clone();
        if let Some(frozen) = state.frozen.get(&id) {
            return Some(frozen.clone());
        }
        match tokio::time::timeout(LATEST_WAIT, get(&self.aggregate, &id))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Aggregate(tonic::Status::deadline_exceeded(
                    "reading a publication took too long",
                )))
            }) {
            Ok(publication) => {
                let frozen = Arc::new(frozen_of(&publication)?);
                state.frozen.insert(id, frozen.clone());
                Some(frozen)
            }
            Err(error) => {
                warn!(%error, id, "a publication could not be read; its rankings are not marked");
                None
            }
        }
    }

    /// Notes a publication this replica just made: its rankings compare with it at once.
    pub async fn note(&self, publication: &Publication) {
        let summary = summary_of(publication);
        let (Some(key), Some(frozen)) = (self.key_of_summary(&summary), frozen_of(publication))
        else {
            return;
        };
        let mut state = self.state.lock().await;
        state
            .by_ranking
            .insert(key, publication.publication_id.clone());
        state
            .frozen
            .insert(publication.publication_id.clone(), Arc::new(frozen));
    }

    /// Marks `ranking`'s rows revised against the latest publication of `query` over its
    /// days, and names that publication.
    pub async fn mark(&self, query: &Query, ranking: &mut Ranking) {
        ranking.publication = self.of(query, &ranking.days).await;
        if let Some(frozen) = &ranking.publication {
            publication::mark_revised(&mut ranking.rows, &frozen.standings);
        }
    }
}

/// A publication as rankings compare with it.
fn frozen_of(publication: &Publication) -> Option<Frozen> {
    let rows = &publication.ranking.as_ref()?.rows;
    let standings = rows
        .iter()
        .filter_map(|row| standing(row).ok())
        .map(|s| (s.agency.clone(), s))
        .collect();
    Some(Frozen {
        summary: summary_of(publication),
        standings,
    })
}
