//! Live rankings on the terminal: the demo's screen and `govpulse watch`.

use std::{
    fmt::Write as _,
    io::{IsTerminal, Write as _},
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;
use crossterm::{cursor, style, terminal};
use govpulse_core::{Metric, period::vietnam_day};
use govpulse_proto::{
    catalog::Block as PbBlock,
    ranking::{
        RankingQuery, WatchRankingRequest, ranking_query::Selection,
        ranking_service_client::RankingServiceClient,
    },
};
use govpulse_runtime::client::ReconnectDelays;
use time::OffsetDateTime;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use govpulse::simulate::{self, SimulationConfig, Tally};

use crate::{
    connect::{ConnectArgs, Remote},
    ministry,
    render::LiveTable,
    stack::{Stack, StackArgs},
};

/// The state of a watched stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    Connecting,
    Live,
    Reconnecting,
}

#[derive(Debug)]
struct Watched {
    table: LiveTable,
    connection: Connection,
}

/// Follows a live ranking into `watched` until `stop`, reconnecting with backoff.
async fn follow(
    ranking: Remote,
    query: RankingQuery,
    watched: Arc<Mutex<Watched>>,
    stop: CancellationToken,
) {
    let mut delays = ReconnectDelays::new(Duration::from_millis(200));
    let set = |connection| {
        watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .connection = connection
    };
    while !stop.is_cancelled() {
        let attempt = async {
            let mut client =
                RankingServiceClient::new(ranking.connect().await.map_err(|e| e.to_string())?);
            // Resume from the last state shown, so a restart of the ranking service (or a
            // dropped connection) costs no snapshot; the server says so when it cannot.
            let resume_revision = watched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .table
                .resume_revision();
            let mut stream = client
                .watch_ranking(ranking.request(WatchRankingRequest {
                    query: Some(query.clone()),
                    resume_revision,
                }))
                .await
                .map_err(|s| s.message().to_owned())?
                .into_inner();
            set(Connection::Live);
            delays.reset();
            while let Some(message) = stream.next().await {
                let message = message.map_err(|s| s.message().to_owned())?;
                watched
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .table
                    .apply(message);
            }
            Ok::<(), String>(())
        };
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = attempt => result,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "watch stream broke");
        }
        set(Connection::Reconnecting);
        let delay = delays.next_delay();
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// The terminal's alternate screen while a live table is drawn on it (crossterm), left with
/// the cursor shown again when dropped: on stop, on an error and on a panic alike.
struct LiveScreen;

impl LiveScreen {
    fn enter() -> Option<LiveScreen> {
        crossterm::execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .ok()
        .map(|()| LiveScreen)
    }

    /// Replaces what the screen shows with `screen`.
    fn show(&self, screen: &str) {
        let mut stdout = std::io::stdout().lock();
        // Lines end with CRLF: nothing else moves the cursor back to the first column.
        let _ = crossterm::queue!(
            stdout,
            cursor::MoveTo(0, 0),
            terminal::Clear(terminal::ClearType::All),
            style::Print(screen.replace('\n', "\r\n"))
        );
        let _ = stdout.flush();
    }
}

impl Drop for LiveScreen {
    fn drop(&mut self) {
        let _ = crossterm::execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
    }
}

/// Redraws the screen from `watched` whenever it changed, until `stop`. On a terminal the
/// table is redrawn in place on the alternate screen, which is left on exit; otherwise a
/// plain table is printed every few seconds.
async fn draw(header: impl Fn() -> String, watched: Arc<Mutex<Watched>>, stop: CancellationToken) {
    let live = if std::io::stdout().is_terminal() {
        LiveScreen::enter()
    } else {
        None
    };
    let terminal = live.is_some();
    let every = if terminal {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let mut ticker = tokio::time::interval(every);
    let mut last_drawn = u64::MAX;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (screen, messages) = {
            let w = watched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let resets = if w.table.resets > 0 {
                format!(
                    " · redrawn from a fresh snapshot {} time(s) after reconnecting",
                    w.table.resets
                )
            } else {
                String::new()
            };
            let status = match (w.connection, w.table.complete) {
                (Connection::Live, true) => format!(
                    "live · updated {} (Vietnam time) · {} ranked · {}{resets}",
                    updated_text(w.table.revision),
                    w.table.ranked_count,
                    w.table.period
                ),
                (Connection::Live, false) | (Connection::Connecting, _) => "connecting…".to_owned(),
                (Connection::Reconnecting, _) => format!(
                    "reconnecting… (showing the ranking of {}, not current; will resume from it)",
                    updated_text(w.table.revision)
                ),
            };
            (
                format!("{}\n{status}\n\n{}", header(), w.table.render()),
                w.table.messages,
            )
        };
        if let Some(live) = &live {
            live.show(&screen);
        } else if messages != last_drawn {
            outln!("{screen}");
        }
        last_drawn = messages;
        let _ = std::io::stdout().flush();
    }
}

/// The days the demo's terminal table ranks, ending today.
const DEMO_DAYS: u16 = 7;

/// The days of history the demo reports by default, ending `today`: from 1 January of last
/// year (so that every period of this year, the year itself included, has its same period
/// last year and its previous period), and at least 13 months (so that in January too, the
/// last 12 months have their month before: from the same day last year, a month earlier).
fn default_history_days(today: time::Date) -> u16 {
    let first_of_last_year =
        time::Date::from_calendar_date(today.year() - 1, time::Month::January, 1);
    let months = today.year() * 12 + i32::from(u8::from(today.month())) - 1 - 13;
    let month = time::Month::try_from(u8::try_from(months.rem_euclid(12) + 1).unwrap_or(1))
        .unwrap_or(time::Month::January);
    let thirteen_months_ago = time::Date::from_calendar_date(
        months.div_euclid(12),
        month,
        today.day().min(month.length(months.div_euclid(12))),
    );
    let first = match (first_of_last_year, thirteen_months_ago) {
        (Ok(a), Ok(b)) => a.min(b),
        (Ok(day), Err(_)) | (Err(_), Ok(day)) => day,
        (Err(_), Err(_)) => today,
    };
    u16::try_from((today - first).whole_days() + 1).unwrap_or(u16::MAX)
}

/// `govpulse demo`.
pub async fn demo(
    mut config: StackArgs,
    rate: f64,
    backfill: u32,
    history_days: Option<u16>,
    metric: Metric,
) -> anyhow::Result<()> {
    // The simulated agencies and the live table call the services as anonymous clients.
    if config.tokens.is_some()
        || config.tls.tls_cert.is_some()
        || config.tls.tls_client_ca.is_some()
    {
        anyhow::bail!(
            "the demo's simulated agencies report without credentials or TLS: run `govpulse serve` with --tokens or --tls-cert instead"
        );
    }
    // The history: `default_history_days` unless told otherwise, and a horizon that accepts
    // all of it.
    let today = vietnam_day(OffsetDateTime::now_utc());
    let history_days = history_days.unwrap_or_else(|| default_history_days(today));
    let needed = history_days.saturating_add(2);
    if config.horizon_days.is_none_or(|days| days < needed) {
        let default = govpulse_core::AcceptancePolicy::default()
            .horizon
            .whole_days();
        config.horizon_days = Some(needed.max(u16::try_from(default).unwrap_or(u16::MAX)));
    }
    // Targets for every year of the history and this one: the shipped examples of their
    // latest year carried forward, unless a targets file was given.
    let _targets_dir = match config.targets {
        Some(_) => None,
        None => {
            let dir = tempfile::tempdir().context("a folder for the demo's targets")?;
            let path = dir.path().join("targets.toml");
            std::fs::write(
                &path,
                govpulse_runtime::targets_file::built_in_carried_to(today.year()),
            )
            .with_context(|| format!("cannot write {}", path.display()))?;
            config.targets = Some(path);
            Some(dir)
        }
    };
    let stack = Stack::start(config).await?;
    let (ingest, aggregate, ranking) = (
        stack.url(stack.ingest),
        stack.url(stack.aggregate),
        stack.url(stack.ranking),
    );
    let stop = CancellationToken::new();
    let tally = Arc::new(Tally::default());
    let catalog = stack.catalog.clone();
    let simulation = SimulationConfig {
        dossiers_per_second: rate,
        backfill,
        backfill_days: history_days,
        retry_share: 0.02,
    };
    let simulator = tokio::spawn(simulate::run(
        ingest.clone(),
        catalog.clone(),
        simulation,
        tally.clone(),
        stop.clone(),
    ));
    let published = Arc::new(ministry::Status::default());
    let ministry = tokio::spawn(ministry::run(
        ConnectArgs::default().remote(&ranking)?,
        ingest.clone(),
        catalog,
        metric,
        tally.clone(),
        published.clone(),
        stop.clone(),
    ));

    // The last week, today included: at any hour it holds office hours and nights alike.
    let week = format!(
        "{}..{today}",
        today - time::Duration::days(i64::from(DEMO_DAYS) - 1)
    );
    let query = RankingQuery {
        metric: metric.name().to_owned(),
        block: PbBlock::Province.into(),
        period: week.clone(),
        selection: Some(Selection::Top(10)),
        index: String::new(),
        parent_id: String::new(),
        ..Default::default()
    };
    let watched = Arc::new(Mutex::new(Watched {
        table: LiveTable::default(),
        connection: Connection::Connecting,
    }));
    let follower = tokio::spawn(follow(
        ConnectArgs::default().remote(&ranking)?,
        query,
        watched.clone(),
        stop.clone(),
    ));
    let started = Instant::now();
    let dashboard = format!("{ranking}/");
    let header = move || {
        let accepted = tally.outcomes.accepted.load(Ordering::Relaxed);
        let per_second = accepted as f64 / started.elapsed().as_secs_f64().max(1.0);
        let mut h = String::new();
        let _ = writeln!(
            h,
            "govpulse demo · top 10 provinces by {metric} · the last 7 days, {week} (Vietnam time) · Ctrl-C to stop"
        );
        let _ = writeln!(
            h,
            "ingest {ingest}   aggregate {aggregate}   ranking {ranking}"
        );
        let _ = writeln!(h, "Dashboard: {ranking}/ (open it in a browser)");
        let _ = writeln!(h, "{}", history_text(&tally, history_days));
        let publication = published.line();
        if !publication.is_empty() {
            let _ = writeln!(h, "{publication}");
        }
        let _ = write!(
            h,
            "events: {} accepted ({per_second:.0}/s), {} duplicate (simulated retries), {} conflict, {} rejected",
            grouped(accepted),
            tally.outcomes.duplicate.load(Ordering::Relaxed),
            tally.outcomes.conflict.load(Ordering::Relaxed),
            tally.outcomes.rejected.load(Ordering::Relaxed)
        );
        h
    };
    outln!(
        "govpulse demo: ingest {}  aggregate {}  ranking {}\nDashboard: {dashboard}",
        stack.ingest,
        stack.aggregate,
        stack.ranking
    );
    let drawer = tokio::spawn(draw(header, watched, stop.clone()));
    govpulse_edge::server::shutdown_signal().await;
    stop.cancel();
    let _ = tokio::join!(simulator, ministry, follower, drawer);
    stack.stop().await;
    outln!("\ngovpulse demo stopped");
    Ok(())
}

/// `govpulse watch`.
pub async fn watch(url: &str, ranking: Remote, query: RankingQuery) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let watched = Arc::new(Mutex::new(Watched {
        table: LiveTable::default(),
        connection: Connection::Connecting,
    }));
    let title = format!(
        "{} by {} · {} · {url} · Ctrl-C to stop",
        block_name(query.block),
        query.metric,
        query.period
    );
    let follower = tokio::spawn(follow(ranking, query, watched.clone(), stop.clone()));
    let drawer = tokio::spawn(draw(move || title.clone(), watched, stop.clone()));
    govpulse_edge::server::shutdown_signal().await;
    stop.cancel();
    let _ = tokio::join!(follower, drawer);
    Ok(())
}

/// How far the history is: its days, its events, and how long it took, from the start of
/// the simulation (its generation included) until every one of them had its answer.
fn history_text(tally: &Tally, days: u16) -> String {
    let total = tally.history_events.load(Ordering::Relaxed);
    let months = f64::from(days) / 30.44;
    match tally.history_took.get() {
        Some(took) => format!(
            "history: {months:.0} months ({days} days), {} events, counted in {took:.1} s",
            grouped(total)
        ),
        // Nothing generated yet: no count to show.
        None if total == 0 => format!("history: {months:.0} months ({days} days), generating…"),
        None => format!(
            "history: {months:.0} months ({days} days), {} of {} events counted…",
            grouped(tally.outcomes.answered().min(total)),
            grouped(total)
        ),
    }
}

/// `n` with its thousands grouped, as people read large counts: `840,015`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// When the ranking of `revision` was published, as people read a clock: `10:59:49`, Vietnam
/// time (the revision's number means nothing to them).
fn updated_text(revision: u64) -> String {
    let ms = i128::from(govpulse_ranking::revision_ms(revision));
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000)
        .map(|at| {
            let at = at.to_offset(govpulse_core::period::VIETNAM);
            format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
        })
        .unwrap_or_else(|_| "–".to_owned())
}

fn block_name(block: i32) -> &'static str {
    match PbBlock::try_from(block) {
        Ok(PbBlock::Ministry) => "ministries",
        _ => "provinces",
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    /// The days of a history from `first` to `today`, both included.
    fn days_from(first: time::Date, today: time::Date) -> u16 {
        u16::try_from((today - first).whole_days() + 1).expect("a few hundred days")
    }

    #[test]
    fn the_default_history_starts_on_1_january_of_last_year_in_december() {
        // 2025-01-01 to 2026-12-04, both included.
        assert_eq!(default_history_days(date!(2026 - 12 - 04)), 365 + 338);
    }

    #[test]
    fn the_default_history_covers_13_months_in_january() {
        // From 2024-12-05: 13 months before 2026-01-05, earlier than 1 January 2025.
        assert_eq!(
            default_history_days(date!(2026 - 01 - 05)),
            days_from(date!(2024 - 12 - 05), date!(2026 - 01 - 05))
        );
    }

    #[test]
    fn the_default_history_clamps_to_the_end_of_a_shorter_month() {
        // 13 months before 31 January 2026 is 31 December 2024; before 31 March, 28 February.
        assert_eq!(
            default_history_days(date!(2026 - 01 - 31)),
            days_from(date!(2024 - 12 - 31), date!(2026 - 01 - 31))
        );
        assert_eq!(
            default_history_days(date!(2027 - 03 - 31)),
            days_from(date!(2026 - 01 - 01), date!(2027 - 03 - 31)),
            "1 January of last year comes first from February on"
        );
    }

    #[test]
    fn the_history_line_says_how_far_it_is_then_how_long_it_took() {
        let tally = Tally::default();
        assert_eq!(
            history_text(&tally, 704),
            "history: 23 months (704 days), generating…"
        );
        tally.history_events.store(840_015, Ordering::Relaxed);
        tally.outcomes.accepted.store(558_000, Ordering::Relaxed);
        assert_eq!(
            history_text(&tally, 704),
            "history: 23 months (704 days), 558,000 of 840,015 events counted…"
        );
        let _ = tally.history_took.set(6.66);
        assert_eq!(
            history_text(&tally, 704),
            "history: 23 months (704 days), 840,015 events, counted in 6.7 s"
        );
    }

    #[test]
    fn large_counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(840_015), "840,015");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn the_update_time_is_the_revisions_millisecond_in_vietnam_time() {
        // 2026-12-04 03:59:49.123 UTC is 10:59:49 in Vietnam.
        let ms: u64 = 1_796_356_789_123;
        assert_eq!(updated_text((ms << 20) | 0xABCDE), "10:59:49");
    }
}
