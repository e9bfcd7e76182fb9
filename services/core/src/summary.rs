//! A block or the nation as one figure: pooled and mean, each labelled.

use crate::Rate;

/// Figures over a set of agencies for one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Sum of numerators over sum of denominators: every dossier weighs the same.
    pub pooled: Option<Rate>,
    /// Plain mean of the agencies' rates, in percent: every agency weighs the same.
    /// Floating point; shown with two decimals.
    pub mean_percent: Option<f64>,
    /// Agencies with a value.
    pub with_data: usize,
    /// Agencies with no data (zero denominator).
    pub without_data: usize,
}

/// Summarises agencies' (numerator, denominator) pairs.
pub fn summarize(fractions: impl IntoIterator<Item = (u64, u64)>) -> Summary {
    let (mut numerator, mut denominator, mut sum_percent) = (0u64, 0u64, 0.0f64);
    let (mut with_data, mut without_data) = (0usize, 0usize);
    for (n, d) in fractions {
        numerator = numerator.saturating_add(n);
        denominator = denominator.saturating_add(d);
        match Rate::new(n, d) {
            Some(rate) => {
                with_data += 1;
                sum_percent += rate.as_f64_percent();
            }
            None => without_data += 1,
        }
    }
    Summary {
        pooled: Rate::new(numerator, denominator),
        mean_percent: (with_data > 0).then(|| sum_percent / with_data as f64),
        with_data,
        without_data,
    }
}

/// A mean percentage as published: two decimals.
pub fn mean_text(mean_percent: f64) -> String {
    format!("{mean_percent:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_and_mean_differ_and_no_data_is_counted_apart() {
        // A big agency at 10% and a small one at 90%: pooled is near 10%, mean is 50%.
        let s = summarize([(100, 1000), (9, 10), (0, 0)]);
        assert_eq!(s.pooled.map(Rate::percent), Some("10.79".into()));
        assert_eq!(s.mean_percent.map(mean_text), Some("50.00".into()));
        assert_eq!((s.with_data, s.without_data), (2, 1));
    }

    #[test]
    fn nothing_is_no_data() {
        let s = summarize([(0, 0), (0, 0)]);
        assert_eq!(
            (s.pooled, s.mean_percent, s.with_data, s.without_data),
            (None, None, 0, 2)
        );
    }
}
