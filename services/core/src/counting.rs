//! The counting rules of a batch, once. Given the events of a batch and what the store knows
//! of their ids and of their dossiers, [`plan`] says which events count (exactly once per
//! agency and event id, whatever day they claim), which are resends of what was counted
//! (duplicates) and which carry other content under a counted id (conflicts, counted zero
//! times), what the counters of every agency of each event's chain gain in which buckets,
//! the due-day counters of the backlog included ([`crate::backlog`]), which procedures join
//! which online sets, what each dossier's state becomes, when each agency of the chain
//! was last seen reporting, and how many events were accepted and rejected for it per day
//! ([`crate::freshness`]).
//!
//! Pure: the in-memory store and the Redis store both run it, each reading what it needs
//! first and writing the plan's effects after, so the rules exist in this file and nowhere
//! else (no script in Redis knows them).

use std::{collections::BTreeMap, sync::Arc};

use foldhash::{HashMap, HashMapExt};

use time::{Date, OffsetDateTime};
use xxhash_rust::xxh3::xxh3_64;

use crate::{
    AgencyId, Bucket, Counter, CounterDelta, DossierEvent, DossierId, EventId, EventKind,
    ProcedureId, Timeliness,
    backlog::{self, Dossier, Stage, StageEvent},
    event::Channel,
    freshness::Seen,
    period::vietnam_day,
};

/// What an event says, as a digest of each of its fields: enough to tell a resend of a
/// counted event (the same content) from other content sent under its id, and to name the
/// fields that differ. 16 bits a field, so that a remembered id costs 8 bytes of content:
/// two versions of one event that differ in one field are taken for the same with a chance
/// of one in 65,536, and then the later one is reported DUPLICATE instead of CONFLICT (it
/// is counted zero times either way; only the warning to its sender is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Content {
    dossier: u16,
    procedure: u16,
    occurred_at: u16,
    kind: u16,
}

/// The field names [`Content::differs`] gives, as the event's fields are named in the API.
const FIELDS: [&str; 4] = ["dossier_id", "procedure_id", "occurred_at", "kind"];

fn digest16(bytes: &[u8]) -> u16 {
    // The low bits of a 64-bit hash: every bit of xxh3 is well mixed.
    (xxh3_64(bytes) & 0xffff) as u16
}

impl Content {
    /// The content of a validated event. A correction's kind says which event it corrects.
    pub fn of(event: &DossierEvent) -> Content {
        let mut kind = KindText::new();
        if let Some(target) = &event.corrects {
            kind.push(b"corrects ");
            kind.push(target.as_str().as_bytes());
            kind.push(b" ");
        }
        write_kind(&event.kind, &mut kind);
        Content::with_kind_digest(
            event.dossier.as_str(),
            event.procedure.as_str(),
            event.occurred_at,
            digest16(kind.as_bytes()),
        )
    }

    /// The content of an event of `dossier` and `procedure` at `occurred_at` whose kind and
    /// values `kind` writes out canonically (the same text for the same values).
    pub fn new(dossier: &str, procedure: &str, occurred_at: OffsetDateTime, kind: &str) -> Content {
        Content::with_kind_digest(dossier, procedure, occurred_at, digest16(kind.as_bytes()))
    }

    fn with_kind_digest(
        dossier: &str,
        procedure: &str,
        occurred_at: OffsetDateTime,
        kind: u16,
    ) -> Content {
        Content {
            dossier: digest16(dossier.as_bytes()),
            procedure: digest16(procedure.as_bytes()),
            occurred_at: digest16(&occurred_at.unix_timestamp_nanos().to_be_bytes()),
            kind,
        }
    }

    /// The fields in which `other` differs from this, by name; empty when they agree.
    pub fn differs(&self, other: &Content) -> Vec<&'static str> {
        let (a, b) = (self.fields(), other.fields());
        FIELDS
            .iter()
            .zip(a.iter().zip(b))
            .filter(|(_, (x, y))| *x != y)
            .map(|(name, _)| *name)
            .collect()
    }

    fn fields(&self) -> [u16; 4] {
        [self.dossier, self.procedure, self.occurred_at, self.kind]
    }

    /// The size of [`Content::to_bytes`].
    pub const BYTES: usize = 8;

    /// 8 bytes, as stores keep it.
    pub fn to_bytes(self) -> [u8; Content::BYTES] {
        let mut bytes = [0u8; Content::BYTES];
        for (chunk, field) in bytes.chunks_exact_mut(2).zip(self.fields()) {
            chunk.copy_from_slice(&field.to_be_bytes());
        }
        bytes
    }

    /// The content [`Content::to_bytes`] wrote; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Content> {
        let field = |i: usize| {
            bytes
                .get(i * 2..i * 2 + 2)
                .and_then(|b| b.try_into().ok())
                .map(u16::from_be_bytes)
        };
        if bytes.len() != Content::BYTES {
            return None;
        }
        Some(Content {
            dossier: field(0)?,
            procedure: field(1)?,
            occurred_at: field(2)?,
            kind: field(3)?,
        })
    }
}

/// What an event id counts now, as a store remembers it beside the id: enough to take it
/// back exactly (a correction or a retraction) without the event itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    /// What the event sent under the id said.
    pub content: Content,
    /// [`dossier_tag`] of the event's dossier: a correction must name the same one.
    pub dossier: u32,
    /// What the id counts now.
    pub counts: Counts,
}

/// What an event id counts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    /// An event, counting `Effect` (what it said, or what a correction of it said).
    Event(Effect),
    /// An event a retraction took back: it counts nothing, and stays so.
    Retracted,
    /// A correction: what it said counts under the event it corrects.
    Correction,
}

/// What a counted event adds: one to each of its counters on its Vietnam day, and its
/// procedure to the online sets if it is an online reception of a procedure provided online.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// The Vietnam day the event counts in.
    pub day: Date,
    /// Its counters, one bit per [`Counter`] at the counter's index (only the counters an
    /// event adds: [`Effect::increments`]).
    pub counters: u32,
    /// Whether it put its procedure in the online sets of its day's buckets.
    pub online: bool,
}

/// The bit of [`Effect::online`] in a remembered record's counter bits (3 bytes).
const ONLINE_BIT: u32 = 1 << 22;
/// The counter bits of a correction's own record (no counter has this index).
const CORRECTION_BITS: u32 = 1 << 23;
const _: () = assert!(Counter::ALL.len() <= 22, "counter bits below the two flags");

/// Whether an event adds `counter` (the due-day counters move with its dossier's stage, and
/// [`Counter::Corrected`] with a correction; none is an event's own).
fn added_by_events(counter: Counter) -> bool {
    !counter.by_due_day() && counter != Counter::Corrected
}

impl Effect {
    /// What an event of `day` adding `delta` counts.
    pub fn of(day: Date, delta: &CounterDelta) -> Effect {
        Effect {
            day,
            counters: delta
                .increments
                .iter()
                .fold(0, |bits, c| bits | 1 << (*c as u32)),
            online: delta.online_procedure.is_some(),
        }
    }

    /// The stage of its dossier it counted.
    pub fn stage(&self) -> Option<Stage> {
        [
            (Counter::Received, Stage::Received),
            (Counter::Resolved, Stage::Resolved),
            (Counter::FeePaid, Stage::FeePaid),
            (Counter::Feedback, Stage::Feedback),
            (Counter::Withdrawn, Stage::Withdrawn),
            (Counter::Returned, Stage::Returned),
        ]
        .into_iter()
        .find(|(counter, _)| self.counters & 1 << (*counter as u32) != 0)
        .map(|(_, stage)| stage)
    }

    /// The counters it adds.
    pub fn increments(&self) -> impl Iterator<Item = Counter> + '_ {
        Counter::ALL
            .into_iter()
            .filter(|c| added_by_events(*c) && self.counters & 1 << (*c as u32) != 0)
    }
}

impl Remembered {
    /// The size of [`Remembered::to_bytes`].
    pub const BYTES: usize = Content::BYTES + 9;

    /// As stores keep it: the content, the dossier's tag (4 bytes, big-endian), the effect's
    /// day (days since 1970, big-endian, 0 when it counts nothing) and counter bits (3 bytes,
    /// big-endian; the online flag at bit 22; a correction's own record has only bit 23, a
    /// retracted one none).
    pub fn to_bytes(&self) -> [u8; Remembered::BYTES] {
        let (day, bits) = match self.counts {
            Counts::Event(effect) => (
                days_since_1970(effect.day),
                effect.counters | if effect.online { ONLINE_BIT } else { 0 },
            ),
            Counts::Retracted => (0, 0),
            Counts::Correction => (0, CORRECTION_BITS),
        };
        let mut bytes = [0u8; Remembered::BYTES];
        bytes[..Content::BYTES].copy_from_slice(&self.content.to_bytes());
        bytes[Content::BYTES..Content::BYTES + 4].copy_from_slice(&self.dossier.to_be_bytes());
        bytes[Content::BYTES + 4..Content::BYTES + 6].copy_from_slice(&day.to_be_bytes());
        bytes[Content::BYTES + 6..].copy_from_slice(&bits.to_be_bytes()[1..]);
        bytes
    }

    /// What [`Remembered::to_bytes`] wrote; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<Remembered> {
        if bytes.len() != Remembered::BYTES {
            return None;
        }
        let content = Content::from_bytes(&bytes[..Content::BYTES])?;
        let dossier =
            u32::from_be_bytes(bytes[Content::BYTES..Content::BYTES + 4].try_into().ok()?);
        let day = u16::from_be_bytes(
            bytes[Content::BYTES + 4..Content::BYTES + 6]
                .try_into()
                .ok()?,
        );
        let mut four = [0u8; 4];
        four[1..].copy_from_slice(&bytes[Content::BYTES + 6..]);
        let bits = u32::from_be_bytes(four);
        let counts = match bits {
            0 => Counts::Retracted,
            CORRECTION_BITS => Counts::Correction,
            bits if bits & CORRECTION_BITS == 0
                && bits & !ONLINE_BIT != 0
                && Counter::ALL
                    .iter()
                    .filter(|c| !added_by_events(**c))
                    .all(|c| bits & 1 << (*c as u32) == 0) =>
            {
                Counts::Event(Effect {
                    day: date_since_1970(day)?,
                    counters: bits & !ONLINE_BIT,
                    online: bits & ONLINE_BIT != 0,
                })
            }
            _ => return None,
        };
        Some(Remembered {
            content,
            dossier,
            counts,
        })
    }
}

/// A day as days since 1970-01-01 in two bytes (enough until 2149; a later day is kept as
/// the last one two bytes hold).
fn days_since_1970(day: Date) -> u16 {
    let days = day.to_julian_day() - EPOCH_JULIAN_DAY;
    u16::try_from(days.max(0)).unwrap_or(u16::MAX)
}

fn date_since_1970(days: u16) -> Option<Date> {
    Date::from_julian_day(EPOCH_JULIAN_DAY + i32::from(days)).ok()
}

/// The Julian day of 1970-01-01.
const EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// The text an event's kind digest is taken of, built on the stack: the longest (a
/// correction naming a 128-character id, then a resolution with its due time) is under 200
/// bytes, and a heap string joined per event was a tenth of aggregate's decoding. A plain
/// array and its length: `SmallVec`'s general insertion took three quarters of the
/// instructions of [`Content::of`].
struct KindText {
    bytes: [u8; 256],
    len: usize,
}

impl KindText {
    fn new() -> KindText {
        KindText {
            bytes: [0; 256],
            len: 0,
        }
    }

    /// Appends `part`. The text is bounded (above), so this never runs out of room; if
    /// it did, it would panic rather than digest another text.
    fn push(&mut self, part: &[u8]) {
        let end = self.len + part.len();
        self.bytes[self.len..end].copy_from_slice(part);
        self.len = end;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Writes `kind` and its values canonically, words apart (`received online true -1`,
/// `resolved due <nanos> false`): the same text for the same values, as stores have kept
/// their digests since events were first remembered.
fn write_kind(kind: &EventKind, out: &mut KindText) {
    let channel = |c: Channel| match c {
        Channel::InPerson => "in_person",
        Channel::Online => "online",
        Channel::Postal => "postal",
    };
    let flag = |b: bool| if b { "true" } else { "false" };
    let mut numbers = itoa::Buffer::new();
    let words: &[&str] = match kind {
        EventKind::Received {
            channel: c,
            digitized,
            due_at,
        } => &[
            "received",
            channel(*c),
            flag(*digitized),
            nanos_text(
                &mut numbers,
                due_at.map_or(-1, OffsetDateTime::unix_timestamp_nanos),
            ),
        ],
        EventKind::Resolved {
            timeliness: Timeliness::DueAt(due),
            result_electronic,
        } => &[
            "resolved",
            "due",
            nanos_text(&mut numbers, due.unix_timestamp_nanos()),
            flag(*result_electronic),
        ],
        EventKind::Resolved {
            timeliness: Timeliness::OnTime(on_time),
            result_electronic,
        } => &[
            "resolved",
            "on_time",
            flag(*on_time),
            flag(*result_electronic),
        ],
        EventKind::FeePaid { online } => &["fee", flag(*online)],
        EventKind::Feedback { satisfied } => &["feedback", flag(*satisfied)],
        EventKind::Withdrawn => &["withdrawn"],
        EventKind::Returned => &["returned"],
        EventKind::Retracted => &["retracted"],
    };
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            out.push(b" ");
        }
        out.push(word.as_bytes());
    }
}

/// The decimal digits of `nanos`, written from 64 bits when they fit (every time ingest
/// accepts does): the same text, without the 128-bit divisions that made it dear.
fn nanos_text(numbers: &mut itoa::Buffer, nanos: i128) -> &str {
    match i64::try_from(nanos) {
        Ok(nanos) => numbers.format(nanos),
        Err(_) => numbers.format(nanos),
    }
}

/// The 64-bit digest that names an event id of an agency in a store: stores keep this, not
/// the id. Two ids of one agency share a digest with a chance of about n² / 2^65 among n
/// ids (docs/ARCHITECTURE.md, section 8, has the bound at national volume).
pub fn id_digest(agency: &AgencyId, event_id: &EventId) -> u64 {
    digest_of(agency.as_str(), b"\0", event_id.as_str())
}

/// xxh3 of `agency`, `separator` and `id` end to end, joined on the stack: digests are taken
/// several times per event, and a heap buffer each time was a measurable part of counting.
fn digest_of(agency: &str, separator: &[u8], id: &str) -> u64 {
    const ROOM: usize = 2 * crate::ids::MAX_ID_LEN + 2;
    let parts = [agency.as_bytes(), separator, id.as_bytes()];
    let len = agency.len() + separator.len() + id.len();
    // In the smallest buffer that holds them: zeroing the largest for every id cost a
    // tenth of the digest.
    match len {
        0..=64 => joined_digest::<64>(parts, len),
        _ if len <= ROOM => joined_digest::<ROOM>(parts, len),
        _ => xxh3_64(&parts.concat()),
    }
}

/// xxh3 of `parts` (`len` bytes in all, at most `N`) joined in a buffer of `N` bytes.
fn joined_digest<const N: usize>(parts: [&[u8]; 3], len: usize) -> u64 {
    let mut joined = [0u8; N];
    let mut at = 0;
    for part in parts {
        joined[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    xxh3_64(&joined[..len])
}

/// The 32 bits of a dossier's [`dossier_digest`] a remembered id keeps
/// ([`Remembered::dossier`]): a correction naming an event of another dossier is refused,
/// unless the two dossiers of one agency share a tag (a chance of one in 4 billion), and then
/// it takes back the stage from its own dossier's record if that has it, and is refused
/// otherwise.
pub fn dossier_tag(agency: &AgencyId, dossier: &DossierId) -> u32 {
    tag_of(dossier_digest(agency, dossier))
}

/// The [`dossier_tag`] of a dossier whose [`dossier_digest`] is `digest`.
fn tag_of(digest: u64) -> u32 {
    (digest >> 32) as u32
}

/// The 64-bit digest that names a dossier of a reporting agency in a store.
pub fn dossier_digest(agency: &AgencyId, dossier: &DossierId) -> u64 {
    digest_of(agency.as_str(), b"\0d", dossier.as_str())
}

/// One validated event, ready to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventWrite {
    /// The sender's id; the event is counted once per (agency, event id).
    pub event_id: EventId,
    /// The agency that reported it (the first element of `chain`).
    pub agency: AgencyId,
    /// The agency, then each ancestor up to its ministry or province: every one of them
    /// counts the event. Never empty.
    pub chain: Arc<[AgencyId]>,
    /// The Vietnam local day the event happened.
    pub day: Date,
    /// When the event says it happened.
    pub occurred_at: OffsetDateTime,
    /// When govpulse accepted the batch (one clock reading per batch): what
    /// [`crate::freshness`] calls the agency's last report.
    pub accepted_at: OffsetDateTime,
    /// The procedure of its dossier: the procedure breakdown counts it there.
    pub procedure: ProcedureId,
    /// What it adds.
    pub delta: CounterDelta,
    /// The agency's id of the event's dossier.
    pub dossier: DossierId,
    /// The stage of the dossier the event is: each counts once per dossier, and a reception
    /// with a due time and a resolution move the backlog of open dossiers. `None` only for a
    /// retraction (with `corrects`).
    pub stage: Option<StageEvent>,
    /// For a correction or a retraction: the id of the agency's event it replaces or takes
    /// back.
    pub corrects: Option<EventId>,
    /// What it says, to tell a resend from other content under the same id.
    pub content: Content,
    /// Until when the store must remember the event id to recognise a resend: past it,
    /// events of its day are refused at the edge (they are beyond the horizon).
    pub remember_until: OffsetDateTime,
}

impl EventWrite {
    /// The top-level agency whose tree the event belongs to. Every key the event touches
    /// carries it, so that one batch of one tree is one atomic operation (and one hash slot
    /// on Redis Cluster).
    pub fn root(&self) -> &AgencyId {
        self.chain.last().unwrap_or(&self.agency)
    }
}

/// Events of one agency rejected as invalid in a batch: counted for every agency of its
/// chain on the Vietnam day they were rejected, in its data quality
/// ([`crate::freshness::Arrivals`]), never in its figures. Not remembered as events are:
/// each sending of an invalid event counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedWrite {
    /// The agency [`crate::freshness::blamed`] for the events, then each ancestor up to its
    /// ministry or province: every one of them counts the rejections. Never empty.
    pub chain: Arc<[AgencyId]>,
    /// How many events.
    pub count: u64,
    /// When govpulse rejected them (the batch's one clock reading).
    pub rejected_at: OffsetDateTime,
}

impl RejectedWrite {
    /// The top-level agency whose tree the rejections are kept in (`None` only for an empty
    /// chain, which [`crate::freshness::Rejections::writes`] never makes).
    pub fn root(&self) -> Option<&AgencyId> {
        self.chain.last()
    }
}

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Counted now.
    Accepted,
    /// The same content was counted before under this id: not counted again.
    Duplicate,
    /// Other content was counted before under this id (the fields named differ): not
    /// counted. The sender must fix its data or send a correction, never forget the event.
    Conflict {
        /// The fields that differ from the event counted under this id.
        fields: Vec<&'static str>,
    },
    /// A new id, but its dossier's stage was counted before under another id (a second
    /// reception, resolution, payment or feedback of one dossier): not counted, nor its id
    /// remembered (sent again, it is judged again).
    Repeated {
        /// The stage counted before.
        stage: Stage,
    },
    /// A new id, but its dossier was counted under another procedure: a dossier is for one
    /// procedure. Not counted, nor its id remembered.
    OtherProcedure,
    /// A correction or retraction that cannot apply: nothing changes, and its id is not
    /// remembered (sent again, it is judged again).
    Uncorrectable(Uncorrectable),
}

/// Why a correction or a retraction does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncorrectable {
    /// No event of the agency is counted under the id it names: never sent, not counted,
    /// or forgotten past the horizon.
    Unknown,
    /// The id it names is a correction's: correct the event that one corrected.
    Correction,
    /// The event it names was retracted: it stays so.
    Retracted,
    /// It names another dossier than the event it corrects.
    OtherDossier,
    /// It is another kind of event (stage) than the event it corrects, which was this.
    OtherStage(Stage),
}

/// What a correction of the event `remembered` (when known) in `dossier` takes back, if it
/// applies: the event's record, what it counts, and its stage taken back from the dossier.
/// `own_dossier` is the correction's dossier tag and `stage` its stage (`None`: a
/// retraction).
fn take_back(
    remembered: Option<Remembered>,
    own_dossier: u32,
    dossier: Dossier,
    stage: Option<Stage>,
) -> Result<(Remembered, Effect, backlog::Unstep), Uncorrectable> {
    let remembered = remembered.ok_or(Uncorrectable::Unknown)?;
    let effect = match remembered.counts {
        Counts::Event(effect) => effect,
        Counts::Retracted => return Err(Uncorrectable::Retracted),
        Counts::Correction => return Err(Uncorrectable::Correction),
    };
    if remembered.dossier != own_dossier {
        return Err(Uncorrectable::OtherDossier);
    }
    let counted = effect.stage().ok_or(Uncorrectable::Unknown)?;
    if stage.is_some_and(|stage| stage != counted) {
        return Err(Uncorrectable::OtherStage(counted));
    }
    // The dossier's record outlives its events' ids; without the stage it was forgotten.
    let back = backlog::unstep(dossier, counted).ok_or(Uncorrectable::Unknown)?;
    Ok((remembered, effect, back))
}

/// Has the store remember `key` as `remembered`, each id once in `writes` (a correction
/// updates the event it corrects, perhaps twice in one batch).
fn remember<'a>(
    slots: &mut HashMap<u64, usize>,
    writes: &mut Vec<IdWrite<'a>>,
    (agency, event_id, digest): (&'a AgencyId, &'a EventId, u64),
    remembered: Remembered,
    remember_until: OffsetDateTime,
) {
    match slots.get(&digest) {
        Some(slot) => {
            let write = &mut writes[*slot];
            write.remembered = remembered;
            write.remember_until = write.remember_until.max(remember_until);
        }
        None => {
            slots.insert(digest, writes.len());
            writes.push(IdWrite {
                agency,
                event_id,
                digest,
                remembered,
                remember_until,
            });
        }
    }
}

/// An event id a batch has the store remember, or remember otherwise (its ids borrowed
/// from the batch: a thousand copies a batch were a measurable part of counting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdWrite<'a> {
    /// The agency that sent it.
    pub agency: &'a AgencyId,
    /// The sender's id.
    pub event_id: &'a EventId,
    /// Its [`id_digest`], which names it in a store.
    pub digest: u64,
    /// What the id says and counts now.
    pub remembered: Remembered,
    /// A store keeps it at least until the later of this and what it kept before.
    pub remember_until: OffsetDateTime,
}

/// A dossier a batch changes, as the store is to keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DossierWrite<'a> {
    /// The agency that reported it.
    pub agency: &'a AgencyId,
    /// The agency's id of it.
    pub dossier: &'a DossierId,
    /// Its [`dossier_digest`], which names it in a store.
    pub digest: u64,
    /// What is known of it after the batch.
    pub state: Dossier,
    /// The latest `remember_until` of the batch's events counted for it: a store keeps the
    /// dossier at least until the later of this and what it kept before (an open one for
    /// good).
    pub remember_until: OffsetDateTime,
}

/// What a batch changes (its ids and dossiers borrowed from the batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan<'a> {
    /// One outcome per event, in order.
    pub outcomes: Vec<Applied>,
    /// The events counted now (indexes into the batch).
    pub counted: Vec<usize>,
    /// The ids to remember, or to remember otherwise, each once: the events counted now.
    pub ids: Vec<IdWrite<'a>>,
    /// The dossiers the batch counts a stage of, with their new state, each once.
    pub dossiers: Vec<DossierWrite<'a>>,
    /// What each agency's counters gain in each bucket (the due-day counters included):
    /// every agency of every counted event's chain, in the buckets the batch says the store
    /// keeps ([`Batch::keeping`]). Hashed, in no order: a batch of the unit
    /// mix adds to thousands, and an ordered map compared their ids' text at every step.
    pub counters: HashMap<(&'a AgencyId, Bucket), CounterSums>,
    /// What each procedure's counters gain, per agency and day (the due-day counters
    /// included, on the due day, under the procedure of the event that moved them): every
    /// agency of every counted event's chain, each procedure once, in procedure order (the
    /// agencies and days hashed, in no order). Per day, not per bucket: a store keeps them
    /// per day, and per longer bucket only where it must.
    pub procedures: HashMap<(&'a AgencyId, Date), ProcedureSums<'a>>,
    /// How many online receptions of each procedure provided online each agency gains (or,
    /// negative, loses to corrections) per bucket: the procedures to add to its online sets,
    /// and those a store must check are still there. Never 0. Hashed, in no order.
    pub online: HashMap<(&'a AgencyId, Bucket, &'a ProcedureId), i64>,
    /// The latest events counted now, per agency of every counted event's chain: what the
    /// store keeps as the latest of what it had and this.
    pub seen: BTreeMap<&'a AgencyId, Seen>,
    /// How many events are counted now per agency of their chains and Vietnam day of
    /// acceptance.
    pub arrivals: BTreeMap<(&'a AgencyId, Date), u64>,
    /// How many events were rejected per agency of their chains and Vietnam day of
    /// rejection: empty for a batch without rejections.
    pub rejected: BTreeMap<(&'a AgencyId, Date), u64>,
}

/// What each procedure's counters gain, for one agency and day, in procedure order.
pub type ProcedureSums<'a> = Vec<(&'a ProcedureId, CounterSums)>;

/// What one agency's counters gain in one bucket (negative: what corrections take back).
/// 32 bits a counter: an event moves a counter by two at most (a correction takes one back
/// and adds one), so only a batch of a billion events could overflow one (the wire takes
/// 10,000); half the bytes of 64 bits, where planning a batch of the unit mix fills maps of
/// thousands of these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSums([i32; Counter::ALL.len()]);

impl CounterSums {
    /// Adds `n` to one counter.
    pub fn add(&mut self, counter: Counter, n: i32) {
        self.0[counter as usize] += n;
    }

    /// Adds `other`, counter by counter.
    pub fn add_all(&mut self, other: &CounterSums) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    /// The counters that gain or lose something, with how much.
    pub fn nonzero(&self) -> impl Iterator<Item = (Counter, i64)> + '_ {
        // The sums by reference: by value, the iterator copied the array at every call.
        Counter::ALL
            .into_iter()
            .zip(self.0.iter().map(|n| i64::from(*n)))
            .filter(|(_, n)| *n != 0)
    }
}

/// What the batch's counted events say of one reporting agency, spread over its chain once
/// the batch is planned.
struct Reporter<'a> {
    chain: &'a [AgencyId],
    seen: Seen,
    /// Events per Vietnam day of acceptance (a batch has one day, rarely two).
    arrivals: Vec<(Date, u64)>,
}

impl<'a> Reporter<'a> {
    fn new(chain: &'a [AgencyId]) -> Self {
        Reporter {
            chain,
            seen: Seen::default(),
            arrivals: Vec::new(),
        }
    }

    /// Notes a counted event, accepted on Vietnam day `day`.
    fn saw(&mut self, event: &EventWrite, day: Date) {
        self.seen.record(event.accepted_at, event.occurred_at);
        match self.arrivals.iter_mut().find(|(d, _)| *d == day) {
            Some((_, n)) => *n += 1,
            None => self.arrivals.push((day, 1)),
        }
    }
}

/// The digests a store names an event's id and dossier by: [`id_digest`] and
/// [`dossier_digest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDigests {
    /// The id's [`id_digest`].
    pub id: u64,
    /// The dossier's [`dossier_digest`].
    pub dossier: u64,
}

/// A batch of events with the digests of each one's id and dossier, taken once: a store
/// reads the buckets they name, and the plan tells ids and dossiers apart by them.
#[derive(Debug)]
pub struct Batch<'a> {
    events: &'a [EventWrite],
    digests: Vec<EventDigests>,
    kept: KeptBuckets,
}

/// The buckets a store keeps each agency's counters in: those a plan sums for it
/// ([`Plan::counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeptBuckets {
    /// Every agency in the four buckets of each of its days.
    #[default]
    Every,
    /// The root of each chain (its last agency) in the four buckets, an agency below it in
    /// its days and months only: the store reads its quarters and years as their months.
    /// A batch of the unit mix then sums two buckets fewer for each of its units' days.
    MonthsBelowRoot,
}

impl KeptBuckets {
    /// Whether an agency (`root`: the root of its tree) keeps its counters in `bucket`.
    pub fn keeps(self, root: bool, bucket: Bucket) -> bool {
        match self {
            KeptBuckets::Every => true,
            KeptBuckets::MonthsBelowRoot => root || bucket.is_month_or_shorter(),
        }
    }
}

impl<'a> Batch<'a> {
    /// `events`, with their digests, planned for a store that keeps every bucket.
    pub fn new(events: &'a [EventWrite]) -> Self {
        let digests = events
            .iter()
            .map(|event| EventDigests {
                id: id_digest(&event.agency, &event.event_id),
                dossier: dossier_digest(&event.agency, &event.dossier),
            })
            .collect();
        Batch {
            events,
            digests,
            kept: KeptBuckets::Every,
        }
    }

    /// The batch, planned for a store that keeps the buckets `kept`.
    pub fn keeping(self, kept: KeptBuckets) -> Self {
        Batch { kept, ..self }
    }

    /// The events, in order.
    pub fn events(&self) -> &'a [EventWrite] {
        self.events
    }

    /// Each event with its digests, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a EventWrite, EventDigests)> + '_ {
        self.events.iter().zip(self.digests.iter().copied())
    }
}

/// The plan of a batch's events and of its `rejected` events, given what the store knows of
/// an id (the content counted under it) and of a dossier (its state): `known_id` and
/// `known_dossier` answer from what the store had before the batch (each is given the id's
/// [`id_digest`], the dossier's [`dossier_digest`], as a store keeping digests looks them up
/// by); the plan accounts for what earlier events of the batch change. Within the batch ids
/// and dossiers are told apart by their digests, as stores tell them apart.
pub fn plan<'a>(
    batch: &Batch<'a>,
    rejected: &'a [RejectedWrite],
    known_id: impl Fn(&AgencyId, &EventId, u64) -> Option<Remembered>,
    known_dossier: impl Fn(&AgencyId, &DossierId, u64) -> Option<Dossier>,
) -> Plan<'a> {
    // Each event has an outcome and at most one id and one dossier to write: sized once, not
    // grown (and copied) ten times a batch.
    let events = batch.events().len();
    let mut plan = Plan {
        outcomes: Vec::with_capacity(events),
        counted: Vec::with_capacity(events),
        ids: Vec::with_capacity(events),
        ..Plan::default()
    };
    // The sums and online procedures per reporting agency and day while the batch goes (one
    // batch adds to a few keys a thousand times), spread over each agency's chain and the
    // buckets of each day once at the end.
    let mut reporters: HashMap<&AgencyId, Reporter> = HashMap::new();
    let mut by_day: HashMap<(&AgencyId, Date), CounterSums> = HashMap::new();
    let mut by_procedure_day: HashMap<(&AgencyId, Date, &ProcedureId), CounterSums> =
        HashMap::new();
    // Online receptions of procedures provided online, added and taken back, per reporting
    // agency, day and procedure.
    let mut online_by_day: HashMap<(&AgencyId, Date, &ProcedureId), i64> = HashMap::new();
    // Where each id of `plan.ids` is, to write it once; what it says now is there: an event
    // sees what earlier ones of the batch left.
    let mut id_slots: HashMap<u64, usize> = HashMap::with_capacity(events);
    // Per dossier: its state as the batch goes, and the latest `remember_until` of the
    // batch's events counted for it (`None`: the batch changed nothing of it).
    type Slot = (Option<Dossier>, Option<OffsetDateTime>);
    let mut states: HashMap<u64, Slot> = HashMap::with_capacity(events);
    let mut changed: Vec<(&AgencyId, &DossierId, u64)> = Vec::with_capacity(events);
    // The Vietnam day of the last acceptance time seen: a batch has one.
    let mut accepted_day: Option<(OffsetDateTime, Date)> = None;
    // One event's counter moves (day, counter, ±1), gathered before they are added.
    let mut pending: Vec<(Date, Counter, i32)> = Vec::with_capacity(16);
    for (i, (event, digests)) in batch.iter().enumerate() {
        let id = (&event.agency, &event.event_id, digests.id);
        let before = match id_slots.get(&id.2) {
            Some(slot) => Some(plan.ids[*slot].remembered),
            None => known_id(id.0, id.1, id.2),
        };
        if let Some(counted) = before {
            let fields = counted.content.differs(&event.content);
            plan.outcomes.push(if fields.is_empty() {
                Applied::Duplicate
            } else {
                Applied::Conflict { fields }
            });
            continue;
        }
        let slot = (&event.agency, &event.dossier, digests.dossier);
        let (state, until) = states
            .entry(slot.2)
            .or_insert_with(|| (known_dossier(slot.0, slot.1, slot.2), None));
        let procedure = backlog::procedure_digest(&event.procedure);
        let mut dossier = state.unwrap_or_else(|| Dossier::new(procedure));
        if dossier.procedure() != procedure {
            plan.outcomes.push(Applied::OtherProcedure);
            continue;
        }
        let own_dossier = tag_of(slot.2);
        // A correction first takes back what the event it corrects counts now (judged
        // before anything moves: a refused correction changes nothing).
        let mut taken_back = None;
        if let Some(target) = &event.corrects {
            let key = (&event.agency, target, id_digest(&event.agency, target));
            let remembered = match id_slots.get(&key.2) {
                Some(slot) => Some(plan.ids[*slot].remembered),
                None => known_id(key.0, key.1, key.2),
            };
            match take_back(
                remembered,
                own_dossier,
                dossier,
                event.stage.map(StageEvent::stage),
            ) {
                Ok((remembered, effect, back)) => {
                    dossier = back.dossier;
                    taken_back = Some((key, remembered, effect, back));
                }
                Err(why) => {
                    plan.outcomes.push(Applied::Uncorrectable(why));
                    continue;
                }
            }
        }
        // Then the event's own stage: a retraction has none.
        let step = match event.stage.map(|stage| backlog::step(Some(dossier), stage)) {
            None => None,
            Some(Ok(step)) => Some(step),
            Some(Err(stage)) => {
                plan.outcomes.push(Applied::Repeated { stage });
                continue;
            }
        };
        if let Some(step) = &step {
            dossier = step.dossier;
        }
        *state = Some(dossier);
        if until.is_none() {
            changed.push(slot);
        }
        *until = Some(until.map_or(event.remember_until, |u| u.max(event.remember_until)));
        let own_effect = Effect::of(event.day, &event.delta);
        let own = Remembered {
            content: event.content,
            dossier: own_dossier,
            counts: match event.corrects {
                Some(_) => Counts::Correction,
                None => Counts::Event(own_effect),
            },
        };
        remember(&mut id_slots, &mut plan.ids, id, own, event.remember_until);
        if let Some((key, target, _, _)) = &taken_back {
            // The corrected event counts what the correction says now, or nothing.
            let counts = match step {
                Some(_) => Counts::Event(own_effect),
                None => Counts::Retracted,
            };
            let corrected = Remembered { counts, ..*target };
            remember(
                &mut id_slots,
                &mut plan.ids,
                *key,
                corrected,
                event.remember_until,
            );
        }
        plan.outcomes.push(Applied::Accepted);
        plan.counted.push(i);
        let day = match accepted_day {
            Some((at, day)) if at == event.accepted_at => day,
            _ => {
                let day = vietnam_day(event.accepted_at);
                accepted_day = Some((event.accepted_at, day));
                day
            }
        };
        reporters
            .entry(&event.agency)
            .or_insert_with(|| Reporter::new(&event.chain))
            .saw(event, day);
        if let Some((_, _, effect, _)) = &taken_back {
            // The days it changes know a correction changed them (a revision's cause): the
            // agency's counters, not its procedures' (no figure, and a procedure counts as
            // having had dossiers when one of its counters is not zero).
            let mut corrected = |day: Date| {
                by_day
                    .entry((&event.agency, day))
                    .or_default()
                    .add(Counter::Corrected, 1);
            };
            corrected(effect.day);
            if step.is_some() && event.day != effect.day {
                corrected(event.day);
            }
        }
        pending.clear();
        let mut add = |day: Date, counter: Counter, n: i32| pending.push((day, counter, n));
        if let Some((_, _, effect, back)) = &taken_back {
            for counter in effect.increments() {
                add(effect.day, counter, -1);
            }
            for (counter, day) in [
                (Counter::DueOpened, back.due),
                (Counter::DueClosed, back.due_closed),
            ] {
                if let Some(day) = day {
                    add(day, counter, -1);
                }
            }
        }
        for counter in &event.delta.increments {
            add(event.day, *counter, 1);
        }
        if let Some(step) = &step {
            for (counter, day) in [
                (Counter::DueOpened, step.due),
                (Counter::DueClosed, step.due_closed),
            ] {
                if let Some(day) = day {
                    add(day, counter, 1);
                }
            }
        }
        // The event's counters added per day it moves: two map entries a day, not two a
        // counter (an event moves 3 to 8 counters on 1 to 3 days).
        pending.sort_unstable_by_key(|(day, ..)| *day);
        for moves in pending.chunk_by(|a, b| a.0 == b.0) {
            let day = moves[0].0;
            let own = by_day.entry((&event.agency, day)).or_default();
            for (_, counter, n) in moves {
                own.add(*counter, *n);
            }
            let of_procedure = by_procedure_day
                .entry((&event.agency, day, &event.procedure))
                .or_default();
            for (_, counter, n) in moves {
                of_procedure.add(*counter, *n);
            }
        }
        if let Some((_, _, effect, _)) = &taken_back
            && effect.online
        {
            *online_by_day
                .entry((&event.agency, effect.day, &event.procedure))
                .or_default() -= 1;
        }
        if let Some(procedure) = &event.delta.online_procedure {
            *online_by_day
                .entry((&event.agency, event.day, procedure))
                .or_default() += 1;
        }
    }
    let chain_of = |agency: &AgencyId| reporters.get(agency).map_or(&[][..], |r| r.chain);
    // Per member of the chains and day first (with whether it is the root), then into the
    // buckets of each day the store keeps: a province whose units the batch names sums
    // their days once, not once per unit and bucket.
    let mut by_member_day: HashMap<(&AgencyId, Date), (CounterSums, bool)> =
        HashMap::with_capacity(2 * by_day.len());
    for ((agency, day), sums) in &by_day {
        let chain = chain_of(agency);
        for (at, member) in chain.iter().enumerate() {
            let (total, _) = by_member_day
                .entry((member, *day))
                .or_insert((CounterSums::default(), at + 1 == chain.len()));
            total.add_all(sums);
        }
    }
    let mut counters: HashMap<(&AgencyId, Bucket), CounterSums> =
        HashMap::with_capacity(2 * by_member_day.len());
    for ((member, day), (sums, root)) in &by_member_day {
        for bucket in Bucket::containing(*day) {
            if batch.kept.keeps(*root, bucket) {
                counters.entry((*member, bucket)).or_default().add_all(sums);
            }
        }
    }
    plan.counters = counters;
    // Each (agency of a chain, day) with its procedures, each list then sorted by procedure
    // and its repeats summed: a hash per agency and day and a sort of a few procedures each,
    // not one sort of every (agency, day, procedure) by the agencies' text.
    let mut sums: Vec<&CounterSums> = Vec::with_capacity(by_procedure_day.len());
    let mut grouped: HashMap<(&AgencyId, Date), Vec<(&ProcedureId, usize)>> =
        HashMap::with_capacity(by_procedure_day.len());
    for ((agency, day, procedure), sum) in &by_procedure_day {
        let i = sums.len();
        sums.push(sum);
        for member in chain_of(agency) {
            grouped
                .entry((member, *day))
                .or_default()
                .push((procedure, i));
        }
    }
    plan.procedures = grouped
        .into_iter()
        .map(|(key, mut list)| {
            list.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let mut summed: ProcedureSums = Vec::with_capacity(list.len());
            for (procedure, i) in list {
                match summed.last_mut() {
                    Some((last, total)) if *last == procedure => total.add_all(sums[i]),
                    _ => summed.push((procedure, *sums[i])),
                }
            }
            (key, summed)
        })
        .collect();
    // The same for the online counts: per member and day first, then into the buckets.
    let mut online_by_member_day: HashMap<(&AgencyId, Date, &ProcedureId), i64> =
        HashMap::with_capacity(2 * online_by_day.len());
    for ((agency, day, procedure), n) in online_by_day {
        for member in chain_of(agency) {
            *online_by_member_day
                .entry((member, day, procedure))
                .or_default() += n;
        }
    }
    for ((member, day, procedure), n) in online_by_member_day {
        for bucket in Bucket::containing(day) {
            *plan.online.entry((member, bucket, procedure)).or_default() += n;
        }
    }
    plan.online.retain(|_, n| *n != 0);
    for reporter in reporters.values() {
        for member in reporter.chain {
            let kept = plan.seen.entry(member).or_default();
            *kept = kept.latest(reporter.seen);
            for (day, n) in &reporter.arrivals {
                *plan.arrivals.entry((member, *day)).or_default() += n;
            }
        }
    }
    for write in rejected {
        let day = vietnam_day(write.rejected_at);
        for member in write.chain.iter() {
            let kept = plan.rejected.entry((member, day)).or_default();
            *kept = kept.saturating_add(write.count);
        }
    }
    plan.dossiers = changed
        .into_iter()
        .filter_map(|(agency, dossier, digest)| {
            let (state, until) = states.get(&digest)?;
            Some(DossierWrite {
                agency,
                dossier,
                digest,
                state: (*state)?,
                remember_until: (*until)?,
            })
        })
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::macros::{date, datetime};

    use super::*;
    use crate::testing::id;
    use crate::{ProcedureId, catalog::Provision};

    fn event(event_id: &str, dossier: &str, kind: EventKind, at: OffsetDateTime) -> DossierEvent {
        DossierEvent {
            event_id: EventId::parse(event_id).expect("id"),
            agency: id("hb.dept"),
            dossier: DossierId::parse(dossier).expect("id"),
            procedure: ProcedureId::parse("p1").expect("id"),
            occurred_at: at,
            kind,
            corrects: None,
        }
    }

    fn write(event: &DossierEvent) -> EventWrite {
        EventWrite {
            event_id: event.event_id.clone(),
            agency: event.agency.clone(),
            chain: Arc::from([id("hb.dept"), id("hoa-binh")]),
            day: event.day(),
            occurred_at: event.occurred_at,
            accepted_at: event.occurred_at + time::Duration::minutes(3),
            procedure: event.procedure.clone(),
            delta: event.delta(Provision::Full),
            dossier: event.dossier.clone(),
            stage: event.stage_event(),
            corrects: event.corrects.clone(),
            content: Content::of(event),
            remember_until: event.occurred_at + time::Duration::days(400),
        }
    }

    fn received(event_id: &str, dossier: &str, at: OffsetDateTime) -> DossierEvent {
        event(
            event_id,
            dossier,
            EventKind::Received {
                channel: Channel::Online,
                digitized: false,
                due_at: Some(at + time::Duration::days(3)),
            },
            at,
        )
    }

    /// An on-time resolution, with its result on paper or `electronic`.
    fn resolved(
        event_id: &str,
        dossier: &str,
        at: OffsetDateTime,
        electronic: bool,
    ) -> DossierEvent {
        let kind = EventKind::Resolved {
            timeliness: Timeliness::OnTime(true),
            result_electronic: electronic,
        };
        event(event_id, dossier, kind, at)
    }

    #[test]
    fn an_id_counts_once_whatever_day_it_claims_and_other_content_is_a_conflict() {
        let at = datetime!(2026-08-15 09:00 +7);
        let first = write(&received("e1", "d1", at));
        // The same id and content again, in the batch and from the store: a duplicate.
        let again = first.clone();
        // The same id a day later: other content, a conflict naming the field.
        let moved = write(&received("e1", "d1", at + time::Duration::days(1)));
        let events = [first.clone(), again, moved];
        let plan = plan_new(&events);
        assert_eq!(
            plan.outcomes,
            [
                Applied::Accepted,
                Applied::Duplicate,
                Applied::Conflict {
                    fields: vec!["occurred_at", "kind"]
                }
            ]
        );
        assert_eq!(plan.counted, [0]);
        // Known to the store: a resend is a duplicate, nothing counts.
        let stored = plan_with_known(&first);
        assert_eq!(stored.outcomes, [Applied::Duplicate]);
        assert!(stored.counters.is_empty() && stored.dossiers.is_empty());
    }

    #[test]
    fn a_plan_sums_only_the_buckets_its_store_keeps() {
        let at = datetime!(2026-08-15 09:00 +7);
        let events = [write(&received("e1", "d1", at))];
        let buckets = |plan: &Plan<'_>, agency: &str| -> BTreeSet<Bucket> {
            (plan.counters.keys())
                .filter(|(a, _)| a.as_str() == agency)
                .map(|(_, bucket)| *bucket)
                .collect()
        };
        // Received on the 15th, due on the 18th: two days, one month, quarter and year.
        let (day, due) = (date!(2026 - 08 - 15), date!(2026 - 08 - 18));
        let days_and_month =
            BTreeSet::from([Bucket::Day(day), Bucket::Day(due), Bucket::Month(2026, 8)]);
        let mut all = days_and_month.clone();
        all.extend([Bucket::Quarter(2026, 3), Bucket::Year(2026)]);
        let every = plan_new(&events);
        assert_eq!(buckets(&every, "hb.dept"), all);
        assert_eq!(buckets(&every, "hoa-binh"), all);
        let below = plan(
            &Batch::new(&events).keeping(KeptBuckets::MonthsBelowRoot),
            &[],
            |_, _, _| None,
            |_, _, _| None,
        );
        // The unit: its two days and its month; the root: all five, summed as before.
        assert_eq!(buckets(&below, "hb.dept"), days_and_month);
        assert_eq!(buckets(&below, "hoa-binh"), all);
        for (key, sums) in &below.counters {
            assert_eq!(every.counters.get(key), Some(sums), "{key:?}");
        }
        assert_eq!(below.procedures, every.procedures);
        assert_eq!(below.online, every.online);
    }

    /// The plan of `events` for a store that knows none of their ids and dossiers.
    fn plan_new(events: &[EventWrite]) -> Plan<'_> {
        plan(&Batch::new(events), &[], |_, _, _| None, |_, _, _| None)
    }

    fn plan_with_known(event: &EventWrite) -> Plan<'_> {
        let remembered = Remembered {
            content: event.content,
            dossier: dossier_tag(&event.agency, &event.dossier),
            counts: Counts::Event(Effect::of(event.day, &event.delta)),
        };
        plan(
            &Batch::new(std::slice::from_ref(event)),
            &[],
            |_, _, _| Some(remembered),
            |_, _, _| None,
        )
    }

    #[test]
    fn what_an_id_counts_reads_back_as_written() {
        let at = datetime!(2026-08-15 09:00 +7);
        let event = write(&received("e1", "d1", at));
        let effect = Effect::of(event.day, &event.delta);
        assert_eq!(
            effect.increments().collect::<Vec<_>>(),
            event.delta.increments,
            "the counters, in their order"
        );
        assert!(effect.online);
        let sent_back = write(&super::tests::event("e2", "d1", EventKind::Returned, at));
        let returned = Effect::of(sent_back.day, &sent_back.delta);
        assert_eq!(returned.stage(), Some(Stage::Returned));
        assert_eq!(
            returned.increments().collect::<Vec<_>>(),
            [Counter::Returned]
        );
        for counts in [
            Counts::Event(effect),
            Counts::Event(returned),
            Counts::Retracted,
            Counts::Correction,
        ] {
            let remembered = Remembered {
                content: event.content,
                dossier: u32::MAX - 1,
                counts,
            };
            assert_eq!(
                Remembered::from_bytes(&remembered.to_bytes()),
                Some(remembered)
            );
        }
        let mut bytes = Remembered {
            content: event.content,
            dossier: 1,
            counts: Counts::Correction,
        }
        .to_bytes();
        bytes[Remembered::BYTES - 1] = 1;
        assert_eq!(
            Remembered::from_bytes(&bytes),
            None,
            "a correction counts nothing"
        );
        assert_eq!(Remembered::from_bytes(&bytes[1..]), None);
    }

    #[test]
    fn a_counted_event_counts_for_its_chain_in_its_four_buckets_and_its_due_day() {
        let at = datetime!(2026-08-15 09:00 +7);
        let events = [write(&received("e1", "d1", at))];
        let plan = plan_new(&events);
        let day = date!(2026 - 08 - 15);
        let due = date!(2026 - 08 - 18);
        for agency in ["hb.dept", "hoa-binh"] {
            for bucket in Bucket::containing(day) {
                let sums = plan.counters[&(&id(agency), bucket)];
                let got: Vec<(Counter, i64)> = sums.nonzero().collect();
                assert!(got.contains(&(Counter::Received, 1)), "{agency} {bucket:?}");
                assert!(got.contains(&(Counter::ReceivedOnline, 1)));
            }
            assert!(
                plan.counters[&(&id(agency), Bucket::Day(due))]
                    .nonzero()
                    .any(|c| c == (Counter::DueOpened, 1))
            );
            assert!(plan.online.contains_key(&(
                &id(agency),
                Bucket::Day(day),
                &ProcedureId::parse("p1").expect("id")
            )));
        }
        let [kept] = &plan.dossiers[..] else {
            panic!("one dossier: {:?}", plan.dossiers)
        };
        assert_eq!(
            (kept.agency, kept.dossier.as_str(), kept.state.due_day()),
            (&id("hb.dept"), "d1", Some(due))
        );
        assert!(kept.state.is_open());
        assert_eq!(kept.remember_until, at + time::Duration::days(400));
    }

    #[test]
    fn each_procedure_gains_what_its_events_add_and_the_procedures_add_up_to_the_agency() {
        let at = datetime!(2026-08-15 09:00 +7);
        let mut other = received("e2", "d2", at);
        other.procedure = ProcedureId::parse("p2").expect("id");
        let resolution = resolved("e3", "d1", at + time::Duration::days(1), false);
        let first = received("e1", "d1", at);
        let batch = [&first, &other, &resolution, &first].map(write);
        let plan = plan_new(&batch);
        for ((agency, bucket), sums) in &plan.counters {
            let mut total = CounterSums::default();
            for ((_, day), procedures) in plan
                .procedures
                .iter()
                .filter(|((a, day), _)| a == agency && Bucket::containing(*day).contains(bucket))
            {
                for (_, procedure_sums) in procedures {
                    total.add_all(procedure_sums);
                }
                assert!(bucket.first_day() <= *day && *day <= bucket.last_day());
            }
            assert_eq!(&total, sums, "{agency} {bucket:?}");
        }
        let mut month: BTreeMap<String, CounterSums> = BTreeMap::new();
        for ((agency, _), procedures) in &plan.procedures {
            if *agency == &id("hoa-binh") {
                for (procedure, sums) in procedures {
                    month
                        .entry(procedure.to_string())
                        .or_default()
                        .add_all(sums);
                }
            }
        }
        let month = month
            .iter()
            .map(|(p, sums)| (p.clone(), sums.nonzero().collect::<Vec<_>>()))
            .collect::<Vec<_>>();
        // Each counter once: p1 its online reception (opening a due day) and its resolution
        // (closing it), p2 its reception alone.
        let reception = [
            Counter::Received,
            Counter::ReceivedOnline,
            Counter::ReceivedFullOnlineProcedure,
            Counter::ReceivedOnlineFullOnlineProcedure,
            Counter::DueOpened,
        ];
        let resolution = [
            Counter::Resolved,
            Counter::ResolvedOnTime,
            Counter::DueClosed,
        ];
        let once = |stages: &[&[Counter]]| {
            let mut counters = stages.concat();
            // In the order `nonzero` lists them, that of `Counter::ALL`.
            counters.sort();
            counters.into_iter().map(|c| (c, 1)).collect::<Vec<_>>()
        };
        assert_eq!(
            month,
            [
                ("p1".to_owned(), once(&[&reception, &resolution])),
                ("p2".to_owned(), once(&[&reception])),
            ]
        );
    }

    #[test]
    fn counted_events_are_seen_by_their_chain_and_resends_are_not() {
        let early = received("e1", "d1", datetime!(2026-08-15 09:00 +7));
        // Accepted later, but it happened earlier: the latest of each is kept.
        let late = received("e2", "d2", datetime!(2026-08-14 09:00 +7));
        let mut late_write = write(&late);
        late_write.accepted_at = datetime!(2026-08-16 00:30 +7);
        let batch = [write(&early), late_write.clone(), write(&early)];
        let plan = plan_new(&batch);
        for agency in ["hb.dept", "hoa-binh"] {
            assert_eq!(
                plan.seen[&id(agency)],
                Seen {
                    last_accepted: Some(late_write.accepted_at),
                    last_occurred: Some(early.occurred_at),
                },
                "{agency}"
            );
            // Per Vietnam day of acceptance; the resend (a duplicate) is not counted.
            assert_eq!(plan.arrivals[&(&id(agency), date!(2026 - 08 - 15))], 1);
            assert_eq!(plan.arrivals[&(&id(agency), date!(2026 - 08 - 16))], 1);
        }
        assert_eq!(plan.arrivals.len(), 4);
        let nothing_new = plan_with_known(&batch[0]);
        assert!(nothing_new.seen.is_empty() && nothing_new.arrivals.is_empty());
    }

    #[test]
    fn rejections_count_for_their_chain_on_the_day_they_were_rejected_and_nothing_else() {
        let rejected = |count, at| RejectedWrite {
            chain: Arc::from([id("hb.dept"), id("hoa-binh")]),
            count,
            rejected_at: at,
        };
        // Rejected at 23:30 in Vietnam and an hour later: two Vietnam days (one UTC day).
        let late = datetime!(2026-08-15 23:30 +7);
        let batch = [
            rejected(2, late),
            rejected(1, late),
            rejected(4, late + time::Duration::hours(1)),
        ];
        let event = write(&received("e1", "d1", datetime!(2026-08-15 09:00 +7)));
        let plan = plan(
            &Batch::new(std::slice::from_ref(&event)),
            &batch,
            |_, _, _| None,
            |_, _, _| None,
        );
        let expected: BTreeMap<(AgencyId, Date), u64> = [
            ((id("hb.dept"), date!(2026 - 08 - 15)), 3),
            ((id("hb.dept"), date!(2026 - 08 - 16)), 4),
            ((id("hoa-binh"), date!(2026 - 08 - 15)), 3),
            ((id("hoa-binh"), date!(2026 - 08 - 16)), 4),
        ]
        .into_iter()
        .collect();
        let rejected: BTreeMap<(AgencyId, Date), u64> = plan
            .rejected
            .iter()
            .map(|((agency, day), n)| (((*agency).clone(), *day), *n))
            .collect();
        assert_eq!(rejected, expected);
        assert_eq!(
            plan.outcomes,
            [Applied::Accepted],
            "the events count as ever"
        );
        assert_eq!(plan.arrivals.len(), 2);
        // Rejections alone move nothing else.
        let alone = super::plan(
            &Batch::new(&[]),
            &batch[..1],
            |_, _, _| None,
            |_, _, _| None,
        );
        assert!(alone.outcomes.is_empty() && alone.counters.is_empty());
        assert!(alone.seen.is_empty() && alone.arrivals.is_empty());
        assert_eq!(alone.rejected.len(), 2);
        // And a batch without any plans none.
        assert!(
            super::plan(
                &Batch::new(std::slice::from_ref(&event)),
                &[],
                |_, _, _| None,
                |_, _, _| None
            )
            .rejected
            .is_empty()
        );
    }

    #[test]
    fn a_dossier_resolved_in_the_same_batch_ends_done_and_counts_closed() {
        let at = datetime!(2026-08-15 09:00 +7);
        let resolution = resolved("e2", "d1", at + time::Duration::days(5), false);
        let events = [write(&received("e1", "d1", at)), write(&resolution)];
        let plan = plan_new(&events);
        assert_eq!(plan.dossiers.len(), 1);
        let done = plan.dossiers[0].state;
        assert!(done.has(Stage::Received) && done.has(Stage::Resolved) && !done.is_open());
        assert_eq!(
            plan.dossiers[0].remember_until,
            resolution.occurred_at + time::Duration::days(400),
            "the later of the two events' days"
        );
        let closed_day = date!(2026 - 08 - 20);
        assert!(
            plan.counters[&(&id("hoa-binh"), Bucket::Day(closed_day))]
                .nonzero()
                .any(|c| c == (Counter::DueClosed, 1))
        );
    }

    #[test]
    fn a_stage_counts_once_per_dossier_whatever_id_it_comes_under() {
        let at = datetime!(2026-08-15 09:00 +7);
        let resolved_after = |event_id: &str, days: i64| {
            resolved(event_id, "d1", at + time::Duration::days(days), false)
        };
        let mut in_person = received("e2", "d1", at);
        in_person.kind = EventKind::Received {
            channel: Channel::InPerson,
            digitized: true,
            due_at: None,
        };
        // A dossier is for one procedure: its fee under another is not counted either.
        let mut fee_elsewhere = event("e6", "d1", EventKind::FeePaid { online: true }, at);
        fee_elsewhere.procedure = ProcedureId::parse("p2").expect("id");
        let batch = [
            write(&received("e1", "d1", at)),
            write(&in_person),
            write(&resolved_after("e3", 1)),
            write(&resolved_after("e4", 2)),
            write(&received("e5", "d2", at)),
            write(&fee_elsewhere),
        ];
        let plan = plan_new(&batch);
        assert_eq!(
            plan.outcomes,
            [
                Applied::Accepted,
                Applied::Repeated {
                    stage: Stage::Received
                },
                Applied::Accepted,
                Applied::Repeated {
                    stage: Stage::Resolved
                },
                Applied::Accepted,
                Applied::OtherProcedure,
            ]
        );
        assert_eq!(plan.counted, [0, 2, 4]);
        let day = plan.counters[&(&id("hoa-binh"), Bucket::Day(at.date()))];
        assert_eq!(
            day.nonzero()
                .filter(|(c, _)| matches!(c, Counter::Received | Counter::ReceivedInPerson))
                .collect::<Vec<_>>(),
            [(Counter::Received, 2)],
            "neither the second reception nor its channel"
        );
        let resolutions: i64 = plan
            .counters
            .iter()
            .filter(|((agency, bucket), _)| {
                *agency == &id("hoa-binh") && matches!(bucket, Bucket::Day(_))
            })
            .flat_map(|(_, sums)| sums.nonzero())
            .filter(|(c, _)| *c == Counter::Resolved)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(resolutions, 1);
        // Known to the store already: a new id of a counted stage is not counted, and is
        // judged again when sent again (its id is not remembered).
        let counted = plan.dossiers[0].state;
        let events = [
            write(&resolved_after("e4", 2)),
            write(&resolved_after("e4", 2)),
        ];
        let again = super::plan(
            &Batch::new(&events),
            &[],
            |_, _, _| None,
            |_, _, _| Some(counted),
        );
        assert_eq!(
            again.outcomes,
            vec![
                Applied::Repeated {
                    stage: Stage::Resolved
                };
                2
            ]
        );
        assert!(again.counted.is_empty() && again.counters.is_empty() && again.dossiers.is_empty());
    }

    #[test]
    fn a_withdrawal_ends_the_dossier_without_a_resolution_and_a_retraction_reopens_it() {
        let at = datetime!(2026-08-15 09:00 +7);
        let later = at + time::Duration::days(5);
        let reception = received("e1", "d1", at);
        let withdrawal = event("e2", "d1", EventKind::Withdrawn, later);
        let resolution = resolved("e3", "d1", later, true);
        let returned = event("e4", "d1", EventKind::Returned, later);
        let batch = [&reception, &withdrawal, &resolution, &returned].map(write);
        let plan = plan_new(&batch);
        assert_eq!(
            plan.outcomes,
            [
                Applied::Accepted,
                Applied::Accepted,
                Applied::Repeated {
                    stage: Stage::Withdrawn
                },
                Applied::Repeated {
                    stage: Stage::Withdrawn
                }
            ]
        );
        let on = |day: Date| -> Vec<(Counter, i64)> {
            plan.counters[&(&id("hoa-binh"), Bucket::Day(day))]
                .nonzero()
                .collect()
        };
        // Withdrawn on its day, and out of the backlog from then (its due day, 3 days after
        // the reception, came before: due_cl on the withdrawal's day).
        assert_eq!(
            on(later.date()),
            [(Counter::DueClosed, 1), (Counter::Withdrawn, 1)]
        );
        assert!(on(at.date()).contains(&(Counter::Received, 1)));
        let state = plan.dossiers[0].state;
        assert_eq!(
            (state.ending(), state.ended_day(), state.is_open()),
            (Some(Stage::Withdrawn), Some(later.date()), false)
        );

        // Retracting the withdrawal reopens it: its counters and due_cl are taken back; a
        // resolution then counts.
        let mut retraction = event("fix", "d1", EventKind::Retracted, later);
        retraction.corrects = Some(withdrawal.event_id.clone());
        let withdrawn = Remembered {
            content: Content::of(&withdrawal),
            dossier: dossier_tag(&withdrawal.agency, &withdrawal.dossier),
            counts: Counts::Event(Effect::of(withdrawal.day(), &write(&withdrawal).delta)),
        };
        let events = [&retraction, &resolution].map(write);
        let reopened = super::plan(
            &Batch::new(&events),
            &[],
            |_, id, _| (id == &withdrawal.event_id).then_some(withdrawn),
            |_, _, _| Some(state),
        );
        assert_eq!(reopened.outcomes, [Applied::Accepted, Applied::Accepted]);
        let day = reopened.counters[&(&id("hoa-binh"), Bucket::Day(later.date()))];
        let moved: Vec<_> = day.nonzero().collect();
        assert_eq!(
            moved,
            [
                (Counter::Resolved, 1),
                (Counter::ResolvedOnTime, 1),
                (Counter::ResultElectronic, 1),
                (Counter::Withdrawn, -1),
                (Counter::Corrected, 1)
            ],
            "the due_cl taken back and added again"
        );
        assert_eq!(reopened.dossiers[0].state.ending(), Some(Stage::Resolved));
    }

    #[test]
    fn a_correction_takes_back_what_its_event_counts_and_counts_its_own() {
        let at = datetime!(2026-08-15 09:00 +7);
        let original = received("e1", "d1", at);
        let mut in_person = received("fix1", "d1", at + time::Duration::days(1));
        in_person.kind = EventKind::Received {
            channel: Channel::InPerson,
            digitized: false,
            due_at: None,
        };
        in_person.corrects = Some(original.event_id.clone());
        let mut retraction = event("fix2", "d1", EventKind::Retracted, at);
        retraction.corrects = Some(original.event_id.clone());
        let batch = [&original, &in_person, &retraction].map(write);
        let plan = plan_new(&batch);
        assert_eq!(plan.outcomes, vec![Applied::Accepted; 3]);
        // Counted, moved to the next day in person, then taken back: nothing is left, in
        // any bucket, not even the due day's counter; but each day knows the corrections
        // that changed it (the first day one, the next day two: moved to, taken back from).
        let left: Vec<_> = plan
            .counters
            .iter()
            .filter(|(_, sums)| sums.nonzero().any(|(c, _)| c != Counter::Corrected))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let corrected = |day: Date| {
            plan.counters[&(&id("hoa-binh"), Bucket::Day(day))]
                .nonzero()
                .collect::<Vec<_>>()
        };
        assert_eq!(corrected(original.day()), [(Counter::Corrected, 1)]);
        assert_eq!(
            corrected(original.day().next_day().expect("a day")),
            [(Counter::Corrected, 2)]
        );
        assert!(plan.online.is_empty(), "{:?}", plan.online);
        let state = plan.dossiers[0].state;
        assert_eq!((state.stage_bits(), state.due_day()), (0, None));
        // Each id once: the original, retracted; the two corrections.
        let ids: Vec<(&str, Counts)> = plan
            .ids
            .iter()
            .map(|w| (w.event_id.as_str(), w.remembered.counts))
            .collect();
        assert_eq!(
            ids,
            [
                ("e1", Counts::Retracted),
                ("fix1", Counts::Correction),
                ("fix2", Counts::Correction)
            ]
        );
        assert_eq!(plan.ids[0].remembered.content, Content::of(&original));

        // Against what a store remembers: the correction alone moves each counter once.
        let counted = Remembered {
            content: Content::of(&original),
            dossier: dossier_tag(&original.agency, &original.dossier),
            counts: Counts::Event(Effect::of(original.day(), &write(&original).delta)),
        };
        let kept = super::plan(
            &Batch::new(&[write(&original)]),
            &[],
            |_, _, _| None,
            |_, _, _| None,
        )
        .dossiers[0]
            .state;
        let events = [write(&in_person)];
        let moved = super::plan(
            &Batch::new(&events),
            &[],
            |_, id, _| (id == &original.event_id).then_some(counted),
            |_, _, _| Some(kept),
        );
        assert_eq!(moved.outcomes, [Applied::Accepted]);
        let on = |day: Date, counter: Counter| {
            moved.counters[&(&id("hoa-binh"), Bucket::Day(day))]
                .nonzero()
                .find(|(c, _)| *c == counter)
                .map_or(0, |(_, n)| n)
        };
        let (first, next) = (original.day(), in_person.day());
        assert_eq!(
            [
                on(first, Counter::Received),
                on(first, Counter::ReceivedOnline),
                on(next, Counter::Received),
                on(next, Counter::ReceivedInPerson),
                on(date!(2026 - 08 - 18), Counter::DueOpened),
            ],
            [-1, -1, 1, 1, -1],
            "the due day goes with the reception that had it"
        );
        assert_eq!(
            moved.online.values().copied().collect::<Vec<_>>(),
            vec![-1; 8],
            "the day, month, quarter and year of both agencies lose an online reception"
        );
    }

    #[test]
    fn a_correction_that_cannot_apply_changes_nothing() {
        let at = datetime!(2026-08-15 09:00 +7);
        let original = write(&received("e1", "d1", at));
        let counted = Remembered {
            content: original.content,
            dossier: dossier_tag(&original.agency, &original.dossier),
            counts: Counts::Event(Effect::of(original.day, &original.delta)),
        };
        let with = |target: &str, dossier: &str, kind: EventKind| {
            let mut e = event("fix", dossier, kind, at);
            e.corrects = Some(EventId::parse(target).expect("id"));
            write(&e)
        };
        let fee = EventKind::FeePaid { online: true };
        let cases = [
            (
                with("nope", "d1", EventKind::Retracted),
                Uncorrectable::Unknown,
            ),
            (
                with("e1", "d2", EventKind::Retracted),
                Uncorrectable::OtherDossier,
            ),
            (
                with("e1", "d1", fee),
                Uncorrectable::OtherStage(Stage::Received),
            ),
        ];
        let known = |_: &AgencyId, id: &EventId, _: u64| (id.as_str() == "e1").then_some(counted);
        let kept = Dossier::new(backlog::procedure_digest(&original.procedure));
        let kept = backlog::step(Some(kept), original.stage.expect("a stage"))
            .expect("counted")
            .dossier;
        for (correction, why) in cases {
            let events = [correction];
            let plan = plan(&Batch::new(&events), &[], known, |_, _, _| Some(kept));
            assert_eq!(plan.outcomes, [Applied::Uncorrectable(why)]);
            assert!(plan.counted.is_empty() && plan.ids.is_empty() && plan.dossiers.is_empty());
            assert!(plan.counters.is_empty() && plan.online.is_empty());
        }
        for (counts, why) in [
            (Counts::Retracted, Uncorrectable::Retracted),
            (Counts::Correction, Uncorrectable::Correction),
        ] {
            let events = [with("e1", "d1", EventKind::Retracted)];
            let plan = plan(
                &Batch::new(&events),
                &[],
                |_, id, _| (id.as_str() == "e1").then_some(Remembered { counts, ..counted }),
                |_, _, _| Some(kept),
            );
            assert_eq!(plan.outcomes, [Applied::Uncorrectable(why)]);
        }
    }

    #[test]
    fn the_canonical_text_of_a_kind_is_the_one_stored_digests_were_made_of() {
        let due = datetime!(2026-08-15 17:00 +7);
        let nanos = due.unix_timestamp_nanos();
        let cases = [
            (
                EventKind::Received {
                    channel: Channel::Online,
                    digitized: true,
                    due_at: Some(due),
                },
                format!("received online true {nanos}"),
            ),
            (
                EventKind::Received {
                    channel: Channel::InPerson,
                    digitized: false,
                    due_at: None,
                },
                "received in_person false -1".to_owned(),
            ),
            (
                EventKind::Received {
                    channel: Channel::Postal,
                    digitized: false,
                    due_at: None,
                },
                "received postal false -1".to_owned(),
            ),
            (
                EventKind::Resolved {
                    timeliness: Timeliness::DueAt(due),
                    result_electronic: false,
                },
                format!("resolved due {nanos} false"),
            ),
            (
                EventKind::Resolved {
                    timeliness: Timeliness::OnTime(true),
                    result_electronic: true,
                },
                "resolved on_time true true".to_owned(),
            ),
            (EventKind::FeePaid { online: false }, "fee false".to_owned()),
            (
                EventKind::Feedback { satisfied: true },
                "feedback true".to_owned(),
            ),
        ];
        for (kind, text) in cases {
            let mut written = KindText::new();
            write_kind(&kind, &mut written);
            assert_eq!(std::str::from_utf8(written.as_bytes()), Ok(text.as_str()));
        }
    }

    #[test]
    fn a_correction_s_kind_digest_is_of_the_words_it_was_always_kept_as() {
        // Stores keep these digests: building the text on the stack must not move one bit.
        let at = datetime!(2026-08-15 09:00 +7);
        let longest = "x".repeat(crate::ids::MAX_ID_LEN);
        for target in ["e0", longest.as_str()] {
            let mut correction = received("e1", "d1", at);
            correction.corrects = Some(EventId::parse(target).expect("id"));
            let nanos = (at + time::Duration::days(3)).unix_timestamp_nanos();
            let text = format!("corrects {target} received online false {nanos}");
            let kept = Content::new("d1", correction.procedure.as_str(), at, &text);
            assert_eq!(Content::of(&correction), kept, "{target}");
        }
        let plain = received("e1", "d1", at);
        let nanos = (at + time::Duration::days(3)).unix_timestamp_nanos();
        let text = format!("received online false {nanos}");
        let kept = Content::new("d1", plain.procedure.as_str(), at, &text);
        assert_eq!(Content::of(&plain), kept);
    }

    #[test]
    fn a_digest_is_xxh3_of_the_parts_end_to_end_whatever_their_length() {
        // Around each buffer's size: 64 bytes, the room for two ids, and past it.
        for agency_len in [1, 30, 62, 63, 64, 128] {
            for id_len in [0, 1, 2, 3, 60, 128, 200] {
                let agency = "a".repeat(agency_len);
                let id = "i".repeat(id_len);
                let joined = [agency.as_bytes(), b"\0d", id.as_bytes()].concat();
                assert_eq!(
                    digest_of(&agency, b"\0d", &id),
                    xxh3_64(&joined),
                    "{agency_len} + {id_len}"
                );
            }
        }
    }

    #[test]
    fn nanos_are_written_as_their_128_bit_digits_whatever_their_size() {
        let edges = [
            i128::MIN,
            i128::from(i64::MIN) - 1,
            i128::from(i64::MIN),
            -1,
            0,
            1_786_000_000_123_456_789,
            i128::from(i64::MAX),
            i128::from(i64::MAX) + 1,
            i128::MAX,
        ];
        let mut numbers = itoa::Buffer::new();
        for nanos in edges {
            assert_eq!(nanos_text(&mut numbers, nanos), nanos.to_string());
        }
    }

    #[test]
    fn content_travels_as_sixteen_bytes() {
        let at = datetime!(2026-08-15 09:00 +7);
        let content = Content::of(&received("e1", "d1", at));
        assert_eq!(Content::from_bytes(&content.to_bytes()), Some(content));
        assert_eq!(Content::from_bytes(&[1, 2, 3]), None);
        assert_ne!(
            id_digest(&id("a"), &EventId::parse("bc").expect("id")),
            id_digest(&id("ab"), &EventId::parse("c").expect("id")),
            "the agency and the id are kept apart"
        );
    }

    #[test]
    fn digests_are_xxh3_of_the_agency_a_separator_and_the_id_as_stores_keep_them() {
        // Stores keep these digests: joining on the stack must not change one bit of them.
        let longest = "x".repeat(crate::ids::MAX_ID_LEN);
        for (agency, raw) in [
            ("ha-noi", "HS/2026:0001"),
            (longest.as_str(), longest.as_str()),
        ] {
            let event_id = EventId::parse(raw).expect("id");
            let dossier = DossierId::parse(raw).expect("id");
            assert_eq!(
                id_digest(&id(agency), &event_id),
                xxh3_64(format!("{agency}\0{raw}").as_bytes())
            );
            assert_eq!(
                dossier_digest(&id(agency), &dossier),
                xxh3_64(format!("{agency}\0d{raw}").as_bytes())
            );
        }
        assert_eq!(
            id_digest(&id("ha-noi"), &EventId::parse("hs-1").expect("id")),
            0xb2dd_aa97_3322_81f6,
            "the digest of a known id, pinned"
        );
    }
}
