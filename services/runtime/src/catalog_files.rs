//! Loads the catalog from a folder of CSV files, or from the copy built into the binaries
//! (the data shipped in `deploy/catalog`), so that the demo needs no files at all.

use std::path::Path;

use govpulse_core::{Catalog, CatalogError};

/// The files a catalog folder holds, in the order of `BUILT_IN`; each is optional but
/// `provinces.csv` and `ministries.csv` (a catalog with no agencies ranks nothing).
pub const FILES: [&str; 5] = [
    "provinces.csv",
    "ministries.csv",
    "units.csv",
    "procedures.csv",
    "mergers.csv",
];

const BUILT_IN: [&str; 5] = [
    include_str!("../../../deploy/catalog/provinces.csv"),
    include_str!("../../../deploy/catalog/ministries.csv"),
    include_str!("../../../deploy/catalog/units.csv"),
    include_str!("../../../deploy/catalog/procedures.csv"),
    include_str!("../../../deploy/catalog/mergers.csv"),
];

/// Why the catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog: {0}")]
    Invalid(#[from] CatalogError),
}

/// The catalog built into the binaries.
pub fn built_in() -> Result<Catalog, CatalogError> {
    from_texts(BUILT_IN.map(Some))
}

/// The built-in catalog with more units: `rows` are lines of `units.csv` without its header
/// (the benchmark's unit mix, tests).
pub fn built_in_with_units(rows: &str) -> Result<Catalog, CatalogError> {
    let units = format!("{}{rows}", BUILT_IN[2]);
    let mut texts = BUILT_IN.map(Some);
    texts[2] = Some(&units);
    from_texts(texts)
}

/// The catalog in `dir`, or the built-in one when `dir` is `None`.
pub fn load(dir: Option<&Path>) -> Result<Catalog, LoadError> {
    let Some(dir) = dir else {
        return Ok(built_in()?);
    };
    let mut texts: [Option<String>; 5] = Default::default();
    for (slot, name) in texts.iter_mut().zip(FILES) {
        let path = dir.join(name);
        *slot = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && name != "provinces.csv"
                    && name != "ministries.csv" =>
            {
                None
            }
            Err(source) => {
                return Err(LoadError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
    }
    Ok(from_texts(texts.each_ref().map(|t| t.as_deref()))?)
}

fn from_texts(
    [provinces, ministries, units, procedures, mergers]: [Option<&str>; 5],
) -> Result<Catalog, CatalogError> {
    let mut builder = Catalog::builder();
    if let Some(text) = provinces {
        builder = builder.provinces_csv("provinces.csv", text)?;
    }
    if let Some(text) = ministries {
        builder = builder.ministries_csv("ministries.csv", text)?;
    }
    if let Some(text) = units {
        builder = builder.units_csv("units.csv", text)?;
    }
    if let Some(text) = procedures {
        builder = builder.procedures_csv("procedures.csv", text)?;
    }
    if let Some(text) = mergers {
        builder = builder.mergers_csv("mergers.csv", text)?;
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use govpulse_core::Block;

    use super::*;

    #[test]
    fn the_built_in_catalog_has_63_provinces_then_34_and_21_ministries() {
        let catalog = built_in().expect("the shipped catalog is valid");
        assert_eq!(catalog.block_members(Block::Province).count(), 63);
        let before = time::macros::date!(2025 - 06 - 30);
        let after = time::macros::date!(2025 - 07 - 01);
        assert_eq!(
            catalog.block_members_on(Block::Province, before).count(),
            63
        );
        assert_eq!(catalog.block_members_on(Block::Province, after).count(), 34);
        assert_eq!(catalog.block_members_on(Block::Ministry, after).count(), 21);
        let phu_tho = catalog.agency_by_str("phu-tho").expect("Phú Thọ");
        let merged: Vec<&str> = phu_tho
            .merger
            .iter()
            .flat_map(|m| m.predecessors.iter().map(|p| p.as_str()))
            .collect();
        assert_eq!(merged, ["vinh-phuc", "hoa-binh"]);
        let hoa_binh = catalog.agency_by_str("hoa-binh").expect("Hòa Bình");
        assert_eq!(
            (
                hoa_binh.valid_until,
                hoa_binh.successor.as_ref().map(|s| s.as_str())
            ),
            (Some(before), Some("phu-tho"))
        );
        let constituents = |first| {
            catalog
                .constituents(&phu_tho.id, first)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(constituents(before), ["phu-tho", "vinh-phuc", "hoa-binh"]);
        assert_eq!(constituents(after), ["phu-tho"]);
        assert_eq!(catalog.block_members(Block::Ministry).count(), 21);
        let hoa_binh = catalog.agency_by_str("hoa-binh").expect("Hoa Binh");
        assert_eq!(
            (hoa_binh.name.as_str(), hoa_binh.code.as_deref()),
            ("Hòa Bình", Some("17"))
        );
        let unit = catalog.agency_by_str("hoa-binh.dept-11").expect("a unit");
        assert_eq!(unit.name, "Sở Văn hóa, Thể thao và Du lịch");
        assert!(
            catalog.procedures().count() > 1000,
            "the demo procedures are shipped"
        );
    }

    #[test]
    fn a_folder_overrides_the_built_in_catalog() {
        let dir = crate::live_file::scratch("catalog");
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("provinces.csv"),
            "code,id,name\n01,ha-noi,Hà Nội\n",
        )
        .expect("write");
        std::fs::write(dir.join("ministries.csv"), "id,name_en\nmof,Finance\n").expect("write");
        let catalog = load(Some(&dir)).expect("loads");
        assert_eq!(catalog.agencies().count(), 2);
        std::fs::write(
            dir.join("provinces.csv"),
            "code,id,name\n01,ha-noi,Hà Nội\n02,ha-tay,Hà Tây\n",
        )
        .expect("write");
        std::fs::write(
            dir.join("mergers.csv"),
            "successor_id,successor_name,predecessor_ids,effective\nha-noi,Hà Nội,ha-noi;ha-tay,2008-08-01\n",
        )
        .expect("write");
        let catalog = load(Some(&dir)).expect("loads with mergers");
        let ha_tay = catalog.agency_by_str("ha-tay").expect("Hà Tây");
        assert_eq!(
            ha_tay.successor.as_ref().map(|s| s.as_str()),
            Some("ha-noi"),
            "mergers.csv in the folder is read"
        );
        std::fs::remove_file(dir.join("ministries.csv")).expect("remove");
        let err = load(Some(&dir))
            .expect_err("ministries.csv is required")
            .to_string();
        assert!(
            err.starts_with("cannot read ") && err.contains("ministries.csv"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
