//! `govpulse loadgen`: drives a running deployment with a realistic mix of events and
//! measures it. Every province and ministry that exists today reports, each batch coming
//! from one agency's one-stop system (as in production); dossiers are received (in person,
//! online or by post, with a due time), pay fees, are resolved (mostly on time) and get
//! feedback, in about the proportions of the seeds' figures. Batches go out through
//! `SubmitEvents` (many concurrent callers) or `StreamEvents` (many streams, several batches
//! in flight on each), at a target rate or as fast as ingest answers.
//!
//! A batch that fails is sent again with the same event ids until it is acknowledged, as
//! ARCHITECTURE section 8 asks of clients; the generator remembers what every acknowledged
//! event adds to its agency's counters, so that a run against a deployment only it writes to
//! can be reconciled with govpulse's counters, exactly ([`reconcile`]).
//!
//! A share of the events can be corrections (INTEGRATION section 4, "Corrections"): each names
//! an event of the run acknowledged before (never one in flight, which govpulse would refuse
//! as unknown, and never one with a correction of it in flight, whose outcome would decide
//! what it counts), says what it should have said or, a quarter of them, retracts it; the
//! tally then takes back what that event counted and adds the correction's content.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use govpulse_core::{AcceptancePolicy, Catalog, Counter, CounterDelta, Counters, period};
use govpulse_edge::decode_event;
use govpulse_proto::{
    Timestamp,
    aggregate::{GetMetricsRequest, aggregate_service_client::AggregateServiceClient},
    codec::GovpulseCodec,
    event::{
        Channel, DossierEvent, DossierReceived, DossierResolved, EventOutcome, FeePaid,
        FeedbackGiven, OutcomeStatus, Retracted, dossier_event::Kind, dossier_resolved::Timeliness,
    },
    ingest::{
        StreamEventsRequest, SubmitEventsRequest, SubmitEventsResponse,
        ingest_service_client::IngestServiceClient,
    },
};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use time::{Date, OffsetDateTime};
use tokio::{sync::mpsc, time::sleep_until};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, transport::Channel as GrpcChannel};

use crate::simulate::Outcomes;

/// How batches reach ingest (`--mode batch` or `--mode stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One `SubmitEvents` call per batch, from `connections` concurrent callers.
    Batch,
    /// `connections` `StreamEvents` streams, each with up to `in_flight` unacknowledged
    /// batches.
    Stream,
}

/// Who reports the events (`--mix top-level` or `--mix units`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mix {
    /// Every ministry and province reports its own dossiers.
    #[default]
    TopLevel,
    /// Every ministry's and province's system reports for its units (departments, districts,
    /// communes), skewed as real ones are: a unit's share falls with its rank (1/rank), so a
    /// few big units carry much of it and many small ones a little. A top-level agency
    /// without units reports for itself.
    Units,
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// How batches are sent.
    pub mode: Mode,
    /// Events per second over all connections; `None` sends as fast as ingest answers.
    pub rate: Option<f64>,
    /// How long new batches are sent (unless stopped earlier).
    pub duration: Duration,
    /// Events per batch (ingest's limit is 1,000 by default).
    pub batch_size: usize,
    /// Concurrent callers (batch mode) or streams (stream mode).
    pub connections: usize,
    /// Unacknowledged batches per stream (stream mode).
    pub in_flight: usize,
    /// Share of acknowledged batches sent once more on purpose: every event of such a resend
    /// must come back DUPLICATE.
    pub resend_share: f64,
    /// After sending stops, how long batches without an acknowledgement are still retried.
    pub drain: Duration,
    /// Seed of the event generator.
    pub seed: u64,
    /// This process' share of the reporting agencies, `(k, n)`: those whose position in the
    /// catalog is `k` modulo `n`. Several load generators with distinct shares write
    /// disjoint agencies, so each can reconcile its own.
    pub share: (usize, usize),
    /// Who reports the events.
    pub mix: Mix,
    /// Share of the events that are corrections of events of the run acknowledged before (a
    /// quarter of them retractions); 0 sends none, and generates the same events as before
    /// corrections existed.
    pub corrections: f64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Batch,
            rate: None,
            duration: Duration::from_secs(10),
            batch_size: 1000,
            connections: 4,
            in_flight: 4,
            resend_share: 0.0,
            drain: Duration::from_secs(60),
            seed: 1,
            share: (0, 1),
            mix: Mix::TopLevel,
            corrections: 0.0,
        }
    }
}

/// What the run has seen so far; read while it runs (periodic report lines, fault tests
/// waiting for the load to feel a fault or to recover from it).
#[derive(Debug, Default)]
pub struct Progress {
    /// Events acknowledged, by outcome.
    pub outcomes: Outcomes,
    /// Calls (or stream batches) that failed and will be retried, or gave up.
    pub failed_calls: AtomicU64,
    /// Batches acknowledged.
    pub acknowledged_batches: AtomicU64,
    latencies: Mutex<Vec<u32>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Progress {
    /// Takes the call latencies recorded since the last call (for interval reports).
    pub fn take_interval(&self) -> Latency {
        let taken = std::mem::take(&mut *lock(&self.latencies));
        Latency::of(taken)
    }

    /// Failed calls by gRPC code so far.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }

    fn error(&self, code: &str) {
        self.failed_calls.fetch_add(1, Ordering::Relaxed);
        *lock(&self.errors).entry(code.to_owned()).or_default() += 1;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Latency percentiles (of acknowledged calls, or of probes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    /// Calls measured.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Latency {
    fn of(mut micros: Vec<u32>) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let index = ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1;
            Duration::from_micros(u64::from(micros[index]))
        };
        Latency {
            count: micros.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    /// The percentiles of `samples`, to the microsecond.
    pub fn of_durations(samples: Vec<Duration>) -> Latency {
        Latency::of(
            samples
                .iter()
                .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
                .collect(),
        )
    }
}

/// What one agency's acknowledged events add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgencyTally {
    /// Sum of the events' deltas (as corrected).
    pub counters: Counters,
    /// Online receptions counted now per procedure provided online, never 0: its keys are
    /// the procedures with an online dossier (a correction takes a procedure out only when
    /// no online reception of it is left).
    pub online_procedures: foldhash::HashMap<String, u64>,
}

/// What govpulse must have counted: per agency, the events acknowledged (ACCEPTED or
/// DUPLICATE) the first time their batch was acknowledged, each correction among them
/// taking back what the event it names counted until then and adding its own content.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// By agency id (a hash map: every acknowledged event looks its agency up, and the unit
    /// mix has 10,000 of them).
    pub agencies: foldhash::HashMap<String, AgencyTally>,
    /// The Vietnam days the events occurred on, first and last.
    pub days: Option<(Date, Date)>,
}

impl Expected {
    fn add(&mut self, meta: &EventMeta) {
        // Per event: no allocation once the agency and the procedure are known.
        let tally = match self.agencies.get_mut(&*meta.agency) {
            Some(tally) => tally,
            None => self.agencies.entry(meta.agency.to_string()).or_default(),
        };
        for counter in &meta.delta.increments {
            tally.counters.increment(*counter, 1);
        }
        if let Some(procedure) = &meta.delta.online_procedure {
            match tally.online_procedures.get_mut(procedure.as_str()) {
                Some(n) => *n += 1,
                None => {
                    tally.online_procedures.insert(procedure.to_string(), 1);
                }
            }
        }
        self.days = Some(match self.days {
            None => (meta.day, meta.day),
            Some((first, last)) => (first.min(meta.day), last.max(meta.day)),
        });
    }

    /// Takes back what an event counting `meta` added (a correction or a retraction of it).
    /// Its day stays among the run's: the counters of that day lose it.
    fn take_back(&mut self, meta: &EventMeta) {
        let Some(tally) = self.agencies.get_mut(&*meta.agency) else {
            return;
        };
        for counter in &meta.delta.increments {
            // Never below zero: the event was added to this tally when it was acknowledged.
            let _ = tally.counters.add_signed(*counter, -1);
        }
        if let Some(procedure) = &meta.delta.online_procedure
            && let Some(n) = tally.online_procedures.get_mut(procedure.as_str())
        {
            *n -= 1;
            if *n == 0 {
                tally.online_procedures.remove(procedure.as_str());
            }
        }
    }

    /// Counts a correction of the event that counted `target` in `cor` (core's
    /// `Counter::Corrected`): once for the day it took back from, and once more for its own
    /// day (`meta`'s) when that is another and it is not a retraction.
    fn corrected(&mut self, target: &EventMeta, meta: &EventMeta, retraction: bool) {
        let Some(tally) = self.agencies.get_mut(&*target.agency) else {
            return;
        };
        let days = 1 + u64::from(!retraction && meta.day != target.day);
        tally.counters.increment(Counter::Corrected, days);
    }

    /// Adds another run's expectations (for several generators against one deployment).
    pub fn merge(&mut self, other: Expected) {
        for (agency, tally) in other.agencies {
            let mine = self.agencies.entry(agency).or_default();
            for (counter, value) in tally.counters.iter() {
                mine.counters.increment(counter, value);
            }
            for (procedure, n) in tally.online_procedures {
                *mine.online_procedures.entry(procedure).or_default() += n;
            }
        }
        if let Some((first, last)) = other.days {
            self.days = Some(match self.days {
                None => (first, last),
                Some((a, b)) => (a.min(first), b.max(last)),
            });
        }
    }

    /// Distinct events counted: those acknowledged, less those retracted (a correction is no
    /// event of its own: the event it names counts its content instead).
    pub fn events(&self) -> u64 {
        self.agencies
            .values()
            .map(|t| {
                [
                    Counter::Received,
                    Counter::Resolved,
                    Counter::FeePaid,
                    Counter::Feedback,
                ]
                .iter()
                .map(|c| t.counters.get(*c))
                .sum::<u64>()
            })
            .sum()
    }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// From the first batch to the last acknowledgement.
    pub elapsed: Duration,
    /// Events acknowledged ACCEPTED (resends included, which should be none).
    pub accepted: u64,
    /// Events acknowledged DUPLICATE.
    pub duplicate: u64,
    /// Events acknowledged CONFLICT.
    pub conflict: u64,
    /// Events acknowledged REJECTED.
    pub rejected: u64,
    /// Events of deliberate resends that came back ACCEPTED: counted twice.
    pub resent_accepted: u64,
    /// Events of deliberate resends (acknowledged).
    pub resent: u64,
    /// Events whose batch was never acknowledged before the drain ended: maybe counted,
    /// maybe not.
    pub unacknowledged: u64,
    /// Latency of acknowledged calls (batch mode) or of batches from send to acknowledgement
    /// (stream mode).
    pub latency: Latency,
    /// Failed calls by gRPC code (each was retried unless the drain was over).
    pub errors: BTreeMap<String, u64>,
    /// Corrections acknowledged (ACCEPTED or DUPLICATE the first time their batch was),
    /// retractions included: each counted once in [`Report::expected`].
    pub corrections_acknowledged: u64,
    /// Of those, retractions.
    pub retractions_acknowledged: u64,
    /// What govpulse must have counted.
    pub expected: Expected,
}

impl Report {
    /// Accepted events per second of the run.
    pub fn accepted_per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One agency's one-stop system.
#[derive(Debug)]
struct Source {
    agency: Arc<str>,
    /// The units it reports for (empty: it reports for itself), and the cumulative shares
    /// of their dossiers (the last is 1).
    units: Vec<Arc<str>>,
    cumulative: Vec<f64>,
    procedures: Vec<Arc<str>>,
    online_share: f64,
    open: VecDeque<Dossier>,
    fees: VecDeque<Dossier>,
    feedback: VecDeque<Dossier>,
    /// Its acknowledged events a correction may name (only when the run sends corrections; at
    /// most [`TARGETS`]): one with a correction in flight is taken out until that is
    /// acknowledged, a retracted one for good.
    targets: Vec<Target>,
}

#[derive(Debug, Clone)]
struct Dossier {
    /// The agency that received it (and reports its later events).
    agency: Arc<str>,
    id: Arc<str>,
    procedure: Arc<str>,
    due: OffsetDateTime,
}

/// Dossiers a source remembers to pay, resolve or give feedback on; older ones are
/// forgotten (never resolved, as happens).
const REMEMBERED: usize = 20_000;

/// Acknowledged events a source keeps for corrections to name: plenty for any share of
/// corrections (those not retracting come back), and once it has them, a new event costs
/// one comparison, not a copy kept.
const TARGETS: usize = 4_096;

/// What an event adds, kept until its batch is acknowledged. The delta is shared by every
/// event of its shape ([`Shape`]), whichever unit reports it.
#[derive(Debug, Clone, PartialEq)]
struct EventMeta {
    agency: Arc<str>,
    day: Date,
    delta: Arc<CounterDelta>,
}

/// An acknowledged event of the run that a correction may name, and what it counts now.
#[derive(Debug, Clone)]
struct Target {
    dossier: Dossier,
    /// Its id is the dossier's id, `:`, then this (which also says its kind).
    suffix: &'static str,
    /// What it counts now: what it said, or what its last correction said.
    counts: EventMeta,
    /// Corrections of it sent so far: the n-th has the id of the event, then `:c<n>`.
    corrections: u32,
}

/// A correction in a batch.
#[derive(Debug, Clone)]
struct Correction {
    /// Its position in the batch.
    index: usize,
    /// The event it names, as it counts until the correction applies (with the correction
    /// already numbered).
    target: Target,
    /// Whether it retracts the event (it then counts nothing, for good).
    retraction: bool,
}

/// A batch and what each of its events adds (`None`: the generator expects a rejection).
#[derive(Debug, Clone)]
struct Batch {
    /// The `SubmitEventsRequest` of the batch's events, written straight in its wire form
    /// (no event is built as a message first): what every attempt sends.
    encoded: Encoded,
    /// What each event adds, in order; one per event.
    meta: Vec<Option<EventMeta>>,
    /// The source whose events these are.
    source: usize,
    /// Its corrections, in order (empty unless the run sends corrections).
    corrections: Vec<Correction>,
    /// Its other valid events, with their positions: once acknowledged, a correction may
    /// name them (empty unless the run sends corrections).
    candidates: Vec<(usize, Dossier, &'static str)>,
}

impl Batch {
    /// How many events the batch holds.
    fn len(&self) -> usize {
        self.meta.len()
    }

    /// The events as messages (decoded from the bytes): for `StreamEvents`, whose requests
    /// carry a batch id beside them.
    fn events(&self) -> Vec<DossierEvent> {
        <SubmitEventsRequest as prost::Message>::decode(self.encoded.0.clone())
            .map(|request| request.events)
            .unwrap_or_default()
    }
}

/// One generated event, its strings borrowed from the dossier it is about: written straight
/// into a batch's bytes, and built as a message only when its shape is new (to decode it).
struct EventParts<'a> {
    dossier: &'a Dossier,
    /// The event id is the dossier's id, `:`, then this (`rcv`, `fee`, `res`, `fb`).
    suffix: &'static str,
    /// For a correction, its tag (`c1`, `c2`, ...): its id is then the event's it corrects,
    /// `:`, then the tag, and `corrects` names that event.
    correction: Option<&'a str>,
    occurred_at: Timestamp,
    kind: Kind,
}

impl EventParts<'_> {
    /// The length of the id of the event a correction names (or of the event's own).
    fn corrected_id_len(&self) -> usize {
        self.dossier.id.len() + 1 + self.suffix.len()
    }

    fn event_id_len(&self) -> usize {
        self.corrected_id_len() + self.correction.map_or(0, |tag| 1 + tag.len())
    }

    /// The `DossierEvent` message's fields, in tag order (as prost writes them).
    fn encoded_len(&self) -> usize {
        use prost::encoding::{encoded_len_varint, key_len, message};
        let string = |tag: u32, len: usize| key_len(tag) + encoded_len_varint(len as u64) + len;
        string(1, self.event_id_len())
            + string(2, self.dossier.agency.len())
            + string(3, self.dossier.id.len())
            + string(4, self.dossier.procedure.len())
            + message::encoded_len(5, &self.occurred_at)
            + self
                .correction
                .map_or(0, |_| string(6, self.corrected_id_len()))
            + self.kind.encoded_len()
    }

    /// Appends the event as one `events` field (tag 1) of a `SubmitEventsRequest`.
    fn write(&self, buf: &mut bytes::BytesMut) {
        use bytes::BufMut;
        use prost::encoding::{WireType, encode_key, encode_varint, message};
        let string = |buf: &mut bytes::BytesMut, tag: u32, parts: &[&str]| {
            encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(parts.iter().map(|p| p.len()).sum::<usize>() as u64, buf);
            for part in parts {
                buf.put_slice(part.as_bytes());
            }
        };
        encode_key(1, WireType::LengthDelimited, buf);
        encode_varint(self.encoded_len() as u64, buf);
        match self.correction {
            None => string(buf, 1, &[&self.dossier.id, ":", self.suffix]),
            Some(tag) => string(buf, 1, &[&self.dossier.id, ":", self.suffix, ":", tag]),
        }
        string(buf, 2, &[&self.dossier.agency]);
        string(buf, 3, &[&self.dossier.id]);
        string(buf, 4, &[&self.dossier.procedure]);
        message::encode(5, &self.occurred_at, buf);
        if self.correction.is_some() {
            string(buf, 6, &[&self.dossier.id, ":", self.suffix]);
        }
        self.kind.encode(buf);
    }

    fn to_message(&self) -> DossierEvent {
        let corrected = format!("{}:{}", self.dossier.id, self.suffix);
        let (event_id, corrects) = match self.correction {
            None => (corrected, String::new()),
            Some(tag) => (format!("{corrected}:{tag}"), corrected),
        };
        DossierEvent {
            event_id,
            agency_id: self.dossier.agency.to_string(),
            dossier_id: self.dossier.id.to_string(),
            procedure_id: self.dossier.procedure.to_string(),
            occurred_at: Some(self.occurred_at),
            kind: Some(self.kind),
            corrects,
        }
    }
}

/// A message already encoded: its bytes go on the wire as they are, so a batch is encoded
/// once and an attempt to send it costs a reference count, not a copy of every event.
#[derive(Debug, Clone, Default, PartialEq)]
struct Encoded(bytes::Bytes);

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Never decoded: only sent.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// `SubmitEvents` with a batch encoded once (the generated client takes the request
/// message, so each attempt would need its own copy of the batch).
#[derive(Debug, Clone)]
struct Submitter {
    grpc: tonic::client::Grpc<GrpcChannel>,
    path: tonic::codegen::http::uri::PathAndQuery,
}

impl Submitter {
    fn new(channel: GrpcChannel) -> Self {
        Submitter {
            grpc: tonic::client::Grpc::new(channel),
            path: tonic::codegen::http::uri::PathAndQuery::from_static(
                govpulse_proto::wire::SUBMIT_EVENTS,
            ),
        }
    }

    async fn submit(&mut self, batch: &Encoded) -> Result<SubmitEventsResponse, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("ingest was not ready: {e}")))?;
        let response = self
            .grpc
            .unary(
                tonic::Request::new(batch.clone()),
                self.path.clone(),
                GovpulseCodec::<Encoded, SubmitEventsResponse>::default(),
            )
            .await?;
        Ok(response.into_inner())
    }
}

/// Everything an event's meta depends on besides its ids and the name of the agency that
/// reports it: the source it comes from, its procedure, its day, and the choices made for it
/// (kind, channel, flags). Events of one shape add the same counters, so a batch decodes
/// one event per shape, not every event. Which of the source's units reports it is not part
/// of it: a source's units exist today and sit under it (so they handle its procedures), and
/// what an event adds names no agency; one decoded per unit, the unit mix decoded nearly
/// every event (its shapes were 10,000 times as many), at twice the load generator's CPU per
/// event of the province mix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    source: usize,
    procedure: Arc<str>,
    day: Date,
    /// The kind and its choices, as `DossierEvent::kind` carries them with the times
    /// replaced by whether the resolution was on time; the last byte is 1 for a correction.
    kind: [u8; 4],
}

/// Pure event generation for one sender: its share of the agencies, in turn.
#[derive(Debug)]
struct Generator {
    sources: Vec<Source>,
    next: usize,
    rng: SmallRng,
    prefix: String,
    sequence: u64,
    catalog: Arc<Catalog>,
    policy: AcceptancePolicy,
    /// The meta of the first event of each shape seen (`None`: an event of that shape is
    /// refused).
    metas: foldhash::HashMap<Shape, Option<EventMeta>>,
    /// Share of the events that are corrections, from 0 to 1 ([`LoadConfig::corrections`]).
    corrections: f64,
}

pub(crate) fn ts(at: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    }
}

/// A resolution at `now` of a dossier due at `due` or, when it is not `on_time`, due an hour
/// before `now`; its result sent electronically or not.
fn resolution(
    now: OffsetDateTime,
    due: OffsetDateTime,
    on_time: bool,
    result_electronic: bool,
) -> Kind {
    let due_at = if on_time {
        due
    } else {
        now - time::Duration::hours(1)
    };
    Kind::Resolved(DossierResolved {
        timeliness: Some(Timeliness::DueAt(ts(due_at))),
        result_electronic,
    })
}

/// The agencies that report: every ministry and province existing today with procedures.
pub(crate) fn reporting_agencies(catalog: &Catalog, today: Date) -> Vec<(String, Vec<String>)> {
    catalog
        .agencies()
        .filter(|a| a.parent.is_none() && a.exists_on(today))
        .filter_map(|a| {
            let procedures: Vec<String> = catalog
                .procedures()
                .filter(|p| catalog.handles(&a.id, p) && p.on(today).is_some())
                .map(|p| p.id.to_string())
                .collect();
            (!procedures.is_empty()).then(|| (a.id.to_string(), procedures))
        })
        .collect()
}

impl Generator {
    /// Sender `index` of `senders`: agencies `index`, `index + senders`, ... (or one shared
    /// agency when there are more senders than agencies).
    fn new(
        catalog: Arc<Catalog>,
        (index, senders): (usize, usize),
        (k, n): (usize, usize),
        run: &str,
        seed: u64,
        mix: Mix,
    ) -> Self {
        let today = period::vietnam_day(OffsetDateTime::now_utc());
        let all: Vec<(String, Vec<String>)> = reporting_agencies(&catalog, today)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % n.max(1) == k)
            .map(|(_, a)| a)
            .collect();
        let mut mine: Vec<(String, Vec<String>)> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % senders.max(1) == index)
            .map(|(_, a)| a.clone())
            .collect();
        if mine.is_empty() && !all.is_empty() {
            mine.push(all[index % all.len()].clone());
        }
        let sources = mine
            .into_iter()
            .map(|(agency, procedures)| {
                let share = (fnv(&agency) % 1000) as f64 / 1000.0;
                let units: Vec<Arc<str>> = match mix {
                    Mix::TopLevel => Vec::new(),
                    Mix::Units => units_of(&catalog, &agency, today),
                }
                .into_iter()
                .map(Arc::from)
                .collect();
                // Shares 1/rank, in the order of a hash (not of the catalog): which unit is
                // big does not follow its name.
                let weights: Vec<f64> = (1..=units.len()).map(|rank| 1.0 / rank as f64).collect();
                let total: f64 = weights.iter().sum();
                let cumulative = weights
                    .iter()
                    .scan(0.0, |sum, w| {
                        *sum += w / total;
                        Some(*sum)
                    })
                    .collect();
                Source {
                    agency: Arc::from(agency),
                    units,
                    cumulative,
                    procedures: procedures.into_iter().map(Arc::from).collect(),
                    online_share: 0.1 + 0.8 * share,
                    open: VecDeque::new(),
                    fees: VecDeque::new(),
                    feedback: VecDeque::new(),
                    targets: Vec::new(),
                }
            })
            .collect();
        Self {
            sources,
            next: 0,
            rng: SmallRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(index as u64)),
            prefix: format!("{run}-{index}"),
            sequence: 0,
            catalog,
            policy: AcceptancePolicy::default(),
            metas: foldhash::HashMap::default(),
            corrections: 0.0,
        }
    }

    /// The same, with a share of corrections ([`LoadConfig::corrections`]).
    fn with_corrections(mut self, share: f64) -> Self {
        self.corrections = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The next batch: `size` events of the next agency in turn, occurring now.
    fn batch(&mut self, size: usize) -> Batch {
        let now = OffsetDateTime::now_utc();
        let index = self.next % self.sources.len().max(1);
        self.next += 1;
        let mut meta = Vec::with_capacity(size);
        let mut encoded = bytes::BytesMut::with_capacity(size * 128);
        let (mut corrections, mut candidates) = (Vec::new(), Vec::new());
        for i in 0..size {
            // Without corrections no random number is drawn for them: the same seed makes
            // the same events as before they existed.
            if self.corrections > 0.0
                && self.rng.random_bool(self.corrections)
                && let Some((mut target, kind, shape)) = self.correction(index, now)
            {
                target.corrections += 1;
                let tag = format!("c{}", target.corrections);
                let event = EventParts {
                    dossier: &target.dossier,
                    suffix: target.suffix,
                    correction: Some(&tag),
                    occurred_at: ts(now),
                    kind,
                };
                event.write(&mut encoded);
                meta.push(self.shape_meta(shape, &event, now));
                corrections.push(Correction {
                    index: i,
                    retraction: matches!(kind, Kind::Retracted(_)),
                    target,
                });
                continue;
            }
            let (dossier, suffix, kind, shape) = self.event(index, now);
            let event = EventParts {
                dossier: &dossier,
                suffix,
                correction: None,
                occurred_at: ts(now),
                kind,
            };
            event.write(&mut encoded);
            let known = self.shape_meta(shape, &event, now);
            if self.corrections > 0.0
                && known.is_some()
                && self.sources[index].targets.len() < TARGETS
            {
                candidates.push((i, dossier, suffix));
            }
            meta.push(known);
        }
        Batch {
            encoded: Encoded(encoded.freeze()),
            meta,
            source: index,
            corrections,
            candidates,
        }
    }

    /// What an event of `shape` adds: known, or decoded from `event` the first time.
    fn shape_meta(
        &mut self,
        shape: Shape,
        event: &EventParts<'_>,
        now: OffsetDateTime,
    ) -> Option<EventMeta> {
        match self.metas.get(&shape) {
            Some(known) => known.as_ref().map(|known| EventMeta {
                agency: event.dossier.agency.clone(),
                day: known.day,
                delta: known.delta.clone(),
            }),
            None => {
                let decoded = self.meta(&event.to_message(), now);
                self.metas.insert(shape, decoded.clone());
                decoded
            }
        }
    }

    /// A correction of one of source `index`'s acknowledged events, taken out of its targets
    /// until the correction is acknowledged: the event, the correction's kind and shape.
    /// `None` when no event can be corrected (none acknowledged yet, or all being so).
    fn correction(&mut self, index: usize, now: OffsetDateTime) -> Option<(Target, Kind, Shape)> {
        let source = &mut self.sources[index];
        if source.targets.is_empty() {
            return None;
        }
        let target = source
            .targets
            .swap_remove(self.rng.random_range(0..source.targets.len()));
        let counts = |counter: Counter| target.counts.delta.increments.contains(&counter);
        // A quarter are retractions; the others change what decides a counter (flipped, so
        // that each changes something) and draw the rest anew.
        let (kind, shape) = if self.rng.random_bool(0.25) {
            (Kind::Retracted(Retracted {}), [5, 0, 0, 1])
        } else {
            match target.suffix {
                "rcv" => {
                    let channel = if counts(Counter::ReceivedOnline) {
                        Channel::InPerson
                    } else {
                        Channel::Online
                    };
                    let digitized = self.rng.random_bool(0.5);
                    // A due time may not be before the correction's occurred_at.
                    let due = target.dossier.due.max(now + time::Duration::hours(1));
                    let kind = Kind::Received(DossierReceived {
                        channel: channel.into(),
                        digitized,
                        due_at: Some(ts(due)),
                    });
                    (kind, [4, channel as u8, u8::from(digitized), 1])
                }
                "res" => {
                    let on_time = !counts(Counter::ResolvedOnTime);
                    let result_electronic = self.rng.random_bool(0.5);
                    let due = now + time::Duration::hours(1);
                    let kind = resolution(now, due, on_time, result_electronic);
                    (kind, [2, u8::from(on_time), u8::from(result_electronic), 1])
                }
                "fee" => {
                    let online = !counts(Counter::FeePaidOnline);
                    (
                        Kind::FeePaid(FeePaid { online }),
                        [1, u8::from(online), 0, 1],
                    )
                }
                _ => {
                    let satisfied = !counts(Counter::FeedbackSatisfied);
                    let kind = Kind::Feedback(FeedbackGiven { satisfied });
                    (kind, [3, u8::from(satisfied), 0, 1])
                }
            }
        };
        let shape = Shape {
            source: index,
            procedure: target.dossier.procedure.clone(),
            day: period::vietnam_day(now),
            kind: shape,
        };
        Some((target, kind, shape))
    }

    /// Learns how `batch` was acknowledged the first time (`outcomes`, one per event): its
    /// events counted (ACCEPTED, or DUPLICATE after a fault) may be corrected from now on,
    /// and so may the events its corrections corrected (not those retracted). An event
    /// whose correction did not count is corrected no more.
    fn acknowledged(&mut self, batch: &Batch, outcomes: &[EventOutcome]) {
        if batch.candidates.is_empty() && batch.corrections.is_empty() {
            return;
        }
        let Some(source) = self.sources.get_mut(batch.source) else {
            return;
        };
        let counted = |i: usize| {
            let status = outcomes.get(i).map(|o| OutcomeStatus::try_from(o.status));
            let counts = matches!(
                status,
                Some(Ok(OutcomeStatus::Accepted | OutcomeStatus::Duplicate))
            );
            match batch.meta.get(i) {
                Some(Some(meta)) if counts => Some(meta.clone()),
                _ => None,
            }
        };
        // Beyond the bound (batches in flight were generated before it was reached), an
        // event is corrected no more.
        let mut offer = |target: Target| {
            if source.targets.len() < TARGETS {
                source.targets.push(target);
            }
        };
        for (i, dossier, suffix) in &batch.candidates {
            if let Some(counts) = counted(*i) {
                offer(Target {
                    dossier: dossier.clone(),
                    suffix,
                    counts,
                    corrections: 0,
                });
            }
        }
        for correction in &batch.corrections {
            if !correction.retraction
                && let Some(counts) = counted(correction.index)
            {
                offer(Target {
                    counts,
                    ..correction.target.clone()
                });
            }
        }
    }

    /// What `event` adds, by the rules ingest and aggregate apply (`None`: it is refused).
    fn meta(&self, event: &DossierEvent, now: OffsetDateTime) -> Option<EventMeta> {
        let decoded =
            decode_event(None, event.clone().into(), &self.catalog, &self.policy, now).ok()?;
        let day = decoded.day();
        let provision = self
            .catalog
            .procedure(&decoded.procedure)?
            .on(day)?
            .provision;
        Some(EventMeta {
            agency: Arc::from(decoded.agency.as_str()),
            day,
            delta: Arc::new(decoded.delta(provision)),
        })
    }

    /// The next event of source `index`: its dossier, id suffix and kind, and its shape.
    fn event(&mut self, index: usize, now: OffsetDateTime) -> (Dossier, &'static str, Kind, Shape) {
        // About 40% receptions, 18% fees, 32% resolutions, 10% feedback; an event that needs
        // an earlier dossier the source does not have becomes a reception.
        let roll: f64 = self.rng.random();
        let source = &mut self.sources[index];
        let (dossier, suffix, kind, shape) = if roll < 0.18
            && let Some(d) = source.fees.pop_front()
        {
            let online = self.rng.random_bool(source.online_share);
            let shape = [1, u8::from(online), 0, 0];
            (d, "fee", Kind::FeePaid(FeePaid { online }), shape)
        } else if roll < 0.50
            && let Some(d) = source.open.pop_front()
        {
            let on_time = self.rng.random_bool(0.9);
            let result_electronic = self.rng.random_bool(0.8);
            let resolved = resolution(now, d.due, on_time, result_electronic);
            if self.rng.random_bool(0.35) {
                remember(&mut source.feedback, d.clone());
            }
            let shape = [2, u8::from(on_time), u8::from(result_electronic), 0];
            (d, "res", resolved, shape)
        } else if roll < 0.60
            && let Some(d) = source.feedback.pop_front()
        {
            let satisfied = self.rng.random_bool(0.95);
            let shape = [3, u8::from(satisfied), 0, 0];
            (d, "fb", Kind::Feedback(FeedbackGiven { satisfied }), shape)
        } else {
            self.sequence += 1;
            let procedure =
                source.procedures[self.rng.random_range(0..source.procedures.len())].clone();
            let agency = if source.units.is_empty() {
                source.agency.clone()
            } else {
                let roll: f64 = self.rng.random();
                let at = source.cumulative.partition_point(|c| *c < roll);
                source.units[at.min(source.units.len() - 1)].clone()
            };
            let d = Dossier {
                agency,
                id: Arc::from(format!("{}-{}", self.prefix, self.sequence)),
                procedure,
                due: now + time::Duration::hours(self.rng.random_range(24..15 * 24)),
            };
            let channel = if self.rng.random_bool(source.online_share) {
                Channel::Online
            } else if self.rng.random_bool(0.03) {
                Channel::Postal
            } else {
                Channel::InPerson
            };
            let digitized = self.rng.random_bool(0.8);
            let received = Kind::Received(DossierReceived {
                channel: channel.into(),
                digitized,
                due_at: Some(ts(d.due)),
            });
            remember(&mut source.open, d.clone());
            if self.rng.random_bool(0.5) {
                remember(&mut source.fees, d.clone());
            }
            let shape = [4, channel as u8, u8::from(digitized), 0];
            (d, "rcv", received, shape)
        };
        let shape = Shape {
            source: index,
            procedure: dossier.procedure.clone(),
            day: period::vietnam_day(now),
            kind: shape,
        };
        (dossier, suffix, kind, shape)
    }
}

/// A `units.csv` of `count` units spread evenly over the ministries and provinces reporting
/// on `today` (ids `<parent>.u00001`, …), without its header when `header` is false: what a
/// catalog folder adds for the unit mix ([`Mix::Units`]).
pub fn units_csv(catalog: &Catalog, count: usize, today: Date, header: bool) -> String {
    let parents = reporting_agencies(catalog, today);
    let mut csv = String::new();
    if header {
        csv.push_str("id,name,parent_id,valid_from,valid_until\n");
    }
    for n in 0..count {
        let Some((parent, _)) = parents.get(n % parents.len().max(1)) else {
            break;
        };
        let id = format!("{parent}.u{:05}", n / parents.len() + 1);
        csv.push_str(&format!("{id},Unit {id},{parent},,\n"));
    }
    csv
}

/// The units under `agency` existing on `today` (every level below it), in the order of a
/// stable hash of their ids.
fn units_of(catalog: &Catalog, agency: &str, today: Date) -> Vec<String> {
    let mut units: Vec<String> = catalog
        .agencies()
        .filter(|a| a.parent.is_some() && a.exists_on(today))
        .filter(|a| {
            let chain = catalog.chain(&a.id);
            chain.last().is_some_and(|root| root.as_str() == agency)
        })
        .map(|a| a.id.to_string())
        .collect();
    units.sort_by_key(|u| fnv(u));
    units
}

/// A hash that is the same on every run and machine (an agency's online habits).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn remember(queue: &mut VecDeque<Dossier>, dossier: Dossier) {
    if queue.len() >= REMEMBERED {
        queue.pop_front();
    }
    queue.push_back(dossier);
}

/// What a sender shares with the others and the caller.
#[derive(Debug)]
struct Shared {
    config: LoadConfig,
    progress: Arc<Progress>,
    stop: CancellationToken,
    started: Instant,
    /// Sending stops at this instant (or when `stop` is cancelled).
    end: Instant,
    /// Unacknowledged batches are given up at this instant.
    give_up: Instant,
    /// Per sender: when its n-th batch is due.
    batch_interval: Option<Duration>,
}

impl Shared {
    fn sending_over(&self) -> bool {
        self.stop.is_cancelled() || Instant::now() >= self.end
    }

    fn due(&self, n: u64) -> tokio::time::Instant {
        let at = match self.batch_interval {
            Some(interval) => self.started + interval.mul_f64(n as f64),
            None => self.started,
        };
        tokio::time::Instant::from_std(at)
    }
}

/// What one sender collected.
#[derive(Debug, Default)]
struct SenderTotals {
    latencies: Vec<u32>,
    resent: u64,
    resent_accepted: u64,
    unacknowledged: u64,
    corrections: u64,
    retractions: u64,
    expected: Expected,
    last_ack: Option<Instant>,
}

impl SenderTotals {
    fn acknowledged(
        &mut self,
        shared: &Shared,
        batch: &Batch,
        outcomes: &[EventOutcome],
        first: bool,
        latency: Duration,
    ) {
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies.push(micros);
        lock(&shared.progress.latencies).push(micros);
        self.last_ack = Some(Instant::now());
        let progress = &shared.progress;
        progress
            .acknowledged_batches
            .fetch_add(1, Ordering::Relaxed);
        let (mut accepted, mut duplicate, mut conflict, mut rejected) = (0, 0, 0, 0);
        let mut corrections = batch.corrections.iter().peekable();
        for (i, (meta, outcome)) in batch.meta.iter().zip(outcomes).enumerate() {
            let correction = corrections.next_if(|c| c.index == i);
            match OutcomeStatus::try_from(outcome.status) {
                Ok(OutcomeStatus::Accepted) => accepted += 1,
                Ok(OutcomeStatus::Duplicate) => duplicate += 1,
                Ok(OutcomeStatus::Conflict) => {
                    conflict += 1;
                    continue;
                }
                _ => {
                    rejected += 1;
                    continue;
                }
            }
            if first && let Some(meta) = meta {
                // A correction counts once: the first acknowledgement of its batch, even
                // DUPLICATE (a lost answer), says it applied; a resend changes nothing.
                if let Some(correction) = correction {
                    self.expected.take_back(&correction.target.counts);
                    self.expected
                        .corrected(&correction.target.counts, meta, correction.retraction);
                    self.corrections += 1;
                    self.retractions += u64::from(correction.retraction);
                }
                self.expected.add(meta);
            }
        }
        if outcomes.len() != batch.len() {
            shared.progress.error("short acknowledgement");
        }
        if !first {
            self.resent += accepted + duplicate;
            self.resent_accepted += accepted;
        }
        progress
            .outcomes
            .add(accepted, duplicate, conflict, rejected);
    }
}

/// Codes after which ARCHITECTURE section 8 says to send the same batch again.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Internal
            | Code::Unknown
    )
}

fn code_name(status: &Status) -> String {
    format!("{:?}", status.code())
}

/// Backoff between retries of one batch: from 20 ms, doubling, at most 500 ms.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(20u64 << attempt.min(5)).min(Duration::from_millis(500))
}

/// Runs the load against ingest at `ingest` until `config.duration` has passed or `stop` is
/// cancelled, then retries what is unacknowledged for up to `config.drain`.
pub async fn run(
    ingest: GrpcChannel,
    catalog: Arc<Catalog>,
    config: LoadConfig,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> Report {
    let started = Instant::now();
    let connections = config.connections.max(1);
    let batch_interval = config.rate.filter(|r| *r > 0.0).map(|rate| {
        let per_sender = rate / connections as f64;
        Duration::from_secs_f64(config.batch_size.max(1) as f64 / per_sender)
    });
    let run_id = format!(
        "lg{}s{}",
        OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000,
        config.seed
    );
    let shared = Arc::new(Shared {
        end: started + config.duration,
        give_up: started + config.duration + config.drain,
        config: config.clone(),
        progress,
        stop,
        started,
        batch_interval,
    });
    let mut tasks = Vec::with_capacity(connections);
    for index in 0..connections {
        let generator = Generator::new(
            catalog.clone(),
            (index, connections),
            config.share,
            &run_id,
            config.seed,
            config.mix,
        )
        .with_corrections(config.corrections);
        let channel = ingest.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            match shared.config.mode {
                Mode::Batch => batch_sender(shared, generator, Submitter::new(channel)).await,
                Mode::Stream => {
                    stream_sender(shared, generator, IngestServiceClient::new(channel)).await
                }
            }
        }));
    }
    let mut report = Report::default();
    let mut latencies = Vec::new();
    let mut last_ack = started;
    for task in tasks {
        let Ok(totals) = task.await else {
            continue;
        };
        latencies.extend(totals.latencies);
        report.resent += totals.resent;
        report.resent_accepted += totals.resent_accepted;
        report.unacknowledged += totals.unacknowledged;
        report.corrections_acknowledged += totals.corrections;
        report.retractions_acknowledged += totals.retractions;
        report.expected.merge(totals.expected);
        last_ack = last_ack.max(totals.last_ack.unwrap_or(started));
    }
    let progress = &shared.progress;
    report.elapsed = last_ack - started;
    let outcomes = &progress.outcomes;
    report.accepted = outcomes.accepted.load(Ordering::Relaxed);
    report.duplicate = outcomes.duplicate.load(Ordering::Relaxed);
    report.conflict = outcomes.conflict.load(Ordering::Relaxed);
    report.rejected = outcomes.rejected.load(Ordering::Relaxed);
    report.latency = Latency::of(latencies);
    report.errors = progress.errors();
    report
}

async fn pace(shared: &Shared, n: u64) {
    tokio::select! {
        () = sleep_until(shared.due(n)) => {}
        () = shared.stop.cancelled() => {}
    }
}

async fn batch_sender(
    shared: Arc<Shared>,
    mut generator: Generator,
    mut client: Submitter,
) -> SenderTotals {
    let mut totals = SenderTotals::default();
    let mut n = 0;
    while !shared.sending_over() {
        pace(&shared, n).await;
        if shared.sending_over() {
            break;
        }
        n += 1;
        let batch = generator.batch(shared.config.batch_size);
        if let Some(outcomes) =
            submit_until_acknowledged(&shared, &mut client, &batch, true, &mut totals).await
        {
            generator.acknowledged(&batch, &outcomes);
        }
        if generator
            .rng
            .random_bool(shared.config.resend_share.clamp(0.0, 1.0))
        {
            submit_until_acknowledged(&shared, &mut client, &batch, false, &mut totals).await;
        }
    }
    totals
}

/// Sends `batch` until it is acknowledged (its outcomes) or given up (`None`).
async fn submit_until_acknowledged(
    shared: &Shared,
    client: &mut Submitter,
    batch: &Batch,
    first: bool,
    totals: &mut SenderTotals,
) -> Option<Vec<EventOutcome>> {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        match client.submit(&batch.encoded).await {
            Ok(response) => {
                let outcomes = response.outcomes;
                totals.acknowledged(shared, batch, &outcomes, first, started.elapsed());
                return Some(outcomes);
            }
            Err(status) => {
                shared.progress.error(&code_name(&status));
                let retry_at = Instant::now() + backoff(attempt);
                if !retryable(status.code()) || retry_at >= shared.give_up {
                    if first {
                        totals.unacknowledged += batch.len() as u64;
                    }
                    return None;
                }
                attempt += 1;
                tokio::time::sleep_until(retry_at.into()).await;
            }
        }
    }
}

/// A batch on a stream: its id there, whether it is the first sending, when it was sent.
#[derive(Debug)]
struct InFlight {
    id: u64,
    batch: Batch,
    first: bool,
    sent: Instant,
}

async fn stream_sender(
    shared: Arc<Shared>,
    mut generator: Generator,
    mut client: IngestServiceClient<GrpcChannel>,
) -> SenderTotals {
    let mut totals = SenderTotals::default();
    // Batches sent on a stream that broke before acknowledging them: sent again first.
    let mut unacknowledged: VecDeque<Batch> = VecDeque::new();
    let window = shared.config.in_flight.max(1);
    let (mut n, mut batch_id, mut attempt) = (0u64, 0u64, 0u32);
    loop {
        if shared.sending_over() && unacknowledged.is_empty() {
            return totals;
        }
        if Instant::now() >= shared.give_up {
            totals.unacknowledged += unacknowledged.iter().map(|b| b.len() as u64).sum::<u64>();
            return totals;
        }
        let (outbound, requests) = mpsc::channel::<StreamEventsRequest>(window);
        let mut acks = match client.stream_events(ReceiverStream::new(requests)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                shared.progress.error(&code_name(&status));
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut broken = false;
        while let Some(batch) = unacknowledged.pop_front() {
            batch_id += 1;
            let request = StreamEventsRequest {
                batch_id,
                events: batch.events(),
            };
            if outbound.send(request).await.is_err() {
                unacknowledged.push_front(batch);
                broken = true;
                break;
            }
            in_flight.push_back(InFlight {
                id: batch_id,
                batch,
                first: true,
                sent: Instant::now(),
            });
        }
        let give_up = tokio::time::Instant::from_std(shared.give_up);
        while !broken {
            if shared.sending_over() && in_flight.is_empty() {
                // Everything sent is acknowledged: closing the stream ends the call.
                return totals;
            }
            let can_send = in_flight.len() < window && !shared.sending_over();
            tokio::select! {
                ack = acks.next() => match ack {
                    Some(Ok(ack)) => {
                        attempt = 0;
                        let Some(position) = in_flight.iter().position(|f| f.id == ack.batch_id)
                        else {
                            shared.progress.error("unknown batch id");
                            continue;
                        };
                        let Some(done) = in_flight.remove(position) else { continue };
                        totals.acknowledged(
                            &shared,
                            &done.batch,
                            &ack.outcomes,
                            done.first,
                            done.sent.elapsed(),
                        );
                        if done.first {
                            generator.acknowledged(&done.batch, &ack.outcomes);
                        }
                        if done.first
                            && generator.rng.random_bool(shared.config.resend_share.clamp(0.0, 1.0))
                        {
                            batch_id += 1;
                            let request = StreamEventsRequest {
                                batch_id,
                                events: done.batch.events(),
                            };
                            if outbound.send(request).await.is_err() {
                                broken = true;
                            } else {
                                in_flight.push_back(InFlight {
                                    id: batch_id,
                                    batch: done.batch,
                                    first: false,
                                    sent: Instant::now(),
                                });
                            }
                        }
                    }
                    Some(Err(status)) => {
                        shared.progress.error(&code_name(&status));
                        broken = true;
                    }
                    None => {
                        shared.progress.error("stream closed");
                        broken = true;
                    }
                },
                () = pace(&shared, n), if can_send => {
                    if shared.sending_over() {
                        continue;
                    }
                    n += 1;
                    let batch = generator.batch(shared.config.batch_size);
                    batch_id += 1;
                    let request = StreamEventsRequest {
                        batch_id,
                        events: batch.events(),
                    };
                    let sent = Instant::now();
                    if outbound.send(request).await.is_err() {
                        unacknowledged.push_back(batch);
                        broken = true;
                    } else {
                        in_flight.push_back(InFlight { id: batch_id, batch, first: true, sent });
                    }
                }
                () = sleep_until(give_up) => broken = true,
            }
        }
        // The stream broke: what it did not acknowledge goes again, with the same ids, on a
        // new stream (deliberate resends are dropped: their first sending was acknowledged).
        unacknowledged.extend(in_flight.into_iter().filter(|f| f.first).map(|f| f.batch));
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

/// One counter on which govpulse and the load generator disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The agency.
    pub agency: String,
    /// The counter (its storage name, or `online procedures`).
    pub counter: String,
    /// What the acknowledged events add up to.
    pub expected: u64,
    /// What govpulse answers.
    pub counted: u64,
}

/// The outcome of a reconciliation.
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Agencies read.
    pub agencies: usize,
    /// (agency, counter) pairs compared.
    pub compared: usize,
    /// Those that differ.
    pub mismatches: Vec<Mismatch>,
}

/// Counters compared by [`reconcile`]: every counter of an event's own day (the due-day
/// counters are read as the backlog at the period's end, which depends on the clock).
fn reconciled() -> impl Iterator<Item = Counter> {
    Counter::ALL.into_iter().filter(|c| !c.by_due_day())
}

/// Reads every agency's counters over the days of the run through aggregate's `GetMetrics`
/// and compares them with what the acknowledged events add up to. Meaningful only on a
/// deployment (or key prefix) that nothing else wrote to on those days.
pub async fn reconcile(
    aggregate: GrpcChannel,
    expected: &Expected,
) -> Result<Reconciliation, Status> {
    let mut result = Reconciliation::default();
    let Some((first, last)) = expected.days else {
        return Ok(result);
    };
    let period = format!("{first}..{last}");
    let mut client = AggregateServiceClient::new(aggregate);
    let mut agencies: Vec<(&String, &AgencyTally)> = expected.agencies.iter().collect();
    agencies.sort_unstable_by_key(|(agency, _)| *agency);
    for (agency, tally) in agencies {
        let response = client
            .get_metrics(GetMetricsRequest {
                agency_id: agency.clone(),
                period: period.clone(),
                metrics: vec!["online-dossier-rate".to_owned()],
                ..Default::default()
            })
            .await?
            .into_inner();
        let counted =
            govpulse_edge::convert::counters_from_proto(&response.counters.unwrap_or_default());
        result.agencies += 1;
        for counter in reconciled() {
            result.compared += 1;
            if counted.get(counter) != tally.counters.get(counter) {
                result.mismatches.push(Mismatch {
                    agency: agency.clone(),
                    counter: counter.key().to_owned(),
                    expected: tally.counters.get(counter),
                    counted: counted.get(counter),
                });
            }
        }
        result.compared += 1;
        // Only procedures with an online reception left are kept.
        let distinct = tally.online_procedures.len() as u64;
        if counted.procedures_with_online_dossiers != distinct {
            result.mismatches.push(Mismatch {
                agency: agency.clone(),
                counter: "online procedures".to_owned(),
                expected: distinct,
                counted: counted.procedures_with_online_dossiers,
            });
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn catalog() -> Arc<Catalog> {
        Arc::new(govpulse_runtime::catalog_files::built_in().expect("valid"))
    }

    #[test]
    fn every_province_and_ministry_of_today_reports() {
        let catalog = catalog();
        let today = period::vietnam_day(OffsetDateTime::now_utc());
        let agencies = reporting_agencies(&catalog, today);
        assert_eq!(agencies.len(), 34 + 21, "today's provinces and ministries");
        let senders = 4;
        // One process, or two with shares 0/2 and 1/2: each agency has exactly one sender.
        for n in [1, 2] {
            let mut covered = BTreeMap::<String, usize>::new();
            for k in 0..n {
                for i in 0..senders {
                    for source in
                        Generator::new(catalog.clone(), (i, senders), (k, n), "t", 1, Mix::TopLevel)
                            .sources
                    {
                        *covered.entry(source.agency.to_string()).or_default() += 1;
                    }
                }
            }
            assert_eq!(covered.len(), agencies.len(), "every agency has a sender");
            assert!(covered.values().all(|c| *c == 1), "only one: {covered:?}");
        }
    }

    #[test]
    fn the_unit_mix_reports_for_units_a_few_big_and_many_small() {
        let today = period::vietnam_day(OffsetDateTime::now_utc());
        let rows = units_csv(&catalog(), 2_000, today, false);
        assert_eq!(rows.lines().count(), 2_000);
        let catalog = Arc::new(
            govpulse_runtime::catalog_files::built_in_with_units(&rows).expect("valid units"),
        );
        let mut generator = Generator::new(catalog.clone(), (0, 1), (0, 1), "t", 3, Mix::Units);
        // The first source's dossiers over 8 of its batches.
        let sources = generator.sources.len();
        let mut per_unit = BTreeMap::<String, usize>::new();
        for n in 0..8 * sources {
            let batch = generator.batch(250);
            for (event, meta) in batch.events().iter().zip(&batch.meta) {
                assert!(meta.is_some(), "valid: {event:?}");
                let agency =
                    govpulse_core::AgencyId::parse(&event.agency_id).expect("an agency id");
                assert!(
                    catalog.agency(&agency).is_some_and(|a| a.parent.is_some()),
                    "reported by a unit: {event:?}"
                );
                if n % sources == 0 {
                    *per_unit.entry(event.agency_id.clone()).or_default() += 1;
                }
            }
        }
        let mut counts: Vec<usize> = per_unit.values().copied().collect();
        counts.sort_unstable();
        let (biggest, median) = (counts[counts.len() - 1], counts[counts.len() / 2]);
        assert!(counts.len() >= 30, "many units report: {counts:?}");
        assert!(biggest > 5 * median, "a few big, many small: {counts:?}");
    }

    #[test]
    fn generated_events_are_valid_with_the_kinds_in_realistic_proportions() {
        let mut generator = Generator::new(catalog(), (0, 1), (0, 1), "t", 7, Mix::TopLevel);
        let mut kinds = BTreeMap::<&str, usize>::new();
        let mut ids = BTreeSet::new();
        for _ in 0..40 {
            let batch = generator.batch(500);
            let events = batch.events();
            assert_eq!(events.len(), 500);
            let agencies: BTreeSet<&str> = events.iter().map(|e| e.agency_id.as_str()).collect();
            assert_eq!(agencies.len(), 1, "a batch is one agency's");
            for (event, meta) in events.iter().zip(&batch.meta) {
                assert!(meta.is_some(), "valid: {event:?}");
                assert!(ids.insert(event.event_id.clone()), "ids are unique");
                let kind = match event.kind {
                    Some(Kind::Received(_)) => "received",
                    Some(Kind::Resolved(_)) => "resolved",
                    Some(Kind::FeePaid(_)) => "fee",
                    Some(Kind::Feedback(_)) => "feedback",
                    Some(Kind::Retracted(_)) => "retracted",
                    Some(Kind::Withdrawn(_)) => "withdrawn",
                    Some(Kind::Returned(_)) => "returned",
                    None => "none",
                };
                *kinds.entry(kind).or_default() += 1;
            }
        }
        let share = |k: &str| kinds.get(k).copied().unwrap_or(0) as f64 / 20_000.0;
        assert!((0.35..0.50).contains(&share("received")), "{kinds:?}");
        assert!((0.25..0.35).contains(&share("resolved")), "{kinds:?}");
        assert!((0.13..0.22).contains(&share("fee")), "{kinds:?}");
        assert!((0.05..0.13).contains(&share("feedback")), "{kinds:?}");
    }

    #[test]
    fn an_event_adds_what_decoding_it_says_though_one_event_per_shape_is_decoded() {
        for mix in [Mix::TopLevel, Mix::Units] {
            let today = period::vietnam_day(OffsetDateTime::now_utc());
            let rows = units_csv(&catalog(), 500, today, false);
            let catalog = Arc::new(
                govpulse_runtime::catalog_files::built_in_with_units(&rows).expect("valid units"),
            );
            // One sender of many: one agency's events (and its units').
            let mut generator = Generator::new(catalog, (0, 1_000), (0, 1), "t", 5, mix);
            let now = OffsetDateTime::now_utc();
            let mut events = 0;
            for _ in 0..20 {
                let batch = generator.batch(500);
                for (event, meta) in batch.events().iter().zip(&batch.meta) {
                    let decoded = generator.meta(event, now);
                    assert_eq!(meta.as_ref(), decoded.as_ref(), "{event:?}");
                    events += 1;
                }
            }
            let shapes = generator.metas.len();
            assert!(
                shapes * 4 < events,
                "{shapes} shapes decoded for {events} events"
            );
        }
    }

    #[test]
    fn events_are_written_byte_for_byte_as_prost_encodes_their_messages() {
        let short = Dossier {
            agency: Arc::from("ha-noi"),
            id: Arc::from("r-0-1"),
            procedure: Arc::from("hn-p1"),
            due: OffsetDateTime::UNIX_EPOCH,
        };
        // Ids long enough that their lengths, and the event's, take two bytes of varint.
        let long = Dossier {
            agency: Arc::from("a".repeat(128)),
            id: Arc::from("d".repeat(128)),
            procedure: Arc::from("p".repeat(128)),
            due: OffsetDateTime::UNIX_EPOCH,
        };
        let at = |seconds| Timestamp { seconds, nanos: 0 };
        let kinds = [
            Kind::Received(DossierReceived {
                channel: Channel::Online.into(),
                digitized: true,
                due_at: Some(at(1_790_000_000)),
            }),
            Kind::Received(DossierReceived::default()),
            Kind::Resolved(DossierResolved {
                timeliness: Some(Timeliness::DueAt(at(1_790_000_000))),
                result_electronic: true,
            }),
            Kind::FeePaid(FeePaid { online: true }),
            Kind::Feedback(FeedbackGiven { satisfied: false }),
        ];
        let retracted = [Kind::Retracted(Retracted {})];
        let mut written = bytes::BytesMut::new();
        let mut messages = Vec::new();
        for dossier in [&short, &long] {
            // Events, then corrections of them (one a second), then retractions.
            for correction in [None, Some("c1"), Some("c12")] {
                for (kind, suffix) in kinds.iter().zip(["rcv", "rcv", "res", "fee", "fb"]) {
                    let event = EventParts {
                        dossier,
                        suffix,
                        correction,
                        occurred_at: at(1_789_000_000),
                        kind: *kind,
                    };
                    event.write(&mut written);
                    messages.push(event.to_message());
                }
            }
            let event = EventParts {
                dossier,
                suffix: "fb",
                correction: Some("c2"),
                occurred_at: at(1_789_000_000),
                kind: retracted[0],
            };
            event.write(&mut written);
            messages.push(event.to_message());
        }
        assert_eq!(messages[5].event_id, "r-0-1:rcv:c1");
        assert_eq!(messages[5].corrects, "r-0-1:rcv");
        let expected = prost::Message::encode_to_vec(&SubmitEventsRequest { events: messages });
        assert_eq!(written.to_vec(), expected);
    }

    /// What a sender shares, for a tally outside a run.
    fn shared() -> Shared {
        let started = Instant::now();
        Shared {
            config: LoadConfig::default(),
            progress: Arc::default(),
            stop: CancellationToken::new(),
            started,
            end: started,
            give_up: started,
            batch_interval: None,
        }
    }

    /// One outcome per event of `batch`: `status`, or `corrections` for its corrections.
    fn outcomes(
        batch: &Batch,
        status: OutcomeStatus,
        corrections: OutcomeStatus,
    ) -> Vec<EventOutcome> {
        (0..batch.len())
            .map(|i| EventOutcome {
                status: if batch.corrections.iter().any(|c| c.index == i) {
                    corrections
                } else {
                    status
                } as i32,
                ..EventOutcome::default()
            })
            .collect()
    }

    /// The tally of what a model of govpulse counts: each counted id, what it counts now
    /// (`None`: retracted), and the `cor` counter of each agency.
    fn tally_of(
        model: &BTreeMap<String, Option<EventMeta>>,
        corrected: &BTreeMap<String, u64>,
    ) -> Expected {
        let mut expected = Expected::default();
        for meta in model.values().flatten() {
            expected.add(meta);
        }
        for (agency, n) in corrected {
            if let Some(tally) = expected.agencies.get_mut(agency) {
                tally.counters.increment(Counter::Corrected, *n);
            }
        }
        expected
    }

    fn assert_same_tally(tally: &Expected, model: &Expected) {
        let agencies: BTreeSet<&String> =
            tally.agencies.keys().chain(model.agencies.keys()).collect();
        let empty = AgencyTally::default();
        for agency in agencies {
            let (got, want) = (
                tally.agencies.get(agency).unwrap_or(&empty),
                model.agencies.get(agency).unwrap_or(&empty),
            );
            assert_eq!(got, want, "{agency}");
        }
        assert_eq!(tally.events(), model.events());
    }

    #[test]
    fn corrections_name_only_acknowledged_events_and_the_tally_counts_their_content_once() {
        // One sender of many: one agency, two batches in flight at a time (as on a stream).
        let mut generator = Generator::new(catalog(), (0, 1_000), (0, 1), "t", 21, Mix::TopLevel)
            .with_corrections(0.2);
        let (shared, mut totals) = (shared(), SenderTotals::default());
        let now = OffsetDateTime::now_utc();
        let mut model = BTreeMap::<String, Option<EventMeta>>::new();
        // Per agency, the days corrections changed: govpulse's `cor`.
        let mut corrected = BTreeMap::<String, u64>::new();
        let (mut ids, mut correction_ids, mut refused) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let (mut second, mut retractions, mut corrections) = (0, 0, 0);
        let mut in_flight: VecDeque<(Batch, Vec<DossierEvent>)> = VecDeque::new();
        for n in 0..40 {
            let batch = generator.batch(200);
            let events = batch.events();
            let named: BTreeSet<&str> = in_flight
                .iter()
                .flat_map(|(_, events)| events.iter().map(|e| e.corrects.as_str()))
                .filter(|target| !target.is_empty())
                .collect();
            let mut named_here = BTreeSet::new();
            for (i, (event, meta)) in events.iter().zip(&batch.meta).enumerate() {
                assert!(ids.insert(event.event_id.clone()), "ids are unique");
                assert_eq!(meta.as_ref(), generator.meta(event, now).as_ref());
                assert_eq!(
                    batch.corrections.iter().any(|c| c.index == i),
                    !event.corrects.is_empty()
                );
                if event.corrects.is_empty() {
                    continue;
                }
                let target = event.corrects.as_str();
                assert!(
                    matches!(model.get(target), Some(Some(_))),
                    "names an acknowledged event that counts: {event:?}"
                );
                assert!(!correction_ids.contains(target), "never a correction");
                assert!(
                    !refused.contains(target),
                    "never one whose correction was refused"
                );
                assert!(
                    !named.contains(target) && named_here.insert(target),
                    "never one with a correction in flight: {event:?}"
                );
                assert!(event.event_id.starts_with(&format!("{target}:c")));
                second += usize::from(!event.event_id.ends_with(":c1"));
            }
            in_flight.push_back((batch, events));
            if in_flight.len() < 2 {
                continue;
            }
            let Some((batch, events)) = in_flight.pop_front() else {
                continue;
            };
            // Mostly accepted; some batches acknowledged DUPLICATE the first time (counted
            // before a lost answer); in some the corrections come back refused.
            let (status, refusal) = match n % 5 {
                1 => (OutcomeStatus::Duplicate, OutcomeStatus::Duplicate),
                3 => (OutcomeStatus::Accepted, OutcomeStatus::Rejected),
                _ => (OutcomeStatus::Accepted, OutcomeStatus::Accepted),
            };
            let acks = outcomes(&batch, status, refusal);
            totals.acknowledged(&shared, &batch, &acks, true, Duration::ZERO);
            generator.acknowledged(&batch, &acks);
            for (event, meta) in events.iter().zip(&batch.meta) {
                let meta = meta.clone();
                if event.corrects.is_empty() {
                    model.insert(event.event_id.clone(), meta);
                } else if refusal == OutcomeStatus::Rejected {
                    refused.insert(event.corrects.clone());
                } else {
                    corrections += 1;
                    correction_ids.insert(event.event_id.clone());
                    let retracted = matches!(event.kind, Some(Kind::Retracted(_)));
                    retractions += usize::from(retracted);
                    let before = model
                        .get(&event.corrects)
                        .cloned()
                        .flatten()
                        .expect("it names an event that counts");
                    let moved = meta.as_ref().is_some_and(|m| m.day != before.day);
                    *corrected.entry(before.agency.to_string()).or_default() +=
                        1 + u64::from(!retracted && moved);
                    model.insert(event.corrects.clone(), meta.filter(|_| !retracted));
                }
            }
            // A deliberate resend: DUPLICATE, nothing counts again.
            if n % 3 == 0 {
                let again = outcomes(&batch, OutcomeStatus::Duplicate, OutcomeStatus::Duplicate);
                totals.acknowledged(&shared, &batch, &again, false, Duration::ZERO);
            }
            assert_same_tally(&totals.expected, &tally_of(&model, &corrected));
        }
        assert_eq!(totals.corrections, corrections as u64);
        assert_eq!(totals.retractions, retractions as u64);
        assert!(corrections > 500, "{corrections} corrections");
        let share = retractions as f64 / corrections as f64;
        assert!((0.15..0.35).contains(&share), "a quarter retract: {share}");
        assert!(second > 0, "some events are corrected twice");
        assert!(!refused.is_empty());
        // Retractions took events out, and corrections moved online receptions.
        let counted = model.values().flatten().count() as u64;
        assert_eq!(totals.expected.events(), counted);
        assert!(counted < model.len() as u64);
    }

    #[test]
    fn a_tally_keeps_a_procedure_online_until_no_online_reception_of_it_is_left() {
        let meta = |online: bool| EventMeta {
            agency: Arc::from("ha-noi"),
            day: period::vietnam_day(OffsetDateTime::now_utc()),
            delta: Arc::new(CounterDelta {
                increments: vec![Counter::Received],
                online_procedure: online
                    .then(|| govpulse_core::ProcedureId::parse("p1").expect("an id")),
            }),
        };
        let mut tally = Expected::default();
        tally.add(&meta(true));
        tally.add(&meta(true));
        tally.take_back(&meta(true));
        let online = |tally: &Expected| tally.agencies["ha-noi"].online_procedures.len();
        assert_eq!(online(&tally), 1, "one online reception is left");
        tally.take_back(&meta(true));
        tally.add(&meta(false));
        assert_eq!(online(&tally), 0, "none is left");
        assert_eq!(tally.events(), 1);
        let mut merged = Expected::default();
        merged.merge(tally.clone());
        merged.merge(tally);
        assert_eq!(merged.events(), 2);
    }

    #[test]
    fn without_corrections_a_batch_keeps_nothing_for_them() {
        let mut generator = Generator::new(catalog(), (0, 1), (0, 1), "t", 9, Mix::TopLevel);
        let mut again =
            Generator::new(catalog(), (0, 1), (0, 1), "t", 9, Mix::TopLevel).with_corrections(0.0);
        for _ in 0..5 {
            let batch = generator.batch(500);
            assert!(batch.candidates.is_empty() && batch.corrections.is_empty());
            let acks = outcomes(&batch, OutcomeStatus::Accepted, OutcomeStatus::Accepted);
            generator.acknowledged(&batch, &acks);
            // The same seed, the same events (their ids carry the run's start).
            let ids = |b: &Batch| {
                b.events()
                    .into_iter()
                    .map(|e| e.event_id)
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&batch), ids(&again.batch(500)));
        }
        assert!(generator.sources.iter().all(|s| s.targets.is_empty()));
    }

    #[test]
    fn a_batch_is_sent_as_the_request_of_its_events() {
        use govpulse_proto::ingest::ingest_service_server::SERVICE_NAME;
        let mut generator = Generator::new(catalog(), (0, 1), (0, 1), "t", 9, Mix::TopLevel);
        let batch = generator.batch(100);
        let sent = <SubmitEventsRequest as prost::Message>::decode(batch.encoded.0.clone())
            .expect("the encoded batch decodes");
        assert_eq!(sent.events.len(), 100);
        assert_eq!(batch.len(), 100);
        assert!(
            batch.meta.iter().all(Option::is_some),
            "every event is valid"
        );
        assert_eq!(
            prost::Message::encoded_len(&batch.encoded),
            batch.encoded.0.len()
        );
        assert_eq!(
            govpulse_proto::wire::SUBMIT_EVENTS,
            format!("/{SERVICE_NAME}/SubmitEvents")
        );
    }

    #[test]
    fn percentiles_are_taken_from_the_sorted_latencies() {
        let latency = Latency::of((1..=100).rev().collect());
        assert_eq!(latency.p50, Duration::from_micros(50));
        assert_eq!(latency.p90, Duration::from_micros(90));
        assert_eq!(latency.p99, Duration::from_micros(99));
        assert_eq!(latency.max, Duration::from_micros(100));
    }
}
