//! Composite indexes: a weighted score out of a profile's total (100 points) built from
//! indicators, each worth a maximum number of points, with optional letter grades.
//!
//! - A **measured** indicator reads a metric: full points at or above its saturation rate,
//!   `rate × max / saturation` below it ("the share of procedures offered online earns full
//!   points at 80%").
//! - An **assessed** indicator is given its points by an assessor (a reported score between
//!   0 and the indicator's maximum), because no dossier event can measure it.
//! - The score is the exact sum of the indicators' points ([`Points`] is a fraction of big
//!   integers); it is rounded to two decimals only for display.
//! - A missing value (a metric with no data, or no assessed score reported) contributes no
//!   points and marks the score [`Score::incomplete`]: partial scores are shown, but flagged.
//!   An agency with no value at all has no score.
//! - Grades are bands given by their lower bound, best first; a band holds every score from
//!   its lower bound (included) up to the next better band's lower bound (excluded), so the
//!   published "B 80-89" holds 89.99 and "A 90-100" starts at exactly 90.
//!
//! Profiles are configuration (`deploy/config/indexes.toml`), parsed and checked by
//! [`Profiles::parse`].

use std::{cmp::Ordering, collections::HashSet, fmt, ops::Add};

use num_bigint::BigUint;
use serde::Deserialize;

use crate::{Metric, Rate};

/// The longest profile or criterion name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The largest total a profile may declare, in points (keeps every product of the score
/// arithmetic far from overflow before it reaches the big integers).
pub const MAX_TOTAL_POINTS: u64 = 10_000;

/// An exact, non-negative number of points: a fraction of big integers, so that sums of
/// `rate × max / saturation` terms are compared and graded without rounding.
#[derive(Debug, Clone)]
pub struct Points {
    numerator: BigUint,
    denominator: BigUint,
}

impl Points {
    /// No points.
    pub fn zero() -> Points {
        Points::ratio(0, 1)
    }

    /// `hundredths / 100` points.
    pub fn from_hundredths(hundredths: u64) -> Points {
        Points::ratio(u128::from(hundredths), 100)
    }

    /// `numerator / denominator` points; `denominator` is never zero.
    fn ratio(numerator: u128, denominator: u128) -> Points {
        Points {
            numerator: numerator.into(),
            denominator: denominator.max(1).into(),
        }
    }

    /// The points in hundredths, rounded half away from zero (7250 for 72.5 points).
    pub fn hundredths(&self) -> BigUint {
        let twice = &self.denominator * 2u32;
        (&self.numerator * 200u32 + &self.denominator) / twice
    }

    /// The points as published: two decimals, rounded half away from zero (`72.50`).
    pub fn two_decimals(&self) -> String {
        let digits = format!("{:0>3}", self.hundredths());
        let (whole, cents) = digits.split_at(digits.len() - 2);
        format!("{whole}.{cents}")
    }

    /// Whether the points are at least `hundredths / 100`, exactly.
    pub fn at_least_hundredths(&self, hundredths: u64) -> bool {
        &self.numerator * 100u32 >= &self.denominator * BigUint::from(hundredths)
    }
}

impl Add<&Points> for &Points {
    type Output = Points;

    fn add(self, other: &Points) -> Points {
        Points {
            numerator: &self.numerator * &other.denominator + &other.numerator * &self.denominator,
            denominator: &self.denominator * &other.denominator,
        }
    }
}

/// Exact comparison by cross-multiplication: 1/3 + 1/3 + 1/3 equals 1.
impl Ord for Points {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.numerator * &other.denominator).cmp(&(&other.numerator * &self.denominator))
    }
}

impl PartialOrd for Points {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Equal values are equal points: 1/2 == 50/100.
impl PartialEq for Points {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Points {}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.two_decimals())
    }
}

/// Why a number of points, as written, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a number of points; write digits with at most two decimals, like 38.75")]
pub struct BadPoints(pub String);

/// Parses points written with at most two decimals (`38.75`, `5`, `0.5`) into hundredths.
pub fn parse_hundredths(raw: &str) -> Result<u64, BadPoints> {
    let bad = || BadPoints(raw.to_owned());
    let (whole, cents) = raw.split_once('.').unwrap_or((raw, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 9 || cents.len() > 2 || !digits(whole) || !digits(cents) {
        return Err(bad());
    }
    if raw.ends_with('.') {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let cents: u64 = format!("{cents:0<2}").parse().map_err(|_| bad())?;
    Ok(whole * 100 + cents)
}

/// Hundredths of a point as text with two decimals: `3875` → `38.75`.
pub fn hundredths_text(hundredths: u64) -> String {
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// Where an indicator's points come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A metric: full points at or above `saturation_bp` (hundredths of a percent),
    /// proportional below.
    Measured {
        /// The metric read.
        metric: Metric,
        /// The rate that earns full points, in hundredths of a percent (8000 for 80%).
        saturation_bp: u32,
    },
    /// Points reported by an assessor, from 0 to the indicator's maximum.
    Assessed,
}

/// One indicator of a profile (a criterion, or a group of criteria scored together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    /// Its name within the profile, as typed in reports and shown in rankings: `function`.
    pub criterion: String,
    /// Its name for people.
    pub title: String,
    /// Its weight: the most points it can earn, in hundredths.
    pub max_hundredths: u64,
    /// Where its points come from.
    pub source: Source,
}

impl Indicator {
    /// The points a measured indicator earns for a rate: full points at or above the
    /// saturation rate, `rate × max / saturation` below it.
    pub fn measured_points(max_hundredths: u64, saturation_bp: u32, rate: Rate) -> Points {
        let (n, d) = (u128::from(rate.numerator()), u128::from(rate.denominator()));
        let saturation = u128::from(saturation_bp.max(1));
        // rate ≥ saturation ⇔ n / d ≥ bp / 10000 ⇔ n·10000 ≥ bp·d.
        if n * 10_000 >= saturation * d {
            return Points::from_hundredths(max_hundredths);
        }
        // max·(n/d)/(bp/10000) points = max_hundredths·n·100 / (d·bp).
        Points::ratio(u128::from(max_hundredths) * n * 100, d * saturation)
    }
}

/// A grade band: every score from `from_hundredths` up to the next better band's lower
/// bound (excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradeBand {
    /// The grade: `A`.
    pub grade: String,
    /// The lowest score of the band, in hundredths (included).
    pub from_hundredths: u64,
}

/// A composite index: its indicators, their weights and its grade bands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Its name, as typed in queries and reports: `service-index-766`.
    pub name: String,
    /// Its name for people.
    pub title: String,
    /// The most points a score can reach, in hundredths (the weights add up to it).
    pub total_hundredths: u64,
    /// The indicators, in the order they are shown.
    pub indicators: Vec<Indicator>,
    /// The grade bands, best first, the last starting at 0; empty when the profile has no
    /// grades.
    pub grades: Vec<GradeBand>,
}

/// One indicator's part of a score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorPoints {
    /// The indicator's criterion name.
    pub criterion: String,
    /// The most points it can earn, in hundredths.
    pub max_hundredths: u64,
    /// The points earned; `None` when its value is missing (no data, or not assessed).
    pub points: Option<Points>,
}

/// An agency's score on a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    /// The sum of the indicators' points, exact.
    pub total: Points,
    /// Each indicator's points, in the profile's order.
    pub indicators: Vec<IndicatorPoints>,
    /// The grade of the total; `None` when the profile has no grades.
    pub grade: Option<String>,
    /// Some indicator had no value: the total counts it as 0 points.
    pub incomplete: bool,
}

impl Profile {
    /// The indicator of a criterion.
    pub fn indicator(&self, criterion: &str) -> Option<&Indicator> {
        self.indicators.iter().find(|i| i.criterion == criterion)
    }

    /// The metrics the measured indicators read, each once, in the profile's order.
    pub fn metrics(&self) -> Vec<Metric> {
        let mut metrics = Vec::new();
        for indicator in &self.indicators {
            if let Source::Measured { metric, .. } = indicator.source
                && !metrics.contains(&metric)
            {
                metrics.push(metric);
            }
        }
        metrics
    }

    /// The criteria of the assessed indicators, in the profile's order.
    pub fn assessed_criteria(&self) -> impl Iterator<Item = &str> {
        self.indicators
            .iter()
            .filter(|i| i.source == Source::Assessed)
            .map(|i| i.criterion.as_str())
    }

    /// The part of the profile made of `criteria` (one, or a group), as a profile of its
    /// own: ranked by the sum of their points, out of the sum of their maxima, without the
    /// profile's grades (they grade whole scores). Named `<profile>[<criteria>]`, so that it
    /// is a different query from the whole profile. Each criterion must be the profile's,
    /// named once; the indicators keep the profile's order.
    pub fn part(&self, criteria: &[String]) -> Result<Profile, String> {
        if criteria.is_empty() {
            return Err("name at least one criterion".to_owned());
        }
        for (i, criterion) in criteria.iter().enumerate() {
            if self.indicator(criterion).is_none() {
                let known: Vec<&str> = self
                    .indicators
                    .iter()
                    .map(|i| i.criterion.as_str())
                    .collect();
                return Err(format!(
                    "{criterion:?} is not a criterion of {}; its criteria are {}",
                    self.name,
                    known.join(", ")
                ));
            }
            if criteria[..i].contains(criterion) {
                return Err(format!("{criterion:?} is named twice"));
            }
        }
        let indicators: Vec<Indicator> = self
            .indicators
            .iter()
            .filter(|i| criteria.contains(&i.criterion))
            .cloned()
            .collect();
        let mut named: Vec<&str> = indicators.iter().map(|i| i.criterion.as_str()).collect();
        named.sort_unstable();
        Ok(Profile {
            name: format!("{}[{}]", self.name, named.join(",")),
            title: format!("{}: {}", self.title, named.join(", ")),
            total_hundredths: indicators.iter().map(|i| i.max_hundredths).sum(),
            indicators,
            grades: Vec::new(),
        })
    }

    /// The grade of a score: the best band whose lower bound it reaches; `None` when the
    /// profile has no grades.
    pub fn grade(&self, total: &Points) -> Option<&str> {
        self.grades
            .iter()
            .find(|band| total.at_least_hundredths(band.from_hundredths))
            .map(|band| band.grade.as_str())
    }

    /// The score from each metric's value and each assessed criterion's points (in
    /// hundredths, at most the indicator's maximum: more is capped). `None` when no
    /// indicator has a value at all (no data).
    pub fn score(
        &self,
        measured: impl Fn(Metric) -> Option<Rate>,
        assessed: impl Fn(&str) -> Option<u64>,
    ) -> Option<Score> {
        let indicators: Vec<IndicatorPoints> = self
            .indicators
            .iter()
            .map(|indicator| IndicatorPoints {
                criterion: indicator.criterion.clone(),
                max_hundredths: indicator.max_hundredths,
                points: match indicator.source {
                    Source::Measured {
                        metric,
                        saturation_bp,
                    } => measured(metric).map(|rate| {
                        Indicator::measured_points(indicator.max_hundredths, saturation_bp, rate)
                    }),
                    Source::Assessed => assessed(&indicator.criterion).map(|hundredths| {
                        Points::from_hundredths(hundredths.min(indicator.max_hundredths))
                    }),
                },
            })
            .collect();
        if indicators.iter().all(|i| i.points.is_none()) {
            return None;
        }
        let total = indicators
            .iter()
            .filter_map(|i| i.points.as_ref())
            .fold(Points::zero(), |sum, p| &sum + p);
        Some(Score {
            grade: self.grade(&total).map(str::to_owned),
            incomplete: indicators.iter().any(|i| i.points.is_none()),
            indicators,
            total,
        })
    }
}

/// Why a profiles file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfilesError {
    #[error("index profiles file: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("profiles[{index}] ({name}): {reason}")]
    Profile {
        index: usize,
        name: String,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    profiles: Vec<ProfileRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileRow {
    name: String,
    title: String,
    total: Option<f64>,
    #[serde(default)]
    indicators: Vec<IndicatorRow>,
    #[serde(default)]
    grades: Vec<GradeRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorRow {
    criterion: String,
    title: String,
    points: f64,
    metric: Option<String>,
    saturation_percent: Option<f64>,
    #[serde(default)]
    assessed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GradeRow {
    grade: String,
    from: f64,
}

/// A decimal from the file in hundredths, when it has at most two decimals and lies in
/// `0..=limit`.
fn hundredths_of(value: f64, limit: u64) -> Option<u64> {
    let scaled = value * 100.0;
    #[allow(clippy::cast_precision_loss)]
    let in_range = value.is_finite() && value >= 0.0 && scaled <= (limit * 100) as f64;
    if !in_range || (scaled - scaled.round()).abs() > 1e-6 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(scaled.round() as u64)
}

/// Names of profiles and criteria: they appear in queries, reports and storage keys, so
/// they are short and plain.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > MAX_NAME_LEN || !plain {
        return Err(format!(
            "{what} {name:?} must be 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 - _ ."
        ));
    }
    Ok(())
}

fn parse_indicator(row: IndicatorRow) -> Result<Indicator, String> {
    check_name("criterion", &row.criterion)?;
    let at = |reason: String| format!("indicator {}: {reason}", row.criterion);
    let max_hundredths = hundredths_of(row.points, MAX_TOTAL_POINTS)
        .filter(|h| *h > 0)
        .ok_or_else(|| {
            at(format!(
                "points {} must be above 0 with at most two decimals",
                row.points
            ))
        })?;
    let source = match (row.metric, row.assessed) {
        (Some(metric), false) => {
            let metric: Metric = metric
                .parse()
                .map_err(|e: crate::metric::UnknownMetric| at(e.to_string()))?;
            let percent = row.saturation_percent.unwrap_or(100.0);
            let saturation_bp = hundredths_of(percent, 100)
                .filter(|bp| *bp > 0)
                .and_then(|bp| u32::try_from(bp).ok())
                .ok_or_else(|| {
                    at(format!(
                        "saturation_percent {percent} must be above 0 and at most 100"
                    ))
                })?;
            Source::Measured {
                metric,
                saturation_bp,
            }
        }
        (None, true) => {
            if row.saturation_percent.is_some() {
                return Err(at(
                    "saturation_percent applies to measured indicators only".to_owned()
                ));
            }
            Source::Assessed
        }
        _ => {
            return Err(at(
                "set exactly one of metric (measured) or assessed = true".to_owned(),
            ));
        }
    };
    Ok(Indicator {
        criterion: row.criterion,
        title: row.title,
        max_hundredths,
        source,
    })
}

fn parse_grades(rows: Vec<GradeRow>, total_hundredths: u64) -> Result<Vec<GradeBand>, String> {
    let mut grades: Vec<GradeBand> = Vec::with_capacity(rows.len());
    for row in rows {
        if row.grade.is_empty() || row.grade.len() > 8 {
            return Err(format!("grade {:?} must be 1 to 8 characters", row.grade));
        }
        if grades.iter().any(|g| g.grade == row.grade) {
            return Err(format!("grade {} is listed twice", row.grade));
        }
        let from_hundredths = hundredths_of(row.from, MAX_TOTAL_POINTS)
            .filter(|h| *h <= total_hundredths)
            .ok_or_else(|| {
                format!(
                    "grade {} starts at {}: it must be between 0 and the total with at most two decimals",
                    row.grade, row.from
                )
            })?;
        if let Some(better) = grades.last()
            && from_hundredths >= better.from_hundredths
        {
            return Err(format!(
                "grade {} starts at {} but must start below grade {} ({}): list grades best first",
                row.grade,
                hundredths_text(from_hundredths),
                better.grade,
                hundredths_text(better.from_hundredths)
            ));
        }
        grades.push(GradeBand {
            grade: row.grade,
            from_hundredths,
        });
    }
    if let Some(last) = grades.last()
        && last.from_hundredths != 0
    {
        return Err(format!(
            "the last grade ({}) must start at 0, so that every score has a grade",
            last.grade
        ));
    }
    Ok(grades)
}

fn parse_profile(row: ProfileRow) -> Result<Profile, String> {
    check_name("name", &row.name)?;
    let total = row.total.unwrap_or(100.0);
    let total_hundredths = hundredths_of(total, MAX_TOTAL_POINTS)
        .filter(|h| *h > 0)
        .ok_or_else(|| {
            format!("total {total} must be above 0, at most {MAX_TOTAL_POINTS}, with at most two decimals")
        })?;
    if row.indicators.is_empty() {
        return Err("has no indicators".to_owned());
    }
    let mut indicators: Vec<Indicator> = Vec::with_capacity(row.indicators.len());
    for indicator in row.indicators {
        let indicator = parse_indicator(indicator)?;
        if indicators
            .iter()
            .any(|i| i.criterion == indicator.criterion)
        {
            return Err(format!("criterion {} is listed twice", indicator.criterion));
        }
        indicators.push(indicator);
    }
    let sum: u64 = indicators.iter().map(|i| i.max_hundredths).sum();
    if sum != total_hundredths {
        return Err(format!(
            "the indicators' points add up to {}, not to the total {}",
            hundredths_text(sum),
            hundredths_text(total_hundredths)
        ));
    }
    let grades = parse_grades(row.grades, total_hundredths)?;
    Ok(Profile {
        name: row.name,
        title: row.title,
        total_hundredths,
        indicators,
        grades,
    })
}

/// Every profile of a file, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profiles {
    profiles: Vec<Profile>,
}

impl Profiles {
    /// Parses a TOML profiles file (see `deploy/config/indexes.toml`), checking every
    /// name, weight, metric, saturation point and grade band.
    pub fn parse(text: &str) -> Result<Profiles, ProfilesError> {
        let file: File = toml::from_str(text)?;
        let mut profiles: Vec<Profile> = Vec::with_capacity(file.profiles.len());
        let mut names = HashSet::new();
        for (index, row) in file.profiles.into_iter().enumerate() {
            let name = row.name.clone();
            let bad = |reason: String| ProfilesError::Profile {
                index,
                name: name.clone(),
                reason,
            };
            if !names.insert(row.name.clone()) {
                return Err(bad("a second profile of this name".to_owned()));
            }
            profiles.push(parse_profile(row).map_err(bad)?);
        }
        Ok(Profiles { profiles })
    }

    /// A profile by name.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// Every profile, in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.iter()
    }

    /// How many profiles there are.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// The profile names, comma-separated, for error messages.
    pub fn names(&self) -> String {
        self.profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    const SHIPPED: &str = include_str!("../../../deploy/config/indexes.toml");

    fn shipped() -> Profiles {
        Profiles::parse(SHIPPED).expect("the shipped profiles are valid")
    }

    fn quality() -> Profile {
        shipped()
            .get("system-quality-2024")
            .expect("shipped")
            .clone()
    }

    fn service_index() -> Profile {
        shipped().get("service-index-766").expect("shipped").clone()
    }

    fn grade_of(profile: &Profile, hundredths: u64) -> Option<String> {
        profile
            .grade(&Points::from_hundredths(hundredths))
            .map(str::to_owned)
    }

    #[test]
    fn a_part_of_a_profile_scores_its_criteria_out_of_their_points_without_grades() {
        let quality = quality();
        let function = quality.part(&["function".to_owned()]).expect("a criterion");
        assert_eq!(function.name, "system-quality-2024[function]");
        assert_eq!(hundredths_text(function.total_hundredths), "50.00");
        assert!(function.grades.is_empty(), "grades are for whole scores");
        // Hà Giang's 38.75 of 50 for function, whatever its other criteria.
        let ha_giang = |criterion: &str| match criterion {
            "function" => Some(3875),
            "performance" => Some(1500),
            _ => None,
        };
        let score = function.score(|_| None, ha_giang).expect("a score");
        assert_eq!(
            (score.total.two_decimals(), score.incomplete),
            ("38.75".to_owned(), false)
        );
        // A group: its criteria in the profile's order, named in any order.
        let group = quality
            .part(&["performance".to_owned(), "function".to_owned()])
            .expect("a group");
        assert_eq!(group.name, "system-quality-2024[function,performance]");
        assert_eq!(hundredths_text(group.total_hundredths), "70.00");
        let score = group.score(|_| None, ha_giang).expect("a score");
        assert_eq!(score.total.two_decimals(), "53.75");
        // A measured criterion keeps its metric, so the volume rule follows it.
        let progress = service_index()
            .part(&["progress".to_owned()])
            .expect("measured");
        assert_eq!(progress.metrics(), [Metric::OnTimeRate]);
        let err = |criteria: &[&str]| {
            quality
                .part(&criteria.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>())
                .expect_err("refused")
        };
        assert!(err(&["speed"]).starts_with("\"speed\" is not a criterion of system-quality-2024"));
        assert_eq!(
            err(&["function", "function"]),
            "\"function\" is named twice"
        );
        assert_eq!(err(&[]), "name at least one criterion");
    }

    #[test]
    fn the_shipped_profiles_carry_the_published_weights() {
        let weights = |p: &Profile| -> Vec<(String, String)> {
            p.indicators
                .iter()
                .map(|i| (i.criterion.clone(), hundredths_text(i.max_hundredths)))
                .collect()
        };
        let own = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        assert_eq!(
            weights(&service_index()),
            own(&[
                ("transparency", "18.00"),
                ("progress", "20.00"),
                ("online-services", "12.00"),
                ("online-payment", "10.00"),
                ("satisfaction", "18.00"),
                ("digitization", "22.00"),
            ])
        );
        assert!(
            service_index().grades.is_empty(),
            "766 has no letter grades"
        );
        assert_eq!(
            weights(&quality()),
            own(&[
                ("function", "50.00"),
                ("structure-layout", "5.00"),
                ("performance", "20.00"),
                ("security", "15.00"),
                ("convenient-access", "5.00"),
                ("monitoring-connection", "5.00"),
            ])
        );
    }

    #[test]
    fn grade_bands_follow_the_published_boundaries() {
        let q = quality();
        for (hundredths, grade) in [
            (10_000, "A"),
            (9_000, "A"),
            (8_999, "B"),
            (8_000, "B"),
            (7_999, "C"),
            (7_250, "C"),
            (6_500, "C"),
            (6_499, "D"),
            (5_000, "D"),
            (4_999, "E"),
            (0, "E"),
        ] {
            assert_eq!(
                grade_of(&q, hundredths).as_deref(),
                Some(grade),
                "{}",
                hundredths_text(hundredths)
            );
        }
        assert_eq!(grade_of(&service_index(), 9_000), None);
    }

    #[test]
    fn ha_giang_scores_72_5_and_grade_c() {
        // The Hà Giang article: 38.75 of 50 for function, 72.5 in all, grade C (the other
        // criteria's points are illustrative; they add up to the published total).
        let points: HashMap<&str, u64> = [
            ("function", 3_875),
            ("structure-layout", 400),
            ("performance", 1_500),
            ("security", 1_100),
            ("convenient-access", 375),
            ("monitoring-connection", 0),
        ]
        .into();
        let score = quality()
            .score(|_| None, |c| points.get(c).copied())
            .expect("a score");
        assert_eq!(score.total.two_decimals(), "72.50");
        assert_eq!(score.grade.as_deref(), Some("C"));
        assert!(!score.incomplete);
        assert_eq!(
            score.indicators[0]
                .points
                .as_ref()
                .map(Points::two_decimals),
            Some("38.75".to_owned())
        );
    }

    #[test]
    fn measured_indicators_saturate() {
        let points = |n, d, sat| {
            Indicator::measured_points(1_200, sat, Rate::new(n, d).expect("rate")).two_decimals()
        };
        // Online services: full 12 points at 80%, rate × 12 / 80% below.
        assert_eq!(points(40, 100, 8_000), "6.00");
        assert_eq!(points(80, 100, 8_000), "12.00");
        assert_eq!(points(97, 100, 8_000), "12.00");
        assert_eq!(points(0, 100, 8_000), "0.00");
        assert_eq!(points(1, 3, 8_000), "5.00");
        assert_eq!(points(1, 3, 10_000), "4.00");
    }

    #[test]
    fn thirds_add_up_exactly_and_reach_the_band() {
        // Three measured indicators of 30 points saturating at 30%, and 10 assessed points.
        // Sums of fractions stay exact: a total of exactly 90 is grade A, and one a hair
        // below 90 is grade B even though it shows as 90.00.
        let text = r#"
            [[profiles]]
            name = "thirds"
            title = "Thirds"
            grades = [{ grade = "A", from = 90 }, { grade = "B", from = 0 }]
            [[profiles.indicators]]
            criterion = "a"
            title = "A"
            points = 30
            metric = "on-time-rate"
            saturation_percent = 30
            [[profiles.indicators]]
            criterion = "b"
            title = "B"
            points = 30
            metric = "satisfaction-rate"
            saturation_percent = 30
            [[profiles.indicators]]
            criterion = "c"
            title = "C"
            points = 30
            metric = "online-payment-rate"
            saturation_percent = 30
            [[profiles.indicators]]
            criterion = "d"
            title = "D"
            points = 10
            assessed = true
        "#;
        let profiles = Profiles::parse(text).expect("valid");
        let profile = profiles.get("thirds").expect("there");
        // 1/11 of the dossiers against a 30% saturation: 30 · (1/11) / 0.3 = 100/11 points;
        // three of them and 10 assessed: 300/11 + 10, not a round number.
        let score = profile
            .score(|_| Rate::new(1, 11), |_| Some(1_000))
            .expect("a score");
        assert_eq!(score.total, &Points::ratio(300, 11) + &Points::ratio(10, 1));
        assert_eq!(score.total.two_decimals(), "37.27");
        // 29/100 each: 29 points each, 87 + 3 assessed = exactly 90: grade A.
        let score = profile
            .score(|_| Rate::new(29, 100), |_| Some(300))
            .expect("a score");
        assert_eq!(score.total, Points::from_hundredths(9_000));
        assert_eq!(score.grade.as_deref(), Some("A"));
        let score = profile
            .score(|_| Rate::new(2_899_999, 10_000_000), |_| Some(300))
            .expect("a score");
        assert_eq!(score.total.two_decimals(), "90.00", "rounds up for display");
        assert_eq!(
            score.grade.as_deref(),
            Some("B"),
            "but is below 90, so grade B"
        );
    }

    #[test]
    fn missing_values_count_zero_and_flag_the_score() {
        let p = service_index();
        let score = p
            .score(
                |m| (m == Metric::OnTimeRate).then(|| Rate::new(1, 1)).flatten(),
                |_| None,
            )
            .expect("one value is a score");
        assert_eq!(score.total.two_decimals(), "20.00");
        assert!(score.incomplete);
        let missing: Vec<&str> = score
            .indicators
            .iter()
            .filter(|i| i.points.is_none())
            .map(|i| i.criterion.as_str())
            .collect();
        assert_eq!(
            missing,
            [
                "transparency",
                "online-services",
                "online-payment",
                "satisfaction",
                "digitization"
            ]
        );
        assert_eq!(p.score(|_| None, |_| None), None, "nothing at all: no data");
    }

    #[test]
    fn points_parse_with_two_decimals_at_most() {
        assert_eq!(parse_hundredths("38.75"), Ok(3_875));
        assert_eq!(parse_hundredths("5"), Ok(500));
        assert_eq!(parse_hundredths("0.5"), Ok(50));
        assert_eq!(parse_hundredths("0"), Ok(0));
        for bad in [
            "",
            "-1",
            "1.234",
            "1.",
            ".5",
            "1,5",
            "abc",
            "1e3",
            "1234567890",
        ] {
            assert_eq!(
                parse_hundredths(bad),
                Err(BadPoints(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(hundredths_text(3_875), "38.75");
        assert_eq!(hundredths_text(5), "0.05");
    }

    fn profile_with(indicators: &str, grades: &str) -> String {
        format!("[[profiles]]\nname = \"p\"\ntitle = \"P\"\n{grades}\n{indicators}")
    }

    const TWO: &str = "[[profiles.indicators]]\ncriterion = \"a\"\ntitle = \"A\"\npoints = 60\nassessed = true\n[[profiles.indicators]]\ncriterion = \"b\"\ntitle = \"B\"\npoints = 40\nmetric = \"on-time-rate\"\nsaturation_percent = 80\n";

    #[test]
    fn bad_profiles_name_the_profile_and_the_reason() {
        let err = |text: &str| Profiles::parse(text).expect_err("invalid").to_string();
        assert!(Profiles::parse(&profile_with(TWO, "")).is_ok());
        assert_eq!(
            err(&profile_with(
                &TWO.replace("points = 40", "points = 45"),
                ""
            )),
            "profiles[0] (p): the indicators' points add up to 105.00, not to the total 100.00"
        );
        assert_eq!(
            err(&profile_with(
                &TWO.replace("criterion = \"b\"", "criterion = \"a\""),
                ""
            )),
            "profiles[0] (p): criterion a is listed twice"
        );
        assert_eq!(
            err(&profile_with(
                &TWO.replace("saturation_percent = 80", "saturation_percent = 120"),
                ""
            )),
            "profiles[0] (p): indicator b: saturation_percent 120 must be above 0 and at most 100"
        );
        assert!(
            err(&profile_with(&TWO.replace("on-time-rate", "on-time"), ""))
                .starts_with("profiles[0] (p): indicator b: \"on-time\" is not a metric")
        );
        assert_eq!(
            err(&profile_with(
                &TWO.replace(
                    "assessed = true",
                    "assessed = true\nmetric = \"on-time-rate\""
                ),
                ""
            )),
            "profiles[0] (p): indicator a: set exactly one of metric (measured) or assessed = true"
        );
        assert_eq!(
            err(&profile_with(
                TWO,
                "grades = [{ grade = \"A\", from = 50 }, { grade = \"B\", from = 60 }, { grade = \"C\", from = 0 }]"
            )),
            "profiles[0] (p): grade B starts at 60.00 but must start below grade A (50.00): list grades best first"
        );
        assert_eq!(
            err(&profile_with(
                TWO,
                "grades = [{ grade = \"A\", from = 50 }, { grade = \"B\", from = 10 }]"
            )),
            "profiles[0] (p): the last grade (B) must start at 0, so that every score has a grade"
        );
        assert_eq!(
            err(&profile_with(
                TWO,
                "grades = [{ grade = \"A\", from = 50 }, { grade = \"A\", from = 0 }]"
            )),
            "profiles[0] (p): grade A is listed twice"
        );
        assert!(
            err(&profile_with(
                TWO,
                "grades = [{ grade = \"A\", from = 120 }]"
            ))
            .contains("must be between 0 and the total")
        );
        assert_eq!(
            err(&profile_with(&TWO.replace("\"a\"", "\"a/b\""), "")),
            "profiles[0] (p): criterion \"a/b\" must be 1 to 64 characters of A-Z a-z 0-9 - _ ."
        );
        let once = profile_with(TWO, "");
        assert_eq!(
            err(&format!("{once}\n{once}")),
            "profiles[1] (p): a second profile of this name"
        );
        assert_eq!(
            err("[[profiles]]\nname = \"p\"\ntitle = \"P\"\n"),
            "profiles[0] (p): has no indicators"
        );
        assert!(err("[[profiles]]\nnam = 1\n").starts_with("index profiles file: "));
        let declared = profile_with(TWO, "total = 10");
        assert_eq!(
            err(&declared),
            "profiles[0] (p): the indicators' points add up to 100.00, not to the total 10.00"
        );
    }

    /// A value for each indicator of the 766 profile: a rate (as n/100) for measured ones,
    /// hundredths for assessed ones; `None` is missing.
    fn arb_inputs() -> impl Strategy<Value = Vec<Option<u64>>> {
        prop::collection::vec(prop::option::weighted(0.9, 0u64..=10_000), 6)
    }

    fn score_766(inputs: &[Option<u64>]) -> Option<Score> {
        let p = service_index();
        let by_metric: HashMap<Metric, Option<u64>> = p
            .indicators
            .iter()
            .zip(inputs)
            .filter_map(|(i, v)| match i.source {
                Source::Measured { metric, .. } => Some((metric, *v)),
                Source::Assessed => None,
            })
            .collect();
        let by_criterion: HashMap<&str, Option<u64>> = p
            .indicators
            .iter()
            .zip(inputs)
            .map(|(i, v)| (i.criterion.as_str(), *v))
            .collect();
        p.score(
            |m| {
                by_metric
                    .get(&m)
                    .copied()
                    .flatten()
                    .and_then(|v| Rate::new(v, 10_000))
            },
            |c| by_criterion.get(c).copied().flatten(),
        )
    }

    proptest! {
        /// Raising one indicator's value never lowers the score, and the score never exceeds
        /// the total.
        #[test]
        fn the_score_is_monotonic_in_each_indicator_and_bounded(inputs in arb_inputs(), which in 0usize..6, raise in 0u64..=10_000) {
            let before = score_766(&inputs);
            let mut raised = inputs.clone();
            raised[which] = Some(raised[which].unwrap_or(0).saturating_add(raise).min(10_000).max(raised[which].unwrap_or(0)));
            let after = score_766(&raised).expect("at least one value");
            let total = Points::from_hundredths(10_000);
            prop_assert!(after.total <= total);
            if let Some(before) = before {
                prop_assert!(before.total <= after.total);
                prop_assert!(before.total <= total);
            }
        }

        /// A measured indicator earns its full points at or above the saturation rate, and
        /// strictly fewer below it (unless its rate is 0 and so are the points).
        #[test]
        fn saturation_caps_the_points(n in 0u64..2_000, d in 1u64..2_000, sat in 1u32..=10_000, max in 1u64..5_000) {
            let rate = Rate::new(n, d).expect("rate");
            let points = Indicator::measured_points(max, sat, rate);
            let full = Points::from_hundredths(max);
            prop_assert!(points <= full);
            let saturated = u128::from(n) * 10_000 >= u128::from(sat) * u128::from(d);
            prop_assert_eq!(points == full, saturated);
        }

        /// The bands partition [0, total]: every score gets exactly the grade of the best band
        /// whose lower bound it reaches, and a higher score never gets a worse grade.
        #[test]
        fn grade_bands_partition_the_scores(a in 0u64..=10_000, b in 0u64..=10_000) {
            let q = quality();
            let rank = |h: u64| q.grades.iter().position(|g| g.grade == grade_of(&q, h).expect("a grade"));
            let holding: Vec<&GradeBand> = q.grades.iter().enumerate().filter(|(i, band)| {
                let upper = i.checked_sub(1).map(|better| q.grades[better].from_hundredths);
                a >= band.from_hundredths && upper.is_none_or(|u| a < u)
            }).map(|(_, band)| band).collect();
            prop_assert_eq!(holding.len(), 1);
            prop_assert_eq!(Some(holding[0].grade.clone()), grade_of(&q, a));
            let (low, high) = (a.min(b), a.max(b));
            prop_assert!(rank(high) <= rank(low));
        }

        /// Display rounds half away from zero and stays within half a hundredth.
        #[test]
        fn display_is_within_half_a_hundredth(n in 0u64..10_000_000, d in 1u64..10_000_000) {
            let p = Points::ratio(u128::from(n), u128::from(d));
            let shown: f64 = p.two_decimals().parse().expect("a number");
            #[allow(clippy::cast_precision_loss)]
            let exact = n as f64 / d as f64;
            prop_assert!((shown - exact).abs() <= 0.005 + 1e-9);
        }
    }
}
