//! The alerts of this replica: the rules of `--alert-rules` evaluated as aggregate reports
//! changes (debounced), when a pending alert's `for` or an agency's allowed silence ends,
//! when the rules file changes, and every refresh in any case. Each evaluation asks
//! aggregate one GetBlockMetrics per rule ([`Rule::query`]) and applies core's rules
//! ([`Book::apply`]); what changed is published, like a live ranking, through a `watch`
//! channel with a bounded history that a reconnecting WatchAlerts client resumes from, and
//! exported to Prometheus (`govpulse_alert_active`).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use govpulse_core::{
    AgencyId, Catalog, Rate,
    alerts::{Alert, AlertChange, Book, Observation, Rule, Scope, State, TargetStanding},
    notice::ChangeNotice,
};
use govpulse_edge::convert::{block_to_proto, freshness_from_proto, moment_to_proto};
use govpulse_proto::{
    aggregate::{
        GetBlockMetricsRequest, aggregate_service_client::AggregateServiceClient,
        get_block_metrics_request::Scope as PbScope,
    },
    ranking as pb,
};
use govpulse_runtime::{alerts_file::LiveAlertRules, prometheus::ALERT_ACTIVE};
use time::OffsetDateTime;
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::{debug, warn};

use crate::{
    error::Error,
    hub::Resumable,
    resume::{self, Digest, Start},
};

/// One published state of the alerts.
#[derive(Debug)]
pub struct AlertsState {
    /// Names this state, as a live ranking's revisions ([`resume::next_revision`]).
    pub revision: u64,
    /// The revision of the state published just before (0 for the first).
    pub previous_revision: u64,
    /// The alerts.
    pub book: Book,
    /// The rules in force.
    pub rules: RulesStatus,
}

/// How many rules are in force, and why the rules file's latest version was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesStatus {
    /// Rules in force.
    pub count: usize,
    /// Why the latest version of the file was refused; `None` when it is in force.
    pub refused: Option<String>,
}

impl RulesStatus {
    fn of(rules: &LiveAlertRules) -> Self {
        Self {
            count: rules.get().len(),
            refused: rules.refusal(),
        }
    }

    /// As the wire shows it.
    pub fn to_proto(&self) -> pb::AlertRulesStatus {
        pb::AlertRulesStatus {
            count: u32::try_from(self.count).unwrap_or(u32::MAX),
            refused: self.refused.clone().unwrap_or_default(),
        }
    }
}

/// When the alerts are evaluated.
#[derive(Debug, Clone, Copy)]
pub struct AlertTiming {
    /// How long to gather change notices before evaluating.
    pub debounce: Duration,
    /// How often to evaluate with no notice.
    pub refresh: Duration,
}

/// The alerts of this replica: shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    states: Resumable<AlertsState>,
    rules: LiveAlertRules,
    /// When every rule was last evaluated.
    evaluated_at: Mutex<Option<OffsetDateTime>>,
}

/// A new WatchAlerts stream's start: its receiver (the current state marked as seen), the
/// current state, and snapshot, resume or reset.
pub type AlertsSubscription = (
    watch::Receiver<Arc<AlertsState>>,
    Arc<AlertsState>,
    Start<AlertsState>,
);

/// A digest of everything a subscriber is shown of `book` and `rules`.
fn digest(book: &Book, rules: &RulesStatus) -> u64 {
    let start = Digest::default()
        .text("alerts")
        .number(rules.count as u64)
        .text(rules.refused.as_deref().unwrap_or_default());
    book.alerts()
        .fold(start, |d, a| {
            a.figures.iter().fold(
                d.text(&a.rule)
                    .text(a.agency.as_ref())
                    .text(a.state.name())
                    .text(&a.summary)
                    .number(seconds(a.active_since))
                    .number(a.firing_since.map_or(0, seconds)),
                |d, f| d.text(f.name).text(&f.value),
            )
        })
        .finish()
}

fn seconds(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp()).unwrap_or(0)
}

fn now_ms() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

impl Alerts {
    /// No alert yet, under `rules`.
    pub fn new(rules: LiveAlertRules) -> Self {
        let book = Book::default();
        let status = RulesStatus::of(&rules);
        let first = Arc::new(AlertsState {
            revision: resume::next_revision(0, now_ms(), digest(&book, &status)),
            previous_revision: 0,
            book,
            rules: status,
        });
        Self {
            inner: Arc::new(Inner {
                states: Resumable::new(first.revision, first, 0),
                rules,
                evaluated_at: Mutex::default(),
            }),
        }
    }

    /// The alerts now.
    pub fn current(&self) -> Arc<AlertsState> {
        self.inner.states.current()
    }

    /// When the rules were all last evaluated.
    pub fn evaluated_at(&self) -> Option<OffsetDateTime> {
        *self
            .inner
            .evaluated_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A new subscriber, resuming from `resume_revision` if this replica still keeps it
    /// (0: a snapshot).
    pub fn subscribe(&self, resume_revision: u64) -> AlertsSubscription {
        self.inner.states.subscribe(resume_revision)
    }

    /// Publishes `book` and `rules` under the next revision when they differ from the
    /// current state, and sets the Prometheus series of the alerts that changed.
    fn publish(&self, book: Book, rules: RulesStatus) {
        self.inner.states.publish(|current| {
            let changes = govpulse_core::alerts::changes(&current.book, &book);
            if changes.is_empty() && current.rules == rules {
                return None;
            }
            export(&changes);
            let rows = book.len();
            let next = Arc::new(AlertsState {
                revision: resume::next_revision(current.revision, now_ms(), digest(&book, &rules)),
                previous_revision: current.revision,
                book,
                rules,
            });
            Some((next.revision, next, rows))
        });
    }

    /// Evaluates the rules until `stopping` is cancelled: on change notices (gathered for
    /// `timing.debounce`), when an alert may change with time, when the rules file changes,
    /// and every `timing.refresh`.
    pub async fn run(
        self,
        aggregate: AggregateServiceClient<Channel>,
        notices: broadcast::Sender<ChangeNotice>,
        timing: AlertTiming,
        stopping: CancellationToken,
    ) {
        let mut notices = notices.subscribe();
        let mut versions = self.inner.rules.versions_read();
        let mut refresh = tokio::time::interval(timing.refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far = || Instant::now() + Duration::from_secs(86_400);
        let mut due: Option<Instant> = None;
        let mut wake: Option<Instant> = None;
        // Whether the rules file is followed (built-in rules never change).
        let mut following = true;
        loop {
            tokio::select! {
                () = stopping.cancelled() => return,
                notice = notices.recv() => {
                    // A lagging receiver missed notices: evaluating covers them all.
                    if let Err(broadcast::error::RecvError::Closed) = notice {
                        return;
                    }
                    if due.is_none() {
                        due = Some(Instant::now() + timing.debounce);
                    }
                    continue;
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(far)), if due.is_some() => {}
                () = tokio::time::sleep_until(wake.unwrap_or_else(far)), if wake.is_some() => {}
                // A new version of the rules file, taken or refused.
                changed = versions.changed(), if following => {
                    if changed.is_err() {
                        following = false;
                        continue;
                    }
                }
                _ = refresh.tick() => {}
            }
            due = None;
            wake = self.evaluate(&aggregate).await;
        }
    }

    /// Evaluates every rule once and publishes the result; returns when to evaluate again
    /// with no new notice (a pending alert's `for` ends, an agency's silence runs out).
    pub async fn evaluate(&self, aggregate: &AggregateServiceClient<Channel>) -> Option<Instant> {
        let status = RulesStatus::of(&self.inner.rules);
        let rules = self.inner.rules.get();
        let now = OffsetDateTime::now_utc();
        let mut book = self.current().book.clone();
        book.keep_rules(&rules);
        let mut next: Option<OffsetDateTime> = None;
        let mut all_evaluated = true;
        for rule in rules.iter() {
            match observe(aggregate, rule, now).await {
                Ok(observations) => {
                    if let Some(at) = book.apply(rule, &observations, now) {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
                // The rule's alerts stay as they were: an unreachable aggregate resolves
                // nothing. The refresh tick tries again.
                Err(error) => {
                    all_evaluated = false;
                    warn!(rule = %rule.name, %error, "alert rule not evaluated");
                }
            }
        }
        self.publish(book, status);
        if all_evaluated {
            *self
                .inner
                .evaluated_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(now);
        }
        debug!(rules = rules.len(), "alert rules evaluated");
        next.map(|at| {
            let after = Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or_default();
            // Past the moment on this clock, by a margin: aggregate's clock may lag a little.
            Instant::now() + after + Duration::from_millis(50)
        })
    }
}

/// Sets the Prometheus series of the alerts that changed.
fn export(changes: &[AlertChange]) {
    for change in changes {
        let (alert, state) = match change {
            AlertChange::Active(alert) => (alert, Some(alert.state)),
            AlertChange::Resolved(alert) => (alert, None),
        };
        for s in [State::Pending, State::Firing] {
            metrics::gauge!(
                ALERT_ACTIVE,
                "rule" => alert.rule.clone(),
                "agency" => alert.agency.to_string(),
                "severity" => alert.severity.name(),
                "state" => s.name(),
            )
            .set(if state == Some(s) { 1.0 } else { 0.0 });
        }
    }
}

/// The figures of every agency of `rule`'s scope, from one GetBlockMetrics.
async fn observe(
    aggregate: &AggregateServiceClient<Channel>,
    rule: &Rule,
    now: OffsetDateTime,
) -> Result<Vec<Observation>, Error> {
    let query = rule.query(now);
    let scope = match &rule.scope {
        Scope::Block(block) => PbScope::Block(block_to_proto(*block).into()),
        Scope::ChildrenOf(parent) => PbScope::ParentId(parent.to_string()),
    };
    let request = GetBlockMetricsRequest {
        scope: Some(scope),
        metric: query.metric.name().to_owned(),
        period: query.period.expression().to_owned(),
        compare_to: query
            .compare_to
            .as_ref()
            .map(|p| p.expression().to_owned())
            .unwrap_or_default(),
        daily_events_days: u32::from(query.daily_events_days),
    };
    let response = aggregate
        .clone()
        .get_block_metrics(request)
        .await
        .map_err(Error::Aggregate)?
        .into_inner();
    response
        .agencies
        .iter()
        .map(|entry| {
            let agency = AgencyId::parse(&entry.agency_id)
                .map_err(|e| Error::BadAnswer(format!("agency {:?}: {e}", entry.agency_id)))?;
            let rate = |r: Option<&govpulse_proto::aggregate::Rate>| {
                r.and_then(|r| Rate::new(r.numerator, r.denominator))
            };
            let seen = match &entry.freshness {
                Some(f) => {
                    freshness_from_proto(f)
                        .map_err(|e| Error::BadAnswer(format!("freshness of {agency}: {e}")))?
                        .seen
                }
                None => Default::default(),
            };
            Ok(Observation {
                seen,
                value: rate(entry.rate.as_ref()),
                base: rate(entry.base.as_ref()),
                target: entry.target.as_ref().map(|t| TargetStanding {
                    percent: t.target_percent.clone(),
                    met: t.met,
                }),
                accepted: entry.daily_events.iter().map(|d| d.accepted).sum(),
                rejected: entry.daily_events.iter().map(|d| d.rejected).sum(),
                agency,
            })
        })
        .collect()
}

/// An alert as the wire shows it.
pub fn alert_to_proto(catalog: &Catalog, alert: &Alert) -> pb::Alert {
    pb::Alert {
        rule: alert.rule.clone(),
        kind: alert.kind.to_owned(),
        severity: alert.severity.name().to_owned(),
        agency_id: alert.agency.to_string(),
        agency_name: catalog
            .agency(&alert.agency)
            .map(|a| a.name.clone())
            .unwrap_or_default(),
        state: match alert.state {
            State::Pending => pb::AlertState::Pending,
            State::Firing => pb::AlertState::Firing,
        }
        .into(),
        active_since: moment_to_proto(Some(alert.active_since)),
        firing_since: moment_to_proto(alert.firing_since),
        summary: alert.summary.clone(),
        figures: alert
            .figures
            .iter()
            .map(|f| pb::AlertFigure {
                name: f.name.to_owned(),
                value: f.value.clone(),
            })
            .collect(),
    }
}

/// The changes message from state `shown` to state `now`; `None` when nothing changed.
pub fn changes_message(
    catalog: &Catalog,
    shown: &AlertsState,
    now: &AlertsState,
) -> Option<pb::WatchAlertsResponse> {
    let changes: Vec<pb::AlertChange> = govpulse_core::alerts::changes(&shown.book, &now.book)
        .iter()
        .map(|change| match change {
            AlertChange::Active(alert) => pb::AlertChange {
                alert: Some(alert_to_proto(catalog, alert)),
                resolved: false,
            },
            AlertChange::Resolved(alert) => pb::AlertChange {
                alert: Some(alert_to_proto(catalog, alert)),
                resolved: true,
            },
        })
        .collect();
    let rules = (shown.rules != now.rules).then(|| now.rules.to_proto());
    if changes.is_empty() && rules.is_none() {
        return None;
    }
    Some(pb::WatchAlertsResponse {
        revision: now.revision,
        event: Some(pb::watch_alerts_response::Event::Changes(
            pb::AlertChanges { changes, rules },
        )),
    })
}
