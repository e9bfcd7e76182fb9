//! Alerts: rules that watch agencies' figures and say, as events arrive, when an agency goes
//! silent, falls under its target, drops sharply on the week before, or sends too many
//! invalid events. Prometheus alerting rules are the model: a rule holds for an agency or
//! not; one that holds is *pending* until it has held for the rule's `for`, then *firing*;
//! one that no longer holds is resolved and forgotten.
//!
//! Everything here is pure: the rules file ([`Rules::parse`]), the one block query each rule
//! needs ([`Rule::query`]), whether a rule holds for an agency given its figures
//! ([`Condition::check`]), and the alerts with their states ([`Book`]). The ranking service
//! gathers the figures from aggregate, calls these, and streams the alerts.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use time::{Date, Duration, OffsetDateTime};

use crate::{
    AgencyId, Block, Catalog, Metric, Period, Rate, compare::Comparison, freshness::Seen,
    period::vietnam_day,
};

/// The kinds of rule, as written in the rules file.
const KINDS: [&str; 4] = ["silent", "below-target", "weekly-drop", "rejected-share"];

/// The most rules a file may hold: each costs one block query per evaluation.
pub const MAX_RULES: usize = 100;

/// The most Vietnam days a rejected-share rule may look back (the stores keep 30 shown).
pub const MAX_DAYS: u8 = 30;

/// How urgent an alert is, for routing (Alertmanager's `severity` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Someone should look this week.
    Warning,
    /// Someone should look now.
    Critical,
}

impl Severity {
    /// As written in the rules file and in labels: `warning`, `critical`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Which agencies a rule watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The top-level agencies of a block (every ministry, or every province).
    Block(Block),
    /// The direct children of an agency (a province's departments and communes).
    ChildrenOf(AgencyId),
}

/// What a rule looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Nothing accepted for the agency (or its units) for longer than `after`. An agency
    /// that never reported is not silent: it is not connected yet, which the freshness of
    /// every figure already shows.
    Silent {
        /// The silence that fires.
        after: Duration,
    },
    /// The metric over `period` is under the agency's target (aggregate's targets, the
    /// same verdict GetBlockMetrics gives).
    BelowTarget {
        /// The metric, which needs a target to apply.
        metric: Metric,
        /// The period, as written in queries (`ytd` by default); relative ones follow the
        /// clock.
        period: String,
        /// Agencies with a smaller denominator are not judged.
        min_volume: u64,
    },
    /// The metric over the last 7 Vietnam days (today included) is at least `points` below
    /// the 7 days before. A rolling week rather than the calendar week, so that a Monday
    /// morning is not compared with a whole week.
    WeeklyDrop {
        /// The metric.
        metric: Metric,
        /// The drop that fires, in hundredths of a percentage point (500: 5 points).
        points: u32,
        /// Both weeks need at least this denominator.
        min_volume: u64,
    },
    /// More than `basis_points` (hundredths of a percent) of the agency's events were
    /// rejected as invalid over the last `days` Vietnam days, today included.
    RejectedShare {
        /// The share that fires, in hundredths of a percent (1000: 10%).
        basis_points: u32,
        /// How many days, today included.
        days: u8,
        /// Agencies with fewer events (accepted and rejected) are not judged.
        min_events: u64,
    },
}

impl Condition {
    /// The rule kind as written in the rules file.
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Silent { .. } => "silent",
            Condition::BelowTarget { .. } => "below-target",
            Condition::WeeklyDrop { .. } => "weekly-drop",
            Condition::RejectedShare { .. } => "rejected-share",
        }
    }
}

/// One rule of the rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique, lowercase letters, digits and dashes: the alert's name.
    pub name: String,
    /// Which agencies.
    pub scope: Scope,
    /// What it looks for.
    pub condition: Condition,
    /// How long the condition must hold before the alert fires (Prometheus's `for`); zero
    /// fires at once.
    pub hold: Duration,
    /// For routing.
    pub severity: Severity,
}

/// The one block query a rule needs (aggregate's GetBlockMetrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The metric.
    pub metric: Metric,
    /// The period.
    pub period: Period,
    /// The period to compare with, if any.
    pub compare_to: Option<Period>,
    /// How many last days of accepted and rejected events to return per agency.
    pub daily_events_days: u8,
}

impl Rule {
    /// What to ask aggregate at `now` to check this rule for every agency of its scope.
    pub fn query(&self, now: OffsetDateTime) -> Query {
        let today = vietnam_day(now);
        let just_today = Period::from_days(today, today);
        // Silence and rejections need no figure of their own: the cheapest metric of one day
        // carries each agency's freshness and daily events.
        let (metric, period, compare_to, daily_events_days) = match &self.condition {
            Condition::Silent { .. } => (Metric::OnlineDossierRate, just_today, None, 0),
            Condition::RejectedShare { days, .. } => {
                (Metric::OnlineDossierRate, just_today, None, *days)
            }
            Condition::BelowTarget { metric, period, .. } => (
                *metric,
                Period::parse(period, today).unwrap_or(just_today),
                None,
                0,
            ),
            Condition::WeeklyDrop { metric, .. } => {
                let week = Period::from_days(today - Duration::days(6), today);
                let before = week.previous();
                (*metric, week, Some(before), 0)
            }
        };
        Query {
            metric,
            period,
            compare_to,
            daily_events_days,
        }
    }
}

/// An agency's standing against its target, as aggregate reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStanding {
    /// The target as published: `70.00`.
    pub percent: String,
    /// Whether the value reaches it; `None` without data.
    pub met: Option<bool>,
}

/// One agency's figures, as a rule's query returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The agency.
    pub agency: AgencyId,
    /// When it last reported.
    pub seen: Seen,
    /// The metric over the query's period; `None` without data.
    pub value: Option<Rate>,
    /// The metric over the period compared with.
    pub base: Option<Rate>,
    /// Its standing against its target, if one applies.
    pub target: Option<TargetStanding>,
    /// Events accepted over the days asked for.
    pub accepted: u64,
    /// Events rejected over the days asked for.
    pub rejected: u64,
}

impl Observation {
    /// An agency with no figure yet.
    pub fn of(agency: AgencyId) -> Self {
        Self {
            agency,
            seen: Seen::default(),
            value: None,
            base: None,
            target: None,
            accepted: 0,
            rejected: 0,
        }
    }
}

/// One figure behind an alert: `value` = `41.20`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Figure {
    /// What it is: `value`, `target`, `denominator`, `last_accepted_at`...
    pub name: &'static str,
    /// As shown.
    pub value: String,
}

/// A rule that holds for an agency: since when, in words and in figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// When the condition began to hold, when the figures say (the end of the allowed
    /// silence); `None` when only "now or earlier" is known.
    pub since: Option<OffsetDateTime>,
    /// One sentence a person can act on.
    pub summary: String,
    /// The figures behind it.
    pub figures: Vec<Figure>,
}

fn figure(name: &'static str, value: impl ToString) -> Figure {
    Figure {
        name,
        value: value.to_string(),
    }
}

/// A moment as people here read it: RFC 3339 in Vietnam time (`2026-12-05T17:00:00+07:00`).
fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(crate::period::VIETNAM);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

fn points_text(hundredths: u32) -> String {
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

impl Condition {
    /// Whether the condition holds for `observation` at `now`, and the figures behind it.
    pub fn check(&self, observation: &Observation, now: OffsetDateTime) -> Option<Finding> {
        match self {
            Condition::Silent { after } => {
                let last = observation.seen.last_accepted?;
                let since = last + *after;
                (now >= since).then(|| Finding {
                    since: Some(since),
                    summary: format!(
                        "nothing accepted since {} ({} of silence allowed)",
                        rfc3339(last),
                        humantime::format_duration(unsigned(*after))
                    ),
                    figures: vec![
                        figure("last_accepted_at", rfc3339(last)),
                        figure("silent_seconds", (now - last).whole_seconds()),
                    ],
                })
            }
            Condition::BelowTarget {
                metric,
                period,
                min_volume,
            } => {
                let value = observation.value?;
                let target = observation.target.as_ref()?;
                (value.denominator() >= *min_volume && target.met == Some(false)).then(|| Finding {
                    since: None,
                    summary: format!(
                        "{metric} over {period} is {}% ({} of {}), under its target of {}%",
                        value.percent(),
                        value.numerator(),
                        value.denominator(),
                        target.percent
                    ),
                    figures: vec![
                        figure("value", value.percent()),
                        figure("target", &target.percent),
                        figure("numerator", value.numerator()),
                        figure("denominator", value.denominator()),
                    ],
                })
            }
            Condition::WeeklyDrop {
                metric,
                points,
                min_volume,
            } => {
                let (value, base) = (observation.value?, observation.base?);
                if value.denominator() < *min_volume || base.denominator() < *min_volume {
                    return None;
                }
                // base − value ≥ points/100 percentage points, exactly:
                // (bn·vd − vn·bd) · 10,000 ≥ points · vd · bd.
                let (vn, vd) = (
                    u128::from(value.numerator()),
                    u128::from(value.denominator()),
                );
                let (bn, bd) = (u128::from(base.numerator()), u128::from(base.denominator()));
                let drop = (bn * vd).checked_sub(vn * bd)?;
                (drop * 10_000 >= u128::from(*points) * vd * bd).then(|| {
                    let change = Comparison {
                        current: value,
                        other: base,
                    }
                    .change_points();
                    Finding {
                        since: None,
                        summary: format!(
                            "{metric} over the last 7 days is {}%, {change} points on the 7 days before ({}%); the rule fires from -{}",
                            value.percent(),
                            base.percent(),
                            points_text(*points)
                        ),
                        figures: vec![
                            figure("value", value.percent()),
                            figure("previous_week", base.percent()),
                            figure("change_points", change),
                            figure("denominator", value.denominator()),
                        ],
                    }
                })
            }
            Condition::RejectedShare {
                basis_points,
                days,
                min_events,
            } => {
                let (rejected, total) = (
                    observation.rejected,
                    observation.accepted + observation.rejected,
                );
                let over =
                    u128::from(rejected) * 10_000 > u128::from(*basis_points) * u128::from(total);
                (total >= *min_events && total > 0 && over).then(|| {
                    let share = Rate::new(rejected, total).map(Rate::percent).unwrap_or_default();
                    Finding {
                        since: None,
                        summary: format!(
                            "{rejected} of {total} events rejected over the last {days} day(s) ({share}%), over {}%",
                            points_text(*basis_points)
                        ),
                        figures: vec![
                            figure("rejected", rejected),
                            figure("events", total),
                            figure("share", share),
                        ],
                    }
                })
            }
        }
    }

    /// When the condition may begin to hold for `observation` with no new figure: the end
    /// of an agency's allowed silence. Other conditions change only with new figures.
    pub fn next_change(
        &self,
        observation: &Observation,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        match self {
            Condition::Silent { after } => observation
                .seen
                .last_accepted
                .map(|last| last + *after)
                .filter(|at| *at > now),
            _ => None,
        }
    }
}

fn unsigned(d: Duration) -> std::time::Duration {
    std::time::Duration::try_from(d).unwrap_or_default()
}

/// Pending until the rule has held for its `for`; firing after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// The condition holds, for less time than the rule's `for`.
    Pending,
    /// The condition has held for the rule's `for`.
    Firing,
}

impl State {
    /// `pending` or `firing`, as Prometheus's `alertstate`.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
        }
    }
}

/// An alert: one rule holding for one agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// The rule's kind (`silent`...).
    pub kind: &'static str,
    /// The rule's severity.
    pub severity: Severity,
    /// The agency.
    pub agency: AgencyId,
    /// Pending or firing.
    pub state: State,
    /// Since when the condition holds.
    pub active_since: OffsetDateTime,
    /// When it began firing; `None` while pending.
    pub firing_since: Option<OffsetDateTime>,
    /// One sentence a person can act on.
    pub summary: String,
    /// The figures behind it, as of the last evaluation.
    pub figures: Vec<Figure>,
}

/// An alert's identity: the rule and the agency.
pub type AlertKey = (String, AgencyId);

/// The alerts in force: what every evaluation updates and subscribers are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    alerts: BTreeMap<AlertKey, Alert>,
}

impl Book {
    /// Applies one evaluation of `rule` at `now` over the agencies of its scope: an agency
    /// for which the rule holds gets (or keeps) its alert, pending until the rule has held
    /// for its `for`; every other alert of the rule is resolved. Returns the earliest
    /// instant at which the rule's alerts may change with no new figure (a pending alert's
    /// `for` ends, an agency's allowed silence ends), if any.
    pub fn apply(
        &mut self,
        rule: &Rule,
        observations: &[Observation],
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let mut holding = BTreeSet::new();
        let mut next: Option<OffsetDateTime> = None;
        let mut sooner = |at: OffsetDateTime| next = Some(next.map_or(at, |n| n.min(at)));
        for observation in observations {
            if let Some(at) = rule.condition.next_change(observation, now) {
                sooner(at);
            }
            let Some(finding) = rule.condition.check(observation, now) else {
                continue;
            };
            let key = (rule.name.clone(), observation.agency.clone());
            holding.insert(observation.agency.clone());
            let active_since = match self.alerts.get(&key) {
                Some(existing) => existing.active_since,
                None => finding.since.map_or(now, |since| since.min(now)),
            };
            let fires_at = active_since + rule.hold;
            let (state, firing_since) = if now >= fires_at {
                let since = self
                    .alerts
                    .get(&key)
                    .and_then(|a| a.firing_since)
                    .unwrap_or(fires_at);
                (State::Firing, Some(since))
            } else {
                sooner(fires_at);
                (State::Pending, None)
            };
            self.alerts.insert(
                key,
                Alert {
                    rule: rule.name.clone(),
                    kind: rule.condition.kind(),
                    severity: rule.severity,
                    agency: observation.agency.clone(),
                    state,
                    active_since,
                    firing_since,
                    summary: finding.summary,
                    figures: finding.figures,
                },
            );
        }
        self.alerts
            .retain(|(name, agency), _| name != &rule.name || holding.contains(agency));
        next
    }

    /// Resolves the alerts of rules no longer in `rules` (a reloaded file dropped them).
    pub fn keep_rules(&mut self, rules: &Rules) {
        let names: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        self.alerts
            .retain(|(name, _), _| names.contains(name.as_str()));
    }

    /// The alerts, by rule name then agency.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// How many alerts there are.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// The alert of `rule` for `agency`, if any.
    pub fn get(&self, rule: &str, agency: &AgencyId) -> Option<&Alert> {
        self.alerts.get(&(rule.to_owned(), agency.clone()))
    }
}

/// How one alert changed between two books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertChange {
    /// New, or its state or figures changed: the alert as it is now.
    Active(Alert),
    /// It no longer holds: the alert as it last was.
    Resolved(Alert),
}

/// What changed from `before` to `after`: new and changed alerts, then resolved ones, each
/// by rule name then agency.
pub fn changes(before: &Book, after: &Book) -> Vec<AlertChange> {
    let mut changes: Vec<AlertChange> = after
        .alerts
        .iter()
        .filter(|(key, alert)| before.alerts.get(*key) != Some(alert))
        .map(|(_, alert)| AlertChange::Active(alert.clone()))
        .collect();
    changes.extend(
        before
            .alerts
            .iter()
            .filter(|(key, _)| !after.alerts.contains_key(*key))
            .map(|(_, alert)| AlertChange::Resolved(alert.clone())),
    );
    changes
}

/// Every rule of a rules file, checked against the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// Why a rules file is refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("alert rules file: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("rules[{index}].{field}: {reason}")]
    Rule {
        index: usize,
        field: &'static str,
        reason: String,
    },
    #[error("at most {MAX_RULES} rules; the file has {0}")]
    TooMany(usize),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rules: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    name: String,
    kind: String,
    block: Option<String>,
    parent: Option<String>,
    #[serde(rename = "for")]
    hold: Option<String>,
    severity: Option<String>,
    after: Option<String>,
    metric: Option<String>,
    period: Option<String>,
    min_volume: Option<u64>,
    points: Option<f64>,
    percent: Option<f64>,
    days: Option<u8>,
    min_events: Option<u64>,
}

/// Hundredths of a number of percent (or points) between 0 and 100 given with at most two
/// decimals.
fn hundredths(raw: f64) -> Result<u32, String> {
    if !(0.0..=100.0).contains(&raw) {
        return Err(format!("{raw} is not between 0 and 100"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((raw * 100.0).round() as u32)
}

fn duration(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw)
        .map_err(|e| format!("{raw:?} is not a duration ({e}); write 90s, 15m, 2h or 1d"))?;
    Duration::try_from(d).map_err(|e| format!("{raw:?}: {e}"))
}

impl Row {
    fn check(self, index: usize, catalog: &Catalog, today: Date) -> Result<Rule, RulesError> {
        let bad = |field: &'static str, reason: String| RulesError::Rule {
            index,
            field,
            reason,
        };
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(
                "name",
                format!(
                    "{:?}: 1 to 64 lowercase letters, digits and dashes",
                    self.name
                ),
            ));
        }
        let scope = match (self.block.as_deref(), self.parent.as_deref()) {
            (Some(b), None) => Scope::Block(Block::parse(b).ok_or_else(|| {
                bad(
                    "block",
                    format!("{b:?} is not a block; use ministry or province"),
                )
            })?),
            (None, Some(p)) => Scope::ChildrenOf(
                catalog
                    .agency_by_str(p)
                    .map(|a| a.id.clone())
                    .ok_or_else(|| bad("parent", format!("unknown agency {p:?}")))?,
            ),
            _ => {
                return Err(bad(
                    "block",
                    "set exactly one of block (its top-level agencies) and parent (its children)"
                        .to_owned(),
                ));
            }
        };
        let hold = self
            .hold
            .as_deref()
            .map(duration)
            .transpose()
            .map_err(|e| bad("for", e))?
            .unwrap_or(Duration::ZERO);
        let severity = match self.severity.as_deref() {
            None | Some("warning") => Severity::Warning,
            Some("critical") => Severity::Critical,
            Some(other) => {
                return Err(bad(
                    "severity",
                    format!("{other:?}: use warning or critical"),
                ));
            }
        };
        // The two metric kinds read the same two fields: the metric they watch (required:
        // unlike the period, it has no default) and the smallest volume they judge.
        let watched = || -> Result<(Metric, u64), RulesError> {
            let metric = self
                .metric
                .as_deref()
                .ok_or_else(|| bad("metric", "required for this kind".to_owned()))?
                .parse::<Metric>()
                .map_err(|e| bad("metric", e.to_string()))?;
            Ok((metric, self.min_volume.unwrap_or(0)))
        };
        // A drop's points and a share's percent: what their kind is about, so never defaulted.
        let required_hundredths = |field: &'static str, value: Option<f64>| {
            let raw =
                value.ok_or_else(|| bad(field, format!("required for {} rules", self.kind)))?;
            hundredths(raw).map_err(|e| bad(field, e))
        };
        // Fields a kind does not read are refused: a rule that says more than it does
        // misleads whoever reads the file.
        let read_by: [(&'static str, bool, &[&str]); 8] = [
            ("after", self.after.is_some(), &["silent"]),
            (
                "metric",
                self.metric.is_some(),
                &["below-target", "weekly-drop"],
            ),
            ("period", self.period.is_some(), &["below-target"]),
            (
                "min_volume",
                self.min_volume.is_some(),
                &["below-target", "weekly-drop"],
            ),
            ("points", self.points.is_some(), &["weekly-drop"]),
            ("percent", self.percent.is_some(), &["rejected-share"]),
            ("days", self.days.is_some(), &["rejected-share"]),
            ("min_events", self.min_events.is_some(), &["rejected-share"]),
        ];
        if KINDS.contains(&self.kind.as_str()) {
            for (field, present, kinds) in read_by {
                if present && !kinds.contains(&self.kind.as_str()) {
                    return Err(bad(
                        field,
                        format!("only for {} rules", kinds.join(" and ")),
                    ));
                }
            }
        }
        let condition = match self.kind.as_str() {
            "silent" => {
                let after = self
                    .after
                    .as_deref()
                    .ok_or_else(|| bad("after", "required for silent rules".to_owned()))
                    .and_then(|raw| duration(raw).map_err(|e| bad("after", e)))?;
                if after <= Duration::ZERO {
                    return Err(bad("after", "must be more than zero".to_owned()));
                }
                Condition::Silent { after }
            }
            "below-target" => {
                let period = self.period.clone().unwrap_or_else(|| "ytd".to_owned());
                Period::parse(&period, today).map_err(|e| bad("period", e.to_string()))?;
                let (metric, min_volume) = watched()?;
                Condition::BelowTarget {
                    metric,
                    period,
                    min_volume,
                }
            }
            "weekly-drop" => {
                let points = required_hundredths("points", self.points)?;
                if points == 0 {
                    return Err(bad("points", "must be more than zero".to_owned()));
                }
                let (metric, min_volume) = watched()?;
                Condition::WeeklyDrop {
                    metric,
                    points,
                    min_volume,
                }
            }
            "rejected-share" => {
                let basis_points = required_hundredths("percent", self.percent)?;
                let days = self.days.unwrap_or(1);
                if !(1..=MAX_DAYS).contains(&days) {
                    return Err(bad("days", format!("{days}: from 1 to {MAX_DAYS}")));
                }
                Condition::RejectedShare {
                    basis_points,
                    days,
                    min_events: self.min_events.unwrap_or(1),
                }
            }
            other => {
                return Err(bad(
                    "kind",
                    format!("{other:?}: use silent, below-target, weekly-drop or rejected-share"),
                ));
            }
        };
        Ok(Rule {
            name: self.name,
            scope,
            condition,
            hold,
            severity,
        })
    }
}

impl Rules {
    /// Parses a TOML rules file (see `deploy/config/alerts.toml`), checking every agency,
    /// block, metric and period against `catalog` and `today`; the first fault is named by
    /// rule and field.
    pub fn parse(text: &str, catalog: &Catalog, today: Date) -> Result<Rules, RulesError> {
        let file: File = toml::from_str(text)?;
        if file.rules.len() > MAX_RULES {
            return Err(RulesError::TooMany(file.rules.len()));
        }
        let mut names = BTreeSet::new();
        let mut rules = Vec::with_capacity(file.rules.len());
        for (index, row) in file.rules.into_iter().enumerate() {
            let rule = row.check(index, catalog, today)?;
            if !names.insert(rule.name.clone()) {
                return Err(RulesError::Rule {
                    index,
                    field: "name",
                    reason: format!("{:?} names an earlier rule too", rule.name),
                });
            }
            rules.push(rule);
        }
        Ok(Rules { rules })
    }

    /// The rules, in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::testing::{Table, catalog_of, id as agency};

    fn catalog() -> Catalog {
        catalog_of(&[
            (Table::Provinces, "code,id,name\n17,hoa-binh,Hòa Bình\n"),
            (Table::Ministries, "id,name_en\nmof,Finance\n"),
        ])
    }

    fn rule(condition: Condition, hold: Duration) -> Rule {
        Rule {
            name: "r".to_owned(),
            scope: Scope::Block(Block::Province),
            condition,
            hold,
            severity: Severity::Warning,
        }
    }

    fn observed(id: &str) -> Observation {
        Observation::of(agency(id))
    }

    /// A silent rule that allows `after` of silence and fires at once.
    fn silent_rule(after: Duration) -> Rule {
        rule(Condition::Silent { after }, Duration::ZERO)
    }

    /// Agency `id`, which last had an event accepted `ago` before [`NOW`].
    fn heard(id: &str, ago: Duration) -> Observation {
        let mut o = observed(id);
        o.seen.last_accepted = Some(NOW - ago);
        o
    }

    const NOW: OffsetDateTime = datetime!(2026-12-05 10:00 UTC);

    #[test]
    fn silence_fires_at_the_end_of_the_allowed_silence_and_says_when() {
        let silent = silent_rule(Duration::hours(2));
        let quiet = heard("a", Duration::hours(3));
        let recent = heard("b", Duration::minutes(30));
        let never = observed("c");
        let mut book = Book::default();
        let next = book.apply(&silent, &[quiet, recent, never], NOW);
        let alert = book.get("r", &agency("a")).expect("a is silent");
        assert_eq!(alert.state, State::Firing);
        assert_eq!(alert.active_since, NOW - Duration::hours(1));
        assert!(book.get("r", &agency("b")).is_none());
        assert!(book.get("r", &agency("c")).is_none(), "never reported");
        assert_eq!(
            next,
            Some(NOW + Duration::minutes(90)),
            "b turns silent then"
        );
    }

    #[test]
    fn an_alert_is_pending_for_its_hold_then_fires_then_resolves() {
        let drop = rule(
            Condition::RejectedShare {
                basis_points: 1_000,
                days: 1,
                min_events: 10,
            },
            Duration::minutes(5),
        );
        let mut bad = observed("a");
        bad.accepted = 80;
        bad.rejected = 20;
        let mut book = Book::default();
        let next = book.apply(&drop, std::slice::from_ref(&bad), NOW);
        assert_eq!(
            book.get("r", &agency("a")).map(|a| a.state),
            Some(State::Pending)
        );
        assert_eq!(next, Some(NOW + Duration::minutes(5)));
        let later = NOW + Duration::minutes(5);
        assert_eq!(book.apply(&drop, std::slice::from_ref(&bad), later), None);
        let alert = book.get("r", &agency("a")).expect("still active");
        assert_eq!(
            (alert.state, alert.active_since, alert.firing_since),
            (State::Firing, NOW, Some(later))
        );
        let before = book.clone();
        bad.rejected = 5;
        book.apply(&drop, &[bad], later + Duration::minutes(1));
        assert!(book.is_empty());
        assert!(matches!(
            changes(&before, &book).as_slice(),
            [AlertChange::Resolved(a)] if a.agency == agency("a")
        ));
    }

    #[test]
    fn rejected_share_needs_more_than_the_share_and_enough_events() {
        let share = Condition::RejectedShare {
            basis_points: 1_000,
            days: 1,
            min_events: 10,
        };
        let mut o = observed("a");
        (o.accepted, o.rejected) = (90, 10);
        assert!(
            share.check(&o, NOW).is_none(),
            "exactly 10% is not over 10%"
        );
        (o.accepted, o.rejected) = (89, 11);
        let finding = share.check(&o, NOW).expect("11% is over");
        assert!(finding.figures.contains(&figure("share", "11.00")));
        (o.accepted, o.rejected) = (4, 5);
        assert!(share.check(&o, NOW).is_none(), "9 events: too few to judge");
    }

    #[test]
    fn a_weekly_drop_is_exact_and_needs_volume_in_both_weeks() {
        let drop = Condition::WeeklyDrop {
            metric: Metric::OnlineDossierRate,
            points: 500,
            min_volume: 30,
        };
        let mut o = observed("a");
        o.base = Rate::new(60, 100);
        o.value = Rate::new(55, 100);
        let finding = drop.check(&o, NOW).expect("exactly 5 points down fires");
        assert!(finding.figures.contains(&figure("change_points", "-5.00")));
        o.value = Rate::new(5_501, 10_000);
        assert!(drop.check(&o, NOW).is_none(), "4.99 points down does not");
        o.value = Rate::new(1, 20);
        assert!(
            drop.check(&o, NOW).is_none(),
            "20 dossiers this week: too few"
        );
        o.value = Rate::new(90, 100);
        assert!(drop.check(&o, NOW).is_none(), "a rise");
    }

    #[test]
    fn below_target_follows_the_verdict_given_and_the_volume() {
        let below = Condition::BelowTarget {
            metric: Metric::FullOnlineDossierRate,
            period: "ytd".to_owned(),
            min_volume: 30,
        };
        let mut o = observed("a");
        o.value = Rate::new(20, 100);
        assert!(below.check(&o, NOW).is_none(), "no target applies");
        o.target = Some(TargetStanding {
            percent: "30.00".to_owned(),
            met: Some(false),
        });
        let finding = below.check(&o, NOW).expect("under its target");
        assert!(finding.summary.contains("20.00%"), "{}", finding.summary);
        o.target = Some(TargetStanding {
            percent: "30.00".to_owned(),
            met: Some(true),
        });
        assert!(below.check(&o, NOW).is_none());
        o.value = Rate::new(2, 10);
        o.target = Some(TargetStanding {
            percent: "30.00".to_owned(),
            met: Some(false),
        });
        assert!(below.check(&o, NOW).is_none(), "10 dossiers: too few");
    }

    #[test]
    fn rules_of_a_dropped_rule_resolve() {
        let silent = silent_rule(Duration::hours(1));
        let quiet = heard("a", Duration::hours(3));
        let mut book = Book::default();
        book.apply(&silent, &[quiet], NOW);
        assert_eq!(book.len(), 1);
        book.keep_rules(&Rules::default());
        assert!(book.is_empty());
    }

    #[test]
    fn the_shipped_rules_file_parses() {
        let text = include_str!("../../../deploy/config/alerts.toml");
        let rules = Rules::parse(text, &catalog(), NOW.date()).expect("valid");
        assert!(rules.len() >= 4);
        let kinds: BTreeSet<&str> = rules.iter().map(|r| r.condition.kind()).collect();
        assert_eq!(kinds.len(), 4, "one example of each kind");
    }

    #[test]
    fn a_broken_rule_is_named_by_index_and_field() {
        let refused = |text: &str| {
            Rules::parse(text, &catalog(), NOW.date())
                .expect_err("refused")
                .to_string()
        };
        let head = "[[rules]]\nname = \"a\"\nblock = \"province\"\n";
        assert_eq!(
            refused(&format!("{head}kind = \"silent\"\n")),
            "rules[0].after: required for silent rules"
        );
        assert_eq!(
            refused(&format!("{head}kind = \"silent\"\nafter = \"soon\"\n")),
            "rules[0].after: \"soon\" is not a duration (expected number at 0); write 90s, 15m, 2h or 1d"
        );
        assert_eq!(
            refused(&format!(
                "{head}kind = \"silent\"\nafter = \"2h\"\npoints = 3\n"
            )),
            "rules[0].points: only for weekly-drop rules"
        );
        assert_eq!(
            refused(&format!(
                "{head}kind = \"weekly-drop\"\nmetric = \"nope\"\npoints = 3\n"
            )),
            format!(
                "rules[0].metric: {}",
                "nope".parse::<Metric>().expect_err("unknown")
            )
        );
        assert_eq!(
            refused(&format!("{head}kind = \"below-target\"\n")),
            "rules[0].metric: required for this kind"
        );
        assert_eq!(
            refused(&format!(
                "{head}kind = \"rejected-share\"\npercent = 10\ndays = 31\n"
            )),
            "rules[0].days: 31: from 1 to 30"
        );
        assert_eq!(
            refused(&format!(
                "{head}kind = \"silent\"\nafter = \"2h\"\n{head}kind = \"silent\"\nafter = \"1h\"\n"
            )),
            "rules[1].name: \"a\" names an earlier rule too"
        );
        assert_eq!(
            refused(
                "[[rules]]\nname = \"a\"\nkind = \"silent\"\nafter = \"2h\"\nparent = \"atlantis\"\n"
            ),
            "rules[0].parent: unknown agency \"atlantis\""
        );
    }
}
