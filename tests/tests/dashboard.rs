//! The public dashboard in a real browser: a deployment receiving a steady, realistic load
//! (every province and ministry, plus a few units of one province), and
//! `tests/browser/dashboard.mjs` (headless Chromium driven by Playwright) checking the live
//! ranking, its controls, an agency's page (with its worst procedures: the load generator
//! spreads each agency's receptions over all its procedures) and the connection indicator,
//! and saving screenshots under the target directory. A second, quiet deployment that flags
//! an agency stale after one second of silence shows a silent agency greyed, an agency never
//! heard from as such, and the silent agency's page with its last report and its arrivals per
//! day; its alert rules (silence after three seconds) put the silent agency in the alerts
//! panel, which says when a new version of the rules file is refused, and loses the agency's
//! alerts when it reports again; it has no publication, and says so. On the loaded deployment
//! the test publishes last month's ranking of a few provinces (anonymously: a development
//! server), then sends late events for one of them; the browser opens the publication from
//! the navigation and sees its rows as published, when and by whom, and the revision log
//! naming that province, its late events and their day. Between the ranking's publication
//! and the late events the test also publishes last month's report of the same metric for the
//! nation (a block's metrics: every ministry and province, and the agencies together): the
//! browser finds it listed under its own title with when and by whom, and opened, on a desktop
//! and a phone, every agency's value as published (the late province's as it was), the pooled
//! figure as published and marked revised, and a revision log listing exactly the agencies
//! whose value moved (the late province, its late events on their day) and saying the pooled
//! figure was revised. The browser then chooses last month in the live ranking's period
//! control: that ranking says when, by whom and under which title it was published, linked to
//! the publication's revision log, and marks revised the provinces whose rank or value moved
//! since (the late province and the one it overtook), not the others; on a phone too. When the
//! browser asks, the test publishes the same ranking again: the live ranking, without a
//! reload, names the new publication and marks nothing revised.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::Arc,
    time::Duration,
};

use govpulse_e2e::{
    Deployment, Options, RedisServer, http, provinces_by_online_rate, received, ts,
};
use govpulse_proto::{
    event::{Channel, DossierEvent, DossierReceived, dossier_event::Kind},
    ingest::SubmitEventsRequest,
    ranking::watch_ranking_response::Event,
};
use serde_json::json;
use time::{OffsetDateTime, macros::time};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Child,
};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

/// The province whose page the browser opens: the test gives it units that report.
const PROVINCE: &str = "phu-tho";

/// Its units, with names that need Vietnamese glyphs.
const UNITS: &[(&str, &str)] = &[
    ("phu-tho.so-tu-phap", "Sở Tư pháp"),
    ("phu-tho.so-y-te", "Sở Y tế"),
    ("phu-tho.phuong-viet-tri", "Phường Việt Trì"),
    ("phu-tho.xa-hoa-binh", "Xã Hòa Bình"),
    ("phu-tho.xa-tam-dao", "Xã Tam Đảo"),
];

/// The quiet deployment's agency that reports once, when the browser shows it has never
/// reported, then falls silent.
const SILENT: &str = "lang-son";

/// What the browser test prints when the quiet deployment's ranking shows `SILENT` as never
/// reported, followed by its id: the cue to send its one event.
const READY: &str = "stale: ready ";

/// What the browser test prints once the alerts panel shows `SILENT`'s alerts: the cue to
/// write a version of the alert rules file that the service refuses.
const REFUSE: &str = "alerts: refuse";

/// What the browser test prints, followed by `SILENT`'s id, to have that agency report again.
const REPORT_AGAIN: &str = "alerts: report ";

/// The quiet deployment's alert rules: three on the provinces' silence, so that `SILENT`,
/// three seconds after its one event, alerts on each: `silent` critical and firing at once,
/// `quiet` a firing warning, `dormant` a warning pending for an hour. Named so that the
/// service's order (by rule name) is the reverse of the panel's (firing first, critical
/// before warning). `silent_after` is the `silent` rule's allowed silence, as written.
fn alert_rules(silent_after: &str) -> String {
    format!(
        r#"
[[rules]]
name = "dormant"
kind = "silent"
block = "province"
after = "3s"
for = "1h"

[[rules]]
name = "quiet"
kind = "silent"
block = "province"
after = "3s"
severity = "warning"

[[rules]]
name = "silent"
kind = "silent"
block = "province"
after = "{silent_after}"
severity = "critical"
"#
    )
}

/// Replaces the rules file with a version whose `silent` rule has an allowed silence that
/// is not a duration, and markup in it, which the page must show as text. Its modification
/// time is set ahead, so that the service sees a new version however coarse the clock of
/// the file system.
fn refused_rules(path: &Path) {
    govpulse_e2e::write_ahead(path, &alert_rules("<b>soon</b>"), 2);
}

/// The publication's id.
const PUBLICATION: &str = "online-last-month";

/// The id of the same ranking published again, when the browser asks.
const PUBLICATION_AGAIN: &str = "online-last-month-again";

/// The id of last month's report of the same metric for the nation (a block's metrics),
/// published right after the ranking, before the late events.
const REPORT: &str = "report-last-month";

/// What the browser test prints when the live ranking of the publication's ranking shows its
/// revised rows: the cue to publish that ranking again (`PUBLICATION_AGAIN`).
const REPUBLISH: &str = "publication: republish";

/// The provinces published, with their receptions on one day of last month: online, in person.
const PUBLISHED: &[(&str, u64, u64)] =
    &[("ha-noi", 3, 1), ("lang-son", 2, 2), ("quang-ninh", 1, 3)];

/// The province whose receptions of that day arrive after publication, and how many (online).
const LATE: (&str, u64) = ("quang-ninh", 4);

/// Last month (Vietnam time) as a period (`2026-11`), its 10th as a day (`2026-11-10`), and
/// noon that day: a day already over, whatever the hour the test runs.
fn last_month() -> (String, String, OffsetDateTime) {
    let vietnam = govpulse_core::period::VIETNAM;
    let today = OffsetDateTime::now_utc().to_offset(vietnam).date();
    let day = (today.replace_day(1).expect("the 1st") - time::Duration::days(1))
        .replace_day(10)
        .expect("the 10th");
    let period = format!("{}-{:02}", day.year(), u8::from(day.month()));
    (
        period,
        day.to_string(),
        day.with_time(time!(12:00)).assume_offset(vietnam),
    )
}

/// The provinces ranked by their online share of `counts` (agency, online, in person), best
/// first (no two share a value): each with its rank and its percentage as the API writes it.
fn ranked(counts: &[(&str, u64, u64)]) -> Vec<(String, u32, String)> {
    let mut shares: Vec<(&str, u64, u64)> = counts.to_vec();
    shares.sort_by(|a, b| (b.1 * (a.1 + a.2)).cmp(&(a.1 * (b.1 + b.2))));
    shares
        .iter()
        .zip(1..)
        .map(|((agency, online, in_person), rank)| {
            let percent = *online as f64 * 100.0 / (online + in_person) as f64;
            ((*agency).to_owned(), rank, format!("{percent:.2}"))
        })
        .collect()
}

/// A rate of `online` receptions out of `online + in_person` as the page shows it: its
/// percentage as the API writes it, its numerator and its denominator; `null` when nothing was
/// received.
fn rate(online: u64, in_person: u64) -> serde_json::Value {
    let all = online + in_person;
    if all == 0 {
        return serde_json::Value::Null;
    }
    let percent = online as f64 * 100.0 / all as f64;
    json!([format!("{percent:.2}"), online, all])
}

/// The request publishing last month's report of the online dossier rate for the nation
/// (`period`): every ministry and province, and the agencies together.
fn report_request(title: &str, period: &str) -> String {
    json!({
        "publicationId": REPORT,
        "title": title,
        "blockMetrics": { "nation": true, "metric": "online-dossier-rate", "period": period },
    })
    .to_string()
}

/// What the browser must find of the report (`REPORT`, titled `title`) of `period`, whose last
/// day is `last_day`, published when `PUBLISHED` had reported on `day` and revised since by
/// `LATE`: every agency of the nation that day (`catalog`) with its value as published, the
/// pooled figure as published and now, and the agencies whose value moved.
fn report_expected(
    catalog: &govpulse_core::Catalog,
    (title, period, day, last_day): (&str, &str, &str, time::Date),
) -> serde_json::Value {
    let (late_agency, late_events) = LATE;
    let counts = |agency: &str, late: bool| {
        PUBLISHED
            .iter()
            .find(|(a, _, _)| *a == agency)
            .map_or((0, 0), |&(_, online, in_person)| {
                let extra = if late && agency == late_agency {
                    late_events
                } else {
                    0
                };
                (online + extra, in_person)
            })
    };
    let mut nation: Vec<_> = catalog
        .agencies()
        .filter(|a| a.parent.is_none() && a.exists_on(last_day))
        .collect();
    nation.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    assert!(
        PUBLISHED
            .iter()
            .all(|(agency, _, _)| nation.iter().any(|a| a.id.as_str() == *agency)),
        "the published provinces are of the nation"
    );
    let agencies = nation
        .iter()
        .map(|a| {
            let (online, in_person) = counts(a.id.as_str(), false);
            json!([a.id.as_str(), a.name, rate(online, in_person)])
        })
        .collect::<Vec<_>>();
    let revised = nation
        .iter()
        .filter_map(|a| {
            let id = a.id.as_str();
            let (before, after) = (counts(id, false), counts(id, true));
            let (published, now) = (rate(before.0, before.1), rate(after.0, after.1));
            (published != now).then(|| {
                json!({
                    "agency": id,
                    "published": published,
                    "now": now,
                    "lateEvents": after.0 + after.1 - before.0 - before.1,
                })
            })
        })
        .collect::<Vec<_>>();
    let pooled = |late: bool| {
        let (online, in_person) = nation.iter().fold((0, 0), |(o, p), a| {
            let (online, in_person) = counts(a.id.as_str(), late);
            (o + online, p + in_person)
        });
        rate(online, in_person)
    };
    assert_ne!(
        pooled(false),
        pooled(true),
        "the late events move the pooled figure"
    );
    json!({
        "id": REPORT,
        "title": title,
        "period": period,
        "day": day,
        "agencies": agencies,
        "pooled": { "published": pooled(false), "now": pooled(true) },
        "revised": revised,
    })
}

/// The request publishing last month's ranking of the provinces by online dossier rate
/// (`period`) as `id`, titled `title`.
fn publication_request(id: &str, title: &str, period: &str) -> String {
    json!({
        "publicationId": id,
        "title": title,
        "query": { "metric": "online-dossier-rate", "block": "BLOCK_PROVINCE", "period": period },
    })
    .to_string()
}

/// `body` published on `deployment`'s ranking, anonymously (`POST /api/v1/publications`).
async fn publish(deployment: &Deployment, body: &str) -> http::Answer {
    http::post_json(deployment.ranking_addr(), "/api/v1/publications", &[], body).await
}

/// Publishes last month's ranking of the provinces by online dossier rate on `deployment`
/// (`PUBLISHED` having reported that month; anonymously, as a development server allows), then
/// last month's report of the same metric for the nation (`catalog`'s ministries and
/// provinces), and sends `LATE`'s late receptions of the same day; returns what the browser
/// must find, as the JSON `dashboard.mjs` takes, and the request that publishes the same
/// ranking again.
async fn publish_then_revise(
    deployment: &Deployment,
    catalog: &govpulse_core::Catalog,
) -> (serde_json::Value, String) {
    let (period, day, at) = last_month();
    let mut events = Vec::new();
    for (agency, online, in_person) in PUBLISHED {
        for i in 0..online + in_person {
            events.push(received(
                &format!("pub-{agency}-{i}"),
                agency,
                at,
                i < *online,
            ));
        }
    }
    deployment.accept_all(events).await;
    let title = format!("Tỷ lệ hồ sơ trực tuyến {period}");
    let body = publication_request(PUBLICATION, &title, &period);
    let published = publish(deployment, &body).await;
    assert_eq!(published.status, 201, "{}", published.text());
    let publication = &published.json()["publication"];
    assert_eq!(publication["publishedBy"], "anonymous", "{publication}");
    let again = publish(deployment, &body).await;
    assert_eq!(
        again.status,
        200,
        "an identical retry finds it: {}",
        again.text()
    );

    // The same month's report for the nation, before the late events.
    let last_day = at
        .date()
        .replace_day(at.month().length(at.year()))
        .expect("the month's last day");
    let report_title = format!("Báo cáo hồ sơ trực tuyến theo cơ quan {period}");
    let report = report_expected(catalog, (&report_title, &period, &day, last_day));
    let published = publish(deployment, &report_request(&report_title, &period)).await;
    assert_eq!(published.status, 201, "{}", published.text());
    let kept = &published.json()["publication"];
    assert_eq!(kept["publishedBy"], "anonymous", "{kept}");
    assert_eq!(
        kept["blockMetrics"]["summary"]["pooled"]["percent"], report["pooled"]["published"][0],
        "the report's pooled figure: {kept}"
    );

    let (late_agency, late_events) = LATE;
    let late = (0..late_events)
        .map(|i| received(&format!("late-{late_agency}-{i}"), late_agency, at, true))
        .collect();
    deployment.accept_all(late).await;

    let before = ranked(PUBLISHED);
    let after = ranked(
        &PUBLISHED
            .iter()
            .map(|&(agency, online, in_person)| {
                let extra = if agency == late_agency {
                    late_events
                } else {
                    0
                };
                (agency, online + extra, in_person)
            })
            .collect::<Vec<_>>(),
    );
    let standing = |rows: &[(String, u32, String)]| {
        let (_, rank, percent) = rows
            .iter()
            .find(|(agency, _, _)| agency == late_agency)
            .expect("the late province is published");
        json!([rank, percent])
    };
    // The live ranking marks revised every province whose rank or value moved since.
    let (marked, unmarked): (Vec<&str>, Vec<&str>) = before
        .iter()
        .map(|(agency, _, _)| agency.as_str())
        .partition(|agency| {
            let of = |rows: &[(String, u32, String)]| {
                rows.iter()
                    .find(|(a, _, _)| a == agency)
                    .map(|(_, rank, percent)| (*rank, percent.clone()))
            };
            of(&before) != of(&after)
        });
    assert!(
        marked.contains(&late_agency) && marked.len() > 1 && !unmarked.is_empty(),
        "the late events move the late province past another, not every province: {marked:?}"
    );
    let again_title = format!("{title}, điều chỉnh");
    let again = publication_request(PUBLICATION_AGAIN, &again_title, &period);
    let expected = json!({
        "id": PUBLICATION,
        "title": title,
        "period": period,
        "day": day,
        "rows": before.iter().map(|(agency, rank, percent)| json!([agency, rank, percent])).collect::<Vec<_>>(),
        "revised": {
            "agency": late_agency,
            "published": standing(&before),
            "now": standing(&after),
            "lateEvents": late_events,
        },
        "marked": marked,
        "unmarked": unmarked,
        "again": { "id": PUBLICATION_AGAIN, "title": again_title },
        "report": report,
    });
    (expected, again)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf()
}

/// The shipped catalog plus `UNITS` under `PROVINCE`, valid today.
fn catalog_with_units(dir: &Path) {
    std::fs::create_dir_all(dir).expect("catalog folder");
    let shipped = repo().join("deploy/catalog");
    for entry in std::fs::read_dir(&shipped).expect("deploy/catalog") {
        let path = entry.expect("catalog file").path();
        if path.extension().is_some_and(|e| e == "csv") {
            std::fs::copy(&path, dir.join(path.file_name().expect("file name")))
                .expect("copy catalog file");
        }
    }
    let mut units = std::fs::read_to_string(dir.join("units.csv")).expect("units.csv");
    if !units.ends_with('\n') {
        units.push('\n');
    }
    for (id, name) in UNITS {
        units.push_str(&format!("{id},{name},{PROVINCE},,\n"));
    }
    std::fs::write(dir.join("units.csv"), units).expect("write units.csv");
}

/// This year's targets for the online dossier rate, so that the ranking draws target lines
/// and counts the agencies meeting them.
fn targets_with_this_year(path: &Path) {
    // Its own targets only: the shipped file may hold this year's examples for the same
    // metric and blocks, and a target given twice is refused.
    let mut targets = String::new();
    let year = OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+7))
        .year();
    for (block, percent) in [("province", 55), ("ministry", 60)] {
        targets.push_str(&format!(
            "\n[[targets]]\nmetric = \"online-dossier-rate\"\nyear = {year}\nblock = \"{block}\"\npercent = {percent}\n"
        ));
    }
    targets.push_str(&format!(
        "\n[[targets]]\nmetric = \"online-dossier-rate\"\nyear = {year}\nunits_of = \"{PROVINCE}\"\npercent = 45\n"
    ));
    std::fs::write(path, targets).expect("write targets");
}

/// The units report receptions of their province's first procedure, each with its own
/// online habit, until `stop`.
async fn units_report(deployment: &Deployment, stop: CancellationToken) {
    let mut ingest = deployment.ingest();
    let mut sequence = 0u64;
    while !stop.is_cancelled() {
        let now = OffsetDateTime::now_utc();
        let events = UNITS
            .iter()
            .enumerate()
            .map(|(i, (unit, _))| {
                sequence += 1;
                // Unit i receives online in (i + 1) of every 6 dossiers.
                let online = sequence % 6 <= i as u64;
                DossierEvent {
                    event_id: format!("unit-{sequence}"),
                    agency_id: (*unit).to_owned(),
                    dossier_id: format!("HS-unit-{sequence}"),
                    procedure_id: format!("{PROVINCE}.p01"),
                    occurred_at: ts(now),
                    kind: Some(Kind::Received(DossierReceived {
                        channel: if online {
                            Channel::Online
                        } else {
                            Channel::InPerson
                        }
                        .into(),
                        digitized: online,
                        due_at: None,
                    })),
                    corrects: String::new(),
                }
            })
            .collect();
        let _ = ingest
            .submit_events(SubmitEventsRequest { events })
            .await
            .expect("units' batch accepted");
        // Pacing, not waiting for anything: the units report a batch every 400 ms, as a
        // steady stream the browser sees move.
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(400)) => {}
        }
    }
}

/// Waits until provinces are ranked for the year to date, as a live ranking shows it.
async fn until_ranked(deployment: &Deployment) {
    let mut stream = deployment
        .watch_ranking(provinces_by_online_rate("ytd"))
        .await;
    let ranked = async {
        loop {
            let message = stream
                .next()
                .await
                .expect("the stream stays open")
                .expect("a message");
            let ranked = match message.event {
                Some(Event::Snapshot(snapshot)) => snapshot.ranked_count,
                Some(Event::Changes(changes)) => changes.ranked_count,
                _ => 0,
            };
            if ranked > 0 {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ranked)
        .await
        .unwrap_or_else(|_| panic!("no province ranked within 30 s of load"));
}

/// Runs the browser test to its end, keeping its output (stdout, stderr); when it says the
/// silent agency's row shows it never reported, sends that agency's one event to `quiet`;
/// when it asks, refuses `quiet`'s alert `rules` and has the silent agency report again, and
/// publishes on `loaded` the ranking `republish` asks for.
async fn follow(
    child: &mut Child,
    quiet: &Deployment,
    rules: &Path,
    loaded: &Deployment,
    republish: &str,
) -> (ExitStatus, String, String) {
    let mut errors = child.stderr.take().expect("piped stderr");
    let errors = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = errors.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut stdout = String::new();
    // One online reception of `agency`, now, on the quiet deployment.
    let report = async |id: &str, agency: &str| {
        let event = received(id, agency.trim(), OffsetDateTime::now_utc(), true);
        quiet.accept_all(vec![event]).await;
    };
    while let Some(line) = lines.next_line().await.expect("the browser test's output") {
        if let Some(agency) = line.strip_prefix(READY) {
            report("silent-1", agency).await;
        }
        if line.trim() == REFUSE {
            refused_rules(rules);
        }
        if line.trim() == REPUBLISH {
            let again = publish(loaded, republish).await;
            assert_eq!(again.status, 201, "published again: {}", again.text());
        }
        if let Some(agency) = line.strip_prefix(REPORT_AGAIN) {
            report("silent-2", agency).await;
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait().await.expect("node ends");
    let stderr = errors.await.expect("the browser test's errors");
    (status, stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_live_ranking_and_an_agency_in_a_browser() {
    let browser = repo().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run deploy/bin/setup --test (it installs it into tests/browser/node_modules)"
    );
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let _ = std::fs::remove_dir_all(&scratch);
    let catalog = scratch.join("catalog");
    catalog_with_units(&catalog);
    let screenshots = scratch.join("screenshots");
    let targets = scratch.join("targets.toml");
    targets_with_this_year(&targets);
    let rules = scratch.join("alerts.toml");
    std::fs::write(&rules, alert_rules("3s")).expect("write the alert rules");

    let redis = RedisServer::start().expect("redis-server starts");
    let options = Options {
        catalog_dir: Some(catalog.clone()),
        targets: Some(targets),
        ..Options::default()
    };
    let deployment = Deployment::start_with(&redis, "dashboard", options).await;
    // No load: every agency is stale (never reported), and `SILENT`, once it has reported,
    // a second later, and alerts three seconds later. The loaded deployment has no alert
    // rules: some province of the load may well fall quiet for three seconds.
    let quiet = Deployment::start_with(
        &redis,
        "dashboard-quiet",
        Options {
            stale_after_secs: Some(1),
            alert_rules: Some(rules.clone()),
            ..Options::default()
        },
    )
    .await;
    let stop = CancellationToken::new();
    let country =
        Arc::new(govpulse_runtime::catalog_files::load(Some(&catalog)).expect("test catalog"));
    let load = common::background_load(&deployment, country.clone(), 200.0, 20, stop.clone());
    let units = units_report(&deployment, stop.clone());
    let browse = async {
        until_ranked(&deployment).await;
        let (publication, again) = publish_then_revise(&deployment, &country).await;
        let url = format!("http://{}/", deployment.ranking_addr());
        let quiet_url = format!("http://{}/", quiet.ranking_addr());
        let mut child = tokio::process::Command::new("node")
            .arg(browser.join("dashboard.mjs"))
            .arg(&url)
            .arg(&screenshots)
            .arg(PROVINCE)
            .arg(&quiet_url)
            .arg(SILENT)
            .arg(publication.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (deploy/bin/setup --test installs what it needs)");
        let output = tokio::time::timeout(
            Duration::from_secs(300),
            follow(&mut child, &quiet, &rules, &deployment, &again),
        )
        .await
        .expect("the browser test finishes within 5 minutes");
        stop.cancel();
        (output, publication)
    };
    let ((), ((status, stdout, stderr), publication)) = tokio::join!(units, browse);
    let _ = load.await;
    deployment.stop().await;
    quiet.stop().await;

    eprintln!("{stdout}{stderr}");
    assert!(
        status.success(),
        "the browser test failed ({status}): {stderr}"
    );
    assert!(stdout.contains("dashboard: all checks passed"), "{stdout}");
    for name in [
        "ranking-desktop.png",
        "ranking-phone.png",
        "agency-desktop.png",
        "agency-phone.png",
        "ranking-silent.png",
        "agency-silent.png",
        "alerts-phone.png",
        "alerts-refused.png",
        "publications-desktop.png",
        "publication-desktop.png",
        "publication-phone.png",
        "report-desktop.png",
        "report-phone.png",
        "ranking-published-desktop.png",
        "ranking-published-phone.png",
    ] {
        let path = screenshots.join(name);
        assert!(
            stdout.contains(&format!("screenshot: {}", path.display())),
            "{name} reported: {stdout}"
        );
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{name} is a real picture ({size} bytes)");
    }
    assert!(
        UNITS.iter().any(|(_, name)| stdout.contains(name)),
        "the agency page lists its units by name: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "\"Procedures to fix · thủ tục cần cải thiện\": {PROVINCE}.p"
        )),
        "the agency page lists its worst procedures: {stdout}"
    );
    assert!(
        stdout.contains(
            "alert rules file refused: rules[2].after: \"<b>soon</b>\" is not a duration"
        ),
        "the alerts panel says why the rules file was refused, markup as text: {stdout}"
    );
    assert!(
        !stdout.contains(&rules.display().to_string()),
        "the public page never shows the rules file's path on the server: {stdout}"
    );
    let revision = format!(
        "{} late data: {} events counted since publication",
        publication["day"].as_str().expect("the day"),
        LATE.1
    );
    assert!(
        stdout.contains("ok: revision log: ") && stdout.contains(&revision),
        "the revision log names the late events and their day ({revision}): {stdout}"
    );
    let report = &publication["report"];
    let moved = report["revised"]
        .as_array()
        .expect("the report's revised agencies")
        .iter()
        .map(|revised| revised["agency"].as_str().expect("an agency id"))
        .collect::<Vec<_>>()
        .join(", ");
    let percent = |figure: &serde_json::Value| figure[0].as_str().expect("a percent").to_owned();
    let pooled = format!(
        "{}% → {}%",
        percent(&report["pooled"]["published"]),
        percent(&report["pooled"]["now"])
    );
    for screen in ["desktop", "phone"] {
        let line = format!(
            "ok: report {REPORT} on a {screen}: revised {moved} (late data of {}); the agencies together revised, {pooled}",
            publication["day"].as_str().expect("the day")
        );
        assert!(
            stdout.contains(&line),
            "the report's revision log lists {moved} and the pooled figure revised ({line}): {stdout}"
        );
    }
    let marked = publication["marked"]
        .as_array()
        .expect("the marked provinces")
        .iter()
        .map(|agency| agency.as_str().expect("an agency id"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        stdout.contains(&format!(
            "ok: live ranking of {}: revised {marked};",
            publication["period"].as_str().expect("the period")
        )),
        "the live ranking of the published period marks the revised provinces ({marked}): {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "ok: published again as {PUBLICATION_AGAIN}: the live ranking names it"
        )),
        "the live ranking follows a new publication without a reload: {stdout}"
    );
    assert!(
        stdout.contains("ok: quiet deployment: \"No publication yet."),
        "a deployment without publications says so: {stdout}"
    );
}
