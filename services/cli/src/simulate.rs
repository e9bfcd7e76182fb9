//! A simulated country: every province and ministry (and the units in the catalog) reports
//! dossiers to ingest over StreamEvents, as their one-stop systems would: different online
//! habits per agency, office hours for desks and a round-the-clock trickle online, fees,
//! resolutions days later, feedback, and the occasional retried batch.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use govpulse_core::{Catalog, Procedure, period::VIETNAM};
use govpulse_proto::{
    Timestamp,
    event::AssessedScore,
    event::{
        Channel, DossierEvent, DossierReceived, DossierResolved, FeePaid, FeedbackGiven, Returned,
        Withdrawn, dossier_event::Kind, dossier_resolved,
    },
    ingest::{
        ReportAssessedScoresRequest, StreamEventsRequest,
        ingest_service_client::IngestServiceClient,
    },
};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::procedures::stable_hash;

/// Events ingest answered, by outcome: the simulator's [`Tally`] and the load generator's
/// progress count them alike.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Events counted (ACCEPTED).
    pub accepted: AtomicU64,
    /// Events recognised as already counted (DUPLICATE): the retries.
    pub duplicate: AtomicU64,
    /// Events whose id was counted before with other content (CONFLICT): none from a
    /// generator that resends identical events; a count here is a bug.
    pub conflict: AtomicU64,
    /// Events refused (REJECTED).
    pub rejected: AtomicU64,
}

impl Outcomes {
    /// Adds one answer's counts.
    pub fn add(&self, accepted: u64, duplicate: u64, conflict: u64, rejected: u64) {
        for (counter, n) in self
            .counters()
            .into_iter()
            .zip([accepted, duplicate, conflict, rejected])
        {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Events answered so far, whatever the answer.
    pub fn answered(&self) -> u64 {
        self.counters()
            .iter()
            .map(|counter| counter.load(Ordering::Relaxed))
            .sum()
    }

    fn counters(&self) -> [&AtomicU64; 4] {
        [
            &self.accepted,
            &self.duplicate,
            &self.conflict,
            &self.rejected,
        ]
    }
}

/// Totals of what ingest answered.
#[derive(Debug, Default)]
pub struct Tally {
    /// The events answered, by outcome (duplicates are the simulated retries).
    pub outcomes: Outcomes,
    /// Events of the history reported at start.
    pub history_events: AtomicU64,
    /// When the simulation started (before it generated the history).
    pub started: std::sync::OnceLock<std::time::Instant>,
    /// Seconds from the start until every event of the history had its answer.
    pub history_took: std::sync::OnceLock<f64>,
}

/// One agency's habits.
#[derive(Debug, Clone)]
struct Profile {
    agency: String,
    procedures: Vec<Procedure>,
    /// Share of dossiers that arrive online, in office hours, today.
    online_share: f64,
    /// How much that share grew over the last year (negative: an agency falling back): a
    /// year ago it was `online_share - trend`. Most agencies move online, a few do not.
    trend: f64,
    /// The first day the agency exists (`None`: always): it reports nothing before.
    valid_from: Option<time::Date>,
    /// The last day it exists (`None`: still): an absorbed province reports nothing after.
    valid_until: Option<time::Date>,
    /// Relative volume.
    weight: f64,
    digitized: f64,
    on_time: f64,
    electronic: f64,
    satisfied: f64,
    pays_online: f64,
}

impl Profile {
    fn exists_on(&self, day: time::Date) -> bool {
        self.valid_from.is_none_or(|from| from <= day)
            && self.valid_until.is_none_or(|until| day <= until)
    }
}

fn unit_interval(seed: u64) -> f64 {
    (seed % 10_000) as f64 / 10_000.0
}

impl Profile {
    fn of(catalog: &Catalog, agency: &govpulse_core::Agency) -> Option<Profile> {
        let procedures: Vec<Procedure> = catalog
            .procedures()
            .filter(|p| catalog.handles(&agency.id, p))
            .cloned()
            .collect();
        if procedures.is_empty() {
            return None;
        }
        let h = |salt: &str| unit_interval(stable_hash(&format!("{}/{salt}", agency.id)));
        Some(Profile {
            agency: agency.id.to_string(),
            procedures,
            online_share: 0.05 + 0.85 * h("online"),
            trend: -0.08 + 0.28 * h("trend"),
            valid_from: agency.valid_from,
            valid_until: agency.valid_until,
            weight: if agency.parent.is_some() {
                0.2
            } else {
                0.3 + 2.7 * h("volume")
            },
            digitized: 0.6 + 0.4 * h("digitized"),
            on_time: 0.85 + 0.15 * h("on-time"),
            electronic: 0.5 + 0.5 * h("electronic"),
            satisfied: 0.85 + 0.15 * h("satisfied"),
            pays_online: 0.2 + 0.7 * h("pays-online"),
        })
    }
}

/// Desk traffic by Vietnam local hour: closed at night, busy mornings and afternoons.
fn desk_rhythm(hour: u8) -> f64 {
    match hour {
        8..=11 | 14..=16 => 1.0,
        7 | 12 | 13 | 17 => 0.4,
        _ => 0.0,
    }
}

/// Online traffic by hour: portals never close, but people sleep.
fn online_rhythm(hour: u8) -> f64 {
    match hour {
        0..=5 => 0.1,
        6 | 22 | 23 => 0.3,
        _ => 1.0,
    }
}

/// A dossier received and not yet resolved.
#[derive(Debug)]
struct Open {
    agency: usize,
    dossier: String,
    procedure: String,
    received_at: OffsetDateTime,
    resolve_at: OffsetDateTime,
}

/// Settings of the simulation.
#[derive(Debug, Clone, Copy)]
pub struct SimulationConfig {
    /// Dossiers received per second across the country in busy hours.
    pub dossiers_per_second: f64,
    /// Dossiers of the last `backfill_days` days to report first, as one-stop systems
    /// re-syncing would, so that the figures are meaningful from the start at any hour.
    pub backfill: u32,
    /// How many days, ending today, the backfill covers.
    pub backfill_days: u16,
    /// Share of batches sent twice, as a retrying system would.
    pub retry_share: f64,
}

fn ts(at: OffsetDateTime) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    })
}

fn local_hour(at: OffsetDateTime) -> u8 {
    at.to_offset(VIETNAM).hour()
}

/// The simulated country: pure event generation, no I/O.
#[derive(Debug)]
pub struct Country {
    /// Today's agencies first (`reporting` of them: they report now and share the volume),
    /// then those they absorbed, which report only in the history, before their merger.
    profiles: Vec<Profile>,
    /// How many of `profiles` are today's agencies.
    reporting: usize,
    /// For each of today's agencies, the indices in `profiles` of the agencies it absorbed
    /// (at any depth): before the merger, its share of the country's dossiers went to them
    /// and to itself, each reporting for itself as it then did.
    absorbed: Vec<Vec<usize>>,
    total_weight: f64,
    rng: SmallRng,
    run_id: i64,
    sequence: u64,
    open: Vec<Open>,
}

impl Country {
    /// Every agency of the catalog that exists today (34 provinces since the 2025 merger)
    /// and has procedures to report on, and those they absorbed (the 63 provinces of before
    /// the merger, in the history).
    pub fn new(catalog: &Catalog, seed: u64) -> Self {
        let today = govpulse_core::period::vietnam_day(OffsetDateTime::now_utc());
        let mut profiles: Vec<Profile> = catalog
            .agencies()
            .filter(|a| a.exists_on(today))
            .filter_map(|a| Profile::of(catalog, a))
            .collect();
        let reporting = profiles.len();
        let total_weight = profiles.iter().map(|p| p.weight).sum();
        let mut absorbed = vec![Vec::new(); reporting];
        for (successor, predecessors) in absorbed.iter_mut().enumerate() {
            let Some(id) = catalog
                .agency_by_str(&profiles[successor].agency)
                .map(|a| a.id.clone())
            else {
                continue;
            };
            if !catalog.absorbed_any(&id) {
                continue;
            }
            for predecessor in catalog.constituents(&id, time::Date::MIN).iter().skip(1) {
                if let Some(profile) = catalog
                    .agency(predecessor)
                    .and_then(|a| Profile::of(catalog, a))
                {
                    predecessors.push(profiles.len());
                    profiles.push(profile);
                }
            }
        }
        Self {
            profiles,
            reporting,
            absorbed,
            total_weight,
            rng: SmallRng::seed_from_u64(seed),
            run_id: OffsetDateTime::now_utc().unix_timestamp(),
            sequence: 0,
            open: Vec::new(),
        }
    }

    fn event(
        &self,
        agency: usize,
        dossier: &str,
        procedure: &str,
        suffix: &str,
        at: OffsetDateTime,
        kind: Kind,
    ) -> DossierEvent {
        DossierEvent {
            event_id: format!("{dossier}-{suffix}"),
            agency_id: self.profiles[agency].agency.clone(),
            dossier_id: dossier.to_owned(),
            procedure_id: procedure.to_owned(),
            occurred_at: ts(at),
            kind: Some(kind),
            corrects: String::new(),
        }
    }

    /// A dossier received at `at` on `channel`: its reception (and fee) events; it is kept
    /// open to be resolved later.
    fn receive(
        &mut self,
        agency: usize,
        channel: Channel,
        at: OffsetDateTime,
        events: &mut Vec<DossierEvent>,
    ) {
        let profile = &self.profiles[agency];
        // A procedure the agency provided that day (the catalog dates some).
        let day = govpulse_core::period::vietnam_day(at);
        let offered: Vec<&Procedure> = profile
            .procedures
            .iter()
            .filter(|p| p.on(day).is_some())
            .collect();
        if offered.is_empty() {
            return;
        }
        let procedure = offered[self.rng.random_range(0..offered.len())]
            .id
            .to_string();
        self.sequence += 1;
        let channel = if channel == Channel::InPerson && self.rng.random_bool(0.03) {
            Channel::Postal
        } else {
            channel
        };
        let dossier = format!("HS-{}-{}", self.run_id, self.sequence);
        let digitized = self.rng.random_bool(profile.digitized);
        let pays = self.rng.random_bool(0.5);
        let pays_online = channel == Channel::Online && self.rng.random_bool(profile.pays_online);
        events.push(self.event(
            agency,
            &dossier,
            &procedure,
            "rcv",
            at,
            Kind::Received(DossierReceived {
                channel: channel.into(),
                digitized,
                due_at: None,
            }),
        ));
        if pays {
            events.push(self.event(
                agency,
                &dossier,
                &procedure,
                "fee",
                at,
                Kind::FeePaid(FeePaid {
                    online: pays_online,
                }),
            ));
        }
        let mut resolve_at = at + time::Duration::seconds(self.rng.random_range(20..4 * 3600));
        // An agency about to be absorbed resolves its dossiers by its last day: after it, the
        // edge refuses events in its name.
        if let Some(last_moment) = profile
            .valid_until
            .and_then(|until| until.next_day())
            .map(|next| next.midnight().assume_offset(VIETNAM) - time::Duration::SECOND)
        {
            resolve_at = resolve_at.min(last_moment.to_offset(time::UtcOffset::UTC));
        }
        self.open.push(Open {
            agency,
            dossier,
            procedure,
            received_at: at,
            resolve_at,
        });
    }

    /// Ends the open dossiers due by `now`: most are resolved, about 2% withdrawn by their
    /// owner and 1% returned as ineligible.
    fn resolve_due(&mut self, now: OffsetDateTime, events: &mut Vec<DossierEvent>) {
        let (due, open): (Vec<Open>, Vec<Open>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|d| d.resolve_at <= now);
        self.open = open;
        for dossier in due {
            let ending = self.rng.random::<f64>();
            if ending < 0.03 {
                let (step, kind) = if ending < 0.02 {
                    ("wd", Kind::Withdrawn(Withdrawn {}))
                } else {
                    ("ret", Kind::Returned(Returned {}))
                };
                events.push(self.event(
                    dossier.agency,
                    &dossier.dossier,
                    &dossier.procedure,
                    step,
                    dossier.resolve_at,
                    kind,
                ));
                continue;
            }
            let profile = &self.profiles[dossier.agency];
            let (on_time, electronic, feedback, satisfied) = (
                self.rng.random_bool(profile.on_time),
                self.rng.random_bool(profile.electronic),
                self.rng.random_bool(0.3),
                self.rng.random_bool(profile.satisfied),
            );
            let at = dossier.resolve_at;
            let due_at = if on_time {
                at + time::Duration::hours(2)
            } else {
                dossier.received_at
            };
            let resolved = Kind::Resolved(DossierResolved {
                timeliness: Some(dossier_resolved::Timeliness::DueAt(
                    ts(due_at).unwrap_or_default(),
                )),
                result_electronic: electronic,
            });
            events.push(self.event(
                dossier.agency,
                &dossier.dossier,
                &dossier.procedure,
                "res",
                at,
                resolved,
            ));
            if feedback {
                events.push(self.event(
                    dossier.agency,
                    &dossier.dossier,
                    &dossier.procedure,
                    "fb",
                    at,
                    Kind::Feedback(FeedbackGiven { satisfied }),
                ));
            }
        }
    }

    /// `count` dossiers received over the `days` Vietnam days ending today (from the start of
    /// the first to `now`), spread over the day's rhythm, with what became of them by `now`.
    pub fn backfill(&mut self, now: OffsetDateTime, days: u16, count: u32) -> Vec<DossierEvent> {
        let day_start = now.to_offset(VIETNAM).replace_time(time::Time::MIDNIGHT)
            - time::Duration::days(i64::from(days.max(1)) - 1);
        let span = (now - day_start).whole_seconds().max(1);
        let mut events = Vec::new();
        for _ in 0..count {
            let agency = self.pick_agency();
            // Rejection sampling of the time and channel together: the channel by the
            // agency's online share at that time (its trend), the time by the channel's
            // rhythm; should nothing be chosen (desks, on a short span before opening), the
            // dossier came online just now.
            let mut chosen = None;
            for _ in 0..64 {
                let at = day_start + time::Duration::seconds(self.rng.random_range(0..span));
                let Some(reporter) =
                    self.reporter_on(agency, govpulse_core::period::vietnam_day(at))
                else {
                    continue;
                };
                let profile = &self.profiles[reporter];
                let years_ago = (now - at).as_seconds_f64() / (365.25 * 86_400.0);
                let share = (profile.online_share - profile.trend * years_ago).clamp(0.02, 0.98);
                let online = self.rng.random_bool(share);
                let weight = if online {
                    online_rhythm(local_hour(at))
                } else {
                    desk_rhythm(local_hour(at))
                };
                if self.rng.random_bool(weight.clamp(0.0, 1.0)) {
                    chosen = Some((
                        reporter,
                        at,
                        if online {
                            Channel::Online
                        } else {
                            Channel::InPerson
                        },
                    ));
                    break;
                }
            }
            let (reporter, at, channel) = chosen.unwrap_or((agency, now, Channel::Online));
            self.receive(
                reporter,
                channel,
                at.to_offset(time::UtcOffset::UTC),
                &mut events,
            );
        }
        self.resolve_due(now, &mut events);
        events
    }

    /// A re-sync of one agency's system: `count` dossiers received online at office hours on
    /// `day` (Vietnam time) that it had not sent, with their fees (their resolutions are not
    /// part of it). None when the catalog has no such agency reporting today.
    pub fn resync(&mut self, agency: &str, day: time::Date, count: u32) -> Vec<DossierEvent> {
        let Some(index) = self.profiles[..self.reporting]
            .iter()
            .position(|p| p.agency == agency)
        else {
            return Vec::new();
        };
        let opens = day.midnight().assume_offset(VIETNAM) + time::Duration::hours(8);
        let mut events = Vec::new();
        for _ in 0..count {
            let at = opens + time::Duration::seconds(self.rng.random_range(0..9 * 3600));
            self.receive(
                index,
                Channel::Online,
                at.to_offset(time::UtcOffset::UTC),
                &mut events,
            );
        }
        // Not resolved by this re-sync: the live simulation does not know of them.
        self.open.clear();
        events
    }

    /// One of today's agencies, by volume.
    fn pick_agency(&mut self) -> usize {
        let mut target = self.rng.random_range(0.0..self.total_weight);
        for (i, p) in self.profiles[..self.reporting].iter().enumerate() {
            if target < p.weight {
                return i;
            }
            target -= p.weight;
        }
        self.reporting - 1
    }

    /// Who reported, on `day`, a dossier of today's agency `agency`: itself, or before its
    /// merger one of the agencies it absorbed, by their own volumes; `None` when none of
    /// them existed that day.
    fn reporter_on(&mut self, agency: usize, day: time::Date) -> Option<usize> {
        let existing = |i: &usize| self.profiles[*i].exists_on(day);
        let candidates: Vec<usize> = std::iter::once(agency)
            .chain(self.absorbed[agency].iter().copied())
            .filter(existing)
            .collect();
        let total: f64 = candidates.iter().map(|&i| self.profiles[i].weight).sum();
        let mut target = self.rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
        for &i in &candidates {
            if target < self.profiles[i].weight {
                return Some(i);
            }
            target -= self.profiles[i].weight;
        }
        candidates.last().copied()
    }

    /// What happens across the country in `elapsed` up to `now`, at `per_second` dossiers a
    /// second in busy hours.
    pub fn tick(
        &mut self,
        now: OffsetDateTime,
        elapsed: Duration,
        per_second: f64,
    ) -> Vec<DossierEvent> {
        let hour = local_hour(now);
        let mut events = Vec::new();
        for index in 0..self.reporting {
            let profile = &self.profiles[index];
            let expected = per_second * elapsed.as_secs_f64() * profile.weight / self.total_weight;
            let online = expected * profile.online_share * online_rhythm(hour);
            let desk = expected * (1.0 - profile.online_share) * desk_rhythm(hour);
            for (channel, mean) in [(Channel::Online, online), (Channel::InPerson, desk)] {
                let count = mean.floor() as u32
                    + u32::from(self.rng.random_bool(mean.fract().clamp(0.0, 1.0)));
                for _ in 0..count {
                    self.receive(index, channel, now, &mut events);
                }
            }
        }
        self.resolve_due(now, &mut events);
        events
    }
}

/// The calendar periods assessors score in the demo: every year, quarter and month of last
/// year and this one that has begun by `today`, the periods the dashboard offers. An assessed
/// criterion has a value for exactly its period, so each must be scored for a composite
/// index ranking of it to be complete.
fn assessed_periods(today: time::Date) -> Vec<(String, time::Date)> {
    let mut periods = Vec::new();
    for year in [today.year() - 1, today.year()] {
        let last_day = |month: u8| {
            time::Month::try_from(month)
                .ok()
                .and_then(|m| time::Date::from_calendar_date(year, m, m.length(year)).ok())
        };
        let begun = |month: u8| {
            time::Month::try_from(month)
                .ok()
                .and_then(|m| time::Date::from_calendar_date(year, m, 1).ok())
                .is_some_and(|first| first <= today)
        };
        if let Some(end) = last_day(12) {
            periods.push((year.to_string(), end));
        }
        for quarter in 1..=4u8 {
            if let Some(end) = last_day(quarter * 3).filter(|_| begun(quarter * 3 - 2)) {
                periods.push((format!("{year}-Q{quarter}"), end));
            }
        }
        for month in 1..=12u8 {
            if let Some(end) = last_day(month).filter(|_| begun(month)) {
                periods.push((format!("{year}-{month:02}"), end));
            }
        }
    }
    periods
}

/// The composite index's assessed criterion, as assessors would report it: transparency
/// (out of 18 points in `service-index-766`, deploy/config/indexes.toml) for every ministry
/// and province, for each period of `assessed_periods` on whose last day it existed (the
/// edge refuses others: a province absorbed in the 2025 merger is scored for the months and
/// quarters before it), steady per agency with a little change from period to period.
pub fn assessed_scores(catalog: &Catalog, today: time::Date) -> Vec<AssessedScore> {
    let periods = assessed_periods(today);
    let mut scores = Vec::new();
    for agency in catalog.agencies().filter(|a| a.parent.is_none()) {
        let base = unit_interval(stable_hash(&format!("{}/transparency", agency.id)));
        for (period, _) in periods.iter().filter(|(_, end)| agency.exists_on(*end)) {
            let wobble =
                unit_interval(stable_hash(&format!("{}/transparency/{period}", agency.id)));
            let hundredths = (900.0 + 800.0 * base + 100.0 * wobble).round().min(1800.0) as u32;
            scores.push(AssessedScore {
                agency_id: agency.id.to_string(),
                profile: "service-index-766".to_owned(),
                criterion: "transparency".to_owned(),
                period: period.clone(),
                points: format!("{}.{:02}", hundredths / 100, hundredths % 100),
            });
        }
    }
    scores
}

/// Scores per `ReportAssessedScores` call: ingest's default batch limit, as for events.
const SCORES_PER_CALL: usize = 1000;

/// Reports `scores` to ingest, retrying until it takes them or `stop`.
async fn report_scores(ingest_url: &str, scores: Vec<AssessedScore>, stop: &CancellationToken) {
    while !stop.is_cancelled() {
        let reported = async {
            let mut client = IngestServiceClient::connect(ingest_url.to_owned())
                .await
                .map_err(|e| e.to_string())?;
            // Reporting again is idempotent: a retry after a failure sends every call again.
            for chunk in scores.chunks(SCORES_PER_CALL) {
                client
                    .report_assessed_scores(ReportAssessedScoresRequest {
                        scores: chunk.to_vec(),
                    })
                    .await
                    .map_err(|s| s.message().to_owned())?;
            }
            Ok::<(), String>(())
        };
        match reported.await {
            Ok(()) => return,
            Err(e) => {
                warn!(error = %e, "simulator cannot report assessed scores; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Runs until `stop` is cancelled, sending to ingest at `ingest_url`: the assessed scores of
/// last year and this, the history, then what happens as it happens.
pub async fn run(
    ingest_url: String,
    catalog: Arc<Catalog>,
    config: SimulationConfig,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    let today = govpulse_core::period::vietnam_day(OffsetDateTime::now_utc());
    report_scores(&ingest_url, assessed_scores(&catalog, today), &stop).await;
    let _ = tally.started.set(std::time::Instant::now());
    let mut country = Country::new(&catalog, rand::rng().random());
    let tick = Duration::from_millis(200);
    let mut ticker = tokio::time::interval(tick);
    let mut pending = country.backfill(
        OffsetDateTime::now_utc(),
        config.backfill_days,
        config.backfill,
    );
    tally
        .history_events
        .store(pending.len() as u64, Ordering::Relaxed);
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let mut previous_batch: Option<Vec<DossierEvent>> = None;

    while !stop.is_cancelled() {
        let mut client = match IngestServiceClient::connect(ingest_url.clone()).await {
            Ok(client) => client,
            Err(e) => {
                warn!(error = %e, "simulator cannot reach ingest; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (batches, outbound) = mpsc::channel::<StreamEventsRequest>(8);
        let acks = match client.stream_events(ReceiverStream::new(outbound)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                warn!(code = ?status.code(), "simulator stream refused; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let tally_task = tokio::spawn(count_acks(acks, tally.clone()));
        let mut batch_id = 0u64;
        loop {
            let mut sent_ok = true;
            for chunk in pending.chunks(1000) {
                batch_id += 1;
                if batches
                    .send(StreamEventsRequest {
                        batch_id,
                        events: chunk.to_vec(),
                    })
                    .await
                    .is_err()
                {
                    sent_ok = false;
                    break;
                }
            }
            // An agency's system that timed out sends its last batch again.
            if let Some(previous) = previous_batch
                .take()
                .filter(|_| rng.random_bool(config.retry_share))
            {
                batch_id += 1;
                sent_ok &= batches
                    .send(StreamEventsRequest {
                        batch_id,
                        events: previous,
                    })
                    .await
                    .is_ok();
            }
            if !sent_ok {
                warn!("simulator stream closed; reconnecting");
                break;
            }
            previous_batch = pending.chunks(1000).next().map(<[DossierEvent]>::to_vec);
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            pending = country.tick(OffsetDateTime::now_utc(), tick, config.dossiers_per_second);
        }
        drop(batches);
        let _ = tally_task.await;
    }
}

async fn count_acks(
    mut acks: tonic::Streaming<govpulse_proto::ingest::StreamEventsResponse>,
    tally: Arc<Tally>,
) {
    while let Some(ack) = acks.next().await {
        match ack {
            Ok(ack) => {
                tally.outcomes.add(
                    u64::from(ack.accepted),
                    u64::from(ack.duplicate),
                    u64::from(ack.conflict),
                    u64::from(ack.rejected),
                );
                // The moment the last event of the history has its answer.
                let history = tally.history_events.load(Ordering::Relaxed);
                if history > 0
                    && tally.outcomes.answered() >= history
                    && let Some(started) = tally.started.get()
                {
                    let _ = tally.history_took.set(started.elapsed().as_secs_f64());
                }
            }
            Err(status) => {
                warn!(code = ?status.code(), message = status.message(), "ingest ended the stream");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of `events` are of a kind that `is`.
    fn count(events: &[DossierEvent], is: impl Fn(&Kind) -> bool) -> usize {
        events
            .iter()
            .filter(|e| e.kind.as_ref().is_some_and(&is))
            .count()
    }

    /// A reception at a desk or by post: any channel but online.
    fn received_in_person(kind: &Kind) -> bool {
        matches!(kind, Kind::Received(r) if r.channel != Channel::Online as i32)
    }

    /// The built-in catalog.
    fn catalog() -> Catalog {
        govpulse_runtime::catalog_files::built_in().expect("valid")
    }

    /// 2026-08-15 at `time` in Vietnam, in UTC.
    fn on_the_15th(time: time::Time) -> OffsetDateTime {
        time::macros::date!(2026 - 08 - 15)
            .with_time(time)
            .assume_offset(VIETNAM)
            .to_offset(time::UtcOffset::UTC)
    }

    /// The afternoon the backfills of these tests run to: 15:00 on 2026-08-15 in Vietnam.
    fn afternoon() -> OffsetDateTime {
        on_the_15th(time::macros::time!(15:00))
    }

    /// What a country of `catalog` seeded with `seed` backfills up to [`afternoon`]: `count`
    /// dossiers over `days` days.
    fn backfilled(catalog: &Catalog, seed: u64, days: u16, count: u32) -> Vec<DossierEvent> {
        Country::new(catalog, seed).backfill(afternoon(), days, count)
    }

    /// When `e` occurred, in seconds since the epoch (0 when it does not say).
    fn occurred(e: &DossierEvent) -> i64 {
        e.occurred_at.as_ref().map_or(0, |t| t.seconds)
    }

    #[test]
    fn desks_close_at_night_and_portals_do_not() {
        assert_eq!(desk_rhythm(3), 0.0);
        assert!(online_rhythm(3) > 0.0);
        assert_eq!(desk_rhythm(9), 1.0);
    }

    #[test]
    fn a_backfill_reports_dossiers_within_its_days() {
        let events = backfilled(&catalog(), 7, 1, 2000);
        let receptions = count(&events, |k| matches!(k, Kind::Received(_)));
        assert_eq!(receptions, 2000);
        let day_start = time::macros::datetime!(2026-08-15 00:00 +7);
        let today = day_start.unix_timestamp()..=afternoon().unix_timestamp();
        for e in &events {
            assert!(today.contains(&occurred(e)), "{e:?}");
        }
        let resolutions = count(&events, |k| matches!(k, Kind::Resolved(_)));
        assert!(resolutions > 0 && resolutions < receptions);
        let ended_otherwise = count(&events, |k| {
            matches!(k, Kind::Withdrawn(_) | Kind::Returned(_))
        });
        assert!(
            ended_otherwise > 0 && ended_otherwise < resolutions / 10,
            "a few withdrawn or returned: {ended_otherwise} of {resolutions}"
        );
        let in_person = count(&events, received_in_person);
        assert!(
            in_person > 200,
            "office hours had desk traffic: {in_person}"
        );
    }

    #[test]
    fn a_history_moves_online_and_starts_no_agency_before_it_exists() {
        let catalog = catalog();
        let events = backfilled(&catalog, 11, 590, 60_000);
        let first_day = time::macros::date!(2026 - 08 - 15) - time::Duration::days(589);
        let (mut early, mut late) = ((0u32, 0u32), (0u32, 0u32));
        for e in &events {
            let at = OffsetDateTime::from_unix_timestamp(occurred(e)).expect("a time");
            let day = govpulse_core::period::vietnam_day(at);
            assert!(day >= first_day, "within the history: {e:?}");
            let agency = catalog
                .agency(&govpulse_core::AgencyId::parse(&e.agency_id).expect("an id"))
                .expect("a catalog agency");
            assert!(
                agency.exists_on(day),
                "{} did not exist on {day}",
                e.agency_id
            );
            if let Some(Kind::Received(r)) = &e.kind {
                let online = u32::from(r.channel == Channel::Online as i32);
                let slot = if day < time::macros::date!(2025 - 04 - 01) {
                    &mut early
                } else if day >= time::macros::date!(2026 - 05 - 15) {
                    &mut late
                } else {
                    continue;
                };
                slot.0 += online;
                slot.1 += 1;
            }
        }
        let share = |(online, all): (u32, u32)| f64::from(online) / f64::from(all.max(1));
        assert!(
            share(late) > share(early) + 0.02,
            "the country moved online: {:.3} then, {:.3} now",
            share(early),
            share(late)
        );
    }

    #[test]
    fn before_the_merger_the_absorbed_provinces_report_for_themselves() {
        let catalog = catalog();
        let events = backfilled(&catalog, 5, 590, 60_000);
        let merger = time::macros::datetime!(2025-07-01 00:00 +7).unix_timestamp();
        let before: std::collections::BTreeSet<&str> = events
            .iter()
            .filter(|e| occurred(e) < merger)
            .map(|e| e.agency_id.as_str())
            .collect();
        for province in ["hoa-binh", "vinh-phuc", "phu-tho", "bac-lieu", "ca-mau"] {
            assert!(
                before.contains(province),
                "{province} reported before the merger"
            );
        }
        assert!(
            events.iter().filter(|e| occurred(e) >= merger).all(|e| ![
                "hoa-binh",
                "vinh-phuc",
                "bac-lieu"
            ]
            .contains(&e.agency_id.as_str())),
            "nothing in an absorbed province's name from the merger on"
        );
        let provinces_before = before
            .iter()
            .filter(|id| {
                catalog
                    .agency_by_str(id)
                    .is_some_and(|a| a.block == govpulse_core::Block::Province)
            })
            .count();
        assert_eq!(
            provinces_before, 63,
            "the 63 provinces of before the merger"
        );
    }

    #[test]
    fn assessed_scores_cover_every_top_level_agency_within_the_points() {
        let scores = assessed_scores(&catalog(), time::macros::date!(2026 - 08 - 15));
        // 2025, its 4 quarters and 12 months; 2026, its first 3 quarters and 8 months; and
        // the 29 provinces absorbed on 2025-07-01, for the first 2 quarters and 6 months.
        let periods = 1 + 4 + 12 + 1 + 3 + 8;
        assert_eq!(scores.len(), periods * (34 + 21) + (2 + 6) * 29);
        assert!(
            scores
                .iter()
                .any(|s| s.agency_id == "hoa-binh" && s.period == "2025-06")
        );
        assert!(
            !scores
                .iter()
                .any(|s| s.agency_id == "hoa-binh" && s.period == "2025-07"),
            "not after its merger"
        );
        for score in &scores {
            let points: f64 = score.points.parse().expect("a number");
            assert!((9.0..=18.0).contains(&points), "{score:?}");
        }
        for period in ["2025", "2025-Q1", "2025-12", "2026", "2026-Q3", "2026-08"] {
            assert!(
                scores
                    .iter()
                    .any(|s| s.period == period && s.agency_id == "phu-tho"),
                "{period} scored"
            );
        }
        assert!(
            !scores
                .iter()
                .any(|s| s.period == "2026-09" || s.period == "2026-Q4"),
            "no period that has not begun"
        );
    }

    #[test]
    fn a_week_of_backfill_at_night_still_has_desk_traffic() {
        let just_after_midnight = on_the_15th(time::macros::time!(00:10));
        let events = Country::new(&catalog(), 7).backfill(just_after_midnight, 7, 2000);
        let first = time::macros::datetime!(2026-08-09 00:00 +7).unix_timestamp();
        let in_person = count(&events, received_in_person);
        assert!(in_person > 500, "six days of office hours: {in_person}");
        assert!(
            events
                .iter()
                .all(|e| e.occurred_at.as_ref().is_some_and(|t| t.seconds >= first))
        );
    }

    #[test]
    fn a_night_tick_is_online_only() {
        let night = on_the_15th(time::macros::time!(02:00));
        let events = Country::new(&catalog(), 7).tick(night, Duration::from_secs(60), 400.0);
        assert!(!events.is_empty());
        assert!(events.iter().all(
            |e| matches!(&e.kind, Some(Kind::Received(r)) if r.channel == Channel::Online as i32)
                || !matches!(e.kind, Some(Kind::Received(_)))
        ));
    }

    #[test]
    fn every_reporting_agency_has_a_profile_within_bounds() {
        let country = Country::new(&catalog(), 1);
        let profiles = &country.profiles[..country.reporting];
        assert_eq!(
            profiles.len(),
            34 + 21,
            "today's 34 provinces and 21 ministries report"
        );
        assert!(
            profiles.iter().all(|p| p.agency != "hoa-binh"),
            "Hòa Bình was merged into Phú Thọ"
        );
        for p in profiles {
            assert!((0.05..=0.9).contains(&p.online_share), "{}", p.agency);
            assert!(p.weight > 0.0);
        }
    }
}
