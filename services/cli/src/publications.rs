//! `govpulse publish`, `publications`, `publication` and `revisions`: a ranking published
//! through ranking's Publish (computed once and frozen, every row, with when and by whom; an
//! act of a publisher, whose token carries the `publisher` role, except on a development
//! deployment), and read back: the list, newest first; one publication's rows exactly as
//! published; its revision log (the ranking computed again now, what moved since and why).

use govpulse_proto::ranking::{
    GetPublicationRequest, GetRevisionsRequest, ListPublicationsRequest, PublishRequest,
    RankingQuery, ranking_service_client::RankingServiceClient,
};
use tonic::transport::Channel;

use crate::{answer, connect::Remote, print, render};

/// Publishes `query` under `id` and `title`, and says whether this call published it or an
/// identical earlier one had. A query with a top or bottom selection is refused before any
/// call: a publication keeps every row.
pub async fn publish(
    ranking: &Remote,
    id: String,
    title: String,
    query: RankingQuery,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        query.selection.is_none(),
        "a publication keeps every row: leave out --top and --bottom (readers choose the rows they show)"
    );
    let request = PublishRequest {
        publication_id: id,
        title,
        query: Some(query),
        block_metrics: None,
    };
    let response = answer("ranking", client(ranking).publish(ranking.request(request))).await?;
    print(json, &response, render::published)
}

/// Prints a page of the publications, newest first: `limit` of them (0: the service's 50)
/// after the newest `offset`.
pub async fn list(ranking: &Remote, offset: u32, limit: u32, json: bool) -> anyhow::Result<()> {
    let request = ranking.request(ListPublicationsRequest { offset, limit });
    let response = answer("ranking", client(ranking).list_publications(request)).await?;
    print(json, &response, render::publications_table)
}

/// Prints the publication `id` exactly as published.
pub async fn show(ranking: &Remote, id: String, json: bool) -> anyhow::Result<()> {
    let request = ranking.request(GetPublicationRequest { publication_id: id });
    let response = answer("ranking", client(ranking).get_publication(request)).await?;
    print(json, &response, |r| {
        render::publication_table(&r.publication.clone().unwrap_or_default())
    })
}

/// Prints the revision log of the publication `id`.
pub async fn revisions(ranking: &Remote, id: String, json: bool) -> anyhow::Result<()> {
    let request = ranking.request(GetRevisionsRequest { publication_id: id });
    let response = answer("ranking", client(ranking).get_revisions(request)).await?;
    print(json, &response, render::revisions_table)
}

/// A client of the ranking service at `ranking`.
fn client(ranking: &Remote) -> RankingServiceClient<Channel> {
    RankingServiceClient::new(ranking.channel())
}
