//! The `govpulse` command as a person uses it: `serve`, then `submit`, `ranking`,
//! `metrics`, and the publications (`publish`, `publications`, `publication`, `revisions`)
//! against it; and `demo` showing a live ranking.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use govpulse_e2e::{
    command::{Lines, Running, Serve, assert_says, assert_submitted, shows, text},
    pki::write_server_pki,
    scratch,
};
use govpulse_edge::auth::TokenFileArgs;
use govpulse_runtime::client::AggregateArgs;

const GOVPULSE: &str = env!("CARGO_BIN_EXE_govpulse");

/// Starts `govpulse` with `args`, its standard output drained into the returned lines and
/// its standard error (its log) discarded.
fn start(args: &[&str]) -> (Running, Lines) {
    let (running, stdout, _log) = start_logged(args);
    (running, stdout)
}

/// Starts `govpulse` with `args`: the process, its standard output and its standard error
/// (its log), each drained into lines.
fn start_logged(args: &[&str]) -> (Running, Lines, Lines) {
    let mut child = Command::new(GOVPULSE)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("govpulse {args:?} starts: {e}"));
    let stdout = Lines::drain(child.stdout.take().expect("stdout is piped"));
    let log = Lines::drain(child.stderr.take().expect("stderr is piped"));
    (Running(child), stdout, log)
}

/// `govpulse demo` on free ports: `rate` live dossiers a second, `history_days` of history
/// with `backfill` dossiers in all; its output, then its log.
fn start_demo(rate: u32, history_days: u32, backfill: u32) -> (Running, Lines, Lines) {
    let (rate, history_days, backfill) = (
        rate.to_string(),
        history_days.to_string(),
        backfill.to_string(),
    );
    start_logged(&[
        "demo",
        "--ports",
        "0",
        "0",
        "0",
        "--rate",
        &rate,
        "--history-days",
        &history_days,
        "--backfill",
        &backfill,
    ])
}

/// `govpulse serve` on free ports, ranking every agency with data.
fn serve() -> Serve {
    serve_on_ports(["0", "0", "0"])
}

/// `govpulse serve` on `ports` (ingest, aggregate, ranking; 0 for a free one).
fn serve_on_ports(ports: [&str; 3]) -> Serve {
    // A handful of dossiers per agency: rank every agency with data.
    let (process, stdout) = start(&[
        "serve",
        "--min-volume",
        "0",
        "--ports",
        ports[0],
        ports[1],
        ports[2],
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    // The lines after the addresses (the dashboard's) go on being drained.
    Serve::listening(process, "http", |what| stdout.next_before(deadline, what))
}

/// `govpulse metrics --json` of one agency and period, from `serve`'s aggregate.
fn metrics_json(serve: &Serve, agency: &str, period: &str) -> serde_json::Value {
    let out = govpulse(&[
        "metrics",
        "--agency",
        agency,
        "--period",
        period,
        "--json",
        "--aggregate",
        &serve.aggregate,
    ]);
    serde_json::from_slice(&out.stdout).expect("json")
}

fn govpulse(args: &[&str]) -> Output {
    Command::new(GOVPULSE)
        .args(args)
        .output()
        .expect("govpulse runs")
}

/// `govpulse submit` of `file` to the ingest of `serve`, with `extra` arguments.
fn submit(serve: &Serve, file: &Path, extra: &[&str]) -> Output {
    let file = file.to_str().expect("utf-8 path");
    govpulse(&[&["submit", file, "--ingest", &serve.ingest], extra].concat())
}

/// `govpulse ranking` with `args` against the ranking service of `serve`: what it printed,
/// once it succeeded.
fn ranking(serve: &Serve, args: &[&str]) -> String {
    let output = govpulse(&[&["ranking"], args, &["--ranking", &serve.ranking]].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

/// Yesterday at noon, Vietnam time, as RFC 3339, and that day.
fn yesterday() -> (String, String) {
    let day = (time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(7, 0, 0).expect("offset"))
        - time::Duration::days(1))
    .date();
    (format!("{day}T12:00:00+07:00"), day.to_string())
}

/// The 10th of last month at noon, Vietnam time, as RFC 3339; that day; and last month as a
/// period (`2026-11`): a day already over, whatever the hour the test runs.
fn last_month() -> (String, String, String) {
    let today = time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(7, 0, 0).expect("offset"))
        .date();
    let day = (today.replace_day(1).expect("the 1st") - time::Duration::days(1))
        .replace_day(10)
        .expect("the 10th");
    (
        format!("{day}T12:00:00+07:00"),
        day.to_string(),
        format!("{}-{:02}", day.year(), u8::from(day.month())),
    )
}

fn event_line(id: &str, agency: &str, at: &str, channel: &str) -> String {
    format!(
        r#"{{"eventId":"{id}","agencyId":"{agency}","dossierId":"HS-{id}","procedureId":"{agency}.p01","occurredAt":"{at}","received":{{"channel":"{channel}","digitized":true}}}}"#
    )
}

fn write_file(name: &str, lines: &[String]) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("govpulse-cli-{}-{name}.jsonl", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("temp file");
    for line in lines {
        writeln!(f, "{line}").expect("write");
    }
    path
}

#[test]
fn assess_then_rank_by_a_composite_index_shows_score_and_grade() {
    let serve = serve();
    // Hà Giang's points for 2024 in system-quality-2024, from flags: `--score` each.
    let assess_ha_giang = |scores: &[&str]| {
        let mut args = vec![
            "assess",
            "--agency",
            "ha-giang",
            "--profile",
            "system-quality-2024",
            "--period",
            "2024",
            "--ingest",
            &serve.ingest,
        ];
        for score in scores {
            args.extend(["--score", score]);
        }
        govpulse(&args)
    };
    let assessed = assess_ha_giang(&[
        "function=38.75",
        "structure-layout=4",
        "performance=15",
        "security=11",
        "convenient-access=3.75",
        "monitoring-connection=0",
    ]);
    assert!(assessed.status.success(), "{}", text(&assessed.stderr));
    assert_eq!(text(&assessed.stdout), "stored 6\n");
    let file = write_file(
        "scores",
        &[r#"{"agencyId":"lang-son","profile":"system-quality-2024","criterion":"function","period":"2024","points":"45"}"#.to_owned()],
    );
    let from_file = govpulse(&[
        "assess",
        file.to_str().expect("utf-8 path"),
        "--ingest",
        &serve.ingest,
    ]);
    assert_eq!(text(&from_file.stdout), "stored 1\n");
    let refused = assess_ha_giang(&["function=51"]);
    assert_eq!(refused.status.code(), Some(2));
    assert_says(
        &refused.stderr,
        "scores[0].points: 51 is above the 50.00 points of function in system-quality-2024",
    );

    let out = ranking(
        &serve,
        &[
            "--index",
            "system-quality-2024",
            "--period",
            "2024",
            "--top",
            "2",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(
            "province by system-quality-2024 (out of 100.00), 2024-01-01..2024-12-31, 2 ranked"
        ),
        "{out}"
    );
    assert!(
        shows(lines[2], &["Hà Giang", "72.50"]) && lines[2].ends_with("  C"),
        "{out}"
    );
    assert!(
        lines[3].contains("Lạng Sơn")
            && lines[3].contains("45.00")
            && lines[3].ends_with("E partial"),
        "{out}"
    );
}

#[test]
fn submit_ranking_and_metrics_against_serve() {
    let serve = serve();
    let (at, day) = yesterday();
    let mut lines: Vec<String> = (0..4)
        .map(|i| {
            event_line(
                &format!("hb{i}"),
                "lang-son",
                &at,
                if i < 3 {
                    "CHANNEL_ONLINE"
                } else {
                    "CHANNEL_IN_PERSON"
                },
            )
        })
        .collect();
    lines.push(event_line("qn0", "quang-ninh", &at, "CHANNEL_ONLINE"));
    lines.push(event_line("qn1", "quang-ninh", &at, "CHANNEL_POSTAL"));
    lines.push(event_line("bad", "atlantis", &at, "CHANNEL_ONLINE"));
    let file = write_file("good", &lines);

    let first = submit(&serve, &file, &[]);
    let out = text(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(1),
        "a rejected event makes the exit status 1: {out}"
    );
    assert!(
        out.contains("line 7: rejected: events[6].agency_id: unknown agency \"atlantis\""),
        "{out}"
    );
    assert!(
        out.ends_with("accepted 6, duplicate 0, rejected 1\n"),
        "{out}"
    );

    let again = submit(&serve, &file, &["--batch-size", "2"]);
    assert!(
        text(&again.stdout).ends_with("accepted 0, duplicate 6, rejected 1\n"),
        "{}",
        text(&again.stdout)
    );
    // The same id with other content: not counted, named, and the exit status says so.
    let edited = write_file(
        "edited",
        &[event_line("qn1", "quang-ninh", &at, "CHANNEL_ONLINE")],
    );
    let edited = submit(&serve, &edited, &[]);
    let out = text(&edited.stdout);
    assert_eq!(edited.status.code(), Some(1), "{out}");
    assert!(
        out.starts_with(
            "line 1: conflict: events[0].kind: an event with other content (kind) was counted \
             under this event id before; this one is not counted"
        ),
        "{out}"
    );
    assert!(
        out.ends_with("accepted 0, duplicate 0, conflict 1, rejected 0\n"),
        "{out}"
    );

    let out = ranking(&serve, &["--period", &day, "--top", "2"]);
    let rows: Vec<&str> = out.lines().skip(2).collect();
    assert!(shows(rows[0], &["Lạng Sơn", "75.00%", "3/4"]), "{out}");
    assert!(shows(rows[1], &["Quảng Ninh", "50.00%"]), "{out}");

    let json = ranking(&serve, &["--period", &day, "--bottom", "1", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value["rows"][0]["agencyId"], "quang-ninh");
    assert_eq!(value["rankedCount"], 2);

    let value = metrics_json(&serve, "lang-son", &day);
    assert_eq!(
        value["counters"]["received"], "4",
        "uint64 is a string in the JSON mapping"
    );
    let table = text(
        &govpulse(&[
            "metrics",
            "--agency",
            "lang-son",
            "--period",
            &day,
            "--aggregate",
            &serve.aggregate,
        ])
        .stdout,
    );
    assert!(
        shows(&table, &["online-dossier-rate", "75.00% (3/4)"]),
        "{table}"
    );
    assert!(shows(&table, &["satisfaction-rate", "no data"]), "{table}");

    // Two dossiers of another procedure at the desk: the drill-down names it worst.
    let desk: Vec<String> = (0..2)
        .map(|i| {
            event_line(&format!("ls-desk{i}"), "lang-son", &at, "CHANNEL_IN_PERSON")
                .replace("lang-son.p01", "lang-son.p02")
        })
        .collect();
    let desk = write_file("desk", &desk);
    let sent = submit(&serve, &desk, &[]);
    assert!(sent.status.success(), "{}", text(&sent.stdout));
    let by_procedure = govpulse(&[
        "metrics",
        "--agency",
        "lang-son",
        "--by-procedure",
        "--top",
        "1",
        "--period",
        &day,
        "--aggregate",
        &serve.aggregate,
    ]);
    let table = text(&by_procedure.stdout);
    assert!(
        by_procedure.status.success(),
        "{}",
        text(&by_procedure.stderr)
    );
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert!(
        table.starts_with("online-dossier-rate per procedure of Lạng Sơn (lang-son)"),
        "{table}"
    );
    assert!(
        shows(rows[0], &["(lang-son.p01)", "75.00%", "3/4"]),
        "{table}"
    );
    assert!(
        shows(rows[1], &["(lang-son.p02)", "0.00%", "0/2"]),
        "{table}"
    );
    assert!(table.contains("worst first: lang-son.p02\n"), "{table}");
    // A metric that counts procedures has no breakdown, and says so.
    let refused = govpulse(&[
        "metrics",
        "--agency",
        "lang-son",
        "--by-procedure",
        "--metric",
        "online-provision-rate",
        "--aggregate",
        &serve.aggregate,
    ]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a refused request is exit status 2"
    );
    assert_says(
        &refused.stderr,
        "online-provision-rate has no value per procedure",
    );

    // The alerts in force under serve's built-in rules, as a table and as JSON.
    let alerts = govpulse(&["alerts", "--ranking", &serve.ranking]);
    assert!(alerts.status.success(), "{}", text(&alerts.stderr));
    assert_says(&alerts.stdout, " 4 rule(s), ");
    let alerts = govpulse(&["alerts", "--json", "--ranking", &serve.ranking]);
    let json: serde_json::Value = serde_json::from_slice(&alerts.stdout).expect("JSON");
    assert_eq!(json["rules"]["count"], 4, "{json}");
}

#[test]
fn publish_list_show_and_revise_a_publication() {
    let serve = serve();
    let (at, day, month) = last_month();
    // Lạng Sơn 3 of 4 online, Quảng Ninh 1 of 4: first and second.
    let channel = |online: bool| {
        if online {
            "CHANNEL_ONLINE"
        } else {
            "CHANNEL_IN_PERSON"
        }
    };
    let mut lines: Vec<String> = (0..4)
        .map(|i| event_line(&format!("ls{i}"), "lang-son", &at, channel(i < 3)))
        .collect();
    lines.extend((0..4).map(|i| event_line(&format!("qn{i}"), "quang-ninh", &at, channel(i < 1))));
    let sent = submit(&serve, &write_file("published", &lines), &[]);
    assert!(sent.status.success(), "{}", text(&sent.stdout));

    let id = "online-last-month";
    let title = format!("Online dossier rate {month}");
    let publish = |title: &str, extra: &[&str]| {
        let mut args = vec![
            "publish",
            "--id",
            id,
            "--title",
            title,
            "--period",
            &month,
            "--ranking",
            &serve.ranking,
        ];
        args.extend_from_slice(extra);
        govpulse(&args)
    };
    let first = publish(&title, &[]);
    let out = text(&first.stdout);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        out.starts_with(&format!("published {id}: {title:?}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("province by online-dossier-rate, {month} = "))
            && out.contains(", 2 ranked; published on ")
            && out.ends_with(" (Vietnam time) by anonymous\n"),
        "{out}"
    );
    let again = publish(&title, &[]);
    let out = text(&again.stdout);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        out.starts_with(&format!(
            "{id} existed already, with the same title and query: nothing new published\n"
        )),
        "an identical retry says it existed: {out}"
    );
    let other = publish("Another title", &[]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        text(&other.stderr).contains(&format!(
            "ranking: AlreadyExists: publication {id} was published before"
        )),
        "another title under the same id is refused, in the service's words: {}",
        text(&other.stderr)
    );
    let top = publish(&title, &["--top", "1"]);
    assert_eq!(top.status.code(), Some(2));
    assert_says(&top.stderr, "a publication keeps every row");

    // Quảng Ninh's other dossiers of that day arrive late, all online: 13 of 16, now first.
    let late: Vec<String> = (0..12)
        .map(|i| event_line(&format!("qn-late{i}"), "quang-ninh", &at, "CHANNEL_ONLINE"))
        .collect();
    let sent = submit(&serve, &write_file("late", &late), &[]);
    assert!(sent.status.success(), "{}", text(&sent.stdout));

    let list = govpulse(&["publications", "--ranking", &serve.ranking]);
    let out = text(&list.stdout);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "1 publication(s), newest first; times in Vietnam time",
        "{out}"
    );
    assert!(
        lines[2].contains(id)
            && lines[2].contains(&title)
            && lines[2].contains(&format!("{month} = {month}-01.."))
            && lines[2].contains("anonymous")
            && lines[2].ends_with(" 2"),
        "{out}"
    );
    let json = govpulse(&["publications", "--json", "--ranking", &serve.ranking]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value["total"], 1, "{value}");
    assert_eq!(value["publications"][0]["publishedBy"], "anonymous");

    // As published: Lạng Sơn first, Quảng Ninh second with 1 of 4.
    let shown = govpulse(&["publication", id, "--ranking", &serve.ranking]);
    let out = text(&shown.stdout);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("{title} ({id})"), "{out}");
    assert!(
        lines[2].starts_with("published on ") && lines[2].ends_with(" (Vietnam time) by anonymous"),
        "{out}"
    );
    let rows: Vec<&str> = lines.iter().skip(4).copied().collect();
    assert!(shows(rows[0], &["Lạng Sơn", "75.00%", "3/4"]), "{out}");
    assert!(
        shows(rows[1], &["Quảng Ninh", "25.00%", "1/4"]),
        "the row as published, not as counted since: {out}"
    );
    let json = govpulse(&["publication", id, "--json", "--ranking", &serve.ranking]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(
        value["publication"]["ranking"]["rows"][1]["rate"]["percent"], "25.00",
        "{value}"
    );

    // The revision log: both moved, Quảng Ninh for its late events of that day.
    let revisions = govpulse(&["revisions", id, "--ranking", &serve.ranking]);
    let out = text(&revisions.stdout);
    assert!(revisions.status.success(), "{}", text(&revisions.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!("revisions of {title} ({id}), published on ")),
        "{out}"
    );
    assert!(lines[1].starts_with("2 row(s) revised, "), "{out}");
    let quang_ninh = lines
        .iter()
        .find(|l| l.contains("Quảng Ninh (quang-ninh)"))
        .unwrap_or_else(|| panic!("Quảng Ninh is revised: {out}"));
    assert!(
        quang_ninh.contains("2 25.00% (1/4)")
            && quang_ninh.contains("1 81.25% (13/16)")
            && quang_ninh.contains("▲1"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  {day}  late data  12 event(s)  received 4→16, received_online 1→13"
        )),
        "{out}"
    );
    assert!(
        out.contains("Lạng Sơn: none of its own counters changed"),
        "{out}"
    );
    let json = govpulse(&["revisions", id, "--json", "--ranking", &serve.ranking]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let cause = &value["rows"][0]["causes"][0];
    assert_eq!(value["rows"][0]["agencyId"], "quang-ninh", "{value}");
    assert_eq!(
        (&cause["firstDay"], &cause["late"], &cause["events"]),
        (
            &serde_json::json!(day),
            &serde_json::json!(true),
            &serde_json::json!("12")
        ),
        "{value}"
    );
    let missing = govpulse(&["revisions", "no-such", "--ranking", &serve.ranking]);
    assert_eq!(missing.status.code(), Some(2));
    assert_says(&missing.stderr, "ranking: NotFound: no publication no-such");
}

#[test]
fn submit_retries_the_batch_until_ingest_is_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
        .to_string();
    let (at, day) = yesterday();
    let file = write_file(
        "retry",
        &[event_line("late-1", "lang-son", &at, "CHANNEL_ONLINE")],
    );
    let mut submit = Command::new(GOVPULSE)
        .args([
            "submit",
            file.to_str().expect("utf-8"),
            "--ingest",
            &format!("http://127.0.0.1:{port}"),
            // However slow the services are to start on a busy machine.
            "--retry-for",
            "600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("submit starts");
    let stdout = Lines::drain(submit.stdout.take().expect("stdout is piped"));
    let stderr = Lines::drain(submit.stderr.take().expect("stderr is piped"));
    let mut submit = Running(submit);
    // Nothing listens yet: once submit says it is retrying, the services come up on that
    // port.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut said = String::new();
    while !said.contains("retrying the batch") {
        said = stderr
            .next_before(deadline, "submit to warn that it is retrying the batch")
            .expect("submit runs until it has retried");
    }
    let serve = serve_on_ports([&port, "0", "0"]);
    assert_eq!(serve.ingest, format!("http://127.0.0.1:{port}"));
    // Its next attempt is at most 5 s away (the longest backoff).
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = stdout.to_end(deadline, "submit to finish once ingest is up");
    let err = stderr.to_end(deadline, "submit's standard error to end");
    let status = submit.0.wait().expect("submit ends");
    assert!(status.success(), "{status}: {err}");
    assert_eq!(out, "accepted 1, duplicate 0, rejected 0\n");
    let value = metrics_json(&serve, "lang-son", &day);
    assert_eq!(value["counters"]["received"], "1");
}

/// Proves that `serve` still answers (a small file submitted through its ingest is read back
/// from its aggregate), still runs, and stops cleanly on SIGTERM. `output` is one of its
/// outputs still open, which ends when it exits.
fn still_serves(mut serve: Serve, output: &Lines, case: &str) {
    let (at, day) = yesterday();
    let file = write_file(
        "closed-output",
        &[
            event_line("closed-0", "lang-son", &at, "CHANNEL_ONLINE"),
            event_line("closed-1", "lang-son", &at, "CHANNEL_IN_PERSON"),
            // A rejection is logged while serving (at debug, in ingest).
            event_line("closed-2", "atlantis", &at, "CHANNEL_ONLINE"),
        ],
    );
    // A dead serve fails the test now, not after a minute of retries.
    let submitted = submit(&serve, &file, &["--retry-for", "0"]);
    assert_submitted(
        &submitted,
        "accepted 2, duplicate 0, rejected 1",
        &format!("{case}: "),
    );
    let value = metrics_json(&serve, "lang-son", &day);
    assert_eq!(value["counters"]["received"], "2", "{case}: {value}");
    let exited = serve.process.0.try_wait().expect("serve's status");
    assert_eq!(exited, None, "{case}: serve is still running");
    // serve prints its last line (the dashboard's) before it handles SIGTERM: a clean stop
    // proves it got past every line. One that panicked on a line exits 101, or is killed by
    // the signal while its panic is still being reported (meanwhile it may even answer).
    let _ = Command::new("kill")
        .args(["-TERM", &serve.process.0.id().to_string()])
        .status();
    let rest = output.to_end(
        Instant::now() + Duration::from_secs(30),
        "serve to stop on SIGTERM",
    );
    let status = serve.process.0.wait().expect("serve's status");
    assert!(
        status.success(),
        "{case}: serve stops cleanly on SIGTERM ({status}); it wrote:\n{rest}"
    );
}

#[test]
fn serve_keeps_running_when_its_output_is_closed() {
    let deadline = Instant::now() + Duration::from_secs(30);
    let serve_command = || {
        let mut command = Command::new(GOVPULSE);
        command.args(["serve", "--ports", "0", "0", "0"]);
        command
    };

    // Standard output a pipe whose reading end is closed before serve starts: every line it
    // prints goes into a closed pipe. The addresses come from its log.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut child = serve_command()
        .env("GOVPULSE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("govpulse serve starts");
    let log = Lines::drain(child.stderr.take().expect("stderr is piped"));
    let mut bound = std::collections::HashMap::new();
    while bound.len() < 3 {
        let line = log
            .next_before(deadline, "serve to log its three bound addresses")
            .expect("serve runs until it has bound its addresses");
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let fields = &entry["fields"];
        if let (Some(service), Some(addr)) = (
            fields["message"]
                .as_str()
                .and_then(|m| m.strip_suffix(" bound")),
            fields["addr"].as_str(),
        ) {
            bound.insert(service.to_owned(), format!("http://{addr}"));
        }
    }
    let address = |service: &str| bound.get(service).cloned().expect("a bound service");
    let serve = Serve {
        process: Running(child),
        ingest: address("ingest"),
        aggregate: address("aggregate"),
        ranking: address("ranking"),
    };
    still_serves(serve, &log, "standard output closed from the start");

    // `govpulse serve | head -3`: the three addresses are read, then standard output is
    // closed. Whether serve's next line comes before or after is a race, mostly lost (it
    // follows at once); a CI run once saw it won, and serve died.
    let mut child = serve_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("govpulse serve starts");
    let log = Lines::drain(child.stderr.take().expect("stderr is piped"));
    let three = Lines::head(child.stdout.take().expect("stdout is piped"), 3);
    let serve = Serve::listening(Running(child), "http", |what| {
        three.next_before(deadline, what)
    });
    still_serves(serve, &log, "standard output closed after three lines");

    // Standard error closed from the start, while serve logs every rejected event.
    let mut child = serve_command()
        .env("RUST_LOG", "info,govpulse_ingest=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("govpulse serve starts");
    drop(child.stderr.take());
    let stdout = Lines::drain(child.stdout.take().expect("stdout is piped"));
    let serve = Serve::listening(Running(child), "http", |what| {
        stdout.next_before(deadline, what)
    });
    still_serves(serve, &stdout, "standard error closed");
}

#[test]
fn malformed_json_is_refused_before_anything_is_sent() {
    let serve = serve();
    let (at, day) = yesterday();
    let file = write_file(
        "malformed",
        &[
            event_line("m0", "lang-son", &at, "CHANNEL_ONLINE"),
            "{\"eventId\": \"m1\",".to_owned(),
        ],
    );
    let out = submit(&serve, &file, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("line 2: not a DossierEvent in JSON"), "{err}");
    assert!(err.contains("nothing sent"), "{err}");
    let value = metrics_json(&serve, "lang-son", &day);
    assert!(
        value["counters"]["received"].is_null(),
        "nothing counted (zero is omitted in JSON): {value}"
    );
}

#[test]
fn bad_arguments_are_named() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["ranking", "--period", "2026-13"],
            "\"2026-13\" is not a calendar date",
        ),
        (
            &["ranking", "--metric", "online-rate"],
            "\"online-rate\" is not a metric; the metrics are online-dossier-rate",
        ),
        (
            &["ranking", "--block", "district"],
            "\"district\" is not a block",
        ),
        (
            &["watch", "--period", "last week"],
            "\"last week\" is not a period",
        ),
    ];
    for (args, expected) in cases {
        let out = govpulse(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let serve = serve();
    let out = govpulse(&[
        "metrics",
        "--agency",
        "atlantis",
        "--aggregate",
        &serve.aggregate,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_says(&out.stderr, "unknown agency \"atlantis\"");
}

/// The rows of a ranking table in a frame: they show a percentage and a count `n/d`.
fn ranking_rows(frame: &str) -> usize {
    frame
        .lines()
        .filter(|l| l.contains('%') && l.contains('/') && !l.starts_with("events:"))
        .count()
}

/// The frames `demo` or `watch` print (stdout is not a terminal here, so frames follow each
/// other rather than redraw the screen); each starts with a line beginning with `title`.
struct Frames {
    lines: Lines,
    title: &'static str,
    /// The frame being read; it is whole when the next title comes.
    partial: String,
}

impl Frames {
    fn new(lines: Lines, title: &'static str) -> Frames {
        Frames {
            lines,
            title,
            partial: String::new(),
        }
    }

    /// The next whole frame for which `until` holds; panics, naming `what`, when none came
    /// before `deadline`.
    fn next_before(
        &mut self,
        deadline: Instant,
        what: &str,
        until: impl Fn(&str) -> bool,
    ) -> String {
        loop {
            let line = self.lines.next_before(deadline, what).unwrap_or_else(|| {
                panic!("the output ended before {what}; last: {}", self.partial)
            });
            if line.starts_with(self.title) && !self.partial.is_empty() {
                let frame = std::mem::take(&mut self.partial);
                self.partial = format!("{line}\n");
                if until(&frame) {
                    return frame;
                }
                continue;
            }
            self.partial.push_str(&line);
            self.partial.push('\n');
        }
    }
}

#[test]
fn demo_shows_a_live_ranking_that_changes() {
    // A month of history is enough for a live top 10 and keeps this debug build's load low.
    let (mut demo, stdout, log) = start_demo(2_000, 30, 20_000);
    let mut frames = Frames::new(stdout, "govpulse demo ·");
    // Frames come every 5 s when something changed. The first frames may come while the
    // backfill is still arriving; wait for full top-10 tables.
    let deadline = Instant::now() + Duration::from_secs(40);
    let live = |frame: &str| frame.contains("\nlive · updated ") && ranking_rows(frame) == 10;
    let live_frames = [
        frames.next_before(deadline, "a first live top-10 frame", live),
        frames.next_before(deadline, "a second live top-10 frame", live),
    ];
    let _ = Command::new("kill")
        .args(["-INT", &demo.0.id().to_string()])
        .status();
    frames.lines.to_end(
        Instant::now() + Duration::from_secs(30),
        "the demo to stop after Ctrl-C",
    );
    let status = demo.0.wait().expect("demo exits");
    let log = log.to_end(
        Instant::now() + Duration::from_secs(10),
        "the demo's log to end",
    );
    // Stopping is not a fault: the services stop callers first, and a live ranking ends
    // with its replica instead of asking an aggregate that is gone.
    let faults: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("recomputation failed"))
        .collect();
    assert!(
        faults.is_empty(),
        "the demo ran and stopped without faults: {faults:#?}"
    );
    for frame in &live_frames {
        assert!(
            frame.contains("ingest http://127.0.0.1:"),
            "addresses printed: {frame}"
        );
        assert!(
            frame.contains("Dashboard: http://127.0.0.1:"),
            "the dashboard's address printed: {frame}"
        );
    }
    // The ranking as shown: its status line (update time, ranked count) and its rows. A new
    // state is published only when one of them changes.
    let ranking = |frame: &str| frame.find("\nlive · ").map(|at| frame[at..].to_owned());
    for frame in &live_frames {
        let status = frame
            .lines()
            .find(|l| l.starts_with("live · "))
            .unwrap_or("");
        let clock = status
            .split(" · ")
            .nth(1)
            .and_then(|part| part.strip_prefix("updated "))
            .and_then(|part| part.strip_suffix(" (Vietnam time)"))
            .unwrap_or("");
        assert!(
            clock.len() == 8
                && clock
                    .split(':')
                    .all(|n| n.len() == 2 && n.parse::<u8>().is_ok()),
            "the update shown as a time of day, not a revision number: {status}"
        );
    }
    assert_ne!(
        ranking(&live_frames[0]),
        ranking(&live_frames[1]),
        "the ranking changed between frames"
    );
    assert!(status.success(), "Ctrl-C stops the demo cleanly: {status}");
}

/// Seconds from the demo's start within which its dashboard must show every figure the
/// browser checks: the minute the README promises.
const DEMO_BUDGET_SECONDS: u32 = 60;

#[test]
fn the_demo_dashboard_shows_last_year_movement_targets_and_an_index() {
    let browser = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run deploy/bin/setup --test"
    );
    // 400 days of history with fewer dossiers than the default: this debug build counts them
    // in seconds, and every figure the browser checks needs only some of them.
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let (_demo, stdout, _log) = start_demo(200, 400, 60_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let dashboard = loop {
        let line = stdout
            .next_before(deadline, "the dashboard's address")
            .expect("the demo prints its dashboard's address");
        if let Some(url) = line.strip_prefix("Dashboard: ") {
            break url.split_whitespace().next().unwrap_or(url).to_owned();
        }
    };
    // The demo's frames go on being drained by `stdout`'s thread.
    let screenshots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo");
    // Every check within a minute of the demo's start, as the demo promises; the browser
    // says when each passed.
    let node = Command::new("node")
        .arg(browser.join("demo.mjs"))
        .arg(&dashboard)
        .arg(&screenshots)
        .arg(started_ms.to_string())
        .arg(DEMO_BUDGET_SECONDS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (deploy/bin/setup --test installs it)");
    let node_pid = node.id();
    let (tx, rx) = mpsc::channel();
    // Waited for on a thread of its own, which also drains both pipes.
    std::thread::spawn(move || {
        let _ = tx.send(node.wait_with_output());
    });
    let output = match rx.recv_timeout(Duration::from_secs(240)) {
        Ok(output) => output.expect("node's output"),
        Err(_) => {
            let _ = Command::new("kill").arg(node_pid.to_string()).status();
            panic!("the browser test did not finish within 4 minutes");
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{said}");
    assert!(output.status.success(), "the browser test failed: {said}");
    for check in [
        "ok: updated ",
        "ok: same period last year: ",
        "ok: targets: ",
        "ok: movement arrows over ",
        "ok: composite index service-index-766 over ",
        "demo: all checks passed",
    ] {
        assert!(said.contains(check), "{check:?} missing: {said}");
    }
}

/// `govpulse watch` with `args`, its frames read as they come.
fn start_watch(args: &[&str]) -> (Running, Frames) {
    let mut all = vec!["watch"];
    all.extend(args);
    let (process, stdout) = start(&all);
    (process, Frames::new(stdout, "provinces by "))
}

/// The next live frame of `watch` that shows `percent`, within 30 s; `what` names it when
/// none does. The wait blocks this worker thread only: the services this test runs go on
/// answering on the others.
fn next_live_frame(frames: &mut Frames, what: &str, percent: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    tokio::task::block_in_place(|| {
        frames.next_before(deadline, what, |f| {
            shows(f, &["\nlive · updated ", percent])
        })
    })
}

async fn start_ranking(
    listen: std::net::SocketAddr,
    aggregate_url: &str,
) -> (
    std::net::SocketAddr,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let config = govpulse_ranking::Config {
        heartbeat_ms: 500,
        min_volume: 0,
        ..govpulse_ranking::Config::new(listen, aggregate_url.to_owned()).development()
    };
    let server = govpulse_ranking::Server::build(config)
        .await
        .expect("ranking starts");
    let addr = server.host().local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = server.run_until(stop.clone().cancelled_owned());
    let task = tokio::spawn(async move { serving.await.expect("ranking serves") });
    (addr, stop, task)
}

async fn submit_lines(ingest: &str, name: &str, lines: &[String]) {
    let file = write_file(name, lines);
    let ingest = ingest.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        govpulse(&[
            "submit",
            file.to_str().expect("utf-8 path"),
            "--ingest",
            &ingest,
        ])
    })
    .await
    .expect("submit runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_survives_a_restart_of_the_ranking_service() {
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let stop = tokio_util::sync::CancellationToken::new();
    let aggregate =
        govpulse_aggregate::Server::build(govpulse_aggregate::Config::new(any).development())
            .await
            .expect("aggregate starts");
    let aggregate_url = format!("http://{}", aggregate.host().local_addr());
    tokio::spawn(aggregate.run_until(stop.clone().cancelled_owned()));
    let ingest = govpulse_ingest::Server::build(
        govpulse_ingest::Config::new(any, aggregate_url.clone()).development(),
    )
    .await
    .expect("ingest starts");
    let ingest_url = format!("http://{}", ingest.host().local_addr());
    tokio::spawn(ingest.run_until(stop.clone().cancelled_owned()));
    let (ranking_addr, ranking_stop, ranking_task) = start_ranking(any, &aggregate_url).await;

    let (at, day) = yesterday();
    let mut lines: Vec<String> = (0..4)
        .map(|i| {
            let channel = if i < 3 {
                "CHANNEL_ONLINE"
            } else {
                "CHANNEL_IN_PERSON"
            };
            event_line(&format!("ls{i}"), "lang-son", &at, channel)
        })
        .collect();
    lines.push(event_line("qn0", "quang-ninh", &at, "CHANNEL_ONLINE"));
    lines.push(event_line("qn1", "quang-ninh", &at, "CHANNEL_POSTAL"));
    submit_lines(&ingest_url, "restart-1", &lines).await;

    let ranking_url = format!("http://{ranking_addr}");
    let (watch, mut frames) =
        start_watch(&["--period", &day, "--top", "3", "--ranking", &ranking_url]);
    // Frames come every 5 s when something arrived.
    let before = next_live_frame(
        &mut frames,
        "a live frame with Quảng Ninh at 50.00%",
        "50.00%",
    );
    assert!(before.contains("75.00%"), "{before}");

    // The ranking service restarts on the same address; meanwhile Quảng Ninh gets 2 of 3.
    ranking_stop.cancel();
    ranking_task.await.expect("ranking stops");
    submit_lines(
        &ingest_url,
        "restart-2",
        &[event_line("qn2", "quang-ninh", &at, "CHANNEL_ONLINE")],
    )
    .await;
    let (_, ranking_stop, ranking_task) = start_ranking(ranking_addr, &aggregate_url).await;

    // watch reconnects and asks to resume; the new replica has no history, so it is told to
    // start over and redraws from the fresh snapshot.
    let after = next_live_frame(
        &mut frames,
        "a live frame with Quảng Ninh at 66.67% after the restart",
        "66.67%",
    );
    assert!(
        after.contains("redrawn from a fresh snapshot 1 time(s)"),
        "{after}"
    );
    assert!(after.contains("75.00%"), "{after}");
    assert!(!after.contains("50.00%"), "the old row is gone: {after}");

    drop(watch);
    ranking_stop.cancel();
    let _ = ranking_task.await;
    stop.cancel();
}

/// `govpulse` with `args`, off the test's runtime.
async fn govpulse_blocking(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        govpulse(&args)
    })
    .await
    .expect("govpulse runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_read_commands_use_tls_and_a_reader_token_when_the_deployment_requires_them() {
    let dir = scratch("cli-secure");
    let [ca, cert, key] = write_server_pki(&dir, &["localhost"]);
    let tokens = dir.join("tokens.toml");
    let credential = |token: &str, roles: &str| {
        format!(
            "[[credential]]\nsha256 = \"{}\"\nagency = \"lang-son\"\nroles = [{roles}]\n",
            govpulse_edge::auth::token_hash(token)
        )
    };
    std::fs::write(
        &tokens,
        credential("reporter-token", "\"reporter\"") + &credential("reader-token", "\"reader\""),
    )
    .expect("tokens");
    let tls = govpulse_runtime::tls::TlsArgs {
        tls_cert: Some(cert),
        tls_key: Some(key),
        tls_client_ca: None,
        plaintext: false,
    };
    let upstream = govpulse_runtime::tls::UpstreamTlsArgs {
        upstream_ca: Some(ca.clone()),
        ..Default::default()
    };
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let stop = tokio_util::sync::CancellationToken::new();
    let host = govpulse_edge::host::HostArgs {
        tls,
        ..Default::default()
    };
    let aggregate = govpulse_aggregate::Server::build(govpulse_aggregate::Config {
        host: host.clone(),
        ..govpulse_aggregate::Config::new(any)
    })
    .await
    .expect("aggregate starts");
    // The certificate names localhost; the services listen on loopback.
    let url = |addr: std::net::SocketAddr| format!("https://localhost:{}", addr.port());
    let aggregate_url = url(aggregate.host().local_addr());
    tokio::spawn(aggregate.run_until(stop.clone().cancelled_owned()));
    let ingest = govpulse_ingest::Server::build(govpulse_ingest::Config {
        host: host.clone(),
        aggregate: AggregateArgs {
            aggregate_url: aggregate_url.clone(),
            upstream: upstream.clone(),
        },
        token_file: TokenFileArgs::at(tokens.clone()),
        ..govpulse_ingest::Config::new(any, String::new())
    })
    .await
    .expect("ingest starts");
    let ingest_url = url(ingest.host().local_addr());
    tokio::spawn(ingest.run_until(stop.clone().cancelled_owned()));
    let ranking = govpulse_ranking::Server::build(govpulse_ranking::Config {
        host,
        aggregate: AggregateArgs {
            aggregate_url: aggregate_url.clone(),
            upstream,
        },
        token_file: TokenFileArgs::at(tokens),
        public_read: false,
        ..govpulse_ranking::Config::new(any, String::new())
    })
    .await
    .expect("ranking starts");
    let ranking_url = url(ranking.host().local_addr());
    tokio::spawn(ranking.run_until(stop.clone().cancelled_owned()));

    let ca = ca.to_str().expect("utf-8 path").to_owned();
    let args = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let (at, day) = yesterday();
    let file = write_file(
        "secure",
        &[
            event_line("s0", "lang-son", &at, "CHANNEL_ONLINE"),
            event_line("s1", "lang-son", &at, "CHANNEL_IN_PERSON"),
        ],
    );
    let file = file.to_str().expect("utf-8 path");
    let submitted = govpulse_blocking(args(&[
        "submit",
        file,
        "--ingest",
        &ingest_url,
        "--ca",
        &ca,
        "--token",
        "reporter-token",
    ]))
    .await;
    assert_submitted(&submitted, "accepted 2, duplicate 0, rejected 0", "");

    let ranking = |extra: &[&str]| {
        let mut list = args(&[
            "ranking",
            "--period",
            &day,
            "--json",
            "--ranking",
            &ranking_url,
        ]);
        list.extend(args(extra));
        govpulse_blocking(list)
    };
    let read = ranking(&["--ca", &ca, "--token", "reader-token"]).await;
    assert!(read.status.success(), "{}", text(&read.stderr));
    let value: serde_json::Value = serde_json::from_slice(&read.stdout).expect("json");
    assert_eq!(value["rows"][0]["agencyId"], "lang-son", "{value}");

    for (extra, expected) in [
        (&["--ca", &ca][..], "ranking: Unauthenticated"),
        (
            &["--ca", &ca, "--token", "reporter-token"][..],
            "ranking: PermissionDenied",
        ),
        (
            &["--token", "reader-token"][..],
            "is https://: give --ca, the CA its certificate chains to",
        ),
    ] {
        let refused = ranking(extra).await;
        assert_eq!(refused.status.code(), Some(2), "{extra:?}");
        assert!(
            text(&refused.stderr).contains(expected),
            "{extra:?}: {}",
            text(&refused.stderr)
        );
    }
    let plaintext = govpulse_blocking(args(&[
        "ranking",
        "--ranking",
        &ranking_url.replace("https://", "http://"),
        "--ca",
        &ca,
    ]))
    .await;
    assert_says(
        &plaintext.stderr,
        "is not https://, but --ca or --client-cert is set",
    );

    // Aggregate's reads are internal and take no token; TLS is what they need.
    let metrics = govpulse_blocking(args(&[
        "metrics",
        "--agency",
        "lang-son",
        "--period",
        &day,
        "--json",
        "--aggregate",
        &aggregate_url,
        "--ca",
        &ca,
    ]))
    .await;
    assert!(metrics.status.success(), "{}", text(&metrics.stderr));
    let value: serde_json::Value = serde_json::from_slice(&metrics.stdout).expect("json");
    assert_eq!(value["counters"]["received"], "2", "{value}");

    // watch sends the token on its stream, and on every reconnection.
    let (watch, mut frames) = start_watch(&[
        "--period",
        &day,
        "--ranking",
        &ranking_url,
        "--ca",
        &ca,
        "--token",
        "reader-token",
    ]);
    let frame = next_live_frame(
        &mut frames,
        "a live frame with Lạng Sơn at 50.00%",
        "50.00%",
    );
    assert!(frame.contains("Lạng Sơn"), "{frame}");
    drop(watch);
    stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}
