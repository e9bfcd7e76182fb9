//! What the unit tests of several modules share: agency ids and small catalogs.

use crate::{AgencyId, Catalog, CatalogBuilder, CatalogError};

/// The agency id `raw`, which the test knows to be valid.
pub(crate) fn id(raw: &str) -> AgencyId {
    AgencyId::parse(raw).expect("a valid agency id")
}

/// A CSV table of the catalog, as [`CatalogBuilder`] reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Table {
    /// `code,id,name`.
    Provinces,
    /// `id,name_en`.
    Ministries,
    /// `id,name,parent_id`.
    Units,
    /// `successor_id,successor_name,predecessor_ids,effective`.
    Mergers,
    /// `id,agency_id,name,provision,eligible_full_online` (and optionally the dates).
    Procedures,
}

/// The catalog of `tables` (each a table and its text), which the test knows to be valid.
pub(crate) fn catalog_of(tables: &[(Table, &str)]) -> Catalog {
    built(tables).expect("a valid catalog")
}

/// Why the catalog of `tables` is refused, which the test knows it is.
pub(crate) fn refusal_of(tables: &[(Table, &str)]) -> String {
    built(tables).expect_err("an invalid catalog").to_string()
}

/// The catalog of `tables`, each read as the file `<table>.csv` (the name errors quote).
fn built(tables: &[(Table, &str)]) -> Result<Catalog, CatalogError> {
    tables
        .iter()
        .try_fold(Catalog::builder(), |builder, &(table, text)| match table {
            Table::Provinces => builder.provinces_csv("provinces.csv", text),
            Table::Ministries => builder.ministries_csv("ministries.csv", text),
            Table::Units => builder.units_csv("units.csv", text),
            Table::Mergers => builder.mergers_csv("mergers.csv", text),
            Table::Procedures => builder.procedures_csv("procedures.csv", text),
        })
        .and_then(CatalogBuilder::build)
}
