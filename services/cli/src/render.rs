//! Tables for people (comfy-table): the one-off ranking of `govpulse ranking`, the live
//! table of `govpulse watch` and `govpulse demo`, the reports of `govpulse metrics`, and the
//! publications (`govpulse publish`, `publications`, `publication`, `revisions`).

use std::{collections::HashMap, fmt::Write as _};

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use govpulse_edge::convert::{cause_counters, cause_days};
use govpulse_proto::{
    Timestamp,
    aggregate::{
        AgencyMetric, Change, Freshness, GetBlockMetricsRequest, GetBlockMetricsResponse,
        GetMetricsResponse, GetProcedureMetricsResponse, PeriodRange, ProcedureMetric, Rate,
        TargetStanding, get_block_metrics_request::Scope,
    },
    catalog::Block as PbBlock,
    ranking::{
        AlertState, GetAlertsResponse, GetRevisionsResponse, ListPublicationsResponse, Publication,
        PublishResponse, RankingQuery, RankingRow, RevisionCause, WatchRankingResponse,
        watch_ranking_response::Event,
    },
};

/// How a row moved in the last change that touched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// Up this many places.
    Up(u32),
    /// Down this many places.
    Down(u32),
    /// Entered the shown rows.
    New,
}

impl Movement {
    fn label(self) -> String {
        match self {
            Movement::Up(n) => format!("▲{n}"),
            Movement::Down(n) => format!("▼{n}"),
            Movement::New => "new".to_owned(),
        }
    }
}

/// A live ranking as a subscriber sees it, built from WatchRanking messages.
#[derive(Debug, Default)]
pub struct LiveTable {
    rows: Vec<RankingRow>,
    movement: HashMap<String, Movement>,
    /// The revision of the last message applied.
    pub revision: u64,
    /// How many agencies have a value.
    pub ranked_count: u32,
    /// The period's days, as `first..last`.
    pub period: String,
    /// Whether the snapshot is complete.
    pub complete: bool,
    /// Messages applied, heartbeats included.
    pub messages: u64,
    /// Times the server refused to resume and the table was rebuilt from a fresh snapshot.
    pub resets: u64,
    snapshot_open: bool,
}

impl LiveTable {
    /// The revision to resume from after a broken stream: the last one applied, once the
    /// table is complete; 0 (a fresh snapshot) while a snapshot is still arriving.
    pub fn resume_revision(&self) -> u64 {
        if self.complete { self.revision } else { 0 }
    }

    /// Applies one message of the stream.
    pub fn apply(&mut self, message: WatchRankingResponse) {
        self.messages += 1;
        self.revision = message.revision;
        match message.event {
            Some(Event::Snapshot(snapshot)) => {
                if !self.snapshot_open {
                    // A new snapshot (first, or after a reconnect) replaces everything.
                    self.rows.clear();
                    self.movement.clear();
                    self.snapshot_open = true;
                    self.complete = false;
                }
                if let Some(period) = snapshot.period {
                    self.period = format!("{}..{}", period.first_day, period.last_day);
                }
                self.ranked_count = snapshot.ranked_count;
                self.rows.extend(snapshot.rows);
            }
            Some(Event::SnapshotComplete(_)) => {
                self.snapshot_open = false;
                self.complete = true;
            }
            Some(Event::Changes(changes)) => {
                self.ranked_count = changes.ranked_count;
                for change in changes.changes {
                    let Some(row) = change.row else { continue };
                    self.rows.retain(|r| r.agency_id != row.agency_id);
                    if change.left {
                        self.movement.remove(&row.agency_id);
                        continue;
                    }
                    let movement = match (change.previous_rank, row.rank) {
                        (0, _) => Some(Movement::New),
                        (before, now) if now > 0 && now < before => {
                            Some(Movement::Up(before - now))
                        }
                        (before, now) if now > before => Some(Movement::Down(now - before)),
                        _ => None,
                    };
                    match movement {
                        Some(m) => self.movement.insert(row.agency_id.clone(), m),
                        None => self.movement.remove(&row.agency_id),
                    };
                    self.rows.push(row);
                }
                self.rows.sort_by_key(order);
            }
            Some(Event::Reset(_)) => {
                // The server could not resume: a fresh snapshot follows and replaces it all.
                self.resets += 1;
                self.complete = false;
                self.snapshot_open = false;
            }
            Some(Event::Heartbeat(_)) | None => {}
        }
    }

    /// The rows, in rank order.
    #[cfg(test)]
    pub fn rows(&self) -> &[RankingRow] {
        &self.rows
    }

    /// The table as text.
    pub fn render(&self) -> String {
        table(&self.rows, |row| {
            self.movement
                .get(&row.agency_id)
                .map(|m| m.label())
                .unwrap_or_default()
        })
    }
}

/// Movement against the previous comparable period, as `govpulse ranking` shows it: `▲3`,
/// `▼2`, `=`, `new`; `min` marks an agency listed below the minimum volume.
pub fn period_movement(row: &RankingRow) -> String {
    match (row.rank, row.previous_period_rank, row.places_gained) {
        (0, _, _) if row.below_minimum_volume => "min".to_owned(),
        (0, _, _) => String::new(),
        (_, 0, _) => "new".to_owned(),
        (_, _, 0) => "=".to_owned(),
        (_, _, gained) if gained > 0 => format!("▲{gained}"),
        (_, _, lost) => format!("▼{}", lost.unsigned_abs()),
    }
}

/// Ranked rows first by rank then id; rows without data last.
fn order(row: &RankingRow) -> (bool, u32, String) {
    (row.rank == 0, row.rank, row.agency_id.clone())
}

/// A composite score's value column, bar and detail column (`C` for the grade, `partial`
/// when some indicator had no value).
fn score_cells(row: &RankingRow) -> (String, String, String) {
    let score: f64 = row.score.parse().unwrap_or(0.0);
    let total: f64 = row
        .indicators
        .iter()
        .map(|i| i.max_points.parse::<f64>().unwrap_or(0.0))
        .sum();
    let filled = if total > 0.0 {
        ((score * 20.0 / total).round() as usize).min(20)
    } else {
        0
    };
    let detail = match (row.grade.as_str(), row.incomplete) {
        ("", false) => String::new(),
        ("", true) => "partial".to_owned(),
        (grade, false) => grade.to_owned(),
        (grade, true) => format!("{grade} partial"),
    };
    (row.score.clone(), "█".repeat(filled), detail)
}

/// A table laid out whole (never wrapped to a terminal's width), without borders, columns
/// two spaces apart, trailing spaces trimmed.
fn plain_table(header: Vec<&str>, right_aligned: &[usize]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for &column in right_aligned {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The table as text, each line without its trailing padding.
fn text(table: &Table) -> String {
    let mut out = table.trim_fmt();
    out.push('\n');
    out
}

/// Renders rows as an aligned table with a bar per value: a rate with its count, or a
/// composite score with its grade.
pub fn table(rows: &[RankingRow], movement: impl Fn(&RankingRow) -> String) -> String {
    let scores = rows.iter().any(|r| !r.score.is_empty());
    let (value, detail) = if scores {
        ("score", "grade")
    } else {
        ("value", "count")
    };
    let mut table = plain_table(vec!["rank", "move", "agency", value, "", detail], &[0, 3]);
    for row in rows {
        let rank = if row.rank == 0 {
            "-".to_owned()
        } else {
            row.rank.to_string()
        };
        let (value, bar, detail) = match &row.rate {
            None if !row.score.is_empty() => score_cells(row),
            Some(rate) => (
                format!("{}%", rate.percent),
                bar(rate),
                format!("{}/{}", rate.numerator, rate.denominator),
            ),
            None => ("no data".to_owned(), String::new(), String::new()),
        };
        // The bar column is always 20 wide, so bars of several tables line up.
        let bar = format!("{bar:<20}");
        let agency = match stale_text(row.freshness.as_ref()) {
            Some(stale) => format!("{} ({stale})", row.agency_name),
            None => row.agency_name.clone(),
        };
        table.add_row(vec![rank, movement(row), agency, value, bar, detail]);
    }
    text(&table)
}

/// A bar of one block per 5%, at most 20.
fn bar(rate: &Rate) -> String {
    let percent: f64 = rate.percent.parse().unwrap_or(0.0);
    "█".repeat(((percent / 5.0).round() as usize).min(20))
}

fn rate_text(rate: Option<&Rate>) -> String {
    rate.map_or_else(
        || "no data".to_owned(),
        |r| format!("{}% ({}/{})", r.percent, r.numerator, r.denominator),
    )
}

fn change_text(change: Option<&Change>) -> String {
    change.map_or_else(String::new, |c| {
        let ratio = if c.ratio.is_empty() {
            String::new()
        } else {
            format!("×{} ", c.ratio)
        };
        format!("{ratio}{} pts", c.points)
    })
}

fn target_text(target: Option<&TargetStanding>) -> String {
    target.map_or_else(String::new, |t| {
        let verdict = match t.met {
            Some(true) => format!("met ({} pts)", t.gap_points),
            Some(false) => format!("not met ({} pts)", t.gap_points),
            None => "no data".to_owned(),
        };
        format!("target {}% ({}): {verdict}", t.target_percent, t.applies_to)
    })
}

/// What a stale agency's figures are flagged with: since when nothing arrived; `None` when
/// they are current (or the server did not say).
fn stale_text(freshness: Option<&Freshness>) -> Option<String> {
    let f = freshness.filter(|f| f.stale)?;
    Some(match moment_text(f.last_accepted_at.as_ref()) {
        None => "stale: never reported".to_owned(),
        Some(at) => format!("stale: no data since {at}"),
    })
}

/// A moment in Vietnam time, to the second: `2026-12-05 14:15:17`; `None` for none (or one
/// no clock can show).
fn moment_text(at: Option<&Timestamp>) -> Option<String> {
    let at = govpulse_edge::convert::moment_from_proto(at).ok()??;
    let at = at.to_offset(govpulse_core::period::VIETNAM);
    Some(format!(
        "{} {:02}:{:02}:{:02}",
        at.date(),
        at.hour(),
        at.minute(),
        at.second()
    ))
}

fn days(period: Option<&PeriodRange>) -> String {
    period.map_or_else(String::new, |p| format!("{}..{}", p.first_day, p.last_day))
}

/// One agency's metrics: a heading with the periods compared, then a line per figure, each
/// metric followed by its comparisons.
pub fn metrics_table(response: &GetMetricsResponse) -> String {
    let name = response
        .agency
        .as_ref()
        .map(|a| format!("{} ({})", a.name, a.id))
        .unwrap_or_default();
    let mut out = format!(
        "{name}, {} = {}; last year {}; previous {}\n",
        response
            .period
            .as_ref()
            .map(|p| p.expression.as_str())
            .unwrap_or_default(),
        days(response.period.as_ref()),
        days(response.same_period_last_year.as_ref()),
        days(response.previous_period.as_ref()),
    );
    if let Some(base) = &response.base_period {
        let _ = writeln!(
            out,
            "  compared with {} = {}",
            base.expression,
            days(Some(base))
        );
    }
    if response.provisional {
        out.push_str("  provisional: the period includes today, whose events are still arriving\n");
    }
    if let Some(f) = &response.freshness {
        let last = match (
            moment_text(f.last_accepted_at.as_ref()),
            moment_text(f.last_occurred_at.as_ref()),
        ) {
            (Some(accepted), Some(occurred)) => {
                format!(
                    "last event accepted {accepted}, latest event time {occurred} (Vietnam time)"
                )
            }
            _ => "no event accepted yet".to_owned(),
        };
        let stale = stale_text(Some(f)).map_or_else(String::new, |s| format!(" ({s})"));
        let recent: u64 = response.accepted_per_day.iter().map(|d| d.accepted).sum();
        let rejected: u64 = response.accepted_per_day.iter().map(|d| d.rejected).sum();
        let _ = writeln!(
            out,
            "  {last}{stale}; {recent} events accepted and {rejected} rejected as invalid in the last {} days",
            response.accepted_per_day.len()
        );
    }
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    let open_at_end = response
        .counters
        .as_ref()
        .map_or(0, |c| c.open_past_due_at_end);
    table.add_row(vec![
        "open past their due time now".to_owned(),
        response.open_past_due.to_string(),
    ]);
    table.add_row(vec![
        "open past due at period end".to_owned(),
        open_at_end.to_string(),
    ]);
    for m in &response.metrics {
        table.add_row(vec![m.metric.clone(), rate_text(m.rate.as_ref())]);
        let mut details = Vec::new();
        if let Some(last) = &m.same_period_last_year {
            details.push(format!(
                "last year {}% {}",
                last.percent,
                change_text(m.change_from_last_year.as_ref())
            ));
        }
        if let Some(previous) = &m.previous_period {
            details.push(format!(
                "previous {}% {}",
                previous.percent,
                change_text(m.change_from_previous_period.as_ref())
            ));
        }
        if let (Some(base), Some(period)) = (&m.base, &response.base_period) {
            details.push(format!(
                "{} {}% {}",
                period.expression,
                base.percent,
                change_text(m.change_from_base.as_ref())
            ));
        }
        let target = target_text(m.target.as_ref());
        if !target.is_empty() {
            details.push(target);
        }
        if !details.is_empty() {
            table.add_row(vec![String::new(), details.join(" · ")]);
        }
    }
    out.push_str(&text(&table));
    out
}

/// One metric over several agencies, a row each, then the block's summary.
pub fn block_metrics_table(metric: &str, response: &GetBlockMetricsResponse) -> String {
    let base = response
        .base_period
        .as_ref()
        .map(|b| format!(", against {} = {}", b.expression, days(Some(b))))
        .unwrap_or_default();
    let mut out = format!(
        "{metric}, {} (last year {}{base})\n",
        days(response.period.as_ref()),
        days(response.same_period_last_year.as_ref())
    );
    let with_base = response.base_period.is_some();
    let mut header = vec!["agency", "value", "against last year"];
    if with_base {
        header.push("against the base");
    }
    header.push("target");
    let mut table = plain_table(header, &[]);
    for a in &response.agencies {
        let agency = match stale_text(a.freshness.as_ref()) {
            Some(stale) => format!("{} ({stale})", a.agency_name),
            None => a.agency_name.clone(),
        };
        let mut row = vec![
            agency,
            rate_text(a.rate.as_ref()),
            change_text(a.change_from_last_year.as_ref()),
        ];
        if with_base {
            row.push(change_text(a.change_from_base.as_ref()));
        }
        row.push(target_text(a.target.as_ref()));
        table.add_row(row);
    }
    out.push_str(&text(&table));
    if let Some(s) = &response.summary {
        let mean = if s.mean_percent.is_empty() {
            "no data".to_owned()
        } else {
            format!("{}%", s.mean_percent)
        };
        let _ = writeln!(
            out,
            "pooled {} · mean of agencies {mean} · {} agencies, {} without data · {} of the {} with data and a target meet it",
            rate_text(s.pooled.as_ref()),
            s.agencies,
            s.agencies_without_data,
            s.agencies_meeting_target,
            s.agencies_with_target
        );
    }
    if let Some(change) = &response.pooled_change_from_last_year {
        let _ = writeln!(
            out,
            "pooled against the same period last year: {}",
            change_text(Some(change))
        );
    }
    if let (Some(base), Some(summary)) = (&response.base_period, &response.summary_base) {
        let _ = writeln!(
            out,
            "pooled in {}: {}; against it: {}",
            base.expression,
            rate_text(summary.pooled.as_ref()),
            change_text(response.pooled_change_from_base.as_ref())
        );
    }
    out
}

/// One agency's metric per procedure: every procedure with a value, best first, then the
/// worst named in order (what to fix first), and those without data.
pub fn procedure_metrics_table(response: &GetProcedureMetricsResponse) -> String {
    let agency = response
        .agency
        .as_ref()
        .map_or_else(String::new, |a| format!("{} ({})", a.name, a.id));
    let mut out = format!(
        "{} per procedure of {agency}, {}{}\n",
        response.metric,
        days(response.period.as_ref()),
        if response.provisional {
            " (provisional: today's events are still arriving)"
        } else {
            ""
        }
    );
    let mut table = plain_table(vec!["rank", "procedure", "value", "", "count"], &[0]);
    for line in &response.procedures {
        let (value, bar, count) = match &line.rate {
            Some(rate) => (
                format!("{}%", rate.percent),
                bar(rate),
                format!("{}/{}", rate.numerator, rate.denominator),
            ),
            None => ("no data".to_owned(), String::new(), String::new()),
        };
        let name = if line.procedure_name.is_empty() {
            line.procedure_id.clone()
        } else {
            format!("{} ({})", line.procedure_name, line.procedure_id)
        };
        table.add_row(vec![
            line.rank.to_string(),
            name,
            value,
            format!("{bar:<20}"),
            count,
        ]);
    }
    if response.procedures.is_empty() {
        out.push_str("no procedure has data for this metric in the period\n");
    } else {
        out.push_str(&text(&table));
    }
    let names = |lines: &[ProcedureMetric]| {
        lines
            .iter()
            .map(|l| l.procedure_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !response.worst.is_empty() {
        let _ = writeln!(out, "worst first: {}", names(&response.worst));
    }
    if !response.no_data.is_empty() {
        let _ = writeln!(
            out,
            "{} more with dossiers but no data for {}: {}",
            response.no_data.len(),
            response.metric,
            names(&response.no_data)
        );
    }
    out
}

/// The alerts in force, firing first, then pending; each with its agency, rule, since when
/// (Vietnam time) and its sentence.
pub fn alerts_table(response: &GetAlertsResponse) -> String {
    let mut out = String::new();
    let rules = response.rules.clone().unwrap_or_default();
    let evaluated = moment_text(response.evaluated_at.as_ref()).map_or_else(
        || "not evaluated yet".to_owned(),
        |at| format!("evaluated {at}"),
    );
    let _ = writeln!(
        out,
        "{} alert(s), {} rule(s), {evaluated}",
        response.alerts.len(),
        rules.count
    );
    if !rules.refused.is_empty() {
        let _ = writeln!(
            out,
            "the rules file was refused, the previous rules stay in force: {}",
            rules.refused
        );
    }
    let state = |a: &govpulse_proto::ranking::Alert| {
        AlertState::try_from(a.state).unwrap_or(AlertState::Unspecified)
    };
    let mut alerts: Vec<_> = response.alerts.iter().collect();
    // Firing before pending, critical before warning, then as listed (rule, agency).
    alerts.sort_by_key(|a| (state(a) != AlertState::Firing, a.severity != "critical"));
    if alerts.is_empty() {
        return out;
    }
    let mut table = plain_table(
        vec!["state", "severity", "rule", "agency", "since", "what"],
        &[],
    );
    for alert in alerts {
        let (label, since) = match state(alert) {
            AlertState::Firing => ("firing", alert.firing_since.as_ref()),
            _ => ("pending", alert.active_since.as_ref()),
        };
        let agency = if alert.agency_name.is_empty() {
            alert.agency_id.clone()
        } else {
            format!("{} ({})", alert.agency_name, alert.agency_id)
        };
        table.add_row(vec![
            label.to_owned(),
            alert.severity.clone(),
            alert.rule.clone(),
            agency,
            moment_text(since).unwrap_or_default(),
            alert.summary.clone(),
        ]);
    }
    out.push_str(&text(&table));
    out
}

/// What a publication holds, in words, and its period as written: a ranking as `govpulse
/// ranking` titles it (`province by online-dossier-rate`, `phu-tho by service-index-766
/// (function)`), or a block's metric for every agency (`province: online-dossier-rate,
/// every agency and together`).
fn publication_what(
    query: Option<&RankingQuery>,
    figures: Option<&GetBlockMetricsRequest>,
) -> (String, String) {
    let block = |block: i32| match PbBlock::try_from(block) {
        Ok(PbBlock::Province) => "province".to_owned(),
        Ok(PbBlock::Ministry) => "ministry".to_owned(),
        _ => "agency".to_owned(),
    };
    if let Some(figures) = figures {
        let scope = match &figures.scope {
            Some(Scope::Block(b)) => block(*b),
            Some(Scope::ParentId(parent)) => parent.clone(),
            Some(Scope::Nation(_)) => "nation".to_owned(),
            None => "agency".to_owned(),
        };
        return (
            format!("{scope}: {}, every agency and together", figures.metric),
            figures.period.clone(),
        );
    }
    let query = query.cloned().unwrap_or_default();
    let scope = if query.parent_id.is_empty() {
        block(query.block)
    } else {
        query.parent_id.clone()
    };
    let measure = match (query.index.as_str(), query.criteria.as_slice()) {
        ("", _) => query.metric.clone(),
        (index, []) => index.to_owned(),
        (index, criteria) => format!("{index} ({})", criteria.join(", ")),
    };
    (format!("{scope} by {measure}"), query.period)
}

/// When and by whom a publication was published: `published on 2026-12-06 04:07:15
/// (Vietnam time) by anonymous`.
fn published_on(published_at: Option<&Timestamp>, published_by: &str) -> String {
    let when = moment_text(published_at).map_or_else(
        || "at an unknown time".to_owned(),
        |at| format!("on {at} (Vietnam time)"),
    );
    format!("published {when} by {published_by}")
}

/// What a publication holds, its days and how many agencies: `province by
/// online-dossier-rate, 2026-11 = 2026-11-01..2026-11-30, 3 ranked`.
fn publication_line(publication: &Publication) -> String {
    let (what, period) = publication_what(
        publication.query.as_ref(),
        publication.block_metrics_query.as_ref(),
    );
    match (&publication.ranking, &publication.block_metrics) {
        (_, Some(figures)) => format!(
            "{what}, {period} = {}, {} agencies",
            days(figures.period.as_ref()),
            figures.agencies.len()
        ),
        (ranking, None) => {
            let ranking = ranking.clone().unwrap_or_default();
            format!(
                "{what}, {period} = {}, {} ranked",
                days(ranking.period.as_ref()),
                ranking.ranked_count
            )
        }
    }
}

/// What `govpulse publish` says: that it published the ranking now, or that an identical
/// earlier call had; what the publication holds, and when and by whom it was published.
pub fn published(response: &PublishResponse) -> String {
    let Some(publication) = &response.publication else {
        return "published, but the service returned no publication\n".to_owned();
    };
    let mut out = if response.created {
        format!(
            "published {}: {:?}\n",
            publication.publication_id, publication.title
        )
    } else {
        format!(
            "{} existed already, with the same title and query: nothing new published\n",
            publication.publication_id
        )
    };
    let _ = writeln!(
        out,
        "{}; {}",
        publication_line(publication),
        published_on(publication.published_at.as_ref(), &publication.published_by)
    );
    out
}

/// The publications, newest first: id, title, what and which days each holds, when and by
/// whom it was published (Vietnam time), how many agencies it ranked (or holds).
pub fn publications_table(response: &ListPublicationsResponse) -> String {
    if response.publications.is_empty() {
        return if response.total == 0 {
            "no publication yet\n".to_owned()
        } else {
            format!("{} publication(s), none on this page\n", response.total)
        };
    }
    let mut out = format!(
        "{} publication(s), newest first; times in Vietnam time\n",
        response.total
    );
    let mut table = plain_table(
        vec![
            "id",
            "title",
            "what",
            "period",
            "published",
            "by",
            "agencies",
        ],
        &[6],
    );
    for p in &response.publications {
        let (what, period) = publication_what(p.query.as_ref(), p.block_metrics_query.as_ref());
        table.add_row(vec![
            p.publication_id.clone(),
            p.title.clone(),
            what,
            format!("{period} = {}", days(p.period.as_ref())),
            moment_text(p.published_at.as_ref()).unwrap_or_default(),
            p.published_by.clone(),
            p.ranked_count.to_string(),
        ]);
    }
    out.push_str(&text(&table));
    out
}

/// One publication: its title and id, what it holds, when and by whom it was published, and
/// its figures exactly as published: a ranking's rows (movement against the period before,
/// as published), or a block's metric for every agency with the pooled figure. The agencies'
/// freshness then is left out: what matters now is what was published.
pub fn publication_table(publication: &Publication) -> String {
    let mut out = format!("{} ({})\n", publication.title, publication.publication_id);
    let movement = match &publication.ranking {
        Some(ranking) if publication.block_metrics.is_none() => format!(
            ", movement against {}",
            days(ranking.previous_period.as_ref())
        ),
        _ => String::new(),
    };
    let _ = writeln!(out, "{}{movement}", publication_line(publication));
    let _ = writeln!(
        out,
        "{}",
        published_on(publication.published_at.as_ref(), &publication.published_by)
    );
    let provisional =
        "published while its period was still running: its figures were provisional\n";
    if let Some(figures) = &publication.block_metrics {
        if figures.provisional {
            out.push_str(provisional);
        }
        let metric = publication
            .block_metrics_query
            .as_ref()
            .map(|q| q.metric.as_str())
            .unwrap_or_default();
        let figures = GetBlockMetricsResponse {
            agencies: figures
                .agencies
                .iter()
                .map(|a| AgencyMetric {
                    freshness: None,
                    ..a.clone()
                })
                .collect(),
            ..figures.clone()
        };
        out.push_str(&block_metrics_table(metric, &figures));
        return out;
    }
    let ranking = publication.ranking.clone().unwrap_or_default();
    if ranking.provisional {
        out.push_str(provisional);
    }
    let rows: Vec<RankingRow> = ranking
        .rows
        .into_iter()
        .map(|row| RankingRow {
            freshness: None,
            ..row
        })
        .collect();
    out.push_str(&table(&rows, period_movement));
    out
}

/// A row's place and value as the revision log gives them: `3 25.00% (1/4)`, `- no data`;
/// without its place when the publication is of figures, not a ranking (`25.00% (1/4)`).
fn standing_text(row: Option<&RankingRow>, ranked: bool) -> String {
    let Some(row) = row else {
        return if ranked { "not ranked" } else { "not listed" }.to_owned();
    };
    let rank = match row.rank {
        _ if !ranked => String::new(),
        0 => "- ".to_owned(),
        rank => format!("{rank} "),
    };
    let value = match &row.rate {
        Some(rate) => format!(
            "{}% ({}/{})",
            rate.percent, rate.numerator, rate.denominator
        ),
        None if !row.score.is_empty() => row.score.clone(),
        None => "no data".to_owned(),
    };
    format!("{rank}{value}")
}

/// Places gained since publication: `▲1`, `▼2`, `=`.
fn gained_text(places: i32) -> String {
    match places {
        0 => "=".to_owned(),
        gained if gained > 0 => format!("▲{gained}"),
        lost => format!("▼{}", lost.unsigned_abs()),
    }
}

/// One stretch of days behind a revision: `2026-11-10  late data  4 event(s)  received 4→8,
/// received_online 1→5`, with the corrections and withdrawals among its changes when it has
/// any (`1 correction(s)`, `2 withdrawn or returned`).
fn cause_text(cause: &RevisionCause) -> String {
    let kind = if cause.late {
        "late data"
    } else {
        "still running at publication"
    };
    let mut why = format!("{} event(s)", cause.events);
    if cause.withdrawals != 0 {
        let _ = write!(why, ", {} withdrawn or returned", cause.withdrawals);
    }
    if cause.corrections != 0 {
        let _ = write!(why, ", {} correction(s)", cause.corrections);
    }
    format!(
        "{}  {kind}  {why}  {}",
        cause_days(cause),
        cause_counters(cause)
    )
}

/// A publication's revision log: what and when it was published, when it was computed again,
/// how many rows are unchanged (for a block's metrics, whether the agencies together moved);
/// each revised agency's place (in a ranking) and value as published and now, places gained
/// the events counted since (late, or for days still running then) and the corrections that
/// changed its counters; then each agency's causes, stretch by stretch.
pub fn revisions_table(response: &GetRevisionsResponse) -> String {
    let publication = response.publication.clone().unwrap_or_default();
    let mut out = format!(
        "revisions of {} ({}), {}; computed again {}\n",
        publication.title,
        publication.publication_id,
        published_on(publication.published_at.as_ref(), &publication.published_by),
        moment_text(response.revised_at.as_ref())
            .map_or_else(|| "now".to_owned(), |at| format!("on {at}"))
    );
    let _ = writeln!(
        out,
        "{} row(s) revised, {} unchanged",
        response.rows.len(),
        response.unchanged
    );
    let ranked = response.block_metrics_now.is_none();
    if let Some(now) = &response.block_metrics_now {
        let pooled = now.summary.as_ref().and_then(|s| s.pooled.as_ref());
        let _ = writeln!(
            out,
            "the agencies together: {}, now {}",
            if response.summary_revised {
                "revised"
            } else {
                "as published"
            },
            rate_text(pooled)
        );
    }
    if response.rows.is_empty() {
        return out;
    }
    let mut header = vec!["agency", "published", "now"];
    if ranked {
        header.push("move");
    }
    header.extend(["late events", "other events", "corrections"]);
    let right = header.len();
    let mut table = plain_table(header, &[right - 3, right - 2, right - 1]);
    for row in &response.rows {
        let (late, other) = row.causes.iter().fold((0, 0), |(late, other), c| {
            if c.late {
                (late + c.events, other)
            } else {
                (late, other + c.events)
            }
        });
        let corrections: u64 = row.causes.iter().map(|c| c.corrections).sum();
        let mut cells = vec![
            format!("{} ({})", row.agency_name, row.agency_id),
            standing_text(row.published.as_ref(), ranked),
            standing_text(row.now.as_ref(), ranked),
        ];
        if ranked {
            cells.push(gained_text(row.places_gained));
        }
        cells.extend([late.to_string(), other.to_string(), corrections.to_string()]);
        table.add_row(cells);
    }
    out.push_str(&text(&table));
    for row in &response.rows {
        if row.causes.is_empty() {
            let why = if ranked {
                "; it moved because others' did"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{}: none of its own counters changed{why}",
                row.agency_name
            );
            continue;
        }
        let _ = writeln!(out, "{}:", row.agency_name);
        for cause in &row.causes {
            let _ = writeln!(out, "  {}", cause_text(cause));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use govpulse_proto::{
        aggregate::Rate,
        ranking::{
            Heartbeat, RankingChanges, RankingSnapshot, Reset, ResetReason, RowChange,
            SnapshotComplete,
        },
    };

    use super::*;

    fn row(rank: u32, id: &str, n: u64, d: u64) -> RankingRow {
        let percent = format!("{:.2}", n as f64 * 100.0 / d as f64);
        RankingRow {
            below_minimum_volume: false,
            previous_period_rank: 0,
            places_gained: 0,
            rank,
            agency_id: id.into(),
            agency_name: id.to_uppercase(),
            rate: Some(Rate {
                numerator: n,
                denominator: d,
                percent,
            }),
            ..Default::default()
        }
    }

    /// `row` at its new place, ranked `previous_rank` before (0: new to the ranking).
    fn moved(row: RankingRow, previous_rank: u32) -> RowChange {
        RowChange {
            row: Some(row),
            previous_rank,
            left: false,
        }
    }

    fn message(revision: u64, event: Event) -> WatchRankingResponse {
        WatchRankingResponse {
            revision,
            event: Some(event),
        }
    }

    /// The first part of a snapshot at `revision`: its rows, every one ranked.
    fn snapshot_rows(revision: u64, rows: Vec<RankingRow>) -> WatchRankingResponse {
        let ranked_count = u32::try_from(rows.len()).expect("few rows");
        message(
            revision,
            Event::Snapshot(RankingSnapshot {
                rows,
                period: None,
                ranked_count,
                ..Default::default()
            }),
        )
    }

    /// A whole snapshot of `rows` at `revision` applied to `t`.
    fn snapshot(t: &mut LiveTable, revision: u64, rows: Vec<RankingRow>) {
        t.apply(snapshot_rows(revision, rows));
        t.apply(message(
            revision,
            Event::SnapshotComplete(SnapshotComplete {}),
        ));
    }

    #[test]
    fn a_live_table_follows_snapshot_changes_and_departures() {
        let mut t = LiveTable::default();
        t.apply(message(
            1,
            Event::Snapshot(RankingSnapshot {
                rows: vec![row(1, "a", 9, 10), row(2, "b", 5, 10)],
                period: None,
                ranked_count: 3,
                ..Default::default()
            }),
        ));
        t.apply(message(1, Event::SnapshotComplete(SnapshotComplete {})));
        assert!(t.complete);
        t.apply(message(
            2,
            Event::Changes(RankingChanges {
                changes: vec![
                    moved(row(1, "c", 10, 10), 0),
                    moved(row(2, "a", 9, 10), 1),
                    RowChange {
                        row: Some(RankingRow {
                            agency_id: "b".into(),
                            ..Default::default()
                        }),
                        previous_rank: 2,
                        left: true,
                    },
                ],
                ranked_count: 3,
                publication: None,
            }),
        ));
        t.apply(message(2, Event::Heartbeat(Heartbeat {})));
        let ids: Vec<&str> = t.rows().iter().map(|r| r.agency_id.as_str()).collect();
        assert_eq!(ids, ["c", "a"]);
        assert_eq!(t.revision, 2);
        let text = t.render();
        let row = |id: &str| {
            text.lines()
                .find(|l| l.contains(&format!(" {id} ")))
                .unwrap_or("")
        };
        assert!(row("C").contains("new"), "{text}");
        assert!(text.contains("▼1"), "{text}");
        assert!(text.contains("90.00%"), "{text}");
    }

    #[test]
    fn a_stale_agency_says_since_when_and_a_fresh_one_says_nothing() {
        let freshness = |last: Option<i64>, stale: bool| {
            Some(Freshness {
                last_accepted_at: last.map(|seconds| Timestamp { seconds, nanos: 0 }),
                stale,
                ..Freshness::default()
            })
        };
        let rows = [
            RankingRow {
                freshness: freshness(Some(1_764_896_400), false),
                ..row(1, "a", 9, 10)
            },
            RankingRow {
                freshness: freshness(Some(1_764_889_200), true),
                ..row(2, "b", 5, 10)
            },
            RankingRow {
                freshness: freshness(None, true),
                ..row(0, "c", 0, 1)
            },
        ];
        let lines: Vec<String> = table(&rows, |_| String::new())
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(
            lines[1].contains('A') && !lines[1].contains("stale"),
            "{lines:?}"
        );
        assert!(
            lines[2].contains("B (stale: no data since 2025-12-05 06:00:00)"),
            "{lines:?}"
        );
        assert!(lines[3].contains("C (stale: never reported)"), "{lines:?}");
    }

    #[test]
    fn movement_against_the_previous_period_reads_like_the_press() {
        let with = |rank, previous, gained, below| RankingRow {
            rank,
            previous_period_rank: previous,
            places_gained: gained,
            below_minimum_volume: below,
            ..Default::default()
        };
        assert_eq!(period_movement(&with(12, 60, 48, false)), "▲48");
        assert_eq!(period_movement(&with(5, 3, -2, false)), "▼2");
        assert_eq!(period_movement(&with(4, 4, 0, false)), "=");
        assert_eq!(period_movement(&with(7, 0, 0, false)), "new");
        assert_eq!(period_movement(&with(0, 0, 0, true)), "min");
    }

    #[test]
    fn a_composite_ranking_shows_score_grade_and_partial_rows() {
        use govpulse_proto::ranking::IndicatorPoints;
        let indicator = |criterion: &str, points: &str, max: &str| IndicatorPoints {
            criterion: criterion.into(),
            points: points.into(),
            max_points: max.into(),
        };
        let rows = [
            RankingRow {
                rank: 1,
                agency_id: "ha-giang".into(),
                agency_name: "Hà Giang".into(),
                score: "72.50".into(),
                grade: "C".into(),
                indicators: vec![
                    indicator("function", "38.75", "50.00"),
                    indicator("rest", "33.75", "50.00"),
                ],
                previous_period_rank: 3,
                places_gained: 2,
                ..Default::default()
            },
            RankingRow {
                rank: 2,
                agency_id: "cao-bang".into(),
                agency_name: "Cao Bằng".into(),
                score: "50.00".into(),
                grade: "D".into(),
                incomplete: true,
                indicators: vec![
                    indicator("function", "50.00", "50.00"),
                    indicator("rest", "", "50.00"),
                ],
                ..Default::default()
            },
        ];
        let text = table(&rows, period_movement);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("score") && lines[0].ends_with("grade"),
            "{text}"
        );
        assert!(
            lines[1].contains("▲2") && lines[1].contains("72.50"),
            "{text}"
        );
        let bar = |line: &str| line.chars().filter(|c| *c == '█').count();
        assert_eq!(bar(lines[1]), 15, "72.5 of 100 is 15 of 20 blocks: {text}");
        assert!(lines[1].ends_with("  C"), "{text}");
        assert!(lines[2].ends_with("D partial"), "{text}");
    }

    #[test]
    fn a_revision_log_gives_figures_as_published_and_now_and_the_days_behind_them() {
        use govpulse_proto::ranking::{CounterRevision, PublicationSummary, RowRevision};
        let response = GetRevisionsResponse {
            publication: Some(PublicationSummary {
                publication_id: "nov".into(),
                title: "November".into(),
                published_at: Some(Timestamp {
                    seconds: 1_764_896_400,
                    nanos: 0,
                }),
                published_by: "phu-tho".into(),
                ..Default::default()
            }),
            rows: vec![
                RowRevision {
                    agency_id: "b".into(),
                    agency_name: "B".into(),
                    published: Some(row(3, "b", 1, 4)),
                    now: Some(row(1, "b", 9, 10)),
                    places_gained: 2,
                    causes: vec![
                        RevisionCause {
                            first_day: "2025-11-10".into(),
                            last_day: "2025-11-10".into(),
                            late: true,
                            events: 6,
                            counters: vec![CounterRevision {
                                counter: "received".into(),
                                published: 4,
                                now: 10,
                            }],
                            withdrawals: 1,
                            corrections: 2,
                        },
                        RevisionCause {
                            first_day: "2025-12-01".into(),
                            last_day: "2025-12-05".into(),
                            late: false,
                            events: 2,
                            counters: Vec::new(),
                            ..Default::default()
                        },
                    ],
                },
                RowRevision {
                    agency_id: "a".into(),
                    agency_name: "A".into(),
                    published: Some(row(1, "a", 2, 4)),
                    now: Some(row(2, "a", 2, 4)),
                    places_gained: -1,
                    ..Default::default()
                },
            ],
            unchanged: 30,
            ..Default::default()
        };
        let text = revisions_table(&response);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with(
                "revisions of November (nov), published on 2025-12-05 08:00:00 (Vietnam time) by phu-tho; "
            ),
            "{text}"
        );
        assert_eq!(lines[1], "2 row(s) revised, 30 unchanged", "{text}");
        assert!(
            lines[3].contains("B (b)")
                && lines[3].contains("3 25.00% (1/4)")
                && lines[3].contains("1 90.00% (9/10)")
                && lines[3].contains("▲2")
                && lines[3].ends_with("6             2            2"),
            "late and other events apart, and the corrections: {text}"
        );
        assert!(lines[4].contains("▼1"), "{text}");
        assert_eq!(
            lines[6],
            "  2025-11-10  late data  6 event(s), 1 withdrawn or returned, 2 correction(s)  \
             received 4→10"
        );
        assert!(
            lines[7]
                .starts_with("  2025-12-01..2025-12-05  still running at publication  2 event(s)"),
            "{text}"
        );
        assert_eq!(
            lines[8],
            "A: none of its own counters changed; it moved because others' did"
        );
    }

    #[test]
    fn a_second_snapshot_replaces_the_table() {
        let mut t = LiveTable::default();
        snapshot(&mut t, 1, vec![row(1, "a", 1, 2)]);
        t.apply(snapshot_rows(5, vec![row(1, "z", 1, 2)]));
        assert!(!t.complete);
        assert_eq!(t.rows().len(), 1);
        assert_eq!(t.rows()[0].agency_id, "z");
    }

    #[test]
    fn a_table_resumes_from_its_last_revision_only_once_complete() {
        let mut t = LiveTable::default();
        t.apply(snapshot_rows(7, vec![row(1, "a", 1, 2)]));
        assert_eq!(t.resume_revision(), 0, "half a snapshot cannot be resumed");
        t.apply(message(7, Event::SnapshotComplete(SnapshotComplete {})));
        t.apply(message(9, Event::Heartbeat(Heartbeat {})));
        assert_eq!(t.resume_revision(), 9);
    }

    #[test]
    fn a_resumed_stream_applies_its_changes_to_the_table_it_kept() {
        let mut t = LiveTable::default();
        snapshot(&mut t, 7, vec![row(1, "a", 2, 2), row(2, "b", 1, 2)]);
        // A new stream, resumed from 7: no snapshot, one changes message.
        t.apply(message(
            12,
            Event::Changes(RankingChanges {
                changes: vec![moved(row(1, "b", 3, 3), 2), moved(row(2, "a", 2, 2), 1)],
                ranked_count: 2,
                publication: None,
            }),
        ));
        let ids: Vec<&str> = t.rows().iter().map(|r| r.agency_id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert!(t.complete);
        assert_eq!((t.revision, t.resets), (12, 0));
    }

    #[test]
    fn a_reset_rebuilds_the_table_from_the_fresh_snapshot() {
        let mut t = LiveTable::default();
        snapshot(&mut t, 7, vec![row(1, "a", 2, 2), row(2, "b", 1, 2)]);
        t.apply(message(
            3,
            Event::Reset(Reset {
                reason: ResetReason::RevisionUnknown.into(),
                requested_revision: 7,
            }),
        ));
        assert!(!t.complete);
        assert_eq!(t.resume_revision(), 0);
        snapshot(&mut t, 3, vec![row(1, "c", 1, 1)]);
        let ids: Vec<&str> = t.rows().iter().map(|r| r.agency_id.as_str()).collect();
        assert_eq!(ids, ["c"]);
        assert_eq!((t.revision, t.resets), (3, 1));
    }
}
