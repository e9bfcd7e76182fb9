//! Every metric, for random periods, equals a straightforward recomputation from the raw
//! events: random event sets with retries, duplicates inside batches, shuffled order, late
//! events and units below agencies, dossiers received with a due time and resolved (before
//! or after it, their resolution sometimes arriving first) or never, and stages of dossiers
//! sent again under new ids with other values (a second reception, resolution, payment or
//! feedback: the first to arrive counts, the others are CONFLICT and count nothing), some
//! under another procedure (a dossier is for one: CONFLICT too), dossiers withdrawn or
//! returned instead of resolved (a dossier ends once), corrections and retractions, through
//! the aggregate API, on the in-memory store, a real Redis and a Redis Cluster. Each agency's freshness (latest event
//! time, events accepted, last acceptance) matches the events counted too, and so does each
//! of its procedures' value of every metric that has one per procedure (GetProcedureMetrics).

mod support;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
};

use govpulse_aggregate::AggregateApi;
use govpulse_core::{
    Catalog, CatalogBuilder, Metric, Period,
    period::{VIETNAM, vietnam_day},
};
use govpulse_proto::{
    aggregate::{
        ApplyEventsRequest, GetBlockMetricsRequest, GetMetricsRequest, GetProcedureMetricsRequest,
        get_block_metrics_request::Scope,
    },
    event::{
        Channel, DossierEvent, DossierReceived, DossierResolved, FeePaid, FeedbackGiven, Retracted,
        Returned, Withdrawn, dossier_event::Kind, dossier_resolved::Timeliness,
    },
};
use govpulse_store::CounterStore;
use proptest::prelude::*;
use support::{Backend, timestamp};
use time::{Date, Duration, OffsetDateTime, macros::date};

/// Reporting agencies: two provinces (one with a unit and a sub-unit) and a ministry.
const AGENCIES: [&str; 5] = [
    "hoa-binh",
    "hb.dept",
    "hb.dept.commune",
    "quang-ninh",
    "mof",
];
const FIRST_DAY: Date = date!(2025 - 01 - 01);
const DAYS: i64 = 600;

fn catalog() -> Catalog {
    support::two_provinces(Catalog::builder())
        .and_then(|b| b.ministries_csv("m", "id,name_en\nmof,Finance\n"))
        .and_then(|b| {
            b.procedures_csv(
                "x",
                "id,agency_id,name,provision,eligible_full_online,valid_from,valid_until\n\
                 hb.full,hoa-binh,A,full,true,,\nhb.info,hoa-binh,C,info,false,,\n\
                 hb.partial,hoa-binh,B,partial,true,,2025-08-31\n\
                 hb.partial,hoa-binh,B,full,true,2025-09-01,\n\
                 hb.dept.own,hb.dept,D,full,true,,\n\
                 qn.full,quang-ninh,E,full,true,,\nqn.partial,quang-ninh,F,partial,false,,\n\
                 mof.full,mof,G,full,true,,\nmof.info,mof,H,info,false,,\n",
            )
        })
        .and_then(CatalogBuilder::build)
        .expect("valid test catalog")
}

/// A generated event, kept in plain form for the model.
#[derive(Debug, Clone)]
struct Raw {
    id: String,
    dossier: String,
    agency: &'static str,
    procedure: &'static str,
    day: Date,
    kind: RawKind,
    /// For a correction or a retraction: the id of the event it replaces or takes back.
    corrects: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RawKind {
    Received {
        channel: Channel,
        digitized: bool,
        /// The due time, in minutes after the reception.
        due_after: Option<i64>,
    },
    Resolved {
        on_time: bool,
        by_due_time: bool,
        electronic: bool,
    },
    Fee {
        online: bool,
    },
    Feedback {
        satisfied: bool,
    },
    /// Withdrawn by its owner: ends the dossier without a resolution.
    Withdrawn,
    /// Returned as ineligible: ends the dossier without a resolution.
    Returned,
    /// Takes back the event `corrects` names.
    Retracted,
}

impl RawKind {
    /// The stage of its dossier (a correction is of its event's stage); a retraction has
    /// none.
    fn stage(&self) -> u8 {
        match self {
            RawKind::Received { .. } => 0,
            RawKind::Resolved { .. } => 1,
            RawKind::Fee { .. } => 2,
            RawKind::Feedback { .. } => 3,
            RawKind::Retracted => 4,
            RawKind::Withdrawn => 5,
            RawKind::Returned => 6,
        }
    }

    /// What counts once per (agency, dossier): each stage, the three endings (resolved,
    /// withdrawn, returned) together.
    fn slot(&self) -> u8 {
        match self {
            RawKind::Withdrawn | RawKind::Returned => 1,
            other => other.stage(),
        }
    }

    /// The same stage with other values: what a one-stop system sends when it records a
    /// stage of a dossier a second time.
    fn other_values(self) -> RawKind {
        match self {
            RawKind::Received {
                channel,
                digitized,
                due_after,
            } => RawKind::Received {
                channel: if channel == Channel::Online {
                    Channel::InPerson
                } else {
                    Channel::Online
                },
                digitized: !digitized,
                due_after: due_after.map(|m| m + 3 * 24 * 60),
            },
            RawKind::Resolved {
                on_time,
                by_due_time,
                electronic,
            } => RawKind::Resolved {
                on_time: !on_time,
                by_due_time,
                electronic: !electronic,
            },
            RawKind::Fee { online } => RawKind::Fee { online: !online },
            RawKind::Feedback { satisfied } => RawKind::Feedback {
                satisfied: !satisfied,
            },
            other @ (RawKind::Withdrawn | RawKind::Returned | RawKind::Retracted) => other,
        }
    }
}

fn procedures_of(agency: &str) -> &'static [&'static str] {
    match agency {
        "hoa-binh" => &["hb.full", "hb.partial", "hb.info"],
        "hb.dept" | "hb.dept.commune" => &["hb.full", "hb.partial", "hb.info", "hb.dept.own"],
        "quang-ninh" => &["qn.full", "qn.partial"],
        _ => &["mof.full", "mof.info"],
    }
}

fn arb_raw(index: usize) -> impl Strategy<Value = Raw> {
    let kind = prop_oneof![
        (0usize..3, any::<bool>()).prop_map(|(c, digitized)| RawKind::Received {
            channel: [Channel::Online, Channel::InPerson, Channel::Postal][c],
            digitized,
            due_after: None,
        }),
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(on_time, by_due_time, electronic)| RawKind::Resolved {
                on_time,
                by_due_time,
                electronic
            }
        ),
        any::<bool>().prop_map(|online| RawKind::Fee { online }),
        any::<bool>().prop_map(|satisfied| RawKind::Feedback { satisfied }),
        Just(RawKind::Withdrawn),
        Just(RawKind::Returned),
    ];
    (0..AGENCIES.len(), 0usize..4, 0..DAYS, kind).prop_map(move |(a, p, day, kind)| {
        let agency = AGENCIES[a];
        let procedures = procedures_of(agency);
        Raw {
            id: format!("e{index}"),
            dossier: format!("d-e{index}"),
            agency,
            procedure: procedures[p % procedures.len()],
            day: FIRST_DAY + Duration::days(day),
            kind,
            corrects: None,
        }
    })
}

/// One dossier's reception with a due time (up to 60 days later, at any time of day) and,
/// unless it never ends, its resolution, withdrawal or return (from 5 days before the
/// reception to 60 days after it; a resolution on time when at or before the due time),
/// sometimes followed by an ending of another kind under another id (not counted: a dossier
/// ends once).
fn arb_dossier(index: usize) -> impl Strategy<Value = Vec<Raw>> {
    (
        0..AGENCIES.len(),
        0usize..4,
        0..DAYS,
        0i64..60 * 24 * 60,
        prop::option::weighted(0.7, -5i64..60),
        any::<bool>(),
        prop_oneof![6 => Just(0u8), 2 => Just(1u8), 2 => Just(2u8)],
        prop::bool::weighted(0.2),
    )
        .prop_map(
            move |(a, p, day, due_after, resolved, electronic, how, twice)| {
                let agency = AGENCIES[a];
                let procedures = procedures_of(agency);
                let received = Raw {
                    id: format!("s{index}:rcv"),
                    dossier: format!("s{index}"),
                    agency,
                    procedure: procedures[p % procedures.len()],
                    day: FIRST_DAY + Duration::days(day),
                    kind: RawKind::Received {
                        channel: Channel::Online,
                        digitized: false,
                        due_after: Some(due_after),
                    },
                    corrects: None,
                };
                let mut events = vec![received.clone()];
                if let Some(after) = resolved {
                    let ending = |how: u8| match how {
                        0 => RawKind::Resolved {
                            on_time: at(received.day + Duration::days(after))
                                <= at(received.day) + Duration::minutes(due_after),
                            by_due_time: false,
                            electronic,
                        },
                        1 => RawKind::Withdrawn,
                        _ => RawKind::Returned,
                    };
                    let end = Raw {
                        id: format!("s{index}:end"),
                        day: received.day + Duration::days(after),
                        kind: ending(how),
                        ..received.clone()
                    };
                    if twice {
                        events.push(Raw {
                            id: format!("s{index}:end2"),
                            kind: ending((how + 1) % 3),
                            ..end.clone()
                        });
                    }
                    events.push(end);
                }
                events
            },
        )
}

/// Events, then the order and batching in which they are sent: some resent (retries),
/// everything shuffled.
fn arb_case() -> impl Strategy<Value = (Vec<Raw>, Vec<Vec<usize>>)> {
    (
        prop::collection::vec(any::<prop::sample::Index>(), 1..120),
        0usize..40,
    )
        .prop_flat_map(|(seeds, dossiers)| {
            let singles: Vec<_> = (0..seeds.len()).map(arb_raw).collect();
            let stories: Vec<_> = (0..dossiers).map(arb_dossier).collect();
            // Stages sent again under new ids: which event, how many days later, and whether
            // under another procedure of the agency.
            let repeats = prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    0i64..40,
                    prop::bool::weighted(0.2),
                ),
                0..20,
            );
            // Corrections: which event (mostly one counted, sometimes a repeat or another
            // correction, refused), how many days it moves, whether it retracts, and a
            // mistake now and then (another dossier, another kind: refused).
            let fixes = prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    -20i64..30,
                    prop::bool::weighted(0.3),
                    0u8..12,
                ),
                0..24,
            );
            (singles, stories, repeats, fixes).prop_flat_map(
                |(singles, stories, repeats, fixes)| {
                    let mut events: Vec<Raw> = singles
                        .into_iter()
                        .chain(stories.into_iter().flatten())
                        .collect();
                    let originals = events.len();
                    for (k, (which, later, elsewhere)) in repeats.into_iter().enumerate() {
                        let original = &events[which.index(originals)];
                        let procedures = procedures_of(original.agency);
                        let procedure = if elsewhere {
                            let at = procedures.iter().position(|p| *p == original.procedure);
                            procedures[(at.unwrap_or(0) + 1) % procedures.len()]
                        } else {
                            original.procedure
                        };
                        let repeat = Raw {
                            id: format!("again{k}"),
                            procedure,
                            day: (original.day + Duration::days(later))
                                .min(FIRST_DAY + Duration::days(DAYS - 1)),
                            kind: original.kind.other_values(),
                            ..original.clone()
                        };
                        events.push(repeat);
                    }
                    for (k, (which, shift, retract, mistake)) in fixes.into_iter().enumerate() {
                        let target = events[which.index(events.len())].clone();
                        let last = FIRST_DAY + Duration::days(DAYS - 1);
                        let mut fix = Raw {
                            id: format!("fix{k}"),
                            corrects: Some(target.id.clone()),
                            day: (target.day + Duration::days(shift)).clamp(FIRST_DAY, last),
                            kind: if retract {
                                RawKind::Retracted
                            } else {
                                target.kind.other_values()
                            },
                            ..target
                        };
                        match mistake {
                            0 => fix.dossier.push_str("-other"),
                            1 if !retract => {
                                fix.kind = match fix.kind {
                                    RawKind::Fee { .. } => RawKind::Feedback { satisfied: true },
                                    _ => RawKind::Fee { online: true },
                                };
                            }
                            _ => {}
                        }
                        events.push(fix);
                    }
                    let n = events.len();
                    let resends = prop::collection::vec(any::<prop::sample::Index>(), 0..n / 3 + 1);
                    // Every event once and some again, shuffled.
                    let order = resends.prop_flat_map(move |resends| {
                        let mut order: Vec<usize> = (0..n).collect();
                        order.extend(resends.iter().map(|i| i.index(n)));
                        Just(order).prop_shuffle()
                    });
                    (Just(events), order, 1usize..40).prop_map(|(events, order, batch)| {
                        let batches = order.chunks(batch).map(<[usize]>::to_vec).collect();
                        (events, batches)
                    })
                },
            )
        })
}

/// When an event of `day` happens: 10:00 in Vietnam.
fn at(day: Date) -> OffsetDateTime {
    day.with_hms(10, 0, 0)
        .expect("valid time")
        .assume_offset(VIETNAM)
}

fn to_proto(raw: &Raw) -> DossierEvent {
    let at = at(raw.day);
    let kind = match raw.kind {
        RawKind::Received {
            channel,
            digitized,
            due_after,
        } => Kind::Received(DossierReceived {
            channel: channel.into(),
            digitized,
            due_at: due_after.and_then(|m| timestamp(at + Duration::minutes(m))),
        }),
        RawKind::Resolved {
            on_time,
            by_due_time,
            electronic,
        } => Kind::Resolved(DossierResolved {
            timeliness: Some(if by_due_time {
                let due = if on_time {
                    at
                } else {
                    at - Duration::minutes(1)
                };
                Timeliness::DueAt(timestamp(due).unwrap_or_default())
            } else {
                Timeliness::OnTime(on_time)
            }),
            result_electronic: electronic,
        }),
        RawKind::Fee { online } => Kind::FeePaid(FeePaid { online }),
        RawKind::Feedback { satisfied } => Kind::Feedback(FeedbackGiven { satisfied }),
        RawKind::Withdrawn => Kind::Withdrawn(Withdrawn {}),
        RawKind::Returned => Kind::Returned(Returned {}),
        RawKind::Retracted => Kind::Retracted(Retracted {}),
    };
    DossierEvent {
        event_id: raw.id.clone(),
        agency_id: raw.agency.to_owned(),
        dossier_id: raw.dossier.clone(),
        procedure_id: raw.procedure.to_owned(),
        occurred_at: timestamp(at),
        kind: Some(kind),
        corrects: raw.corrects.clone().unwrap_or_default(),
    }
}

/// Whether an event reported by `reporter` counts for `agency`: it is the agency or a unit
/// below it.
fn belongs(catalog: &Catalog, reporter: &str, agency: &str) -> bool {
    let reporter = govpulse_core::AgencyId::parse(reporter).expect("id");
    catalog
        .chain(&reporter)
        .iter()
        .any(|a| a.as_str() == agency)
}

/// The dossiers of `agency` or a unit below it that are open past due at the end of the
/// period's last day, from the raw events: received with a due time on or before that
/// (Vietnam) day, and resolved, withdrawn or returned after it or never, whatever order the
/// events were sent in.
fn open_past_due_at_end(
    catalog: &Catalog,
    events: &[Raw],
    agency: &str,
    period: &Period,
    procedure: Option<&str>,
) -> u64 {
    let last = period.last_day();
    let resolved: BTreeMap<(&str, &str), Date> = events
        .iter()
        .filter(|e| e.kind.slot() == 1)
        .map(|e| ((e.agency, e.dossier.as_str()), e.day))
        .collect();
    events
        .iter()
        .filter(|e| belongs(catalog, e.agency, agency))
        .filter(|e| procedure.is_none_or(|p| e.procedure == p))
        .filter(|e| match e.kind {
            RawKind::Received {
                due_after: Some(minutes),
                ..
            } => {
                let due_day = vietnam_day(at(e.day) + Duration::minutes(minutes));
                let resolution = resolved.get(&(e.agency, e.dossier.as_str()));
                due_day <= last && resolution.is_none_or(|r| last < *r)
            }
            _ => false,
        })
        .count() as u64
}

/// The model: each metric's (numerator, denominator) recomputed from the raw events that
/// belong to `agency` or a unit below it and fall in `period`, plus the dossiers open past
/// due at its end under `open-past-due-at-end` and the number of events under `events`.
fn model(
    catalog: &Catalog,
    events: &[Raw],
    agency: &str,
    period: &Period,
) -> BTreeMap<&'static str, (u64, u64)> {
    model_of(catalog, events, agency, period, None)
}

/// [`model`] of the events of one procedure, or of all when `procedure` is `None`.
fn model_of(
    catalog: &Catalog,
    events: &[Raw],
    agency: &str,
    period: &Period,
    procedure: Option<&str>,
) -> BTreeMap<&'static str, (u64, u64)> {
    let mut c = BTreeMap::<&str, u64>::new();
    let mut online_procedures = BTreeSet::new();
    let mut add = |name: &'static str| *c.entry(name).or_default() += 1;
    for e in events.iter().filter(|e| period.contains(e.day)) {
        if !belongs(catalog, e.agency, agency) || procedure.is_some_and(|p| e.procedure != p) {
            continue;
        }
        add("events");
        // hb.partial is provided full-process online from 2025-09-01.
        let full = e.procedure.ends_with(".full")
            || e.procedure == "hb.dept.own"
            || (e.procedure == "hb.partial" && e.day >= date!(2025 - 09 - 01));
        let online_provision = full || e.procedure.ends_with(".partial");
        match e.kind {
            RawKind::Received {
                channel, digitized, ..
            } => {
                add("received");
                if channel == Channel::Online {
                    add("online");
                    if online_provision {
                        online_procedures.insert(e.procedure);
                    }
                }
                if digitized {
                    add("digitized");
                }
                if full {
                    add("full");
                    if channel == Channel::Online {
                        add("full-online");
                    }
                }
            }
            RawKind::Resolved {
                on_time,
                electronic,
                ..
            } => {
                add("resolved");
                if on_time {
                    add("on-time");
                }
                if electronic {
                    add("electronic");
                }
            }
            RawKind::Fee { online } => {
                add("fee");
                if online {
                    add("fee-online");
                }
            }
            RawKind::Feedback { satisfied } => {
                add("feedback");
                if satisfied {
                    add("satisfied");
                }
            }
            RawKind::Withdrawn => add("withdrawn"),
            RawKind::Returned => add("returned"),
            RawKind::Retracted => unreachable!("a retraction counts nothing of its own"),
        }
    }
    let v = |name: &str| c.get(name).copied().unwrap_or(0);
    let open = open_past_due_at_end(catalog, events, agency, period, procedure);
    let facts = catalog.provision_facts(
        &govpulse_core::AgencyId::parse(agency).expect("id"),
        period.last_day(),
    );
    BTreeMap::from([
        ("online-dossier-rate", (v("online"), v("received"))),
        ("full-online-dossier-rate", (v("full-online"), v("full"))),
        (
            "services-with-online-dossiers",
            (online_procedures.len() as u64, facts.online_services),
        ),
        (
            "full-online-provision",
            (facts.full_online, facts.eligible_full_online),
        ),
        (
            "online-provision-rate",
            (facts.online_services, facts.procedures),
        ),
        ("on-time-rate", (v("on-time"), v("resolved") + open)),
        ("digitized-reception-rate", (v("digitized"), v("received"))),
        ("electronic-result-rate", (v("electronic"), v("resolved"))),
        ("satisfaction-rate", (v("satisfied"), v("feedback"))),
        ("online-payment-rate", (v("fee-online"), v("fee"))),
        ("open-past-due-at-end", (open, 0)),
        ("events", (v("events"), 0)),
        ("withdrawn", (v("withdrawn"), 0)),
        ("returned", (v("returned"), 0)),
    ])
}

fn arb_period() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..DAYS, 0i64..200).prop_map(|(start, len)| {
            let first = FIRST_DAY + Duration::days(start);
            format!("{first}..{}", first + Duration::days(len))
        }),
        (2025i32..=2026, 1u8..=12).prop_map(|(y, m)| format!("{y}-{m:02}")),
        (2025i32..=2026, 1u8..=4).prop_map(|(y, q)| format!("{y}-Q{q}")),
        (2025i32..=2026).prop_map(|y| y.to_string()),
        (0..DAYS).prop_map(|d| (FIRST_DAY + Duration::days(d)).to_string()),
    ]
}

async fn check(
    store: Arc<dyn CounterStore>,
    events: Vec<Raw>,
    batches: Vec<Vec<usize>>,
    periods: Vec<String>,
) -> Result<(), TestCaseError> {
    let catalog = Arc::new(catalog());
    let api = support::api(catalog.clone(), store);
    let mut counted: HashSet<String> = HashSet::new();
    // The stages counted, per (agency, dossier): the first of each to arrive; and the
    // procedure each dossier was first counted under (a dossier is for one).
    let mut stages: HashSet<(&str, &str, u8)> = HashSet::new();
    let mut procedure_of: HashMap<(&str, &str), &str> = HashMap::new();
    // Per event counted as an event (not a correction): what it counts now, `None` once
    // retracted.
    let mut current: HashMap<&str, Option<&Raw>> = HashMap::new();
    // The days each accepted correction changed, with the reporting agency.
    let mut corrected: Vec<(&str, Date)> = Vec::new();
    // The events counted, each with the clock readings around the call that counted it.
    let mut counted_when: Vec<(&Raw, OffsetDateTime, OffsetDateTime)> = Vec::new();
    for batch in &batches {
        let request = ApplyEventsRequest {
            events: batch.iter().map(|i| to_proto(&events[*i])).collect(),
            ..Default::default()
        };
        let before = OffsetDateTime::now_utc();
        let response = api.apply(request).await.expect("apply");
        let after = OffsetDateTime::now_utc();
        for (i, outcome) in batch.iter().zip(&response.outcomes) {
            let event = &events[*i];
            let stage = (event.agency, event.dossier.as_str(), event.kind.slot());
            // Counted before: DUPLICATE; its stage counted under another id, or its dossier
            // under another procedure: CONFLICT.
            // A correction applies to an event that counts, of its dossier and kind: it takes
            // that event's stage back and counts its own, or (retracted) none; otherwise it is
            // REJECTED and changes nothing.
            let dossier = (event.agency, event.dossier.as_str());
            let expected = if counted.contains(&event.id) {
                2
            } else if procedure_of
                .get(&dossier)
                .is_some_and(|p| *p != event.procedure)
            {
                4
            } else if let Some(target) = &event.corrects {
                let live = current.get(target.as_str()).copied().flatten();
                let applies = live.filter(|live| {
                    live.dossier == event.dossier
                        && (event.kind == RawKind::Retracted
                            || live.kind.stage() == event.kind.stage())
                });
                match applies {
                    None => 3,
                    Some(live) => {
                        counted.insert(event.id.clone());
                        // It changes the day of what it takes back, and its own.
                        corrected.push((event.agency, live.day));
                        if event.kind != RawKind::Retracted && event.day != live.day {
                            corrected.push((event.agency, event.day));
                        }
                        if event.kind == RawKind::Retracted {
                            stages.remove(&(live.agency, live.dossier.as_str(), live.kind.slot()));
                            current.insert(target, None);
                        } else {
                            current.insert(target, Some(event));
                        }
                        counted_when.push((event, before, after));
                        1
                    }
                }
            } else if stages.contains(&stage) {
                4
            } else {
                counted.insert(event.id.clone());
                stages.insert(stage);
                procedure_of.insert(dossier, event.procedure);
                current.insert(&event.id, Some(event));
                counted_when.push((event, before, after));
                1
            };
            prop_assert_eq!(outcome.status, expected, "event {}", event.id);
        }
    }
    // Freshness: the latest event time and the number of events counted for each agency
    // (its own and its units'), exactly; the last acceptance within the clock readings around
    // the last batch that counted one.
    for agency in AGENCIES {
        let request = GetMetricsRequest {
            agency_id: agency.into(),
            period: "ytd".to_owned(),
            metrics: vec![Metric::OnlineDossierRate.name().to_owned()],
            ..Default::default()
        };
        let response = api.metrics(request).await.expect("metrics");
        let freshness = govpulse_edge::convert::freshness_from_proto(
            response.freshness.as_ref().expect("freshness"),
        )
        .expect("readable freshness");
        let mine: Vec<_> = counted_when
            .iter()
            .filter(|(raw, _, _)| belongs(&catalog, raw.agency, agency))
            .collect();
        prop_assert_eq!(
            freshness.seen.last_occurred,
            mine.iter().map(|(raw, _, _)| at(raw.day)).max(),
            "latest event time of {}",
            agency
        );
        let accepted: u64 = response.accepted_per_day.iter().map(|d| d.accepted).sum();
        prop_assert_eq!(
            accepted,
            mine.len() as u64,
            "events accepted for {}",
            agency
        );
        match (freshness.seen.last_accepted, mine.last()) {
            (None, None) => prop_assert!(freshness.stale, "{} never reported", agency),
            (Some(last), Some((_, before, after))) => {
                // Stores keep milliseconds.
                let millis = Duration::milliseconds(1);
                prop_assert!(
                    last + millis > *before && last <= *after,
                    "{} last accepted at {}, not between {} and {}",
                    agency,
                    last,
                    before,
                    after
                );
                prop_assert!(!freshness.stale, "{} reported just now", agency);
            }
            (got, _) => prop_assert!(
                false,
                "{} last accepted {:?}, counted {}",
                agency,
                got,
                mine.len()
            ),
        }
    }
    // The figures are those of the events counted, as corrected, whatever else was sent.
    let events: Vec<Raw> = current
        .values()
        .flatten()
        .map(|raw| (*raw).clone())
        .collect();
    let today = OffsetDateTime::now_utc().date();
    for expression in periods {
        let period = Period::parse(&expression, today).expect("valid period");
        let last_year = period.same_period_last_year();
        for agency in AGENCIES {
            let request = GetMetricsRequest {
                agency_id: agency.into(),
                period: expression.clone(),
                metrics: vec![],
                ..Default::default()
            };
            let response = api.metrics(request).await.expect("metrics");
            let (expected, expected_last_year) = (
                model(&catalog, &events, agency, &period),
                model(&catalog, &events, agency, &last_year),
            );
            prop_assert_eq!(response.metrics.len(), Metric::ALL.len());
            let counters = response.counters.unwrap_or_default();
            let corrections = corrected
                .iter()
                .filter(|(reporter, day)| {
                    period.contains(*day) && belongs(&catalog, reporter, agency)
                })
                .count() as u64;
            prop_assert_eq!(
                (counters.withdrawn, counters.returned, counters.corrected),
                (expected["withdrawn"].0, expected["returned"].0, corrections),
                "withdrawn, returned and corrected over {} for {}",
                expression,
                agency
            );
            prop_assert_eq!(
                response.counters.as_ref().map(|c| c.open_past_due_at_end),
                Some(expected["open-past-due-at-end"].0),
                "open past due at the end of {} for {}",
                expression,
                agency
            );
            for report in &response.metrics {
                for (rate, expected, when) in [
                    (&report.rate, &expected, "over"),
                    (
                        &report.same_period_last_year,
                        &expected_last_year,
                        "a year before",
                    ),
                ] {
                    let (n, d) = expected[report.metric.as_str()];
                    prop_assert_eq!(
                        rate.as_ref().map(|r| (r.numerator, r.denominator)),
                        (d > 0).then_some((n, d)),
                        "{} of {} {} {}",
                        report.metric,
                        agency,
                        when,
                        expression
                    );
                }
            }
        }
        // Each agency's procedures, ranked by each metric they have a value for, agree with
        // the model of their own events.
        for agency in AGENCIES {
            check_procedures(&api, &catalog, &events, agency, &expression, &period).await?;
        }
        // An agency's children, read from its roll-up of them, agree with the model too.
        for parent in ["hoa-binh", "hb.dept"] {
            for metric in Metric::ALL {
                let request = GetBlockMetricsRequest {
                    scope: Some(Scope::ParentId(parent.to_owned())),
                    metric: metric.name().to_owned(),
                    period: expression.clone(),
                    ..Default::default()
                };
                let response = api.block_metrics(request).await.expect("block metrics");
                for row in &response.agencies {
                    let fraction = |rate: &Option<govpulse_proto::aggregate::Rate>| {
                        rate.as_ref().map(|r| (r.numerator, r.denominator))
                    };
                    for (got, events_period, label) in [
                        (&row.rate, &period, "over"),
                        (&row.same_period_last_year, &last_year, "a year before"),
                    ] {
                        let (n, d) =
                            model(&catalog, &events, &row.agency_id, events_period)[metric.name()];
                        prop_assert_eq!(
                            fraction(got),
                            (d > 0).then_some((n, d)),
                            "{} of {}, child of {}, {} {}",
                            metric.name(),
                            row.agency_id,
                            parent,
                            label,
                            expression
                        );
                    }
                }
                prop_assert_eq!(response.agencies.len(), 1, "one child of {}", parent);
            }
        }
    }
    Ok(())
}

/// Every procedure of `agency` with dossiers in `period` is listed by GetProcedureMetrics,
/// for every metric with a value per procedure, with the (numerator, denominator) of the
/// model of its events, ranked by value; the best and worst are the ends of the ranking.
async fn check_procedures(
    api: &AggregateApi,
    catalog: &Catalog,
    events: &[Raw],
    agency: &str,
    expression: &str,
    period: &Period,
) -> Result<(), TestCaseError> {
    let procedures: BTreeSet<&str> = events.iter().map(|e| e.procedure).collect();
    for metric in Metric::ALL
        .into_iter()
        .filter(|m| !m.uses_provision_facts())
    {
        let request = GetProcedureMetricsRequest {
            agency_id: agency.into(),
            period: expression.to_owned(),
            metric: metric.name().to_owned(),
            top: 2,
        };
        let response = api
            .procedure_metrics(request)
            .await
            .expect("procedure metrics");
        let got: BTreeMap<&str, (u64, u64, bool)> = response
            .procedures
            .iter()
            .map(|l| (l.procedure_id.as_str(), (l.numerator, l.denominator, true)))
            .chain(
                response
                    .no_data
                    .iter()
                    .map(|l| (l.procedure_id.as_str(), (l.numerator, l.denominator, false))),
            )
            .collect();
        let mut want = BTreeMap::new();
        for procedure in &procedures {
            let model = model_of(catalog, events, agency, period, Some(procedure));
            let open = model["open-past-due-at-end"].0;
            let had = model["events"].0 > 0 || (metric == Metric::OnTimeRate && open > 0);
            if had {
                let (n, d) = model[metric.name()];
                want.insert(*procedure, (n, d, d > 0));
            }
        }
        prop_assert_eq!(
            &got,
            &want,
            "{} per procedure of {} over {}",
            metric.name(),
            agency,
            expression
        );
        let value = |l: &govpulse_proto::aggregate::ProcedureMetric| {
            l.rate
                .as_ref()
                .map(|r| u128::from(r.numerator) * 1_000_000_000 / u128::from(r.denominator))
        };
        for pair in response.procedures.windows(2) {
            prop_assert!(
                value(&pair[0]) >= value(&pair[1]),
                "ranked best first: {:?}",
                response.procedures
            );
        }
        let ids = |lines: &[govpulse_proto::aggregate::ProcedureMetric]| {
            lines
                .iter()
                .map(|l| l.procedure_id.clone())
                .collect::<Vec<_>>()
        };
        let ranked = ids(&response.procedures);
        prop_assert_eq!(
            ids(&response.best),
            ranked.iter().take(2).cloned().collect::<Vec<_>>()
        );
        // The worst: the lowest values, the larger denominator first among equal ones.
        let mut worst = response.procedures.clone();
        worst.sort_by(|a, b| {
            value(a)
                .cmp(&value(b))
                .then_with(|| b.denominator.cmp(&a.denominator))
                .then_with(|| a.procedure_id.cmp(&b.procedure_id))
        });
        worst.truncate(2);
        prop_assert_eq!(ids(&response.worst), ids(&worst));
    }
    Ok(())
}

fn run(backend: Backend, cases: u32) {
    support::run_property_on(
        backend,
        cases,
        (arb_case(), prop::collection::vec(arb_period(), 1..6)),
        |store, ((events, batches), periods)| check(store, events, batches, periods),
        "every metric matches the recomputation",
    );
}

#[test]
fn every_metric_matches_a_recomputation_on_the_memory_store() {
    run(Backend::Memory, 64);
}

#[test]
fn every_metric_matches_a_recomputation_on_redis() {
    run(Backend::Redis("property"), 12);
}

#[test]
fn every_metric_matches_a_recomputation_on_a_redis_cluster() {
    run(Backend::RedisCluster("property"), 6);
}
