//! `govpulse`: the command people type. `demo` and `serve` run the services in one process;
//! `submit`, `assess`, `ranking`, `metrics`, `watch` and the publications' commands
//! (`publish`, `publications`, `publication`, `revisions`) are clients of a running
//! deployment.

/// mimalloc: the load generator allocates on every event's path (and `serve` runs
/// aggregate's), where it is several times cheaper than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `outln!` that ignores a standard output that went away: `govpulse serve | head -3`
/// leaves the server running, and a client command piped into `head` ends without a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `out!` that ignores a standard output that went away (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `errln!` that ignores a standard error that went away (see `outln!`).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod assess;
mod connect;
mod json_lines;
mod live;
mod ministry;
mod publications;
mod render;
mod stack;
mod submit;

use std::{
    io::BufRead,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use govpulse_core::{Block, Metric};
use govpulse_proto::{
    aggregate::{
        GetBlockMetricsRequest, GetMetricsRequest, GetProcedureMetricsRequest,
        aggregate_service_client::AggregateServiceClient, get_block_metrics_request::Scope,
    },
    catalog::Block as PbBlock,
    ingest::{ReportAssessedScoresRequest, ingest_service_client::IngestServiceClient},
    ranking::{
        GetAlertsRequest, GetRankingRequest, RankingQuery, ranking_query::Selection,
        ranking_service_client::RankingServiceClient,
    },
};
use tonic::transport::Channel;

use govpulse::{loadgen, procedures};

use crate::{
    connect::{ConnectArgs, Remote},
    json_lines::BadLine,
    stack::{Stack, StackArgs},
};

#[derive(Debug, Parser)]
#[command(
    name = "govpulse",
    version,
    about = "Monitor how agencies deliver online public services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// The metric: online-dossier-rate, full-online-dossier-rate, services-with-online-dossiers,
    /// full-online-provision, online-provision-rate, on-time-rate, digitized-reception-rate, electronic-result-rate,
    /// satisfaction-rate, online-payment-rate.
    #[arg(long, default_value = "online-dossier-rate")]
    metric: String,
    /// Rank by this composite index instead of a metric: service-index-766 or
    /// system-quality-2024 (or another profile the ranking service loaded).
    #[arg(long)]
    index: Option<String>,
    /// With --index: rank by this criterion of the index only (`--criterion function`: its
    /// points out of its maximum); repeat it to rank by a group of criteria.
    #[arg(long, requires = "index")]
    criterion: Vec<String>,
    /// `province` or `ministry`.
    #[arg(long, default_value = "province")]
    block: String,
    /// Rank the direct children of this agency (a province's departments and communes)
    /// instead of a block.
    #[arg(long)]
    parent: Option<String>,
    /// `2026-08-15`, `2026-W49` (ISO week), `2026-08`, `2026-Q3`, `2026`,
    /// `2026-01-01..2026-08-31` or `ytd`.
    #[arg(long, default_value = "ytd")]
    period: String,
    /// Only the first N ranked rows.
    #[arg(long, conflicts_with = "bottom")]
    top: Option<u32>,
    /// Only the last N ranked rows.
    #[arg(long)]
    bottom: Option<u32>,
}

impl QueryArgs {
    /// Checks what can be checked here, so that a typo is named before any call.
    fn query(&self) -> anyhow::Result<RankingQuery> {
        // The service knows the composite indexes it loaded; a metric is checked here.
        let metric = match &self.index {
            Some(_) => String::new(),
            None => self.metric.parse::<Metric>()?.name().to_owned(),
        };
        // A parent replaces the block.
        let block = match &self.parent {
            Some(_) => PbBlock::Unspecified,
            None => block_arg(&self.block)?,
        };
        govpulse_core::Period::parse(
            &self.period,
            govpulse_core::period::vietnam_day(time::OffsetDateTime::now_utc()),
        )?;
        let selection = match (self.top, self.bottom) {
            (Some(n), _) => Some(Selection::Top(n)),
            (_, Some(n)) => Some(Selection::Bottom(n)),
            _ => None,
        };
        Ok(RankingQuery {
            metric,
            block: block.into(),
            period: self.period.clone(),
            selection,
            index: self.index.clone().unwrap_or_default(),
            parent_id: self.parent.clone().unwrap_or_default(),
            criteria: self.criterion.clone(),
        })
    }

    /// What the ranking is by, for its title: the index (and its criteria) or the metric.
    fn measure(&self) -> String {
        match &self.index {
            Some(index) if !self.criterion.is_empty() => {
                format!("{index} ({})", self.criterion.join(", "))
            }
            Some(index) => index.clone(),
            None => self.metric.clone(),
        }
    }
}

/// A service the command calls: a struct of its URL flag (`--$flag`, from `$env`) and the
/// connection flags, with `remote()` to reach it. One macro for the three services, whose
/// flags differ only in name, help, variable and default. (The flag's help is a literal:
/// clap reads no `concat!` in a doc attribute.)
macro_rules! service_args {
    ($(
        #[doc = $doc:literal]
        $name:ident { #[doc = $help:literal] $flag:ident: $env:literal, $default:literal }
    )*) => {$(
        #[doc = $doc]
        #[derive(Debug, clap::Args)]
        struct $name {
            #[doc = $help]
            #[arg(long, env = $env, default_value = $default)]
            $flag: String,
            #[command(flatten)]
            connect: ConnectArgs,
        }

        impl $name {
            #[doc = concat!("The ", stringify!($flag), " service as the command calls it.")]
            fn remote(&self) -> anyhow::Result<Remote> {
                self.connect.remote(&self.$flag)
            }
        }
    )*};
}

service_args! {
    /// The ranking service, and how to reach it.
    RankingService {
        /// The ranking service.
        ranking: "GOVPULSE_RANKING_URL", "http://127.0.0.1:50053"
    }
    /// The ingest service, and how to reach it.
    IngestService {
        /// The ingest service.
        ingest: "GOVPULSE_INGEST_URL", "http://127.0.0.1:50051"
    }
    /// The aggregate service, and how to reach it.
    AggregateService {
        /// The aggregate service.
        aggregate: "GOVPULSE_AGGREGATE_URL", "http://127.0.0.1:50052"
    }
}

/// A ranking query, how to print its answer and where to ask it: `ranking`'s arguments, and
/// `publish`'s after the publication's id and title.
#[derive(Debug, clap::Args)]
struct RankingArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// Print the response as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    service: RankingService,
}

/// One publication, and where to read it.
#[derive(Debug, clap::Args)]
struct PublicationArgs {
    /// The publication's id.
    id: String,
    /// Print the response as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    service: RankingService,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs everything in one process with a simulated country reporting, and shows a live
    /// top 10 of provinces by online dossier rate until Ctrl-C.
    Demo {
        #[command(flatten)]
        stack: StackArgs,
        /// Dossiers received per second across the country in office hours.
        #[arg(long, default_value_t = 400.0)]
        rate: f64,
        /// Dossiers of the history reported at start, as re-syncing systems would.
        #[arg(long, default_value_t = 300_000)]
        backfill: u32,
        /// Days of history, ending today (default: from 1 January of last year, and at
        /// least 13 months, so that every period of this year has its same period last year
        /// and its previous period); the horizon is widened to accept them.
        #[arg(long)]
        history_days: Option<u16>,
        /// The metric the live table ranks by.
        #[arg(long, default_value = "online-dossier-rate")]
        metric: String,
    },
    /// Runs the three services in one process, without simulated traffic, until Ctrl-C.
    Serve {
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Sends events from a JSON-lines file (`-` for standard input) and reports the outcomes;
    /// exits 1 when an event was rejected or conflicts with one counted under its id.
    Submit {
        /// The file: one DossierEvent per line, in the protobuf JSON mapping.
        file: PathBuf,
        /// Events per batch.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// Seconds to keep retrying a batch while ingest is unavailable (unreachable,
        /// overloaded, restarting) before giving up; retrying never counts an event twice.
        #[arg(long, default_value_t = 60.0)]
        retry_for: f64,
        #[command(flatten)]
        service: IngestService,
    },
    /// Reports assessed scores of a composite index: from flags (one agency, profile and
    /// period, any number of --score criterion=points), or from a file of JSON lines, one
    /// AssessedScore each (`-` for standard input). All or nothing; safe to send again.
    Assess {
        /// The file of JSON lines, instead of the flags.
        #[arg(conflicts_with_all = ["agency", "profile", "period", "score"], required_unless_present = "agency")]
        file: Option<PathBuf>,
        /// The agency assessed, for example `ha-giang`.
        #[arg(long, requires_all = ["profile", "period", "score"])]
        agency: Option<String>,
        /// The composite index profile, for example `system-quality-2024`.
        #[arg(long)]
        profile: Option<String>,
        /// The calendar period assessed: `2024`, `2024-Q3`, `2024-08` or `2024-08-15`.
        #[arg(long)]
        period: Option<String>,
        /// One criterion's points, as `criterion=points` (`function=38.75`); repeat it.
        #[arg(long)]
        score: Vec<String>,
        #[command(flatten)]
        service: IngestService,
    },
    /// Prints a ranking.
    Ranking(RankingArgs),
    /// Prints one agency's metrics for a period (beside last year, the previous period and
    /// its target), or one metric for every agency of a block, every child of an agency, or
    /// the nation, with pooled and mean figures.
    Metrics {
        /// One agency, for example `phu-tho`.
        #[arg(long, required_unless_present_any = ["block", "parent", "nation"], conflicts_with_all = ["block", "parent", "nation"])]
        agency: Option<String>,
        /// Every ministry or every province: `ministry` or `province`.
        #[arg(long, conflicts_with_all = ["parent", "nation"])]
        block: Option<String>,
        /// Every direct child of this agency.
        #[arg(long, conflicts_with = "nation")]
        parent: Option<String>,
        /// Every ministry and province together.
        #[arg(long)]
        nation: bool,
        /// The metric(s): with --agency, any number (default all); otherwise one (default
        /// online-dossier-rate).
        #[arg(long)]
        metric: Vec<String>,
        /// The period, as for `ranking`.
        #[arg(long, default_value = "ytd")]
        period: String,
        /// Also compare with this earlier period, written as --period (`--period 2026
        /// --compare-to 2024`): beside the same period last year, as a ratio and in points.
        #[arg(long)]
        compare_to: Option<String>,
        /// With --agency: one metric (default online-dossier-rate) per procedure of the
        /// agency and its units, ranked, the worst listed apart: which procedures drag the
        /// rate down.
        #[arg(long, requires = "agency", conflicts_with = "compare_to")]
        by_procedure: bool,
        /// With --by-procedure: how many of the worst procedures to name (1 to 100).
        #[arg(long, requires = "by_procedure", default_value_t = 5)]
        top: u32,
        /// Print the response as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        service: AggregateService,
    },
    /// Prints the alerts in force: ranking's alert rules (deploy/config/alerts.toml) holding
    /// for an agency, firing or pending, with the figures behind each, and whether the rules
    /// file in force is the latest.
    Alerts {
        /// Print the response as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        service: RankingService,
    },
    /// Publishes a ranking: computes it now and keeps every row, frozen, with when and by whom
    /// (the credential's agency; `anonymous` on a development deployment). Elsewhere it needs a
    /// token with the `publisher` role. Publishing again with the same id, title and query
    /// finds the publication; another title or query under the same id is refused.
    Publish {
        /// The publication's id, chosen so that a retry cannot publish twice: 1 to 64
        /// characters from a-z, 0-9 and `-` (`weekly-2026-w49`).
        #[arg(long)]
        id: String,
        /// Its title, as shown with it (1 to 200 characters).
        #[arg(long)]
        title: String,
        // What to publish, as for `ranking`: every row (--top and --bottom are refused).
        #[command(flatten)]
        ranking: RankingArgs,
    },
    /// Lists the publications, newest first: title, what each holds (a ranking, or a block's
    /// metric for every agency), period, when and by whom published, how many agencies.
    Publications {
        /// How many of the newest to pass over.
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// How many to list: 1 to 500 (0: 50).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Print the response as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        service: RankingService,
    },
    /// Prints one publication exactly as published, whatever was counted since (a ranking's
    /// rows, or a block's metric for every agency), with when and by whom it was published.
    Publication(PublicationArgs),
    /// Prints a publication's revision log: the ranking computed again now for the same days,
    /// every agency whose rank or value moved since, and why (the days whose counters changed:
    /// late data for days already over at publication, or days still running then).
    Revisions(PublicationArgs),
    /// Shows a live ranking until Ctrl-C, reconnecting whenever the stream breaks and resuming
    /// from the last revision shown (redrawn from a fresh snapshot when the server cannot).
    Watch {
        #[command(flatten)]
        query: QueryArgs,
        #[command(flatten)]
        service: RankingService,
    },
    /// Prints a new random bearer token for ingest, and the entry to add to the token file
    /// (which stores only the token's SHA-256): docs/SECURITY.md.
    Token {
        /// The agency the token reports for (it may also report for the units below it).
        #[arg(long)]
        agency: String,
        /// Its roles: reporter, assessor, admin, reader.
        #[arg(long, value_delimiter = ',', default_value = "reporter")]
        roles: Vec<String>,
        /// When it stops working, RFC 3339 (for example 2027-06-30T00:00:00Z).
        #[arg(long)]
        expires_at: Option<String>,
        /// The catalog the agency is checked against; the built-in one when unset.
        #[arg(long, env = "GOVPULSE_CATALOG_DIR")]
        catalog_dir: Option<PathBuf>,
    },
    /// Drives a running deployment with a realistic mix of events (every province and
    /// ministry, every kind) and reports accepted events/s, call latency and errors by code.
    Loadgen(LoadgenArgs),
    /// Prints the demo procedures catalog (deploy/catalog/procedures.csv).
    #[command(hide = true)]
    GenProcedures,
    /// Prints N rows of units under today's provinces and ministries, to append to a catalog
    /// folder's units.csv for `loadgen --mix units` (the benchmark's unit mix).
    #[command(hide = true)]
    GenUnits {
        /// How many units.
        #[arg(long, default_value_t = 10_000)]
        units: usize,
    },
}

#[derive(Debug, clap::Args)]
struct LoadgenArgs {
    /// The ingest service.
    #[arg(long, env = "GOVPULSE_INGEST_URL", default_value = "http://127.0.0.1:50051")]
    ingest: String,
    /// `batch` (SubmitEvents calls) or `stream` (StreamEvents streams).
    #[arg(long, default_value = "batch")]
    mode: loadgen::Mode,
    /// Events per second over all connections; 0 sends as fast as ingest answers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Events per batch.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Concurrent callers (batch) or streams (stream).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Unacknowledged batches per stream (stream mode).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Share of acknowledged batches sent again on purpose; they must come back DUPLICATE.
    #[arg(long, default_value_t = 0.0)]
    resend_share: f64,
    /// Share of the events that are corrections of events acknowledged before (a quarter of
    /// them retractions), such as 0.05; the reconciliation accounts for them.
    #[arg(long, default_value_t = 0.0)]
    corrections: f64,
    /// Seconds during which unacknowledged batches are still retried after sending stops.
    #[arg(long, default_value_t = 60.0)]
    drain: f64,
    /// Print a report line (events/s, latency, errors, memory) every this many seconds.
    #[arg(long)]
    report_every: Option<f64>,
    /// Processes whose resident memory the report lines show (the services, redis-server).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// After the run, compare every agency's counters in aggregate with what the
    /// acknowledged events add up to (only on a deployment nothing else writes to).
    #[arg(long)]
    reconcile: bool,
    /// While the load runs, measure freshness against this ranking service: the time from
    /// an event's acknowledgement to its effect in a WatchRanking stream (probes on a past
    /// day the load does not write to, one at a time).
    #[arg(long, value_name = "RANKING_URL")]
    freshness: Option<String>,
    /// The aggregate service, for --reconcile.
    #[arg(long, env = "GOVPULSE_AGGREGATE_URL", default_value = "http://127.0.0.1:50052")]
    aggregate: String,
    /// Seed of the event generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// This process' share of the reporting agencies, `K/N`: those at positions K modulo N.
    /// N load generators with shares 0/N … N-1/N write disjoint agencies, so each can
    /// --reconcile its own while they run at once.
    #[arg(long, default_value = "0/1", value_parser = share_arg)]
    share: (usize, usize),
    /// Who reports: `top-level` (every ministry and province its own dossiers) or `units`
    /// (each one's system for its units, a few big and many small; see `gen-units`).
    #[arg(long, default_value = "top-level")]
    mix: loadgen::Mix,
    /// The deployment's catalog folder (its agencies and procedures), when it is not the
    /// built-in one.
    #[arg(long, env = "GOVPULSE_CATALOG_DIR")]
    catalog_dir: Option<PathBuf>,
}

/// A share as people type it: `K/N`, with K < N.
fn share_arg(raw: &str) -> Result<(usize, usize), String> {
    let parsed = raw
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((k, n)) if k < n => Ok((k, n)),
        _ => Err(format!(
            "{raw:?} is not a share; use K/N with K < N, such as 0/2"
        )),
    }
}

async fn channel(url: &str) -> anyhow::Result<Channel> {
    govpulse_runtime::client::lazy_channel(url, None).map_err(anyhow::Error::msg)
}

/// What `call` to `service` answered; a failed call as the person reads it: the status code
/// and the message.
async fn answer<T>(
    service: &'static str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> anyhow::Result<T> {
    call.await
        .map(tonic::Response::into_inner)
        .map_err(|status| anyhow::anyhow!("{service}: {:?}: {}", status.code(), status.message()))
}

/// Parses the JSON lines of `file` (`-`: standard input) with `parse`. When a line is
/// malformed, names every one on standard error, says nothing was sent (fix them and `retry`
/// again) and returns `None`: the command exits 2.
fn read_json_lines<T>(
    file: &Path,
    parse: impl FnOnce(Box<dyn BufRead>) -> Result<T, Vec<BadLine>>,
    retry: &str,
) -> anyhow::Result<Option<T>> {
    match parse(json_lines::open(file)?) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(bad) => {
            for line in &bad {
                errln!("line {}: {}", line.line, line.reason);
            }
            errln!(
                "nothing sent: {} malformed line(s); fix them and {retry} again",
                bad.len()
            );
            Ok(None)
        }
    }
}

/// A block as people type it: `province` or `ministry`.
fn block_arg(raw: &str) -> anyhow::Result<PbBlock> {
    match Block::parse(raw) {
        Some(Block::Province) => Ok(PbBlock::Province),
        Some(Block::Ministry) => Ok(PbBlock::Ministry),
        None => anyhow::bail!("{raw:?} is not a block; use province or ministry"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` is a server and logs like one; the other commands' output is the screen, and
    // only warnings (such as a retry) belong beside it.
    let default_filter = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    let telemetry = govpulse_runtime::telemetry::init_with_default("govpulse", default_filter);
    let result = run(cli).await;
    telemetry.shutdown().await;
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("govpulse: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo {
            stack,
            rate,
            backfill,
            history_days,
            metric,
        } => {
            let metric: Metric = metric.parse()?;
            live::demo(stack, rate, backfill, history_days, metric).await?;
        }
        Command::Serve { stack } => {
            let stack = Stack::start(stack).await?;
            outln!("ingest     {}", stack.ingest);
            outln!("aggregate  {}", stack.aggregate);
            outln!("ranking    {}", stack.ranking);
            outln!("dashboard  {}/", stack.url(stack.ranking));
            if let Some(metrics) = stack.metrics {
                outln!("metrics    http://{metrics}/metrics");
            }
            govpulse_edge::server::shutdown_signal().await;
            stack.stop().await;
        }
        Command::Submit {
            file,
            batch_size,
            retry_for,
            service,
        } => {
            let Some(events) = read_json_lines(&file, submit::parse_lines, "submit")? else {
                return Ok(ExitCode::from(2));
            };
            let client = IngestServiceClient::new(service.remote()?.channel());
            let progress = submit_progress(events.len() as u64);
            let report = submit::send(
                &client,
                events,
                batch_size,
                std::time::Duration::from_secs_f64(retry_for.max(0.0)),
                service.connect.token.as_deref(),
                |so_far| {
                    // The counts in the message, so that a frame never shows two moments.
                    progress.set_position(so_far.answered());
                    progress.set_message(format!(
                        "{}/{} events, {:.0} events/s; {}",
                        so_far.answered(),
                        progress.length().unwrap_or(0),
                        progress.per_sec(),
                        so_far.tallies()
                    ));
                },
            )
            .await
            .map_err(|s| anyhow::anyhow!("ingest: {:?}: {}", s.code(), s.message()))?;
            progress.finish_and_clear();
            for (line, field, reason) in &report.conflicts {
                outln!("line {line}: conflict: {field}: {reason}");
            }
            for (line, field, reason) in &report.rejected {
                outln!("line {line}: rejected: {field}: {reason}");
            }
            outln!("{}", report.tallies());
            if !report.rejected.is_empty() || !report.conflicts.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Assess {
            file,
            agency,
            profile,
            period,
            score,
            service,
        } => {
            let scores = match (file, agency, profile, period) {
                (Some(file), ..) => {
                    let Some(scores) = read_json_lines(&file, assess::parse_lines, "send")? else {
                        return Ok(ExitCode::from(2));
                    };
                    scores
                }
                (None, Some(agency), Some(profile), Some(period)) => {
                    assess::from_flags(&agency, &profile, &period, &score)
                        .map_err(anyhow::Error::msg)?
                }
                _ => anyhow::bail!("give a file, or --agency, --profile, --period and --score"),
            };
            let ingest = service.remote()?;
            let stored = answer(
                "ingest",
                IngestServiceClient::new(ingest.channel())
                    .report_assessed_scores(ingest.request(ReportAssessedScoresRequest { scores })),
            )
            .await?
            .stored;
            outln!("stored {stored}");
        }
        Command::Ranking(RankingArgs {
            query,
            json,
            service,
        }) => {
            let request = GetRankingRequest {
                query: Some(query.query()?),
            };
            let ranking = service.remote()?;
            let response = answer(
                "ranking",
                RankingServiceClient::new(ranking.channel()).get_ranking(ranking.request(request)),
            )
            .await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&response)?);
            } else {
                let days = |p: &Option<govpulse_proto::aggregate::PeriodRange>| {
                    p.as_ref()
                        .map(|p| format!("{}..{}", p.first_day, p.last_day))
                        .unwrap_or_default()
                };
                let out_of = if response.max_score.is_empty() {
                    String::new()
                } else {
                    format!(" (out of {})", response.max_score)
                };
                let minimum = if response.min_volume > 0 {
                    format!(", minimum volume {}", response.min_volume)
                } else {
                    String::new()
                };
                outln!(
                    "{} by {}{out_of}, {}, {} ranked{minimum}, movement against {}",
                    query.parent.as_deref().unwrap_or(&query.block),
                    query.measure(),
                    days(&response.period),
                    response.ranked_count,
                    days(&response.previous_period)
                );
                out!("{}", render::table(&response.rows, render::period_movement));
            }
        }
        Command::Alerts { json, service } => {
            let ranking = service.remote()?;
            let response = answer(
                "ranking",
                RankingServiceClient::new(ranking.channel())
                    .get_alerts(ranking.request(GetAlertsRequest {})),
            )
            .await?;
            print(json, &response, render::alerts_table)?;
        }
        Command::Metrics {
            agency,
            block,
            parent,
            nation,
            metric,
            period,
            compare_to,
            by_procedure,
            top,
            json,
            service,
        } => {
            for m in &metric {
                m.parse::<Metric>()?;
            }
            let aggregate = service.remote()?;
            let mut client = AggregateServiceClient::new(aggregate.channel());
            if by_procedure {
                let request = GetProcedureMetricsRequest {
                    agency_id: agency.unwrap_or_default(),
                    period,
                    metric: one_metric(metric, "--by-procedure")?,
                    top,
                };
                let response = answer(
                    "aggregate",
                    client.get_procedure_metrics(aggregate.request(request)),
                )
                .await?;
                print(json, &response, render::procedure_metrics_table)?;
            } else if let Some(agency) = agency {
                let request = GetMetricsRequest {
                    agency_id: agency,
                    period,
                    metrics: metric,
                    compare_to: compare_to.unwrap_or_default(),
                };
                let response =
                    answer("aggregate", client.get_metrics(aggregate.request(request))).await?;
                print(json, &response, render::metrics_table)?;
            } else {
                let scope = match (block, parent) {
                    (Some(block), _) => Scope::Block(block_arg(&block)?.into()),
                    (None, Some(parent)) => Scope::ParentId(parent),
                    (None, None) => Scope::Nation(nation),
                };
                let metric = one_metric(metric, "--block, --parent or --nation")?;
                let request = GetBlockMetricsRequest {
                    scope: Some(scope),
                    metric: metric.clone(),
                    period,
                    compare_to: compare_to.unwrap_or_default(),
                    daily_events_days: 0,
                };
                let response = answer(
                    "aggregate",
                    client.get_block_metrics(aggregate.request(request)),
                )
                .await?;
                print(json, &response, |r| render::block_metrics_table(&metric, r))?;
            }
        }
        Command::Publish {
            id,
            title,
            ranking:
                RankingArgs {
                    query,
                    json,
                    service,
                },
        } => {
            let request = query.query()?;
            let ranking = service.remote()?;
            publications::publish(&ranking, id, title, request, json).await?;
        }
        Command::Publications {
            offset,
            limit,
            json,
            service,
        } => publications::list(&service.remote()?, offset, limit, json).await?,
        Command::Publication(args) => {
            publications::show(&args.service.remote()?, args.id, args.json).await?;
        }
        Command::Revisions(args) => {
            publications::revisions(&args.service.remote()?, args.id, args.json).await?;
        }
        Command::Watch { query, service } => {
            let request = query.query()?;
            live::watch(&service.ranking, service.remote()?, request).await?;
        }
        Command::Token {
            agency,
            roles,
            expires_at,
            catalog_dir,
        } => {
            let (token, hash) = govpulse_edge::auth::new_token();
            let roles = roles
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            let expiry = expires_at
                .map(|e| format!("expires_at = {e:?}\n"))
                .unwrap_or_default();
            let entry = format!(
                "[[credential]]\nsha256 = \"{hash}\"\nagency = {agency:?}\nroles = [{roles}]\n{expiry}"
            );
            // The entry must load as the services will load it: known agency and roles.
            let catalog = govpulse_runtime::catalog_files::load(catalog_dir.as_deref())?;
            govpulse_edge::auth::Tokens::parse(&entry, &catalog)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            outln!("token (give it to the agency once; it is not stored anywhere):");
            outln!("{token}");
            outln!();
            outln!("add to the token file:");
            out!("{entry}");
        }
        Command::Loadgen(args) => return run_loadgen(args).await,
        Command::GenUnits { units } => {
            let catalog = govpulse_runtime::catalog_files::built_in()?;
            let today = govpulse_core::period::vietnam_day(time::OffsetDateTime::now_utc());
            out!("{}", loadgen::units_csv(&catalog, units, today, false));
        }
        Command::GenProcedures => {
            let catalog = govpulse_runtime::catalog_files::built_in()?;
            out!("{}", procedures::generate(&catalog));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resident memory of a process in MiB, from /proc (Linux), if it can be read.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `p50 … ms, p90 … ms, p99 … ms, max … ms` (deploy/bin/bench reads these lines by field).
fn percentiles(latency: &loadgen::Latency) -> String {
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        millis(latency.p50),
        millis(latency.p90),
        millis(latency.p99),
        millis(latency.max)
    )
}

async fn run_loadgen(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    use std::{sync::Arc, time::Duration};
    let catalog = Arc::new(govpulse_runtime::catalog_files::load(
        args.catalog_dir.as_deref(),
    )?);
    let config = loadgen::LoadConfig {
        mode: args.mode,
        rate: (args.rate > 0.0).then_some(args.rate),
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        batch_size: args.batch_size.max(1),
        connections: args.connections.max(1),
        in_flight: args.in_flight.max(1),
        resend_share: args.resend_share,
        drain: Duration::from_secs_f64(args.drain.max(0.0)),
        seed: args.seed,
        share: args.share,
        mix: args.mix,
        corrections: args.corrections,
    };
    outln!(
        "loadgen: {:?} mode, {} connections, batches of {}, {}, {} s",
        config.mode,
        config.connections,
        config.batch_size,
        config
            .rate
            .map_or("as fast as possible".to_owned(), |r| format!(
                "{r} events/s"
            )),
        args.duration
    );
    let progress = Arc::new(loadgen::Progress::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let ingest = channel(&args.ingest).await?;
    // The probe stops when the load stops sending, so it measures under load only.
    let probe_stop = tokio_util::sync::CancellationToken::new();
    let probe = match &args.freshness {
        Some(url) => {
            let (ingest, ranking) = (ingest.clone(), channel(url).await?);
            let (catalog, stop) = (catalog.clone(), probe_stop.clone());
            Some(tokio::spawn(async move {
                govpulse::freshness::probe(ingest, ranking, &catalog, Default::default(), stop)
                    .await
            }))
        }
        None => None,
    };
    tokio::spawn({
        let (stop, probe_stop, duration) = (stop.clone(), probe_stop.clone(), config.duration);
        async move {
            tokio::select! {
                () = tokio::time::sleep(duration) => {}
                () = stop.cancelled() => {}
            }
            probe_stop.cancel();
        }
    });
    let run = tokio::spawn(loadgen::run(
        ingest,
        catalog,
        config,
        progress.clone(),
        stop.clone(),
    ));
    // Ctrl-C stops sending; what is in flight is still acknowledged (or retried).
    tokio::spawn({
        let stop = stop.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        }
    });
    let reporter = args.report_every.filter(|s| *s > 0.0).map(|every| {
        let progress = progress.clone();
        let pids = args.pids.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs_f64(every);
            let started = std::time::Instant::now();
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let mut accepted_before = 0;
            loop {
                ticker.tick().await;
                let accepted = progress.outcomes.accepted.load(std::sync::atomic::Ordering::Relaxed);
                let latency = progress.take_interval();
                let memory: Vec<String> = pids
                    .iter()
                    .map(|pid| match rss_mib(*pid) {
                        Some(mib) => format!("{pid}:{mib:.0}MiB"),
                        None => format!("{pid}:gone"),
                    })
                    .collect();
                outln!(
                    "t={:>6.0}s accepted/s={:>9.0} calls={:>6} p50={:.1}ms p99={:.1}ms max={:.1}ms failed_calls={} rss=[{}]",
                    started.elapsed().as_secs_f64(),
                    (accepted - accepted_before) as f64 / every.as_secs_f64(),
                    latency.count,
                    millis(latency.p50),
                    millis(latency.p99),
                    millis(latency.max),
                    progress.failed_calls.load(std::sync::atomic::Ordering::Relaxed),
                    memory.join(" ")
                );
                accepted_before = accepted;
            }
        })
    });
    let report = run.await?;
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    outln!(
        "accepted {} ({:.0} events/s over {:.1} s), duplicate {}, conflict {}, rejected {}, unacknowledged {}",
        report.accepted,
        report.accepted_per_second(),
        report.elapsed.as_secs_f64(),
        report.duplicate,
        report.conflict,
        report.rejected,
        report.unacknowledged
    );
    outln!(
        "call latency: {} calls, {}",
        report.latency.count,
        percentiles(&report.latency)
    );
    if report.resent > 0 {
        outln!(
            "deliberate resends: {} events, {} counted again",
            report.resent,
            report.resent_accepted
        );
    }
    if args.corrections > 0.0 {
        outln!(
            "corrections: {} acknowledged ({} retractions), {:.1}% of the events accepted",
            report.corrections_acknowledged,
            report.retractions_acknowledged,
            100.0 * report.corrections_acknowledged as f64 / report.accepted.max(1) as f64
        );
    }
    if let Some(probe) = probe {
        let freshness = probe.await??;
        outln!(
            "freshness: {} probes, {}, missed {}, refused {}",
            freshness.latency.count,
            percentiles(&freshness.latency),
            freshness.missed,
            freshness.refused
        );
    }
    if report.errors.is_empty() {
        outln!("errors: none");
    } else {
        let errors: Vec<String> = report
            .errors
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        outln!("errors (failed calls, retried): {}", errors.join(", "));
    }
    let mut healthy = report.unacknowledged == 0 && report.resent_accepted == 0;
    if args.reconcile {
        let result = loadgen::reconcile(channel(&args.aggregate).await?, &report.expected)
            .await
            .map_err(|s| anyhow::anyhow!("aggregate: {}", s.message()))?;
        outln!(
            "reconcile: {} distinct acknowledged events, {} agencies, {} counters compared, {} differ",
            report.expected.events(),
            result.agencies,
            result.compared,
            result.mismatches.len()
        );
        for m in &result.mismatches {
            outln!(
                "  {} {}: acknowledged {}, counted {}",
                m.agency,
                m.counter,
                m.expected,
                m.counted
            );
        }
        healthy &= result.mismatches.is_empty();
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A progress bar for `govpulse submit` of `events` events on stderr (events sent, events/s,
/// the outcomes so far), shown only when stdout is a terminal: piped, only the summary.
fn submit_progress(events: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(events);
    let style = indicatif::ProgressStyle::with_template("{bar:30} {msg} ({elapsed})")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// The one metric of a report of one (`with` names the options asking for it):
/// online-dossier-rate when none is given.
fn one_metric(metric: Vec<String>, with: &str) -> anyhow::Result<String> {
    match <[String; 1]>::try_from(metric) {
        Ok([one]) => Ok(one),
        Err(none) if none.is_empty() => Ok(Metric::OnlineDossierRate.name().to_owned()),
        Err(_) => anyhow::bail!("give one --metric with {with}"),
    }
}

/// Prints `response` as JSON when `json`, else as `table` renders it for people.
fn print<T: serde::Serialize>(
    json: bool,
    response: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(response)?);
    } else {
        out!("{}", table(response));
    }
    Ok(())
}
