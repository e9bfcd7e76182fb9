//! Reading a service's `/metrics` page as Prometheus would.

use std::{collections::HashMap, net::SocketAddr};

/// `GET /metrics`: the page's text.
pub async fn scrape(addr: SocketAddr) -> String {
    let answer = crate::http::get(addr, "/metrics", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.text()
}

/// A sample's line of a page: its name, its labels and its value as written.
fn parse(line: &str) -> Option<(&str, HashMap<&str, &str>, &str)> {
    let (series, value) = line.rsplit_once(' ')?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let labels: HashMap<&str, &str> = rest
                .strip_suffix('}')?
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect::<Option<_>>()?;
            (name, labels)
        }
        None => (series, HashMap::new()),
    };
    Some((name, labels, value))
}

/// The value of the sample `name` with exactly `labels`, if the page `text` has it.
fn value_of(text: &str, name: &str, labels: &HashMap<&str, &str>) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse)
        .find_map(|(found_name, found, value)| {
            (found_name == name && found == *labels)
                .then(|| value.parse().ok())
                .flatten()
        })
}

/// The value of the sample `name` with exactly `labels`, if the page has it.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    value_of(text, name, &labels.iter().copied().collect())
}

/// Asserts that the page `text` has each sample of `expected`, lines written as a page
/// writes them (`name{label="value",...} value`; blank lines and indentation passed over),
/// with exactly those labels and that value.
pub fn assert_samples(text: &str, expected: &str) {
    for line in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, labels, value) =
            parse(line).unwrap_or_else(|| panic!("{line:?} is not a sample's line"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("{line:?} has no number"));
        assert_eq!(
            value_of(text, name, &labels),
            Some(value),
            "{line} in:\n{text}"
        );
    }
}

#[cfg(test)]
mod tests {
    const PAGE: &str = "# TYPE govpulse_events_total counter\n\
        govpulse_events_total{service=\"ingest\",outcome=\"accepted\",reason=\"\"} 3\n\
        govpulse_up 1\n";

    #[test]
    fn a_sample_is_found_by_its_name_and_exactly_its_labels() {
        let labels = [
            ("outcome", "accepted"),
            ("service", "ingest"),
            ("reason", ""),
        ];
        assert_eq!(
            super::sample(PAGE, "govpulse_events_total", &labels),
            Some(3.0)
        );
        assert_eq!(
            super::sample(PAGE, "govpulse_events_total", &labels[..2]),
            None
        );
        super::assert_samples(
            PAGE,
            r#"
            govpulse_up 1
            govpulse_events_total{reason="",service="ingest",outcome="accepted"} 3
            "#,
        );
    }

    #[test]
    #[should_panic(expected = "govpulse_up 2 in:")]
    fn a_sample_of_another_value_fails_the_assertion() {
        super::assert_samples(PAGE, "govpulse_up 2");
    }
}
