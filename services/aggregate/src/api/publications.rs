//! The kept publications: KeepPublication, GetKeptPublication and ListKeptPublications.
//! Aggregate checks the id and the sizes, and keeps the bytes ranking encoded without ever
//! decoding them (the store keeps each id's first bytes for good).

use govpulse_core::publication::check_publication_id;
use govpulse_edge::convert::{InvalidField, moment_from_proto};
use govpulse_proto::aggregate::{
    GetKeptPublicationRequest, GetKeptPublicationResponse, KeepPublicationRequest,
    KeepPublicationResponse, ListKeptPublicationsRequest, ListKeptPublicationsResponse,
};
use govpulse_store::NewPublication;

use super::AggregateApi;
use crate::Error;

/// The largest publication kept, in bytes: 16 MiB.
pub const MAX_PUBLICATION_BYTES: usize = 16 * 1024 * 1024;

/// The largest summary kept, in bytes: 64 KiB.
pub const MAX_SUMMARY_BYTES: usize = 64 * 1024;

/// How many summaries a list returns when the request names no limit.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

/// The most summaries one list returns.
pub const MAX_LIST_LIMIT: u32 = 500;

impl AggregateApi {
    /// Keeps a publication unless one is kept under its id: the body of KeepPublication.
    pub async fn keep(
        &self,
        request: KeepPublicationRequest,
    ) -> Result<KeepPublicationResponse, Error> {
        let KeepPublicationRequest {
            publication_id,
            published_at,
            publication,
            summary,
        } = request;
        publication_id_checked(&publication_id)?;
        let published_at = moment_from_proto(published_at.as_ref())
            .map_err(|reason| Error::invalid("published_at", reason))?
            .ok_or_else(|| Error::invalid("published_at", "is required"))?;
        bytes_checked("publication", &publication, MAX_PUBLICATION_BYTES)?;
        bytes_checked("summary", &summary, MAX_SUMMARY_BYTES)?;
        let earlier = self
            .store
            .keep_publication(NewPublication {
                id: &publication_id,
                published_at,
                body: &publication,
                summary: &summary,
            })
            .await?;
        Ok(KeepPublicationResponse {
            created: earlier.is_none(),
            publication: earlier.unwrap_or_default(),
        })
    }

    /// One kept publication: the body of GetKeptPublication.
    pub async fn kept_publication(
        &self,
        request: GetKeptPublicationRequest,
    ) -> Result<GetKeptPublicationResponse, Error> {
        publication_id_checked(&request.publication_id)?;
        match self.store.publication(&request.publication_id).await? {
            Some(publication) => Ok(GetKeptPublicationResponse { publication }),
            None => Err(Error::NotFound(format!(
                "no publication {}",
                request.publication_id
            ))),
        }
    }

    /// A page of the kept publications' summaries, newest first: the body of
    /// ListKeptPublications.
    pub async fn kept_publications(
        &self,
        request: ListKeptPublicationsRequest,
    ) -> Result<ListKeptPublicationsResponse, Error> {
        let limit = match request.limit {
            0 => DEFAULT_LIST_LIMIT,
            limit if limit > MAX_LIST_LIMIT => {
                return Err(Error::invalid(
                    "limit",
                    format!("is {limit}; the most is {MAX_LIST_LIMIT}"),
                ));
            }
            limit => limit,
        };
        let to_usize = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        let (summaries, total) = self
            .store
            .publications(to_usize(request.offset), to_usize(limit))
            .await?;
        Ok(ListKeptPublicationsResponse {
            summaries,
            total: u32::try_from(total).unwrap_or(u32::MAX),
        })
    }
}

/// `publication_id` as core checks it, or INVALID_ARGUMENT naming it with the reason.
fn publication_id_checked(id: &str) -> Result<(), Error> {
    check_publication_id(id).map_err(|reason| Error::invalid("publication_id", reason))
}

/// `bytes` of `field` present and at most `max` long, or INVALID_ARGUMENT naming it.
fn bytes_checked(field: &'static str, bytes: &[u8], max: usize) -> Result<(), Error> {
    if bytes.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if bytes.len() > max {
        return Err(Error::invalid(
            field,
            format!("has {} bytes; the limit is {max}", bytes.len()),
        ));
    }
    Ok(())
}
