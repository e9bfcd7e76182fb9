//! Kept publications through the aggregate API: kept once under their id (a second keep,
//! with any bytes, answers the first ones), read back as kept, listed newest first in
//! pages; bad ids, times, sizes and limits refused by field name, an unknown id NOT_FOUND.
//! In memory, and through a real redis-server.

use std::sync::Arc;

use govpulse_aggregate::{AggregateApi, Error};
use govpulse_core::{AcceptancePolicy, Catalog, CatalogBuilder, targets::Targets};
use govpulse_proto::{
    Timestamp,
    aggregate::{
        GetKeptPublicationRequest, KeepPublicationRequest, KeepPublicationResponse,
        ListKeptPublicationsRequest,
    },
};
use govpulse_runtime::targets_file::LiveTargets;
use govpulse_store::{
    CounterStore, MemoryStore,
    testing::{RedisServer, connect},
};
use tokio_util::sync::CancellationToken;

fn catalog() -> Catalog {
    Catalog::builder()
        .provinces_csv("p", "code,id,name\n17,hoa-binh,Hòa Bình\n")
        .and_then(CatalogBuilder::build)
        .expect("catalog")
}

fn api(store: Arc<dyn CounterStore>) -> AggregateApi {
    AggregateApi::new(
        Arc::new(catalog()),
        store,
        AcceptancePolicy::default(),
        LiveTargets::fixed(Targets::default()),
        CancellationToken::new(),
    )
}

/// 5 December 2026, `hour`:00 UTC.
fn at(hour: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: 1_796_428_800 + hour * 3600,
        nanos: 0,
    })
}

fn request(id: &str, hour: i64, publication: &[u8], summary: &[u8]) -> KeepPublicationRequest {
    KeepPublicationRequest {
        publication_id: id.to_owned(),
        published_at: at(hour),
        publication: publication.to_vec(),
        summary: summary.to_vec(),
    }
}

fn kept(created: bool, publication: &[u8]) -> KeepPublicationResponse {
    KeepPublicationResponse {
        created,
        publication: publication.to_vec(),
    }
}

/// The field a refusal names, and its reason.
fn refused(result: Result<impl std::fmt::Debug, Error>) -> (String, String) {
    match result {
        Err(Error::InvalidArgument(invalid)) => {
            let status = tonic::Status::from(Error::InvalidArgument(invalid.clone()));
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert_eq!(
                status.message(),
                format!("{}: {}", invalid.field, invalid.reason)
            );
            (invalid.field, invalid.reason)
        }
        other => panic!("not refused for a field: {other:?}"),
    }
}

/// Summaries listed from `offset`, `limit` of them (0: the default), as text, and the total.
async fn list(api: &AggregateApi, offset: u32, limit: u32) -> (Vec<String>, u32) {
    let response = api
        .kept_publications(ListKeptPublicationsRequest { offset, limit })
        .await
        .expect("list");
    let summaries = response
        .summaries
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    (summaries, response.total)
}

/// Keeps, keeps again, reads and lists through `api`, whose store is empty.
async fn keeps_reads_and_lists(api: &AggregateApi) {
    assert_eq!(list(api, 0, 0).await, (vec![], 0));
    let w49 = b"\x00body-49\xff";
    for (keep, expected, why) in [
        (
            request("w49", 7, w49, b"s-w49"),
            kept(true, b""),
            "kept: the bytes are the caller's, not sent back",
        ),
        (
            request("w49", 7, w49, b"s-w49"),
            kept(false, w49),
            "a retry: nothing written",
        ),
        (
            request("w49", 9, b"other", b"s-other"),
            kept(false, w49),
            "other bytes under a kept id: the first ones",
        ),
    ] {
        assert_eq!(api.keep(keep).await.expect(why), expected, "{why}");
    }
    let get = |id: &str| {
        api.kept_publication(GetKeptPublicationRequest {
            publication_id: id.to_owned(),
        })
    };
    assert_eq!(
        get("w49").await.expect("get").publication,
        b"\x00body-49\xff"
    );
    match get("w50").await {
        Err(Error::NotFound(message)) => {
            assert_eq!(message, "no publication w50");
            let status = tonic::Status::from(Error::NotFound(message));
            assert_eq!(status.code(), tonic::Code::NotFound);
            assert_eq!(status.message(), "no publication w50");
        }
        other => panic!("an unknown id is not found: {other:?}"),
    }

    api.keep(request("w48", 2, b"body-48", b"s-w48"))
        .await
        .expect("keep");
    api.keep(request("w50", 12, b"body-50", b"s-w50"))
        .await
        .expect("keep");
    api.keep(request("a-tie", 12, b"body-tie", b"s-a-tie"))
        .await
        .expect("keep");
    let all = ["s-a-tie", "s-w50", "s-w49", "s-w48"].map(str::to_owned);
    assert_eq!(
        list(api, 0, 0).await,
        (all.to_vec(), 4),
        "newest first, ties by id"
    );
    assert_eq!(list(api, 1, 2).await, (all[1..3].to_vec(), 4), "a page");
    assert_eq!(list(api, 4, 10).await, (vec![], 4), "past the end");
    assert_eq!(list(api, 3, 500).await, (all[3..].to_vec(), 4));
}

#[tokio::test]
async fn publications_are_kept_once_read_and_listed_in_memory() {
    keeps_reads_and_lists(&api(Arc::new(MemoryStore::new()))).await;
}

#[tokio::test]
async fn publications_are_kept_once_read_and_listed_in_redis() {
    let server = RedisServer::start().expect("redis-server starts");
    let store = connect(server.url(), "publications").await;
    keeps_reads_and_lists(&api(Arc::new(store))).await;
}

#[tokio::test]
async fn a_list_is_fifty_unless_limited_and_at_most_five_hundred() {
    let api = api(Arc::new(MemoryStore::new()));
    for n in 0..60 {
        let id = format!("p{n:02}");
        api.keep(request(&id, n, id.as_bytes(), id.as_bytes()))
            .await
            .expect("keep");
    }
    let (summaries, total) = list(&api, 0, 0).await;
    assert_eq!((summaries.len(), total), (50, 60), "0 means 50");
    assert_eq!(summaries.first().map(String::as_str), Some("p59"));
    assert_eq!(list(&api, 55, 0).await.0.len(), 5);
    assert_eq!(list(&api, 0, 500).await.0.len(), 60);
    let (field, reason) = refused(
        api.kept_publications(ListKeptPublicationsRequest {
            offset: 0,
            limit: 501,
        })
        .await,
    );
    assert_eq!(field, "limit");
    assert!(reason.contains("500"), "{reason}");
}

#[tokio::test]
async fn bad_requests_are_refused_by_field_and_keep_nothing() {
    let api = api(Arc::new(MemoryStore::new()));
    let keep = |request| api.keep(request);
    for (id, reason) in [
        ("", "is required"),
        ("Weekly", "may hold only a-z, 0-9 and -"),
        ("w 49", "may hold only a-z, 0-9 and -"),
        ("-w49", "must start with a letter or digit"),
        (&*"a".repeat(65), "is longer than 64 characters"),
    ] {
        assert_eq!(
            refused(keep(request(id, 7, b"body", b"summary")).await),
            ("publication_id".to_owned(), reason.to_owned()),
            "{id:?}"
        );
        assert_eq!(
            refused(
                api.kept_publication(GetKeptPublicationRequest {
                    publication_id: id.to_owned(),
                })
                .await
            ),
            ("publication_id".to_owned(), reason.to_owned()),
            "{id:?}"
        );
    }
    let longest = "a".repeat(64);
    keep(request(&longest, 7, b"body", b"summary"))
        .await
        .expect("64 characters are an id");

    let mut no_time = request("w49", 7, b"body", b"summary");
    no_time.published_at = None;
    assert_eq!(
        refused(keep(no_time).await),
        ("published_at".to_owned(), "is required".to_owned())
    );
    let mut bad_time = request("w49", 7, b"body", b"summary");
    bad_time.published_at = Some(Timestamp {
        seconds: 0,
        nanos: -1,
    });
    assert_eq!(refused(keep(bad_time).await).0, "published_at");

    let sixteen_mib = 16 * 1024 * 1024;
    for (publication, summary, field) in [
        (vec![], b"summary".to_vec(), "publication"),
        (vec![7; sixteen_mib + 1], b"summary".to_vec(), "publication"),
        (b"body".to_vec(), vec![], "summary"),
        (b"body".to_vec(), vec![7; 64 * 1024 + 1], "summary"),
    ] {
        let (refused_field, reason) =
            refused(keep(request("w49", 7, &publication, &summary)).await);
        assert_eq!(
            refused_field,
            field,
            "{} and {} bytes: {reason}",
            publication.len(),
            summary.len()
        );
    }
    assert_eq!(
        list(&api, 0, 0).await.1,
        1,
        "only the 64-character id was kept"
    );
    keep(request(
        "w49",
        7,
        &vec![7; sixteen_mib],
        &vec![7; 64 * 1024],
    ))
    .await
    .expect("the largest publication and summary are kept");
}
