//! Decodes a reported assessed score into a validated one, or says which field is wrong and
//! why: ingest runs it before forwarding, aggregate again before storing.

use govpulse_core::{
    AgencyId, Bucket, Catalog, Period,
    index::{Profiles, Source, hundredths_text, parse_hundredths},
};
use govpulse_proto::event::AssessedScore;
use time::Date;

use crate::Violation;

/// A checked assessed score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessed {
    /// The agency assessed, in the catalog.
    pub agency: AgencyId,
    /// The profile, one of the loaded profiles.
    pub profile: String,
    /// An assessed criterion of the profile.
    pub criterion: String,
    /// The calendar period assessed.
    pub bucket: Bucket,
    /// The points in hundredths, at most the criterion's maximum.
    pub hundredths: u64,
}

/// Checks the score at `position` of a call (`scores[position]` in field paths): the agency
/// is in the catalog, the profile exists, the criterion is one of its assessed criteria,
/// the period is a calendar day, month, quarter or year, and the points lie between 0 and
/// the criterion's maximum with at most two decimals. `today` resolves `ytd`.
pub fn decode_assessed(
    position: usize,
    score: &AssessedScore,
    catalog: &Catalog,
    profiles: &Profiles,
    today: Date,
) -> Result<Assessed, Violation> {
    let bad = |field: &str, reason: String| Violation {
        field: format!("scores[{position}].{field}"),
        reason,
        agency: None,
    };
    let agency = catalog
        .agency_by_str(&score.agency_id)
        .ok_or_else(|| bad("agency_id", format!("unknown agency {:?}", score.agency_id)))?;
    let profile = profiles.get(&score.profile).ok_or_else(|| {
        bad(
            "profile",
            format!(
                "unknown profile {:?}; the profiles are {}",
                score.profile,
                profiles.names()
            ),
        )
    })?;
    let indicator = profile.indicator(&score.criterion).ok_or_else(|| {
        bad(
            "criterion",
            format!(
                "{:?} is not a criterion of {}; its assessed criteria are {}",
                score.criterion,
                profile.name,
                profile.assessed_criteria().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    if let Source::Measured { metric, .. } = indicator.source {
        return Err(bad(
            "criterion",
            format!(
                "{} of {} is measured from events ({metric}), not assessed",
                indicator.criterion, profile.name
            ),
        ));
    }
    let period = Period::parse(&score.period, today).map_err(|e| bad("period", e.to_string()))?;
    let bucket = period.as_bucket().ok_or_else(|| {
        bad(
            "period",
            format!(
                "{:?} is not a calendar period; assess a day 2024-08-15, a month 2024-08, a quarter 2024-Q3 or a year 2024",
                score.period
            ),
        )
    })?;
    // Rankings list a block as it was on the period's last day: an agency assessed for a
    // period must still exist then (an absorbed province is assessed as its successor).
    let last_day = period.last_day();
    if !agency.exists_on(last_day) {
        let successor = agency
            .successor
            .as_ref()
            .map(|s| format!("; assess its successor {s}"))
            .unwrap_or_default();
        return Err(bad(
            "agency_id",
            format!(
                "agency {} does not exist on {last_day}, the period's last day{successor}",
                agency.id
            ),
        ));
    }
    let hundredths =
        parse_hundredths(score.points.trim()).map_err(|e| bad("points", e.to_string()))?;
    if hundredths > indicator.max_hundredths {
        return Err(bad(
            "points",
            format!(
                "{} is above the {} points of {} in {}",
                score.points,
                hundredths_text(indicator.max_hundredths),
                indicator.criterion,
                profile.name
            ),
        ));
    }
    Ok(Assessed {
        agency: agency.id.clone(),
        profile: profile.name.clone(),
        criterion: indicator.criterion.clone(),
        bucket,
        hundredths,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn score(agency: &str, criterion: &str, period: &str, points: &str) -> AssessedScore {
        AssessedScore {
            agency_id: agency.to_owned(),
            profile: "system-quality-2024".to_owned(),
            criterion: criterion.to_owned(),
            period: period.to_owned(),
            points: points.to_owned(),
        }
    }

    fn check(score: &AssessedScore) -> Result<Assessed, (String, String)> {
        let catalog = govpulse_runtime::catalog_files::built_in().expect("catalog");
        let profiles = govpulse_runtime::index_file::LiveProfiles::load(None)
            .expect("profiles")
            .get();
        decode_assessed(3, score, &catalog, &profiles, date!(2026 - 11 - 23))
            .map_err(|v| (v.field, v.reason))
    }

    #[test]
    fn a_valid_score_names_its_calendar_period() {
        let ok = check(&score("ha-giang", "function", "2024", "38.75")).expect("valid");
        assert_eq!(
            (ok.bucket, ok.hundredths, ok.criterion.as_str()),
            (Bucket::Year(2024), 3_875, "function")
        );
        let quarter = check(&score(
            "ha-giang",
            "function",
            "2024-01-01..2024-03-31",
            "50",
        ))
        .expect("a range that is a quarter");
        assert_eq!(quarter.bucket, Bucket::Quarter(2024, 1));
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let profile = |profile: &str, mut score: AssessedScore| {
            score.profile = profile.to_owned();
            score
        };
        let refusals = [
            (
                score("atlantis", "function", "2024", "1"),
                "scores[3].agency_id",
                "unknown agency \"atlantis\"",
            ),
            (
                profile("nope", score("ha-giang", "function", "2024", "1")),
                "scores[3].profile",
                "unknown profile \"nope\"; the profiles are service-index-766, system-quality-2024",
            ),
            (
                profile(
                    "service-index-766",
                    score("ha-giang", "progress", "2024", "1"),
                ),
                "scores[3].criterion",
                "progress of service-index-766 is measured from events (on-time-rate), not assessed",
            ),
            (
                score("ha-giang", "function", "2024", "50.01"),
                "scores[3].points",
                "50.01 is above the 50.00 points of function in system-quality-2024",
            ),
            (
                score("ha-giang", "function", "2025", "1"),
                "scores[3].agency_id",
                "agency ha-giang does not exist on 2025-12-31, the period's last day; assess its successor tuyen-quang",
            ),
        ];
        for (score, field, reason) in refusals {
            let refused = check(&score).expect_err("invalid");
            assert_eq!(refused, (field.to_owned(), reason.to_owned()));
        }
        // Where the field says it all: the criterion, period or points of ha-giang's score.
        for (criterion, period, points, field) in [
            ("speed", "2024", "1", "scores[3].criterion"),
            ("function", "ytd", "1", "scores[3].period"),
            ("function", "2024-13", "1", "scores[3].period"),
            ("function", "2024", "-1", "scores[3].points"),
            ("function", "2024", "1.234", "scores[3].points"),
        ] {
            let refused =
                check(&score("ha-giang", criterion, period, points)).expect_err("invalid");
            assert_eq!(refused.0, field, "{period} {points}");
        }
    }
}
