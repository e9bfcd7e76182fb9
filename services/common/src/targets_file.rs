//! Loads targets from a TOML file, or the copy built into the binaries
//! (`deploy/config/targets.toml`), and keeps them current while the file changes.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use govpulse_core::{Catalog, targets::Targets};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const BUILT_IN: &str = include_str!("../../../deploy/config/targets.toml");

/// Why targets could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TargetsLoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Invalid {
        path: String,
        #[source]
        source: govpulse_core::targets::TargetsError,
    },
}

fn load(path: Option<&Path>, catalog: &Catalog) -> Result<Targets, TargetsLoadError> {
    let (name, text) = match path {
        None => ("built-in targets".to_owned(), BUILT_IN.to_owned()),
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| TargetsLoadError::Read {
                path: name.clone(),
                source,
            })?;
            (name, text)
        }
    };
    Targets::parse(&text, catalog)
        .map_err(|source| TargetsLoadError::Invalid { path: name, source })
}

/// The targets in force, shared by every request and replaced when the file changes.
#[derive(Debug, Clone)]
pub struct LiveTargets {
    current: Arc<RwLock<Arc<Targets>>>,
    path: Option<PathBuf>,
    /// The file's modification time when it was loaded, so that a change made before the
    /// watcher starts is not missed.
    loaded_at: Option<SystemTime>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl LiveTargets {
    /// Loads the file at `path` (the built-in targets when `None`); an invalid file stops
    /// start-up.
    pub fn load(path: Option<PathBuf>, catalog: &Catalog) -> Result<Self, TargetsLoadError> {
        let loaded_at = path.as_deref().and_then(modified);
        let targets = load(path.as_deref(), catalog)?;
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(targets))),
            path,
            loaded_at,
        })
    }

    /// Targets that never change (tests, embedded uses).
    pub fn fixed(targets: Targets) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(targets))),
            path: None,
            loaded_at: None,
        }
    }

    /// The targets in force now.
    pub fn get(&self) -> Arc<Targets> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Checks the file every `every` and loads it again when its modification time
    /// changes; an invalid new version is logged and ignored. Returns when `stop` is
    /// cancelled; does nothing for the built-in targets.
    pub async fn watch(self, catalog: Arc<Catalog>, every: Duration, stop: CancellationToken) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let mut seen = self.loaded_at;
        let mut ticker = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let now = modified(&path);
            if now == seen {
                continue;
            }
            seen = now;
            match load(Some(&path), &catalog) {
                Ok(targets) => {
                    info!(path = %path.display(), targets = targets.len(), "targets reloaded");
                    *self
                        .current
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(targets);
                }
                Err(e) => {
                    warn!(error = %e, "targets file refused; the previous targets stay in force")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use govpulse_core::{AgencyId, Metric};

    use super::*;

    #[test]
    fn the_built_in_targets_are_valid() {
        let catalog = crate::catalog_files::built_in().expect("valid catalog");
        let targets = LiveTargets::load(None, &catalog)
            .expect("valid targets")
            .get();
        let mof = AgencyId::parse("mof").expect("id");
        let target = targets
            .target_for(&catalog, &mof, Metric::FullOnlineDossierRate, 2025)
            .expect("a target");
        assert_eq!(target.percent(), "85.00");
    }

    #[tokio::test]
    async fn a_changed_file_is_reloaded_and_a_broken_one_ignored() {
        let catalog = Arc::new(crate::catalog_files::built_in().expect("valid catalog"));
        let path =
            std::env::temp_dir().join(format!("govpulse-targets-{}.toml", std::process::id()));
        let file = |percent: &str| {
            format!(
                "[[targets]]\nmetric = \"on-time-rate\"\nyear = 2026\nblock = \"province\"\npercent = {percent}\n"
            )
        };
        std::fs::write(&path, file("90")).expect("write");
        let live = LiveTargets::load(Some(path.clone()), &catalog).expect("valid");
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(live.clone().watch(
            catalog.clone(),
            Duration::from_millis(20),
            stop.clone(),
        ));
        let hanoi = AgencyId::parse("ha-noi").expect("id");
        let percent = |live: &LiveTargets| {
            live.get()
                .target_for(&catalog, &hanoi, Metric::OnTimeRate, 2026)
                .map(|t| t.percent())
        };
        assert_eq!(percent(&live), Some("90.00".into()));

        // Modification times can be coarse: make sure the new one differs.
        let bump = |secs: u64| {
            let f = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            f.set_modified(SystemTime::now() + Duration::from_secs(secs))
                .expect("set mtime");
        };
        std::fs::write(&path, file("95")).expect("write");
        bump(10);
        let reloaded = tokio::time::timeout(Duration::from_secs(5), async {
            while percent(&live).as_deref() != Some("95.00") {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        reloaded.await.expect("reloaded within 5 s");

        std::fs::write(&path, "not toml [[[").expect("write");
        bump(20);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            percent(&live),
            Some("95.00".into()),
            "a broken file leaves the targets in force"
        );
        stop.cancel();
        watcher.await.expect("watcher ends");
        let _ = std::fs::remove_file(&path);
    }
}
