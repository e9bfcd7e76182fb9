//! What can stop a govpulse service from starting, or from serving on: one error for the
//! three services' `Server::build` and `run_until`. It never reaches a caller (a request's
//! errors are each service's own `Error`, with its one mapping to a gRPC status).

use govpulse_runtime::{
    alerts_file::RulesLoadError, catalog_files::LoadError, index_file::ProfilesLoadError,
    targets_file::TargetsLoadError,
};

use crate::{auth::TokensError, server::ServeError};

/// Why a service could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The catalog could not be loaded.
    #[error(transparent)]
    Catalog(#[from] LoadError),
    /// The index profiles file could not be loaded.
    #[error(transparent)]
    Profiles(#[from] ProfilesLoadError),
    /// The targets file could not be loaded.
    #[error(transparent)]
    Targets(#[from] TargetsLoadError),
    /// The alert rules file could not be loaded.
    #[error(transparent)]
    AlertRules(#[from] RulesLoadError),
    /// The token file could not be loaded.
    #[error(transparent)]
    Tokens(#[from] TokensError),
    /// The counter store could not be reached.
    #[error("counter store: {0}")]
    Store(Box<dyn std::error::Error + Send + Sync>),
    /// A setting is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// Binding or serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The runtime (its threads, its I/O driver) could not be started.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

impl StartError {
    /// The counter store's failure `error`.
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StartError::Store(Box::new(error))
    }
}
