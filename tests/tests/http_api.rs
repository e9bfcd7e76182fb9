//! JSON over HTTP and gRPC-Web, end to end, with a plain HTTP/1.1 client: events posted as
//! JSON get the outcomes gRPC gives and are counted once; credentials and rates hold as
//! over gRPC; every read route answers JSON and CSV; the live ranking streams as
//! Server-Sent Events and resumes from `Last-Event-ID`; a gRPC-Web call framed by hand.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use govpulse_e2e::{
    Deployment, Spawned, credential_for,
    http::{Answer, EventStream, find_by, get, open_events, post_json},
    metrics_request,
    pki::{Pki, write_pem},
    scratch, two_days_ago_noon,
};
use govpulse_edge::auth::{TokenFileArgs, new_token};
use govpulse_proto::{
    ingest::SubmitEventsRequest,
    ranking::{GetRankingRequest, GetRankingResponse, RankingQuery, ranking_query::Selection},
};
use prost::Message;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A reception as an agency's system writes it in JSON.
fn reception(id: &str, agency: &str, at: OffsetDateTime, channel: &str) -> Value {
    json!({
        "eventId": id,
        "agencyId": agency,
        "dossierId": format!("HS-{id}"),
        "procedureId": format!("{agency}.p01"),
        "occurredAt": at.format(&Rfc3339).expect("rfc 3339"),
        "received": {"channel": channel, "digitized": true},
    })
}

fn batch(events: &[Value]) -> String {
    json!({ "events": events }).to_string()
}

fn statuses(response: &Value) -> Vec<&str> {
    response["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .map(|o| o["status"].as_str().expect("status"))
        .collect()
}

/// The first field violation of an error body.
fn violation(body: &Value) -> (String, String) {
    let detail = find_by(
        &body["details"],
        "@type",
        "type.googleapis.com/google.rpc.BadRequest",
    );
    let v = &detail["fieldViolations"][0];
    (
        v["field"].as_str().expect("field").to_owned(),
        v["description"].as_str().expect("description").to_owned(),
    )
}

/// A token file with one credential per (agency, roles); returns its path and the tokens.
fn tokens(name: &str, credentials: &[(&str, &str)]) -> (PathBuf, Vec<String>) {
    let mut text = String::new();
    let mut issued = Vec::new();
    for (agency, roles) in credentials {
        let (token, hash) = new_token();
        text.push_str(&credential_for(&hash, agency, roles));
        issued.push(token);
    }
    let path = scratch(name).join("tokens.toml");
    std::fs::write(&path, text).expect("tokens");
    (path, issued)
}

/// A tokens file (in a folder named after `name`) with a reporter of Phú Thọ and a reader of
/// Hà Nội: its path, and the `authorization` header of the reporter, then of the reader.
fn reporter_and_reader(name: &str) -> (PathBuf, String, String) {
    let (file, issued) = tokens(
        name,
        &[("phu-tho", "\"reporter\""), ("ha-noi", "\"reader\"")],
    );
    let bearer = |token: &String| format!("Bearer {token}");
    (file, bearer(&issued[0]), bearer(&issued[1]))
}

/// `body` posted anonymously as JSON to `/api/v1/events` at `ingest`, which must answer 200:
/// its answer.
async fn post_accepted(ingest: SocketAddr, body: &str) -> Value {
    let answer = post_json(ingest, "/api/v1/events", &[], body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// `body` posted as JSON to `/api/v1/events` at `ingest` with the header `authorization`.
async fn post_events(ingest: SocketAddr, authorization: &str, body: &str) -> Answer {
    post_json(
        ingest,
        "/api/v1/events",
        &[("authorization", authorization)],
        body,
    )
    .await
}

#[tokio::test]
async fn events_posted_as_json_get_the_outcomes_grpc_gives_and_are_counted_once() {
    let deployment = Deployment::start_alone("http-events").await;
    let ingest = deployment.ingest_addr();
    let at = two_days_ago_noon();
    let future = OffsetDateTime::now_utc() + time::Duration::days(2);
    let events = batch(&[
        reception("j-1", "phu-tho", at, "CHANNEL_ONLINE"),
        reception("j-2", "phu-tho", at, "CHANNEL_ONLINE"),
        reception("j-3", "phu-tho", at, "CHANNEL_IN_PERSON"),
        reception("j-4", "atlantis", at, "CHANNEL_ONLINE"),
        reception("j-5", "phu-tho", future, "CHANNEL_ONLINE"),
    ]);

    let first = post_accepted(ingest, &events).await;
    let rejected = "OUTCOME_STATUS_REJECTED";
    let accepted = "OUTCOME_STATUS_ACCEPTED";
    let duplicate = "OUTCOME_STATUS_DUPLICATE";
    assert_eq!(
        statuses(&first),
        [accepted, accepted, accepted, rejected, rejected]
    );
    assert_eq!(first["outcomes"][3]["field"], "events[3].agency_id");
    assert_eq!(first["outcomes"][4]["field"], "events[4].occurred_at");
    assert_eq!(
        (first["accepted"].clone(), first["rejected"].clone()),
        (json!(3), json!(2))
    );

    // The retry of the same ids is counted once, and answers exactly as gRPC does.
    let mut retry = post_accepted(ingest, &events).await;
    assert_eq!(
        statuses(&retry),
        [duplicate, duplicate, duplicate, rejected, rejected]
    );
    assert_eq!(retry["outcomes"][3], first["outcomes"][3]);
    let request: SubmitEventsRequest = serde_json::from_str(&events).expect("pbjson");
    // gRPC is still served on the same port.
    let grpc = deployment.submit(request.events).await;
    let mut grpc = serde_json::to_value(&grpc).expect("json");
    // The time-ahead reason names the clock's reading at the call; everything else is equal.
    for answer in [&mut grpc, &mut retry] {
        answer["outcomes"][4]["reason"] = json!("(ahead of the server clock)");
    }
    assert_eq!(grpc, retry);

    // Malformed JSON, a wrong type, a body that is not JSON: refused whole, nothing counted.
    let malformed = post_json(ingest, "/api/v1/events", &[], "{\"events\": [").await;
    assert_eq!(malformed.status, 400);
    let body = malformed.json();
    assert_eq!(body["code"], "INVALID_ARGUMENT");
    let (field, description) = violation(&body);
    assert_eq!(field, "events", "the error is inside the events list");
    assert!(description.contains("line 1 column 12"), "{description}");
    let not_json = post_json(ingest, "/api/v1/events", &[], "events: []").await;
    assert_eq!(not_json.status, 400);
    assert_eq!(violation(&not_json.json()).0, "body");
    let mut wrong = reception("j-6", "phu-tho", at, "CHANNEL_ONLINE");
    wrong["occurredAt"] = json!("yesterday");
    let wrong = post_json(ingest, "/api/v1/events", &[], &batch(&[wrong])).await;
    assert_eq!(wrong.status, 400);
    assert_eq!(violation(&wrong.json()).0, "events[0].occurred_at");
    let text = govpulse_e2e::http::call(
        ingest,
        "POST",
        "/api/v1/events",
        &[("content-type", "text/plain")],
        events.clone().into_bytes(),
    )
    .await;
    assert_eq!(text.status, 415);
    assert_eq!(violation(&text.json()).0, "Content-Type");

    // Counted once: through ranking's read edge, over HTTP and gRPC, as aggregate says.
    let period = at.date().to_string();
    let read = get(
        deployment.ranking_addr(),
        &format!("/api/v1/metrics?agency_id=phu-tho&period={period}&metric=online-dossier-rate"),
        &[],
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.text());
    let read = read.json();
    assert_eq!(read["counters"]["received"], "3");
    assert_eq!(read["counters"]["receivedOnline"], "2");
    assert_eq!(
        read["metrics"][0]["rate"],
        json!({"numerator": "2", "denominator": "3", "percent": "66.67"})
    );
    let from_aggregate = deployment
        .get_metrics("phu-tho", &period, &["online-dossier-rate"])
        .await
        .expect("aggregate");
    let from_ranking = deployment
        .ranking()
        .get_metrics(metrics_request(
            "phu-tho",
            &period,
            &["online-dossier-rate"],
        ))
        .await
        .expect("ranking forwards")
        .into_inner();
    assert_eq!(from_ranking, from_aggregate);
    assert_eq!(serde_json::to_value(&from_aggregate).expect("json"), read);
    deployment.stop().await;
}

#[tokio::test]
async fn a_json_caller_needs_the_same_credential_and_rate_as_a_grpc_one() {
    let deployment = Deployment::start_alone("http-auth").await;
    let (file, reporter, reader) = reporter_and_reader("auth");
    let config = govpulse_ingest::Config {
        token_file: TokenFileArgs::at(file),
        allow_anonymous: false,
        limits: govpulse_ingest::Limits {
            rate_per_agency: 1,
            burst_per_agency: 2,
            max_batch: 2,
            ..govpulse_ingest::Limits::default().without_per_agency()
        },
        ..deployment.ingest_config()
    };
    let server = Spawned::ingest(config).await;
    let ingest = server.addr();
    let at = two_days_ago_noon();
    let two = |tag: &str, agency: &str| {
        batch(&[
            reception(&format!("{tag}-1"), agency, at, "CHANNEL_ONLINE"),
            reception(&format!("{tag}-2"), agency, at, "CHANNEL_ONLINE"),
        ])
    };

    let anonymous = post_json(ingest, "/api/v1/events", &[], &two("a", "phu-tho")).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert_eq!(anonymous.json()["code"], "UNAUTHENTICATED");
    let unknown = post_events(ingest, "Bearer not-a-token", &two("a", "phu-tho")).await;
    assert_eq!(unknown.status, 401);
    let no_role = post_events(ingest, &reader, &two("a", "phu-tho")).await;
    assert_eq!(no_role.status, 403);
    assert_eq!(no_role.json()["code"], "PERMISSION_DENIED");

    let other = post_events(ingest, &reporter, &two("b", "ha-noi")).await;
    assert_eq!(other.status, 200, "{}", other.text());
    let other = other.json();
    assert_eq!(other["rejected"], 2);
    assert_eq!(other["outcomes"][0]["field"], "events[0].agency_id");
    assert!(
        other["outcomes"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("permission denied")),
        "{other}"
    );

    // The bucket (burst 2) was emptied by the refused batch above; the next waits ~2 s.
    let limited = post_events(ingest, &reporter, &two("c", "phu-tho")).await;
    assert_eq!(limited.status, 429, "{}", limited.text());
    let seconds: u64 = limited
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .expect("a Retry-After header");
    assert!((1..=3).contains(&seconds), "{seconds}");
    let body = limited.json();
    assert_eq!(body["code"], "RESOURCE_EXHAUSTED");
    let retry = find_by(
        &body["details"],
        "@type",
        "type.googleapis.com/google.rpc.RetryInfo",
    );
    assert!(
        retry["retryDelay"]
            .as_str()
            .is_some_and(|s| s.ends_with('s')),
        "{body}"
    );
    // Not a wait for an event: waiting as long as Retry-After says is what a caller is
    // promised to be enough, and that promise is under test.
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let later = post_events(ingest, &reporter, &two("c", "phu-tho")).await;
    assert_eq!(later.status, 200, "{}", later.text());
    assert_eq!(later.json()["accepted"], 2);

    server.stop().await;
    deployment.stop().await;
}

#[tokio::test]
async fn a_refused_caller_still_sending_its_body_gets_the_answer_not_a_reset() {
    let deployment = Deployment::start_alone("http-linger").await;
    let (file, _) = tokens("linger", &[("phu-tho", "\"reporter\"")]);
    let config = govpulse_ingest::Config {
        token_file: TokenFileArgs::at(file),
        allow_anonymous: false,
        ..deployment.ingest_config()
    };
    let server = Spawned::ingest(config).await;
    let ingest = server.addr();
    // 768 KiB: under curl's 1 MiB `Expect: 100-continue` threshold, so curl is still writing
    // it when the 401 comes back. Closed on unread bytes, the connection would be reset and
    // curl would report that ("000") instead of the answer.
    let body = format!("{{\"events\":[{}{{}}]}}", "{},".repeat(768 * 1024 / 3));
    let path = scratch("linger").join("body.json");
    std::fs::write(&path, &body).expect("body");
    for _ in 0..10 {
        let mut command = tokio::process::Command::new("curl");
        command
            .args([
                "-sS",
                "-w",
                "\n%{http_code}",
                "-H",
                "content-type: application/json",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", path.display()))
            .arg(format!("http://{ingest}/api/v1/events"));
        let answer = curl_answer(&mut command, "401").await;
        assert_eq!(answer["code"], "UNAUTHENTICATED");
    }
    server.stop().await;
    deployment.stop().await;
}

/// Phú Thọ 2 of 2 online, Hà Nội 1 of 2, posted as JSON.
async fn report_some(deployment: &Deployment, at: OffsetDateTime, tag: &str) {
    let events = batch(&[
        reception(&format!("{tag}-1"), "phu-tho", at, "CHANNEL_ONLINE"),
        reception(&format!("{tag}-2"), "phu-tho", at, "CHANNEL_ONLINE"),
        reception(&format!("{tag}-3"), "ha-noi", at, "CHANNEL_ONLINE"),
        reception(&format!("{tag}-4"), "ha-noi", at, "CHANNEL_IN_PERSON"),
    ]);
    let answer = post_accepted(deployment.ingest_addr(), &events).await;
    assert_eq!(answer["accepted"], 4);
}

fn csv_lines(answer: &govpulse_e2e::http::Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    let text = answer.text();
    let text = text.strip_prefix('\u{feff}').expect("a byte order mark");
    text.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn every_read_route_answers_json_and_csv() {
    let deployment = Deployment::start_alone("http-read").await;
    let ranking = deployment.ranking_addr();
    let at = two_days_ago_noon();
    let period = at.date().to_string();
    report_some(&deployment, at, "r").await;

    // Ranking: the same as gRPC's, as JSON; as CSV with a header row and the names intact.
    let path =
        format!("/api/v1/ranking?metric=online-dossier-rate&block=provinces&period={period}&top=5");
    let json_ranking = get(ranking, &path, &[]).await;
    assert_eq!(json_ranking.status, 200, "{}", json_ranking.text());
    let grpc = deployment
        .ranking()
        .get_ranking(GetRankingRequest {
            query: Some(RankingQuery {
                metric: "online-dossier-rate".to_owned(),
                block: govpulse_proto::catalog::Block::Province.into(),
                period: period.clone(),
                selection: Some(Selection::Top(5)),
                ..Default::default()
            }),
        })
        .await
        .expect("grpc ranking")
        .into_inner();
    assert_eq!(
        json_ranking.json(),
        serde_json::to_value(&grpc).expect("json")
    );
    assert_eq!(json_ranking.json()["rows"][0]["agencyId"], "phu-tho");
    let csv = get(ranking, &format!("{path}&format=csv"), &[]).await;
    assert_eq!(
        csv.header("content-disposition"),
        Some(
            format!("attachment; filename=\"ranking-online-dossier-rate-province-{period}.csv\"")
                .as_str()
        )
    );
    let lines = csv_lines(&csv);
    assert!(lines[0].starts_with("rank,previous_period_rank,places_gained,agency_id,agency_name,percent,numerator,denominator"), "{}", lines[0]);
    assert!(
        lines[1].starts_with("1,0,0,phu-tho,Phú Thọ,100.00,2,2,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("2,0,0,ha-noi,Hà Nội,50.00,1,2,"),
        "{}",
        lines[2]
    );
    assert_eq!(lines.len(), 1 + grpc.rows.len());

    // Metrics: several metrics, repeated or comma-separated; CSV through Accept.
    let path = format!(
        "/api/v1/metrics?agency_id=ha-noi&period={period}&metric=online-dossier-rate,digitized-reception-rate&metric=on-time-rate"
    );
    let metrics = get(ranking, &path, &[]).await.json();
    assert_eq!(
        metrics["metrics"].as_array().map(Vec::len),
        Some(3),
        "{metrics}"
    );
    let lines = csv_lines(&get(ranking, &path, &[("accept", "text/csv")]).await);
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("agency_id,agency_name,period,first_day,last_day,metric,percent"));
    assert!(lines.iter().any(|l| l.starts_with(&format!(
        "ha-noi,Hà Nội,{period},{period},{period},online-dossier-rate,50.00,1,2,"
    ))));
    // Every line as wide as the header; the last columns say the period is over and the
    // agency reported just now.
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(
        header[header.len() - 3..],
        ["provisional", "stale", "last_accepted_at"]
    );
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        assert_eq!(
            cells[cells.len() - 3..cells.len() - 1],
            ["false", "false"],
            "{line}"
        );
        assert!(cells[cells.len() - 1].ends_with('Z'), "{line}");
    }

    // Block metrics: a block, a parent, the nation; one scope only.
    let block = get(
        ranking,
        &format!(
            "/api/v1/block-metrics?block=provinces&metric=online-dossier-rate&period={period}"
        ),
        &[],
    )
    .await
    .json();
    let provinces = block["agencies"].as_array().expect("agencies").len();
    assert_eq!(provinces, 34, "the provinces after the 2025 merger");
    assert_eq!(block["summary"]["pooled"]["percent"], "75.00");
    let nation = get(
        ranking,
        &format!("/api/v1/block-metrics?nation=true&metric=online-dossier-rate&period={period}"),
        &[],
    )
    .await
    .json();
    assert!(nation["agencies"].as_array().expect("agencies").len() > provinces);
    let children = get(
        ranking,
        &format!(
            "/api/v1/block-metrics?parent_id=ha-noi&metric=online-dossier-rate&period={period}"
        ),
        &[],
    )
    .await;
    assert_eq!(children.status, 200, "{}", children.text());
    let lines = csv_lines(&get(ranking, &format!("/api/v1/block-metrics?block=BLOCK_PROVINCE&metric=online-dossier-rate&period={period}&format=csv"), &[]).await);
    assert_eq!(lines.len(), 1 + provinces);
    let both = get(ranking, &format!("/api/v1/block-metrics?block=provinces&nation=true&metric=online-dossier-rate&period={period}"), &[]).await;
    assert_eq!(both.status, 400);
    assert_eq!(violation(&both.json()).0, "scope");

    // Agencies: the catalog, public.
    let agencies = get(ranking, "/api/v1/agencies?block=provinces", &[])
        .await
        .json();
    let ha_noi = find_by(&agencies["agencies"], "id", "ha-noi");
    assert_eq!(
        (&ha_noi["name"], &ha_noi["block"]),
        (&json!("Hà Nội"), &json!("BLOCK_PROVINCE"))
    );
    let lines = csv_lines(&get(ranking, "/api/v1/agencies?block=ministries&format=csv", &[]).await);
    assert_eq!(lines[0], "id,name,block,parent_id,code");
    assert!(lines.len() > 10);

    // Mistakes name what is wrong.
    for (query, field) in [
        ("metric=online-dossier-rate&blok=provinces", "blok"),
        ("metric=online-dossier-rate&block=cities", "block"),
        ("metric=speed&block=provinces", "query.metric"),
    ] {
        let path = format!("/api/v1/ranking?{query}&period={period}");
        let answer = get(ranking, &path, &[]).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text());
        assert_eq!(violation(&answer.json()).0, field, "{path}");
    }
    let bad_deadline = get(ranking, "/api/v1/agencies", &[("x-server-timeout", "soon")]).await;
    assert_eq!(violation(&bad_deadline.json()).0, "X-Server-Timeout");
    let hurried = get(
        ranking,
        &format!("/api/v1/block-metrics?nation=true&metric=on-time-rate&period={period}"),
        &[("x-server-timeout", "0.000001")],
    )
    .await;
    assert_eq!(hurried.status, 504, "{}", hurried.text());
    assert_eq!(hurried.json()["code"], "DEADLINE_EXCEEDED");
    // A page of another site may read (a CORS preflight, then the answer allows any origin).
    let preflight = govpulse_e2e::http::call(
        ranking,
        "OPTIONS",
        "/api/v1/ranking/watch",
        &[
            ("origin", "https://dashboard.example"),
            ("access-control-request-method", "GET"),
            (
                "access-control-request-headers",
                "authorization, last-event-id",
            ),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(
        preflight
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("authorization") && h.contains("last-event-id"))
    );
    let cross = get(
        ranking,
        "/api/v1/agencies",
        &[("origin", "https://dashboard.example")],
    )
    .await;
    assert_eq!(cross.header("access-control-allow-origin"), Some("*"));
    let nowhere = get(ranking, "/api/v1/nowhere", &[]).await;
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.json()["code"], "NOT_FOUND");
    deployment.stop().await;
}

#[tokio::test]
async fn reading_needs_a_reader_credential_when_reading_is_not_public() {
    let deployment = Deployment::start_alone("http-reader").await;
    let (file, reporter, reader) = reporter_and_reader("reader");
    let config = govpulse_ranking::Config {
        public_read: false,
        token_file: TokenFileArgs::at(file),
        ..deployment.ranking_config()
    };
    let server = Spawned::ranking(config).await;
    let ranking = server.addr();
    let period = two_days_ago_noon().date().to_string();
    for path in [
        format!("/api/v1/ranking?metric=online-dossier-rate&block=provinces&period={period}"),
        format!("/api/v1/metrics?agency_id=ha-noi&period={period}"),
        format!("/api/v1/block-metrics?block=provinces&metric=on-time-rate&period={period}"),
        format!("/api/v1/ranking/watch?metric=online-dossier-rate&block=provinces&period={period}"),
    ] {
        let anonymous = get(ranking, &path, &[]).await;
        assert_eq!(anonymous.status, 401, "{path}: {}", anonymous.text());
        let wrong_role = get(ranking, &path, &[("authorization", &reporter)]).await;
        assert_eq!(wrong_role.status, 403, "{path}");
        if !path.contains("watch") {
            let read = get(ranking, &path, &[("authorization", &reader)]).await;
            assert_eq!(read.status, 200, "{path}: {}", read.text());
        }
    }
    // The catalog stays public, as over gRPC.
    assert_eq!(get(ranking, "/api/v1/agencies", &[]).await.status, 200);
    server.stop().await;
    deployment.stop().await;
}

/// Reads events until one whose JSON has `key`; returns it and its id.
async fn until(stream: &mut EventStream, key: &str) -> (Value, u64) {
    loop {
        let event = stream
            .next_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no {key} message"));
        assert_eq!(event.event, None, "{event:?}");
        let message: Value = serde_json::from_str(&event.data).expect("json message");
        let id: u64 = event
            .id
            .as_deref()
            .and_then(|i| i.parse().ok())
            .expect("an id");
        assert_eq!(
            message["revision"],
            id.to_string(),
            "the id is the revision"
        );
        if message.get(key).is_some() {
            return (message, id);
        }
        assert!(
            message.get("heartbeat").is_some() || message.get("snapshot").is_some(),
            "unexpected before {key}: {message}"
        );
    }
}

fn changed_agencies(message: &Value) -> Vec<String> {
    message["changes"]["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|c| c["row"]["agencyId"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_live_ranking_streams_as_server_sent_events_and_resumes_from_last_event_id() {
    let deployment = Deployment::start_alone("http-watch").await;
    let ranking = deployment.ranking_addr();
    let at = two_days_ago_noon();
    let path = format!(
        "/api/v1/ranking/watch?metric=online-dossier-rate&block=provinces&period={}&top=5",
        at.date()
    );
    let mut stream = open_events(ranking, &path, &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let (_, snapshot) = until(&mut stream, "snapshotComplete").await;

    // Phú Thọ reports: a change, with a higher revision as its id.
    let one = batch(&[reception("w-1", "phu-tho", at, "CHANNEL_ONLINE")]);
    post_accepted(deployment.ingest_addr(), &one).await;
    let (change, last) = until(&mut stream, "changes").await;
    assert!(last > snapshot);
    assert_eq!(changed_agencies(&change), ["phu-tho"]);
    drop(stream);

    // Hà Nội reports while the browser is away; it comes back with Last-Event-ID and gets
    // that change only: no snapshot again, no Phú Thọ again. Another browser, which stayed,
    // shows when the replica has published that change.
    let mut stayed = open_events(ranking, &path, &[]).await;
    until(&mut stayed, "snapshotComplete").await;
    let two = batch(&[
        reception("w-2", "ha-noi", at, "CHANNEL_ONLINE"),
        reception("w-3", "ha-noi", at, "CHANNEL_IN_PERSON"),
    ]);
    post_accepted(deployment.ingest_addr(), &two).await;
    let (published, _) = until(&mut stayed, "changes").await;
    assert_eq!(changed_agencies(&published), ["ha-noi"]);
    drop(stayed);
    let mut resumed = open_events(ranking, &path, &[("last-event-id", &last.to_string())]).await;
    let first = resumed
        .next_within(Duration::from_secs(10))
        .await
        .expect("a first message");
    let message: Value = serde_json::from_str(&first.data).expect("json");
    assert!(
        message.get("changes").is_some(),
        "resumed, not reset: {message}"
    );
    assert_eq!(changed_agencies(&message), ["ha-noi"]);
    assert!(first.id.and_then(|i| i.parse::<u64>().ok()).expect("id") > last);

    // A revision the replica never published: a reset and a fresh snapshot.
    let mut unknown = open_events(ranking, &path, &[("last-event-id", "12345")]).await;
    let (reset, _) = until(&mut unknown, "reset").await;
    assert_eq!(reset["reset"]["requestedRevision"], "12345");
    until(&mut unknown, "snapshotComplete").await;
    drop(unknown);
    let bad = get(ranking, &path, &[("last-event-id", "yesterday")]).await;
    assert_eq!(bad.status, 400);
    assert_eq!(violation(&bad.json()).0, "Last-Event-ID");

    // Shutdown ends the stream cleanly, saying why.
    deployment.stop().await;
    let mut end = None;
    while let Some(event) = resumed.next_within(Duration::from_secs(10)).await {
        end = Some(event);
    }
    let end = end.expect("a last event");
    assert_eq!(end.event.as_deref(), Some("status"), "{end:?}");
    let status: Value = serde_json::from_str(&end.data).expect("json");
    assert_eq!(status["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn a_browser_calls_the_grpc_api_through_grpc_web() {
    let deployment = Deployment::start_alone("http-grpc-web").await;
    let at = two_days_ago_noon();
    report_some(&deployment, at, "g").await;
    let request = GetRankingRequest {
        query: Some(RankingQuery {
            metric: "online-dossier-rate".to_owned(),
            block: govpulse_proto::catalog::Block::Province.into(),
            period: at.date().to_string(),
            selection: Some(Selection::Top(2)),
            ..Default::default()
        }),
    };
    // A gRPC-Web frame: flag 0 (a message), its length (big-endian), the message.
    let message = request.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    body.extend_from_slice(&message);
    let answer = govpulse_e2e::http::call(
        deployment.ranking_addr(),
        "POST",
        "/govpulse.ranking.v1.RankingService/GetRanking",
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        body,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/grpc-web+proto")
    );
    // The answer: one message frame, then a trailers frame (flag 0x80).
    let bytes = &answer.body;
    assert_eq!(bytes[0], 0);
    let len = u32::from_be_bytes(bytes[1..5].try_into().expect("length")) as usize;
    let response = GetRankingResponse::decode(&bytes[5..5 + len]).expect("a GetRankingResponse");
    let trailers = &bytes[5 + len..];
    assert_eq!(trailers[0], 0x80);
    let trailers = String::from_utf8_lossy(&trailers[5..]).to_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let grpc = deployment
        .ranking()
        .get_ranking(request)
        .await
        .expect("grpc")
        .into_inner();
    assert_eq!(response, grpc);
    assert_eq!(response.rows[0].agency_id, "phu-tho");
    deployment.stop().await;
}

#[tokio::test]
async fn a_client_certificate_identifies_the_agency_over_json_too() {
    let deployment = Deployment::start_alone("http-mtls").await;
    let dir = scratch("mtls");
    let servers = Pki::new("govpulse test server CA");
    let agencies = Pki::new("govpulse test agency CA");
    let (cert, key) = write_pem(&dir, "ingest", &servers.issue(&["localhost"], &[], false));
    let (client_cert, client_key) = write_pem(
        &dir,
        "ha-noi",
        &agencies.issue(&[], &["govpulse:agency:ha-noi"], false),
    );
    let server_ca = dir.join("servers.crt");
    std::fs::write(&server_ca, servers.ca_pem()).expect("server ca");
    let client_ca = dir.join("agencies.crt");
    std::fs::write(&client_ca, agencies.ca_pem()).expect("client ca");
    let config = govpulse_ingest::Config {
        host: govpulse_edge::host::HostArgs {
            tls: govpulse_runtime::tls::TlsArgs {
                tls_cert: Some(cert),
                tls_key: Some(key),
                tls_client_ca: Some(client_ca),
                plaintext: false,
            },
            ..Default::default()
        },
        allow_anonymous: false,
        ..deployment.ingest_config()
    };
    let server = Spawned::ingest(config).await;
    let port = server.addr().port();
    let at = two_days_ago_noon();
    let body = batch(&[
        reception("m-1", "ha-noi", at, "CHANNEL_ONLINE"),
        reception("m-2", "hai-phong", at, "CHANNEL_ONLINE"),
    ]);
    // curl, as an agency's script would call it: the server's CA, the agency's certificate.
    let curl = |with_certificate: bool| {
        let mut command = tokio::process::Command::new("curl");
        command.args([
            "-sS",
            "-w",
            "\n%{http_code}",
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            "--cacert",
            server_ca.to_str().expect("path"),
            "-H",
            "content-type: application/json",
            "--data-binary",
            &body,
        ]);
        if with_certificate {
            command.args([
                "--cert",
                client_cert.to_str().expect("path"),
                "--key",
                client_key.to_str().expect("path"),
            ]);
        }
        command.arg(format!("https://localhost:{port}/api/v1/events"));
        command
    };
    let answer = curl_answer(&mut curl(true), "200").await;
    assert_eq!(
        statuses(&answer),
        ["OUTCOME_STATUS_ACCEPTED", "OUTCOME_STATUS_REJECTED"],
        "the certificate's agency may send its own events, not another's: {answer}"
    );
    let answer = curl_answer(&mut curl(false), "401").await;
    assert_eq!(answer["code"], "UNAUTHENTICATED");
    server.stop().await;
    deployment.stop().await;
}

#[tokio::test]
async fn an_idle_event_stream_gets_a_comment_line_within_fifteen_seconds() {
    let deployment = Deployment::start_alone("http-idle").await;
    // A ranking whose own heartbeat is far away: only the keep-alive comments show life.
    let config = govpulse_ranking::Config {
        heartbeat_ms: 600_000,
        ..deployment.ranking_config()
    };
    let server = Spawned::ranking(config).await;
    let ranking = server.addr();
    let path = format!(
        "/api/v1/ranking/watch?metric=online-dossier-rate&block=ministries&period={}",
        two_days_ago_noon().date()
    );
    let mut stream = open_events(ranking, &path, &[]).await;
    until(&mut stream, "snapshotComplete").await;
    let quiet = stream.next_within(Duration::from_secs(15)).await;
    assert_eq!(quiet, None, "nothing changed, so no message");
    assert!(stream.comments >= 1, "a keep-alive comment within 15 s");
    server.stop().await;
    deployment.stop().await;
}

/// Runs a curl command given `-w "\n%{http_code}"`: the status code and the JSON answer;
/// curl's stderr joins a failed assertion's message.
async fn curl_answer(command: &mut tokio::process::Command, expect: &str) -> Value {
    let output = command.output().await.expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let (answer, code) = text.rsplit_once('\n').expect("body and status");
    assert_eq!(
        code,
        expect,
        "{text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(answer).expect("json")
}
