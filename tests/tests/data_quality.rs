//! Data quality end to end: the events an agency's system sends that ingest or aggregate
//! rejects as invalid count per Vietnam day for the agency and every agency above it, beside
//! its accepted events, in GetMetrics (`accepted_per_day`, over gRPC and `GET
//! /api/v1/metrics`) and GetBlockMetrics (`daily_events_days`); events a sender may not send
//! and events of an agency outside the catalog count against nobody.

use govpulse_e2e::{
    Deployment, Options, catalog_with, credential_for,
    http::{find_by, get},
    local0, received, scratch, statuses, two_days_ago_noon, with_token,
};
use govpulse_edge::auth::{TokenFileArgs, token_hash};
use govpulse_proto::{
    aggregate::{
        GetBlockMetricsRequest, GetMetricsRequest, GetMetricsResponse,
        get_block_metrics_request::Scope,
    },
    catalog::Block,
    event::{
        Channel, DossierEvent,
        OutcomeStatus::{self, Accepted, Rejected},
        dossier_event::Kind,
    },
    ingest::{SubmitEventsRequest, ingest_service_client::IngestServiceClient},
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// The token of a reporter for Lạng Sơn (and its units).
const TOKEN: &str = "lang-son-reporter";

/// `events` sent through `ingest` with the Lạng Sơn reporter's token.
async fn submit(
    ingest: &mut IngestServiceClient<tonic::transport::Channel>,
    events: Vec<DossierEvent>,
) -> Vec<OutcomeStatus> {
    let request = with_token(SubmitEventsRequest { events }, TOKEN);
    let response = ingest.submit_events(request).await.expect("submit");
    statuses(&response.into_inner().outcomes)
}

/// An agency's events over its 30 days as GetMetrics lists them through ranking, today's
/// last, summed as (accepted, rejected) (should Vietnam's midnight fall between two calls,
/// today's may be yesterday's by then), and the answer.
async fn recent(deployment: &Deployment, agency: &str) -> ((u64, u64), GetMetricsResponse) {
    let asked = OffsetDateTime::now_utc();
    let response = deployment
        .ranking()
        .get_metrics(GetMetricsRequest {
            agency_id: agency.to_owned(),
            period: "ytd".to_owned(),
            metrics: vec!["online-dossier-rate".to_owned()],
            ..Default::default()
        })
        .await
        .expect("metrics")
        .into_inner();
    let answered = OffsetDateTime::now_utc();
    assert_eq!(response.accepted_per_day.len(), 30);
    let last = response.accepted_per_day.last().map(|d| d.day.clone());
    let today = |at| Some(govpulse_core::period::vietnam_day(at).to_string());
    assert!(last == today(asked) || last == today(answered), "{last:?}");
    let sum = |of: fn(&govpulse_proto::aggregate::DailyEvents) -> u64| {
        response.accepted_per_day.iter().map(of).sum::<u64>()
    };
    ((sum(|d| d.accepted), sum(|d| d.rejected)), response)
}

/// A JSON number written as protobuf JSON writes a uint64 (a string; absent when 0).
fn uint64(value: &serde_json::Value) -> u64 {
    value.as_str().map_or(0, |s| s.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_events_count_against_the_agency_the_sender_may_send_for_and_its_parents() {
    let dir = scratch("data-quality");
    let catalog = catalog_with(
        &dir,
        "id,name,parent_id,valid_from,valid_until\nlang-son.dept-01,Sở Tư pháp,lang-son,,\n",
        "id,agency_id,name,provision,eligible_full_online\n\
         lang-son.p01,lang-son,Thủ tục,full,true\n\
         lang-son.dept-01.p01,lang-son.dept-01,Thủ tục,full,true\n\
         hai-phong.p01,hai-phong,Thủ tục,full,true\n",
    );
    let deployment = Deployment::start_alone_with(
        "quality",
        Options {
            catalog_dir: Some(catalog.clone()),
            ..Options::default()
        },
    )
    .await;
    // An ingest that knows its callers (the deployment's takes anyone for any agency).
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        credential_for(&token_hash(TOKEN), "lang-son", "\"reporter\""),
    )
    .expect("tokens");
    let defaults =
        govpulse_ingest::Config::new(local0(), format!("http://{}", deployment.aggregate_addr()));
    let ingest = govpulse_ingest::Server::build(govpulse_ingest::Config {
        catalog_dir: Some(catalog),
        token_file: TokenFileArgs::at(tokens),
        host: defaults.host.clone().plaintext(),
        ..defaults
    })
    .await
    .expect("ingest starts");
    let mut client = IngestServiceClient::new(govpulse_e2e::lazy(ingest.host().local_addr()));
    let stop = CancellationToken::new();
    let serving = tokio::spawn(ingest.run_until(stop.clone().cancelled_owned()));

    let at = two_days_ago_noon();
    let without_kind = |event_id: &str, agency: &str| DossierEvent {
        kind: None,
        ..received(event_id, agency, at, true)
    };
    let mut no_channel = received("ls-4", "lang-son", at, true);
    if let Some(Kind::Received(reception)) = &mut no_channel.kind {
        reception.channel = Channel::Unspecified.into();
    }
    assert_eq!(
        submit(
            &mut client,
            vec![
                received("ls-1", "lang-son", at, true),
                received("ls-2", "lang-son", at, false),
                // Invalid events of Lạng Sơn and of its unit: counted against them.
                without_kind("ls-3", "lang-son"),
                no_channel,
                without_kind("ls-d-1", "lang-son.dept-01"),
                // Hải Phòng's, valid or not: not this sender's to send, counted for nobody.
                received("hp-1", "hai-phong", at, true),
                without_kind("hp-2", "hai-phong"),
                // An agency outside the catalog: counted for nobody.
                without_kind("x-1", "nowhere"),
            ],
        )
        .await,
        [
            Accepted, Accepted, Rejected, Rejected, Rejected, Rejected, Rejected, Rejected
        ]
    );
    assert_eq!(recent(&deployment, "lang-son").await.0, (2, 3));
    assert_eq!(recent(&deployment, "lang-son.dept-01").await.0, (0, 1));
    assert_eq!(recent(&deployment, "hai-phong").await.0, (0, 0));

    // Every event of a call rejected: its rejections are still counted.
    assert_eq!(
        submit(&mut client, vec![without_kind("ls-5", "lang-son")]).await,
        [Rejected]
    );
    let (counts, response) = recent(&deployment, "lang-son").await;
    assert_eq!(counts, (2, 4));

    // The same over HTTP, as protobuf JSON: each day with its rejected events.
    let read = get(
        deployment.ranking_addr(),
        "/api/v1/metrics?agency_id=lang-son&period=ytd&metric=online-dossier-rate",
        &[],
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.text());
    let read = read.json();
    let days = read["acceptedPerDay"].as_array().expect("days");
    let rejected: u64 = days.iter().map(|d| uint64(&d["rejected"])).sum();
    assert_eq!(rejected, 4, "{days:?}");
    assert_eq!(
        serde_json::to_value(&response).expect("json")["acceptedPerDay"],
        read["acceptedPerDay"]
    );

    // GetBlockMetrics: the last days asked for of each province, through ranking's read edge.
    let block = GetBlockMetricsRequest {
        scope: Some(Scope::Block(Block::Province.into())),
        metric: "online-dossier-rate".to_owned(),
        period: at.date().to_string(),
        daily_events_days: 2,
        ..Default::default()
    };
    let provinces = deployment
        .ranking()
        .get_block_metrics(block.clone())
        .await
        .expect("block metrics")
        .into_inner();
    let row = |agency: &str| {
        let row = provinces
            .agencies
            .iter()
            .find(|a| a.agency_id == agency)
            .unwrap_or_else(|| panic!("{agency} in the block"));
        assert_eq!(row.daily_events.len(), 2, "{row:?}");
        let sum = |of: fn(&govpulse_proto::aggregate::DailyEvents) -> u64| {
            row.daily_events.iter().map(of).sum::<u64>()
        };
        (sum(|d| d.accepted), sum(|d| d.rejected))
    };
    assert_eq!(row("lang-son"), (2, 4));
    assert_eq!(row("hai-phong"), (0, 0));
    let too_many = deployment
        .ranking()
        .get_block_metrics(GetBlockMetricsRequest {
            daily_events_days: 31,
            ..block
        })
        .await
        .expect_err("refused");
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    assert!(
        too_many.message().starts_with("daily_events_days:"),
        "{too_many:?}"
    );
    let read = get(
        deployment.ranking_addr(),
        &format!(
            "/api/v1/block-metrics?block=provinces&metric=online-dossier-rate&period={}&daily_events_days=2",
            at.date()
        ),
        &[],
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.text());
    let read = read.json();
    let lang_son = find_by(&read["agencies"], "agencyId", "lang-son");
    let days = lang_son["dailyEvents"].as_array().expect("days");
    assert_eq!(days.len(), 2);
    let rejected: u64 = days.iter().map(|d| uint64(&d["rejected"])).sum();
    assert_eq!(rejected, 4, "{days:?}");

    stop.cancel();
    serving
        .await
        .expect("ingest ends")
        .expect("ingest ran until stopped");
    deployment.stop().await;
}
