//! `govpulse assess`: reports assessed scores (the points assessors gave agencies for the
//! criteria of a composite index) to ingest, from flags or from a file of JSON lines (the
//! protobuf JSON mapping of `AssessedScore`). A report is all or nothing, and sending it
//! again is safe: a score replaces the one stored for the same agency, criterion and period.

use std::io::BufRead;

use govpulse_proto::event::AssessedScore;

use crate::json_lines::{self, BadLine};

/// Scores from flags: one agency, profile and period, and `criterion=points` pairs.
pub fn from_flags(
    agency: &str,
    profile: &str,
    period: &str,
    pairs: &[String],
) -> Result<Vec<AssessedScore>, String> {
    pairs
        .iter()
        .map(|pair| {
            let (criterion, points) = pair.split_once('=').ok_or_else(|| {
                format!("--score {pair:?}: write criterion=points, like function=38.75")
            })?;
            Ok(AssessedScore {
                agency_id: agency.to_owned(),
                profile: profile.to_owned(),
                criterion: criterion.trim().to_owned(),
                period: period.to_owned(),
                points: points.trim().to_owned(),
            })
        })
        .collect()
}

/// Parses JSON lines of `AssessedScore`; blank lines are skipped. Returns the scores, or
/// every bad line.
pub fn parse_lines(input: impl BufRead) -> Result<Vec<AssessedScore>, Vec<BadLine>> {
    let scores = json_lines::parse(input, "an AssessedScore")?;
    Ok(scores.into_iter().map(|(_, score)| score).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_give_one_score_per_pair() {
        let scores = from_flags(
            "ha-giang",
            "system-quality-2024",
            "2024",
            &["function=38.75".to_owned(), " security = 11 ".to_owned()],
        )
        .expect("valid");
        let got: Vec<(&str, &str)> = scores
            .iter()
            .map(|s| (s.criterion.as_str(), s.points.as_str()))
            .collect();
        assert_eq!(got, [("function", "38.75"), ("security", "11")]);
        assert!(
            scores
                .iter()
                .all(|s| s.agency_id == "ha-giang" && s.period == "2024")
        );
        assert_eq!(
            from_flags("a", "p", "2024", &["function".to_owned()]),
            Err("--score \"function\": write criterion=points, like function=38.75".to_owned())
        );
    }

    #[test]
    fn json_lines_are_scores_and_bad_lines_are_named() {
        let text = "{\"agencyId\":\"ha-giang\",\"profile\":\"system-quality-2024\",\"criterion\":\"function\",\"period\":\"2024\",\"points\":\"38.75\"}\n\nnot json\n";
        let bad = parse_lines(text.as_bytes()).expect_err("line 3 is bad");
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [3]);
        let scores =
            parse_lines(&text.as_bytes()[..text.find("\n\n").expect("two lines")]).expect("valid");
        assert_eq!(scores[0].points, "38.75");
        assert_eq!(scores[0].agency_id, "ha-giang");
    }
}
