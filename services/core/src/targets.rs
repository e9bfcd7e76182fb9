//! Targets: what share an agency must reach for a metric in a year ("ministries 70% and
//! localities 30% of dossiers full-process online in 2024"), and how far each agency stands
//! from its target.
//!
//! The most specific target applies: one set for the agency itself; else one set for the
//! units under its nearest ancestor that has one ("every department and district of Hòa
//! Bình: 55%"); else, for a ministry or province, its block's.

use std::collections::HashMap;

use serde::Deserialize;

use crate::{AgencyId, Block, Catalog, Metric, Rate};

/// Where a target applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One agency.
    Agency(AgencyId),
    /// Every unit below an agency (not the agency itself).
    UnitsOf(AgencyId),
    /// Every ministry, or every province (top-level agencies only).
    Block(Block),
}

/// One target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The metric.
    pub metric: Metric,
    /// The calendar year it is for.
    pub year: i32,
    /// Where it applies.
    pub scope: Scope,
    /// The share to reach, in hundredths of a percent (7000 for 70%).
    pub basis_points: u32,
}

/// Why a targets file is refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("targets file: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("targets[{index}]: {reason}")]
    Row { index: usize, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    targets: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    metric: String,
    year: i32,
    percent: f64,
    agency: Option<String>,
    units_of: Option<String>,
    block: Option<String>,
}

/// Every target, checked against the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    targets: Vec<Target>,
    /// Where each target sits in `targets`, by metric and year, then by scope: a block query
    /// over 10,000 units looks a target up for every one of them.
    index: HashMap<(Metric, i32), ScopeIndex>,
}

/// The targets of one metric and year, by scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ScopeIndex {
    agency: HashMap<AgencyId, usize>,
    units_of: HashMap<AgencyId, usize>,
    block: HashMap<Block, usize>,
}

impl ScopeIndex {
    /// Records that the target at `position` applies to `scope`; false if one already does.
    fn insert(&mut self, scope: &Scope, position: usize) -> bool {
        let previous = match scope {
            Scope::Agency(a) => self.agency.insert(a.clone(), position),
            Scope::UnitsOf(a) => self.units_of.insert(a.clone(), position),
            Scope::Block(b) => self.block.insert(*b, position),
        };
        previous.is_none()
    }
}

/// An agency's standing against its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The target that applies.
    pub target: Target,
    /// Whether the value reaches it; `None` when there is no data.
    pub met: Option<bool>,
    /// value − target in percentage points, with two decimals and a sign; `None` when
    /// there is no data.
    pub gap_points: Option<String>,
}

impl Target {
    /// The target as published: `70.00`.
    pub fn percent(&self) -> String {
        format!("{}.{:02}", self.basis_points / 100, self.basis_points % 100)
    }

    /// Where it applies, in words: `agency hoa-binh`, `units of hoa-binh`, `block province`.
    pub fn scope_text(&self) -> String {
        match &self.scope {
            Scope::Agency(a) => format!("agency {a}"),
            Scope::UnitsOf(a) => format!("units of {a}"),
            Scope::Block(b) => format!("block {}", b.name()),
        }
    }
}

impl Targets {
    /// Parses a TOML targets file (see `deploy/config/targets.toml`), checking every
    /// metric, agency and block against `catalog`.
    pub fn parse(text: &str, catalog: &Catalog) -> Result<Targets, TargetsError> {
        let file: File = toml::from_str(text)?;
        let mut targets = Vec::with_capacity(file.targets.len());
        let mut positions: HashMap<(Metric, i32), ScopeIndex> = HashMap::new();
        for (index, row) in file.targets.into_iter().enumerate() {
            let bad = |reason: String| TargetsError::Row { index, reason };
            let metric: Metric = row
                .metric
                .parse()
                .map_err(|e: crate::metric::UnknownMetric| bad(e.to_string()))?;
            if !(0.0..=100.0).contains(&row.percent) {
                return Err(bad(format!(
                    "percent {} is not between 0 and 100",
                    row.percent
                )));
            }
            let agency = |raw: &str| {
                catalog
                    .agency_by_str(raw)
                    .map(|a| a.id.clone())
                    .ok_or_else(|| bad(format!("unknown agency {raw:?}")))
            };
            let scope = match (
                row.agency.as_deref(),
                row.units_of.as_deref(),
                row.block.as_deref(),
            ) {
                (Some(a), None, None) => Scope::Agency(agency(a)?),
                (None, Some(a), None) => Scope::UnitsOf(agency(a)?),
                (None, None, Some(b)) => Scope::Block(Block::parse(b).ok_or_else(|| {
                    bad(format!("{b:?} is not a block; use ministry or province"))
                })?),
                _ => {
                    return Err(bad(
                        "set exactly one of agency, units_of or block".to_owned()
                    ));
                }
            };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let basis_points = (row.percent * 100.0).round() as u32;
            let target = Target {
                metric,
                year: row.year,
                scope,
                basis_points,
            };
            if !positions
                .entry((metric, row.year))
                .or_default()
                .insert(&target.scope, targets.len())
            {
                return Err(bad(format!(
                    "a second target for {} in {} for {}",
                    metric,
                    row.year,
                    target.scope_text()
                )));
            }
            targets.push(target);
        }
        Ok(Targets {
            targets,
            index: positions,
        })
    }

    /// How many targets there are.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The target that applies to `agency` for `metric` in `year`, if any.
    pub fn target_for(
        &self,
        catalog: &Catalog,
        agency: &AgencyId,
        metric: Metric,
        year: i32,
    ) -> Option<&Target> {
        let scopes = self.index.get(&(metric, year))?;
        let chain = catalog.chain(agency);
        let position = scopes
            .agency
            .get(agency)
            .or_else(|| {
                chain
                    .iter()
                    .skip(1)
                    .find_map(|ancestor| scopes.units_of.get(ancestor))
            })
            .or_else(|| {
                // Block targets are for top-level agencies only.
                let top_level = chain.len() == 1;
                let block = catalog.agency(agency).map(|a| a.block)?;
                top_level.then(|| scopes.block.get(&block)).flatten()
            })?;
        self.targets.get(*position)
    }

    /// An agency's standing against the target that applies to it.
    pub fn verdict(
        &self,
        catalog: &Catalog,
        agency: &AgencyId,
        metric: Metric,
        year: i32,
        value: Option<Rate>,
    ) -> Option<Verdict> {
        let target = self.target_for(catalog, agency, metric, year)?.clone();
        let (met, gap_points) = match value {
            None => (None, None),
            Some(rate) => {
                let (n, d) = (i128::from(rate.numerator()), i128::from(rate.denominator()));
                // value − target = (n·10000 − bp·d) / (100·d) points.
                let difference = n * 10_000 - i128::from(target.basis_points) * d;
                (
                    Some(difference >= 0),
                    Some(signed_points(difference, 100 * d)),
                )
            }
        };
        Some(Verdict {
            target,
            met,
            gap_points,
        })
    }
}

/// `numerator / denominator` with two decimals, rounded half away from zero, signed.
fn signed_points(numerator: i128, denominator: i128) -> String {
    let magnitude = numerator.unsigned_abs();
    let d = denominator.unsigned_abs();
    let hundredths = (magnitude * 200 + d) / (2 * d);
    let sign = match (numerator < 0, hundredths) {
        (_, 0) => "",
        (true, _) => "-",
        (false, _) => "+",
    };
    format!("{sign}{}.{:02}", hundredths / 100, hundredths % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Table, catalog_of, id};

    fn catalog() -> Catalog {
        catalog_of(&[
            (
                Table::Provinces,
                "code,id,name\n17,hoa-binh,Hòa Bình\n56,khanh-hoa,Khánh Hòa\n",
            ),
            (Table::Ministries, "id,name_en\nmof,Finance\n"),
            (
                Table::Units,
                "id,name,parent_id\nhb-dept,Sở,hoa-binh\nhb-commune,Xã,hb-dept\nkh-dept,Sở,khanh-hoa\n",
            ),
        ])
    }

    const FILE: &str = r#"
        [[targets]]
        metric = "full-online-dossier-rate"
        year = 2024
        block = "ministry"
        percent = 70

        [[targets]]
        metric = "full-online-dossier-rate"
        year = 2024
        block = "province"
        percent = 30

        [[targets]]
        metric = "online-dossier-rate"
        year = 2022
        units_of = "hoa-binh"
        percent = 55

        [[targets]]
        metric = "online-dossier-rate"
        year = 2022
        agency = "hoa-binh"
        percent = 80

        [[targets]]
        metric = "online-dossier-rate"
        year = 2022
        agency = "hb-commune"
        percent = 27.5
    "#;

    #[test]
    fn the_most_specific_target_applies() {
        let c = catalog();
        let t = Targets::parse(FILE, &c).expect("valid");
        let (full, online) = (Metric::FullOnlineDossierRate, Metric::OnlineDossierRate);
        // (agency, metric, year, the target's percent, why)
        for (agency, metric, year, expected, why) in [
            ("mof", full, 2024, Some("70.00"), ""),
            ("khanh-hoa", full, 2024, Some("30.00"), ""),
            (
                "kh-dept",
                full,
                2024,
                None,
                "block targets are for top-level agencies",
            ),
            ("mof", full, 2025, None, "targets are per year"),
            ("hoa-binh", online, 2022, Some("80.00"), ""),
            ("hb-dept", online, 2022, Some("55.00"), ""),
            (
                "hb-commune",
                online,
                2022,
                Some("27.50"),
                "its own beats its ancestors'",
            ),
            ("kh-dept", online, 2022, None, ""),
        ] {
            let target = t.target_for(&c, &id(agency), metric, year);
            assert_eq!(
                target.map(Target::percent).as_deref(),
                expected,
                "{agency}, {metric:?}, {year}: {why}"
            );
        }
    }

    #[test]
    fn verdicts_say_met_and_the_gap_exactly() {
        let c = catalog();
        let t = Targets::parse(FILE, &c).expect("valid");
        let verdict = |n, d| {
            t.verdict(
                &c,
                &id("mof"),
                Metric::FullOnlineDossierRate,
                2024,
                Rate::new(n, d),
            )
            .expect("a target")
        };
        let at = verdict(7, 10);
        assert_eq!(
            (at.met, at.gap_points.as_deref()),
            (Some(true), Some("0.00"))
        );
        let below = verdict(6999, 10_000);
        assert_eq!(
            (below.met, below.gap_points.as_deref()),
            (Some(false), Some("-0.01"))
        );
        let above = verdict(8702, 10_000);
        assert_eq!(
            (above.met, above.gap_points.as_deref()),
            (Some(true), Some("+17.02"))
        );
        let none = t
            .verdict(&c, &id("mof"), Metric::FullOnlineDossierRate, 2024, None)
            .expect("a target");
        assert_eq!(
            (none.met, none.gap_points),
            (None, None),
            "no data is neither met nor missed"
        );
        assert_eq!(
            t.verdict(&c, &id("mof"), Metric::OnTimeRate, 2024, Rate::new(1, 1)),
            None
        );
    }

    #[test]
    fn bad_files_name_the_row_and_the_reason() {
        let c = catalog();
        let err = |text: &str| Targets::parse(text, &c).expect_err("invalid").to_string();
        assert_eq!(
            err(
                "[[targets]]\nmetric = \"online-dossier-rate\"\nyear = 2024\npercent = 120\nblock = \"province\"\n"
            ),
            "targets[0]: percent 120 is not between 0 and 100"
        );
        assert_eq!(
            err(
                "[[targets]]\nmetric = \"online-dossier-rate\"\nyear = 2024\npercent = 50\nagency = \"atlantis\"\n"
            ),
            "targets[0]: unknown agency \"atlantis\""
        );
        assert_eq!(
            err("[[targets]]\nmetric = \"online-dossier-rate\"\nyear = 2024\npercent = 50\n"),
            "targets[0]: set exactly one of agency, units_of or block"
        );
        assert!(
            err(
                "[[targets]]\nmetric = \"nope\"\nyear = 2024\npercent = 50\nblock = \"province\"\n"
            )
            .starts_with("targets[0]: \"nope\" is not a metric")
        );
        assert!(err("[[targets]]\nmetrc = 1\n").starts_with("targets file: "));
        let twice = "[[targets]]\nmetric = \"on-time-rate\"\nyear = 2024\npercent = 50\nblock = \"province\"\n";
        assert_eq!(
            err(&format!("{twice}{twice}")),
            "targets[1]: a second target for on-time-rate in 2024 for block province"
        );
    }
}
