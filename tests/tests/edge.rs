//! Trust at the edge, end to end: who may call ingest (bearer tokens from a reloaded file,
//! client certificates), whose events it may send, TLS and mutual TLS between every
//! service, and the per-agency rate. Certificates and tokens are generated here.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use govpulse_e2e::{
    Spawned, catalog_with, credential_for, local0,
    pki::{Pem, Pki, write_pem},
    provinces_by_online_rate, received, scratch, statuses, two_days_ago_noon, with_token,
    write_ahead,
};
use govpulse_edge::auth::TokenFileArgs;
use govpulse_edge::{auth::token_hash, host::HostArgs};
use govpulse_proto::{
    aggregate::{GetMetricsRequest, aggregate_service_client::AggregateServiceClient},
    catalog::{Block, ListAgenciesRequest, catalog_service_client::CatalogServiceClient},
    event::{DossierEvent, OutcomeStatus},
    ingest::{
        ReportAssessedScoresRequest, StreamEventsRequest, SubmitEventsRequest,
        SubmitEventsResponse, ingest_service_client::IngestServiceClient,
    },
    ranking::{
        GetRankingRequest, PublishRequest, RankingQuery,
        ranking_service_client::RankingServiceClient,
    },
};
use govpulse_runtime::{client::AggregateArgs, tls::TlsArgs};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{
    Code, Request, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

/// The shipped provinces and ministries, one unit of Hà Nội, one procedure each.
fn write_catalog(dir: &Path) -> PathBuf {
    catalog_with(
        dir,
        "id,name,parent_id,valid_from,valid_until\nha-noi.dept-01,Sở Tư pháp,ha-noi,,\n",
        "id,agency_id,name,provision,eligible_full_online\n\
         ha-noi.p01,ha-noi,Thủ tục,full,true\n\
         hai-phong.p01,hai-phong,Thủ tục,full,true\n\
         ha-noi.dept-01.p01,ha-noi.dept-01,Thủ tục,full,true\n",
    )
}

/// Ingest in front of an in-memory aggregate, both on loopback, stopped on drop.
struct Edge {
    ingest: SocketAddr,
    aggregate: SocketAddr,
    /// The catalog folder both read.
    catalog: PathBuf,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn spawn_service<E: std::fmt::Debug + Send + 'static>(
    run: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move { run.await.expect("service runs") })
}

async fn start_edge(
    catalog: &Path,
    edit: impl FnOnce(govpulse_ingest::Config) -> govpulse_ingest::Config,
) -> Edge {
    let stop = CancellationToken::new();
    let aggregate = govpulse_aggregate::Server::build(govpulse_aggregate::Config {
        catalog_dir: Some(catalog.to_owned()),
        ..govpulse_aggregate::Config::new(local0()).development()
    })
    .await
    .expect("aggregate starts");
    let aggregate_addr = aggregate.host().local_addr();
    let ingest = govpulse_ingest::Server::build(edit(govpulse_ingest::Config {
        catalog_dir: Some(catalog.to_owned()),
        ..govpulse_ingest::Config::new(local0(), format!("http://{aggregate_addr}"))
    }))
    .await
    .expect("ingest starts");
    let ingest_addr = ingest.host().local_addr();
    let tasks = vec![
        spawn_service(aggregate.run_until(stop.clone().cancelled_owned())),
        spawn_service(ingest.run_until(stop.clone().cancelled_owned())),
    ];
    Edge {
        ingest: ingest_addr,
        aggregate: aggregate_addr,
        catalog: catalog.to_owned(),
        stop,
        tasks,
    }
}

/// A scratch folder `name` with [`write_catalog`]'s catalog and a token file holding `tokens`
/// (credentials as [`credential`] writes them): the catalog's folder and the token file.
fn catalog_and_tokens(name: &str, tokens: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let catalog = write_catalog(&dir);
    let token_file = dir.join("tokens.toml");
    std::fs::write(&token_file, tokens).expect("tokens");
    (catalog, token_file)
}

/// An edge (see [`start_edge`]) whose ingest reads the token file `tokens` of
/// [`catalog_and_tokens`], configured by `edit` from the defaults with that file: the edge
/// and the token file, to rewrite.
async fn start_edge_with_tokens(
    name: &str,
    tokens: &str,
    edit: impl FnOnce(govpulse_ingest::Config) -> govpulse_ingest::Config,
) -> (Edge, PathBuf) {
    let (catalog, token_file) = catalog_and_tokens(name, tokens);
    let edge = start_edge(&catalog, |config| {
        edit(govpulse_ingest::Config {
            token_file: TokenFileArgs::at(token_file.clone()),
            ..config
        })
    })
    .await;
    (edge, token_file)
}

impl Edge {
    fn ingest(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::new(plain(self.ingest))
    }

    /// One online reception `id` of `agency` at `at`, submitted with the bearer `token`.
    async fn report_online(
        &self,
        id: &str,
        agency: &str,
        at: OffsetDateTime,
        token: &str,
    ) -> Result<tonic::Response<SubmitEventsResponse>, Status> {
        self.ingest()
            .submit_events(with_token(
                batch(vec![received(id, agency, at, true)]),
                token,
            ))
            .await
    }

    /// Dossiers received by `agency` on `at`'s day, as aggregate counted them.
    async fn received(&self, agency: &str, at: OffsetDateTime) -> u64 {
        AggregateServiceClient::new(plain(self.aggregate))
            .get_metrics(GetMetricsRequest {
                agency_id: agency.to_owned(),
                period: at.date().to_string(),
                metrics: vec![],
                ..Default::default()
            })
            .await
            .expect("metrics")
            .into_inner()
            .counters
            .expect("counters")
            .received
    }
}

fn plain(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect_lazy()
}

fn tls_channel(addr: SocketAddr, ca: &str, identity: Option<&Pem>) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(pem) = identity {
        tls = tls.identity(Identity::from_pem(&pem.cert, &pem.key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("url")
        .tls_config(tls)
        .expect("tls config")
        .connect_lazy()
}

fn batch(events: Vec<DossierEvent>) -> SubmitEventsRequest {
    SubmitEventsRequest { events }
}

/// One `[[credential]]` of a token file.
fn credential(token: &str, agency: &str, roles: &str, expires_at: Option<&str>) -> String {
    let expiry = expires_at
        .map(|e| format!("expires_at = \"{e}\"\n"))
        .unwrap_or_default();
    credential_for(&token_hash(token), agency, roles) + &expiry
}

fn refused(result: Result<tonic::Response<impl Sized>, Status>) -> Status {
    match result {
        Ok(_) => panic!("the call was accepted"),
        Err(status) => status,
    }
}

#[tokio::test]
async fn calls_without_a_valid_credential_are_unauthenticated_and_count_nothing() {
    let tokens = credential("good-token", "ha-noi", "\"reporter\"", None)
        + &credential(
            "expired-token",
            "ha-noi",
            "\"reporter\"",
            Some("2020-01-01T00:00:00Z"),
        );
    let (edge, _) =
        start_edge_with_tokens("unauthenticated", &tokens, |c| govpulse_ingest::Config {
            host: c.host.clone().plaintext(),
            ..c
        })
        .await;
    let at = two_days_ago_noon();
    let event = || batch(vec![received("e1", "ha-noi", at, true)]);

    let none = refused(edge.ingest().submit_events(event()).await);
    assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");
    for token in ["wrong-token", "expired-token"] {
        let status = refused(
            edge.ingest()
                .submit_events(with_token(event(), token))
                .await,
        );
        assert_eq!(status.code(), Code::Unauthenticated, "{token}: {status:?}");
        assert!(
            !status.message().contains(token),
            "the secret is never echoed: {status:?}"
        );
    }
    let mut malformed = Request::new(event());
    malformed
        .metadata_mut()
        .insert("authorization", "Basic Z29vZA==".parse().expect("header"));
    let status = refused(edge.ingest().submit_events(malformed).await);
    assert_eq!(status.code(), Code::Unauthenticated);
    let stream = tokio_stream::iter(vec![StreamEventsRequest {
        batch_id: 1,
        events: vec![received("s1", "ha-noi", at, true)],
    }]);
    let status = refused(edge.ingest().stream_events(stream).await);
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "streams too: {status:?}"
    );
    assert_eq!(edge.received("ha-noi", at).await, 0, "nothing was counted");

    let accepted = edge
        .ingest()
        .submit_events(with_token(event(), "good-token"))
        .await
        .expect("a valid token is accepted")
        .into_inner();
    assert_eq!(accepted.accepted, 1);
    assert_eq!(edge.received("ha-noi", at).await, 1);
}

#[tokio::test]
async fn a_token_removed_from_the_file_is_refused_without_a_restart() {
    let tokens = credential("kept", "hai-phong", "\"reporter\"", None)
        + &credential("revoked", "ha-noi", "\"reporter\"", None);
    let (edge, tokens) = start_edge_with_tokens("revoked", &tokens, |mut c| {
        c.token_file.tokens_reload_ms = 20;
        c.development()
    })
    .await;
    let at = two_days_ago_noon();
    let first = edge
        .report_online("r1", "ha-noi", at, "revoked")
        .await
        .expect("valid before revocation");
    assert_eq!(first.into_inner().accepted, 1);

    // Modification times can be coarse: make sure the new one differs.
    write_ahead(
        &tokens,
        &credential("kept", "hai-phong", "\"reporter\"", None),
        10,
    );

    let revoked = tokio::time::timeout(Duration::from_secs(10), async {
        let mut n = 2;
        loop {
            let result = edge
                .report_online(&format!("r{n}"), "ha-noi", at, "revoked")
                .await;
            match result {
                Err(status) => return status,
                Ok(_) => n += 1,
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("refused once the file is re-read");
    assert_eq!(revoked.code(), Code::Unauthenticated);
    let counted = edge.received("ha-noi", at).await;
    let refused_now = refused(edge.report_online("after", "ha-noi", at, "revoked").await);
    assert_eq!(refused_now.code(), Code::Unauthenticated);
    assert_eq!(
        edge.received("ha-noi", at).await,
        counted,
        "a revoked token counts nothing"
    );
    let kept = edge
        .report_online("k1", "hai-phong", at, "kept")
        .await
        .expect("the other token still works");
    assert_eq!(kept.into_inner().accepted, 1);
}

#[tokio::test]
async fn an_agency_reports_for_itself_and_its_units_but_never_for_a_sibling() {
    let tokens = credential("ha-noi-token", "ha-noi", "\"reporter\"", None)
        + &credential("unit-token", "ha-noi.dept-01", "\"reporter\"", None)
        + &credential("reader-token", "ha-noi", "\"reader\"", None);
    let (edge, _) =
        start_edge_with_tokens("scope", &tokens, govpulse_ingest::Config::development).await;
    let at = two_days_ago_noon();

    let response = edge
        .ingest()
        .submit_events(with_token(
            batch(vec![
                received("own", "ha-noi", at, true),
                received("unit", "ha-noi.dept-01", at, true),
                received("sibling", "hai-phong", at, true),
            ]),
            "ha-noi-token",
        ))
        .await
        .expect("the batch is answered")
        .into_inner();
    assert_eq!(
        statuses(&response.outcomes),
        vec![
            OutcomeStatus::Accepted,
            OutcomeStatus::Accepted,
            OutcomeStatus::Rejected
        ]
    );
    let denied = &response.outcomes[2];
    assert_eq!(denied.field, "events[2].agency_id");
    assert!(
        denied.reason.starts_with("permission denied") && denied.reason.contains("hai-phong"),
        "{denied:?}"
    );
    assert_eq!(edge.received("hai-phong", at).await, 0);
    assert_eq!(edge.received("ha-noi.dept-01", at).await, 1);

    let response = edge
        .report_online("up", "ha-noi", at, "unit-token")
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(
        statuses(&response.outcomes),
        vec![OutcomeStatus::Rejected],
        "a unit may not report for its parent"
    );

    let reader = refused(
        edge.report_online("read", "ha-noi", at, "reader-token")
            .await,
    );
    assert_eq!(reader.code(), Code::PermissionDenied);
    assert_eq!(
        edge.received("ha-noi", at).await,
        2,
        "its own and its unit's"
    );
}

#[tokio::test]
async fn a_client_certificate_names_its_agency_and_bad_certificates_are_refused() {
    let dir = scratch("mtls");
    let catalog = write_catalog(&dir);
    let servers = Pki::new("govpulse test server CA");
    let clients = Pki::new("govpulse test agency CA");
    let stranger = Pki::new("someone else's CA");
    let (cert, key) = write_pem(&dir, "ingest", &servers.issue(&["localhost"], &[], false));
    let client_ca = dir.join("clients.crt");
    std::fs::write(&client_ca, clients.ca_pem()).expect("client ca");
    let edge = start_edge(&catalog, |c| govpulse_ingest::Config {
        host: HostArgs {
            tls: TlsArgs {
                tls_cert: Some(cert.clone()),
                tls_key: Some(key.clone()),
                tls_client_ca: Some(client_ca.clone()),
                plaintext: false,
            },
            ..c.host.clone()
        },
        ..c
    })
    .await;
    let at = two_days_ago_noon();
    let client = |identity: Option<&Pem>| {
        IngestServiceClient::new(tls_channel(edge.ingest, &servers.ca_pem(), identity))
    };

    let ha_noi = clients.issue(&[], &["govpulse:agency:ha-noi"], false);
    let response = client(Some(&ha_noi))
        .submit_events(batch(vec![
            received("c1", "ha-noi", at, true),
            received("c2", "hai-phong", at, true),
        ]))
        .await
        .expect("a valid certificate is accepted")
        .into_inner();
    assert_eq!(
        statuses(&response.outcomes),
        vec![OutcomeStatus::Accepted, OutcomeStatus::Rejected]
    );

    let none = refused(
        client(None)
            .submit_events(batch(vec![received("n1", "ha-noi", at, true)]))
            .await,
    );
    assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");

    let expired = clients.issue(&[], &["govpulse:agency:ha-noi"], true);
    let untrusted = stranger.issue(&[], &["govpulse:agency:ha-noi"], false);
    for (name, pem) in [("expired", &expired), ("untrusted", &untrusted)] {
        let status = refused(
            client(Some(pem))
                .submit_events(batch(vec![received(name, "ha-noi", at, true)]))
                .await,
        );
        // The handshake fails, so no call reaches the service: tonic reports a transport
        // error carrying the server's TLS alert.
        assert_eq!(status.code(), Code::Unknown, "{name}: {status:?}");
        let alert = format!("{status:?}");
        assert!(alert.contains("received fatal alert"), "{name}: {alert}");
    }
    let no_agency = clients.issue(&["agency.example"], &[], false);
    let status = refused(
        client(Some(&no_agency))
            .submit_events(batch(vec![received("na", "ha-noi", at, true)]))
            .await,
    );
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(edge.received("ha-noi", at).await, 1);
    assert_eq!(edge.received("hai-phong", at).await, 0);
}

#[tokio::test]
async fn every_service_serves_tls_and_calls_aggregate_over_mutual_tls() {
    let dir = scratch("tls-everywhere");
    let catalog = write_catalog(&dir);
    let pki = Pki::new("govpulse test CA");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, pki.ca_pem()).expect("ca");
    let server = pki.issue(&["localhost"], &[], false);
    let (cert, key) = write_pem(&dir, "server", &server);
    let (peer_cert, peer_key) = write_pem(
        &dir,
        "peer",
        &pki.issue(&["localhost"], &["govpulse:service:ingest"], false),
    );
    let tls = TlsArgs {
        tls_cert: Some(cert),
        tls_key: Some(key),
        tls_client_ca: Some(ca.clone()),
        plaintext: false,
    };
    let upstream = govpulse_runtime::tls::UpstreamTlsArgs {
        upstream_ca: Some(ca.clone()),
        upstream_cert: Some(peer_cert),
        upstream_key: Some(peer_key),
    };
    // The three services serve with one certificate and the same TLS settings.
    let host = HostArgs {
        tls,
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let aggregate = govpulse_aggregate::Server::build(govpulse_aggregate::Config {
        catalog_dir: Some(catalog.clone()),
        host: host.clone(),
        ..govpulse_aggregate::Config::new(local0())
    })
    .await
    .expect("aggregate starts");
    // The certificates name localhost; the address is loopback.
    let aggregate_url = format!("https://localhost:{}", aggregate.host().local_addr().port());
    let tokens = dir.join("tokens.toml");
    std::fs::write(&tokens, credential("t", "ha-noi", "\"reporter\"", None)).expect("tokens");
    let ingest = govpulse_ingest::Server::build(govpulse_ingest::Config {
        catalog_dir: Some(catalog.clone()),
        host: host.clone(),
        aggregate: AggregateArgs {
            aggregate_url: aggregate_url.clone(),
            upstream: upstream.clone(),
        },
        token_file: TokenFileArgs::at(tokens),
        ..govpulse_ingest::Config::new(local0(), String::new())
    })
    .await
    .expect("ingest starts");
    let ranking = govpulse_ranking::Server::build(govpulse_ranking::Config {
        catalog_dir: Some(catalog.clone()),
        host,
        aggregate: AggregateArgs {
            aggregate_url,
            upstream,
        },
        min_volume: 0,
        ..govpulse_ranking::Config::new(local0(), String::new())
    })
    .await
    .expect("ranking starts");
    let (ingest_addr, ranking_addr) = (ingest.host().local_addr(), ranking.host().local_addr());
    let tasks = [
        spawn_service(aggregate.run_until(stop.clone().cancelled_owned())),
        spawn_service(ingest.run_until(stop.clone().cancelled_owned())),
        spawn_service(ranking.run_until(stop.clone().cancelled_owned())),
    ];

    let at = two_days_ago_noon();
    let accepted = IngestServiceClient::new(tls_channel(ingest_addr, &pki.ca_pem(), None))
        .submit_events(with_token(
            batch(vec![received("tls-1", "ha-noi", at, true)]),
            "t",
        ))
        .await
        .expect("ingest answers over TLS and reaches aggregate over mutual TLS")
        .into_inner();
    assert_eq!(accepted.accepted, 1);

    // Reading is not public here: a client certificate with the reader role reads.
    let reader = pki.issue(
        &[],
        &["govpulse:agency:ha-noi", "govpulse:role:reader"],
        false,
    );
    let ranking =
        RankingServiceClient::new(tls_channel(ranking_addr, &pki.ca_pem(), Some(&reader)))
            .get_ranking(GetRankingRequest {
                query: Some(RankingQuery {
                    metric: "online-dossier-rate".into(),
                    block: Block::Province.into(),
                    period: at.date().to_string(),
                    selection: None,
                    index: String::new(),
                    parent_id: String::new(),
                    ..Default::default()
                }),
            })
            .await
            .expect("ranking answers over TLS and reads aggregate over mutual TLS")
            .into_inner();
    let first = &ranking.rows[0];
    assert_eq!((first.rank, first.agency_id.as_str()), (1, "ha-noi"));

    let plaintext = refused(
        IngestServiceClient::new(plain(ingest_addr))
            .submit_events(with_token(batch(vec![]), "t"))
            .await,
    );
    assert_eq!(
        plaintext.code(),
        Code::Unknown,
        "a TLS server does not speak plaintext: {plaintext:?}"
    );
    stop.cancel();
    for task in tasks {
        task.await.expect("service stops");
    }
}

/// The health status of `service` on `addr`, asked in plaintext.
async fn plaintext_health(addr: SocketAddr, service: &str) -> Result<ServingStatus, Code> {
    let status = HealthClient::new(plain(addr))
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map_err(|s| s.code())?
        .into_inner()
        .status;
    Ok(ServingStatus::try_from(status).expect("a known status"))
}

#[tokio::test]
async fn a_tls_service_answers_health_alone_in_plaintext_on_its_health_port_until_it_has_drained() {
    let dir = scratch("health-port");
    let catalog = write_catalog(&dir);
    let pki = Pki::new("govpulse test CA");
    let (cert, key) = write_pem(&dir, "server", &pki.issue(&["localhost"], &[], false));
    let stop = CancellationToken::new();
    let aggregate = govpulse_aggregate::Server::build(govpulse_aggregate::Config {
        catalog_dir: Some(catalog),
        host: HostArgs {
            tls: TlsArgs {
                tls_cert: Some(cert),
                tls_key: Some(key),
                ..Default::default()
            },
            health_listen: Some(local0()),
            ..Default::default()
        },
        ..govpulse_aggregate::Config::new(local0())
    })
    .await
    .expect("aggregate starts");
    let main = aggregate.host().local_addr();
    let health = aggregate.host().health_addr().expect("a health port");
    let task = spawn_service(aggregate.run_until(stop.clone().cancelled_owned()));

    for service in [
        "",
        "govpulse.aggregate.v1.AggregateService",
        "govpulse.catalog.v1.CatalogService",
    ] {
        assert_eq!(
            plaintext_health(health, service).await,
            Ok(ServingStatus::Serving),
            "{service:?}"
        );
    }
    // Health and nothing else: neither the service's API nor the catalog nor reflection.
    let api = refused(
        AggregateServiceClient::new(plain(health))
            .get_metrics(GetMetricsRequest {
                agency_id: "ha-noi".into(),
                period: "ytd".into(),
                metrics: vec![],
                ..Default::default()
            })
            .await,
    );
    assert_eq!(api.code(), Code::Unimplemented, "{api:?}");
    let catalog = refused(
        CatalogServiceClient::new(plain(health))
            .list_agencies(ListAgenciesRequest::default())
            .await,
    );
    assert_eq!(catalog.code(), Code::Unimplemented, "{catalog:?}");
    // The main port still speaks TLS only, health included.
    let plaintext = plaintext_health(main, "").await;
    assert!(plaintext.is_err(), "{plaintext:?}");

    // A call in flight on the main port (a health Watch, which never ends by itself) holds
    // the drain open, so what the health port says during a drain can be seen.
    let mut watch = HealthClient::new(tls_channel(main, &pki.ca_pem(), None))
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch over TLS")
        .into_inner();
    let mut next = async || {
        let message = watch.message().await.expect("a status").expect("open");
        ServingStatus::try_from(message.status).expect("a known status")
    };
    assert_eq!(next().await, ServingStatus::Serving);
    stop.cancel();
    assert_eq!(next().await, ServingStatus::NotServing, "shutdown began");
    assert_eq!(
        plaintext_health(health, "").await,
        Ok(ServingStatus::NotServing),
        "the health port answers during the drain"
    );
    drop(watch);
    task.await.expect("aggregate drains and stops");
    let closed = tokio::net::TcpStream::connect(health).await;
    assert!(
        closed.is_err(),
        "the health port closes with the server: {closed:?}"
    );
}

#[tokio::test]
async fn a_service_without_tls_or_credentials_configured_does_not_start() {
    let dir = scratch("secure-defaults");
    let catalog = write_catalog(&dir);
    // Ingest wants TLS first, then a way to authenticate callers; each refusal names the
    // flag that lifts it.
    for (host, named) in [
        (HostArgs::default(), "--plaintext"),
        (HostArgs::default().plaintext(), "--allow-anonymous"),
    ] {
        let ingest = govpulse_ingest::Server::build(govpulse_ingest::Config {
            catalog_dir: Some(catalog.clone()),
            host,
            ..govpulse_ingest::Config::new(local0(), "http://127.0.0.1:1".into())
        })
        .await;
        assert!(
            matches!(&ingest, Err(e) if e.to_string().contains(named)),
            "{ingest:?}"
        );
    }
    let aggregate = govpulse_aggregate::Server::build(govpulse_aggregate::Config {
        catalog_dir: Some(catalog),
        ..govpulse_aggregate::Config::new(local0())
    })
    .await;
    assert!(aggregate.is_err(), "aggregate needs TLS or --plaintext");
}

/// An edge whose ingest has `limits` and two reporters: the token `busy` of Hải Phòng and
/// `calm` of Hà Nội.
async fn start_busy_and_calm(name: &str, limits: govpulse_ingest::Limits) -> Edge {
    let tokens = credential("busy", "hai-phong", "\"reporter\"", None)
        + &credential("calm", "ha-noi", "\"reporter\"", None);
    let (edge, _) = start_edge_with_tokens(name, &tokens, |c| govpulse_ingest::Config {
        limits,
        ..c.development()
    })
    .await;
    edge
}

#[tokio::test]
async fn one_agency_flooding_does_not_hold_back_another() {
    // 200 events a second each, 100 at once.
    let edge = start_busy_and_calm(
        "flood",
        govpulse_ingest::Limits {
            rate_per_agency: 200,
            burst_per_agency: 100,
            max_batch: 100,
            ..govpulse_ingest::Limits::default().without_per_agency()
        },
    )
    .await;
    let at = two_days_ago_noon();

    // Hải Phòng sends 40 batches of 100 at once: far over its rate.
    let flood = (0..40).map(|b| {
        let mut client = edge.ingest();
        async move {
            let events = (0..100)
                .map(|i| received(&format!("f{b}-{i}"), "hai-phong", at, true))
                .collect();
            client
                .submit_events(with_token(batch(events), "busy"))
                .await
        }
    });
    let flood = tokio::spawn(futures::future::join_all(flood));

    // Meanwhile Hà Nội sends 20 batches of 5, its normal rate: every one is accepted.
    let mut calm = edge.ingest();
    for b in 0..20 {
        let events = (0..5)
            .map(|i| received(&format!("c{b}-{i}"), "ha-noi", at, true))
            .collect();
        let response = calm
            .submit_events(with_token(batch(events), "calm"))
            .await
            .expect("the calm agency is never limited")
            .into_inner();
        assert_eq!(response.accepted, 5);
    }

    let results = flood.await.expect("flood finishes");
    let limited: Vec<&Status> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let accepted = results.len() - limited.len();
    assert!(
        accepted >= 1 && limited.len() >= 30,
        "accepted {accepted}, limited {}",
        limited.len()
    );
    for status in &limited {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let retry = status
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .expect("a retry delay");
        assert!(
            retry > Duration::ZERO && retry <= Duration::from_secs(1),
            "{retry:?}"
        );
    }
    assert_eq!(edge.received("ha-noi", at).await, 100);
    assert_eq!(
        edge.received("hai-phong", at).await,
        100 * accepted as u64,
        "a limited batch counts nothing"
    );
}

/// An edge (its ingest with the development defaults) and a ranking, both reading the token
/// file `tokens` of [`start_edge_with_tokens`], the ranking configured by `edit` from the
/// development defaults with that file.
async fn start_guarded_ranking(
    name: &str,
    tokens: &str,
    edit: impl FnOnce(govpulse_ranking::Config) -> govpulse_ranking::Config,
) -> (Edge, Spawned) {
    let (edge, token_file) =
        start_edge_with_tokens(name, tokens, govpulse_ingest::Config::development).await;
    let ranking = Spawned::ranking(edit(govpulse_ranking::Config {
        catalog_dir: Some(edge.catalog.clone()),
        token_file: TokenFileArgs::at(token_file),
        ..govpulse_ranking::Config::new(local0(), format!("http://{}", edge.aggregate))
            .development()
    }))
    .await;
    (edge, ranking)
}

/// The request `request` makes, sent by `call` without a credential, then with the token
/// `without_role` (a valid credential without the role the call needs): asserts that the first
/// is unauthenticated and the second denied; returns the denial.
async fn refused_without_the_role<R, T>(
    request: impl Fn() -> R,
    call: impl AsyncFn(Request<R>) -> Result<tonic::Response<T>, Status>,
    without_role: &str,
) -> Status {
    let anonymous = refused(call(Request::new(request())).await);
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    let denied = refused(call(with_token(request(), without_role)).await);
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "{without_role}: {denied:?}"
    );
    denied
}

#[tokio::test]
async fn reading_rankings_can_require_a_reader_credential() {
    let tokens = credential("reader", "ha-noi", "\"reader\"", None)
        + &credential("reporter", "ha-noi", "\"reporter\"", None);
    let (_edge, ranking) =
        start_guarded_ranking("readers", &tokens, |config| govpulse_ranking::Config {
            public_read: false,
            ..config
        })
        .await;
    let query = || GetRankingRequest {
        query: Some(provinces_by_online_rate(
            two_days_ago_noon().date().to_string(),
        )),
    };
    let mut client = RankingServiceClient::new(plain(ranking.addr()));
    let call = async |request| client.clone().get_ranking(request).await;
    refused_without_the_role(query, call, "reporter").await;
    client
        .get_ranking(with_token(query(), "reader"))
        .await
        .expect("a reader reads");
    ranking.stop().await;
}

#[tokio::test]
async fn publishing_needs_the_publisher_role_even_where_reading_is_public() {
    let tokens = credential("reader", "ha-noi", "\"reader\"", None)
        + &credential("publisher", "mof", "\"publisher\"", None);
    let (_edge, ranking) =
        start_guarded_ranking("publishers", &tokens, |config| govpulse_ranking::Config {
            public_read: true,
            allow_anonymous: false,
            ..config
        })
        .await;
    let publish = || PublishRequest {
        publication_id: "w1".into(),
        title: "Weekly ranking".into(),
        query: Some(provinces_by_online_rate(
            two_days_ago_noon().date().to_string(),
        )),
        block_metrics: None,
    };
    let mut client = RankingServiceClient::new(plain(ranking.addr()));
    let call = async |request| client.clone().publish(request).await;
    let reader = refused_without_the_role(publish, call, "reader").await;
    assert!(reader.message().contains("publisher"), "{reader:?}");
    let made = client
        .publish(with_token(publish(), "publisher"))
        .await
        .expect("a publisher publishes")
        .into_inner();
    assert!(made.created);
    assert_eq!(
        made.publication.map(|p| p.published_by),
        Some("mof".to_owned()),
        "the publication names its publisher's agency"
    );
    ranking.stop().await;
}

#[tokio::test]
async fn only_an_assessor_reports_assessed_scores() {
    let tokens = credential("reporter", "ha-noi", "\"reporter\"", None)
        + &credential("assessor", "mof", "\"assessor\"", None);
    let (edge, _) = start_edge_with_tokens("assessor", &tokens, |c| govpulse_ingest::Config {
        allow_anonymous: false,
        ..c.development()
    })
    .await;
    let report = || ReportAssessedScoresRequest { scores: vec![] };
    let call = async |request| edge.ingest().report_assessed_scores(request).await;
    refused_without_the_role(report, call, "reporter").await;
    let stored = edge
        .ingest()
        .report_assessed_scores(with_token(report(), "assessor"))
        .await
        .expect("an assessor reports")
        .into_inner()
        .stored;
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn an_agency_holds_a_bounded_number_of_open_streams_and_others_are_not_held_back() {
    let edge = start_busy_and_calm(
        "streams",
        govpulse_ingest::Limits {
            max_streams_per_agency: 1,
            ..govpulse_ingest::Limits::default().without_per_agency()
        },
    )
    .await;
    let open = |token: &str| {
        let (batches, rx) = tokio::sync::mpsc::channel::<StreamEventsRequest>(1);
        let request = with_token(tokio_stream::wrappers::ReceiverStream::new(rx), token);
        let mut client = edge.ingest();
        async move { (batches, client.stream_events(request).await) }
    };
    let (first, accepted) = open("busy").await;
    let mut acks = accepted.expect("the first stream opens").into_inner();
    let (_second, refused_stream) = open("busy").await;
    let status = refused(refused_stream);
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let (_calm, calm) = open("calm").await;
    calm.expect("another agency opens its own stream");

    // Closing the first stream frees its place.
    drop(first);
    assert!(acks.message().await.expect("clean end").is_none());
    let reopened = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let (batches, Ok(_)) = open("busy").await {
                return batches;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        reopened.is_ok(),
        "a place is free again once a stream closed"
    );
}
