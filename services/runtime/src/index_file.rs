//! Loads composite index profiles from a TOML file, or the copy built into the binaries
//! (`deploy/config/indexes.toml`), and keeps them current while the file changes
//! ([`LiveFile`]).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use govpulse_core::index::{Profiles, ProfilesError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use crate::live_file::Reload;
use crate::live_file::{FileError, LiveFile, read_config};

const BUILT_IN: &str = include_str!("../../../deploy/config/indexes.toml");

/// Why profiles could not be loaded.
pub type ProfilesLoadError = FileError<ProfilesError>;

fn load(path: Option<&Path>) -> Result<Profiles, ProfilesLoadError> {
    read_config(path, ("built-in index profiles", BUILT_IN), Profiles::parse)
}

/// The profiles in force, shared by every request and replaced when the file changes.
#[derive(Debug, Clone)]
pub struct LiveProfiles(LiveFile<Profiles>);

/// How often every service checks its index profiles file for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

impl LiveProfiles {
    /// Loads the file at `path` (the built-in profiles when `None`); an invalid file stops
    /// start-up.
    pub fn load(path: Option<PathBuf>) -> Result<Self, ProfilesLoadError> {
        Ok(Self(match path {
            None => LiveFile::fixed(load(None)?),
            Some(path) => LiveFile::load(path, "index profiles", |p| load(Some(p)), Profiles::len)?,
        }))
    }

    /// Profiles that never change (tests, embedded uses).
    pub fn fixed(profiles: Profiles) -> Self {
        Self(LiveFile::fixed(profiles))
    }

    /// The profiles in force now.
    pub fn get(&self) -> Arc<Profiles> {
        self.0.get()
    }

    /// A receiver that sees the number of reloads that took effect, to wait for the next.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.0.reloads()
    }

    /// Reads the file again if its modification time changed since it was last read; a
    /// valid new version replaces the profiles in force, an invalid one is refused.
    pub fn reload_if_changed(&self) -> Reload {
        self.0.reload_if_changed()
    }

    /// Checks the file every `every` (the services: [`RELOAD_EVERY`]), logging what
    /// happened. Returns when `stop` is cancelled; does nothing for the built-in profiles.
    pub async fn watch(self, every: Duration, stop: CancellationToken) {
        self.0.watch(every, stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live_file::{scratch, write_ahead as write};

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

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_refused() {
        let path = scratch("indexes-check.toml");
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
        let path = scratch("indexes-watch.toml");
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
