//! Figures over agencies that merge equal a recomputation from the raw events, for random
//! mergers (two or three predecessors into one, a successor later absorbed in turn), random
//! events (predecessors report before their merger, successors before and after it, dossiers
//! received with a due time and resolved or not) and random periods on both sides of the
//! mergers: every row of a block and of the nation with its same period last year and an
//! earlier base period (`compare_to`), the pooled and mean figures and every comparison, and
//! one agency's report. On the in-memory store and on a real Redis.
//!
//! The model groups events by the agency each reporter belonged to on a given day (following
//! the generated mergers), never through the catalog's constituents: a block member is
//! measured, over any period, with the agencies it had absorbed by the last day of the
//! period asked for; one agency's report with those it has absorbed by now.

mod support;

use std::{collections::BTreeSet, sync::Arc};

use govpulse_core::{
    Catalog, CatalogBuilder, Period, Rate,
    compare::Comparison,
    period::{VIETNAM, vietnam_day},
};
use govpulse_proto::{
    aggregate::{
        ApplyEventsRequest, Change, GetBlockMetricsRequest, GetMetricsRequest, Summary,
        get_block_metrics_request::Scope,
    },
    catalog::Block,
    event::{
        Channel, DossierEvent, DossierReceived, DossierResolved, dossier_event::Kind,
        dossier_resolved::Timeliness,
    },
};
use govpulse_store::CounterStore;
use proptest::prelude::*;
use support::{Backend, timestamp};
use time::{Date, Duration, OffsetDateTime, macros::date};

/// Six provinces and a ministry.
const PROVINCES: [&str; 6] = ["pa", "pb", "pc", "pd", "pe", "pf"];
const MINISTRY: &str = "mm";
const FIRST_DAY: Date = date!(2024 - 01 - 01);
const DAYS: i64 = 900;
/// The metrics checked: counters, the distinct count with the catalog, the due-day
/// counters, and the catalog alone.
const METRICS: [&str; 4] = [
    "online-dossier-rate",
    "services-with-online-dossiers",
    "on-time-rate",
    "online-provision-rate",
];

/// One generated merger: `successor` absorbs `predecessors` on `on`.
#[derive(Debug, Clone)]
struct Merger {
    successor: &'static str,
    predecessors: Vec<&'static str>,
    on: Date,
}

/// `pa` absorbs one or both of `pb`, `pc`; maybe `pe` absorbs `pd`; maybe `pf` absorbs `pa`
/// later (so `pb`'s history reaches `pf` through `pa`).
fn arb_mergers() -> impl Strategy<Value = Vec<Merger>> {
    (
        prop::sample::select(vec![vec!["pb"], vec!["pc"], vec!["pb", "pc"]]),
        60i64..700,
        prop::option::of(30i64..850),
        prop::option::of(1i64..180),
    )
        .prop_map(|(absorbed, x, y, chain)| {
            let mut mergers = vec![Merger {
                successor: "pa",
                predecessors: absorbed,
                on: FIRST_DAY + Duration::days(x),
            }];
            if let Some(y) = y {
                mergers.push(Merger {
                    successor: "pe",
                    predecessors: vec!["pd"],
                    on: FIRST_DAY + Duration::days(y),
                });
            }
            if let Some(after) = chain {
                mergers.push(Merger {
                    successor: "pf",
                    predecessors: vec!["pa"],
                    on: FIRST_DAY + Duration::days(x + after),
                });
            }
            mergers
        })
}

fn catalog(mergers: &[Merger]) -> Catalog {
    let provinces: String = PROVINCES
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:02},{p},Tỉnh {p}\n", i + 1))
        .collect();
    let procedures: String = PROVINCES
        .iter()
        .chain([&MINISTRY])
        .map(|a| {
            format!("{a}.full,{a},A,full,true\n{a}.partial,{a},B,partial,true\n{a}.info,{a},C,info,false\n")
        })
        .collect();
    let merger_rows: String = mergers
        .iter()
        .map(|m| {
            format!(
                "{s},Tỉnh {s},{s};{},{}\n",
                m.predecessors.join(";"),
                m.on,
                s = m.successor
            )
        })
        .collect();
    Catalog::builder()
        .provinces_csv("p", &format!("code,id,name\n{provinces}"))
        .and_then(|b| b.ministries_csv("m", &format!("id,name_en\n{MINISTRY},Ministry\n")))
        .and_then(|b| {
            b.procedures_csv(
                "x",
                &format!("id,agency_id,name,provision,eligible_full_online\n{procedures}"),
            )
        })
        .and_then(|b| {
            b.mergers_csv(
                "g",
                &format!("successor_id,successor_name,predecessor_ids,effective\n{merger_rows}"),
            )
        })
        .and_then(CatalogBuilder::build)
        .expect("valid test catalog")
}

/// Whether `agency`'s history belongs to `member` on `day`: `member` is `agency` itself, or
/// a successor it reached through the mergers that had happened by then.
fn belongs(mergers: &[Merger], agency: &str, member: &str, day: Date) -> bool {
    let mut current = agency;
    loop {
        if current == member {
            return true;
        }
        match mergers
            .iter()
            .find(|m| m.on <= day && m.predecessors.contains(&current))
        {
            Some(m) => current = m.successor,
            None => return false,
        }
    }
}

/// Whether `agency` still existed on `day` (no merger had absorbed it yet).
fn exists(mergers: &[Merger], agency: &str, day: Date) -> bool {
    !mergers
        .iter()
        .any(|m| m.on <= day && m.predecessors.contains(&agency))
}

/// A generated dossier: received by `agency` on `day`, online or not, for one of its
/// procedures, with a due time `due_after` days later (or none), and resolved `resolved_after`
/// days after the reception (or never).
#[derive(Debug, Clone)]
struct Dossier {
    id: String,
    agency: &'static str,
    procedure: String,
    day: Date,
    online: bool,
    due_after: Option<i64>,
    resolved_after: Option<i64>,
}

impl Dossier {
    fn due_day(&self) -> Option<Date> {
        self.due_after.map(|d| self.day + Duration::days(d))
    }

    fn resolution_day(&self) -> Option<Date> {
        self.resolved_after.map(|d| self.day + Duration::days(d))
    }
}

/// Dossiers of agencies that existed on their day; a resolution is sent only while its
/// reporting agency still exists (after a merger the successor reports it, under its own
/// dossier state, which this test does not model).
fn arb_dossiers(mergers: Vec<Merger>) -> impl Strategy<Value = (Vec<Merger>, Vec<Dossier>)> {
    let one = (
        0usize..PROVINCES.len() + 1,
        0..DAYS,
        0usize..3,
        any::<bool>(),
        prop::option::weighted(0.4, 0i64..30),
        prop::option::weighted(0.7, 0i64..40),
    );
    prop::collection::vec(one, 1..90).prop_map(move |raw| {
        let dossiers = raw
            .into_iter()
            .enumerate()
            .filter_map(|(i, (a, day, p, online, due_after, resolved_after))| {
                let day = FIRST_DAY + Duration::days(day);
                let agency = if a == PROVINCES.len() {
                    MINISTRY
                } else {
                    PROVINCES[a]
                };
                if !exists(&mergers, agency, day) {
                    return None;
                }
                let resolved_after =
                    resolved_after.filter(|r| exists(&mergers, agency, day + Duration::days(*r)));
                Some(Dossier {
                    id: format!("d{i}"),
                    agency,
                    procedure: format!("{agency}.{}", ["full", "partial", "info"][p]),
                    day,
                    online,
                    due_after,
                    resolved_after,
                })
            })
            .collect();
        (mergers.clone(), dossiers)
    })
}

fn at(day: Date, hour: u8) -> OffsetDateTime {
    day.with_hms(hour, 0, 0)
        .expect("valid time")
        .assume_offset(VIETNAM)
}

/// The events of a dossier: its reception (10:00), and its resolution (11:00), on time when
/// on or before its due day (due at 17:00), or as the agency says when it had no due time.
fn events(d: &Dossier) -> Vec<DossierEvent> {
    let base = |suffix: &str, at: OffsetDateTime, kind| DossierEvent {
        event_id: format!("{}:{suffix}", d.id),
        agency_id: d.agency.to_owned(),
        dossier_id: d.id.clone(),
        procedure_id: d.procedure.clone(),
        occurred_at: timestamp(at),
        kind: Some(kind),
        corrects: String::new(),
    };
    let mut out = vec![base(
        "rcv",
        at(d.day, 10),
        Kind::Received(DossierReceived {
            channel: if d.online {
                Channel::Online
            } else {
                Channel::InPerson
            }
            .into(),
            digitized: false,
            due_at: d.due_day().and_then(|due| timestamp(at(due, 17))),
        }),
    )];
    if let Some(day) = d.resolution_day() {
        let timeliness = match d.due_day() {
            Some(due) => Timeliness::DueAt(timestamp(at(due, 17)).unwrap_or_default()),
            None => Timeliness::OnTime(d.online),
        };
        out.push(base(
            "res",
            at(day, 11),
            Kind::Resolved(DossierResolved {
                timeliness: Some(timeliness),
                result_electronic: false,
            }),
        ));
    }
    out
}

/// The model: `metric`'s (numerator, denominator) for `member` over `period`, with every
/// agency whose history belonged to it on `as_of`.
fn model(
    mergers: &[Merger],
    dossiers: &[Dossier],
    member: &str,
    period: &Period,
    as_of: Date,
    metric: &str,
) -> (u64, u64) {
    let ours = |agency: &str| belongs(mergers, agency, member, as_of);
    let mine: Vec<&Dossier> = dossiers.iter().filter(|d| ours(d.agency)).collect();
    let last = period.last_day();
    match metric {
        "online-dossier-rate" => {
            let received: Vec<_> = mine.iter().filter(|d| period.contains(d.day)).collect();
            let online = received.iter().filter(|d| d.online).count();
            (online as u64, received.len() as u64)
        }
        "services-with-online-dossiers" | "online-provision-rate" => {
            // Each agency counted with the member has its procedures, on a day it existed.
            let counted = PROVINCES
                .iter()
                .chain([&MINISTRY])
                .filter(|a| ours(a) && exists(mergers, a, last))
                .count() as u64;
            if metric == "online-provision-rate" {
                return (2 * counted, 3 * counted);
            }
            let procedures: BTreeSet<&str> = mine
                .iter()
                .filter(|d| period.contains(d.day) && d.online && !d.procedure.ends_with(".info"))
                .map(|d| d.procedure.as_str())
                .collect();
            (procedures.len() as u64, 2 * counted)
        }
        "on-time-rate" => {
            let resolved: Vec<_> = mine
                .iter()
                .filter(|d| d.resolution_day().is_some_and(|r| period.contains(r)))
                .collect();
            let on_time = resolved
                .iter()
                .filter(|d| match (d.due_day(), d.resolution_day()) {
                    (Some(due), Some(r)) => r <= due,
                    (None, _) => d.online,
                    _ => false,
                })
                .count();
            // Open past due at the end: due by then and not resolved by then.
            let open = mine
                .iter()
                .filter(|d| {
                    d.due_day().is_some_and(|due| due <= last)
                        && d.resolution_day().is_none_or(|r| last < r)
                })
                .count();
            (on_time as u64, (resolved.len() + open) as u64)
        }
        other => panic!("no model for {other}"),
    }
}

fn fraction(rate: Option<&govpulse_proto::aggregate::Rate>) -> Option<(u64, u64)> {
    rate.map(|r| (r.numerator, r.denominator))
}

fn some(pair: (u64, u64)) -> Option<(u64, u64)> {
    (pair.1 > 0).then_some(pair)
}

/// The comparison of two model values, as the API shows it.
fn expected_change(now: Option<(u64, u64)>, other: Option<(u64, u64)>) -> Option<(String, String)> {
    let (now, other) = (now?, other?);
    let comparison = Comparison {
        current: Rate::new(now.0, now.1)?,
        other: Rate::new(other.0, other.1)?,
    };
    Some((
        comparison
            .ratio()
            .map(|r| r.two_decimals())
            .unwrap_or_default(),
        comparison.change_points(),
    ))
}

fn shown(change: Option<&Change>) -> Option<(String, String)> {
    change.map(|c| (c.ratio.clone(), c.points.clone()))
}

/// The pooled fraction and the mean percentage of members' values.
fn pooled_and_mean(values: &[Option<(u64, u64)>]) -> (Option<(u64, u64)>, Option<f64>) {
    let (n, d) = values
        .iter()
        .flatten()
        .fold((0, 0), |(n, d), v| (n + v.0, d + v.1));
    let percents: Vec<f64> = values
        .iter()
        .flatten()
        .map(|(n, d)| *n as f64 * 100.0 / *d as f64)
        .collect();
    let mean = (!percents.is_empty()).then(|| percents.iter().sum::<f64>() / percents.len() as f64);
    (some((n, d)), mean)
}

/// A compared period's summary and pooled change (last year's, the base's): the summary of
/// the members' `then` values, the change from their pooled `then` to their pooled `now`.
fn check_compared(
    summary: Option<&Summary>,
    change: Option<&Change>,
    now: &[Option<(u64, u64)>],
    then: &[Option<(u64, u64)>],
    what: &str,
) -> Result<(), TestCaseError> {
    check_summary(summary, then, what)?;
    prop_assert_eq!(
        shown(change),
        expected_change(pooled_and_mean(now).0, pooled_and_mean(then).0),
        "{}: pooled change",
        what
    );
    Ok(())
}

fn check_summary(
    summary: Option<&Summary>,
    values: &[Option<(u64, u64)>],
    what: &str,
) -> Result<(), TestCaseError> {
    let summary = summary.ok_or_else(|| TestCaseError::fail(format!("{what}: no summary")))?;
    let (pooled, mean) = pooled_and_mean(values);
    prop_assert_eq!(
        fraction(summary.pooled.as_ref()),
        pooled,
        "{}: pooled",
        what
    );
    match mean {
        None => prop_assert_eq!(summary.mean_percent.as_str(), "", "{}: mean", what),
        Some(mean) => {
            let shown: f64 = summary.mean_percent.parse().unwrap_or(f64::NAN);
            prop_assert!(
                (shown - mean).abs() <= 0.005 + 1e-9,
                "{}: mean {} shown as {}",
                what,
                mean,
                summary.mean_percent
            );
        }
    }
    prop_assert_eq!(
        summary.agencies as usize,
        values.len(),
        "{}: agencies",
        what
    );
    prop_assert_eq!(
        summary.agencies_without_data as usize,
        values.iter().filter(|v| v.is_none()).count(),
        "{}: agencies without data",
        what
    );
    Ok(())
}

/// A period and, maybe, a base to compare it with.
fn arb_periods() -> impl Strategy<Value = (String, Option<String>)> {
    let period = prop_oneof![
        (2024i32..=2026).prop_map(|y| y.to_string()),
        (2024i32..=2026, 1u8..=4).prop_map(|(y, q)| format!("{y}-Q{q}")),
        (2024i32..=2026, 1u8..=12).prop_map(|(y, m)| format!("{y}-{m:02}")),
        (0..DAYS, 0i64..300).prop_map(|(start, len)| {
            let first = FIRST_DAY + Duration::days(start);
            format!("{first}..{}", first + Duration::days(len))
        }),
    ];
    (period.clone(), prop::option::of(period))
}

async fn check(
    store: Arc<dyn CounterStore>,
    mergers: Vec<Merger>,
    dossiers: Vec<Dossier>,
    periods: Vec<(String, Option<String>)>,
) -> Result<(), TestCaseError> {
    let catalog = Arc::new(catalog(&mergers));
    let api = support::api(catalog.clone(), store);
    let all: Vec<DossierEvent> = dossiers.iter().flat_map(events).collect();
    for batch in all.chunks(25) {
        let response = api
            .apply(ApplyEventsRequest {
                events: batch.to_vec(),
                ..Default::default()
            })
            .await
            .expect("apply");
        for (event, outcome) in batch.iter().zip(&response.outcomes) {
            prop_assert_eq!(
                outcome.status,
                1,
                "{} accepted: {} {}",
                event.event_id,
                outcome.field,
                outcome.reason
            );
        }
    }
    let today = vietnam_day(OffsetDateTime::now_utc());
    for (expression, compare_to) in periods {
        let period = Period::parse(&expression, today).expect("valid period");
        let last_year = period.same_period_last_year();
        let base = compare_to
            .as_ref()
            .map(|c| Period::parse(c, today).expect("valid base"));
        // A base that does not end before the period begins is refused, naming the field.
        if let Some(b) = &base
            && b.last_day() >= period.first_day()
        {
            let refused = api
                .metrics(GetMetricsRequest {
                    agency_id: "pa".into(),
                    period: expression.clone(),
                    metrics: vec![],
                    compare_to: compare_to.clone().unwrap_or_default(),
                })
                .await
                .expect_err("a base after the period's start is refused");
            prop_assert!(refused.to_string().contains("compare_to"), "{}", refused);
            continue;
        }
        let as_of = period.last_day();
        for (scope, mut members) in [
            (Scope::Block(Block::Province.into()), Vec::new()),
            (Scope::Nation(true), vec![MINISTRY]),
        ] {
            members.extend(PROVINCES.iter().filter(|p| exists(&mergers, p, as_of)));
            members.sort_unstable();
            for metric in METRICS {
                let what = format!("{metric} over {expression} against {compare_to:?}, {scope:?}");
                let response = api
                    .block_metrics(GetBlockMetricsRequest {
                        scope: Some(scope.clone()),
                        metric: metric.to_owned(),
                        period: expression.clone(),
                        compare_to: compare_to.clone().unwrap_or_default(),
                        ..Default::default()
                    })
                    .await
                    .expect("block metrics");
                let ids: Vec<&str> = response
                    .agencies
                    .iter()
                    .map(|a| a.agency_id.as_str())
                    .collect();
                prop_assert_eq!(&ids, &members, "{}: members", what);
                let value = |member: &str, p: &Period| {
                    some(model(&mergers, &dossiers, member, p, as_of, metric))
                };
                let (mut now, mut then, mut based) = (Vec::new(), Vec::new(), Vec::new());
                for row in &response.agencies {
                    let id = row.agency_id.as_str();
                    let (n, t) = (value(id, &period), value(id, &last_year));
                    prop_assert_eq!(fraction(row.rate.as_ref()), n, "{}: {}", what, id);
                    prop_assert_eq!(
                        fraction(row.same_period_last_year.as_ref()),
                        t,
                        "{}: {} last year",
                        what,
                        id
                    );
                    prop_assert_eq!(
                        shown(row.change_from_last_year.as_ref()),
                        expected_change(n, t),
                        "{}: {} against last year",
                        what,
                        id
                    );
                    let b = base.as_ref().and_then(|b| value(id, b));
                    prop_assert_eq!(fraction(row.base.as_ref()), b, "{}: {} base", what, id);
                    prop_assert_eq!(
                        shown(row.change_from_base.as_ref()),
                        expected_change(n, b),
                        "{}: {} against the base",
                        what,
                        id
                    );
                    now.push(n);
                    then.push(t);
                    based.push(b);
                }
                check_summary(response.summary.as_ref(), &now, &format!("{what}: now"))?;
                check_compared(
                    response.summary_same_period_last_year.as_ref(),
                    response.pooled_change_from_last_year.as_ref(),
                    &now,
                    &then,
                    &format!("{what}: last year"),
                )?;
                match &base {
                    Some(_) => check_compared(
                        response.summary_base.as_ref(),
                        response.pooled_change_from_base.as_ref(),
                        &now,
                        &based,
                        &format!("{what}: the base"),
                    )?,
                    None => prop_assert!(response.summary_base.is_none(), "{}", what),
                }
            }
        }
        // One agency's report: as it is now, with everything it has absorbed.
        for agency in PROVINCES.iter().chain([&MINISTRY]) {
            let response = api
                .metrics(GetMetricsRequest {
                    agency_id: (*agency).to_owned(),
                    period: expression.clone(),
                    metrics: METRICS.map(str::to_owned).to_vec(),
                    compare_to: compare_to.clone().unwrap_or_default(),
                })
                .await
                .expect("metrics");
            for report in &response.metrics {
                let what = format!("{} of {agency} over {expression}", report.metric);
                let value = |p: &Period| {
                    some(model(
                        &mergers,
                        &dossiers,
                        agency,
                        p,
                        Date::MAX,
                        &report.metric,
                    ))
                };
                let (n, t) = (value(&period), value(&last_year));
                prop_assert_eq!(fraction(report.rate.as_ref()), n, "{}", what);
                prop_assert_eq!(
                    fraction(report.same_period_last_year.as_ref()),
                    t,
                    "{} last year",
                    what
                );
                let b = base.as_ref().and_then(value);
                prop_assert_eq!(
                    fraction(report.base.as_ref()),
                    b,
                    "{} against {:?}",
                    what,
                    compare_to
                );
                prop_assert_eq!(
                    shown(report.change_from_base.as_ref()),
                    expected_change(n, b),
                    "{} change from the base",
                    what
                );
            }
        }
    }
    Ok(())
}

fn run(backend: Backend, cases: u32) {
    support::run_property_on(
        backend,
        cases,
        (
            arb_mergers().prop_flat_map(arb_dossiers),
            prop::collection::vec(arb_periods(), 1..5),
        ),
        |store, ((mergers, dossiers), periods)| check(store, mergers, dossiers, periods),
        "every figure over merging agencies matches the recomputation",
    );
}

#[test]
fn figures_over_merging_agencies_match_a_recomputation_on_the_memory_store() {
    run(Backend::Memory, 128);
}

#[test]
fn figures_over_merging_agencies_match_a_recomputation_on_redis() {
    run(Backend::Redis("mergers"), 24);
}
