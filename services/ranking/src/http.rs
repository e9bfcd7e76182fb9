//! The read API over HTTP on ranking's port, for browsers and clients without gRPC: each
//! route builds the request message from the query string and calls the same
//! `RankingService` or `CatalogService` implementation the gRPC routes call, under the same
//! reader check; answers are protobuf JSON, CSV on request, and Server-Sent Events for the
//! live ranking. docs/INTEGRATION.md lists the routes.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use govpulse_edge::auth::Authenticator;
use govpulse_edge::catalog_service::CatalogApi;
use govpulse_edge::convert::{bad_request, block_to_proto, moment_rfc3339};
use govpulse_edge::http_json::{
    ApiError, Params, cross_origin_reads, csv_or_json, grpc_request, status_json, wants_csv, within,
};
use govpulse_proto::{
    aggregate::{
        Change, Freshness, GetBlockMetricsRequest, GetBlockMetricsResponse, GetMetricsRequest,
        GetMetricsResponse, GetProcedureMetricsRequest, GetProcedureMetricsResponse, PeriodRange,
        Rate, TargetStanding, get_block_metrics_request::Scope,
    },
    catalog::{
        Block, ListAgenciesRequest, ListAgenciesResponse, catalog_service_server::CatalogService,
    },
    ranking::{
        AlertState, GetAlertsRequest, GetAlertsResponse, GetRankingRequest, GetRankingResponse,
        RankingQuery, WatchAlertsRequest, WatchRankingRequest, ranking_query::Selection,
        ranking_service_server::RankingService,
    },
};
use tokio_stream::StreamExt;
use tonic::Status;

use crate::{RankingApi, check_reader};

mod publications;

/// SSE comment lines keep idle connections (and the proxies on their way) open at least
/// this often, whatever the ranking's own heartbeat.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// What the routes call.
#[derive(Debug, Clone)]
struct Http {
    api: RankingApi,
    catalog: CatalogApi,
    /// Who may read, when reading is not public (the gRPC routes' interceptor checks the same).
    readers: Option<Arc<Authenticator>>,
}

/// The HTTP routes, to merge with the gRPC services on ranking's port.
pub(crate) fn router(
    api: RankingApi,
    catalog: CatalogApi,
    readers: Option<Arc<Authenticator>>,
) -> Router {
    let routes = Router::new()
        .route("/api/v1/ranking", get(ranking))
        .route("/api/v1/ranking/watch", get(watch))
        .route("/api/v1/metrics", get(metrics))
        .route("/api/v1/block-metrics", get(block_metrics))
        .route("/api/v1/procedure-metrics", get(procedure_metrics))
        .route("/api/v1/agencies", get(agencies))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/watch", get(watch_alerts))
        .route(
            "/api/v1/publications",
            get(publications::list).post(publications::publish),
        )
        .route("/api/v1/publications/{id}", get(publications::one))
        .route(
            "/api/v1/publications/{id}/revisions",
            get(publications::revisions),
        )
        .with_state(Http {
            api,
            catalog,
            readers,
        });
    // Dashboards and portals on other sites read the published figures from browsers.
    cross_origin_reads(routes)
}

impl Http {
    /// The gRPC request for `message`, from a caller allowed to read.
    fn reader_request<M>(
        &self,
        parts: Parts,
        message: M,
    ) -> Result<(tonic::Request<M>, Option<Duration>), Status> {
        let (request, deadline) = grpc_request(parts, message)?;
        if let Some(auth) = &self.readers {
            check_reader(auth, &request)?;
        }
        Ok((request, deadline))
    }
}

const QUERY_PARAMS: [&str; 7] = [
    "metric",
    "block",
    "period",
    "top",
    "bottom",
    "index",
    "criterion",
];

/// `GET /api/v1/ranking`: GetRanking.
async fn ranking(State(http): State<Http>, request: Request) -> Result<Response, ApiError> {
    let (parts, params, csv) = read_route(request, &[&QUERY_PARAMS[..], &["parent_id"]].concat())?;
    let query = ranking_query(&params)?;
    let filename = format!(
        "ranking-{}-{}-{}.csv",
        if query.index.is_empty() {
            &query.metric
        } else {
            &query.index
        },
        if query.parent_id.is_empty() {
            Block::try_from(query.block)
                .map(|b| b.as_str_name().trim_start_matches("BLOCK_").to_lowercase())
                .unwrap_or_default()
        } else {
            query.parent_id.clone()
        },
        query.period
    );
    let (request, deadline) =
        http.reader_request(parts, GetRankingRequest { query: Some(query) })?;
    let response = within(deadline, http.api.get_ranking(request)).await?;
    Ok(csv_or_json(csv, &filename, &response, ranking_csv))
}

/// `GET /api/v1/ranking/watch`: WatchRanking as Server-Sent Events, one event per stream
/// message, its revision as the event id; `Last-Event-ID` (sent by EventSource when it
/// reconnects) resumes like `resume_revision`.
async fn watch(State(http): State<Http>, request: Request) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let params = Params::parse(
        &parts.uri,
        &[&QUERY_PARAMS[..], &["parent_id", "resume_revision"]].concat(),
    )?;
    let query = ranking_query(&params)?;
    let resume_revision = resume_revision(&parts.headers, &params)?;
    let (request, deadline) = http.reader_request(
        parts,
        WatchRankingRequest {
            query: Some(query),
            resume_revision,
        },
    )?;
    let stream = within(deadline, http.api.watch_ranking(request)).await?;
    Ok(server_sent_events(stream, |m| m.revision))
}

/// A read route's request taken apart: its head, its query parameters (`names`, then
/// `format`; any other is INVALID_ARGUMENT) and whether it asks for CSV (`format=csv`, or
/// `Accept: text/csv` without a `format`).
fn read_route(request: Request, names: &[&str]) -> Result<(Parts, Params, bool), Status> {
    let (parts, _) = request.into_parts();
    let params = Params::parse(&parts.uri, &[names, &["format"]].concat())?;
    let csv = wants_csv(&parts.headers, params.one("format")?)?;
    Ok((parts, params, csv))
}

/// A live stream as Server-Sent Events: one event per message, its revision as the event
/// id (what `Last-Event-ID` resumes from).
fn server_sent_events<M: serde::Serialize + Send + 'static>(
    stream: impl tokio_stream::Stream<Item = Result<M, Status>> + Send + 'static,
    revision: fn(&M) -> u64,
) -> Response {
    let events = stream.map(move |message| {
        Ok::<_, Infallible>(match message {
            Ok(message) => Event::default()
                .id(revision(&message).to_string())
                .data(serde_json::to_string(&message).unwrap_or_default()),
            // The stream's end (the service shutting down): say why, then close; EventSource
            // reconnects by itself with Last-Event-ID.
            Err(status) => Event::default().event("status").data(status_json(&status)),
        })
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
        .into_response()
}

/// The resume revision of a live stream's HTTP request: `Last-Event-ID` (sent by
/// EventSource when it reconnects), else `resume_revision`, else 0.
fn resume_revision(headers: &HeaderMap, params: &Params) -> Result<u64, Status> {
    Ok(match last_event_id(headers)? {
        Some(revision) => revision,
        None => params.number("resume_revision")?.unwrap_or(0),
    })
}

/// `GET /api/v1/alerts`: GetAlerts, JSON or CSV (one row per alert).
async fn alerts(State(http): State<Http>, request: Request) -> Result<Response, ApiError> {
    let (parts, _, csv) = read_route(request, &[])?;
    let (request, deadline) = http.reader_request(parts, GetAlertsRequest {})?;
    let response = within(deadline, http.api.get_alerts(request)).await?;
    Ok(csv_or_json(csv, "alerts.csv", &response, alerts_csv))
}

/// `GET /api/v1/alerts/watch`: WatchAlerts as Server-Sent Events, resumed like the live
/// ranking's.
async fn watch_alerts(State(http): State<Http>, request: Request) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let params = Params::parse(&parts.uri, &["resume_revision"])?;
    let resume_revision = resume_revision(&parts.headers, &params)?;
    let (request, deadline) = http.reader_request(parts, WatchAlertsRequest { resume_revision })?;
    let stream = within(deadline, http.api.watch_alerts(request)).await?;
    Ok(server_sent_events(stream, |m| m.revision))
}

fn alerts_csv(response: &GetAlertsResponse) -> Table {
    let header = [
        "rule",
        "kind",
        "severity",
        "agency_id",
        "agency_name",
        "state",
        "active_since",
        "firing_since",
        "summary",
        "figures",
    ]
    .to_vec();
    let rows = response
        .alerts
        .iter()
        .map(|a| {
            vec![
                a.rule.clone(),
                a.kind.clone(),
                a.severity.clone(),
                a.agency_id.clone(),
                a.agency_name.clone(),
                AlertState::try_from(a.state)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("ALERT_STATE_")
                            .to_lowercase()
                    })
                    .unwrap_or_default(),
                moment_rfc3339(a.active_since.as_ref()),
                moment_rfc3339(a.firing_since.as_ref()),
                a.summary.clone(),
                a.figures
                    .iter()
                    .map(|f| format!("{}={}", f.name, f.value))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    (header, rows)
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, Status> {
    headers
        .get("last-event-id")
        .map(|raw| {
            raw.to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    bad_request(
                        "Last-Event-ID",
                        "must be the revision of a message of this stream",
                    )
                })
        })
        .transpose()
}

/// `GET /api/v1/metrics`: GetMetrics.
async fn metrics(State(http): State<Http>, request: Request) -> Result<Response, ApiError> {
    let (parts, params, csv) =
        read_route(request, &["agency_id", "period", "metric", "compare_to"])?;
    let message = GetMetricsRequest {
        agency_id: params.text("agency_id")?,
        period: params.text("period")?,
        metrics: params.all("metric"),
        compare_to: params.text("compare_to")?,
    };
    let filename = format!("metrics-{}-{}.csv", message.agency_id, message.period);
    let (request, deadline) = http.reader_request(parts, message)?;
    let response = within(deadline, http.api.get_metrics(request)).await?;
    Ok(csv_or_json(csv, &filename, &response, metrics_csv))
}

/// `GET /api/v1/block-metrics`: GetBlockMetrics, for a `block`, a `parent_id` or the
/// `nation`.
async fn block_metrics(State(http): State<Http>, request: Request) -> Result<Response, ApiError> {
    let (parts, params, csv) = read_route(
        request,
        &[
            "block",
            "parent_id",
            "nation",
            "metric",
            "period",
            "compare_to",
            "daily_events_days",
        ],
    )?;
    let block = params.one("block")?.map(parse_block).transpose()?;
    let parent = params.one("parent_id")?;
    let nation = params.flag("nation")?.unwrap_or(false);
    let scope = match (block, parent, nation) {
        (Some(block), None, false) => Some(Scope::Block(block)),
        (None, Some(parent), false) => Some(Scope::ParentId(parent.to_owned())),
        (None, None, true) => Some(Scope::Nation(true)),
        // None: GetBlockMetrics itself says a scope is required.
        (None, None, false) => None,
        _ => {
            return Err(bad_request("scope", "set one of block, parent_id and nation=true").into());
        }
    };
    let scope_name = match &scope {
        Some(Scope::Block(block)) => Block::try_from(*block)
            .map(|b| b.as_str_name().trim_start_matches("BLOCK_").to_lowercase())
            .unwrap_or_default(),
        Some(Scope::ParentId(parent)) => parent.clone(),
        Some(Scope::Nation(_)) => "nation".to_owned(),
        None => String::new(),
    };
    let message = GetBlockMetricsRequest {
        scope,
        metric: params.text("metric")?,
        period: params.text("period")?,
        compare_to: params.text("compare_to")?,
        daily_events_days: params.number("daily_events_days")?.unwrap_or(0),
    };
    let filename = format!(
        "block-metrics-{}-{scope_name}-{}.csv",
        message.metric, message.period
    );
    let metric = message.metric.clone();
    let (request, deadline) = http.reader_request(parts, message)?;
    let response = within(deadline, http.api.get_block_metrics(request)).await?;
    Ok(csv_or_json(csv, &filename, &response, |r| {
        block_metrics_csv(&metric, r)
    }))
}

/// `GET /api/v1/procedure-metrics`: GetProcedureMetrics, one agency's metric per procedure.
async fn procedure_metrics(
    State(http): State<Http>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, params, csv) = read_route(request, &["agency_id", "period", "metric", "top"])?;
    let message = GetProcedureMetricsRequest {
        agency_id: params.text("agency_id")?,
        period: params.text("period")?,
        metric: params.text("metric")?,
        top: params.number("top")?.unwrap_or(0),
    };
    let filename = format!(
        "procedure-metrics-{}-{}-{}.csv",
        message.agency_id, message.metric, message.period
    );
    let (request, deadline) = http.reader_request(parts, message)?;
    let response = within(deadline, http.api.get_procedure_metrics(request)).await?;
    Ok(csv_or_json(
        csv,
        &filename,
        &response,
        procedure_metrics_csv,
    ))
}

/// `GET /api/v1/agencies`: the catalog's ListAgencies (public, as over gRPC).
async fn agencies(State(http): State<Http>, request: Request) -> Result<Response, ApiError> {
    let (parts, params, csv) = read_route(request, &["block", "parent_id"])?;
    let message = ListAgenciesRequest {
        block: params
            .one("block")?
            .map(parse_block)
            .transpose()?
            .unwrap_or(0),
        parent_id: params.text("parent_id")?,
    };
    let (request, deadline) = grpc_request(parts, message)?;
    let response = within(deadline, http.catalog.list_agencies(request)).await?;
    Ok(csv_or_json(csv, "agencies.csv", &response, agencies_csv))
}

/// The query of a ranking from the parameters. Only their form is checked here (numbers,
/// block names, top or bottom); what they mean is checked by the service, as over gRPC.
fn ranking_query(params: &Params) -> Result<RankingQuery, Status> {
    let selection = match (params.number("top")?, params.number("bottom")?) {
        (Some(_), Some(_)) => return Err(bad_request("bottom", "set top or bottom, not both")),
        (Some(top), None) => Some(Selection::Top(top)),
        (None, Some(bottom)) => Some(Selection::Bottom(bottom)),
        (None, None) => None,
    };
    Ok(RankingQuery {
        metric: params.text("metric")?,
        block: params
            .one("block")?
            .map(parse_block)
            .transpose()?
            .unwrap_or(0),
        period: params.text("period")?,
        selection,
        index: params.text("index")?,
        parent_id: params.text("parent_id")?,
        criteria: params.all("criterion"),
    })
}

/// `provinces`, `province` (as [`govpulse_core::Block::parse`] reads them everywhere else) or
/// the proto's `BLOCK_PROVINCE`, and the same for ministries, in any case.
fn parse_block(raw: &str) -> Result<i32, Status> {
    govpulse_core::Block::parse(raw)
        .map(block_to_proto)
        .or_else(|| {
            Block::from_str_name(&raw.trim().to_ascii_uppercase())
                .filter(|b| *b != Block::Unspecified)
        })
        .map(Into::into)
        .ok_or_else(|| {
            bad_request(
                "block",
                &format!("{raw:?} is not a block; use provinces or ministries"),
            )
        })
}

type Table = (Vec<&'static str>, Vec<Vec<String>>);

fn rate_cells(rate: Option<&Rate>) -> [String; 3] {
    match rate {
        Some(rate) => [
            rate.percent.clone(),
            rate.numerator.to_string(),
            rate.denominator.to_string(),
        ],
        None => Default::default(),
    }
}

fn target_cells(target: Option<&TargetStanding>) -> [String; 3] {
    match target {
        Some(target) => [
            target.target_percent.clone(),
            target.met.map(|m| m.to_string()).unwrap_or_default(),
            target.gap_points.clone(),
        ],
        None => Default::default(),
    }
}

/// One line per row, as GetRanking gives them: rank and movement, the agency, its value
/// (the percent and its exact fraction) or score and grade, and each indicator's points.
fn ranking_csv(response: &GetRankingResponse) -> (Vec<String>, Vec<Vec<String>>) {
    let criteria: Vec<String> = response
        .rows
        .iter()
        .find(|r| !r.indicators.is_empty())
        .map(|r| r.indicators.iter().map(|i| i.criterion.clone()).collect())
        .unwrap_or_default();
    let mut header: Vec<String> = [
        "rank",
        "previous_period_rank",
        "places_gained",
        "agency_id",
        "agency_name",
        "percent",
        "numerator",
        "denominator",
        "below_minimum_volume",
        "min_volume",
        "score",
        "max_score",
        "grade",
        "incomplete",
        "stale",
        "last_accepted_at",
    ]
    .map(str::to_owned)
    .to_vec();
    header.extend(criteria.iter().map(|c| format!("points_{c}")));
    let rows = response
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                row.rank.to_string(),
                row.previous_period_rank.to_string(),
                row.places_gained.to_string(),
                row.agency_id.clone(),
                row.agency_name.clone(),
            ];
            cells.extend(rate_cells(row.rate.as_ref()));
            cells.extend([
                row.below_minimum_volume.to_string(),
                response.min_volume.to_string(),
                row.score.clone(),
                response.max_score.clone(),
                row.grade.clone(),
                row.incomplete.to_string(),
                row.freshness.as_ref().is_some_and(|f| f.stale).to_string(),
                moment_rfc3339(
                    row.freshness
                        .as_ref()
                        .and_then(|f| f.last_accepted_at.as_ref()),
                ),
            ]);
            cells.extend(criteria.iter().map(|c| {
                row.indicators
                    .iter()
                    .find(|i| &i.criterion == c)
                    .map(|i| i.points.clone())
                    .unwrap_or_default()
            }));
            cells
        })
        .collect();
    (header, rows)
}

const METRIC_COLUMNS: [&str; 24] = [
    "agency_id",
    "agency_name",
    "period",
    "first_day",
    "last_day",
    "metric",
    "percent",
    "numerator",
    "denominator",
    "same_period_last_year_percent",
    "previous_period_percent",
    "change_from_last_year_points",
    "change_from_previous_period_points",
    "target_percent",
    "target_met",
    "target_gap_points",
    "merged_from",
    "base_period",
    "base_percent",
    "change_from_base_ratio",
    "change_from_base_points",
    "provisional",
    "stale",
    "last_accepted_at",
];

/// The cells of METRIC_COLUMNS for one agency and metric.
struct MetricLine<'a> {
    agency: (&'a str, &'a str),
    period: &'a PeriodRange,
    metric: &'a str,
    rate: Option<&'a Rate>,
    last_year: Option<&'a Rate>,
    previous: Option<&'a Rate>,
    change_from_last_year: Option<&'a Change>,
    change_from_previous: Option<&'a Change>,
    target: Option<&'a TargetStanding>,
    merged_from: &'a [String],
    base_period: Option<&'a PeriodRange>,
    base: Option<&'a Rate>,
    change_from_base: Option<&'a Change>,
    /// The period includes today.
    provisional: bool,
    freshness: Option<&'a Freshness>,
}

impl MetricLine<'_> {
    fn cells(&self) -> Vec<String> {
        let percent = |rate: Option<&Rate>| rate.map(|r| r.percent.clone()).unwrap_or_default();
        let points = |change: Option<&Change>| change.map(|c| c.points.clone()).unwrap_or_default();
        let mut cells = vec![
            self.agency.0.to_owned(),
            self.agency.1.to_owned(),
            self.period.expression.clone(),
            self.period.first_day.clone(),
            self.period.last_day.clone(),
            self.metric.to_owned(),
        ];
        cells.extend(rate_cells(self.rate));
        cells.extend([
            percent(self.last_year),
            percent(self.previous),
            points(self.change_from_last_year),
            points(self.change_from_previous),
        ]);
        cells.extend(target_cells(self.target));
        cells.push(self.merged_from.join(" "));
        cells.extend([
            self.base_period
                .map(|p| p.expression.clone())
                .unwrap_or_default(),
            percent(self.base),
            self.change_from_base
                .map(|c| c.ratio.clone())
                .unwrap_or_default(),
            points(self.change_from_base),
        ]);
        cells.extend([
            self.provisional.to_string(),
            self.freshness.is_some_and(|f| f.stale).to_string(),
            moment_rfc3339(self.freshness.and_then(|f| f.last_accepted_at.as_ref())),
        ]);
        cells
    }
}

/// One line per metric of the agency.
fn metrics_csv(response: &GetMetricsResponse) -> Table {
    let (id, name) = response
        .agency
        .as_ref()
        .map(|a| (a.id.as_str(), a.name.as_str()))
        .unwrap_or_default();
    let period = response.period.clone().unwrap_or_default();
    let rows = response
        .metrics
        .iter()
        .map(|report| {
            MetricLine {
                agency: (id, name),
                period: &period,
                metric: &report.metric,
                rate: report.rate.as_ref(),
                last_year: report.same_period_last_year.as_ref(),
                previous: report.previous_period.as_ref(),
                change_from_last_year: report.change_from_last_year.as_ref(),
                change_from_previous: report.change_from_previous_period.as_ref(),
                target: report.target.as_ref(),
                merged_from: &response.merged_from,
                base_period: response.base_period.as_ref(),
                base: report.base.as_ref(),
                change_from_base: report.change_from_base.as_ref(),
                provisional: response.provisional,
                freshness: response.freshness.as_ref(),
            }
            .cells()
        })
        .collect();
    (METRIC_COLUMNS.to_vec(), rows)
}

/// One line per agency, for the one metric asked for (GetBlockMetrics gives no previous
/// period: those columns stay empty).
fn block_metrics_csv(metric: &str, response: &GetBlockMetricsResponse) -> Table {
    let period = response.period.clone().unwrap_or_default();
    let rows = response
        .agencies
        .iter()
        .map(|agency| {
            MetricLine {
                agency: (&agency.agency_id, &agency.agency_name),
                period: &period,
                metric,
                rate: agency.rate.as_ref(),
                last_year: agency.same_period_last_year.as_ref(),
                previous: None,
                change_from_last_year: agency.change_from_last_year.as_ref(),
                change_from_previous: None,
                target: agency.target.as_ref(),
                merged_from: &agency.merged_from,
                base_period: response.base_period.as_ref(),
                base: agency.base.as_ref(),
                change_from_base: agency.change_from_base.as_ref(),
                provisional: response.provisional,
                freshness: agency.freshness.as_ref(),
            }
            .cells()
        })
        .collect();
    (METRIC_COLUMNS.to_vec(), rows)
}

/// One line per procedure: the ranked ones best first, then those without data.
fn procedure_metrics_csv(response: &GetProcedureMetricsResponse) -> Table {
    let period = response.period.clone().unwrap_or_default();
    let agency = response.agency.clone().unwrap_or_default();
    let rows = response
        .procedures
        .iter()
        .chain(&response.no_data)
        .map(|line| {
            let [percent, _, _] = rate_cells(line.rate.as_ref());
            vec![
                agency.id.clone(),
                line.procedure_id.clone(),
                line.procedure_name.clone(),
                period.expression.clone(),
                response.metric.clone(),
                if line.rank == 0 {
                    String::new()
                } else {
                    line.rank.to_string()
                },
                percent,
                line.numerator.to_string(),
                line.denominator.to_string(),
                response.provisional.to_string(),
            ]
        })
        .collect();
    (
        vec![
            "agency_id",
            "procedure_id",
            "procedure_name",
            "period",
            "metric",
            "rank",
            "percent",
            "numerator",
            "denominator",
            "provisional",
        ],
        rows,
    )
}

fn agencies_csv(response: &ListAgenciesResponse) -> Table {
    let rows = response
        .agencies
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.name.clone(),
                Block::try_from(a.block)
                    .map(|b| b.as_str_name().to_owned())
                    .unwrap_or_default(),
                a.parent_id.clone(),
                a.code.clone(),
            ]
        })
        .collect();
    (vec!["id", "name", "block", "parent_id", "code"], rows)
}
