//! The govpulse domain, pure and synchronous: ids, Vietnam-time periods and buckets, the
//! counters an event adds, metric formulas, ranking maths and the catalog. No I/O, no
//! tonic, no Redis: everything here takes its inputs (including `now`) as arguments.

pub mod alerts;
pub mod backlog;
pub mod catalog;
pub mod compare;
pub mod counters;
pub mod counting;
pub mod event;
pub mod freshness;
pub mod ids;
pub mod index;
pub mod metric;
pub mod notice;
pub mod period;
pub mod policy;
pub mod procedures;
pub mod publication;
pub mod ranking;
pub mod rate;
pub mod reading;
pub mod report;
pub mod summary;
pub mod targets;
#[cfg(test)]
mod testing;

pub use catalog::{
    Agency, AgencyEntry, Block, Catalog, CatalogBuilder, CatalogError, Merger, Procedure,
    Provision, ProvisionFacts,
};
pub use counters::{Counter, CounterDelta, Counters};
pub use event::{Channel, DossierEvent, EventKind, Timeliness};
pub use ids::{AgencyId, CheckedId, DossierId, EventId, IdError, ProcedureId};
pub use metric::{Metric, Needs};
pub use period::{Bucket, Period, PeriodError, ReadPlan};
pub use policy::{AcceptancePolicy, TimeError};
pub use rate::Rate;
