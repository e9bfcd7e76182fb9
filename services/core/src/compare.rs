//! Comparing two rates exactly: "1.6 times the same period of last year", "up 3.25 points".

use std::fmt;

use crate::Rate;

/// How one rate compares with another, both exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// The value now.
    pub current: Rate,
    /// The value compared with.
    pub other: Rate,
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `value × 10^decimals`, rounded half away from zero, as text with that many decimals.
fn decimal(negative: bool, numerator: u128, denominator: u128, decimals: u32) -> String {
    let scale = 10u128.pow(decimals);
    let scaled = (numerator * scale * 2 + denominator) / (denominator * 2);
    let sign = if negative && scaled != 0 { "-" } else { "" };
    if decimals == 0 {
        return format!("{sign}{scaled}");
    }
    format!(
        "{sign}{}.{:0width$}",
        scaled / scale,
        scaled % scale,
        width = decimals as usize
    )
}

/// An exact non-negative fraction, such as a ratio of two rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    numerator: u128,
    denominator: u128,
}

impl Ratio {
    /// `numerator / denominator`; `None` when the denominator is zero.
    pub fn new(numerator: u128, denominator: u128) -> Option<Ratio> {
        if denominator == 0 {
            return None;
        }
        let g = gcd(numerator, denominator).max(1);
        Some(Ratio {
            numerator: numerator / g,
            denominator: denominator / g,
        })
    }

    /// The ratio with two decimals, as published: `1.60`.
    pub fn two_decimals(self) -> String {
        decimal(false, self.numerator, self.denominator, 2)
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.two_decimals())
    }
}

impl Comparison {
    /// How many times `other` the current value is: `current / other`; `None` when `other`
    /// is zero (no ratio to a zero value).
    pub fn ratio(self) -> Option<Ratio> {
        let [(cn, cd), (on, od)] = self.parts();
        Ratio::new(cn * od, cd * on)
    }

    /// Both fractions, widened for exact cross-multiplication.
    fn parts(self) -> [(u128, u128); 2] {
        [self.current, self.other].map(|r| (u128::from(r.numerator()), u128::from(r.denominator())))
    }

    /// The difference in percentage points, `current − other`, with two decimals and a
    /// sign: `+3.25`, `-0.50`, `0.00`.
    pub fn change_points(self) -> String {
        let [(cn, cd), (on, od)] = self.parts();
        // (cn/cd − on/od) × 100 = 100 (cn·od − on·cd) / (cd·od)
        let (a, b) = (cn * od, on * cd);
        let (negative, difference) = if a >= b {
            (false, a - b)
        } else {
            (true, b - a)
        };
        let text = decimal(negative, difference * 100, cd * od, 2);
        if negative || text == "0.00" {
            text
        } else {
            format!("+{text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rate::rate;

    #[test]
    fn published_ratios() {
        // 51.49% against 32.18%: "1.6 times the same period of last year".
        let c = Comparison {
            current: rate(5149, 10_000),
            other: rate(3218, 10_000),
        };
        assert_eq!(c.ratio().map(Ratio::two_decimals), Some("1.60".into()));
        assert_eq!(c.change_points(), "+19.31");
        let down = Comparison {
            current: rate(1, 4),
            other: rate(1, 2),
        };
        assert_eq!(down.ratio().map(|r| r.to_string()), Some("0.50".into()));
        assert_eq!(down.change_points(), "-25.00");
        let same = Comparison {
            current: rate(1, 2),
            other: rate(2, 4),
        };
        assert_eq!(same.change_points(), "0.00");
        assert_eq!(
            Comparison {
                current: rate(1, 2),
                other: rate(0, 9)
            }
            .ratio(),
            None
        );
    }

    proptest! {
        #[test]
        fn change_points_match_floating_point(a in 0u64..1000, b in 1u64..1000, c in 0u64..1000, d in 1u64..1000) {
            let cmp = Comparison { current: rate(a.min(b), b), other: rate(c.min(d), d) };
            let shown: f64 = cmp.change_points().parse().expect("a number");
            let exact = (a.min(b) as f64 / b as f64 - c.min(d) as f64 / d as f64) * 100.0;
            prop_assert!((shown - exact).abs() <= 0.005 + 1e-9, "{shown} vs {exact}");
        }
    }
}
