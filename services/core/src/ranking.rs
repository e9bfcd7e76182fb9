//! Ranking maths: order, shared ranks, selection, and the difference between two rankings.
//!
//! Rules (documented in the ranking proto too): highest value first; equal values share a
//! rank and the next rank skips (1, 2, 2, 4); among equal values the order is by agency id,
//! ascending, so it never changes between calls. Agencies under the minimum volume (a
//! denominator below [`Rules::min_volume`]) are not ranked (rank 0): they are listed after
//! the ranked ones, flagged, in the same order. Agencies with no data are not ranked either
//! and come last, by agency id.
//!
//! A ranking by a composite index ([`rank_scores_with`]) follows the same rules with the
//! exact score as the value; its volume is the one the caller gives (for a profile with
//! measured indicators, the dossiers received), or none for a profile that only holds
//! assessed points, which the minimum volume does not apply to.

use std::collections::HashMap;

use crate::{AgencyId, Rate, freshness::Freshness, index::Score};

/// One agency's place in a ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedRow {
    /// 1 for the best; 0 when the agency has no data.
    pub rank: u32,
    /// The agency.
    pub agency: AgencyId,
    /// Its value; `None` when it has no data.
    pub rate: Option<Rate>,
    /// It has data, but less volume than the minimum: listed, not ranked.
    pub below_minimum: bool,
    /// Its rank in the previous comparable period, when it was ranked then.
    pub previous_rank: Option<u32>,
    /// Its composite score, in a ranking by a composite index (`rate` is then `None`);
    /// `None` when it has no data or the ranking is by a metric.
    pub score: Option<Score>,
    /// Whether its figures are current ([`with_freshness`]); the default until told.
    pub freshness: Freshness,
    /// Its rank or value differs from the latest publication of this ranking
    /// ([`crate::publication::mark_revised`]); false when there is none.
    pub revised: bool,
}

impl RankedRow {
    /// Whether the row has a value (a rate or a score).
    fn has_value(&self) -> bool {
        self.rate.is_some() || self.score.is_some()
    }
}

/// How a ranking treats small agencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rules {
    /// The smallest denominator (dossiers, resolutions, …) for which an agency is ranked;
    /// 0 ranks every agency with data.
    pub min_volume: u64,
}

/// Ranks agencies by value with no minimum volume. See the module documentation.
pub fn rank(values: impl IntoIterator<Item = (AgencyId, Option<Rate>)>) -> Vec<RankedRow> {
    rank_with(values, Rules::default())
}

/// Ranks agencies by value. See the module documentation for the rules.
pub fn rank_with(
    values: impl IntoIterator<Item = (AgencyId, Option<Rate>)>,
    rules: Rules,
) -> Vec<RankedRow> {
    // Tier 0: ranked; 1: data below the minimum volume; 2: no data.
    let tier = |rate: &Option<Rate>| match rate {
        Some(r) if r.denominator() >= rules.min_volume => 0,
        Some(_) => 1,
        None => 2,
    };
    order_and_rank(values.into_iter().collect(), |rate| rate.as_ref(), tier)
        .into_iter()
        .map(|(rank, below_minimum, agency, rate)| RankedRow {
            rank,
            below_minimum,
            agency,
            rate,
            previous_rank: None,
            score: None,
            freshness: Freshness::default(),
            revised: false,
        })
        .collect()
}

/// The rows with each agency's freshness from `freshness` (an agency it does not name keeps
/// the default): freshness does not move a rank, it says whether the value is current.
pub fn with_freshness(
    mut rows: Vec<RankedRow>,
    freshness: &HashMap<AgencyId, Freshness>,
) -> Vec<RankedRow> {
    for row in &mut rows {
        if let Some(f) = freshness.get(&row.agency) {
            row.freshness = *f;
        }
    }
    rows
}

/// An agency's composite score (`None`: no data) and the volume the minimum applies to
/// (`None`: the minimum does not apply).
pub type Scored = (AgencyId, Option<Score>, Option<u64>);

/// Ranks agencies by composite score. See the module documentation for the rules.
pub fn rank_scores_with(values: impl IntoIterator<Item = Scored>, rules: Rules) -> Vec<RankedRow> {
    type Value = (Option<Score>, Option<u64>);
    let tier = |(score, volume): &Value| match (score, volume) {
        (None, _) => 2,
        (Some(_), Some(volume)) if *volume < rules.min_volume => 1,
        (Some(_), _) => 0,
    };
    let items: Vec<(AgencyId, Value)> = values
        .into_iter()
        .map(|(agency, score, volume)| (agency, (score, volume)))
        .collect();
    order_and_rank(items, |(score, _)| score.as_ref().map(|s| &s.total), tier)
        .into_iter()
        .map(|(rank, below_minimum, agency, (score, _))| RankedRow {
            rank,
            below_minimum,
            agency,
            rate: None,
            previous_rank: None,
            score,
            freshness: Freshness::default(),
            revised: false,
        })
        .collect()
}

/// Orders items by tier (0 ranked, 1 below the minimum volume, 2 no data), then value
/// (highest first), then id (an agency, or what else breaks ties: a procedure's volume and
/// id), and gives ranked ones their competition rank: equal values share a rank and the next
/// rank skips. Returns (rank, below minimum, id, item).
pub(crate) fn order_and_rank<Id: Ord, T, K: Ord>(
    mut items: Vec<(Id, T)>,
    value: impl Fn(&T) -> Option<&K>,
    tier: impl Fn(&T) -> u8,
) -> Vec<(u32, bool, Id, T)> {
    items.sort_by(|(a_id, a), (b_id, b)| {
        tier(a)
            .cmp(&tier(b))
            .then_with(|| value(b).cmp(&value(a)))
            .then_with(|| a_id.cmp(b_id))
    });
    let mut ranked: Vec<(u32, bool, Id, T)> = Vec::with_capacity(items.len());
    for (position, (agency, item)) in items.into_iter().enumerate() {
        let rank = match (tier(&item), ranked.last()) {
            (1 | 2, _) => 0,
            (_, Some((prev_rank, _, _, prev))) if *prev_rank > 0 && value(prev) == value(&item) => {
                *prev_rank
            }
            _ => u32::try_from(position + 1).unwrap_or(u32::MAX),
        };
        let below_minimum = tier(&item) == 1;
        ranked.push((rank, below_minimum, agency, item));
    }
    ranked
}

/// Sets each row's rank in the previous comparable period, from that period's ranking.
pub fn with_movement(mut current: Vec<RankedRow>, previous: &[RankedRow]) -> Vec<RankedRow> {
    let before: HashMap<&AgencyId, u32> = previous
        .iter()
        .filter(|r| r.rank > 0)
        .map(|r| (&r.agency, r.rank))
        .collect();
    for row in &mut current {
        row.previous_rank = before.get(&row.agency).copied();
    }
    current
}

/// Which rows of a ranking to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selection {
    /// Every row, ranked ones first, then those with no data.
    All,
    /// The first N ranked rows.
    Top(u32),
    /// The last N ranked rows, in rank order.
    Bottom(u32),
}

/// The rows of a full ranking (as [`rank`] returns it) that a selection shows.
pub fn select(ranking: &[RankedRow], selection: Selection) -> &[RankedRow] {
    let ranked = ranking.iter().take_while(|r| r.rank > 0).count();
    match selection {
        Selection::All => ranking,
        Selection::Top(n) => &ranking[..ranked.min(n as usize)],
        Selection::Bottom(n) => &ranking[ranked.saturating_sub(n as usize)..ranked],
    }
}

/// How many rows of a ranking have a value.
pub fn ranked_count(ranking: &[RankedRow]) -> usize {
    ranking.iter().filter(|r| r.rank > 0).count()
}

/// One row that differs between two shown rankings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChange {
    /// The row now; `None` when the agency left the shown rows.
    pub now: Option<RankedRow>,
    /// The agency.
    pub agency: AgencyId,
    /// Its rank before; `None` when it was not shown before.
    pub previous_rank: Option<u32>,
}

/// The rows whose rank or value changed between `before` and `after` (two selections of a
/// ranking), in `after`'s order, followed by the rows that left, in `before`'s order.
pub fn diff(before: &[RankedRow], after: &[RankedRow]) -> Vec<RowChange> {
    let old: HashMap<&AgencyId, &RankedRow> = before.iter().map(|r| (&r.agency, r)).collect();
    let mut changes: Vec<RowChange> = after
        .iter()
        .filter(|row| {
            old.get(&row.agency).is_none_or(|prev| {
                prev.rank != row.rank
                    || !same_fraction(prev.rate, row.rate)
                    || prev.score != row.score
                    || prev.below_minimum != row.below_minimum
                    || prev.previous_rank != row.previous_rank
                    || prev.freshness != row.freshness
                    || prev.revised != row.revised
            })
        })
        .map(|row| RowChange {
            now: Some(row.clone()),
            agency: row.agency.clone(),
            previous_rank: old.get(&row.agency).map(|prev| prev.rank),
        })
        .collect();
    let shown: HashMap<&AgencyId, ()> = after.iter().map(|r| (&r.agency, ())).collect();
    changes.extend(
        before
            .iter()
            .filter(|r| !shown.contains_key(&r.agency))
            .map(|r| RowChange {
                now: None,
                agency: r.agency.clone(),
                previous_rank: Some(r.rank),
            }),
    );
    changes
}

/// Whether two values are the same fraction as shown (1/2 and 2/4 are equal rates, but a
/// subscriber shows numerator and denominator, so they differ here).
fn same_fraction(a: Option<Rate>, b: Option<Rate>) -> bool {
    a.map(|r| (r.numerator(), r.denominator())) == b.map(|r| (r.numerator(), r.denominator()))
}

/// Applies changes from [`diff`] to `before`, giving `after`: what a subscriber does.
pub fn apply(before: &[RankedRow], changes: &[RowChange]) -> Vec<RankedRow> {
    let mut rows: HashMap<AgencyId, RankedRow> = before
        .iter()
        .map(|r| (r.agency.clone(), r.clone()))
        .collect();
    for change in changes {
        match &change.now {
            Some(row) => rows.insert(change.agency.clone(), row.clone()),
            None => rows.remove(&change.agency),
        };
    }
    let mut out: Vec<RankedRow> = rows.into_values().collect();
    // The order rank_with gives: ranked rows by rank, then rows below the minimum volume by
    // value, then rows with no data; agency id breaks ties.
    let tier = |r: &RankedRow| match (r.rank, r.has_value()) {
        (0, true) => 1,
        (0, false) => 2,
        _ => 0,
    };
    fn total(r: &RankedRow) -> Option<&crate::index::Points> {
        r.score.as_ref().map(|s| &s.total)
    }
    out.sort_by(|a, b| {
        tier(a)
            .cmp(&tier(b))
            .then_with(|| a.rank.cmp(&b.rank))
            .then_with(|| b.rate.cmp(&a.rate))
            .then_with(|| total(b).cmp(&total(a)))
            .then_with(|| a.agency.cmp(&b.agency))
    });
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::id;

    /// `agency` with the rate `numerator / denominator`.
    fn rated(agency: &str, numerator: u64, denominator: u64) -> (AgencyId, Option<Rate>) {
        (id(agency), Rate::new(numerator, denominator))
    }

    /// The ranking as it reads in a table: each row's rank and agency, in order, with `*`
    /// after an agency below the minimum volume.
    fn standings(rows: &[RankedRow]) -> String {
        rows.iter()
            .map(|r| {
                let flag = if r.below_minimum { "*" } else { "" };
                format!("{} {}{flag}", r.rank, r.agency.as_str())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn score(hundredths: u64) -> Score {
        Score {
            total: crate::index::Points::from_hundredths(hundredths),
            indicators: Vec::new(),
            grade: None,
            incomplete: false,
        }
    }

    #[test]
    fn rankings_by_rate_and_by_score_follow_the_same_rules() {
        let min_30 = Rules { min_volume: 30 };
        for (case, rows, expected, ranked) in [
            (
                "ties share a rank and keep agency id order",
                rank([
                    rated("d", 1, 2),
                    rated("c", 3, 4),
                    rated("b", 2, 4),
                    (id("a"), None),
                    rated("e", 9, 10),
                    rated("f", 50, 100),
                ]),
                "1 e, 2 c, 3 b, 3 d, 3 f, 0 a",
                5,
            ),
            (
                "small agencies are listed after ranked ones and flagged",
                rank_with(
                    [
                        rated("commune", 3, 3),
                        rated("big", 50, 100),
                        rated("bigger", 80, 200),
                        rated("tiny", 1, 2),
                        (id("none"), None),
                    ],
                    min_30,
                ),
                "1 big, 2 bigger, 0 commune*, 0 tiny*, 0 none",
                2,
            ),
            (
                "equal scores share a rank; no volume means the minimum does not apply",
                rank_scores_with(
                    [
                        (id("b"), Some(score(7_250)), Some(100)),
                        (id("a"), Some(score(7_250)), Some(100)),
                        (id("c"), Some(score(9_000)), Some(5)),
                        (id("d"), Some(score(8_000)), None),
                        (id("e"), None, Some(100)),
                        (id("f"), Some(score(6_000)), Some(100)),
                    ],
                    min_30,
                ),
                "1 d, 2 a, 2 b, 4 f, 0 c*, 0 e",
                4,
            ),
        ] {
            assert_eq!(standings(&rows), expected, "{case}");
            assert_eq!(ranked_count(&rows), ranked, "{case}");
            assert_eq!(
                select(&rows, Selection::Top(10)).len(),
                ranked,
                "{case}: a top 10 never includes agencies below the minimum volume or without data"
            );
        }
    }

    #[test]
    fn selections_take_ranked_rows_only() {
        let rows = rank(
            (0..10)
                .map(|i| rated(&format!("a{i}"), i, 10))
                .chain([(id("z"), None)]),
        );
        assert_eq!(
            select(&rows, Selection::Top(3))
                .iter()
                .map(|r| r.agency.as_str())
                .collect::<Vec<_>>(),
            ["a9", "a8", "a7"]
        );
        assert_eq!(
            select(&rows, Selection::Bottom(2))
                .iter()
                .map(|r| r.rank)
                .collect::<Vec<_>>(),
            [9, 10]
        );
        assert_eq!(select(&rows, Selection::Top(50)).len(), 10);
        assert_eq!(select(&rows, Selection::Bottom(50)).len(), 10);
        assert_eq!(select(&rows, Selection::All).len(), 11);
        assert_eq!(ranked_count(&rows), 10);
    }

    #[test]
    fn an_agency_turning_stale_keeps_its_rank_and_is_a_change() {
        let rows = rank([rated("a", 5, 10), rated("b", 4, 10)]);
        let stale = Freshness {
            stale: true,
            ..Freshness::default()
        };
        let after = with_freshness(rows.clone(), &HashMap::from([(id("b"), stale)]));
        assert_eq!(standings(&after), standings(&rows));
        let changes = diff(&rows, &after);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].agency, id("b"));
        assert_eq!(changes[0].now.as_ref().map(|r| r.freshness), Some(stale));
        assert_eq!(apply(&rows, &changes), after);
    }

    #[test]
    fn diff_names_what_moved() {
        let before = rank([rated("a", 5, 10), rated("b", 4, 10), rated("c", 3, 10)]);
        let after = rank([rated("a", 5, 10), rated("b", 2, 10), rated("c", 3, 10)]);
        let changes = diff(&before, &after);
        let summary: Vec<(&str, Option<u32>, Option<u32>)> = changes
            .iter()
            .map(|c| {
                (
                    c.agency.as_str(),
                    c.previous_rank,
                    c.now.as_ref().map(|r| r.rank),
                )
            })
            .collect();
        assert_eq!(summary, [("c", Some(3), Some(2)), ("b", Some(2), Some(3))]);
        let top1_before = select(&before, Selection::Top(1));
        let top1_after = &[RankedRow {
            below_minimum: false,
            previous_rank: None,
            score: None,
            freshness: Freshness::default(),
            revised: false,
            rank: 1,
            agency: id("c"),
            rate: Rate::new(9, 10),
        }];
        let changes = diff(top1_before, top1_after);
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[1],
            RowChange {
                now: None,
                agency: id("a"),
                previous_rank: Some(1)
            }
        );
    }

    #[test]
    fn movement_is_the_rank_in_the_previous_period() {
        let before = rank([rated("a", 1, 10), rated("b", 9, 10), (id("c"), None)]);
        let now = with_movement(
            rank([rated("a", 10, 10), rated("b", 5, 10), rated("c", 1, 10)]),
            &before,
        );
        let moves: Vec<(&str, u32, Option<u32>)> = now
            .iter()
            .map(|r| (r.agency.as_str(), r.rank, r.previous_rank))
            .collect();
        assert_eq!(
            moves,
            [("a", 1, Some(2)), ("b", 2, Some(1)), ("c", 3, None)],
            "c was not ranked before: new"
        );
    }

    #[test]
    fn a_changed_score_is_a_change() {
        let rows = rank_scores_with(
            [
                (id("a"), Some(score(7_250)), Some(100)),
                (id("b"), Some(score(6_000)), None),
            ],
            Rules { min_volume: 30 },
        );
        let mut changed = rows.clone();
        changed[1].score = Some(score(6_001));
        let changes = diff(&rows, &changed);
        assert_eq!(changes.len(), 1, "a changed score is a change");
        assert_eq!(apply(&rows, &changes), changed);
    }

    fn arb_values() -> impl Strategy<Value = Vec<(AgencyId, Option<Rate>)>> {
        prop::collection::btree_map(0u32..40, prop::option::of((0u64..5, 1u64..5)), 0..30).prop_map(
            |m| {
                m.into_iter()
                    .map(|(k, v)| {
                        (
                            id(&format!("ag{k:02}")),
                            v.and_then(|(n, d)| Rate::new(n.min(d), d)),
                        )
                    })
                    .collect()
            },
        )
    }

    proptest! {
        /// Ranks never decrease down the list, equal values share a rank, a rank equals one
        /// plus the number of strictly better agencies, and input order does not matter.
        #[test]
        fn ranks_follow_the_competition_rule(values in arb_values(), seed in any::<u64>()) {
            let rows = rank(values.clone());
            for row in rows.iter().filter(|r| r.rank > 0) {
                let better = rows.iter().filter(|o| o.rate.is_some_and(|v| Some(v) > row.rate)).count();
                prop_assert_eq!(row.rank as usize, better + 1);
            }
            let mut shuffled = values;
            let n = shuffled.len();
            if n > 1 {
                shuffled.rotate_left((seed % n as u64) as usize);
            }
            prop_assert_eq!(rank(shuffled), rows);
        }

        /// With a minimum volume: every ranked row has at least that volume, ranked rows come
        /// first, and among them the competition rule holds.
        #[test]
        fn the_minimum_volume_never_lets_a_small_agency_above_a_large_one(values in arb_values(), min in 0u64..5) {
            let rows = rank_with(values, Rules { min_volume: min });
            let first_unranked = rows.iter().position(|r| r.rank == 0).unwrap_or(rows.len());
            prop_assert!(rows[first_unranked..].iter().all(|r| r.rank == 0));
            for row in &rows[..first_unranked] {
                let rate = row.rate.expect("ranked rows have data");
                prop_assert!(rate.denominator() >= min);
                let better = rows[..first_unranked].iter().filter(|o| o.rate > row.rate).count();
                prop_assert_eq!(row.rank as usize, better + 1);
            }
            for row in &rows[first_unranked..] {
                prop_assert_eq!(row.below_minimum, row.rate.is_some());
            }
        }

        /// Composite scores follow the same rules: a ranked row's rank is one plus the number
        /// of strictly better scores, rows under the minimum volume are never ranked, and a
        /// score without a volume is never under it; applying a diff gives the new ranking.
        #[test]
        fn scores_follow_the_competition_rule(
            a in prop::collection::btree_map(0u32..30, (prop::option::of(0u64..400), prop::option::of(0u64..5)), 0..20),
            b in prop::collection::btree_map(0u32..30, (prop::option::of(0u64..400), prop::option::of(0u64..5)), 0..20),
            min in 0u64..4,
        ) {
            let scored = |m: std::collections::BTreeMap<u32, (Option<u64>, Option<u64>)>| {
                m.into_iter()
                    .map(|(k, (h, volume))| (id(&format!("ag{k:02}")), h.map(score), volume))
                    .collect::<Vec<_>>()
            };
            let rules = Rules { min_volume: min };
            let rows = rank_scores_with(scored(a.clone()), rules);
            let total = |r: &RankedRow| r.score.as_ref().map(|s| s.total.clone());
            for row in rows.iter().filter(|r| r.rank > 0) {
                let better = rows.iter().filter(|o| o.rank > 0 && total(o) > total(row)).count();
                prop_assert_eq!(row.rank as usize, better + 1);
            }
            for (k, (h, volume)) in &a {
                let row = rows.iter().find(|r| r.agency.as_str() == format!("ag{k:02}")).expect("listed");
                let under = h.is_some() && volume.is_some_and(|v| v < min);
                prop_assert_eq!(row.below_minimum, under);
                prop_assert_eq!(row.rank > 0, h.is_some() && !under);
            }
            let after = rank_scores_with(scored(b), rules);
            prop_assert_eq!(apply(&rows, &diff(&rows, &after)), after);
        }

        /// Applying the diff of two rankings to the first gives the second.
        #[test]
        fn apply_of_diff_is_the_new_ranking(a in arb_values(), b in arb_values(), c in arb_values(), n in 1u32..10, min in 0u64..4) {
            let rules = Rules { min_volume: min };
            let previous = rank_with(c, rules);
            let (before, after) = (rank_with(a, rules), with_movement(rank_with(b, rules), &previous));
            for selection in [Selection::All, Selection::Top(n), Selection::Bottom(n)] {
                let (x, y) = (select(&before, selection), select(&after, selection));
                prop_assert_eq!(apply(x, &diff(x, y)), y.to_vec());
            }
        }
    }
}
