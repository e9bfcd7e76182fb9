//! docs/INTEGRATION.md cannot drift: every ```` ```sh test ```` block of the guide runs here,
//! in order, against a deployment (ingest requiring a bearer token, ranking, aggregate on a
//! real Redis), with the addresses and the token in the environment variables the examples
//! use (`$GOVPULSE_INGEST`, `$GOVPULSE_RANKING`, `$TOKEN`, `$GOVPULSE_PROTO`), and its output
//! must be what the ```` ```text output ```` block after it shows (`...` stands for any text
//! within a line, a line of only `...` for any lines). With `GOVPULSE_GUIDE_PRINT=1` the
//! outputs are printed instead of checked, to write the guide.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use govpulse_e2e::{Deployment, Spawned, credential_for, scratch};
use govpulse_edge::auth::{TokenFileArgs, new_token};

const GUIDE: &str = include_str!("../../docs/INTEGRATION.md");
const PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");

/// One example and the output the guide shows for it.
#[derive(Debug)]
struct Example {
    line: usize,
    script: String,
    expected: Option<Vec<String>>,
}

fn examples(guide: &str) -> Vec<Example> {
    let lines: Vec<&str> = guide.lines().collect();
    let mut examples = Vec::new();
    let mut i = 0;
    let block = |start: usize| -> (Vec<String>, usize) {
        let mut body = Vec::new();
        let mut j = start;
        while j < lines.len() && lines[j].trim_end() != "```" {
            body.push(lines[j].to_owned());
            j += 1;
        }
        (body, j + 1)
    };
    while i < lines.len() {
        if lines[i].trim_end() == "```sh test" {
            let (script, next) = block(i + 1);
            let mut j = next;
            while j < lines.len() && lines[j].trim().is_empty() {
                j += 1;
            }
            let (expected, after) = if j < lines.len() && lines[j].trim_end() == "```text output" {
                let (expected, after) = block(j + 1);
                (Some(expected), after)
            } else {
                (None, next)
            };
            examples.push(Example {
                line: i + 1,
                script: script.join("\n"),
                expected,
            });
            i = after;
        } else {
            i += 1;
        }
    }
    examples
}

/// Whether `line` matches `pattern`, where `...` stands for any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let Some(mut rest) = line.strip_prefix(parts[0]) else {
        return false;
    };
    for (k, part) in parts.iter().enumerate().skip(1) {
        if k == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Whether the output's lines match the expected ones; a line of only `...` matches any
/// number of lines.
fn output_matches(expected: &[String], output: &[&str]) -> bool {
    match expected.split_first() {
        None => output.is_empty(),
        Some((first, rest)) if first.trim() == "..." => {
            (0..=output.len()).any(|skip| output_matches(rest, &output[skip..]))
        }
        Some((first, rest)) => output.split_first().is_some_and(|(line, others)| {
            line_matches(first, line) && output_matches(rest, others)
        }),
    }
}

#[test]
fn the_guide_matchers_read_wildcards() {
    assert!(line_matches("a...c", "abbbc"));
    assert!(!line_matches("a...c", "abbbd"));
    assert!(line_matches("{\"x\":...,\"y\":...}", "{\"x\":1,\"y\":2}"));
    let expected = vec!["one".to_owned(), "...".to_owned(), "four".to_owned()];
    assert!(output_matches(&expected, &["one", "two", "three", "four"]));
    assert!(output_matches(&expected, &["one", "four"]));
    assert!(!output_matches(&expected, &["one", "three"]));
}

#[tokio::test]
async fn every_example_of_the_integration_guide_runs_and_prints_what_the_guide_shows() {
    let examples = examples(GUIDE);
    assert!(examples.len() >= 5, "the guide has its examples");
    for tool in ["curl", "grpcurl", "python3"] {
        assert!(
            which(tool),
            "{tool} is missing: run `bash deploy/bin/setup --test`"
        );
    }
    let dir = scratch("guide");
    // The guide shows a target beside a rate: one for this year, whatever the year (the
    // shipped targets name years).
    let targets = dir.join("targets.toml");
    let year = time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+7))
        .year();
    std::fs::write(
        &targets,
        format!("[[targets]]\nmetric = \"online-dossier-rate\"\nyear = {year}\nblock = \"province\"\npercent = 50\n"),
    )
    .expect("write targets");
    let options = govpulse_e2e::Options {
        targets: Some(targets),
        ..govpulse_e2e::Options::default()
    };
    let deployment = Deployment::start_alone_with("guide", options).await;
    let (token, hash) = new_token();
    let tokens = dir.join("tokens.toml");
    std::fs::write(&tokens, credential_for(&hash, "ha-noi", "\"reporter\"")).expect("tokens");
    // Ingest as agencies meet it: a token required (plaintext, loopback only).
    let config = govpulse_ingest::Config {
        token_file: TokenFileArgs::at(tokens),
        allow_anonymous: false,
        ..govpulse_ingest::Config::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            format!("http://{}", deployment.aggregate_addr()),
        )
        .development()
    };
    let server = Spawned::ingest(config).await;
    let ingest_addr = server.addr();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let print = std::env::var_os("GOVPULSE_GUIDE_PRINT").is_some();

    let mut failures = Vec::new();
    for example in &examples {
        let mut command = tokio::process::Command::new("bash");
        command
            .args(["-euo", "pipefail", "-c", &example.script])
            .current_dir(&work)
            .env("GOVPULSE_INGEST", ingest_addr.to_string())
            .env("GOVPULSE_RANKING", deployment.ranking_addr().to_string())
            .env("TOKEN", &token)
            .env("GOVPULSE_PROTO", PROTO)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .unwrap_or_else(|_| panic!("the example at line {} took over 120 s", example.line))
            .expect("bash runs");
        let stdout = String::from_utf8_lossy(&output.stdout).replace('\u{feff}', "");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if print {
            eprintln!(
                "== line {} (exit {:?})\n{stdout}\n-- stderr\n{stderr}",
                example.line,
                output.status.code()
            );
            continue;
        }
        if !output.status.success() {
            failures.push(format!(
                "line {}: exit {:?}\n{stdout}\n{stderr}",
                example.line,
                output.status.code()
            ));
            continue;
        }
        if let Some(expected) = &example.expected {
            let lines: Vec<&str> = stdout.lines().collect();
            if !output_matches(expected, &lines) {
                failures.push(format!(
                    "line {}: the output is not what the guide shows\n-- guide\n{}\n-- output\n{stdout}",
                    example.line,
                    expected.join("\n")
                ));
            }
        }
    }
    server.stop().await;
    deployment.stop().await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn which(tool: &str) -> bool {
    std::process::Command::new("bash")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
