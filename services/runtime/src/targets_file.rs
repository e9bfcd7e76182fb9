//! Loads targets from a TOML file, or the copy built into the binaries
//! (`deploy/config/targets.toml`), and keeps them current while the file changes
//! ([`LiveFile`]).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use govpulse_core::{Catalog, targets::Targets};
use tokio_util::sync::CancellationToken;

use crate::live_file::{FileError, LiveFile, read_config};

const BUILT_IN: &str = include_str!("../../../deploy/config/targets.toml");

/// The built-in targets, with the example targets of their latest year carried to every
/// later year up to `year` and marked as examples: what `govpulse demo` runs with, so that
/// its dashboard shows targets met and missed whatever the year. A deployment gets the
/// built-in targets as they are: no ministry publishes targets by repeating a year's.
pub fn built_in_carried_to(year: i32) -> String {
    let mut text = BUILT_IN.to_owned();
    let Ok(file) = BUILT_IN.parse::<toml::Table>() else {
        return text;
    };
    let rows: Vec<&toml::Table> = file
        .get("targets")
        .and_then(toml::Value::as_array)
        .map(|rows| rows.iter().filter_map(toml::Value::as_table).collect())
        .unwrap_or_default();
    let year_of = |row: &toml::Table| row.get("year").and_then(toml::Value::as_integer);
    let Some(latest) = rows.iter().filter_map(|row| year_of(row)).max() else {
        return text;
    };
    let mut carried = Vec::new();
    for later in latest + 1..=i64::from(year) {
        for row in rows.iter().filter(|row| year_of(row) == Some(latest)) {
            let mut row = (*row).clone();
            row.insert("year".to_owned(), toml::Value::Integer(later));
            carried.push(toml::Value::Table(row));
        }
    }
    if carried.is_empty() {
        return text;
    }
    let more = toml::Table::from_iter([("targets".to_owned(), toml::Value::Array(carried))]);
    if let Ok(more) = toml::to_string(&more) {
        text.push_str(&format!(
            "\n# EXAMPLES: the {latest} examples, carried by the demo to the years after it.\n{more}"
        ));
    }
    text
}

/// Why targets could not be loaded.
pub type TargetsLoadError = FileError<govpulse_core::targets::TargetsError>;

fn load(path: Option<&Path>, catalog: &Catalog) -> Result<Targets, TargetsLoadError> {
    read_config(path, ("built-in targets", BUILT_IN), |text| {
        Targets::parse(text, catalog)
    })
}

/// The targets in force, shared by every request and replaced when the file changes.
#[derive(Debug, Clone)]
pub struct LiveTargets(LiveFile<Targets>);

impl LiveTargets {
    /// Loads the file at `path` (the built-in targets when `None`), checked against
    /// `catalog`; an invalid file stops start-up.
    pub fn load(path: Option<PathBuf>, catalog: Arc<Catalog>) -> Result<Self, TargetsLoadError> {
        Ok(Self(match path {
            None => LiveFile::fixed(load(None, &catalog)?),
            Some(path) => LiveFile::load(
                path,
                "targets",
                move |p| load(Some(p), &catalog),
                Targets::len,
            )?,
        }))
    }

    /// Targets that never change (tests, embedded uses).
    pub fn fixed(targets: Targets) -> Self {
        Self(LiveFile::fixed(targets))
    }

    /// The targets in force now.
    pub fn get(&self) -> Arc<Targets> {
        self.0.get()
    }

    /// The number of changed versions of the file read so far, taken or refused, to wait on.
    pub fn versions_read(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.versions_read()
    }

    /// Checks the file every `every` and loads it again when its modification time
    /// changes; an invalid new version is logged and ignored (the previous targets stay in
    /// force). Returns when `stop` is cancelled; does nothing for the built-in targets.
    pub async fn watch(self, every: Duration, stop: CancellationToken) {
        self.0.watch(every, stop).await;
    }
}

#[cfg(test)]
mod tests {
    use govpulse_core::{AgencyId, Metric};

    use super::*;
    use crate::live_file::{scratch, write_ahead};

    #[test]
    fn the_built_in_targets_are_valid() {
        let catalog = crate::catalog_files::built_in().expect("valid catalog");
        let targets = LiveTargets::load(None, Arc::new(catalog.clone()))
            .expect("valid targets")
            .get();
        let mof = AgencyId::parse("mof").expect("id");
        let target = targets
            .target_for(&catalog, &mof, Metric::FullOnlineDossierRate, 2025)
            .expect("a target");
        assert_eq!(target.percent(), "85.00");
    }

    /// Waits (5 s at most) until the watcher has read one more version of the file.
    async fn next_version(versions: &mut tokio::sync::watch::Receiver<u64>) {
        tokio::time::timeout(Duration::from_secs(5), versions.changed())
            .await
            .expect("the watcher reads the new version within 5 s")
            .expect("the watcher runs");
    }

    #[tokio::test]
    async fn a_changed_file_is_reloaded_and_a_broken_one_ignored() {
        let catalog = Arc::new(crate::catalog_files::built_in().expect("valid catalog"));
        let path = scratch("targets.toml");
        let file = |percent: &str| {
            format!(
                "[[targets]]\nmetric = \"on-time-rate\"\nyear = 2026\nblock = \"province\"\npercent = {percent}\n"
            )
        };
        std::fs::write(&path, file("90")).expect("write");
        let live = LiveTargets::load(Some(path.clone()), catalog.clone()).expect("valid");
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(live.clone().watch(Duration::from_millis(20), stop.clone()));
        let hanoi = AgencyId::parse("ha-noi").expect("id");
        let percent = |live: &LiveTargets| {
            live.get()
                .target_for(&catalog, &hanoi, Metric::OnTimeRate, 2026)
                .map(|t| t.percent())
        };
        assert_eq!(percent(&live), Some("90.00".into()));
        let mut versions = live.versions_read();

        // Modification times can be coarse: make sure the new one differs.
        write_ahead(&path, &file("95"), 10);
        next_version(&mut versions).await;
        assert_eq!(percent(&live), Some("95.00".into()), "reloaded");

        write_ahead(&path, "not toml [[[", 20);
        next_version(&mut versions).await;
        assert_eq!(
            percent(&live),
            Some("95.00".into()),
            "a broken file leaves the targets in force"
        );
        stop.cancel();
        watcher.await.expect("watcher ends");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_demo_carries_the_latest_examples_to_later_years() {
        let catalog = crate::catalog_files::built_in().expect("the built-in catalog");
        let shipped = Targets::parse(BUILT_IN, &catalog).expect("the shipped targets");
        let latest = (2020..2100)
            .rev()
            .find(|year| {
                shipped
                    .target_for(
                        &catalog,
                        &province(&catalog),
                        Metric::OnlineDossierRate,
                        *year,
                    )
                    .is_some()
            })
            .expect("a year with a province target");
        assert_eq!(built_in_carried_to(latest), BUILT_IN, "nothing to carry");
        let carried = Targets::parse(&built_in_carried_to(latest + 2), &catalog)
            .expect("the carried targets parse");
        assert_eq!(carried.len(), shipped.len() + 2 * targets_of(latest));
        for year in [latest + 1, latest + 2] {
            for agency in [province(&catalog), ministry(&catalog)] {
                let then = shipped.target_for(&catalog, &agency, Metric::OnlineDossierRate, latest);
                let now = carried.target_for(&catalog, &agency, Metric::OnlineDossierRate, year);
                assert_eq!(
                    now.map(|t| t.percent()),
                    then.map(|t| t.percent()),
                    "{agency} in {year}"
                );
                assert!(now.is_some());
            }
        }
    }

    fn province(catalog: &Catalog) -> AgencyId {
        first_of(catalog, govpulse_core::Block::Province)
    }

    fn ministry(catalog: &Catalog) -> AgencyId {
        first_of(catalog, govpulse_core::Block::Ministry)
    }

    fn first_of(catalog: &Catalog, block: govpulse_core::Block) -> AgencyId {
        catalog
            .block_members(block)
            .find(|a| a.parent.is_none() && a.merger.is_none())
            .map(|a| a.id.clone())
            .expect("a member")
    }

    /// How many targets the shipped file has for `year`, every metric and scope.
    fn targets_of(year: i32) -> usize {
        BUILT_IN
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("targets").and_then(toml::Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .filter(|row| {
                row.get("year").and_then(toml::Value::as_integer) == Some(i64::from(year))
            })
            .count()
    }
}
