//! Reading a service's `/metrics` page as Prometheus would.

use std::{collections::HashMap, net::SocketAddr};

/// `GET /metrics`: the page's text.
pub async fn scrape(addr: SocketAddr) -> String {
    let answer = crate::http::get(addr, "/metrics", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.text()
}

/// The value of the sample `name` with exactly `labels`, if the page has it.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: HashMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, found) = match series.split_once('{') {
                Some((n, rest)) => {
                    let found: HashMap<&str, &str> = rest
                        .strip_suffix('}')?
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=')?;
                            Some((k, v.trim_matches('"')))
                        })
                        .collect::<Option<_>>()?;
                    (n, found)
                }
                None => (series, HashMap::new()),
            };
            (series_name == name && found == wanted)
                .then(|| value.parse().ok())
                .flatten()
        })
}
