//! The procedure drill-down end to end: events sent through ingest by a province and its
//! department, read back through ranking's `GetProcedureMetrics` for each of them (the
//! province's procedures include its department's dossiers), adding up to the agency's own
//! figures, and every bad request refused naming its field.

use std::path::{Path, PathBuf};

use govpulse_e2e::{Deployment, catalog_with, metrics_request, ranked, received, two_hours_ago};
use govpulse_proto::aggregate::GetProcedureMetricsRequest;
use tonic::Code;

/// The shipped provinces and ministries, one department of Hà Nội, and two procedures of Hà
/// Nội (which its department may report too).
fn write_catalog(dir: &Path) -> PathBuf {
    catalog_with(
        dir,
        "id,name,parent_id\nha-noi.d1,Sở Một,ha-noi\n",
        "id,agency_id,name,provision,eligible_full_online\n\
         ha-noi.p01,ha-noi,Đăng ký khai sinh,full,true\n\
         ha-noi.p02,ha-noi,Đăng ký kết hôn,full,true\n",
    )
}

/// (procedure, rank, numerator/denominator) of each line.
fn lines(lines: &[govpulse_proto::aggregate::ProcedureMetric]) -> Vec<(String, u32, String)> {
    lines
        .iter()
        .map(|l| {
            (
                l.procedure_id.clone(),
                l.rank,
                format!("{}/{}", l.numerator, l.denominator),
            )
        })
        .collect()
}

#[tokio::test]
async fn procedures_of_a_province_and_its_department_add_up_to_their_figures() {
    let (dir, deployment) = Deployment::start_alone_with_catalog("procedures", write_catalog).await;
    let (at, day) = two_hours_ago();
    let of = |mut event: govpulse_proto::event::DossierEvent, procedure: &str| {
        event.procedure_id = procedure.to_owned();
        event
    };
    // The department: p01 twice online, p02 once at the desk. Hà Nội itself: p01 at the
    // desk, p02 online.
    let events = vec![
        of(received("d1", "ha-noi.d1", at, true), "ha-noi.p01"),
        of(received("d2", "ha-noi.d1", at, true), "ha-noi.p01"),
        of(received("d3", "ha-noi.d1", at, false), "ha-noi.p02"),
        of(received("h1", "ha-noi", at, false), "ha-noi.p01"),
        of(received("h2", "ha-noi", at, true), "ha-noi.p02"),
    ];
    let reply = deployment.submit(events).await;
    assert_eq!(reply.accepted, 5, "{reply:?}");

    let ask = |agency: &str, metric: &str, top: u32| GetProcedureMetricsRequest {
        agency_id: agency.to_owned(),
        period: day.clone(),
        metric: metric.to_owned(),
        top,
    };
    let mut ranking = deployment.ranking();
    // One drill-down, `what` naming it when it fails.
    let drill = async |agency: &str, metric: &str, top: u32, what: &str| {
        ranking
            .clone()
            .get_procedure_metrics(ask(agency, metric, top))
            .await
            .expect(what)
            .into_inner()
    };
    // The province: its own dossiers and its department's.
    let province = drill("ha-noi", "online-dossier-rate", 1, "Hà Nội's procedures").await;
    assert_eq!(
        lines(&province.procedures),
        [
            ranked("ha-noi.p01", 1, "2/3"),
            ranked("ha-noi.p02", 2, "1/2")
        ]
    );
    assert_eq!(lines(&province.best), [ranked("ha-noi.p01", 1, "2/3")]);
    assert_eq!(lines(&province.worst), [ranked("ha-noi.p02", 2, "1/2")]);
    assert_eq!(province.procedures[0].procedure_name, "Đăng ký khai sinh");
    assert!(province.no_data.is_empty());
    // Its procedures add up to its own figures.
    let metrics = ranking
        .clone()
        .get_metrics(metrics_request("ha-noi", &day, &["online-dossier-rate"]))
        .await
        .expect("Hà Nội's metrics")
        .into_inner();
    let counters = metrics.counters.expect("counters");
    let sum = |f: fn(&govpulse_proto::aggregate::ProcedureMetric) -> u64| {
        province.procedures.iter().map(f).sum::<u64>()
    };
    assert_eq!(
        (sum(|l| l.numerator), sum(|l| l.denominator)),
        (counters.received_online, counters.received)
    );

    // The department alone; its desk dossier is its worst.
    let department = drill(
        "ha-noi.d1",
        "online-dossier-rate",
        0,
        "the department's procedures",
    )
    .await;
    assert_eq!(
        lines(&department.procedures),
        [
            ranked("ha-noi.p01", 1, "2/2"),
            ranked("ha-noi.p02", 2, "0/1")
        ]
    );
    // No feedback was given: every procedure is without data for satisfaction.
    let satisfaction = drill(
        "ha-noi.d1",
        "satisfaction-rate",
        0,
        "the department's satisfaction per procedure",
    )
    .await;
    assert!(satisfaction.procedures.is_empty());
    assert_eq!(
        lines(&satisfaction.no_data),
        [
            ranked("ha-noi.p01", 0, "0/0"),
            ranked("ha-noi.p02", 0, "0/0")
        ]
    );

    // Refused, naming the field and why.
    for (request, field, why) in [
        (
            ask("ha-noi", "online-dossier-rate", 101),
            "top",
            "more than 100",
        ),
        (
            ask("ha-noi", "online-provision-rate", 0),
            "metric",
            "no value per procedure",
        ),
        (
            ask("nowhere", "online-dossier-rate", 0),
            "agency_id",
            "unknown agency",
        ),
        (
            GetProcedureMetricsRequest {
                period: "2026-13".to_owned(),
                ..ask("ha-noi", "online-dossier-rate", 0)
            },
            "period",
            "",
        ),
    ] {
        let status = ranking
            .get_procedure_metrics(request)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let said = format!("{status:?}");
        assert!(said.contains(field) && said.contains(why), "{said}");
    }
    deployment.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
