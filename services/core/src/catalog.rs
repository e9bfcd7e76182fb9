//! The catalog: agencies (ministries, provinces and the units below them) and their
//! procedures, loaded from CSV text. Built once, then read-only.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

/// The catalog's id-keyed indexes, looked up per event and per agency of a block query:
/// foldhash, several times faster than SipHash on short ids. The keys come from the
/// operators' catalog files, not from clients, so hash flooding is not a concern.
type IdMap<V> = foldhash::HashMap<AgencyId, V>;
/// Looked up by hash (every event looks up its agency and procedure), iterated in id order.
type Sorted<K, V> = indexmap::IndexMap<K, V, foldhash::fast::RandomState>;

use serde::Deserialize;

use time::Date;

use crate::{AgencyId, IdError, ProcedureId};

/// Rankings compare like with like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Block {
    /// Ministries and sectors.
    Ministry,
    /// Provinces and centrally-run cities.
    Province,
}

impl Block {
    /// The name people type: `ministry` or `province`.
    pub fn name(self) -> &'static str {
        match self {
            Block::Ministry => "ministry",
            Block::Province => "province",
        }
    }

    /// Parses `ministry` or `province` (also the plurals).
    pub fn parse(raw: &str) -> Option<Block> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "ministry" | "ministries" => Some(Block::Ministry),
            "province" | "provinces" => Some(Block::Province),
            _ => None,
        }
    }
}

/// How a procedure is provided online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provision {
    /// Information only.
    Info,
    /// Partially online ("level 3").
    Partial,
    /// Full-process online ("level 4").
    Full,
}

impl Provision {
    /// Whether dossiers can be submitted online (partially or fully).
    pub fn is_online(self) -> bool {
        matches!(self, Provision::Partial | Provision::Full)
    }
}

/// A reporting unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    /// Its id.
    pub id: AgencyId,
    /// Its official name.
    pub name: String,
    /// The block of its top-level ancestor.
    pub block: Block,
    /// Its parent; `None` for a ministry or a province.
    pub parent: Option<AgencyId>,
    /// A province's official two-digit code.
    pub code: Option<String>,
    /// The first day it exists; `None` for always.
    pub valid_from: Option<Date>,
    /// The last day it exists (for example the day before it was merged into another);
    /// `None` for still.
    pub valid_until: Option<Date>,
    /// For an agency that absorbed others: when, and which.
    pub merger: Option<Merger>,
    /// For an agency absorbed into another: that one.
    pub successor: Option<AgencyId>,
}

/// Agencies merged into one ("63 provinces became 34 on 2025-07-01").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merger {
    /// The first day of the merged agency.
    pub on: Date,
    /// The agencies merged into it, other than itself.
    pub predecessors: Vec<AgencyId>,
}

impl Agency {
    fn new(
        id: AgencyId,
        name: String,
        block: Block,
        parent: Option<AgencyId>,
        code: Option<String>,
    ) -> Self {
        Self {
            id,
            name,
            block,
            parent,
            code,
            valid_from: None,
            valid_until: None,
            merger: None,
            successor: None,
        }
    }

    /// Whether the agency exists on `day`.
    pub fn exists_on(&self, day: Date) -> bool {
        within(self.valid_from, self.valid_until, day)
    }
}

/// An administrative procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    /// Its id.
    pub id: ProcedureId,
    /// The agency that owns it.
    pub agency: AgencyId,
    /// Its name (as its latest catalog row gives it).
    pub name: String,
    /// How it was provided over time: never empty, in date order, never overlapping. A
    /// procedure listed once without dates has one span covering all time; one whose
    /// provision changed (partially online, then full-process online from a date) or that was
    /// created or abolished has one span per catalog row.
    pub spans: Vec<ProvisionSpan>,
}

/// How a procedure was provided during a span of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionSpan {
    /// The first day; `None` for always.
    pub valid_from: Option<Date>,
    /// The last day; `None` for still.
    pub valid_until: Option<Date>,
    /// How it is provided online.
    pub provision: Provision,
    /// Whether it is eligible for full-process online provision.
    pub eligible_full_online: bool,
}

impl ProvisionSpan {
    /// Whether `day` falls in the span.
    pub fn contains(&self, day: Date) -> bool {
        within(self.valid_from, self.valid_until, day)
    }
}

/// Whether `day` falls between `valid_from` and `valid_until`, both included, as an agency's
/// and a provision span's days are given: a missing bound does not bound.
fn within(valid_from: Option<Date>, valid_until: Option<Date>, day: Date) -> bool {
    valid_from.is_none_or(|from| from <= day) && valid_until.is_none_or(|until| day <= until)
}

impl Procedure {
    /// How it was provided on `day`; `None` when it did not exist that day.
    pub fn on(&self, day: Date) -> Option<&ProvisionSpan> {
        self.spans.iter().find(|span| span.contains(day))
    }

    /// Its latest terms (the last span), as the catalog lists it today.
    pub fn latest(&self) -> &ProvisionSpan {
        // build() never keeps a procedure without a span.
        &self.spans[self.spans.len() - 1]
    }

    /// The days it exists, for an error message: `from 2025-04-01`, `until 2025-03-31`, or
    /// both; one range per span, separated by `, `.
    pub fn validity_text(&self) -> String {
        let span_text = |span: &ProvisionSpan| match (span.valid_from, span.valid_until) {
            (None, None) => "always".to_owned(),
            (Some(from), None) => format!("from {from}"),
            (None, Some(until)) => format!("until {until}"),
            (Some(from), Some(until)) => format!("from {from} until {until}"),
        };
        self.spans
            .iter()
            .map(span_text)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Counts from the catalog that some metrics divide by, for one agency and its units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProvisionFacts {
    /// Procedures provided online (partially or fully).
    pub online_services: u64,
    /// Procedures provided full-process online.
    pub full_online: u64,
    /// Procedures eligible for full-process online provision.
    pub eligible_full_online: u64,
    /// Every procedure provided, online or not (`info` included).
    pub procedures: u64,
}

/// Why catalog data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{source_name}: line {line}: {message}")]
    Row {
        source_name: String,
        line: u64,
        message: String,
    },
    #[error("{source_name}: {source}")]
    Csv {
        source_name: String,
        #[source]
        source: csv::Error,
    },
    #[error("agency {0} is listed twice")]
    DuplicateAgency(AgencyId),
    #[error("procedure {0} is listed twice for overlapping days")]
    DuplicateProcedure(ProcedureId),
    #[error("procedure {0} is listed with another owning agency on another row")]
    ProcedureOwnerChanged(ProcedureId),
    #[error("agency {agency} names parent {parent}, which is not in the catalog")]
    UnknownParent { agency: AgencyId, parent: AgencyId },
    #[error("merger names agency {0}, which is not in the catalog")]
    UnknownMerged(AgencyId),
    #[error("agency {0} is its own ancestor")]
    Cycle(AgencyId),
    #[error("procedure {procedure} belongs to agency {agency}, which is not in the catalog")]
    UnknownOwner {
        procedure: ProcedureId,
        agency: AgencyId,
    },
}

#[derive(Deserialize)]
struct ProvinceRow {
    code: String,
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct MinistryRow {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_en: Option<String>,
}

#[derive(Deserialize)]
struct UnitRow {
    id: String,
    name: String,
    parent_id: String,
    #[serde(default)]
    valid_from: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
}

#[derive(Deserialize)]
struct MergerRow {
    successor_id: String,
    successor_name: String,
    predecessor_ids: String,
    effective: String,
}

#[derive(Deserialize)]
struct ProcedureRow {
    id: String,
    agency_id: String,
    name: String,
    provision: Provision,
    eligible_full_online: bool,
    #[serde(default)]
    valid_from: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
}

/// An optional date column: empty is `None`.
fn optional_day(
    source_name: &str,
    line: u64,
    column: &str,
    raw: &Option<String>,
) -> Result<Option<Date>, CatalogError> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => crate::period::parse_day(raw)
            .map(Some)
            .map_err(|e| CatalogError::Row {
                source_name: source_name.to_owned(),
                line,
                message: format!("{column}: {e}"),
            }),
    }
}

fn rows<T: for<'de> Deserialize<'de>>(
    source_name: &str,
    text: &str,
) -> Result<Vec<(u64, T)>, CatalogError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for record in reader.deserialize::<T>() {
        let row = record.map_err(|source| CatalogError::Csv {
            source_name: source_name.to_owned(),
            source,
        })?;
        // Line numbers count the header as line 1.
        out.push((out.len() as u64 + 2, row));
    }
    Ok(out)
}

fn parse_id<T>(
    parse: fn(&str) -> Result<T, IdError>,
    raw: &str,
    source_name: &str,
    line: u64,
    column: &str,
) -> Result<T, CatalogError> {
    parse(raw).map_err(|e| CatalogError::Row {
        source_name: source_name.to_owned(),
        line,
        message: format!("{column} {raw:?} {e}"),
    })
}

/// Collects catalog data from several sources, then checks it as a whole in [`build`].
///
/// [`build`]: CatalogBuilder::build
#[derive(Debug, Default)]
pub struct CatalogBuilder {
    agencies: Vec<(Agency, Option<Block>)>,
    procedures: Vec<Procedure>,
    mergers: Vec<(AgencyId, String, Merger)>,
}

impl CatalogBuilder {
    /// Adds provinces from CSV with the columns `code,id,name` (others are ignored).
    pub fn provinces_csv(mut self, source_name: &str, text: &str) -> Result<Self, CatalogError> {
        for (line, row) in rows::<ProvinceRow>(source_name, text)? {
            let id = parse_id(AgencyId::parse, &row.id, source_name, line, "id")?;
            let agency = Agency::new(id, row.name, Block::Province, None, Some(row.code));
            self.agencies.push((agency, Some(Block::Province)));
        }
        Ok(self)
    }

    /// Adds ministries from CSV with the columns `id` and `name` or `name_en`.
    pub fn ministries_csv(mut self, source_name: &str, text: &str) -> Result<Self, CatalogError> {
        for (line, row) in rows::<MinistryRow>(source_name, text)? {
            let id = parse_id(AgencyId::parse, &row.id, source_name, line, "id")?;
            let name = row.name.or(row.name_en).unwrap_or_else(|| id.to_string());
            let agency = Agency::new(id, name, Block::Ministry, None, None);
            self.agencies.push((agency, Some(Block::Ministry)));
        }
        Ok(self)
    }

    /// Adds units below ministries or provinces from CSV with the columns `id,name,parent_id`.
    pub fn units_csv(mut self, source_name: &str, text: &str) -> Result<Self, CatalogError> {
        for (line, row) in rows::<UnitRow>(source_name, text)? {
            let id = parse_id(AgencyId::parse, &row.id, source_name, line, "id")?;
            let parent = parse_id(
                AgencyId::parse,
                &row.parent_id,
                source_name,
                line,
                "parent_id",
            )?;
            // The block is the root's, filled in by build().
            let mut agency = Agency::new(id, row.name, Block::Province, Some(parent), None);
            let day = |column, raw| optional_day(source_name, line, column, raw);
            agency.valid_from = day("valid_from", &row.valid_from)?;
            agency.valid_until = day("valid_until", &row.valid_until)?;
            self.agencies.push((agency, None));
        }
        Ok(self)
    }

    /// Adds mergers from CSV with the columns
    /// `successor_id,successor_name,predecessor_ids,effective`: the predecessors (separated
    /// by `;`, the successor among them when it keeps its id) end the day before `effective`
    /// and their history belongs to the successor from then on.
    pub fn mergers_csv(mut self, source_name: &str, text: &str) -> Result<Self, CatalogError> {
        for (line, row) in rows::<MergerRow>(source_name, text)? {
            let successor = parse_id(
                AgencyId::parse,
                &row.successor_id,
                source_name,
                line,
                "successor_id",
            )?;
            let on =
                crate::period::parse_day(row.effective.trim()).map_err(|e| CatalogError::Row {
                    source_name: source_name.to_owned(),
                    line,
                    message: format!("effective: {e}"),
                })?;
            let mut predecessors = Vec::new();
            for raw in row
                .predecessor_ids
                .split(';')
                .map(str::trim)
                .filter(|r| !r.is_empty())
            {
                let id = parse_id(AgencyId::parse, raw, source_name, line, "predecessor_ids")?;
                if id != successor {
                    predecessors.push(id);
                }
            }
            self.mergers
                .push((successor, row.successor_name, Merger { on, predecessors }));
        }
        Ok(self)
    }

    /// Adds procedures from CSV with the columns
    /// `id,agency_id,name,provision,eligible_full_online` (provision: full, partial, info).
    pub fn procedures_csv(mut self, source_name: &str, text: &str) -> Result<Self, CatalogError> {
        for (line, row) in rows::<ProcedureRow>(source_name, text)? {
            let day = |column, raw| optional_day(source_name, line, column, raw);
            let span = ProvisionSpan {
                valid_from: day("valid_from", &row.valid_from)?,
                valid_until: day("valid_until", &row.valid_until)?,
                provision: row.provision,
                eligible_full_online: row.eligible_full_online,
            };
            if let (Some(from), Some(until)) = (span.valid_from, span.valid_until)
                && until < from
            {
                return Err(CatalogError::Row {
                    source_name: source_name.to_owned(),
                    line,
                    message: format!("valid_until {until} is before valid_from {from}"),
                });
            }
            self.procedures.push(Procedure {
                id: parse_id(ProcedureId::parse, &row.id, source_name, line, "id")?,
                agency: parse_id(
                    AgencyId::parse,
                    &row.agency_id,
                    source_name,
                    line,
                    "agency_id",
                )?,
                name: row.name,
                spans: vec![span],
            });
        }
        Ok(self)
    }

    /// Checks the whole (unique ids, known parents, no cycles, known owners) and indexes it.
    pub fn build(self) -> Result<Catalog, CatalogError> {
        let mut agencies = BTreeMap::new();
        for (agency, _) in self.agencies {
            if agencies.contains_key(&agency.id) {
                return Err(CatalogError::DuplicateAgency(agency.id));
            }
            agencies.insert(agency.id.clone(), agency);
        }
        for (successor, name, merger) in self.mergers {
            for predecessor in &merger.predecessors {
                let Some(absorbed) = agencies.get_mut(predecessor) else {
                    return Err(CatalogError::UnknownMerged(predecessor.clone()));
                };
                absorbed.valid_until = merger.on.previous_day();
                absorbed.successor = Some(successor.clone());
            }
            let Some(agency) = agencies.get_mut(&successor) else {
                return Err(CatalogError::UnknownMerged(successor));
            };
            agency.name = name;
            agency.merger = Some(merger);
        }
        let mut chains: IdMap<Vec<AgencyId>> = IdMap::default();
        for id in agencies.keys() {
            let mut chain = vec![id.clone()];
            let mut current = id;
            while let Some(parent) = agencies.get(current).and_then(|a| a.parent.as_ref()) {
                if !agencies.contains_key(parent) {
                    return Err(CatalogError::UnknownParent {
                        agency: current.clone(),
                        parent: parent.clone(),
                    });
                }
                if chain.contains(parent) {
                    return Err(CatalogError::Cycle(parent.clone()));
                }
                chain.push(parent.clone());
                current = parent;
            }
            chains.insert(id.clone(), chain);
        }
        for (id, chain) in &chains {
            let root_block = chain
                .last()
                .and_then(|root| agencies.get(root))
                .map(|a| a.block);
            if let (Some(block), Some(agency)) = (root_block, agencies.get_mut(id)) {
                agency.block = block;
            }
        }
        let mut children: IdMap<Vec<AgencyId>> = IdMap::default();
        for agency in agencies.values() {
            if let Some(parent) = &agency.parent {
                children
                    .entry(parent.clone())
                    .or_default()
                    .push(agency.id.clone());
            }
        }
        // Rows of one procedure become its spans, in date order, never overlapping.
        let mut procedures: BTreeMap<ProcedureId, Procedure> = BTreeMap::new();
        for row in self.procedures {
            if !chains.contains_key(&row.agency) {
                return Err(CatalogError::UnknownOwner {
                    procedure: row.id,
                    agency: row.agency,
                });
            }
            match procedures.get_mut(&row.id) {
                None => {
                    procedures.insert(row.id.clone(), row);
                }
                Some(procedure) => {
                    if procedure.agency != row.agency {
                        return Err(CatalogError::ProcedureOwnerChanged(row.id));
                    }
                    let row_from = row.spans[0].valid_from;
                    procedure.spans.extend(row.spans);
                    procedure.spans.sort_by_key(|span| span.valid_from);
                    let overlapping = procedure.spans.windows(2).any(|pair| {
                        match (pair[0].valid_until, pair[1].valid_from) {
                            (Some(until), Some(from)) => from <= until,
                            _ => true,
                        }
                    });
                    if overlapping {
                        return Err(CatalogError::DuplicateProcedure(row.id));
                    }
                    // The latest row names it.
                    if procedure.latest().valid_from == row_from {
                        procedure.name = row.name;
                    }
                }
            }
        }
        let mut changes: HashMap<AgencyId, Vec<FactsChange>> = HashMap::new();
        for procedure in procedures.values() {
            let chain = chains.get(&procedure.agency).map_or(&[][..], Vec::as_slice);
            for span in &procedure.spans {
                let weight = [
                    i64::from(span.provision.is_online()),
                    i64::from(span.provision == Provision::Full),
                    // A procedure provided full-process online is eligible for it, whatever
                    // the row says, so the provision rate never exceeds 100%.
                    i64::from(span.eligible_full_online || span.provision == Provision::Full),
                    1,
                ];
                // A procedure counts for its owner and every ancestor of it, from its first
                // day to its last.
                for holder in chain {
                    let holder_changes = changes.entry(holder.clone()).or_default();
                    holder_changes.push((span.valid_from, weight));
                    if let Some(after) = span.valid_until.and_then(Date::next_day) {
                        holder_changes.push((Some(after), weight.map(|w| -w)));
                    }
                }
            }
        }
        let facts = changes
            .into_iter()
            .map(|(agency, changes)| (agency, FactsTimeline::from_changes(changes)))
            .collect();
        let absorbers = agencies
            .values()
            .filter(|a| a.merger.is_some())
            .map(|a| a.id.clone())
            .collect();
        // From B-tree maps: in id order.
        let agencies: Sorted<AgencyId, Agency> = agencies.into_iter().collect();
        let chains = (agencies.keys())
            .map(|id| Arc::from(chains.remove(id).unwrap_or_default()))
            .collect();
        Ok(Catalog {
            agencies,
            chains,
            children,
            procedures: procedures.into_iter().collect(),
            facts,
            absorbers,
        })
    }
}

/// An agency of the catalog with its chain ([`Catalog::agency_entry`]).
#[derive(Debug, Clone, Copy)]
pub struct AgencyEntry<'c> {
    /// The agency.
    pub agency: &'c Agency,
    /// The agency itself, then its parent, and so on up to its ministry or province.
    pub chain: &'c Arc<[AgencyId]>,
}

impl AgencyEntry<'_> {
    /// Whether the agency may receive dossiers for `procedure` ([`Catalog::handles`]).
    pub fn handles(&self, procedure: &Procedure) -> bool {
        chain_handles(self.chain, procedure)
    }
}

/// Whether the agency of `chain` may receive dossiers for `procedure`: it owns it, or an
/// ancestor does.
fn chain_handles(chain: &[AgencyId], procedure: &Procedure) -> bool {
    chain.contains(&procedure.agency)
}

/// Agencies and procedures, indexed for the lookups the services make per event.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    agencies: Sorted<AgencyId, Agency>,
    /// Each agency's chain, at the agency's index in `agencies` (an event's agency and its
    /// chain are one lookup, [`Catalog::agency_entry`]). Shared: every event counted
    /// carries its agency's chain.
    chains: Vec<Arc<[AgencyId]>>,
    children: IdMap<Vec<AgencyId>>,
    procedures: Sorted<ProcedureId, Procedure>,
    facts: IdMap<FactsTimeline>,
    /// The agencies that absorbed others: every other agency is its own only constituent,
    /// which block reads over 10,000 units ask about for each of them.
    absorbers: foldhash::HashSet<AgencyId>,
}

/// From a day on (`None`: from the beginning of time), signed changes of the four provision
/// facts (online services, full-process online, eligible for it, every procedure).
type FactsChange = (Option<Date>, [i64; 4]);

/// An agency's provision facts over time: from each change point on (the first, `None`,
/// stands for the beginning of time) until the next.
#[derive(Debug, Clone, Default)]
struct FactsTimeline(Vec<(Option<Date>, ProvisionFacts)>);

impl FactsTimeline {
    /// Sums signed changes (procedures starting and ending) into the facts of each span.
    fn from_changes(mut changes: Vec<FactsChange>) -> Self {
        changes.sort_by_key(|(day, _)| *day);
        let mut timeline: Vec<(Option<Date>, ProvisionFacts)> = Vec::new();
        let mut running = [0i64; 4];
        for (day, change) in changes {
            for (total, delta) in running.iter_mut().zip(change) {
                *total += delta;
            }
            // Every end was preceded by its start, so no total goes below zero.
            let [
                online_services,
                full_online,
                eligible_full_online,
                procedures,
            ] = running.map(|n| u64::try_from(n).unwrap_or(0));
            let facts = ProvisionFacts {
                online_services,
                full_online,
                eligible_full_online,
                procedures,
            };
            match timeline.last_mut() {
                Some((last_day, last)) if *last_day == day => *last = facts,
                _ => timeline.push((day, facts)),
            }
        }
        Self(timeline)
    }

    fn on(&self, day: Date) -> ProvisionFacts {
        // The last change on or before the day (`None` sorts before every date).
        let after = self.0.partition_point(|(from, _)| *from <= Some(day));
        after
            .checked_sub(1)
            .map(|i| self.0[i].1)
            .unwrap_or_default()
    }
}

impl Catalog {
    /// Starts a catalog.
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder::default()
    }

    /// The agency with this id.
    pub fn agency(&self, id: &AgencyId) -> Option<&Agency> {
        self.agencies.get(id)
    }

    /// The agency whose id is `raw`, if `raw` is a known agency id. Its `id` is the
    /// catalog's, shared: cloning it copies no text.
    pub fn agency_by_str(&self, raw: &str) -> Option<&Agency> {
        self.agencies.get(raw)
    }

    /// Every agency, sorted by id.
    pub fn agencies(&self) -> impl Iterator<Item = &Agency> {
        self.agencies.values()
    }

    /// The agency itself, then its parent, and so on up to its ministry or province.
    pub fn chain(&self, id: &AgencyId) -> &[AgencyId] {
        self.agencies
            .get_index_of(id)
            .map_or(&[], |at| &self.chains[at])
    }

    /// [`Catalog::chain`], shared (a count, not a copy): what each counted event carries.
    pub fn shared_chain(&self, id: &AgencyId) -> Arc<[AgencyId]> {
        self.agencies
            .get_index_of(id)
            .map_or_else(|| Arc::from([]), |at| self.chains[at].clone())
    }

    /// The agency whose id is `raw` with its chain, in one lookup: what checking an event
    /// needs of the agency it names (every event of every batch, in ingest and again in
    /// aggregate, where the catalog holds 10,000 units and more).
    pub fn agency_entry(&self, raw: &str) -> Option<AgencyEntry<'_>> {
        let (at, _, agency) = self.agencies.get_full(raw)?;
        Some(AgencyEntry {
            agency,
            chain: &self.chains[at],
        })
    }

    /// The top-level ancestor (ministry or province) of an agency; itself if top-level.
    pub fn root(&self, id: &AgencyId) -> Option<&AgencyId> {
        self.chain(id).last()
    }

    /// The top-level agencies of a block, sorted by id.
    pub fn block_members(&self, block: Block) -> impl Iterator<Item = &Agency> {
        self.agencies
            .values()
            .filter(move |a| a.block == block && a.parent.is_none())
    }

    /// The top-level agencies of a block that exist on `day`, sorted by id.
    pub fn block_members_on(&self, block: Block, day: Date) -> impl Iterator<Item = &Agency> {
        self.block_members(block).filter(move |a| a.exists_on(day))
    }

    /// The agencies whose counts make up `agency` as it is now, over a period starting on
    /// `first_day`: the agency itself and, when it absorbed others after `first_day`, those
    /// too (and theirs, for earlier mergers).
    pub fn constituents(&self, agency: &AgencyId, first_day: Date) -> Vec<AgencyId> {
        self.constituents_within(agency, first_day, Date::MAX)
    }

    /// Whether `agency` ever absorbed another (a merger); most never did, and have no other
    /// constituent over any period.
    pub fn absorbed_any(&self, agency: &AgencyId) -> bool {
        self.absorbers.contains(agency)
    }

    /// As [`Catalog::constituents`], for `agency` as it was on `last_day`: mergers after
    /// `last_day` had not happened yet, so they add nothing.
    pub fn constituents_within(
        &self,
        agency: &AgencyId,
        first_day: Date,
        last_day: Date,
    ) -> Vec<AgencyId> {
        let mut out = vec![agency.clone()];
        if !self.absorbed_any(agency) {
            return out;
        }
        let mut i = 0;
        while i < out.len() {
            if let Some(merger) = self.agency(&out[i]).and_then(|a| a.merger.as_ref())
                && first_day < merger.on
                && merger.on <= last_day
            {
                for p in &merger.predecessors {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
            i += 1;
        }
        out
    }

    /// The direct children of an agency, sorted by id.
    pub fn children(&self, id: &AgencyId) -> Vec<&Agency> {
        let mut kids: Vec<&Agency> = self
            .children
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|c| self.agencies.get(c))
            .collect();
        kids.sort_by(|a, b| a.id.cmp(&b.id));
        kids
    }

    /// The procedure with this id.
    pub fn procedure(&self, id: &ProcedureId) -> Option<&Procedure> {
        self.procedures.get(id)
    }

    /// The procedure whose id is `raw`, if `raw` is a known procedure id.
    pub fn procedure_by_str(&self, raw: &str) -> Option<&Procedure> {
        self.procedures.get(raw)
    }

    /// Every procedure, sorted by id.
    pub fn procedures(&self) -> impl Iterator<Item = &Procedure> {
        self.procedures.values()
    }

    /// Whether `agency` may receive dossiers for `procedure`: it owns it, or an ancestor does.
    pub fn handles(&self, agency: &AgencyId, procedure: &Procedure) -> bool {
        chain_handles(self.chain(agency), procedure)
    }

    /// Procedure counts for an agency and its units, as the catalog had them on `day`
    /// (procedures that existed that day, provided as they were that day).
    pub fn provision_facts(&self, agency: &AgencyId, day: Date) -> ProvisionFacts {
        self.facts
            .get(agency)
            .map(|timeline| timeline.on(day))
            .unwrap_or_default()
    }

    /// Procedure counts for an agency read with the agencies it absorbed (its constituents,
    /// itself first): the sum over those that existed on `day`. Before a merger the
    /// predecessors' procedures count beside the successor's, as their dossiers do; from
    /// the merger on they count only as the successor's own, where the catalog lists them;
    /// an agency has none on a day it did not exist.
    pub fn provision_facts_of(&self, constituents: &[AgencyId], day: Date) -> ProvisionFacts {
        constituents
            .iter()
            .filter(|c| self.agency(c).is_some_and(|a| a.exists_on(day)))
            .map(|c| self.provision_facts(c, day))
            .fold(ProvisionFacts::default(), |sum, f| ProvisionFacts {
                online_services: sum.online_services + f.online_services,
                full_online: sum.full_online + f.full_online,
                eligible_full_online: sum.eligible_full_online + f.eligible_full_online,
                procedures: sum.procedures + f.procedures,
            })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::testing::{Table, catalog_of, id, refusal_of};

    const PROVINCES: &str = "code,id,name,name_ascii,region\n01,ha-noi,Hà Nội,Ha Noi,x\n17,hoa-binh,Hòa Bình,Hoa Binh,y\n";
    const MINISTRIES: &str = "id,name_en\nmof,Ministry of Finance\n";
    const UNITS: &str = "id,name,parent_id\nhn-dept,Sở A,ha-noi\nhn-ward,Phường B,hn-dept\n";
    const PROCEDURES: &str = "id,agency_id,name,provision,eligible_full_online\n\
        p1,ha-noi,Birth,full,true\np2,hn-dept,Permit,partial,true\np3,mof,Tax,info,false\n\
        p4,mof,Customs,full,false\n";

    fn catalog() -> Catalog {
        catalog_with(PROCEDURES)
    }

    /// The agencies above, providing `procedures`.
    fn catalog_with(procedures: &str) -> Catalog {
        catalog_of(&[
            (Table::Provinces, PROVINCES),
            (Table::Ministries, MINISTRIES),
            (Table::Units, UNITS),
            (Table::Procedures, procedures),
        ])
    }

    #[test]
    fn units_inherit_their_roots_block_and_chain() {
        let c = catalog();
        let ward = c.agency(&id("hn-ward")).expect("ward");
        assert_eq!(ward.block, Block::Province);
        assert_eq!(
            c.chain(&id("hn-ward")),
            [id("hn-ward"), id("hn-dept"), id("ha-noi")]
        );
        assert_eq!(c.root(&id("hn-ward")), Some(&id("ha-noi")));
        let provinces: Vec<&str> = c
            .block_members(Block::Province)
            .map(|a| a.id.as_str())
            .collect();
        assert_eq!(provinces, ["ha-noi", "hoa-binh"]);
        assert_eq!(
            c.agency(&id("mof")).map(|a| a.name.as_str()),
            Some("Ministry of Finance")
        );
    }

    #[test]
    fn procedures_are_handled_by_their_owner_and_its_units() {
        let c = catalog();
        let p1 = c
            .procedure(&ProcedureId::parse("p1").expect("id"))
            .expect("p1");
        assert!(c.handles(&id("hn-ward"), p1));
        assert!(c.handles(&id("ha-noi"), p1));
        assert!(!c.handles(&id("hoa-binh"), p1));
        let p2 = c
            .procedure(&ProcedureId::parse("p2").expect("id"))
            .expect("p2");
        assert!(
            !c.handles(&id("ha-noi"), p2),
            "a parent does not handle its unit's procedure"
        );
        assert_eq!(
            c.provision_facts(&id("ha-noi"), date!(2026 - 01 - 01)),
            ProvisionFacts {
                online_services: 2,
                full_online: 1,
                eligible_full_online: 2,
                procedures: 2,
            }
        );
        assert_eq!(
            c.provision_facts(&id("mof"), date!(2026 - 01 - 01)),
            ProvisionFacts {
                online_services: 1,
                full_online: 1,
                eligible_full_online: 1,
                procedures: 2,
            },
            "a full procedure counts as eligible even when its row says otherwise"
        );
    }

    /// Quang Ninh style: procedures created, abolished and moved to full-process online on
    /// dates; the facts on any day count what the catalog listed that day.
    const DATED: &str = "id,agency_id,name,provision,eligible_full_online,valid_from,valid_until\n\
        a,ha-noi,Old,partial,true,,2025-03-31\n\
        a,ha-noi,Now full,full,true,2025-04-01,\n\
        b,hn-dept,Created,partial,false,2025-07-01,\n\
        c,ha-noi,Abolished,full,true,,2024-12-31\n";

    #[test]
    fn provision_facts_are_those_of_the_day_asked() {
        let c = catalog_with(DATED);
        let facts = |agency: &str, day: Date| {
            let f = c.provision_facts(&id(agency), day);
            (
                f.online_services,
                f.full_online,
                f.eligible_full_online,
                f.procedures,
            )
        };
        // 2024: a (partial) and c (full).
        assert_eq!(facts("ha-noi", date!(2024 - 06 - 01)), (2, 1, 2, 2));
        // c is abolished at the end of 2024.
        assert_eq!(facts("ha-noi", date!(2024 - 12 - 31)), (2, 1, 2, 2));
        assert_eq!(facts("ha-noi", date!(2025 - 01 - 01)), (1, 0, 1, 1));
        // a is full-process online from April 2025.
        assert_eq!(facts("ha-noi", date!(2025 - 03 - 31)), (1, 0, 1, 1));
        assert_eq!(facts("ha-noi", date!(2025 - 04 - 01)), (1, 1, 1, 1));
        // b is created in July under a unit: it counts for the unit and for Ha Noi.
        assert_eq!(facts("ha-noi", date!(2025 - 07 - 01)), (2, 1, 1, 2));
        assert_eq!(facts("hn-dept", date!(2025 - 06 - 30)), (0, 0, 0, 0));
        assert_eq!(facts("hn-dept", date!(2026 - 11 - 23)), (1, 0, 0, 1));
        assert_eq!(facts("hoa-binh", date!(2026 - 11 - 23)), (0, 0, 0, 0));
    }

    #[test]
    fn a_procedure_is_provided_as_its_span_of_the_day_says() {
        let c = catalog_with(DATED);
        let a = c
            .procedure(&ProcedureId::parse("a").expect("id"))
            .expect("a");
        let provision = |day| a.on(day).map(|span| span.provision);
        assert_eq!(provision(date!(2025 - 03 - 31)), Some(Provision::Partial));
        assert_eq!(provision(date!(2025 - 04 - 01)), Some(Provision::Full));
        assert_eq!(a.latest().provision, Provision::Full);
        assert_eq!(a.name, "Now full", "the latest row names it");
        assert_eq!(a.validity_text(), "until 2025-03-31, from 2025-04-01");
        let c_abolished = c
            .procedure(&ProcedureId::parse("c").expect("id"))
            .expect("c");
        assert_eq!(c_abolished.on(date!(2025 - 01 - 01)), None);
    }

    #[test]
    fn inconsistent_data_is_refused_with_the_reason() {
        let units = |rows: &str| {
            let units = format!("id,name,parent_id\n{rows}");
            refusal_of(&[(Table::Provinces, PROVINCES), (Table::Units, &units)])
        };
        let procedures = |rows: &str| {
            let procedures = format!(
                "id,agency_id,name,provision,eligible_full_online,valid_from,valid_until\n{rows}"
            );
            refusal_of(&[
                (Table::Provinces, PROVINCES),
                (Table::Units, UNITS),
                (Table::Procedures, &procedures),
            ])
        };
        for (case, refusal, reason) in [
            (
                "a unit under an unknown parent",
                units("x,X,nowhere\n"),
                "agency x names parent nowhere, which is not in the catalog",
            ),
            (
                "a unit with a province's id",
                units("ha-noi,X,hoa-binh\n"),
                "agency ha-noi is listed twice",
            ),
            (
                "two units each the other's parent",
                units("a,A,b\nb,B,a\n"),
                "agency a is its own ancestor",
            ),
            (
                "a unit id with a space",
                units("bad id,X,ha-noi\n"),
                "units.csv: line 2: id \"bad id\" contains ' '; allowed are letters A-Z a-z, digits and - _ . : /",
            ),
            (
                "a procedure listed for all time and again from a day",
                procedures("a,ha-noi,A,full,true,,\na,ha-noi,A,full,true,2025-01-01,\n"),
                "procedure a is listed twice for overlapping days",
            ),
            (
                "a procedure listed until a day and again from that day",
                procedures("a,ha-noi,A,full,true,,2025-01-31\na,ha-noi,A,full,true,2025-01-31,\n"),
                "procedure a is listed twice for overlapping days",
            ),
            (
                "a procedure owned by another agency from a day",
                procedures(
                    "a,ha-noi,A,full,true,,2025-01-31\na,hoa-binh,A,full,true,2025-02-01,\n",
                ),
                "procedure a is listed with another owning agency on another row",
            ),
            (
                "a procedure's days ending before they start",
                procedures("a,ha-noi,A,full,true,2025-02-01,2025-01-31\n"),
                "procedures.csv: line 2: valid_until 2025-01-31 is before valid_from 2025-02-01",
            ),
        ] {
            assert_eq!(refusal, reason, "{case}");
        }
    }
}
