//! Loads alert rules from a TOML file, or the copy built into the binaries
//! (`deploy/config/alerts.toml`), and keeps them current while the file changes
//! ([`LiveFile`]): a version that does not pass its checks is refused, the rules in force
//! stay, and [`LiveFile::refusal`] says why.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use govpulse_core::{
    Catalog,
    alerts::{Rules, RulesError},
    period::vietnam_day,
};
use time::OffsetDateTime;

use crate::live_file::{FileError, LiveFile, read_config};

const BUILT_IN: &str = include_str!("../../../deploy/config/alerts.toml");

/// Why alert rules could not be loaded.
pub type RulesLoadError = FileError<RulesError>;

/// The alert rules in force, replaced when the file changes.
pub type LiveAlertRules = LiveFile<Rules>;

fn read(path: Option<&Path>, catalog: &Catalog) -> Result<Rules, RulesLoadError> {
    let today = vietnam_day(OffsetDateTime::now_utc());
    read_config(path, ("built-in alert rules", BUILT_IN), |text| {
        Rules::parse(text, catalog, today)
    })
}

/// Loads the file at `path` (the built-in rules when `None`), checked against `catalog`;
/// an invalid file stops start-up.
pub fn load(
    path: Option<PathBuf>,
    catalog: Arc<Catalog>,
) -> Result<LiveAlertRules, RulesLoadError> {
    match path {
        None => Ok(LiveFile::fixed(read(None, &catalog)?)),
        // A refusal of a later version says what is wrong, not where the file is.
        Some(path) => LiveFile::load(
            path,
            "alert rules",
            move |p| read(Some(p), &catalog).map_err(Refusal),
            Rules::len,
        )
        .map_err(|Refusal(e)| e),
    }
}

/// Why a changed version of the rules file was refused, as callers are told it (in
/// `AlertRulesStatus.refused`, on public routes): the fault, never the file's path on the
/// server, which the log line names.
#[derive(Debug)]
struct Refusal(RulesLoadError);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            FileError::Read { source, .. } => write!(f, "cannot read the file: {source}"),
            FileError::Invalid { source, .. } => write!(f, "{source}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live_file::{Reload, scratch, write_ahead};

    #[test]
    fn the_built_in_rules_are_valid() {
        let catalog = Arc::new(crate::catalog_files::built_in().expect("valid catalog"));
        let rules = load(None, catalog).expect("valid rules").get();
        assert_eq!(rules.len(), 4);
    }

    #[test]
    fn a_broken_file_keeps_the_rules_in_force_and_says_why_without_its_path() {
        let catalog = Arc::new(crate::catalog_files::built_in().expect("valid catalog"));
        let path = scratch("alerts.toml");
        let rule = |after: &str| {
            format!(
                "[[rules]]\nname = \"quiet\"\nkind = \"silent\"\nblock = \"province\"\nafter = \"{after}\"\n"
            )
        };
        write_ahead(&path, &rule("2h"), 0);
        let live = load(Some(path.clone()), catalog).expect("valid");
        write_ahead(&path, &rule("soon"), 10);
        let refused = live.reload_if_changed();
        assert!(matches!(&refused, Reload::Refused(_)), "{refused:?}");
        assert_eq!(live.get().len(), 1, "the previous rules stay in force");
        let why = live.refusal().expect("a refusal");
        assert!(why.starts_with("rules[0].after: "), "{why}");
        assert!(
            !why.contains("govpulse-alerts"),
            "no path on the server: {why}"
        );
        let two = format!("{}{}", rule("1h"), rule("3h").replace("quiet", "quieter"));
        write_ahead(&path, &two, 20);
        assert!(matches!(live.reload_if_changed(), Reload::Reloaded));
        assert_eq!(live.get().len(), 2);
        assert_eq!(live.refusal(), None);
        let _ = std::fs::remove_file(&path);
    }
}
