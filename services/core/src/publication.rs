//! Publications: a ranking frozen as it was published, and its revision log (what differs
//! now, and why).
//!
//! A publication keeps every row of a ranking as computed when it was published, and the
//! counters behind it per agency over stretches of the period's days (its *basis*). The
//! revision log computes the ranking again for the same query and days, lists every agency
//! whose rank or value differs ([`revisions`]), and explains each by the stretches whose
//! counters for that agency changed since ([`causes`]): late data when every day of the
//! stretch was over at publication, and otherwise days that were still running.
//!
//! The rules here are the product's word on what "revised" means: a row is revised when its
//! rank or its value differs, the value compared exactly (a rate's numerator and denominator,
//! a score's points), so that a rate that moved from 50/100 to 51/102 is revised although
//! its percentage is the same (its counts are not what was published).

use std::collections::HashMap;

use time::Date;

use crate::{AgencyId, Counter, Counters, Period, ranking::RankedRow};

/// The longest publication id.
pub const MAX_ID_LEN: usize = 64;

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// The most agency-days a basis keeps day by day; past it (or past 31 days) it keeps months.
pub const MAX_AGENCY_DAYS: usize = 20_000;

/// The most months a basis keeps month by month; past it, years.
pub const MAX_MONTHS: usize = 36;

/// Checks a publication id: 1 to [`MAX_ID_LEN`] characters from `a-z`, `0-9` and `-`, not
/// starting with `-`. The reason, when it is not one.
pub fn check_publication_id(raw: &str) -> Result<(), &'static str> {
    if raw.is_empty() {
        return Err("is required");
    }
    if raw.len() > MAX_ID_LEN {
        return Err("is longer than 64 characters");
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may hold only a-z, 0-9 and -");
    }
    if raw.starts_with('-') {
        return Err("must start with a letter or digit");
    }
    Ok(())
}

/// Checks a publication title: 1 to [`MAX_TITLE_CHARS`] characters, no control characters,
/// not only white space. The reason, when it is not one.
pub fn check_title(raw: &str) -> Result<(), &'static str> {
    if raw.trim().is_empty() {
        return Err("is required");
    }
    if raw.chars().count() > MAX_TITLE_CHARS {
        return Err("is longer than 200 characters");
    }
    if raw.chars().any(char::is_control) {
        return Err("may not hold control characters");
    }
    Ok(())
}

/// The period a publication keeps for a query written `expression` that covered `days`: a
/// relative period (`ytd`) becomes the range of days it covered, so that the publication and
/// its revisions always speak of the same days; any other period is kept as written (a
/// calendar period keeps its kind, which decides its previous period).
pub fn frozen_period(expression: &str, days: &Period) -> String {
    if expression.trim().eq_ignore_ascii_case("ytd") {
        Period::from_days(days.first_day(), days.last_day())
            .expression()
            .to_owned()
    } else {
        expression.trim().to_owned()
    }
}

/// The stretches of `period`'s days a basis keeps counters for, for `agencies` agencies, in
/// order: single days for a period of up to 31 days (and up to [`MAX_AGENCY_DAYS`]
/// agency-days), calendar months cut to the period up to [`MAX_MONTHS`] of them, calendar
/// years cut to the period otherwise. They cover the period exactly, each day once.
pub fn stretches(period: &Period, agencies: usize) -> Vec<Period> {
    let (first, last) = (period.first_day(), period.last_day());
    let days = usize::try_from((last - first).whole_days() + 1).unwrap_or(usize::MAX);
    if days <= 31 && days.saturating_mul(agencies.max(1)) <= MAX_AGENCY_DAYS {
        return (0..days)
            .map(|n| {
                let day = first + time::Duration::days(n as i64);
                Period::from_days(day, day)
            })
            .collect();
    }
    let months = (last.year() - first.year()) * 12 + i32::from(u8::from(last.month()))
        - i32::from(u8::from(first.month()))
        + 1;
    let by_month = usize::try_from(months).unwrap_or(usize::MAX) <= MAX_MONTHS;
    let mut out = Vec::new();
    let mut start = first;
    while start <= last {
        let end = if by_month {
            let m = crate::Bucket::Month(start.year(), u8::from(start.month()));
            m.last_day()
        } else {
            crate::Bucket::Year(start.year()).last_day()
        }
        .min(last);
        out.push(Period::from_days(start, end));
        match end.next_day() {
            Some(next) => start = next,
            None => break,
        }
    }
    out
}

/// One agency's standing in a ranking, as a revision compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The agency.
    pub agency: AgencyId,
    /// Its rank (0: not ranked).
    pub rank: u32,
    /// Its value, exactly: a rate's numerator and denominator, or a score's points; `None`
    /// when it has no data.
    pub value: Option<String>,
}

impl Standing {
    /// A standing from what a row shows: its rate as (numerator, denominator), else its
    /// score's points as written with two decimals (empty: none). The one way a value is
    /// written, whether the row was computed now or read from a kept publication, so that
    /// the two compare equal exactly when they are.
    pub fn of(agency: AgencyId, rank: u32, rate: Option<(u64, u64)>, score: &str) -> Standing {
        let value = match (rate, score) {
            (Some((numerator, denominator)), _) => Some(format!("{numerator}/{denominator}")),
            (None, "") => None,
            (None, points) => Some(points.to_owned()),
        };
        Standing {
            agency,
            rank,
            value,
        }
    }
}

impl From<&RankedRow> for Standing {
    /// A ranked row's standing ([`Standing::of`], its score written as a ranking message
    /// writes it).
    fn from(row: &RankedRow) -> Standing {
        let score = row
            .score
            .as_ref()
            .map(|s| s.total.two_decimals())
            .unwrap_or_default();
        Standing::of(
            row.agency.clone(),
            row.rank,
            row.rate.map(|r| (r.numerator(), r.denominator())),
            &score,
        )
    }
}

/// Marks each row of a ranking whose standing differs from the latest publication of the
/// same ranking (`published`, by agency) as revised, and the others not: an agency the
/// publication did not hold is revised (it joined the ranking since).
pub fn mark_revised(rows: &mut [RankedRow], published: &HashMap<AgencyId, Standing>) {
    for row in rows {
        row.revised = published
            .get(&row.agency)
            .is_none_or(|then| *then != Standing::from(&*row));
    }
}

/// One agency whose standing differs between a publication and now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The agency.
    pub agency: AgencyId,
    /// Its position among the published standings; `None` when it was not published.
    pub published: Option<usize>,
    /// Its position among the standings now; `None` when it is no longer ranked.
    pub now: Option<usize>,
    /// Places gained: the published rank minus the rank now; 0 when either is 0 (unranked)
    /// or missing.
    pub places_gained: i32,
}

/// The revision log of a ranking: every agency whose rank or value differs between
/// `published` and `now`, in the order of `now`, then the agencies only published (in their
/// published order); and how many agencies stand as published.
pub fn revisions(published: &[Standing], now: &[Standing]) -> (Vec<Revision>, usize) {
    let then: HashMap<&AgencyId, usize> = published
        .iter()
        .enumerate()
        .map(|(i, s)| (&s.agency, i))
        .collect();
    let mut seen = vec![false; published.len()];
    let mut out = Vec::new();
    let mut unchanged = 0;
    for (i, current) in now.iter().enumerate() {
        let before = then.get(&current.agency).copied();
        if let Some(b) = before {
            seen[b] = true;
            if published[b] == *current {
                unchanged += 1;
                continue;
            }
        }
        let places_gained = match before.map(|b| published[b].rank) {
            Some(was) if was > 0 && current.rank > 0 => {
                i32::try_from(i64::from(was) - i64::from(current.rank)).unwrap_or(0)
            }
            _ => 0,
        };
        out.push(Revision {
            agency: current.agency.clone(),
            published: before,
            now: Some(i),
            places_gained,
        });
    }
    out.extend(
        published
            .iter()
            .enumerate()
            .filter(|(i, _)| !seen[*i])
            .map(|(i, s)| Revision {
                agency: s.agency.clone(),
                published: Some(i),
                now: None,
                places_gained: 0,
            }),
    );
    (out, unchanged)
}

/// The counters of a basis over one stretch of days: each agency's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stretch {
    /// The days.
    pub days: Period,
    /// Each agency's counters over them.
    pub counters: HashMap<AgencyId, Counters>,
}

/// What changed in one agency's counters over one stretch since publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The days.
    pub days: Period,
    /// Every day of the stretch was over when the publication was made: late data.
    pub late: bool,
    /// The events behind the change: receptions, resolutions, payments, feedback,
    /// withdrawals and returns (negative when counters went down).
    pub events: i64,
    /// Of those, the dossiers withdrawn or returned (negative when taken back).
    pub withdrawals: i64,
    /// The corrections and retractions that changed these days' counters since publication.
    pub corrections: u64,
    /// Each counter that changed (its name in the API), as published and now.
    pub counters: Vec<(&'static str, u64, u64)>,
}

/// The counters a revision compares, by their names in the API, and whether each counts
/// events ([`counts_events`]): the summed counters in storage order, then the two that are
/// not summed.
fn compared(counters: &Counters) -> impl Iterator<Item = (&'static str, u64, bool)> + '_ {
    let summed = Counter::ALL.into_iter().filter_map(|counter| {
        api_name(counter).map(|name| (name, counters.get(counter), counts_events(counter)))
    });
    summed.chain([
        (
            "procedures_with_online_dossiers",
            counters.procedures_with_online_dossiers,
            false,
        ),
        ("open_past_due_at_end", counters.open_past_due_at_end, false),
    ])
}

/// A counter's name in the API; `None` for the due-day counters, which a revision does not
/// compare (the API shows them only as `open_past_due_at_end`). A match rather than a list,
/// so that a new counter cannot be left out unnoticed.
fn api_name(counter: Counter) -> Option<&'static str> {
    Some(match counter {
        Counter::Received => "received",
        Counter::ReceivedOnline => "received_online",
        Counter::ReceivedInPerson => "received_in_person",
        Counter::ReceivedPostal => "received_postal",
        Counter::Digitized => "digitized",
        Counter::ReceivedFullOnlineProcedure => "received_full_online_procedure",
        Counter::ReceivedOnlineFullOnlineProcedure => "received_online_full_online_procedure",
        Counter::Resolved => "resolved",
        Counter::ResolvedOnTime => "resolved_on_time",
        Counter::ResultElectronic => "result_electronic",
        Counter::FeePaid => "fee_paid",
        Counter::FeePaidOnline => "fee_paid_online",
        Counter::Feedback => "feedback",
        Counter::FeedbackSatisfied => "feedback_satisfied",
        Counter::Withdrawn => "withdrawn",
        Counter::Returned => "returned",
        Counter::Corrected => "corrected",
        Counter::DueOpened | Counter::DueClosed => return None,
    })
}

/// Whether a counter counts events, one per reception, resolution, payment, feedback,
/// withdrawal or return; the others count what those events were like.
fn counts_events(counter: Counter) -> bool {
    matches!(
        counter,
        Counter::Received
            | Counter::Resolved
            | Counter::FeePaid
            | Counter::Feedback
            | Counter::Withdrawn
            | Counter::Returned
    )
}

/// Why `agency`'s figures moved: for each stretch of the basis (in order) whose counters
/// differ between `published` and `now`, what changed. A stretch is late when it ended
/// before `published_day`, the Vietnam day of publication. Stretches are matched by their
/// days; an agency missing from a stretch has zero counters there.
pub fn causes(
    agency: &AgencyId,
    published: &[Stretch],
    now: &[Stretch],
    published_day: Date,
) -> Vec<Cause> {
    let zero = Counters::default();
    published
        .iter()
        .filter_map(|then| {
            let current = now.iter().find(|s| s.days == then.days)?;
            let before = then.counters.get(agency).unwrap_or(&zero);
            let after = current.counters.get(agency).unwrap_or(&zero);
            let moved = |counter: Counter| {
                i64::try_from(after.get(counter)).unwrap_or(i64::MAX)
                    - i64::try_from(before.get(counter)).unwrap_or(i64::MAX)
            };
            let mut events = 0i64;
            let counters: Vec<_> = compared(before)
                .zip(compared(after))
                .filter(|((_, b, _), (_, a, _))| a != b)
                .map(|((name, b, counts_events), (_, a, _))| {
                    if counts_events {
                        events += i64::try_from(a).unwrap_or(i64::MAX)
                            - i64::try_from(b).unwrap_or(i64::MAX);
                    }
                    (name, b, a)
                })
                .collect();
            (!counters.is_empty()).then(|| Cause {
                days: then.days.clone(),
                late: then.days.last_day() < published_day,
                events,
                withdrawals: moved(Counter::Withdrawn) + moved(Counter::Returned),
                corrections: u64::try_from(moved(Counter::Corrected)).unwrap_or(0),
                counters,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::date;

    use super::*;
    use crate::testing::id;

    fn standing(agency: &str, rank: u32, value: &str) -> Standing {
        Standing {
            agency: id(agency),
            rank,
            value: (!value.is_empty()).then(|| value.to_owned()),
        }
    }

    #[test]
    fn ids_and_titles_are_checked_with_a_reason() {
        for (case, checked, expected) in [
            (
                "a week's id",
                check_publication_id("weekly-2026-w49"),
                Ok(()),
            ),
            ("an empty id", check_publication_id(""), Err("is required")),
            (
                "an id with a capital",
                check_publication_id("Weekly"),
                Err("may hold only a-z, 0-9 and -"),
            ),
            (
                "an id starting with a dash",
                check_publication_id("-x"),
                Err("must start with a letter or digit"),
            ),
            (
                "an id of 65 characters",
                check_publication_id(&"a".repeat(65)),
                Err("is longer than 64 characters"),
            ),
            ("a title", check_title("Xếp hạng tuần 49"), Ok(())),
            ("a blank title", check_title("  "), Err("is required")),
            (
                "a title with a control character",
                check_title("a\u{7}b"),
                Err("may not hold control characters"),
            ),
            (
                "a title of 200 characters of 3 bytes each: characters, not bytes, count",
                check_title(&"ồ".repeat(200)),
                Ok(()),
            ),
            (
                "a title of 201 characters",
                check_title(&"ồ".repeat(201)),
                Err("is longer than 200 characters"),
            ),
        ] {
            assert_eq!(checked, expected, "{case}");
        }
    }

    #[test]
    fn every_counter_a_revision_compares_has_its_own_name_in_the_api() {
        let names: Vec<&str> = compared(&Counters::default())
            .map(|(name, ..)| name)
            .collect();
        let distinct: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        let unnamed: Vec<Counter> = Counter::ALL
            .into_iter()
            .filter(|c| api_name(*c).is_none())
            .collect();
        assert_eq!(unnamed, [Counter::DueOpened, Counter::DueClosed]);
    }

    #[test]
    fn ytd_is_frozen_to_its_days_and_calendar_periods_are_kept() {
        let today = date!(2026 - 12 - 05);
        let ytd = Period::parse("ytd", today).expect("ytd");
        assert_eq!(frozen_period("ytd", &ytd), "2026-01-01..2026-12-05");
        let week = Period::parse("2026-W49", today).expect("week");
        assert_eq!(frozen_period("2026-W49", &week), "2026-W49");
    }

    #[test]
    fn stretches_are_days_then_months_then_years() {
        let today = date!(2026 - 12 - 05);
        let month = Period::parse("2026-11", today).expect("month");
        assert_eq!(stretches(&month, 63).len(), 30);
        assert_eq!(
            stretches(&month, 1_000).len(),
            1,
            "30,000 agency-days: the month whole"
        );
        let ytd = Period::parse("ytd", today).expect("ytd");
        let months = stretches(&ytd, 63);
        assert_eq!(months.len(), 12);
        assert_eq!(months[11].expression(), "2026-12-01..2026-12-05");
        let long = Period::parse("2020-03-10..2026-02-01", today).expect("range");
        let years: Vec<_> = stretches(&long, 63)
            .iter()
            .map(|p| p.expression().to_owned())
            .collect();
        assert_eq!(
            years.first().map(String::as_str),
            Some("2020-03-10..2020-12-31")
        );
        assert_eq!(
            years.last().map(String::as_str),
            Some("2026-01-01..2026-02-01")
        );
        assert_eq!(years.len(), 7);
    }

    /// Standings of agencies `a0`..`a7`, some missing, with small ranks and values.
    fn arb_standings() -> impl Strategy<Value = Vec<Standing>> {
        prop::collection::vec(prop::option::of((0u32..4, 0u8..3)), 8).prop_map(|slots| {
            slots
                .into_iter()
                .enumerate()
                .filter_map(|(i, slot)| {
                    slot.map(|(rank, value)| Standing {
                        agency: id(&format!("a{i}")),
                        rank,
                        value: (value > 0).then(|| format!("{value}/3")),
                    })
                })
                .collect()
        })
    }

    proptest! {
        /// Every agency of either side is revised exactly when its standing differs (or it is
        /// on one side only), counted unchanged otherwise; each revision points at the
        /// agency's own standings, and places gained is the rank difference when both rank.
        #[test]
        fn a_revision_log_accounts_for_every_agency_once(published in arb_standings(), now in arb_standings()) {
            let (revised, unchanged) = revisions(&published, &now);
            let mut all: Vec<&AgencyId> = published.iter().chain(&now).map(|s| &s.agency).collect();
            all.sort();
            all.dedup();
            prop_assert_eq!(revised.len() + unchanged, all.len());
            for agency in all {
                let then = published.iter().find(|s| &s.agency == agency);
                let current = now.iter().find(|s| &s.agency == agency);
                let revision = revised.iter().find(|r| &r.agency == agency);
                prop_assert_eq!(revision.is_some(), then != current, "{}", agency);
                if let Some(r) = revision {
                    prop_assert_eq!(r.published.map(|i| &published[i]), then);
                    prop_assert_eq!(r.now.map(|i| &now[i]), current);
                    let expected = match (then, current) {
                        (Some(t), Some(c)) if t.rank > 0 && c.rank > 0 => t.rank as i32 - c.rank as i32,
                        _ => 0,
                    };
                    prop_assert_eq!(r.places_gained, expected);
                }
            }
        }

        /// Every day of the period lies in exactly one stretch, in order.
        #[test]
        fn stretches_cover_the_period_once(start in 0i64..4000, len in 0i64..2500, agencies in 0usize..3000) {
            let first = date!(2015 - 01 - 01) + time::Duration::days(start);
            let last = first + time::Duration::days(len);
            let period = Period::from_days(first, last);
            let parts = stretches(&period, agencies);
            prop_assert_eq!(parts.first().map(Period::first_day), Some(first));
            prop_assert_eq!(parts.last().map(Period::last_day), Some(last));
            for pair in parts.windows(2) {
                prop_assert_eq!(pair[0].last_day().next_day(), Some(pair[1].first_day()));
            }
            let years = usize::try_from(last.year() - first.year() + 1).unwrap_or(0);
            prop_assert!(parts.len() <= 31usize.max(MAX_MONTHS).max(years));
            prop_assert!(parts.iter().all(|p| p.first_day().year() == p.last_day().year()));
        }
    }

    #[test]
    fn a_revision_lists_every_changed_row_in_the_order_of_now() {
        let published = [
            standing("a", 1, "9/10"),
            standing("b", 2, "8/10"),
            standing("c", 3, "7/10"),
            standing("gone", 4, "1/10"),
        ];
        let now = [
            standing("c", 1, "19/20"),
            standing("a", 2, "9/10"),
            standing("b", 3, "8/10"),
            standing("new", 0, ""),
        ];
        let (rows, unchanged) = revisions(&published, &now);
        let seen: Vec<_> = rows
            .iter()
            .map(|r| (r.agency.as_str(), r.published, r.now, r.places_gained))
            .collect();
        assert_eq!(
            seen,
            [
                ("c", Some(2), Some(0), 2),
                ("a", Some(0), Some(1), -1),
                ("b", Some(1), Some(2), -1),
                ("new", None, Some(3), 0),
                ("gone", Some(3), None, 0),
            ]
        );
        assert_eq!(unchanged, 0);
        let same_percent = [standing("a", 1, "51/102")];
        let (rows, unchanged) = revisions(&[standing("a", 1, "50/100")], &same_percent);
        assert_eq!((rows.len(), unchanged), (1, 0), "counts differ: revised");
        let (rows, unchanged) = revisions(&same_percent, &same_percent);
        assert_eq!((rows.len(), unchanged), (0, 1));
    }

    #[test]
    fn rows_that_differ_from_the_publication_are_marked_revised() {
        let rows = crate::ranking::rank_with(
            [
                (id("a"), crate::Rate::new(9, 10)),
                (id("b"), crate::Rate::new(16, 20)),
                (id("c"), crate::Rate::new(1, 2)),
                (id("d"), None),
            ],
            crate::ranking::Rules::default(),
        );
        let mut now = rows.clone();
        let published: HashMap<AgencyId, Standing> = [
            standing("a", 1, "9/10"),
            standing("b", 2, "8/10"),
            standing("d", 0, ""),
        ]
        .into_iter()
        .map(|s| (s.agency.clone(), s))
        .collect();
        mark_revised(&mut now, &published);
        let marked: Vec<(&str, bool)> =
            now.iter().map(|r| (r.agency.as_str(), r.revised)).collect();
        assert_eq!(
            marked,
            [("a", false), ("b", true), ("c", true), ("d", false)],
            "b: 16/20 is not the 8/10 published; c was not published"
        );
        assert_eq!(
            crate::ranking::diff(&rows, &now).len(),
            2,
            "a flag is a change"
        );
    }

    #[test]
    fn causes_name_the_days_counters_and_events_and_tell_late_data() {
        let agency = id("ha-noi");
        let day = |d: Date| Period::from_days(d, d);
        let stretch = |d: Date, received: u64, online: u64, resolved: u64| Stretch {
            days: day(d),
            counters: [(
                agency.clone(),
                Counters::from_pairs([
                    (Counter::Received, received),
                    (Counter::ReceivedOnline, online),
                    (Counter::Resolved, resolved),
                ]),
            )]
            .into_iter()
            .collect(),
        };
        let (d1, d2, d3) = (
            date!(2026 - 12 - 01),
            date!(2026 - 12 - 02),
            date!(2026 - 12 - 03),
        );
        let published = [
            stretch(d1, 10, 5, 3),
            stretch(d2, 10, 5, 3),
            stretch(d3, 1, 0, 0),
        ];
        let now = [
            stretch(d1, 12, 7, 3),
            stretch(d2, 10, 5, 3),
            stretch(d3, 4, 1, 2),
        ];
        let found = causes(&agency, &published, &now, d3);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].days.first_day(), found[0].late, found[0].events),
            (d1, true, 2)
        );
        assert_eq!(
            found[0].counters,
            [("received", 10, 12), ("received_online", 5, 7)]
        );
        assert_eq!(
            (found[1].days.first_day(), found[1].late, found[1].events),
            (d3, false, 5),
            "the day of publication was still running"
        );
        assert!(causes(&id("hue"), &published, &now, d3).is_empty());
    }

    #[test]
    fn causes_count_corrections_and_withdrawals_apart_from_late_events() {
        let agency = id("ha-noi");
        let d = date!(2026 - 12 - 01);
        let stretch = |pairs: &[(Counter, u64)]| Stretch {
            days: Period::from_days(d, d),
            counters: [(agency.clone(), Counters::from_pairs(pairs.iter().copied()))]
                .into_iter()
                .collect(),
        };
        // Published: 3 received in person. Since: one corrected to online, one withdrawn, one
        // more received late.
        let published = [stretch(&[
            (Counter::Received, 3),
            (Counter::ReceivedInPerson, 3),
        ])];
        let now = [stretch(&[
            (Counter::Received, 4),
            (Counter::ReceivedInPerson, 3),
            (Counter::ReceivedOnline, 1),
            (Counter::Withdrawn, 1),
            (Counter::Corrected, 1),
        ])];
        let found = causes(&agency, &published, &now, date!(2026 - 12 - 05));
        assert_eq!(found.len(), 1);
        let cause = &found[0];
        assert_eq!(
            (
                cause.late,
                cause.events,
                cause.withdrawals,
                cause.corrections
            ),
            (true, 2, 1, 1)
        );
        assert_eq!(
            cause.counters,
            [
                ("received", 3, 4),
                ("received_online", 0, 1),
                ("withdrawn", 0, 1),
                ("corrected", 0, 1)
            ]
        );
    }
}
