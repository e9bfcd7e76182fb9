//! The `govpulse-aggregate` binary as Kubernetes runs it: configured by environment
//! variables, healthy once up, and on SIGTERM it reports NOT_SERVING, drains and exits 0.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn configured_by_environment_healthy_and_stopped_by_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_govpulse-aggregate"))
        .env("GOVPULSE_LISTEN", "127.0.0.1:0")
        .env("GOVPULSE_STORE", "memory")
        .env("GOVPULSE_PLAINTEXT", "true")
        .env("GOVPULSE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines) = std::sync::mpsc::channel::<serde_json::Value>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let log: serde_json::Value =
                serde_json::from_str(&line).expect("every log line is JSON");
            let _ = lines_tx.send(log);
        }
    });
    let bound = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a first log line");
    assert_eq!(bound["fields"]["message"], "aggregate bound", "{bound}");
    let addr = bound["fields"]["addr"]
        .as_str()
        .expect("the bound address is logged")
        .to_owned();

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    for service in [
        "",
        "govpulse.aggregate.v1.AggregateService",
        "govpulse.catalog.v1.CatalogService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("exits");
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    // The process has exited, so its stderr ends: once the reader has seen the end, every
    // line is in the channel.
    reader.join().expect("the log reader does not panic");
    let messages: Vec<String> = lines
        .try_iter()
        .filter_map(|l| l["fields"]["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        messages.iter().any(|m| m == "stop requested"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("shutting down: reporting not serving")),
        "{messages:?}"
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("stopped"),
        "{messages:?}"
    );
}
