//! Nobody outside can take a service down: tried as an attacker would, on loopback, against
//! the service binaries as processes (their memory is measured from /proc), each bounded in
//! count and time. Credentials are checked before a body is read; connections are bounded in
//! number and time; live rankings in number; metric series by a closed set; a revoked token
//! ends its open streams; undecodable bytes are the caller's error; refusals are counted
//! without flooding the log.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bytes::Bytes;
use govpulse_e2e::{
    credential_for,
    processes::{ServiceProcess, free_port},
    prometheus::scrape,
    received, scratch, two_days_ago_noon, with_token, write_ahead,
};
use govpulse_edge::auth::token_hash;
use govpulse_proto::{
    event::DossierEvent,
    ingest::{
        StreamEventsRequest, SubmitEventsRequest, ingest_service_client::IngestServiceClient,
    },
    ranking::{
        GetRankingRequest, RankingQuery, WatchRankingRequest, WatchRankingResponse,
        ranking_query::Selection, ranking_service_client::RankingServiceClient,
    },
};
use http_body_util::{BodyExt, Full};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::{Code, Streaming, transport::Channel};

/// The tests of this file measure one process's memory and latency: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: u64 = 1024 * 1024;

/// A token file holding `credentials` (token, agency, roles), newer than any before it.
fn write_tokens(path: &Path, credentials: &[(&str, &str, &str)]) {
    let text: String = credentials
        .iter()
        .map(|(token, agency, roles)| credential_for(&token_hash(token), agency, roles))
        .collect();
    // A later modification time than the file's previous version, however fast the write.
    write_ahead(path, &text, 2);
}

/// The credential most tests call with: `reporter-1`, reporting for Hà Nội.
const REPORTER: &[(&str, &str, &str)] = &[("reporter-1", "ha-noi", "\"reporter\"")];

/// A token file holding `credentials` (as [`write_tokens`] writes them) in a scratch
/// folder `name`.
fn token_file(name: &str, credentials: &[(&str, &str, &str)]) -> PathBuf {
    let tokens = scratch(name).join("tokens.toml");
    write_tokens(&tokens, credentials);
    tokens
}

fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// aggregate (in-memory store) and ingest as processes, ingest wanting a credential from
/// `tokens`, with `extra` settings of its own.
fn start_ingest(tokens: &Path, extra: &[(&str, String)]) -> (ServiceProcess, ServiceProcess) {
    let aggregate = ServiceProcess::start(
        "govpulse-aggregate",
        &[
            ("GOVPULSE_LISTEN", local(free_port())),
            ("GOVPULSE_STORE", "memory".to_owned()),
            ("GOVPULSE_PLAINTEXT", "true".to_owned()),
        ],
    );
    let mut env = vec![
        ("GOVPULSE_LISTEN", local(free_port())),
        (
            "GOVPULSE_AGGREGATE_URL",
            format!("http://{}", aggregate.addr()),
        ),
        ("GOVPULSE_PLAINTEXT", "true".to_owned()),
        ("GOVPULSE_TOKENS", tokens.display().to_string()),
        ("GOVPULSE_TOKENS_RELOAD_MS", "100".to_owned()),
        ("GOVPULSE_RATE_PER_AGENCY", "0".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let ingest = ServiceProcess::start("govpulse-ingest", &env);
    (aggregate, ingest)
}

/// [`start_ingest`] with a token file (named after `name`) of [`REPORTER`] and its
/// Prometheus `/metrics` on a free port: aggregate, ingest, and that port's address.
fn start_measured_ingest(name: &str) -> (ServiceProcess, ServiceProcess, SocketAddr) {
    let tokens = token_file(name, REPORTER);
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (aggregate, ingest) =
        start_ingest(&tokens, &[("GOVPULSE_METRICS_LISTEN", metrics.to_string())]);
    (aggregate, ingest, metrics)
}

fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect_lazy()
}

/// A gRPC message frame: flag 0, length, message.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// One raw gRPC call over HTTP/2: the status code (from the headers of a trailers-only
/// answer, or the trailers) and message.
async fn raw_grpc(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (i32, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(error) => return (-1, error.to_string()),
    };
    let headers = response.headers().clone();
    let collected = response.into_body().collect().await.ok();
    let trailers = collected.as_ref().and_then(|c| c.trailers().cloned());
    let field = |name: &str| {
        headers
            .get(name)
            .or_else(|| trailers.as_ref().and_then(|t| t.get(name)))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let code = field("grpc-status").parse().unwrap_or(-1);
    let message = percent_decode(&field("grpc-message"));
    (code, message)
}

/// `grpc-message` is percent-encoded.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&raw[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One HTTP/1.1 request written whole on a new connection (a server that answers early may
/// stop reading it: what could not be written is dropped), and the answer's head and body
/// as text, read until the server closes or `within` passes.
async fn raw_http1(addr: SocketAddr, head: &str, body: &[u8], within: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await
    };
    let _ = written.await;
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        // The head and a short body are enough to judge.
        if answer.len() > 4096 {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Four megabytes of empty events: `0a 00` two million times.
fn empty_events() -> Vec<u8> {
    [0x0a, 0x00].repeat(2 * 1024 * 1024)
}

/// One small batch of `agency`, two days ago, ids starting with `tag`.
fn batch(agency: &str, tag: &str, n: usize) -> Vec<DossierEvent> {
    let at = two_days_ago_noon();
    (0..n)
        .map(|i| received(&format!("{tag}-{i}"), agency, at, i % 2 == 0))
        .collect()
}

/// [`batch`]`("ha-noi", tag, n)` as one SubmitEvents call of [`REPORTER`]'s `reporter-1`.
fn reported(tag: &str, n: usize) -> tonic::Request<SubmitEventsRequest> {
    with_token(
        SubmitEventsRequest {
            events: batch("ha-noi", tag, n),
        },
        "reporter-1",
    )
}

/// Reports `n` events tagged `tag` on `client` and checks that every one was counted; `why`
/// is what a failure says.
async fn report(client: &mut IngestServiceClient<Channel>, tag: &str, n: u32, why: &str) {
    let outcome = client
        .submit_events(reported(tag, n as usize))
        .await
        .expect(why)
        .into_inner();
    assert_eq!(outcome.accepted, n, "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_a_credential_is_refused_before_its_body_is_read_at_every_door() {
    let _serial = SERIAL.lock().await;
    let tokens = token_file("doors", REPORTER);
    let (_aggregate, ingest) = start_ingest(&tokens, &[]);
    let addr = ingest.addr();
    // Warm up: one counted batch, so the memory measured next is the steady state's.
    let mut client = IngestServiceClient::new(channel(addr));
    report(&mut client, "warm", 10, "a counted batch").await;
    let before = ingest.rss_bytes();

    let empty = empty_events();
    let grpc_body = grpc_frame(&empty);
    let path = "/govpulse.ingest.v1.IngestService/SubmitEvents";
    // gRPC, four at once.
    let calls = (0..4).map(|_| raw_grpc(addr, path, None, grpc_body.clone()));
    for (code, message) in futures::future::join_all(calls).await {
        assert_eq!(code, Code::Unauthenticated as i32, "{message}");
    }
    // gRPC-Web over HTTP/1.1, four at once.
    let web_head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\ncontent-length: {}\r\n\r\n",
        grpc_body.len()
    );
    let calls = (0..4).map(|_| raw_http1(addr, &web_head, &grpc_body, Duration::from_secs(10)));
    for answer in futures::future::join_all(calls).await {
        let lower = answer.to_lowercase();
        assert!(
            lower.starts_with("http/1.1 200") && lower.contains("grpc-status: 16"),
            "gRPC-Web UNAUTHENTICATED: {answer}"
        );
    }
    // JSON, four at once: a million empty objects.
    let mut json = String::from("{\"events\":[");
    json.push_str(&"{},".repeat(1_398_000));
    json.push_str("{}]}");
    let json_head = format!(
        "POST /api/v1/events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        json.len()
    );
    let calls =
        (0..4).map(|_| raw_http1(addr, &json_head, json.as_bytes(), Duration::from_secs(10)));
    for answer in futures::future::join_all(calls).await {
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    let unauthenticated = ingest.rss_bytes().saturating_sub(before);

    // With a credential, two million events are refused by counting them, not by decoding.
    let (code, message) = raw_grpc(addr, path, Some("reporter-1"), grpc_body.clone()).await;
    assert_eq!(code, Code::InvalidArgument as i32, "{message}");
    assert!(
        message.contains("no batch may hold more than 10000"),
        "{message}"
    );
    let json_answer = govpulse_e2e::http::post_json(
        addr,
        "/api/v1/events",
        &[("authorization", "Bearer reporter-1")],
        &json,
    )
    .await;
    assert_eq!(json_answer.status, 400, "{}", json_answer.text());
    assert!(
        json_answer
            .text()
            .contains("no batch may hold more than 10000")
    );
    let grown = ingest.rss_bytes().saturating_sub(before);
    eprintln!(
        "ingest RSS grew by {:.1} MiB over 12 refused 4 MiB requests without a credential, {:.1} MiB with two refused with one",
        unauthenticated as f64 / MIB as f64,
        grown as f64 / MIB as f64
    );
    assert!(
        unauthenticated < 16 * MIB,
        "grew by {unauthenticated} bytes"
    );
    assert!(grown < 32 * MIB, "grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bytes_are_invalid_argument_naming_the_field() {
    let _serial = SERIAL.lock().await;
    let tokens = token_file("bytes", REPORTER);
    let (aggregate, ingest) = start_ingest(&tokens, &[]);
    // One event whose event_id (field 1 of DossierEvent) is not UTF-8, in field 1 of both
    // SubmitEventsRequest and ApplyEventsRequest.
    let event = [0x0a, 0x02, 0xff, 0xfe];
    let mut message = vec![0x0a, u8::try_from(event.len()).expect("small")];
    message.extend_from_slice(&event);
    // Each is served from its bytes on its own route, which names the event; the generated
    // service, which decodes the whole message first, would not.
    for (addr, path, token) in [
        (
            ingest.addr(),
            govpulse_proto::wire::SUBMIT_EVENTS,
            Some("reporter-1"),
        ),
        (aggregate.addr(), govpulse_proto::wire::APPLY_EVENTS, None),
    ] {
        let (code, text) = raw_grpc(addr, path, token, grpc_frame(&message)).await;
        assert_eq!(code, Code::InvalidArgument as i32, "{path}: {text}");
        assert!(
            text.contains("events[0]") && text.contains("event_id"),
            "{path} names the event and the field: {text}"
        );
    }
}

/// Reads from `stream` until the server closes it; how long that took, or `None` when it
/// stayed open for `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_in_number_and_in_time() {
    let _serial = SERIAL.lock().await;
    let tokens = token_file("connections", REPORTER);
    let (header_timeout, idle_timeout) = (Duration::from_millis(1500), Duration::from_millis(3000));
    let (_aggregate, ingest) = start_ingest(
        &tokens,
        &[
            ("GOVPULSE_MAX_CONNECTIONS", "230".to_owned()),
            ("GOVPULSE_MAX_CONNECTIONS_PER_ADDRESS", "230".to_owned()),
            (
                "GOVPULSE_HEADER_TIMEOUT_MS",
                header_timeout.as_millis().to_string(),
            ),
            (
                "GOVPULSE_IDLE_TIMEOUT_MS",
                idle_timeout.as_millis().to_string(),
            ),
        ],
    );
    let addr = ingest.addr();
    let before = ingest.rss_bytes();

    // 200 connections each start a 4 MiB body without a credential, send 1 MiB of it and
    // hold: each is answered 401 at once, and closed.
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        4 * MIB
    );
    let part = vec![b' '; MIB as usize];
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("headers");
        // The server may answer and close before all of it is written.
        let _ = stream.write_all(&part).await;
        held.push(stream);
    }
    let holding = ingest.rss_bytes().saturating_sub(before);
    let mut answered = 0;
    for stream in &mut held {
        let mut head = [0u8; 12];
        if tokio::time::timeout(idle_timeout * 2, stream.read_exact(&mut head))
            .await
            .is_ok_and(|r| r.is_ok())
            && head.starts_with(b"HTTP/1.1 401")
        {
            answered += 1;
        }
        let closed = closed_within(stream, idle_timeout * 2).await;
        assert!(
            closed.is_some(),
            "an unfinished body's connection is closed"
        );
    }
    eprintln!(
        "200 unfinished 4 MiB bodies without a credential: ingest grew by {:.1} MiB, {answered} answered 401, all closed",
        holding as f64 / MIB as f64
    );
    assert_eq!(answered, 200);
    assert!(holding < 64 * MIB, "grew by {holding} bytes");
    drop(held);

    // A connection that never sends a request is closed after the header timeout; one that
    // sent a request and went quiet after the idle timeout.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let closed = closed_within(&mut silent, header_timeout * 3).await;
    let closed = closed.expect("a silent connection is closed");
    assert!(
        closed >= header_timeout / 2,
        "not before its time: {closed:?}"
    );
    let mut quiet = TcpStream::connect(addr).await.expect("connect");
    quiet
        .write_all(format!("GET /api/v1/nothing HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let closed = closed_within(&mut quiet, idle_timeout * 3)
        .await
        .expect("an idle connection is closed");
    eprintln!(
        "a silent connection closed after {:?}, an idle one after {closed:?}",
        header_timeout
    );
    assert!(
        closed >= idle_timeout / 2,
        "not before its time: {closed:?}"
    );

    // Past the cap, a new connection is closed at once, while an agency whose connection is
    // open keeps reporting on it.
    let mut agency = IngestServiceClient::new(channel(addr));
    report(&mut agency, "cap-a", 5, "reports").await;
    let mut filler = Vec::new();
    for _ in 0..229 {
        filler.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut extra = TcpStream::connect(addr)
        .await
        .expect("the handshake completes");
    let refused = closed_within(&mut extra, header_timeout / 3).await;
    assert!(
        refused.is_some(),
        "a connection past the cap is closed at once"
    );
    report(
        &mut agency,
        "cap-b",
        5,
        "the agency keeps reporting on its open connection",
    )
    .await;
    drop(filler);
}

/// aggregate, ingest and ranking as processes; ranking public, with `ranking_env` of its own.
fn start_deployment(
    ranking_env: &[(&str, String)],
    tokens: &Path,
) -> (ServiceProcess, ServiceProcess, ServiceProcess) {
    let (aggregate, ingest) = start_ingest(tokens, &[]);
    let mut env = vec![
        ("GOVPULSE_LISTEN", local(free_port())),
        (
            "GOVPULSE_AGGREGATE_URL",
            format!("http://{}", aggregate.addr()),
        ),
        ("GOVPULSE_PLAINTEXT", "true".to_owned()),
        ("GOVPULSE_HEARTBEAT_MS", "200".to_owned()),
        ("GOVPULSE_MIN_VOLUME", "0".to_owned()),
    ];
    env.extend(ranking_env.iter().cloned());
    let ranking = ServiceProcess::start("govpulse-ranking", &env);
    (aggregate, ingest, ranking)
}

/// The live ranking of `query` from `client`, which must open (`what` says why), and its
/// first message: the snapshot.
async fn live(
    mut client: RankingServiceClient<Channel>,
    query: RankingQuery,
    what: &str,
) -> (Streaming<WatchRankingResponse>, WatchRankingResponse) {
    let mut stream = client
        .watch_ranking(WatchRankingRequest {
            query: Some(query),
            resume_revision: 0,
        })
        .await
        .expect(what)
        .into_inner();
    let first = stream
        .message()
        .await
        .expect("a snapshot")
        .expect("a message");
    (stream, first)
}

fn provinces(period: String, selection: Option<Selection>, metric: &str) -> RankingQuery {
    RankingQuery {
        metric: metric.to_owned(),
        block: govpulse_proto::catalog::Block::Province.into(),
        period,
        selection,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rankings_are_bounded_whatever_queries_one_caller_opens() {
    let _serial = SERIAL.lock().await;
    let tokens = token_file("live", REPORTER);
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (aggregate, ingest, ranking) = start_deployment(
        &[
            ("GOVPULSE_PUBLIC_READ", "true".to_owned()),
            ("GOVPULSE_MAX_LIVE_RANKINGS", "64".to_owned()),
            ("GOVPULSE_MAX_WATCHES_PER_CALLER", "16".to_owned()),
            ("GOVPULSE_METRICS_LISTEN", metrics.to_string()),
        ],
        &tokens,
    );
    let mut reporter = IngestServiceClient::new(channel(ingest.addr()));
    reporter
        .submit_events(reported("seed", 20))
        .await
        .expect("seeded");
    let client = RankingServiceClient::new(channel(ranking.addr()));
    let today = govpulse_core::period::vietnam_day(time::OffsetDateTime::now_utc());

    // Another caller asks GetRanking all along; events keep arriving.
    let stop = tokio_util::sync::CancellationToken::new();
    let other = {
        let (mut client, stop) = (client.clone(), stop.clone());
        let period = today.to_string();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.is_cancelled() {
                let started = Instant::now();
                client
                    .get_ranking(GetRankingRequest {
                        query: Some(provinces(
                            period.clone(),
                            Some(Selection::Top(5)),
                            "online-dossier-rate",
                        )),
                    })
                    .await
                    .expect("GetRanking answers");
                latencies.push(started.elapsed());
            }
            latencies
        })
    };
    let feeder = {
        let (mut reporter, stop) = (reporter.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !stop.is_cancelled() {
                tick.tick().await;
                n += 1;
                let _ = reporter
                    .submit_events(reported(&format!("feed{n}"), 5))
                    .await;
            }
        })
    };

    // One caller opens and closes 1,000 distinct live queries, 16 at a time: periods and
    // metrics that each make a live ranking of their own.
    let measures = [
        "online-dossier-rate",
        "on-time-rate",
        "digitized-reception-rate",
        "satisfaction-rate",
    ];
    let started = Instant::now();
    let mut opened = 0;
    for wave in 0..(1000 / 16 + 1) {
        let calls = (0..16).filter_map(|i| {
            let n: i64 = wave * 16 + i;
            (n < 1000).then(|| {
                let first = today - time::Duration::days(n / 4);
                let query = provinces(
                    format!("{first}..{today}"),
                    None,
                    measures[(n % 4) as usize],
                );
                let client = client.clone();
                async move {
                    live(client, query, "a live ranking within the caps").await;
                }
            })
        });
        let calls: Vec<_> = calls.collect();
        opened += calls.len();
        futures::future::join_all(calls).await;
        // The streams were dropped; the next wave starts once ranking has let them go, so
        // that the caller's cap never counts streams it closed.
        until_watching(metrics, 0).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    let mut latencies = other.await.expect("the other caller");
    let _ = feeder.await;
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let (ranking_rss, aggregate_rss) = (ranking.rss_bytes(), aggregate.rss_bytes());
    eprintln!(
        "{opened} live queries opened and closed in {elapsed:?}; another caller's GetRanking p99 {p99:?} over {} calls; RSS ranking {:.1} MiB, aggregate {:.1} MiB",
        latencies.len(),
        ranking_rss as f64 / MIB as f64,
        aggregate_rss as f64 / MIB as f64
    );
    assert_eq!(opened, 1000);
    // Not starved: every call of the other caller was answered, none waited seconds. How
    // fast it stays is printed above, not asserted (50 ms at p99 on a quiet machine, over
    // 200 ms with the machine's two cores loaded by other work): a timed bound fails with the
    // machine, not with the code.
    let slowest = latencies.last().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(2),
        "GetRanking took {slowest:?}"
    );
    assert!(ranking_rss < 64 * MIB, "ranking RSS {ranking_rss}");
    assert!(aggregate_rss < 64 * MIB, "aggregate RSS {aggregate_rss}");

    // The top 1 to 16 of one query (today: the events fed above are two days old) are views
    // of one live ranking: the same state, under the same revision.
    let mut views = Vec::new();
    for n in 1..=16 {
        let query = provinces(
            today.to_string(),
            Some(Selection::Top(n)),
            "online-dossier-rate",
        );
        let (stream, first) = live(client.clone(), query, "within the caller's cap").await;
        views.push((first.revision, stream));
    }
    assert!(
        views.windows(2).all(|w| w[0].0 == w[1].0),
        "every top N shows the same live ranking's state"
    );
    // The caller holds 16 streams: its 17th is refused, naming the limit.
    let refused = client
        .clone()
        .watch_ranking(WatchRankingRequest {
            query: Some(provinces(today.to_string(), None, "on-time-rate")),
            resume_revision: 0,
        })
        .await
        .expect_err("past the caller's cap");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("--max-watches-per-caller"),
        "{}",
        refused.message()
    );
}

/// Waits (up to 10 s) until ranking's `/metrics` at `metrics` shows `n` open WatchRanking
/// streams. Polled: a client sees no event when the server lets a stream go, and each look
/// costs the server a page, hence the pace.
async fn until_watching(metrics: SocketAddr, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    loop {
        pace.tick().await;
        let page = scrape(metrics).await;
        let open = page
            .lines()
            .find(|l| {
                l.starts_with("govpulse_watch_subscribers") && l.contains("stream=\"ranking\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if open == n as f64 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ranking still shows {open} open streams, waiting for {n}"
        );
    }
}

/// The series of `name` in a Prometheus text page.
fn series(page: &str, name: &str) -> usize {
    page.lines().filter(|l| l.starts_with(name)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_series_come_from_a_closed_set_whatever_paths_are_asked() {
    let _serial = SERIAL.lock().await;
    let (_aggregate, ingest, metrics) = start_measured_ingest("series");
    let addr = ingest.addr();
    let random = |n: usize| async move {
        let path = format!("/random.Service{n}/Method{n}");
        govpulse_e2e::http::call(
            addr,
            "POST",
            &path,
            &[
                ("content-type", "application/grpc-web+proto"),
                ("x-grpc-web", "1"),
            ],
            grpc_frame(&[]),
        )
        .await
    };
    random(0).await;
    let before = scrape(metrics).await;
    for wave in 0..100 {
        futures::future::join_all((0..100).map(|i| random(1 + wave * 100 + i))).await;
    }
    let after = scrape(metrics).await;
    let (was, is) = (series(&before, "govpulse_"), series(&after, "govpulse_"));
    eprintln!("10,000 requests to random paths: {was} govpulse series before, {is} after");
    assert_eq!(was, is, "{after}");
    assert!(!after.contains("random.Service"), "no raw path is a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_calls_writes_few_log_lines_and_is_counted() {
    let _serial = SERIAL.lock().await;
    let (_aggregate, ingest, metrics) = start_measured_ingest("flood");
    let client = IngestServiceClient::new(channel(ingest.addr()));
    let lines_before = ingest.log_lines();
    let refused = futures::future::join_all((0..8).map(|_| {
        let mut client = client.clone();
        async move {
            let mut n = 0;
            for _ in 0..2_500 {
                let status = client
                    .submit_events(SubmitEventsRequest { events: vec![] })
                    .await
                    .expect_err("no credential");
                if status.code() == Code::Unauthenticated {
                    n += 1;
                }
            }
            n
        }
    }))
    .await
    .into_iter()
    .sum::<usize>();
    let page = scrape(metrics).await;
    let counted: f64 = page
        .lines()
        .find(|l| {
            l.starts_with("govpulse_refusals_total") && l.contains("reason=\"credential_rejected\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let lines = ingest.log_lines() - lines_before;
    eprintln!("{refused} refused calls: {lines} log lines, {counted} counted");
    assert_eq!(refused, 20_000);
    assert!(lines < 1_000, "{lines} log lines");
    assert!(counted >= 20_000.0, "{counted} counted");
}

/// How `stream` ends: with a status, or `None` for a clean end; panics with `what` when it is
/// still open after `limit`.
async fn end_of<T>(
    stream: &mut tonic::Streaming<T>,
    limit: Duration,
    what: &str,
) -> Option<tonic::Status> {
    tokio::time::timeout(limit, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect(what)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_ends_its_open_streams_and_nothing_after_is_counted() {
    let _serial = SERIAL.lock().await;
    let tokens = token_file(
        "revoked",
        &[
            ("reporter-1", "ha-noi", "\"reporter\""),
            ("reader-1", "ha-noi", "\"reader\""),
        ],
    );
    let (aggregate, ingest, ranking) = start_deployment(
        &[
            ("GOVPULSE_TOKENS", tokens.display().to_string()),
            ("GOVPULSE_TOKENS_RELOAD_MS", "100".to_owned()),
        ],
        &tokens,
    );
    // An event stream, with one batch counted.
    let (batches, outgoing) = tokio::sync::mpsc::channel::<StreamEventsRequest>(4);
    let mut acks = IngestServiceClient::new(channel(ingest.addr()))
        .stream_events(with_token(
            tokio_stream::wrappers::ReceiverStream::new(outgoing),
            "reporter-1",
        ))
        .await
        .expect("stream opens")
        .into_inner();
    batches
        .send(StreamEventsRequest {
            batch_id: 1,
            events: batch("ha-noi", "before", 3),
        })
        .await
        .expect("sent");
    let ack = acks.message().await.expect("an ack").expect("a message");
    assert_eq!(ack.accepted, 3);
    // A live ranking, and its Server-Sent Events twin.
    let today = govpulse_core::period::vietnam_day(time::OffsetDateTime::now_utc()).to_string();
    let mut watch = RankingServiceClient::new(channel(ranking.addr()))
        .watch_ranking(with_token(
            WatchRankingRequest {
                query: Some(provinces(today.clone(), None, "online-dossier-rate")),
                resume_revision: 0,
            },
            "reader-1",
        ))
        .await
        .expect("watch opens")
        .into_inner();
    watch
        .message()
        .await
        .expect("a snapshot")
        .expect("a message");
    let mut events = govpulse_e2e::http::open_events(
        ranking.addr(),
        &format!("/api/v1/ranking/watch?metric=on-time-rate&block=provinces&period={today}"),
        &[("authorization", "Bearer reader-1")],
    )
    .await;
    assert_eq!(events.status, 200);

    // The tokens are removed from the file.
    let revoked = Instant::now();
    write_tokens(&tokens, &[]);
    let limit = Duration::from_secs(5);
    let ended = end_of(
        &mut acks,
        limit,
        "the event stream ends within one reload interval",
    )
    .await
    .expect("with a status");
    assert_eq!(ended.code(), Code::Unauthenticated, "{}", ended.message());
    let watch_ended = end_of(&mut watch, limit, "the live ranking ends")
        .await
        .expect("with a status");
    assert_eq!(watch_ended.code(), Code::Unauthenticated);
    let deadline = tokio::time::Instant::now() + limit;
    let mut sse_status = None;
    while tokio::time::Instant::now() < deadline {
        match events.next_within(limit).await {
            Some(event) if event.event.as_deref() == Some("status") => {
                sse_status = Some(event.data);
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    let sse_status = sse_status.expect("the event stream says why it ends");
    assert!(sse_status.contains("UNAUTHENTICATED"), "{sse_status}");
    eprintln!(
        "streams ended {:?} after the token file changed",
        revoked.elapsed()
    );

    // A batch sent on the ended stream is not counted.
    let _ = batches
        .send(StreamEventsRequest {
            batch_id: 2,
            events: batch("ha-noi", "after", 3),
        })
        .await;
    let counted = govpulse_proto::aggregate::aggregate_service_client::AggregateServiceClient::new(
        channel(aggregate.addr()),
    )
    .get_metrics(govpulse_proto::aggregate::GetMetricsRequest {
        agency_id: "ha-noi".into(),
        period: two_days_ago_noon().date().to_string(),
        metrics: vec!["online-dossier-rate".into()],
        ..Default::default()
    })
    .await
    .expect("metrics")
    .into_inner()
    .counters
    .map(|c| c.received);
    assert_eq!(
        counted,
        Some(3),
        "only the batch sent before the revocation"
    );
}
