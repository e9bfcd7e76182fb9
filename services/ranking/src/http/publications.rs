//! The publication routes: `POST /api/v1/publications` (Publish, protobuf JSON body),
//! `GET /api/v1/publications` (ListPublications), `GET /api/v1/publications/{id}`
//! (GetPublication) and `GET /api/v1/publications/{id}/revisions` (GetRevisions); the reads
//! in CSV on request.

use axum::{
    extract::{Path, Request, State},
    response::Response,
};
use govpulse_edge::convert::{cause_counters, cause_days, moment_rfc3339};
use govpulse_edge::http_json::{
    ApiError, csv_or_json, decode_json, json_body, json_response, within,
};
use govpulse_proto::ranking::{
    GetPublicationRequest, GetRevisionsRequest, GetRevisionsResponse, ListPublicationsRequest,
    ListPublicationsResponse, PublishRequest, RankingRow, ranking_service_server::RankingService,
};

use super::{Http, block_metrics_csv, ranking_csv, read_route};
use crate::RankingApi;

/// The largest Publish body: an id, a title and a query.
const MAX_PUBLISH_BODY: usize = 16 * 1024;

/// `POST /api/v1/publications`: Publish. 201 when published now, 200 when a retry found it.
pub(super) async fn publish(
    State(http): State<Http>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = json_body(&parts.headers, body, MAX_PUBLISH_BODY).await?;
    let message: PublishRequest = decode_json(&body)?;
    let (request, deadline) = http.reader_request(parts, message)?;
    let response = within(deadline, http.api.publish(request)).await?;
    let mut answer = json_response(&response);
    if response.created {
        *answer.status_mut() = axum::http::StatusCode::CREATED;
    }
    Ok(answer)
}

/// `GET /api/v1/publications`: ListPublications (`offset`, `limit`), JSON or CSV.
pub(super) async fn list(State(http): State<Http>, request: Request) -> Result<Response, ApiError> {
    let (parts, params, csv) = read_route(request, &["offset", "limit"])?;
    let message = ListPublicationsRequest {
        offset: params.number("offset")?.unwrap_or(0),
        limit: params.number("limit")?.unwrap_or(0),
    };
    let (request, deadline) = http.reader_request(parts, message)?;
    let response = within(deadline, http.api.list_publications(request)).await?;
    Ok(csv_or_json(csv, "publications.csv", &response, list_csv))
}

/// `GET /api/v1/publications/{id}`: GetPublication; CSV gives the published rows.
pub(super) async fn one(
    State(http): State<Http>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let message = GetPublicationRequest {
        publication_id: id.clone(),
    };
    let file = format!("publication-{id}.csv");
    read_one(
        http,
        request,
        message,
        &file,
        |api, request| async move { api.get_publication(request).await },
        |response| {
            let publication = response.publication.clone().unwrap_or_default();
            match (publication.ranking, publication.block_metrics) {
                (None, Some(block)) => {
                    let metric = publication
                        .block_metrics_query
                        .map(|q| q.metric)
                        .unwrap_or_default();
                    let (header, rows) = block_metrics_csv(&metric, &block);
                    (header.into_iter().map(String::from).collect(), rows)
                }
                (ranking, _) => ranking_csv(&ranking.unwrap_or_default()),
            }
        },
    )
    .await
}

/// `GET /api/v1/publications/{id}/revisions`: GetRevisions; CSV gives one line per revised
/// agency.
pub(super) async fn revisions(
    State(http): State<Http>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let message = GetRevisionsRequest {
        publication_id: id.clone(),
    };
    let file = format!("revisions-{id}.csv");
    read_one(
        http,
        request,
        message,
        &file,
        |api, request| async move { api.get_revisions(request).await },
        revisions_csv,
    )
    .await
}

/// A read of one publication: `message` sent by `call` under the reader check, answered as
/// JSON, or as the CSV `table` makes of it, downloaded as `file`.
async fn read_one<M, R, Fut>(
    http: Http,
    request: Request,
    message: M,
    file: &str,
    call: impl FnOnce(RankingApi, tonic::Request<M>) -> Fut,
    table: impl FnOnce(&R) -> (Vec<String>, Vec<Vec<String>>),
) -> Result<Response, ApiError>
where
    Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    R: serde::Serialize,
{
    let (parts, _, csv) = read_route(request, &[])?;
    let (request, deadline) = http.reader_request(parts, message)?;
    let response = within(deadline, call(http.api.clone(), request)).await?;
    Ok(csv_or_json(csv, file, &response, table))
}

fn list_csv(response: &ListPublicationsResponse) -> super::Table {
    let header = [
        "publication_id",
        "title",
        "metric",
        "index",
        "period",
        "first_day",
        "last_day",
        "published_at",
        "published_by",
        "ranked_count",
    ]
    .to_vec();
    let rows = response
        .publications
        .iter()
        .map(|p| {
            let query = p.query.clone().unwrap_or_default();
            let period = p.period.clone().unwrap_or_default();
            vec![
                p.publication_id.clone(),
                p.title.clone(),
                query.metric,
                query.index,
                query.period,
                period.first_day,
                period.last_day,
                moment_rfc3339(p.published_at.as_ref()),
                p.published_by.clone(),
                p.ranked_count.to_string(),
            ]
        })
        .collect();
    (header, rows)
}

/// A row's value as a cell: its rate's percent or its score.
fn value_cell(row: Option<&RankingRow>) -> String {
    row.map(|r| match &r.rate {
        Some(rate) => rate.percent.clone(),
        None => r.score.clone(),
    })
    .unwrap_or_default()
}

fn revisions_csv(response: &GetRevisionsResponse) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "agency_id",
        "agency_name",
        "published_rank",
        "rank_now",
        "places_gained",
        "published_value",
        "value_now",
        "late_events",
        "other_events",
        "withdrawals",
        "corrections",
        "causes",
    ]
    .map(String::from)
    .to_vec();
    let rows = response
        .rows
        .iter()
        .map(|r| {
            let (late, other): (i64, i64) = r.causes.iter().fold((0, 0), |(l, o), c| {
                if c.late {
                    (l + c.events, o)
                } else {
                    (l, o + c.events)
                }
            });
            let withdrawals: i64 = r.causes.iter().map(|c| c.withdrawals).sum();
            let corrections: u64 = r.causes.iter().map(|c| c.corrections).sum();
            let causes = r
                .causes
                .iter()
                .map(|c| format!("{}: {}", cause_days(c), cause_counters(c)))
                .collect::<Vec<_>>()
                .join("; ");
            vec![
                r.agency_id.clone(),
                r.agency_name.clone(),
                r.published.as_ref().map_or(0, |p| p.rank).to_string(),
                r.now.as_ref().map_or(0, |p| p.rank).to_string(),
                r.places_gained.to_string(),
                value_cell(r.published.as_ref()),
                value_cell(r.now.as_ref()),
                late.to_string(),
                other.to_string(),
                withdrawals.to_string(),
                corrections.to_string(),
                causes,
            ]
        })
        .collect();
    (header, rows)
}
