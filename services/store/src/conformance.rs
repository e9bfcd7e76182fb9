//! The conformance suite every [`CounterStore`] must pass. Each check takes a fresh store
//! (or a fresh key prefix of a shared one) and panics with a message on failure; the
//! store crate's tests run it against [`crate::MemoryStore`] and a real Redis.

use govpulse_core::{
    AgencyId, Bucket, Counter, CounterDelta, Counters, DossierId, EventId, Needs, Period,
    ProcedureId,
    backlog::{self, Stage, StageEvent},
    counting::{Content, Uncorrectable},
    freshness::{Activity, DailyEvents, Seen},
    period::{VIETNAM, parse_day, vietnam_day},
};
use time::{
    Date, OffsetDateTime,
    macros::{date, datetime},
};

use crate::{
    AgencyKey, Applied, AssessedRead, AssessedWrite, ChangeNotice, Children, ChildrenRead,
    CounterStore, EventWrite, GroupsRead, NewPublication, ProceduresRead, RejectedWrite,
};

fn id(raw: &str) -> AgencyId {
    AgencyId::parse(raw).expect("test ids are valid")
}

/// An event of `agency` (whose chain is `chain`, root last) on `day`.
pub fn write(
    event: &str,
    chain: &[&str],
    day: Date,
    increments: &[Counter],
    online: Option<&str>,
) -> EventWrite {
    EventWrite {
        event_id: EventId::parse(event).expect("test ids are valid"),
        agency: id(chain[0]),
        chain: chain.iter().map(|a| id(a)).collect(),
        day,
        occurred_at: noon(day),
        // Accepted an hour after it happened, on the same Vietnam day.
        accepted_at: noon(day) + time::Duration::hours(1),
        // The online procedure, else one procedure for every event.
        procedure: ProcedureId::parse(online.unwrap_or("p0")).expect("test ids are valid"),
        delta: CounterDelta {
            increments: increments.to_vec(),
            online_procedure: online.map(|p| ProcedureId::parse(p).expect("test ids are valid")),
        },
        // A dossier of its own, at the stage its counters say (a reception by default).
        dossier: DossierId::parse(event).expect("test ids are valid"),
        stage: Some(if increments.contains(&Counter::Resolved) {
            StageEvent::Resolved { day }
        } else if increments.contains(&Counter::FeePaid) {
            StageEvent::FeePaid
        } else if increments.contains(&Counter::Feedback) {
            StageEvent::Feedback
        } else {
            StageEvent::Received { due_day: None }
        }),
        corrects: None,
        // What the event says: its day and what it adds (a resend says the same).
        content: Content::new(
            "",
            online.unwrap_or_default(),
            day.midnight().assume_utc(),
            &format!("{increments:?}"),
        ),
        remember_until: OffsetDateTime::now_utc() + time::Duration::days(400),
    }
}

/// Noon of `day`, Vietnam time.
fn noon(day: Date) -> OffsetDateTime {
    day.with_hms(12, 0, 0)
        .expect("noon exists")
        .assume_offset(VIETNAM)
}

/// The agency `agency` of the tree of `root`.
fn agency_key(root: &str, agency: &str) -> AgencyKey {
    AgencyKey {
        root: id(root),
        agency: id(agency),
    }
}

/// [`agency_key`] as a group of its own.
fn key(root: &str, agency: &str) -> Vec<AgencyKey> {
    vec![agency_key(root, agency)]
}

async fn read_one(store: &dyn CounterStore, root: &str, agency: &str, period: &str) -> Counters {
    let period = Period::parse(period, date!(2026 - 12 - 31)).expect("valid period");
    read_all(
        store,
        GroupsRead {
            groups: &[key(root, agency)],
            buckets: &period.cover(),
            needs: &Needs::everything(),
        },
    )
    .await[0]
}

/// A new event is counted; the same event id again is a duplicate and changes nothing.
pub async fn retried_event_is_counted_once(store: &dyn CounterStore) {
    let day = date!(2026 - 08 - 15);
    let e = write(
        "e1",
        &["hoa-binh"],
        day,
        &[Counter::Received, Counter::ReceivedOnline],
        None,
    );
    assert_eq!(
        store.apply(std::slice::from_ref(&e)).await.expect("apply"),
        [Applied::Accepted]
    );
    assert_eq!(
        store.apply(&[e.clone(), e]).await.expect("apply"),
        [Applied::Duplicate, Applied::Duplicate]
    );
    let c = read_one(store, "hoa-binh", "hoa-binh", "2026-08-15").await;
    assert_eq!(
        (c.get(Counter::Received), c.get(Counter::ReceivedOnline)),
        (1, 1)
    );
}

/// Two copies of one event in the same batch count once.
pub async fn duplicate_within_a_batch_is_counted_once(store: &dyn CounterStore) {
    let day = date!(2026 - 03 - 02);
    let e = write("same", &["ha-noi"], day, &[Counter::Received], None);
    let other = write("other", &["ha-noi"], day, &[Counter::Received], None);
    let outcomes = store.apply(&[e.clone(), other, e]).await.expect("apply");
    assert_eq!(
        outcomes,
        [Applied::Accepted, Applied::Accepted, Applied::Duplicate]
    );
    assert_eq!(
        read_one(store, "ha-noi", "ha-noi", "2026-03")
            .await
            .get(Counter::Received),
        2
    );
}

/// The same event id from two agencies is two events.
pub async fn event_ids_are_scoped_by_agency(store: &dyn CounterStore) {
    let day = date!(2026 - 08 - 15);
    let a = write("shared-id", &["ha-noi"], day, &[Counter::Feedback], None);
    let b = write("shared-id", &["hoa-binh"], day, &[Counter::Feedback], None);
    assert_eq!(
        store.apply(&[a, b]).await.expect("apply"),
        [Applied::Accepted, Applied::Accepted]
    );
    assert_eq!(
        read_one(store, "ha-noi", "ha-noi", "2026-08")
            .await
            .get(Counter::Feedback),
        1
    );
    assert_eq!(
        read_one(store, "hoa-binh", "hoa-binh", "2026-08")
            .await
            .get(Counter::Feedback),
        1
    );
}

/// An event counts in its day, month, quarter and year, and any period covering it.
pub async fn events_count_in_every_bucket_of_their_day(store: &dyn CounterStore) {
    // Resolutions of the Ministry of Finance: id, day, and whether on time.
    let events = [
        ("a", date!(2025 - 12 - 31), true),
        ("b", date!(2026 - 01 - 01), false),
        ("c", date!(2026 - 02 - 28), true),
        ("d", date!(2026 - 07 - 01), false),
    ]
    .map(|(id, day, on_time)| {
        let counters: &[Counter] = if on_time {
            &[Counter::Resolved, Counter::ResolvedOnTime]
        } else {
            &[Counter::Resolved]
        };
        write(id, &["mof"], day, counters, None)
    });
    store.apply(&events).await.expect("apply");
    // (period, (resolved, resolved on time)) counted for the Ministry of Finance.
    for (period, expected) in [
        ("2025-12-31", (1, 1)),
        ("2025", (1, 1)),
        ("2026", (3, 1)),
        ("2026-Q1", (2, 1)),
        ("2026-02", (1, 1)),
        ("2025-12-31..2026-07-01", (4, 2)),
        ("2026-01-02..2026-06-30", (1, 1)),
        ("2027", (0, 0)),
    ] {
        let counters = read_one(store, "mof", "mof", period).await;
        assert_eq!(
            (
                counters.get(Counter::Resolved),
                counters.get(Counter::ResolvedOnTime)
            ),
            expected,
            "{period}"
        );
    }
}

/// An event of a unit counts for the unit and every ancestor, not for siblings.
pub async fn units_count_for_their_ancestors(store: &dyn CounterStore) {
    let day = date!(2026 - 05 - 05);
    let chain = ["hb-commune", "hb-district", "hoa-binh"];
    let fees = |buckets: Vec<Bucket>| async move {
        let groups =
            ["hb-commune", "hb-district", "hoa-binh", "hb-other"].map(|a| key("hoa-binh", a));
        read_all(
            store,
            GroupsRead {
                groups: &groups,
                buckets: &buckets,
                needs: &Needs::everything(),
            },
        )
        .await
        .iter()
        .map(|c| c.get(Counter::FeePaid))
        .collect::<Vec<u64>>()
    };
    store
        .apply(&[write("u1", &chain, day, &[Counter::FeePaid], None)])
        .await
        .expect("apply");
    store
        .apply(&[write(
            "u2",
            &["hb-district", "hoa-binh"],
            day,
            &[Counter::FeePaid],
            None,
        )])
        .await
        .expect("apply");
    assert_eq!(fees(vec![Bucket::Day(day)]).await, [1, 2, 2, 0]);
    // A quarter and a year of a unit count its months (a store may keep a unit's months
    // only), the buckets of one read summed.
    let june = date!(2026 - 06 - 10);
    store
        .apply(&[write("u3", &chain, june, &[Counter::FeePaid], None)])
        .await
        .expect("apply");
    for (buckets, want) in [
        (vec![Bucket::Quarter(2026, 2)], [2, 3, 3, 0]),
        (vec![Bucket::Year(2026)], [2, 3, 3, 0]),
        (
            vec![Bucket::Year(2026), Bucket::Month(2026, 6)],
            [3, 4, 4, 0],
        ),
        (vec![Bucket::Quarter(2026, 3), Bucket::Year(2025)], [0; 4]),
    ] {
        assert_eq!(fees(buckets.clone()).await, want, "{buckets:?}");
    }
}

/// Each procedure's counters are kept per agency of the chain and bucket, added to across
/// batches, and read summed over buckets and a group's agencies; a procedure without data in
/// the buckets read is not listed.
pub async fn procedures_count_for_their_chain(store: &dyn CounterStore) {
    let (day, next) = (date!(2026 - 05 - 05), date!(2026 - 05 - 06));
    let chain = ["hb-commune", "hoa-binh"];
    let of = |event: EventWrite, procedure: &str| EventWrite {
        procedure: ProcedureId::parse(procedure).expect("test ids are valid"),
        ..event
    };
    let online = [Counter::Received, Counter::ReceivedOnline];
    store
        .apply(&[
            of(write("a", &chain, day, &online, None), "birth"),
            of(write("b", &chain, day, &[Counter::Received], None), "birth"),
            of(write("c", &chain, day, &[Counter::FeePaid], None), "land"),
        ])
        .await
        .expect("apply");
    // A second batch adds to the records the first wrote.
    store
        .apply(&[
            of(write("d", &chain, next, &online, None), "birth"),
            of(write("e", &["hoa-binh"], next, &online, None), "permit"),
            of(write("f", &["son-la"], next, &online, None), "permit"),
        ])
        .await
        .expect("apply");
    let read = |group: Vec<AgencyKey>, buckets: Vec<Bucket>| async move {
        let counters = [Counter::Received, Counter::ReceivedOnline, Counter::FeePaid];
        store
            .read_procedures(ProceduresRead {
                of: &group,
                buckets: &buckets,
                counters: &counters,
            })
            .await
            .expect("read procedures")
            .into_iter()
            .map(|(procedure, c)| {
                let got = counters.map(|counter| c.get(counter));
                (procedure.to_string(), got)
            })
            .collect::<Vec<_>>()
    };
    let named = |rows: &[(&str, [u64; 3])]| {
        rows.iter()
            .map(|(p, c)| ((*p).to_owned(), *c))
            .collect::<Vec<_>>()
    };
    let both_days = vec![Bucket::Day(day), Bucket::Day(next)];
    assert_eq!(
        read(key("hoa-binh", "hb-commune"), both_days.clone()).await,
        named(&[("birth", [3, 2, 0]), ("land", [0, 0, 1])])
    );
    let may = named(&[
        ("birth", [3, 2, 0]),
        ("land", [0, 0, 1]),
        ("permit", [1, 1, 0]),
    ]);
    // A quarter or a year of a root may be kept whole or read as its months.
    for bucket in [
        Bucket::Month(2026, 5),
        Bucket::Quarter(2026, 2),
        Bucket::Year(2026),
    ] {
        assert_eq!(
            read(key("hoa-binh", "hoa-binh"), vec![bucket]).await,
            may,
            "{bucket:?}"
        );
    }
    assert_eq!(
        read(
            key("hoa-binh", "hoa-binh"),
            vec![Bucket::Year(2026), Bucket::Quarter(2026, 3)]
        )
        .await,
        may
    );
    assert_eq!(
        read(key("hoa-binh", "hoa-binh"), vec![Bucket::Day(day)]).await,
        named(&[("birth", [2, 1, 0]), ("land", [0, 0, 1])])
    );
    // A group (a province read with one it absorbed) sums its agencies' procedures.
    let mut group = key("hoa-binh", "hoa-binh");
    group.extend(key("son-la", "son-la"));
    assert_eq!(
        read(group, vec![Bucket::Day(next)]).await,
        named(&[("birth", [1, 1, 0]), ("permit", [2, 2, 0])])
    );
    assert_eq!(read(key("hoa-binh", "hb-other"), both_days).await, []);
}

/// Distinct online procedures are exact over any period: a procedure seen on several days
/// counts once.
pub async fn distinct_procedures_are_exact_over_ranges(store: &dyn CounterStore) {
    let online = [Counter::Received, Counter::ReceivedOnline];
    let events = [
        write(
            "o1",
            &["quang-ninh"],
            date!(2026 - 01 - 31),
            &online,
            Some("p1"),
        ),
        write(
            "o2",
            &["quang-ninh"],
            date!(2026 - 02 - 01),
            &online,
            Some("p1"),
        ),
        write(
            "o3",
            &["quang-ninh"],
            date!(2026 - 02 - 02),
            &online,
            Some("p2"),
        ),
        write(
            "o4",
            &["quang-ninh"],
            date!(2026 - 05 - 02),
            &online,
            Some("p3"),
        ),
    ];
    store.apply(&events).await.expect("apply");
    for (period, expected) in [
        ("2026-01", 1),
        ("2026-02", 2),
        ("2026-01-31..2026-02-02", 2),
        ("2026-Q1", 2),
        ("2026", 3),
        ("2026-01-01..2026-05-02", 3),
    ] {
        let read = read_one(store, "quang-ninh", "quang-ninh", period).await;
        assert_eq!(read.procedures_with_online_dossiers, expected, "{period}");
    }
}

/// The distinct count of each of many groups in one read (a block of a province's 1,203
/// units, each a union over two days; one group of two units) is its own union's size, exact
/// whatever the number of groups.
pub async fn many_groups_union_exactly(store: &dyn CounterStore) {
    let (first, second) = (date!(2026 - 01 - 31), date!(2026 - 02 - 01));
    let online = [Counter::Received, Counter::ReceivedOnline];
    let units: Vec<String> = (0..1203).map(|i| format!("qn-unit-{i:04}")).collect();
    let mut batch = Vec::new();
    let mut expected: Vec<std::collections::BTreeSet<String>> = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        // Procedures p0..=p(i % 5) on the first day, p(i % 5)..=p(i % 5 + i % 3) on the
        // second: the days share p(i % 5).
        let mut procedures = std::collections::BTreeSet::new();
        for (day, from, to) in [(first, 0, i % 5), (second, i % 5, i % 5 + i % 3)] {
            for p in from..=to {
                let procedure = format!("p{p}");
                let event = format!("{unit}-{day}-{procedure}");
                let chain = [unit.as_str(), "quang-ninh"];
                batch.push(write(&event, &chain, day, &online, Some(&procedure)));
                procedures.insert(procedure);
            }
        }
        expected.push(procedures);
    }
    store.apply(&batch).await.expect("apply");
    let mut groups: Vec<Vec<AgencyKey>> = units.iter().map(|u| key("quang-ninh", u)).collect();
    groups.push([key("quang-ninh", &units[3]), key("quang-ninh", &units[4])].concat());
    let both: std::collections::BTreeSet<String> =
        expected[3].union(&expected[4]).cloned().collect();
    expected.push(both);
    let period = Period::parse("2026-01-31..2026-02-01", date!(2026 - 12 - 31)).expect("a period");
    let needs = Needs {
        counters: Vec::new(),
        distinct: true,
    };
    let read = read_all(
        store,
        GroupsRead {
            groups: &groups,
            buckets: &period.cover(),
            needs: &needs,
        },
    )
    .await;
    let got: Vec<u64> = read
        .iter()
        .map(|c| c.procedures_with_online_dossiers)
        .collect();
    let want: Vec<u64> = expected.iter().map(|p| p.len() as u64).collect();
    assert_eq!(got, want);
}

/// A batch mixing trees, days and kinds reports each event in its own position and sums
/// the increments of similar events.
pub async fn mixed_batches_keep_positions_and_sum(store: &dyn CounterStore) {
    let day = date!(2026 - 09 - 09);
    let mut batch = Vec::new();
    for i in 0..300 {
        let agency = ["an-giang", "ca-mau", "moh"][i % 3];
        let kind: &[Counter] = if i % 2 == 0 {
            &[Counter::Received, Counter::ReceivedOnline]
        } else {
            &[Counter::Received]
        };
        batch.push(write(&format!("m{i}"), &[agency], day, kind, None));
    }
    store.apply(&batch[..100]).await.expect("apply");
    let outcomes = store.apply(&batch).await.expect("apply");
    for (i, outcome) in outcomes.iter().enumerate() {
        let expected = if i < 100 {
            Applied::Duplicate
        } else {
            Applied::Accepted
        };
        assert_eq!(*outcome, expected, "event {i}");
    }
    let all = read_all(
        store,
        GroupsRead {
            groups: &[
                key("an-giang", "an-giang"),
                key("ca-mau", "ca-mau"),
                key("moh", "moh"),
            ],
            buckets: &[Bucket::Day(day)],
            needs: &Needs::everything(),
        },
    )
    .await;
    let got: Vec<(u64, u64)> = all
        .iter()
        .map(|c| (c.get(Counter::Received), c.get(Counter::ReceivedOnline)))
        .collect();
    assert_eq!(got, [(100, 50), (100, 50), (100, 50)]);
}

/// An agency with no events reads as all zeros, never as an error.
pub async fn unknown_agencies_read_as_zero(store: &dyn CounterStore) {
    let c = read_one(store, "nowhere", "nowhere", "2026").await;
    assert_eq!(c, Counters::default());
}

/// A group (a merged province and its predecessor, in different trees) reads as the sum of
/// its members, with the distinct procedures counted once across them.
pub async fn groups_sum_and_union_exactly(store: &dyn CounterStore) {
    let day = date!(2024 - 10 - 10);
    let online = [Counter::Received, Counter::ReceivedOnline];
    let events = [
        write("g1", &["tuyen-quang"], day, &online, Some("p1")),
        write("g2", &["ha-giang"], day, &online, Some("p1")),
        write("g3", &["ha-giang"], day, &online, Some("p2")),
        write("g4", &["ha-giang"], day, &[Counter::Received], None),
    ];
    store.apply(&events).await.expect("apply");
    let mut merged = key("tuyen-quang", "tuyen-quang");
    merged.extend(key("ha-giang", "ha-giang"));
    let read = read_all(
        store,
        GroupsRead {
            groups: &[merged, key("ha-giang", "ha-giang")],
            buckets: &[Bucket::Year(2024)],
            needs: &Needs::everything(),
        },
    )
    .await;
    let summary: Vec<(u64, u64, u64)> = read
        .iter()
        .map(|c| {
            (
                c.get(Counter::Received),
                c.get(Counter::ReceivedOnline),
                c.procedures_with_online_dossiers,
            )
        })
        .collect();
    assert_eq!(summary, [(4, 3, 2), (3, 2, 2)]);
}

/// A read of some counters fills those, and the distinct count only when asked.
pub async fn reads_fetch_what_is_needed(store: &dyn CounterStore) {
    let day = date!(2026 - 04 - 04);
    let events = [
        write(
            "n1",
            &["ha-noi"],
            day,
            &[Counter::Received, Counter::ReceivedOnline],
            Some("p1"),
        ),
        write(
            "n2",
            &["ha-noi"],
            day,
            &[Counter::Resolved, Counter::ResolvedOnTime],
            None,
        ),
    ];
    store.apply(&events).await.expect("apply");
    let needs = Needs {
        counters: vec![Counter::ReceivedOnline, Counter::Received],
        distinct: false,
    };
    let buckets = Period::parse("2026-04", day).expect("period").cover();
    let april = GroupsRead {
        groups: &[key("ha-noi", "ha-noi")],
        buckets: &buckets,
        needs: &needs,
    };
    let read = read_all(store, april).await[0];
    assert_eq!(
        (
            read.get(Counter::Received),
            read.get(Counter::ReceivedOnline)
        ),
        (1, 1)
    );
    assert_eq!(
        (
            read.get(Counter::Resolved),
            read.procedures_with_online_dossiers
        ),
        (0, 0),
        "not asked for"
    );
    let distinct_only = Needs {
        counters: vec![],
        distinct: true,
    };
    let read = read_all(
        store,
        GroupsRead {
            needs: &distinct_only,
            ..april
        },
    )
    .await[0];
    assert_eq!(
        (
            read.get(Counter::Received),
            read.procedures_with_online_dossiers
        ),
        (0, 1)
    );
    let nothing = Needs {
        counters: vec![],
        distinct: false,
    };
    assert_eq!(
        read_all(
            store,
            GroupsRead {
                needs: &nothing,
                ..april
            }
        )
        .await,
        [Counters::default()]
    );
}

/// What keeping `publication` answers: `None` when this call kept it, else the bytes kept
/// before.
async fn kept(store: &dyn CounterStore, publication: NewPublication<'_>) -> Option<Vec<u8>> {
    store.keep_publication(publication).await.expect("keep")
}

/// What the store reads for `read`.
async fn read_all(store: &dyn CounterStore, read: GroupsRead<'_>) -> Vec<Counters> {
    store.read(read).await.expect("read")
}

/// `read.counters` of each of `read.of.children` (in the parent's tree) read alone, over
/// `read.buckets`: what the parent's roll-up of them must equal.
async fn each_alone(store: &dyn CounterStore, read: ChildrenRead<'_>) -> Vec<Counters> {
    let groups: Vec<Vec<AgencyKey>> = read
        .of
        .children
        .iter()
        .map(|c| key(read.of.parent.root.as_str(), c.as_str()))
        .collect();
    let needs = Needs {
        counters: read.counters.to_vec(),
        distinct: false,
    };
    let alone = GroupsRead {
        groups: &groups,
        buckets: read.buckets,
        needs: &needs,
    };
    read_all(store, alone).await
}

/// `counters` of `children` under `parent`, over no bucket yet.
fn children_of<'a>(
    parent: &'a AgencyKey,
    children: &'a [AgencyId],
    counters: &'a [Counter],
) -> ChildrenRead<'a> {
    ChildrenRead {
        of: Children { parent, children },
        buckets: &[],
        counters,
    }
}

/// Asserts that `asked` over each of `spans` reads from the roll-up what each child read
/// alone gives.
async fn rolled_up_as_each_alone(
    store: &dyn CounterStore,
    asked: ChildrenRead<'_>,
    spans: &[Vec<Bucket>],
) {
    for buckets in spans {
        let read = ChildrenRead { buckets, ..asked };
        assert_eq!(
            roll_up_read(store, read).await,
            each_alone(store, read).await,
            "{} children over {buckets:?}",
            read.of.children.len()
        );
    }
}

/// `asked` over `buckets`, from the parent's roll-up of its children.
async fn roll_up_over(
    store: &dyn CounterStore,
    asked: ChildrenRead<'_>,
    buckets: &[Bucket],
) -> Vec<Counters> {
    roll_up_read(store, ChildrenRead { buckets, ..asked }).await
}

/// `read` as the store answers it from the parent's roll-up of its children.
async fn roll_up_read(store: &dyn CounterStore, read: ChildrenRead<'_>) -> Vec<Counters> {
    store.read_children(read).await.expect("read children")
}

/// A parent's roll-up of its children reads, for each child, exactly what reading the child
/// alone gives: its own events and its units', each counted once, over any buckets; children
/// not asked for are left out, children without data read as zero.
pub async fn children_read_like_each_child_alone(store: &dyn CounterStore) {
    let (may, june) = (date!(2026 - 05 - 05), date!(2026 - 06 - 10));
    let commune = ["hb-commune", "hb-district", "hoa-binh"];
    let district = ["hb-district", "hoa-binh"];
    let dept = ["hb-dept", "hoa-binh"];
    let received = [Counter::Received, Counter::ReceivedOnline];
    let batch = [
        write("c1", &commune, may, &received, None),
        write("c1", &commune, may, &received, None),
        write("d1", &district, may, &[Counter::Received], None),
        write("d2", &district, june, &[Counter::Resolved], None),
        write("p1", &dept, june, &received, None),
        write("r1", &["hoa-binh"], may, &received, None),
    ];
    store.apply(&batch).await.expect("apply");
    // Applied again: every one a duplicate, nothing moves.
    store.apply(&batch).await.expect("apply");
    // A later batch counts into the same day: added to what its roll-up held.
    store
        .apply(&[
            write("c2", &commune, may, &received, None),
            write("d3", &district, may, &[Counter::Received], None),
        ])
        .await
        .expect("apply");

    let parent = agency_key("hoa-binh", "hoa-binh");
    let children = [id("hb-dept"), id("hb-district"), id("hb-quiet")];
    let counters = [
        Counter::Received,
        Counter::ReceivedOnline,
        Counter::Resolved,
    ];
    let asked = children_of(&parent, &children, &counters);
    let spans = [
        vec![Bucket::Day(may)],
        vec![Bucket::Month(2026, 6)],
        vec![Bucket::Year(2026)],
        vec![Bucket::Day(may), Bucket::Month(2026, 6)],
        vec![Bucket::Year(2025)],
    ];
    rolled_up_as_each_alone(store, asked, &spans).await;
    let year = roll_up_over(store, asked, &[Bucket::Year(2026)]).await;
    let triple = |c: &Counters| counters.map(|k| c.get(k));
    assert_eq!(
        year.iter().map(triple).collect::<Vec<_>>(),
        [[1, 1, 0], [4, 2, 1], [0, 0, 0]],
        "hb-dept, hb-district (with its commune), hb-quiet"
    );
    let day = roll_up_over(store, asked, &[Bucket::Day(may)]).await;
    assert_eq!(
        day.iter().map(triple).collect::<Vec<_>>(),
        [[0, 0, 0], [4, 2, 0], [0, 0, 0]],
        "the day of both batches"
    );
    // One level down: the district's children.
    let district_key = agency_key("hoa-binh", "hb-district");
    let communes = roll_up_over(
        store,
        children_of(&district_key, &[id("hb-commune")], &counters),
        &[Bucket::Year(2026)],
    )
    .await;
    assert_eq!(triple(&communes[0]), [2, 2, 0]);
}

/// A parent with many children (a province's communes) reads its roll-up exactly, whether a
/// bucket holds a count for most children (a year) or for a few (a day), and whatever the
/// order the children are asked in.
pub async fn many_children_read_like_each_child_alone(store: &dyn CounterStore) {
    let (busy, quiet) = (date!(2026 - 03 - 02), date!(2026 - 03 - 09));
    let units: Vec<String> = (0..600).map(|i| format!("hb-unit-{i:03}")).collect();
    // 500 of the 600 units receive on the busy day, unit i (i + 1) % 4 + 1 times; every
    // 97th also on the quiet day.
    let mut batch = Vec::new();
    for (i, unit) in units.iter().enumerate().take(500) {
        for n in 0..=(i + 1) % 4 {
            let event = format!("{unit}-{n}");
            batch.push(write(
                &event,
                &[unit, "hoa-binh"],
                busy,
                &[Counter::Received],
                None,
            ));
        }
        if i % 97 == 0 {
            let event = format!("{unit}-quiet");
            let received = [Counter::Received, Counter::ReceivedOnline];
            batch.push(write(&event, &[unit, "hoa-binh"], quiet, &received, None));
        }
    }
    store.apply(&batch).await.expect("apply");

    let parent = agency_key("hoa-binh", "hoa-binh");
    // Asked in reverse order, with 100 children that never reported.
    let children: Vec<AgencyId> = units.iter().rev().map(|u| id(u)).collect();
    let counters = [Counter::Received, Counter::ReceivedOnline];
    let asked = children_of(&parent, &children, &counters);
    let spans = [
        vec![Bucket::Year(2026)],
        vec![Bucket::Day(quiet)],
        vec![Bucket::Month(2026, 3), Bucket::Day(busy)],
        vec![Bucket::Day(date!(2026 - 03 - 03))],
    ];
    rolled_up_as_each_alone(store, asked, &spans).await;
    let year = roll_up_over(store, asked, &[Bucket::Year(2026)]).await;
    let received: u64 = year.iter().map(|c| c.get(Counter::Received)).sum();
    let expected: u64 = (0..500u64).map(|i| (i + 1) % 4 + 1).sum::<u64>() + 6;
    assert_eq!(received, expected, "every reception of the year, once");
    assert_eq!(
        year[0].get(Counter::Received),
        0,
        "hb-unit-599 never reported"
    );
}

/// The dossiers open past due at the end of `last` for each group, read as aggregate reads
/// them: the due-day counters summed over every day up to `last`.
async fn open_past_due_at_end(
    store: &dyn CounterStore,
    groups: &[Vec<AgencyKey>],
    last: Date,
) -> Vec<u64> {
    // No due day in these checks is after this one.
    let plan = backlog::prefix_plan(last, date!(2099 - 12 - 31));
    let needs = Needs {
        counters: backlog::DUE_COUNTERS.to_vec(),
        distinct: false,
    };
    let mut totals = read_all(
        store,
        GroupsRead {
            groups,
            buckets: &plan.add,
            needs: &needs,
        },
    )
    .await;
    let outside = read_all(
        store,
        GroupsRead {
            groups,
            buckets: &plan.subtract,
            needs: &needs,
        },
    )
    .await;
    for (total, outside) in totals.iter_mut().zip(&outside) {
        total.subtract(outside);
    }
    totals
        .iter()
        .map(|c| {
            c.get(Counter::DueOpened)
                .saturating_sub(c.get(Counter::DueClosed))
        })
        .collect()
}

/// A dossier received with a due time on day D and resolved on day R is open past due at
/// the end of exactly the days D ≤ b < R (Vietnam days), for its agency and every ancestor;
/// never resolved, for every day from D. A resolution that arrives before its reception
/// counts the same; a resolution before the due time never counts; retries change nothing,
/// and a second reception of the same dossier is not counted; a parent's roll-up of its
/// children agrees.
pub async fn dossiers_are_open_past_due_from_their_due_day_to_their_resolution(
    store: &dyn CounterStore,
) {
    let chain = ["hb-dept", "hoa-binh"];
    let on = |raw: &str| parse_day(raw).expect("valid day");
    let dossier_event = |event: &str, dossier: &str, day: Date, stage: StageEvent| {
        let mut w = write(event, &chain, day, &[Counter::Received], None);
        w.dossier = DossierId::parse(dossier).expect("valid id");
        w.stage = Some(stage);
        w
    };
    let received = |event: &str, dossier: &str, day: &str, due: OffsetDateTime| {
        let due_day = Some(vietnam_day(due));
        dossier_event(event, dossier, on(day), StageEvent::Received { due_day })
    };
    let resolved = |event: &str, dossier: &str, day: &str| {
        let day = on(day);
        dossier_event(event, dossier, day, StageEvent::Resolved { day })
    };
    // Due at five in the afternoon of `day`, Vietnam time.
    let due = |day: &str| {
        on(day)
            .with_hms(17, 0, 0)
            .expect("valid time")
            .assume_offset(VIETNAM)
    };
    // A: due 00:30 on 31 December in Vietnam (still 30 December in UTC), resolved on
    // 5 January. B: its resolution (10 February) arrives before its reception (due
    // 1 February). C: due 15 January, never resolved. D: resolved before it was due. E:
    // resolved on 2 January before it was due (4 January), the resolution arriving first.
    let a_due = datetime!(2025-12-31 00:30 +7);
    let first = vec![
        received("a-rcv", "A", "2025-12-20", a_due),
        resolved("b-res", "B", "2026-02-10"),
        received("c-rcv", "C", "2026-01-02", due("2026-01-15")),
        received("d-rcv", "D", "2026-01-02", due("2026-01-25")),
        resolved("e-res", "E", "2026-01-02"),
    ];
    let second = vec![
        resolved("a-res", "A", "2026-01-05"),
        received("b-rcv", "B", "2026-01-20", due("2026-02-01")),
        resolved("d-res", "D", "2026-01-10"),
        received("e-rcv", "E", "2025-12-28", due("2026-01-04")),
        received("a-rcv-again", "A", "2026-01-06", due("2026-03-01")),
        received("c-rcv-again", "C", "2026-01-06", due("2026-01-20")),
    ];
    store.apply(&first).await.expect("apply");
    let again = Applied::Repeated {
        stage: Stage::Received,
    };
    let counted_second = [
        vec![Applied::Accepted; 4],
        vec![again.clone(), again.clone()],
    ]
    .concat();
    assert_eq!(store.apply(&second).await.expect("apply"), counted_second);
    // Resent: the counted ones are duplicates; the second receptions, whose ids were not
    // remembered, are judged again.
    let retried = [first, second].concat();
    let mut expected = vec![Applied::Duplicate; retried.len() - 2];
    expected.extend([again.clone(), again]);
    assert_eq!(store.apply(&retried).await.expect("apply"), expected);

    let groups = [
        key("hoa-binh", "hb-dept"),
        key("hoa-binh", "hoa-binh"),
        key("hoa-binh", "hb-other"),
    ];
    let parent = agency_key("hoa-binh", "hoa-binh");
    for (last, expected) in [
        (date!(2019 - 12 - 31), 0),
        (date!(2025 - 12 - 30), 0),
        (date!(2025 - 12 - 31), 1),
        (date!(2026 - 01 - 03), 1),
        (date!(2026 - 01 - 04), 1),
        (date!(2026 - 01 - 05), 0),
        (date!(2026 - 01 - 14), 0),
        (date!(2026 - 01 - 15), 1),
        (date!(2026 - 01 - 31), 1),
        (date!(2026 - 02 - 01), 2),
        (date!(2026 - 02 - 09), 2),
        (date!(2026 - 02 - 10), 1),
        (date!(2026 - 12 - 31), 1),
        (date!(2027 - 06 - 30), 1),
    ] {
        assert_eq!(
            open_past_due_at_end(store, &groups, last).await,
            [expected, expected, 0],
            "hb-dept, hoa-binh, hb-other at the end of {last}"
        );
        let plan = backlog::prefix_plan(last, date!(2099 - 12 - 31));
        let children = [id("hb-dept"), id("hb-quiet")];
        let due = ChildrenRead {
            of: Children {
                parent: &parent,
                children: &children,
            },
            buckets: &plan.add,
            counters: &backlog::DUE_COUNTERS,
        };
        let mut rolled_up = roll_up_read(store, due).await;
        let outside = roll_up_over(store, due, &plan.subtract).await;
        for (total, outside) in rolled_up.iter_mut().zip(&outside) {
            total.subtract(outside);
        }
        let alone = open_past_due_at_end(
            store,
            &[key("hoa-binh", "hb-dept"), key("hoa-binh", "hb-quiet")],
            last,
        )
        .await;
        let from_roll_up: Vec<u64> = rolled_up
            .iter()
            .map(|c| {
                c.get(Counter::DueOpened)
                    .saturating_sub(c.get(Counter::DueClosed))
            })
            .collect();
        assert_eq!(from_roll_up, alone, "children at the end of {last}");
    }
}

/// Each stage of a dossier counts once, whatever event id it comes under and in whichever
/// batch: a second reception, resolution, fee payment or feedback of one dossier is
/// `Repeated`, counts nothing, and is judged again when resent; an event of the dossier under
/// another procedure is not counted either; the same dossier id of another agency is another
/// dossier.
pub async fn a_stage_counts_once_per_dossier(store: &dyn CounterStore) {
    let chain = ["hb-dept", "hoa-binh"];
    let day = date!(2026 - 05 - 04);
    let of_dossier = |event: &str, dossier: &str, increments: &[Counter]| {
        let mut w = write(event, &chain, day, increments, None);
        w.dossier = DossierId::parse(dossier).expect("valid id");
        w
    };
    let stages = [
        &[Counter::Received, Counter::ReceivedInPerson][..],
        &[Counter::Resolved, Counter::ResolvedOnTime],
        &[Counter::FeePaid],
        &[Counter::Feedback, Counter::FeedbackSatisfied],
    ];
    let first: Vec<EventWrite> = stages
        .iter()
        .enumerate()
        .map(|(i, counters)| of_dossier(&format!("first-{i}"), "HS-1", counters))
        .collect();
    assert_eq!(
        store.apply(&first).await.expect("apply"),
        vec![Applied::Accepted; 4]
    );
    // Each stage again under new ids, with other values; and in a batch of its own.
    let again: Vec<EventWrite> = [
        &[Counter::Received, Counter::ReceivedOnline][..],
        &[Counter::Resolved],
        &[Counter::FeePaid, Counter::FeePaidOnline],
        &[Counter::Feedback],
    ]
    .iter()
    .enumerate()
    .map(|(i, counters)| of_dossier(&format!("again-{i}"), "HS-1", counters))
    .collect();
    let repeated: Vec<Applied> = [
        Stage::Received,
        Stage::Resolved,
        Stage::FeePaid,
        Stage::Feedback,
    ]
    .into_iter()
    .map(|stage| Applied::Repeated { stage })
    .collect();
    assert_eq!(store.apply(&again).await.expect("apply"), repeated);
    assert_eq!(
        store.apply(&again).await.expect("apply"),
        repeated,
        "resent"
    );
    // A dossier is for one procedure: an event of HS-1 under another is not counted.
    let mut elsewhere_procedure = of_dossier("other-procedure", "HS-1", &[Counter::FeePaid]);
    elsewhere_procedure.procedure = ProcedureId::parse("p-other").expect("valid id");
    assert_eq!(
        store.apply(&[elsewhere_procedure]).await.expect("apply"),
        [Applied::OtherProcedure]
    );
    let mut elsewhere = of_dossier("first-0", "HS-1", stages[0]);
    elsewhere.agency = id("hb-other");
    elsewhere.chain = [id("hb-other"), id("hoa-binh")].into_iter().collect();
    assert_eq!(
        store.apply(&[elsewhere]).await.expect("apply"),
        [Applied::Accepted]
    );
    let counted = read_one(store, "hoa-binh", "hb-dept", &day.to_string()).await;
    for (counter, expected) in [
        (Counter::Received, 1),
        (Counter::ReceivedInPerson, 1),
        (Counter::ReceivedOnline, 0),
        (Counter::Resolved, 1),
        (Counter::ResolvedOnTime, 1),
        (Counter::FeePaid, 1),
        (Counter::FeePaidOnline, 0),
        (Counter::Feedback, 1),
        (Counter::FeedbackSatisfied, 1),
    ] {
        assert_eq!(counted.get(counter), expected, "{counter:?}");
    }
    assert_eq!(
        read_one(store, "hoa-binh", "hoa-binh", &day.to_string())
            .await
            .get(Counter::Received),
        2,
        "hb-dept's HS-1 and hb-other's"
    );
}

/// A correction takes back exactly what the event it names counts and counts its own
/// content instead; a retraction only takes back. Checked in every bucket, the parent's
/// roll-up, the procedure breakdown, the online sets (a set loses a procedure only when no
/// online reception of it is left in its bucket) and the backlog; a correction resent is a
/// duplicate; and every refusal changes nothing.
pub async fn corrections_take_back_exactly(store: &dyn CounterStore) {
    let chain = ["hb-dept", "hoa-binh"];
    // 10 and 20 June (one month, the second quarter), 5 August (the third quarter).
    let (d1, d2, d3) = (
        date!(2026 - 06 - 10),
        date!(2026 - 06 - 20),
        date!(2026 - 08 - 05),
    );
    let online = [Counter::Received, Counter::ReceivedOnline];
    let in_person = [Counter::Received, Counter::ReceivedInPerson];
    let event = |id: &str, dossier: &str, day: Date, counters: &[Counter], procedure: &str| {
        let mut w = write(id, &chain, day, counters, None);
        w.dossier = DossierId::parse(dossier).expect("valid id");
        w.procedure = ProcedureId::parse(procedure).expect("valid id");
        if counters.contains(&Counter::ReceivedOnline) {
            w.delta.online_procedure = Some(w.procedure.clone());
        }
        w
    };
    let correct = |id: &str, target: &str, mut w: EventWrite| {
        w.event_id = EventId::parse(id).expect("valid id");
        w.corrects = Some(EventId::parse(target).expect("valid id"));
        w
    };
    let retract = |id: &str, target: &str, dossier: &str, procedure: &str| {
        let mut w = correct(id, target, event(id, dossier, d1, &[], procedure));
        w.stage = None;
        w
    };
    let due = |w: EventWrite, due_day: Date| EventWrite {
        stage: Some(StageEvent::Received {
            due_day: Some(due_day),
        }),
        ..w
    };
    let resolved = |id: &str, dossier: &str, day: Date| {
        let mut w = event(id, dossier, day, &[Counter::Resolved], "p0");
        w.stage = Some(StageEvent::Resolved { day });
        w
    };
    // Enough other ids in the tree that a correction's target is in another bucket than the
    // correction (a store must read both).
    let others: Vec<EventWrite> = (0..1_500)
        .map(|i| {
            write(
                &format!("other-{i}"),
                &["hb-other", "hoa-binh"],
                d3,
                &[Counter::FeePaid],
                None,
            )
        })
        .collect();
    store.apply(&others).await.expect("apply");
    store
        .apply(&[
            event("r1", "D1", d1, &online, "p-on"),
            event("r2", "D2", d3, &online, "p-on"),
            event("r3", "D3", d1, &in_person, "p0"),
            due(event("r4", "D4", d1, &in_person, "p0"), d1),
            resolved("r5", "D4", d3),
        ])
        .await
        .expect("apply");
    let distinct = |period: &'static str| async move {
        read_one(store, "hoa-binh", "hb-dept", period)
            .await
            .procedures_with_online_dossiers
    };
    assert_eq!((distinct("2026-06").await, distinct("2026").await), (1, 1));
    assert_eq!(
        open_past_due_at_end(store, &[key("hoa-binh", "hb-dept")], date!(2026 - 07 - 01)).await,
        [1],
        "D4 due on 10 June, resolved on 5 August"
    );

    // r1 was in fact received in person, on 20 June; r3 never happened; r4's reception
    // is taken back (its resolution stays); D4 is resolved on 15 June instead.
    let fixed = correct("c1", "r1", event("c1", "D1", d2, &in_person, "p-on"));
    let fixed_resolution = correct("c4", "r5", resolved("c4", "D4", date!(2026 - 06 - 15)));
    let outcomes = store
        .apply(&[
            fixed.clone(),
            retract("c2", "r3", "D3", "p0"),
            fixed_resolution,
            retract("c3", "r4", "D4", "p0"),
        ])
        .await
        .expect("apply");
    assert_eq!(outcomes, vec![Applied::Accepted; 4]);
    let counted = |period: &'static str, agency: &'static str| async move {
        let c = read_one(store, "hoa-binh", agency, period).await;
        [
            Counter::Received,
            Counter::ReceivedOnline,
            Counter::ReceivedInPerson,
            Counter::Resolved,
        ]
        .map(|counter| c.get(counter))
    };
    for agency in ["hb-dept", "hoa-binh"] {
        assert_eq!(
            counted("2026-06-10", agency).await,
            [0, 0, 0, 0],
            "{agency}"
        );
        assert_eq!(
            counted("2026-06-20", agency).await,
            [1, 0, 1, 0],
            "{agency}"
        );
        assert_eq!(counted("2026-06", agency).await, [1, 0, 1, 1], "{agency}");
        assert_eq!(counted("2026", agency).await, [2, 1, 1, 1], "{agency}");
    }
    // The parent's roll-ups of its children (a day's records, a year's packed counts).
    let parent = agency_key("hoa-binh", "hoa-binh");
    for (bucket, expected) in [
        (Bucket::Day(d1), 0),
        (Bucket::Day(d2), 1),
        (Bucket::Year(2026), 1),
    ] {
        let rolled = roll_up_over(
            store,
            children_of(&parent, &[id("hb-dept")], &[Counter::ReceivedInPerson]),
            &[bucket],
        )
        .await;
        assert_eq!(
            rolled[0].get(Counter::ReceivedInPerson),
            expected,
            "{bucket:?}"
        );
    }
    // No online reception of p-on is left in June, nor in the second quarter; August keeps
    // the year's.
    assert_eq!(
        (
            distinct("2026-06-10").await,
            distinct("2026-06").await,
            distinct("2026-Q2").await,
            distinct("2026").await
        ),
        (0, 0, 0, 1)
    );
    for agency in ["hb-dept", "hoa-binh"] {
        let procedures = |bucket: Bucket| async move {
            store
                .read_procedures(ProceduresRead {
                    of: &key("hoa-binh", agency),
                    buckets: &[bucket],
                    counters: &[
                        Counter::Received,
                        Counter::ReceivedOnline,
                        Counter::Resolved,
                    ],
                })
                .await
                .expect("read procedures")
                .into_iter()
                .map(|(p, c)| {
                    let got = [
                        Counter::Received,
                        Counter::ReceivedOnline,
                        Counter::Resolved,
                    ]
                    .map(|counter| c.get(counter));
                    (p.to_string(), got)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            procedures(Bucket::Day(d1)).await,
            [],
            "{agency}: every event of 10 June taken back, no procedure is listed"
        );
        assert_eq!(
            procedures(Bucket::Month(2026, 6)).await,
            [("p-on".to_owned(), [1, 0, 0]), ("p0".to_owned(), [0, 0, 1])],
            "{agency}"
        );
    }
    assert_eq!(
        open_past_due_at_end(store, &[key("hoa-binh", "hb-dept")], date!(2026 - 07 - 01)).await,
        [0],
        "D4's reception taken back"
    );

    // Resent: duplicates. Refused: nothing changes, and each is judged again when resent.
    assert_eq!(
        store.apply(&[fixed]).await.expect("apply"),
        [Applied::Duplicate]
    );
    let mut elsewhere = correct("c5", "r2", event("c5", "D9", d3, &in_person, "p-on"));
    let refused = [
        retract("c6", "nope", "D1", "p-on"),
        retract("c7", "c1", "D1", "p-on"),
        retract("c8", "r3", "D3", "p0"),
        elsewhere.clone(),
        correct("c9", "r2", {
            let mut paid = event("c9", "D2", d3, &[Counter::FeePaid], "p-on");
            paid.stage = Some(StageEvent::FeePaid);
            paid
        }),
    ];
    let why = [
        Uncorrectable::Unknown,
        Uncorrectable::Correction,
        Uncorrectable::Retracted,
        Uncorrectable::OtherDossier,
        Uncorrectable::OtherStage(Stage::Received),
    ];
    let expected: Vec<Applied> = why.into_iter().map(Applied::Uncorrectable).collect();
    assert_eq!(store.apply(&refused).await.expect("apply"), expected);
    assert_eq!(
        store.apply(&refused).await.expect("apply"),
        expected,
        "resent"
    );
    assert_eq!(counted("2026", "hoa-binh").await, [2, 1, 1, 1]);
    assert_eq!(distinct("2026").await, 1);
    // Corrected again, naming the original: from the correction's content.
    elsewhere.event_id = EventId::parse("c10").expect("valid id");
    elsewhere.dossier = DossierId::parse("D1").expect("valid id");
    elsewhere.corrects = Some(EventId::parse("r1").expect("valid id"));
    elsewhere.day = d1;
    elsewhere.delta = CounterDelta {
        increments: online.to_vec(),
        online_procedure: Some(ProcedureId::parse("p-on").expect("valid id")),
    };
    assert_eq!(
        store.apply(&[elsewhere]).await.expect("apply"),
        [Applied::Accepted]
    );
    assert_eq!(counted("2026-06", "hoa-binh").await, [1, 1, 0, 1]);
    assert_eq!(
        (distinct("2026-06-10").await, distinct("2026-Q2").await),
        (1, 1),
        "back in the online sets"
    );
}

/// An (agency, event id) counts once whatever day it claims: the same event sent again
/// with another day (a resend after a clock was fixed) is a conflict, as is other content
/// under the id on its own day; a resend of what was counted is a duplicate; none counts.
pub async fn an_id_counts_once_whatever_day_it_claims(store: &dyn CounterStore) {
    let chain = ["hb-dept", "hoa-binh"];
    let (day, other_day) = (date!(2026 - 03 - 10), date!(2026 - 03 - 11));
    let first = write("once", &chain, day, &[Counter::Received], None);
    assert_eq!(
        store
            .apply(std::slice::from_ref(&first))
            .await
            .expect("apply"),
        [Applied::Accepted]
    );
    let moved = write("once", &chain, other_day, &[Counter::Received], None);
    let other = write(
        "once",
        &chain,
        day,
        &[Counter::Received, Counter::ReceivedOnline],
        None,
    );
    assert_eq!(
        store
            .apply(&[moved, other, first.clone()])
            .await
            .expect("apply"),
        [
            Applied::Conflict {
                fields: vec!["occurred_at"]
            },
            Applied::Conflict {
                fields: vec!["kind"]
            },
            Applied::Duplicate
        ]
    );
    for (d, expected) in [(day, 1), (other_day, 0)] {
        assert_eq!(
            read_one(store, "hoa-binh", "hb-dept", &d.to_string())
                .await
                .get(Counter::Received),
            expected,
            "{d}"
        );
    }
    // The same id from another agency is another event.
    let elsewhere = write(
        "once",
        &["hb-other", "hoa-binh"],
        other_day,
        &[Counter::Received],
        None,
    );
    assert_eq!(
        store.apply(&[elsewhere]).await.expect("apply"),
        [Applied::Accepted]
    );
}

/// Two writers (aggregate replicas) writing one tree in turn: each sees what the other wrote
/// since its own last write (ids, dossiers' stages, counter records), whatever it keeps of
/// the tree from its own writes (`RedisStore`'s write cache).
pub async fn writers_in_turn_see_each_others_writes(a: &dyn CounterStore, b: &dyn CounterStore) {
    let chain = ["hb-dept", "hoa-binh"];
    let day = date!(2026 - 05 - 04);
    let events = |name: &str, dossiers: std::ops::Range<usize>, counters: &[Counter]| {
        dossiers
            .map(|n| {
                let mut w = write(&format!("{name}-{n}"), &chain, day, counters, None);
                w.dossier = DossierId::parse(&format!("HS-{n}")).expect("valid id");
                w
            })
            .collect::<Vec<EventWrite>>()
    };
    let apply = async |store: &dyn CounterStore, batch: Vec<EventWrite>| {
        store.apply(&batch).await.expect("apply")
    };
    let (accepted, duplicate) = (vec![Applied::Accepted; 20], vec![Applied::Duplicate; 20]);
    let received = &[Counter::Received][..];
    assert_eq!(apply(a, events("r", 0..20, received)).await, accepted);
    assert_eq!(apply(b, events("r", 20..40, received)).await, accepted);
    assert_eq!(
        apply(a, events("r", 20..40, received)).await,
        duplicate,
        "b's ids, sent to a"
    );
    assert_eq!(
        apply(b, events("r", 0..20, received)).await,
        duplicate,
        "a's ids, sent to b"
    );
    // Dossiers the other writer received: resolved once, and received again under new ids
    // is a stage counted already.
    let resolved = &[Counter::Resolved][..];
    assert_eq!(apply(a, events("s", 20..40, resolved)).await, accepted);
    assert_eq!(
        apply(b, events("again", 20..40, received)).await,
        vec![
            Applied::Repeated {
                stage: Stage::Received
            };
            20
        ]
    );
    assert_eq!(apply(b, events("s", 0..20, resolved)).await, accepted);
    assert_eq!(apply(a, events("s", 0..20, resolved)).await, duplicate);
    // Every count added to what the other writer wrote, in the unit's records and the root's.
    for store in [a, b] {
        for agency in ["hb-dept", "hoa-binh"] {
            for period in [day.to_string(), "2026-05".to_owned(), "2026".to_owned()] {
                let counted = read_one(store, "hoa-binh", agency, &period).await;
                assert_eq!(
                    [Counter::Received, Counter::Resolved].map(|c| counted.get(c)),
                    [40, 40],
                    "{agency} {period}"
                );
            }
        }
    }
}

/// Two writers (aggregate replicas) applying batches with the same ids and dossiers at once
/// count each id once, and leave every dossier as some order of the batches would.
pub async fn concurrent_writers_count_each_id_once(a: &dyn CounterStore, b: &dyn CounterStore) {
    let chain = ["hb-dept", "hoa-binh"];
    let day = date!(2026 - 04 - 01);
    let due = StageEvent::Received {
        due_day: Some(date!(2026 - 04 - 03)),
    };
    // 40 batches of 50, each sent by both writers at once, overlapping by half with the
    // next: 1,025 distinct ids, 513 dossiers, most received twice under two ids.
    let batches: Vec<Vec<EventWrite>> = (0..40)
        .map(|b| {
            (0..50)
                .map(|i| {
                    let n = b * 25 + i;
                    let mut event =
                        write(&format!("c{n}"), &chain, day, &[Counter::Received], None);
                    event.dossier =
                        DossierId::parse(&format!("dossier-{}", n / 2)).expect("valid id");
                    event.stage = Some(due);
                    event
                })
                .collect()
        })
        .collect();
    // Each call also counts a rejection, and a third at once counts one alone: none lost.
    let today = govpulse_core::period::vietnam_day(OffsetDateTime::now_utc());
    let rejection = [rejected(&chain, 1, today)];
    let mut accepted = 0;
    for batch in &batches {
        let (x, y, z) = futures::join!(
            a.apply_with_rejected(batch, &rejection),
            b.apply_with_rejected(batch, &rejection),
            b.apply_with_rejected(&[], &rejection)
        );
        assert_eq!(z.expect("apply"), []);
        for outcomes in [x.expect("apply"), y.expect("apply")] {
            accepted += outcomes.iter().filter(|o| **o == Applied::Accepted).count();
        }
    }
    assert_eq!(
        accepted, 513,
        "each dossier's reception counted by one writer, once, whichever id came first"
    );
    let activity = a
        .read_activity(
            &[key("hoa-binh", "hb-dept"), key("hoa-binh", "hoa-binh")].concat(),
            &[today],
        )
        .await
        .expect("read_activity");
    for agency in activity {
        assert_eq!(agency.days[0].rejected, 120, "every call's rejection, once");
    }
    let counted = read_one(a, "hoa-binh", "hb-dept", &day.to_string()).await;
    assert_eq!(counted.get(Counter::Received), 513);
    // The parent's roll-ups of the day (records read and written back) and of the year
    // (increments) hold the same, whichever writer wrote.
    let parent = agency_key("hoa-binh", "hoa-binh");
    for bucket in [Bucket::Day(day), Bucket::Year(2026)] {
        let dept = [id("hb-dept")];
        let asked = children_of(&parent, &dept, &[Counter::Received]);
        let rolled = roll_up_over(b, asked, &[bucket]).await;
        assert_eq!(rolled[0].get(Counter::Received), 513, "{bucket:?}");
    }
    // 513 dossiers, each opened once whoever received it first, due on 3 April.
    let open = open_past_due_at_end(a, &[key("hoa-binh", "hb-dept")], date!(2026 - 04 - 03)).await;
    assert_eq!(open, [513]);
}

/// Assessed scores are kept per agency, period, profile and criterion; reporting one again
/// replaces it, and a read names only the asked profile's criteria.
pub async fn assessed_scores_replace_per_agency_criterion_and_period(store: &dyn CounterStore) {
    let at =
        |agency: &str, bucket: Bucket, profile: &str, criterion: &str, hundredths| AssessedWrite {
            key: key(agency, agency).remove(0),
            bucket,
            profile: profile.to_owned(),
            criterion: criterion.to_owned(),
            hundredths,
        };
    let (y2024, y2023) = (Bucket::Year(2024), Bucket::Year(2023));
    let first = [
        at("ha-giang", y2024, "quality", "function", 3_875),
        at("ha-giang", y2024, "quality", "security", 1_100),
        at("ha-giang", y2023, "quality", "function", 1_000),
        at("ha-giang", y2024, "service", "transparency", 1_800),
        at("lang-son", y2024, "quality", "function", 4_000),
    ];
    store.put_assessed(&first).await.expect("put");
    store.put_assessed(&first).await.expect("put again");
    store
        .put_assessed(&[at("ha-giang", y2024, "quality", "security", 1_250)])
        .await
        .expect("replace");
    store.put_assessed(&[]).await.expect("nothing to put");
    let agencies: Vec<AgencyKey> = ["ha-giang", "lang-son", "nowhere"]
        .iter()
        .flat_map(|a| key(a, a))
        .collect();
    let read = |bucket, profile: &'static str| {
        let agencies = agencies.clone();
        async move {
            store
                .read_assessed(AssessedRead {
                    agencies: &agencies,
                    bucket,
                    profile,
                })
                .await
                .expect("read")
        }
    };
    let owned = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|(c, h)| ((*c).to_owned(), *h)).collect()
    };
    assert_eq!(
        read(y2024, "quality").await,
        [
            owned(&[("function", 3_875), ("security", 1_250)]),
            owned(&[("function", 4_000)]),
            vec![]
        ],
        "the same report twice changes nothing; a new value replaces the old one"
    );
    assert_eq!(
        read(y2023, "quality").await,
        [owned(&[("function", 1_000)]), vec![], vec![]]
    );
    assert_eq!(
        read(y2024, "service").await,
        [owned(&[("transparency", 1_800)]), vec![], vec![]]
    );
    assert_eq!(
        read(Bucket::Quarter(2024, 1), "quality").await,
        [vec![], vec![], vec![]],
        "a year's assessment is not a quarter's"
    );
    assert!(
        store
            .read_assessed(AssessedRead {
                agencies: &[],
                bucket: y2024,
                profile: "quality"
            })
            .await
            .expect("read")
            .is_empty()
    );
}

/// Every agency of a counted event's chain keeps the latest acceptance and the latest event
/// time, whatever order batches arrive in, and counts its events per day of acceptance; a
/// resend changes nothing, and an agency never heard from reads as never seen.
pub async fn activity_keeps_the_latest_and_counts_arrivals(store: &dyn CounterStore) {
    let chain = ["hb-commune", "hb-district", "hoa-binh"];
    // Accepted on the last three days (arrivals are kept for a few weeks only).
    let today = govpulse_core::period::vietnam_day(OffsetDateTime::now_utc());
    let days = [
        today - time::Duration::days(2),
        today - time::Duration::days(1),
        today,
    ];
    let mut first = write(
        "a1",
        &chain,
        date!(2026 - 05 - 05),
        &[Counter::FeePaid],
        None,
    );
    first.accepted_at = noon(days[0]);
    // Accepted a day later, about an event two days earlier: the latest acceptance moves,
    // the latest event time does not.
    let mut late = write(
        "a2",
        &chain[1..],
        date!(2026 - 05 - 03),
        &[Counter::FeePaid],
        None,
    );
    late.accepted_at = noon(days[1]);
    store.apply(&[late.clone()]).await.expect("apply");
    store.apply(&[first.clone()]).await.expect("apply");
    // A resend a day later still: a duplicate, not a sign of life.
    let mut resent = first.clone();
    resent.accepted_at = noon(days[2]);
    store.apply(&[resent]).await.expect("apply");
    let keys: Vec<AgencyKey> = ["hb-commune", "hb-district", "hoa-binh", "hb-other"]
        .into_iter()
        .flat_map(|a| key("hoa-binh", a))
        .collect();
    let activity = store
        .read_activity(&keys, &days)
        .await
        .expect("read_activity");
    let seen = |accepted: &EventWrite, occurred: &EventWrite| Seen {
        last_accepted: Some(accepted.accepted_at),
        last_occurred: Some(occurred.occurred_at),
    };
    let expected = [
        Activity {
            seen: seen(&first, &first),
            days: per_day(&days, [(1, 0), (0, 0), (0, 0)]),
        },
        Activity {
            seen: seen(&late, &first),
            days: per_day(&days, [(1, 0), (1, 0), (0, 0)]),
        },
        Activity {
            seen: seen(&late, &first),
            days: per_day(&days, [(1, 0), (1, 0), (0, 0)]),
        },
        Activity {
            seen: Seen::default(),
            days: per_day(&days, [(0, 0); 3]),
        },
    ];
    assert_eq!(activity, expected);
    // Agencies of several trees in one call keep their order.
    let mixed: Vec<AgencyKey> = [key("ha-noi", "ha-noi"), key("hoa-binh", "hoa-binh")].concat();
    let activity = store
        .read_activity(&mixed, &[])
        .await
        .expect("read_activity");
    assert_eq!(
        activity,
        [
            Activity::default(),
            Activity {
                seen: seen(&late, &first),
                days: Vec::new(),
            }
        ]
    );
}

/// Events of `days`, each day's (accepted, rejected).
fn per_day<const N: usize>(days: &[Date; N], counts: [(u64, u64); N]) -> Vec<DailyEvents> {
    days.iter()
        .zip(counts)
        .map(|(day, (accepted, rejected))| DailyEvents {
            day: *day,
            accepted,
            rejected,
        })
        .collect()
}

/// `count` events of `chain[0]` rejected at noon of `day`.
fn rejected(chain: &[&str], count: u64, day: Date) -> RejectedWrite {
    RejectedWrite {
        chain: chain.iter().map(|a| id(a)).collect(),
        count,
        rejected_at: noon(day),
    }
}

/// Rejected events count per Vietnam day of rejection for every agency of their chain, beside
/// the accepted ones and in the same batch, in several trees at once or with no event at all;
/// they are no sign of life (what was seen stays), and an agency without any reads as none.
pub async fn rejections_count_per_day_for_the_chain_beside_accepted_events(
    store: &dyn CounterStore,
) {
    let chain = ["hb-commune", "hb-district", "hoa-binh"];
    let today = govpulse_core::period::vietnam_day(OffsetDateTime::now_utc());
    let days = [today - time::Duration::days(1), today];
    let mut event = write("q1", &chain, days[0], &[Counter::FeePaid], None);
    event.accepted_at = noon(today);
    let outcomes = store
        .apply_with_rejected(
            std::slice::from_ref(&event),
            &[
                rejected(&chain, 2, today),
                rejected(&chain[1..], 1, days[0]),
                // Another tree in the same batch.
                rejected(&["ha-noi"], 3, today),
            ],
        )
        .await
        .expect("apply");
    assert_eq!(outcomes, [Applied::Accepted]);
    // Rejections alone: nothing to count but them.
    let outcomes = store
        .apply_with_rejected(&[], &[rejected(&chain, 4, today)])
        .await
        .expect("apply");
    assert!(outcomes.is_empty(), "{outcomes:?}");
    // The event resent: a duplicate, not counted again; its batch's rejection is.
    let outcomes = store
        .apply_with_rejected(&[event.clone()], &[rejected(&chain[2..], 1, today)])
        .await
        .expect("apply");
    assert_eq!(outcomes, [Applied::Duplicate]);

    let keys: Vec<AgencyKey> = [
        key("hoa-binh", "hb-commune"),
        key("hoa-binh", "hb-district"),
        key("hoa-binh", "hoa-binh"),
        key("hoa-binh", "hb-other"),
        key("ha-noi", "ha-noi"),
    ]
    .concat();
    let activity = store
        .read_activity(&keys, &days)
        .await
        .expect("read_activity");
    let seen = Seen {
        last_accepted: Some(event.accepted_at),
        last_occurred: Some(event.occurred_at),
    };
    let expected = [
        Activity {
            seen,
            days: per_day(&days, [(0, 0), (1, 6)]),
        },
        Activity {
            seen,
            days: per_day(&days, [(0, 1), (1, 6)]),
        },
        Activity {
            seen,
            days: per_day(&days, [(0, 1), (1, 7)]),
        },
        Activity {
            seen: Seen::default(),
            days: per_day(&days, [(0, 0), (0, 0)]),
        },
        Activity {
            seen: Seen::default(),
            days: per_day(&days, [(0, 0), (0, 3)]),
        },
    ];
    assert_eq!(activity, expected);
    // Without days: what was seen only.
    let seen_only = store
        .read_activity(&keys[..1], &[])
        .await
        .expect("read_activity");
    assert_eq!(seen_only, [Activity { seen, days: vec![] }]);
}

/// Runs every check on stores from `fresh`, one fresh store per check.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: CounterStore,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    retried_event_is_counted_once(&fresh().await).await;
    duplicate_within_a_batch_is_counted_once(&fresh().await).await;
    event_ids_are_scoped_by_agency(&fresh().await).await;
    events_count_in_every_bucket_of_their_day(&fresh().await).await;
    units_count_for_their_ancestors(&fresh().await).await;
    procedures_count_for_their_chain(&fresh().await).await;
    distinct_procedures_are_exact_over_ranges(&fresh().await).await;
    mixed_batches_keep_positions_and_sum(&fresh().await).await;
    unknown_agencies_read_as_zero(&fresh().await).await;
    groups_sum_and_union_exactly(&fresh().await).await;
    many_groups_union_exactly(&fresh().await).await;
    reads_fetch_what_is_needed(&fresh().await).await;
    children_read_like_each_child_alone(&fresh().await).await;
    many_children_read_like_each_child_alone(&fresh().await).await;
    dossiers_are_open_past_due_from_their_due_day_to_their_resolution(&fresh().await).await;
    an_id_counts_once_whatever_day_it_claims(&fresh().await).await;
    a_stage_counts_once_per_dossier(&fresh().await).await;
    corrections_take_back_exactly(&fresh().await).await;
    assessed_scores_replace_per_agency_criterion_and_period(&fresh().await).await;
    activity_keeps_the_latest_and_counts_arrivals(&fresh().await).await;
    rejections_count_per_day_for_the_chain_beside_accepted_events(&fresh().await).await;
    publications_are_kept_once_and_listed_newest_first(&fresh().await).await;
    let store = fresh().await;
    concurrent_keeps_keep_one_publication(&store, &store).await;
}

/// A change notice published through one handle of a backend reaches every subscriber of
/// every handle of it (`a` and `b` share one backend: two replicas), exactly as published.
pub async fn notices_reach_every_subscriber(a: &dyn CounterStore, b: &dyn CounterStore) {
    let mut on_a = a.subscribe_changes().await.expect("subscribe through a");
    let mut on_b = b.subscribe_changes().await.expect("subscribe through b");
    let notice = ChangeNotice {
        origin: "replica-a".into(),
        agencies: vec![id("hoa-binh.dept-01"), id("hoa-binh")].into(),
        days: vec![time::macros::date!(2026 - 08 - 15)].into(),
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
    };
    a.publish_change(&notice).await.expect("publish");
    for (name, receiver) in [("a", &mut on_a), ("b", &mut on_b)] {
        let heard = tokio::time::timeout(std::time::Duration::from_secs(5), receiver.recv())
            .await
            .unwrap_or_else(|_| panic!("{name} hears the notice within 5 s"))
            .expect("a notice");
        assert_eq!(heard, notice, "{name} hears it as published");
    }
}

/// A publication is kept under its id once: keeping the same bytes again, or other bytes,
/// changes nothing and answers the first bytes; an unknown id has none; the list is newest
/// first to the millisecond (ties by id ascending), paged by offset and limit, with the
/// number kept in all. Bytes are kept as given, whatever they hold.
pub async fn publications_are_kept_once_and_listed_newest_first(store: &dyn CounterStore) {
    let list = |offset, limit| async move {
        let (summaries, total) = store
            .publications(offset, limit)
            .await
            .expect("publications");
        let summaries: Vec<String> = summaries
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        (summaries, total)
    };
    let none: Vec<String> = Vec::new();
    assert_eq!(list(0, 10).await, (none.clone(), 0), "nothing kept yet");
    assert_eq!(store.publication("w49").await.expect("publication"), None);

    let at = datetime!(2026-12-05 07:15:17.589 UTC);
    // Not text: every byte value, and more than one network packet of them.
    let body: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let w49 = NewPublication {
        id: "w49",
        published_at: at,
        body: &body,
        summary: b"s-w49",
    };
    assert_eq!(kept(store, w49).await, None, "kept");
    assert_eq!(
        kept(store, w49).await,
        Some(body.clone()),
        "the same again: nothing written, the bytes kept answered"
    );
    let other = NewPublication {
        published_at: at + time::Duration::days(7),
        body: b"other",
        summary: b"s-other",
        ..w49
    };
    assert_eq!(
        kept(store, other).await,
        Some(body.clone()),
        "other bytes under a kept id: the first ones answered, nothing overwritten"
    );
    assert_eq!(
        store.publication("w49").await.expect("publication"),
        Some(body)
    );
    assert_eq!(store.publication("w50").await.expect("publication"), None);
    assert_eq!(
        list(0, 10).await,
        (vec!["s-w49".to_owned()], 1),
        "its summary and time as first kept"
    );

    // Older, newer, and three published in one millisecond (ties: by id ascending).
    let ms = time::Duration::milliseconds;
    let keep = |id: &'static str, at: OffsetDateTime| async move {
        let summary = format!("s-{id}");
        let earlier = kept(
            store,
            NewPublication {
                id,
                published_at: at,
                body: id.as_bytes(),
                summary: summary.as_bytes(),
            },
        );
        assert_eq!(earlier.await, None, "{id} is new");
    };
    keep("w48", at - time::Duration::days(7)).await;
    keep("tie-b", at + ms(5)).await;
    keep("tie-c", at + ms(5) + time::Duration::microseconds(900)).await;
    keep("tie-a", at + ms(5) + time::Duration::microseconds(300)).await;
    keep("newest", at + time::Duration::days(1)).await;
    keep("0-first-id", at - time::Duration::days(365)).await;
    let all = [
        "s-newest",
        "s-tie-a",
        "s-tie-b",
        "s-tie-c",
        "s-w49",
        "s-w48",
        "s-0-first-id",
    ]
    .map(str::to_owned);
    assert_eq!(list(0, 10).await, (all.to_vec(), 7), "newest first");
    assert_eq!(list(0, 7).await, (all.to_vec(), 7), "exactly all");
    assert_eq!(list(0, 1).await, (all[..1].to_vec(), 7), "the newest");
    assert_eq!(list(2, 3).await, (all[2..5].to_vec(), 7), "a page");
    assert_eq!(list(5, 3).await, (all[5..].to_vec(), 7), "the last page");
    assert_eq!(list(7, 3).await, (none.clone(), 7), "past the end");
    assert_eq!(list(100, 1).await, (none.clone(), 7), "far past the end");
    assert_eq!(list(3, 0).await, (none, 7), "no summary asked for");
    assert_eq!(
        list(usize::MAX, usize::MAX).await.1,
        7,
        "huge numbers are no error"
    );
    assert_eq!(list(1, usize::MAX).await, (all[1..].to_vec(), 7));
}

/// Writers (aggregate replicas; `a` and `b` may be one store) keeping one id with different
/// bytes at once: exactly one keeps its bytes, and the other answers those bytes, as later
/// reads and the list do.
pub async fn concurrent_keeps_keep_one_publication(a: &dyn CounterStore, b: &dyn CounterStore) {
    let at = datetime!(2026-12-05 07:00 UTC);
    for n in 0..20 {
        let id = format!("race-{n}");
        let (x, y) = tokio::join!(
            a.keep_publication(NewPublication {
                id: &id,
                published_at: at,
                body: b"from-a",
                summary: b"s-a"
            }),
            b.keep_publication(NewPublication {
                id: &id,
                published_at: at,
                body: b"from-b",
                summary: b"s-b"
            }),
        );
        let (x, y) = (x.expect("keep"), y.expect("keep"));
        let (winner, other): (&[u8], _) = match (&x, &y) {
            (None, Some(_)) => (b"from-a", y),
            (Some(_), None) => (b"from-b", x),
            _ => panic!("{id}: exactly one kept it: {x:?} {y:?}"),
        };
        assert_eq!(
            other.as_deref(),
            Some(winner),
            "{id}: the other answers the bytes of the one that kept it"
        );
        for store in [a, b] {
            assert_eq!(
                store
                    .publication(&id)
                    .await
                    .expect("publication")
                    .as_deref(),
                Some(winner)
            );
        }
    }
    let (summaries, total) = b.publications(0, 100).await.expect("publications");
    assert_eq!((summaries.len(), total), (20, 20), "each id listed once");
    assert!(summaries.iter().all(|s| s == b"s-a" || s == b"s-b"));
    // The same moment for all: listed by id ascending ("race-1" < "race-10" < "race-2").
    let mut ids: Vec<String> = (0..20).map(|n| format!("race-{n}")).collect();
    ids.sort();
    for (id, summary) in ids.iter().zip(&summaries) {
        let kept = a.publication(id).await.expect("publication");
        let expected: &[u8] = if kept.as_deref() == Some(b"from-a") {
            b"s-a"
        } else {
            b"s-b"
        };
        assert_eq!(summary, expected, "{id}: the summary kept with its bytes");
    }
}
