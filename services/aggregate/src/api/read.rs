//! The read handlers, each decode → plan (core) → read (store) → report (core) → encode,
//! with one clock reading per request ([`Horizon`]).

use std::slice;

use futures::future::try_join_all;
use govpulse_core::{
    Agency, AgencyId, Counters, Metric, Needs, Period, Rate, backlog,
    compare::Comparison,
    freshness::{DailyEvents, Freshness, RECENT_DAYS, recent_days},
    index::hundredths_text,
    metric::UnknownMetric,
    reading::{Horizon, Plan, Question, Read, Source, plan},
    report::{self, Periods, Scope},
    summary::{self, mean_text},
    targets::Verdict,
};
use govpulse_edge::convert::{
    InvalidField, agency_to_proto, block_from_proto, counters_to_proto, daily_events_to_proto,
    freshness_to_proto, period_to_proto, rate_to_proto,
};
use govpulse_proto::aggregate::{
    AgencyCounters, AgencyMetric, AssessedPoints, Change, GetBlockMetricsRequest,
    GetBlockMetricsResponse, GetBlockSnapshotRequest, GetBlockSnapshotResponse, GetMetricsRequest,
    GetMetricsResponse, MetricReport, Summary, TargetStanding, get_block_metrics_request,
};
use govpulse_store::{AgencyKey, AssessedRead, Children, ChildrenRead, GroupsRead, StoreError};
use time::{Date, OffsetDateTime};

use super::AggregateApi;
use crate::Error;

impl AggregateApi {
    /// One agency's report: the body of GetMetrics.
    pub async fn metrics(&self, request: GetMetricsRequest) -> Result<GetMetricsResponse, Error> {
        let horizon = self.horizon();
        let agency = self.agency("agency_id", &request.agency_id)?;
        let period = parse_period("period", &request.period, &horizon)?;
        let metrics: Vec<Metric> = if request.metrics.is_empty() {
            Metric::ALL.to_vec()
        } else {
            parse_metrics(&request.metrics)?
        };
        let base = base_period(&request.compare_to, &period, &horizon)?;
        let (last_year, previous) = (period.same_period_last_year(), period.previous());
        let today = Period::from_days(horizon.today, horizon.today);
        // The agency as it is now: over any period, with every agency it absorbed since.
        let agencies = slice::from_ref(&agency.id);
        let (everything, backlog) = (Needs::everything(), backlog_needs());
        let mut reads = vec![
            (&today, &backlog),
            (&period, &everything),
            (&last_year, &everything),
            (&previous, &everything),
        ];
        reads.extend(base.iter().map(|base| (base, &everything)));
        let questions: Vec<Question> = reads
            .into_iter()
            .map(|(period, needs)| Question {
                agencies,
                parent: None,
                period,
                as_of: Date::MAX,
                needs,
            })
            .collect();
        let recent = recent_days(horizon.today, RECENT_DAYS);
        let (counted, mut activity) = futures::try_join!(
            self.counters(&horizon, &questions),
            self.activity(&horizon, agencies, &recent)
        )?;
        let (freshness, recent) = activity
            .pop()
            .ok_or_else(|| Error::Store(StoreError::Unexpected("no activity read".to_owned())))?;
        let counted_over = |i: usize| questions[i].answered(&counted[i]);
        let lines = report::agency_report(
            &self.catalog,
            &self.targets.get(),
            &agency.id,
            &metrics,
            &Periods {
                now: counted_over(1),
                last_year: counted_over(2),
                previous: Some(counted_over(3)),
                base: base.as_ref().map(|_| counted_over(4)),
            },
        );
        let metrics = lines
            .into_iter()
            .map(|line| MetricReport {
                metric: line.metric.name().to_owned(),
                rate: line.rate.map(rate_to_proto),
                same_period_last_year: line.same_period_last_year.map(rate_to_proto),
                previous_period: line.previous_period.map(rate_to_proto),
                change_from_last_year: change(line.rate, line.same_period_last_year),
                change_from_previous_period: change(line.rate, line.previous_period),
                target: line.target.map(standing),
                base: line.base.map(rate_to_proto),
                change_from_base: change(line.rate, line.base),
            })
            .collect();
        Ok(GetMetricsResponse {
            agency: Some(agency_to_proto(agency)),
            period: Some(period_to_proto(&period)),
            same_period_last_year: Some(period_to_proto(&last_year)),
            previous_period: Some(period_to_proto(&previous)),
            counters: Some(counters_to_proto(&counted[1][0])),
            metrics,
            merged_from: ids(report::merged_from(
                &self.catalog,
                &agency.id,
                &period,
                Date::MAX,
            )),
            open_past_due: counted[0][0].open_past_due_at_end,
            base_period: base.as_ref().map(period_to_proto),
            freshness: Some(freshness_to_proto(&freshness)),
            accepted_per_day: recent.iter().map(daily_events_to_proto).collect(),
            provisional: horizon.is_provisional(&period),
        })
    }

    /// One metric over several agencies: the body of GetBlockMetrics.
    pub async fn block_metrics(
        &self,
        request: GetBlockMetricsRequest,
    ) -> Result<GetBlockMetricsResponse, Error> {
        use get_block_metrics_request::Scope as Asked;
        let horizon = self.horizon();
        let period = parse_period("period", &request.period, &horizon)?;
        let scope = match request.scope {
            None => {
                return Err(Error::invalid(
                    "scope",
                    "one of block, parent_id or nation is required",
                ));
            }
            Some(Asked::Block(value)) => {
                Scope::Block(block_from_proto(value).ok_or_else(|| {
                    Error::invalid("block", "is required: BLOCK_MINISTRY or BLOCK_PROVINCE")
                })?)
            }
            Some(Asked::ParentId(parent)) => {
                Scope::Children(self.agency("parent_id", &parent)?.id.clone())
            }
            Some(Asked::Nation(_)) => Scope::Nation,
        };
        let members = scope.members(&self.catalog, period.last_day());
        let metric = parse_metric("metric", &request.metric)?;
        let base = base_period(&request.compare_to, &period, &horizon)?;
        let days = daily_events_days(request.daily_events_days, &horizon)?;
        let last_year = period.same_period_last_year();
        let agencies = ids_of(&members);
        let needs = metric.needs();
        // Every period is read for the members as they were on the last day of the period
        // asked for: a member is compared with the sum of the agencies it had absorbed by
        // then, and an agency it had not absorbed yet is a member of its own.
        let as_of = period.last_day();
        let questions: Vec<Question> = [&period, &last_year]
            .into_iter()
            .chain(base.as_ref())
            .map(|read| Question {
                agencies: &agencies,
                parent: scope.parent(),
                period: read,
                as_of,
                needs: &needs,
            })
            .collect();
        let (counted, activity) = futures::try_join!(
            self.counters(&horizon, &questions),
            self.activity(&horizon, &agencies, &days)
        )?;
        let counted_over = |i: usize| questions[i].answered(&counted[i]);
        let report = report::block_report(
            &self.catalog,
            &self.targets.get(),
            metric,
            &agencies,
            &Periods {
                now: counted_over(0),
                last_year: counted_over(1),
                previous: None,
                base: base.as_ref().map(|_| counted_over(2)),
            },
        );
        let agencies = members
            .iter()
            .zip(report.rows)
            .zip(&activity)
            .map(|((agency, row), (freshness, days))| AgencyMetric {
                agency_id: agency.id.as_str().to_owned(),
                agency_name: agency.name.clone(),
                rate: row.rate.map(rate_to_proto),
                same_period_last_year: row.same_period_last_year.map(rate_to_proto),
                change_from_last_year: change(row.rate, row.same_period_last_year),
                target: row.target.map(standing),
                merged_from: ids(row.merged_from),
                base: row.base.map(rate_to_proto),
                change_from_base: change(row.rate, row.base),
                freshness: Some(freshness_to_proto(freshness)),
                daily_events: days.iter().map(daily_events_to_proto).collect(),
            })
            .collect();
        let pooled = |s: &summary::Summary| s.pooled;
        Ok(GetBlockMetricsResponse {
            period: Some(period_to_proto(&period)),
            same_period_last_year: Some(period_to_proto(&last_year)),
            agencies,
            pooled_change_from_last_year: change(
                pooled(&report.summary),
                pooled(&report.summary_last_year),
            ),
            pooled_change_from_base: report
                .summary_base
                .as_ref()
                .and_then(|b| change(pooled(&report.summary), b.pooled)),
            summary: Some(summary_to_proto(
                &report.summary,
                report.with_target,
                report.meeting_target,
            )),
            // Targets are per year; other periods' standings are not reported here.
            summary_same_period_last_year: Some(summary_to_proto(&report.summary_last_year, 0, 0)),
            summary_base: report
                .summary_base
                .as_ref()
                .map(|b| summary_to_proto(b, 0, 0)),
            base_period: base.as_ref().map(period_to_proto),
            provisional: horizon.is_provisional(&period),
        })
    }

    /// Several agencies' counters (and assessed scores) over one period: the body of
    /// GetBlockSnapshot, what rankings are computed from.
    pub(super) async fn block_snapshot(
        &self,
        request: GetBlockSnapshotRequest,
    ) -> Result<GetBlockSnapshotResponse, Error> {
        let horizon = self.horizon();
        // The scope is checked before the period, so a request wrong in both names its scope.
        let scope = match request.parent_id.trim() {
            "" => Scope::Block(block_from_proto(request.block).ok_or_else(|| {
                Error::invalid(
                    "block",
                    "is required (BLOCK_MINISTRY or BLOCK_PROVINCE) unless parent_id is set",
                )
            })?),
            raw => Scope::Children(self.agency("parent_id", raw)?.id.clone()),
        };
        let period = parse_period("period", &request.period, &horizon)?;
        let members = ids_of(&scope.members(&self.catalog, period.last_day()));
        let needs = match request.metric.as_str() {
            // A composite index reads what its measured indicators need: nothing for one
            // made only of assessed criteria.
            "" if !request.metrics.is_empty() || !request.assessed_profile.is_empty() => {
                Needs::of(parse_metrics(&request.metrics)?)
            }
            "" => Needs::everything(),
            name => parse_metric("metric", name)?.needs(),
        };
        let question = Question {
            agencies: &members,
            parent: scope.parent(),
            period: &period,
            as_of: period.last_day(),
            needs: &needs,
        };
        let (counted, assessed, activity) = futures::try_join!(
            self.counters(&horizon, slice::from_ref(&question)),
            self.read_assessed(&members, &period, &request.assessed_profile),
            self.activity_if(request.with_freshness, &horizon, &members)
        )?;
        let agencies = members
            .iter()
            .zip(&counted[0])
            .zip(assessed)
            .enumerate()
            .map(|(i, ((id, c), assessed))| AgencyCounters {
                agency_id: id.to_string(),
                counters: Some(counters_to_proto(c)),
                merged_from: ids(report::merged_from(
                    &self.catalog,
                    id,
                    &period,
                    period.last_day(),
                )),
                assessed,
                freshness: activity
                    .get(i)
                    .map(|(freshness, _)| freshness_to_proto(freshness)),
            })
            .collect();
        Ok(GetBlockSnapshotResponse {
            period: Some(period_to_proto(&period)),
            agencies,
            provisional: horizon.is_provisional(&period),
        })
    }

    /// What may be assumed now: the one clock reading of a request.
    pub(super) fn horizon(&self) -> Horizon {
        Horizon::at(OffsetDateTime::now_utc(), &self.policy)
    }

    pub(super) fn agency(&self, field: &'static str, raw: &str) -> Result<&Agency, Error> {
        self.catalog
            .agency_by_str(raw)
            .ok_or_else(|| Error::invalid(field, format!("unknown agency {raw:?}")))
    }

    /// Each question's counters, per agency: the plans' reads all run at once (their round
    /// trips to the store overlap), then each plan combines its answers.
    async fn counters(
        &self,
        horizon: &Horizon,
        questions: &[Question<'_>],
    ) -> Result<Vec<Vec<Counters>>, Error> {
        let plans: Vec<Plan> = questions
            .iter()
            .map(|question| plan(&self.catalog, horizon, question))
            .collect();
        let answers =
            try_join_all(plans.iter().flat_map(Plan::reads).map(|r| self.fetch(r))).await?;
        let mut answers = answers.into_iter();
        plans
            .iter()
            .map(|plan| {
                let mine = answers.by_ref().take(plan.reads().len()).collect();
                plan.totals(mine)
                    .map_err(|e| Error::Store(StoreError::Unexpected(e.to_string())))
            })
            .collect()
    }

    /// Each agency's freshness at the request's moment, with its events accepted and
    /// rejected on each of `days`.
    pub(super) async fn activity(
        &self,
        horizon: &Horizon,
        agencies: &[AgencyId],
        days: &[Date],
    ) -> Result<Vec<(Freshness, Vec<DailyEvents>)>, Error> {
        let keys: Vec<AgencyKey> = agencies.iter().map(|a| self.key(a)).collect();
        let activity = self.store.read_activity(&keys, days).await?;
        if activity.len() != agencies.len() {
            return Err(Error::Store(StoreError::Unexpected(format!(
                "the activity of {} agencies for {} asked",
                activity.len(),
                agencies.len()
            ))));
        }
        Ok(activity
            .into_iter()
            .map(|a| (a.seen.at(horizon.now, self.freshness), a.days))
            .collect())
    }

    /// [`AggregateApi::activity`] of `agencies` without days when `wanted`, else nothing.
    async fn activity_if(
        &self,
        wanted: bool,
        horizon: &Horizon,
        agencies: &[AgencyId],
    ) -> Result<Vec<(Freshness, Vec<DailyEvents>)>, Error> {
        if wanted {
            self.activity(horizon, agencies, &[]).await
        } else {
            Ok(Vec::new())
        }
    }

    /// Runs one generic read against the store.
    async fn fetch(&self, read: &Read<'_>) -> Result<Vec<Counters>, StoreError> {
        match &read.source {
            Source::Groups(groups) => {
                let keys: Vec<Vec<AgencyKey>> = groups
                    .iter()
                    .map(|group| group.iter().map(|a| self.key(a)).collect())
                    .collect();
                self.store
                    .read(GroupsRead {
                        groups: &keys,
                        buckets: &read.buckets,
                        needs: &read.needs,
                    })
                    .await
            }
            Source::Children { parent, children } => {
                self.store
                    .read_children(ChildrenRead {
                        of: Children {
                            parent: &self.key(parent),
                            children,
                        },
                        buckets: &read.buckets,
                        counters: &read.needs.counters,
                    })
                    .await
            }
        }
    }

    /// Each agency's own assessed scores for `profile` over `period`: none when no profile
    /// is asked for or the period is not a calendar period (scores are stored per calendar
    /// period).
    async fn read_assessed(
        &self,
        agencies: &[AgencyId],
        period: &Period,
        profile: &str,
    ) -> Result<Vec<Vec<AssessedPoints>>, Error> {
        let bucket = match (profile, period.as_bucket()) {
            ("", _) | (_, None) => return Ok(vec![Vec::new(); agencies.len()]),
            (_, Some(bucket)) => bucket,
        };
        let keys: Vec<AgencyKey> = agencies.iter().map(|a| self.key(a)).collect();
        Ok(self
            .store
            .read_assessed(AssessedRead {
                agencies: &keys,
                bucket,
                profile,
            })
            .await?
            .into_iter()
            .map(|points| {
                points
                    .into_iter()
                    .map(|(criterion, hundredths)| AssessedPoints {
                        criterion,
                        points: hundredths_text(hundredths),
                    })
                    .collect()
            })
            .collect())
    }
}

/// What the dossiers open past due now are read from.
fn backlog_needs() -> Needs {
    Needs {
        counters: backlog::DUE_COUNTERS.to_vec(),
        distinct: false,
    }
}

pub(super) fn parse_period(
    field: &'static str,
    raw: &str,
    horizon: &Horizon,
) -> Result<Period, Error> {
    Period::parse(raw, horizon.today).map_err(|e| Error::invalid(field, e.to_string()))
}

pub(super) fn parse_metric(field: &'static str, raw: &str) -> Result<Metric, Error> {
    raw.parse()
        .map_err(|e: UnknownMetric| Error::invalid(field, e.to_string()))
}

fn parse_metrics(raw: &[String]) -> Result<Vec<Metric>, Error> {
    raw.iter().map(|m| parse_metric("metrics", m)).collect()
}

/// The last `asked` Vietnam days up to today, oldest first (GetBlockMetrics'
/// `daily_events_days`): none for 0, at most [`RECENT_DAYS`] (the stores keep a few more,
/// and every day asked is one more per agency in the answer).
fn daily_events_days(asked: u32, horizon: &Horizon) -> Result<Vec<Date>, Error> {
    match usize::try_from(asked) {
        Ok(n) if n <= RECENT_DAYS => Ok(recent_days(horizon.today, n)),
        _ => Err(Error::invalid(
            "daily_events_days",
            format!("is {asked}; ask for 0 (none) to {RECENT_DAYS} days"),
        )),
    }
}

/// The earlier period `compare_to` names, if any: it must end before `period` begins.
fn base_period(
    compare_to: &str,
    period: &Period,
    horizon: &Horizon,
) -> Result<Option<Period>, Error> {
    if compare_to.trim().is_empty() {
        return Ok(None);
    }
    let base = parse_period("compare_to", compare_to, horizon)?;
    if base.last_day() >= period.first_day() {
        return Err(Error::invalid(
            "compare_to",
            format!(
                "{compare_to:?} ends on {}, not before the period begins on {}: compare with an earlier period",
                base.last_day(),
                period.first_day()
            ),
        ));
    }
    Ok(Some(base))
}

fn ids_of(agencies: &[&Agency]) -> Vec<AgencyId> {
    agencies.iter().map(|a| a.id.clone()).collect()
}

pub(super) fn ids(agencies: Vec<AgencyId>) -> Vec<String> {
    agencies.into_iter().map(AgencyId::into_string).collect()
}

/// A value against another, when both have data.
fn change(current: Option<Rate>, other: Option<Rate>) -> Option<Change> {
    let comparison = Comparison {
        current: current?,
        other: other?,
    };
    Some(Change {
        ratio: comparison
            .ratio()
            .map(|r| r.two_decimals())
            .unwrap_or_default(),
        points: comparison.change_points(),
    })
}

/// A target verdict as a message.
fn standing(verdict: Verdict) -> TargetStanding {
    TargetStanding {
        target_percent: verdict.target.percent(),
        applies_to: verdict.target.scope_text(),
        met: verdict.met,
        gap_points: verdict.gap_points.unwrap_or_default(),
    }
}

/// A block's figure as a message.
fn summary_to_proto(s: &summary::Summary, with_target: usize, meeting: usize) -> Summary {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Summary {
        pooled: s.pooled.map(rate_to_proto),
        mean_percent: s.mean_percent.map(mean_text).unwrap_or_default(),
        agencies: count(s.with_data + s.without_data),
        agencies_without_data: count(s.without_data),
        agencies_with_target: count(with_target),
        agencies_meeting_target: count(meeting),
    }
}
