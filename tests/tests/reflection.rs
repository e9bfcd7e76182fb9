//! grpcurl (which speaks only v1alpha reflection) can list, describe and call every service.

use govpulse_e2e::{Deployment, http::find_by};
use serde_json::Value;

async fn grpcurl(args: &[&str]) -> String {
    let output = tokio::process::Command::new("grpcurl")
        .args(args)
        .output()
        .await
        .expect("grpcurl is installed (the test command installs it: deploy/bin/setup)");
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

async fn call(addr: &str, method: &str, body: &str) -> Value {
    serde_json::from_str(&grpcurl(&["-plaintext", "-d", body, addr, method]).await)
        .expect("json reply")
}

#[tokio::test]
async fn grpcurl_lists_describes_and_calls_every_service() {
    let deployment = Deployment::start_alone("grpcurl").await;
    let ingest = deployment.ingest_addr().to_string();
    let aggregate = deployment.aggregate_addr().to_string();
    let ranking = deployment.ranking_addr().to_string();

    for (addr, service) in [
        (&ingest, "govpulse.ingest.v1.IngestService"),
        (&aggregate, "govpulse.aggregate.v1.AggregateService"),
        (&ranking, "govpulse.ranking.v1.RankingService"),
    ] {
        let listed = grpcurl(&["-plaintext", addr, "list"]).await;
        let mut listed: Vec<&str> = listed
            .lines()
            .filter(|l| !l.starts_with("grpc.reflection."))
            .collect();
        listed.sort_unstable();
        let mut expected = vec![
            "govpulse.catalog.v1.CatalogService",
            service,
            "grpc.health.v1.Health",
        ];
        expected.sort_unstable();
        assert_eq!(listed, expected, "{addr} lists what it serves");
        let described = grpcurl(&["-plaintext", addr, "describe", service]).await;
        assert!(described.contains("rpc "), "{described}");
        let health = call(
            addr,
            "grpc.health.v1.Health/Check",
            &format!(r#"{{"service":"{service}"}}"#),
        )
        .await;
        assert_eq!(health["status"], "SERVING");
    }

    let agencies = call(
        &ingest,
        "govpulse.catalog.v1.CatalogService/ListAgencies",
        r#"{"block":"BLOCK_PROVINCE","parentId":""}"#,
    )
    .await;
    // Lạng Sơn is listed: find_by fails the test otherwise.
    find_by(&agencies["agencies"], "name", "Lạng Sơn");
    let procedures = call(
        &ranking,
        "govpulse.catalog.v1.CatalogService/ListProcedures",
        r#"{"agencyId":"lang-son"}"#,
    )
    .await;
    assert_eq!(procedures["procedures"].as_array().map(Vec::len), Some(24));

    let yesterday = (time::OffsetDateTime::now_utc() - time::Duration::days(1)).unix_timestamp();
    let at = time::OffsetDateTime::from_unix_timestamp(yesterday)
        .expect("valid")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc3339");
    let body = format!(
        r#"{{"events":[{{"eventId":"g-1","agencyId":"lang-son","dossierId":"HS-1","procedureId":"lang-son.p01","occurredAt":"{at}","received":{{"channel":"CHANNEL_ONLINE","digitized":true}}}},
                      {{"eventId":"g-2","agencyId":"lang-son","dossierId":"HS-2","procedureId":"lang-son.p01","occurredAt":"{at}","received":{{"channel":"CHANNEL_IN_PERSON"}}}}]}}"#
    );
    let submitted = call(
        &ingest,
        "govpulse.ingest.v1.IngestService/SubmitEvents",
        &body,
    )
    .await;
    assert_eq!(submitted["accepted"], 2, "{submitted}");

    let metrics = call(
        &aggregate,
        "govpulse.aggregate.v1.AggregateService/GetMetrics",
        r#"{"agencyId":"lang-son","period":"ytd"}"#,
    )
    .await;
    let online = find_by(&metrics["metrics"], "metric", "online-dossier-rate");
    // Yesterday may be last year on 1 January; then ytd has no data yet.
    if time::OffsetDateTime::now_utc()
        .to_offset(govpulse_core::period::VIETNAM)
        .ordinal()
        > 2
    {
        assert_eq!(online["rate"]["percent"], "50.00", "{metrics}");
    }
    let ranking_body = r#"{"query":{"metric":"online-dossier-rate","block":"BLOCK_PROVINCE","period":"2026","top":5}}"#;
    let ranked = call(
        &ranking,
        "govpulse.ranking.v1.RankingService/GetRanking",
        ranking_body,
    )
    .await;
    assert!(ranked["period"]["firstDay"] == "2026-01-01", "{ranked}");
    deployment.stop().await;
}
