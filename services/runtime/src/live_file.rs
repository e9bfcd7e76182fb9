//! A value read from a file and kept current while the file changes: the targets, the index
//! profiles and the bearer tokens (a Kubernetes ConfigMap or Secret mounted as a file changes
//! in place). Each request reads the version in force; a valid new version replaces it
//! atomically, an invalid one is refused and logged, and the previous version stays.

use std::{
    fmt::Display,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Why a configuration file could not be loaded: unreadable, or refused by its checks.
#[derive(Debug, thiserror::Error)]
pub enum FileError<E> {
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
        source: E,
    },
}

/// Reads the file at `path`, or `built_in` (its name, its text) when `None`, and checks it
/// with `parse`.
pub fn read_config<T, E>(
    path: Option<&Path>,
    built_in: (&str, &str),
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, FileError<E>> {
    let (name, text) = match path {
        None => (built_in.0.to_owned(), built_in.1.to_owned()),
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
                path: name.clone(),
                source,
            })?;
            (name, text)
        }
    };
    parse(&text).map_err(|source| FileError::Invalid { path: name, source })
}

/// What a check of the file found.
#[derive(Debug)]
pub enum Reload {
    /// The file did not change (or the value is built in).
    Unchanged,
    /// The file changed and its new version is now in force.
    Reloaded,
    /// The file changed but was refused, for this reason; the previous version stays in
    /// force.
    Refused(String),
}

/// Reads and checks a version of a file; its error is what a refusal says.
type Read<T> = Box<dyn Fn(&Path) -> Result<T, String> + Send + Sync>;

/// The file a [`LiveFile`] follows, and how each of its versions is read and checked.
struct Source<T> {
    path: PathBuf,
    /// What the file holds, for the logs ("targets", "alert rules").
    what: &'static str,
    read: Read<T>,
    /// The entries of a version, for the logs.
    entries: fn(&T) -> usize,
}

impl<T> std::fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

/// The version of a file in force, shared by every clone.
#[derive(Debug)]
pub struct LiveFile<T> {
    current: Arc<RwLock<Arc<T>>>,
    /// `None` for a fixed value.
    source: Option<Arc<Source<T>>>,
    /// The file's modification time when it was last read, taken before reading it, so
    /// that a change made while (or just after) it is read is seen by the next check.
    seen: Arc<Mutex<Option<SystemTime>>>,
    /// Grows by one with every reload that took effect.
    generation: Arc<watch::Sender<u64>>,
    /// Grows by one with every changed version that was read, taken or refused.
    versions_read: Arc<watch::Sender<u64>>,
    /// Why the latest version read was refused; `None` when it is the one in force.
    refusal: Arc<Mutex<Option<String>>>,
}

impl<T> Clone for LiveFile<T> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
            source: self.source.clone(),
            seen: self.seen.clone(),
            generation: self.generation.clone(),
            versions_read: self.versions_read.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl<T> LiveFile<T> {
    /// Reads the file at `path` with `read`, which reads and checks each later version too;
    /// its error stops start-up. `what` the file holds and the `entries` of a version name
    /// them in the logs.
    pub fn load<E: Display>(
        path: PathBuf,
        what: &'static str,
        read: impl Fn(&Path) -> Result<T, E> + Send + Sync + 'static,
        entries: fn(&T) -> usize,
    ) -> Result<Self, E> {
        let seen = modified(&path);
        let value = read(&path)?;
        Ok(Self {
            source: Some(Arc::new(Source {
                path,
                what,
                read: Box::new(move |path| read(path).map_err(|e| e.to_string())),
                entries,
            })),
            seen: Arc::new(Mutex::new(seen)),
            ..Self::fixed(value)
        })
    }

    /// A value that never changes: built in, or for tests.
    pub fn fixed(value: T) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(value))),
            source: None,
            seen: Arc::default(),
            generation: Arc::new(watch::channel(0).0),
            versions_read: Arc::new(watch::channel(0).0),
            refusal: Arc::default(),
        }
    }

    /// Why the latest version of the file read was refused (the previous one stays in
    /// force); `None` when the version in force is the latest.
    pub fn refusal(&self) -> Option<String> {
        self.refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The file it follows; `None` for a fixed value.
    pub fn path(&self) -> Option<&Path> {
        self.source.as_ref().map(|source| source.path.as_path())
    }

    /// The version in force now.
    pub fn get(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A receiver that sees the number of reloads that took effect, to wait for the next.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// A receiver that sees the number of changed versions read, whether taken or refused:
    /// to wait until a new version of the file has been judged.
    pub fn versions_read(&self) -> watch::Receiver<u64> {
        self.versions_read.subscribe()
    }

    /// Reads the file again if its modification time changed since it was last read: a
    /// valid new version replaces the one in force, an invalid one is refused.
    pub fn reload_if_changed(&self) -> Reload {
        let Some(source) = self.source.as_deref() else {
            return Reload::Unchanged;
        };
        let now = modified(&source.path);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        let judged = match (source.read)(&source.path) {
            Ok(value) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
                self.generation.send_modify(|g| *g += 1);
                *self.refusal.lock().unwrap_or_else(PoisonError::into_inner) = None;
                Reload::Reloaded
            }
            Err(e) => {
                *self.refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.clone());
                Reload::Refused(e)
            }
        };
        self.versions_read.send_modify(|v| *v += 1);
        judged
    }

    /// Checks the file every `every` ([`LiveFile::reload_if_changed`]) until `stop` is
    /// cancelled, logging each reload and each refusal. Returns at once for a fixed value.
    pub async fn watch(self, every: Duration, stop: CancellationToken) {
        let Some(source) = self.source.clone() else {
            return;
        };
        let (path, what) = (source.path.display(), source.what);
        let mut ticker = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match self.reload_if_changed() {
                Reload::Unchanged => {}
                Reload::Reloaded => {
                    let entries = (source.entries)(&self.get());
                    info!(%path, entries, "{what} reloaded");
                }
                Reload::Refused(e) => {
                    warn!(%path, error = %e, "{what} file refused; the previous version stays in force");
                }
            }
        }
    }
}

/// A path of this test process's own in the temporary folder, named after `name`.
#[cfg(test)]
pub(crate) fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("govpulse-{}-{name}", std::process::id()))
}

/// Writes `text` to `path` with a modification time `secs` ahead, so that each version of a
/// file in a test has its own modification time even where they are coarse.
#[cfg(test)]
pub(crate) fn write_ahead(path: &Path, text: &str, secs: u64) {
    std::fs::write(path, text).expect("write");
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(SystemTime::now() + Duration::from_secs(secs))
        .expect("set mtime");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str, secs: u64) {
        write_ahead(path, text, secs);
    }

    fn read(path: &Path) -> Result<u32, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        text.trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number"))
    }

    #[test]
    fn a_changed_file_is_reloaded_a_broken_one_refused_and_a_fixed_value_stays() {
        let path = scratch("live.txt");
        write(&path, "1", 0);
        let live = LiveFile::load(path.clone(), "number", read, |_| 1).expect("valid");
        let mut reloads = live.reloads();
        assert!(matches!(live.reload_if_changed(), Reload::Unchanged));
        write(&path, "two", 10);
        assert!(
            matches!(live.reload_if_changed(), Reload::Refused(e) if e == "\"two\" is not a number"),
            "refused, saying why"
        );
        assert_eq!(*live.get(), 1, "the previous version stays");
        assert!(
            matches!(live.reload_if_changed(), Reload::Unchanged),
            "a refused version is not read again until the file changes"
        );
        write(&path, "3", 20);
        assert!(matches!(live.reload_if_changed(), Reload::Reloaded));
        assert_eq!((*live.clone().get(), *reloads.borrow_and_update()), (3, 1));
        std::fs::remove_file(&path).expect("remove");

        let fixed = LiveFile::fixed(7);
        assert!(matches!(fixed.reload_if_changed(), Reload::Unchanged));
        assert_eq!((*fixed.get(), fixed.path()), (7, None));
    }
}
