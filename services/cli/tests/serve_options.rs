//! `govpulse serve` takes the options of the three services, each also from the environment
//! variable the services read: a catalog folder, a horizon, targets, index profiles and a
//! minimum volume; ingest's limits; tokens; TLS; Redis. One test per family.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use govpulse_e2e::{
    command::{Serve, assert_says, assert_submitted, shows, text},
    pki::write_server_pki,
    scratch,
};
use govpulse_store::testing::RedisServer;

const GOVPULSE: &str = env!("CARGO_BIN_EXE_govpulse");
const SHIPPED_CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/catalog");

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The files a configured serve loads: a catalog where Quảng Ninh provides 1,766
/// procedures, 1,278 of them online (780 full-process, 498 partially), a target for Quảng
/// Ninh's online dossier rate in 2022, and a composite profile of one measured indicator.
struct Settings {
    catalog: PathBuf,
    targets: PathBuf,
    profiles: PathBuf,
}

fn settings(dir: &Path) -> Settings {
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).expect("catalog folder");
    for file in ["provinces.csv", "ministries.csv", "mergers.csv"] {
        std::fs::copy(format!("{SHIPPED_CATALOG}/{file}"), catalog.join(file))
            .expect("copy the shipped catalog");
    }
    let mut procedures = String::from("id,agency_id,name,provision,eligible_full_online\n");
    for i in 1..=1766 {
        let (provision, eligible) = match i {
            ..=780 => ("full", true),
            781..=1278 => ("partial", true),
            _ => ("info", false),
        };
        procedures.push_str(&format!(
            "quang-ninh.p{i:04},quang-ninh,Thủ tục {i},{provision},{eligible}\n"
        ));
    }
    procedures.push_str("ha-noi.p0001,ha-noi,Thủ tục,full,true\n");
    std::fs::write(catalog.join("procedures.csv"), procedures).expect("procedures");
    let targets = dir.join("targets.toml");
    std::fs::write(
        &targets,
        "[[targets]]\nmetric = \"online-dossier-rate\"\nyear = 2022\nagency = \"quang-ninh\"\npercent = 75\n",
    )
    .expect("targets");
    let profiles = dir.join("indexes.toml");
    std::fs::write(
        &profiles,
        "[[profiles]]\nname = \"online-2022\"\ntitle = \"Online dossiers\"\n\n\
         [[profiles.indicators]]\ncriterion = \"online\"\ntitle = \"Online dossiers\"\n\
         points = 100\nmetric = \"online-dossier-rate\"\n",
    )
    .expect("profiles");
    Settings {
        catalog,
        targets,
        profiles,
    }
}

/// Events of March 2022, older than the default horizon of 400 days: Quảng Ninh 25 dossiers
/// of which 20 online, Hà Nội 5 of which 1 online.
fn events_of_2022(dir: &Path) -> PathBuf {
    let line = |id: String, agency: &str, online: bool| {
        let channel = if online {
            "CHANNEL_ONLINE"
        } else {
            "CHANNEL_IN_PERSON"
        };
        format!(
            r#"{{"eventId":"{id}","agencyId":"{agency}","dossierId":"HS-{id}","procedureId":"{agency}.p0001","occurredAt":"2022-03-15T09:00:00+07:00","received":{{"channel":"{channel}"}}}}"#
        )
    };
    let mut lines: Vec<String> = (0..25)
        .map(|i| line(format!("qn-{i}"), "quang-ninh", i < 20))
        .collect();
    lines.extend((0..5).map(|i| line(format!("hn-{i}"), "ha-noi", i < 1)));
    let file = dir.join("events-2022.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").expect("events");
    file
}

/// `govpulse metrics` of Quảng Ninh's `metric` (with `more` options) from `serve`'s aggregate.
fn quang_ninh(serve: &Serve, metric: &str, more: &[&str]) -> std::process::Output {
    let args = [
        &["metrics", "--agency", "quang-ninh", "--metric", metric][..],
        more,
    ]
    .concat();
    serve.call(GOVPULSE, &args, "aggregate")
}

/// What a serve configured with [`settings`] and a minimum volume of 20 answers.
fn check_configured(serve: &Serve, events: &Path) {
    let submitted = serve.call(GOVPULSE, &["submit", path(events)], "ingest");
    assert_submitted(
        &submitted,
        "accepted 30, duplicate 0, rejected 0",
        "2022 is within the horizon: ",
    );
    // Quảng Ninh's published figure, from this catalog.
    let provision = quang_ninh(serve, "online-provision-rate", &[]);
    assert!(
        text(&provision.stdout)
            .lines()
            .any(|l| l.contains("online-provision-rate") && l.ends_with("72.37% (1278/1766)")),
        "{}{}",
        text(&provision.stdout),
        text(&provision.stderr)
    );
    // The target of this targets file.
    let online = quang_ninh(serve, "online-dossier-rate", &["--period", "2022"]);
    let out = text(&online.stdout);
    assert!(out.contains("80.00% (20/25)"), "{out}");
    assert!(
        out.contains("target 75.00% (agency quang-ninh): met (+5.00 pts)"),
        "{out}"
    );
    // The profile of this profiles file, and the minimum volume: Hà Nội's 5 dossiers are
    // listed apart.
    let ranking = serve.call(
        GOVPULSE,
        &["ranking", "--index", "online-2022", "--period", "2022"],
        "ranking",
    );
    let out = text(&ranking.stdout);
    assert!(ranking.status.success(), "{out}{}", text(&ranking.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(
            "province by online-2022 (out of 100.00), 2022-01-01..2022-12-31, 1 ranked, minimum volume 20"
        ),
        "{out}"
    );
    assert!(shows(lines[2], &["Quảng Ninh", "80.00"]), "{out}");
    assert!(shows(lines[3], &["Hà Nội", "min"]), "{out}");
}

/// The settings [`check_configured`] expects, each as its flag, the environment variable
/// that says the same, and its value: a horizon that reaches 2022, the files of [`settings`]
/// and a minimum volume of 20.
fn configured(s: &Settings) -> [(&'static str, &'static str, &str); 5] {
    [
        ("--horizon-days", "GOVPULSE_HORIZON_DAYS", "3000"),
        ("--catalog-dir", "GOVPULSE_CATALOG_DIR", path(&s.catalog)),
        ("--targets", "GOVPULSE_TARGETS", path(&s.targets)),
        (
            "--index-profiles",
            "GOVPULSE_INDEX_PROFILES",
            path(&s.profiles),
        ),
        ("--min-volume", "GOVPULSE_MIN_VOLUME", "20"),
    ]
}

#[test]
fn serve_takes_a_catalog_horizon_targets_profiles_and_minimum_volume_from_its_flags() {
    let dir = scratch("flags");
    let s = settings(&dir);
    let flags: Vec<&str> = configured(&s)
        .into_iter()
        .flat_map(|(flag, _, value)| [flag, value])
        .collect();
    let serve = Serve::start(GOVPULSE, &flags, &[], "http");
    check_configured(&serve, &events_of_2022(&dir));
}

#[test]
fn serve_takes_the_same_settings_from_the_environment() {
    let dir = scratch("env");
    let s = settings(&dir);
    let env: Vec<(&str, &str)> = configured(&s)
        .into_iter()
        .map(|(_, variable, value)| (variable, value))
        .collect();
    let serve = Serve::start(GOVPULSE, &[], &env, "http");
    check_configured(&serve, &events_of_2022(&dir));
}

/// Yesterday at noon in Vietnam, as RFC 3339: inside the default horizon.
fn yesterday_noon() -> String {
    let day = (time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(7, 0, 0).expect("offset"))
        - time::Duration::days(1))
    .date();
    format!("{day}T12:00:00+07:00")
}

/// `n` receptions of Lạng Sơn, yesterday.
fn recent_events(dir: &Path, n: usize) -> PathBuf {
    let at = yesterday_noon();
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"eventId":"r-{i}","agencyId":"lang-son","dossierId":"HS-r-{i}","procedureId":"lang-son.p01","occurredAt":"{at}","received":{{"channel":"CHANNEL_ONLINE"}}}}"#
            )
        })
        .collect();
    let file = dir.join(format!("recent-{n}.jsonl"));
    std::fs::write(&file, lines.join("\n") + "\n").expect("events");
    file
}

#[test]
fn serve_applies_ingests_limits() {
    let dir = scratch("limits");
    let serve = Serve::start(GOVPULSE, &[], &[("GOVPULSE_MAX_BATCH", "2")], "http");
    let three = recent_events(&dir, 3);
    let refused = serve.call(
        GOVPULSE,
        &["submit", path(&three), "--batch-size", "3"],
        "ingest",
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("InvalidArgument")
            && text(&refused.stderr).contains("the limit is 2"),
        "{}",
        text(&refused.stderr)
    );
    let fits = serve.call(
        GOVPULSE,
        &["submit", path(&three), "--batch-size", "2"],
        "ingest",
    );
    assert_submitted(&fits, "accepted 3, duplicate 0, rejected 0", "");
}

/// `govpulse token` for Lạng Sơn with `roles`: the token, and the entry for the token file.
fn token(roles: &str) -> (String, String) {
    let out = Command::new(GOVPULSE)
        .args(["token", "--agency", "lang-son", "--roles", roles])
        .output()
        .expect("govpulse token runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = text(&out.stdout);
    let mut lines = out.lines();
    let token = lines.nth(1).expect("the token line").to_owned();
    let entry = out
        .split_once("add to the token file:\n")
        .expect("the entry")
        .1
        .to_owned();
    (token, entry)
}

#[test]
fn serve_with_tokens_wants_a_credential_for_reporting_and_reading() {
    let dir = scratch("tokens");
    let (reporter, reporter_entry) = token("reporter");
    let (reader, reader_entry) = token("reader");
    let file = dir.join("tokens.toml");
    std::fs::write(&file, reporter_entry + &reader_entry).expect("token file");
    let serve = Serve::start(GOVPULSE, &["--tokens", path(&file)], &[], "http");
    let events = recent_events(&dir, 2);
    let anonymous = serve.call(
        GOVPULSE,
        &["submit", path(&events), "--retry-for", "0"],
        "ingest",
    );
    assert_says(&anonymous.stderr, "Unauthenticated");
    let reported = serve.call(
        GOVPULSE,
        &["submit", path(&events), "--token", &reporter],
        "ingest",
    );
    assert_submitted(&reported, "accepted 2, duplicate 0, rejected 0", "");
    let unread = serve.call(GOVPULSE, &["ranking"], "ranking");
    assert_says(&unread.stderr, "Unauthenticated");
    let read = serve.call(GOVPULSE, &["ranking", "--token", &reader], "ranking");
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_says(&read.stdout, "Lạng Sơn");
}

#[test]
fn serve_speaks_tls_with_one_certificate_for_the_three_services() {
    let dir = scratch("tls");
    // The services call each other on the loopback address they listen on.
    let [ca_file, cert_file, key_file] = write_server_pki(&dir, &["127.0.0.1", "localhost"]);
    let serve = Serve::start(
        GOVPULSE,
        &[
            "--tls-cert",
            path(&cert_file),
            "--tls-key",
            path(&key_file),
            "--upstream-ca",
            path(&ca_file),
        ],
        &[],
        "https",
    );
    let events = recent_events(&dir, 2);
    let reported = serve.call(
        GOVPULSE,
        &["submit", path(&events), "--ca", path(&ca_file)],
        "ingest",
    );
    assert_submitted(
        &reported,
        "accepted 2, duplicate 0, rejected 0",
        "ingest over TLS, and ingest to aggregate over TLS: ",
    );
    let read = serve.call(GOVPULSE, &["ranking", "--ca", path(&ca_file)], "ranking");
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_says(&read.stdout, "Lạng Sơn");
    // Without the CA the certificate is not trusted.
    let untrusted = serve.call(GOVPULSE, &["ranking"], "ranking");
    assert!(!untrusted.status.success());
    // A certificate without the CA to check it by is refused at start.
    let refused = Command::new(GOVPULSE)
        .args([
            "serve",
            "--ports",
            "0",
            "0",
            "0",
            "--tls-cert",
            path(&cert_file),
        ])
        .args(["--tls-key", path(&key_file)])
        .output()
        .expect("serve runs");
    assert_says(&refused.stderr, "--tls-cert needs --upstream-ca");
}

#[test]
fn serve_counts_into_redis_and_keeps_the_counts_across_a_restart() {
    let dir = scratch("redis");
    let redis = RedisServer::start().expect("redis-server starts");
    let url = redis.url();
    let events = recent_events(&dir, 3);
    let args = ["--redis", url.as_str(), "--key-prefix", "serve-test"];
    let first = Serve::start(GOVPULSE, &args, &[], "http");
    let reported = first.call(GOVPULSE, &["submit", path(&events)], "ingest");
    assert_submitted(&reported, "accepted 3, duplicate 0, rejected 0", "");
    drop(first);
    // A new process, the same Redis: the events are remembered and counted.
    let second = Serve::start(
        GOVPULSE,
        &[],
        &[
            ("GOVPULSE_REDIS_URL", &url),
            ("GOVPULSE_KEY_PREFIX", "serve-test"),
        ],
        "http",
    );
    let again = second.call(GOVPULSE, &["submit", path(&events)], "ingest");
    assert_submitted(&again, "accepted 0, duplicate 3, rejected 0", "");
}
