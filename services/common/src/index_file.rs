//! Loads composite index profiles from a TOML file, or the copy built into the binaries
//! (`deploy/config/indexes.toml`), and keeps them current while the file changes: the same
//! pattern as the targets file (`targets_file.rs`).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use govpulse_core::index::{Profiles, ProfilesError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const BUILT_IN: &str = include_str!("../../../deploy/config/indexes.toml");

/// Why profiles could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfilesLoadError {
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
        source: ProfilesError,
    },
}

fn load(path: Option<&Path>) -> Result<Profiles, ProfilesLoadError> {
    let (name, text) = match path {
        None => ("built-in index profiles".to_owned(), BUILT_IN.to_owned()),
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ProfilesLoadError::Read {
                path: name.clone(),
                source,
            })?;
            (name, text)
        }
    };
    Profiles::parse(&text).map_err(|source| ProfilesLoadError::Invalid { path: name, source })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The profiles in force, shared by every request and replaced when the file changes.
#[derive(Debug, Clone)]
pub struct LiveProfiles {
    current: Arc<RwLock<Arc<Profiles>>>,
    path: Option<PathBuf>,
    /// The file's modification time when it was last read, so that a change made before
    /// the watcher starts is not missed.
    seen: Arc<RwLock<Option<SystemTime>>>,
    /// Grows by one with every reload that took effect.
    generation: Arc<watch::Sender<u64>>,
}

/// What a check of the file found.
#[derive(Debug)]
pub enum Reload {
    /// The file did not change (or the profiles are the built-in ones).
    Unchanged,
    /// The file changed and its profiles are now in force.
    Reloaded,
    /// The file changed but was refused; the previous profiles stay in force.
    Refused(ProfilesLoadError),
}

impl LiveProfiles {
    /// Loads the file at `path` (the built-in profiles when `None`); an invalid file stops
    /// start-up.
    pub fn load(path: Option<PathBuf>) -> Result<Self, ProfilesLoadError> {
        let seen = path.as_deref().and_then(modified);
        let profiles = load(path.as_deref())?;
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(profiles))),
            path,
            seen: Arc::new(RwLock::new(seen)),
            generation: Arc::new(watch::channel(0).0),
        })
    }

    /// Profiles that never change (tests, embedded uses).
    pub fn fixed(profiles: Profiles) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(profiles))),
            path: None,
            seen: Arc::default(),
            generation: Arc::new(watch::channel(0).0),
        }
    }

    /// The profiles in force now.
    pub fn get(&self) -> Arc<Profiles> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A receiver that sees the number of reloads that took effect, to wait for the next.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Reads the file again if its modification time changed since it was last read; a
    /// valid new version replaces the profiles in force, an invalid one is refused.
    pub fn reload_if_changed(&self) -> Reload {
        let Some(path) = self.path.as_deref() else {
            return Reload::Unchanged;
        };
        let now = modified(path);
        {
            let mut seen = self
                .seen
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        match load(Some(path)) {
            Ok(profiles) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(profiles);
                self.generation.send_modify(|g| *g += 1);
                Reload::Reloaded
            }
            Err(e) => Reload::Refused(e),
        }
    }

    /// Checks the file every `every` ([`LiveProfiles::reload_if_changed`]), logging what
    /// happened. Returns when `stop` is cancelled; does nothing for the built-in profiles.
    pub async fn watch(self, every: Duration, stop: CancellationToken) {
        if self.path.is_none() {
            return;
        }
        let mut ticker = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match self.reload_if_changed() {
                Reload::Unchanged => {}
                Reload::Reloaded => {
                    info!(profiles = self.get().len(), "index profiles reloaded");
                }
                Reload::Refused(e) => {
                    warn!(error = %e, "index profiles file refused; the previous profiles stay in force");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_profiles_are_the_two_shipped_ones() {
        let profiles = LiveProfiles::load(None).expect("valid profiles").get();
        assert_eq!(profiles.names(), "service-index-766, system-quality-2024");
    }

    fn profile_file(name: &str, points: u32) -> String {
        format!(
            "[[profiles]]\nname = \"{name}\"\ntitle = \"T\"\n[[profiles.indicators]]\ncriterion = \"c\"\ntitle = \"C\"\npoints = {points}\nassessed = true\n"
        )
    }

    /// Writes `text` to `path` with a modification time `secs` in the future, so that each
    /// version has its own modification time even where they are coarse.
    fn write(path: &Path, text: &str, secs: u64) {
        std::fs::write(path, text).expect("write");
        std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open")
            .set_modified(SystemTime::now() + Duration::from_secs(secs))
            .expect("set mtime");
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_refused() {
        let path = std::env::temp_dir().join(format!(
            "govpulse-indexes-check-{}.toml",
            std::process::id()
        ));
        write(&path, &profile_file("first", 100), 0);
        let live = LiveProfiles::load(Some(path.clone())).expect("valid");
        assert!(matches!(live.reload_if_changed(), Reload::Unchanged));
        write(&path, &profile_file("broken", 90), 10);
        assert!(matches!(live.reload_if_changed(), Reload::Refused(_)));
        assert_eq!(live.get().names(), "first", "the previous profiles stay");
        assert!(
            matches!(live.reload_if_changed(), Reload::Unchanged),
            "a refused version is not read again until it changes"
        );
        write(&path, &profile_file("second", 100), 20);
        assert!(matches!(live.reload_if_changed(), Reload::Reloaded));
        assert_eq!(live.get().names(), "second");
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn the_watcher_reloads_a_changed_file() {
        let path = std::env::temp_dir().join(format!(
            "govpulse-indexes-watch-{}.toml",
            std::process::id()
        ));
        write(&path, &profile_file("first", 100), 0);
        let live = LiveProfiles::load(Some(path.clone())).expect("valid");
        let mut reloads = live.reloads();
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(live.clone().watch(Duration::from_millis(20), stop.clone()));
        write(&path, &profile_file("second", 100), 10);
        tokio::time::timeout(Duration::from_secs(5), reloads.changed())
            .await
            .expect("reloaded within 5 s")
            .expect("live profiles still exist");
        assert_eq!(live.get().names(), "second");
        stop.cancel();
        watcher.await.expect("watcher ends");
        let _ = std::fs::remove_file(&path);
    }
}
