//! Exact rates: a numerator over a non-zero denominator, compared exactly and rounded only
//! for display.

use std::{cmp::Ordering, fmt, num::NonZeroU64};

/// numerator / denominator, with a denominator that is never zero. A zero denominator is
/// "no data" and is represented as `Option::<Rate>::None`, never as 0%.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    numerator: u64,
    denominator: NonZeroU64,
}

impl Rate {
    /// The rate `numerator / denominator`, or `None` (no data) when the denominator is zero.
    pub fn new(numerator: u64, denominator: u64) -> Option<Rate> {
        NonZeroU64::new(denominator).map(|denominator| Rate {
            numerator,
            denominator,
        })
    }

    /// The numerator.
    pub fn numerator(self) -> u64 {
        self.numerator
    }

    /// The denominator, never zero.
    pub fn denominator(self) -> u64 {
        self.denominator.get()
    }

    /// The rate in hundredths of a percent, rounded half away from zero (8702 for 87.02%).
    pub fn basis_points(self) -> u128 {
        let d = self.denominator.get();
        // In 64 bits whenever it fits (any real count does): a 128-bit division costs several
        // times more, and a 10,000-unit block query makes tens of thousands of these.
        if let (Some(scaled), Some(twice)) = (
            self.numerator
                .checked_mul(20_000)
                .and_then(|n| n.checked_add(d)),
            d.checked_mul(2),
        ) {
            return u128::from(scaled / twice);
        }
        let (n, d) = (u128::from(self.numerator), u128::from(d));
        (n * 20_000 + d) / (2 * d)
    }

    /// The percentage as text with two decimals, as published: `87.02`.
    pub fn percent(self) -> String {
        let bp = self.basis_points();
        // By hand rather than `format!("{}.{:02}")`, which costs several times more: every
        // row of a block query shows two or three of these.
        let mut text = (bp / 100).to_string();
        #[allow(clippy::cast_possible_truncation)] // below 100
        let hundredths = (bp % 100) as u8;
        text.push('.');
        text.push(char::from(b'0' + hundredths / 10));
        text.push(char::from(b'0' + hundredths % 10));
        text
    }

    /// The rate as a floating-point percentage, for charts only.
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64_percent(self) -> f64 {
        self.numerator as f64 * 100.0 / self.denominator.get() as f64
    }
}

/// Exact comparison by cross-multiplication: 1/3 < 333/1000 is false, and 2/4 == 1/2.
impl Ord for Rate {
    fn cmp(&self, other: &Self) -> Ordering {
        let left = u128::from(self.numerator) * u128::from(other.denominator.get());
        let right = u128::from(other.numerator) * u128::from(self.denominator.get());
        left.cmp(&right)
    }
}

/// Equal values are equal rates: 1/2 == 2/4.
impl PartialEq for Rate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Rate {}

impl PartialOrd for Rate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.percent())
    }
}

/// `n/d`, for tests, whose denominators are never zero.
#[cfg(test)]
pub(crate) fn rate(n: u64, d: u64) -> Rate {
    Rate::new(n, d).expect("non-zero denominator")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn zero_denominator_is_no_data() {
        assert_eq!(Rate::new(0, 0), None);
        assert_eq!(Rate::new(5, 0), None);
        assert_eq!(rate(0, 7).percent(), "0.00");
    }

    #[test]
    fn published_figures_round_to_two_decimals() {
        assert_eq!(rate(8702, 10_000).percent(), "87.02");
        assert_eq!(rate(1278, 1766).percent(), "72.37");
        assert_eq!(rate(1, 3).percent(), "33.33");
        assert_eq!(rate(2, 3).percent(), "66.67");
        assert_eq!(rate(1, 8).percent(), "12.50");
        // Half away from zero: 1/80000 = 0.00125% rounds to 0.00, 1/40000 = 0.0025% to 0.00,
        // 1/20000 = 0.005% up to 0.01.
        assert_eq!(rate(1, 20_000).percent(), "0.01");
        assert_eq!(rate(1, 40_000).percent(), "0.00");
        assert_eq!(rate(7, 7).percent(), "100.00");
        assert_eq!(rate(u64::MAX, u64::MAX).percent(), "100.00");
    }

    #[test]
    fn comparison_is_exact() {
        assert_eq!(rate(2, 4).cmp(&rate(1, 2)), Ordering::Equal);
        assert!(rate(333, 1000) < rate(1, 3));
        assert!(rate(u64::MAX - 1, u64::MAX) < rate(1, 1));
    }

    proptest! {
        #[test]
        fn display_is_within_half_a_hundredth(n in 0u64..1_000_000, d in 1u64..1_000_000) {
            let r = rate(n.min(d), d);
            let shown: f64 = r.percent().parse().expect("a number");
            prop_assert!((shown - r.as_f64_percent()).abs() <= 0.005 + 1e-9);
        }

        #[test]
        fn fast_rounding_and_text_match_the_128_bit_formula(
            n in prop_oneof![0u64..1_000_000, any::<u64>()],
            d in prop_oneof![1u64..1_000_000, 1u64..=u64::MAX],
        ) {
            let r = rate(n, d);
            let (n, d) = (u128::from(n), u128::from(d));
            let expected = (n * 20_000 + d) / (2 * d);
            prop_assert_eq!(r.basis_points(), expected);
            prop_assert_eq!(r.percent(), format!("{}.{:02}", expected / 100, expected % 100));
        }

        #[test]
        fn order_matches_cross_multiplication(a in 0u64..1000, b in 1u64..1000, c in 0u64..1000, d in 1u64..1000) {
            prop_assert_eq!(rate(a, b).cmp(&rate(c, d)), (a * d).cmp(&(c * b)));
        }
    }
}
