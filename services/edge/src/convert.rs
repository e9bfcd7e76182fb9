//! Conversions between the domain types and their protobuf messages, and the error shapes
//! every service answers with.

use govpulse_core::{
    Agency, AgencyId, Block, Catalog, Counter, Counters, DossierId, Period, Procedure, Provision,
    Rate,
    backlog::Stage,
    counting::{EventWrite, Uncorrectable},
    freshness::{DailyEvents, Freshness, Rejections, Seen},
    notice::ChangeNotice,
    period::parse_day,
};
use govpulse_proto::Timestamp;
use govpulse_proto::{aggregate as agg, catalog as cat, event as ev};
use time::OffsetDateTime;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::Violation;

/// The protobuf value of a block.
pub fn block_to_proto(block: Block) -> cat::Block {
    match block {
        Block::Ministry => cat::Block::Ministry,
        Block::Province => cat::Block::Province,
    }
}

/// The block of a protobuf value; `None` when unspecified or unknown.
pub fn block_from_proto(value: i32) -> Option<Block> {
    match cat::Block::try_from(value) {
        Ok(cat::Block::Ministry) => Some(Block::Ministry),
        Ok(cat::Block::Province) => Some(Block::Province),
        Ok(cat::Block::Unspecified) | Err(_) => None,
    }
}

/// An agency as a message.
pub fn agency_to_proto(agency: &Agency) -> cat::Agency {
    cat::Agency {
        id: agency.id.to_string(),
        name: agency.name.clone(),
        block: block_to_proto(agency.block).into(),
        parent_id: agency
            .parent
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        code: agency.code.clone().unwrap_or_default(),
    }
}

/// A procedure as a message.
pub fn procedure_to_proto(procedure: &Procedure) -> cat::Procedure {
    cat::Procedure {
        id: procedure.id.to_string(),
        agency_id: procedure.agency.to_string(),
        name: procedure.name.clone(),
        provision: match procedure.latest().provision {
            Provision::Info => cat::Provision::Info,
            Provision::Partial => cat::Provision::Partial,
            Provision::Full => cat::Provision::Full,
        }
        .into(),
        eligible_full_online: procedure.latest().eligible_full_online,
        valid_from: procedure.spans[0]
            .valid_from
            .map(|d| d.to_string())
            .unwrap_or_default(),
        valid_until: procedure
            .latest()
            .valid_until
            .map(|d| d.to_string())
            .unwrap_or_default(),
    }
}

/// Counters as a message.
pub fn counters_to_proto(c: &Counters) -> agg::Counters {
    agg::Counters {
        received: c.get(Counter::Received),
        received_online: c.get(Counter::ReceivedOnline),
        received_in_person: c.get(Counter::ReceivedInPerson),
        received_postal: c.get(Counter::ReceivedPostal),
        digitized: c.get(Counter::Digitized),
        received_full_online_procedure: c.get(Counter::ReceivedFullOnlineProcedure),
        received_online_full_online_procedure: c.get(Counter::ReceivedOnlineFullOnlineProcedure),
        resolved: c.get(Counter::Resolved),
        resolved_on_time: c.get(Counter::ResolvedOnTime),
        result_electronic: c.get(Counter::ResultElectronic),
        fee_paid: c.get(Counter::FeePaid),
        fee_paid_online: c.get(Counter::FeePaidOnline),
        feedback: c.get(Counter::Feedback),
        feedback_satisfied: c.get(Counter::FeedbackSatisfied),
        procedures_with_online_dossiers: c.procedures_with_online_dossiers,
        open_past_due_at_end: c.open_past_due_at_end,
        withdrawn: c.get(Counter::Withdrawn),
        returned: c.get(Counter::Returned),
        corrected: c.get(Counter::Corrected),
    }
}

/// Counters from a message.
pub fn counters_from_proto(c: &agg::Counters) -> Counters {
    let mut counters = Counters::from_pairs([
        (Counter::Received, c.received),
        (Counter::ReceivedOnline, c.received_online),
        (Counter::ReceivedInPerson, c.received_in_person),
        (Counter::ReceivedPostal, c.received_postal),
        (Counter::Digitized, c.digitized),
        (
            Counter::ReceivedFullOnlineProcedure,
            c.received_full_online_procedure,
        ),
        (
            Counter::ReceivedOnlineFullOnlineProcedure,
            c.received_online_full_online_procedure,
        ),
        (Counter::Resolved, c.resolved),
        (Counter::ResolvedOnTime, c.resolved_on_time),
        (Counter::ResultElectronic, c.result_electronic),
        (Counter::FeePaid, c.fee_paid),
        (Counter::FeePaidOnline, c.fee_paid_online),
        (Counter::Feedback, c.feedback),
        (Counter::FeedbackSatisfied, c.feedback_satisfied),
        (Counter::Withdrawn, c.withdrawn),
        (Counter::Returned, c.returned),
        (Counter::Corrected, c.corrected),
    ]);
    counters.procedures_with_online_dossiers = c.procedures_with_online_dossiers;
    counters.open_past_due_at_end = c.open_past_due_at_end;
    counters
}

/// A rate as a message.
pub fn rate_to_proto(rate: Rate) -> agg::Rate {
    agg::Rate {
        numerator: rate.numerator(),
        denominator: rate.denominator(),
        percent: rate.percent(),
    }
}

/// The days of a period as a message.
pub fn period_to_proto(period: &Period) -> agg::PeriodRange {
    agg::PeriodRange {
        expression: period.expression().to_owned(),
        first_day: period.first_day().to_string(),
        last_day: period.last_day().to_string(),
    }
}

/// A moment as a protobuf timestamp; `None` for none.
pub fn moment_to_proto(at: Option<OffsetDateTime>) -> Option<Timestamp> {
    at.map(|at| Timestamp {
        seconds: at.unix_timestamp(),
        // Below 10^9 by construction.
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    })
}

/// The moment a protobuf timestamp names; `None` for none, an error for an impossible one.
pub fn moment_from_proto(at: Option<&Timestamp>) -> Result<Option<OffsetDateTime>, String> {
    at.map(|ts| crate::decode::timestamp(ts).ok_or_else(|| format!("{ts:?} is not a time")))
        .transpose()
}

/// A protobuf timestamp as RFC 3339 in UTC (`2026-12-05T07:15:17.589Z`), as JSON writes it;
/// empty for none (CSV cells).
pub fn moment_rfc3339(at: Option<&Timestamp>) -> String {
    moment_from_proto(at)
        .ok()
        .flatten()
        .and_then(|at| {
            at.to_offset(time::UtcOffset::UTC)
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The days of a revision's stretch as a person reads them: `2026-11-10`, or
/// `2026-11-10..2026-11-12` for more than one (the CSV's `causes` cell, the CLI's lines).
pub fn cause_days(cause: &govpulse_proto::ranking::RevisionCause) -> String {
    if cause.first_day == cause.last_day {
        cause.first_day.clone()
    } else {
        format!("{}..{}", cause.first_day, cause.last_day)
    }
}

/// The counters a revision's stretch changed, as published and now:
/// `received 4→8, received_online 1→5`.
pub fn cause_counters(cause: &govpulse_proto::ranking::RevisionCause) -> String {
    cause
        .counters
        .iter()
        .map(|c| format!("{} {}→{}", c.counter, c.published, c.now))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An agency's freshness as a message.
pub fn freshness_to_proto(freshness: &Freshness) -> agg::Freshness {
    agg::Freshness {
        last_accepted_at: moment_to_proto(freshness.seen.last_accepted),
        last_occurred_at: moment_to_proto(freshness.seen.last_occurred),
        stale: freshness.stale,
        stale_at: moment_to_proto(freshness.stale_at),
    }
}

/// The freshness a message carries.
pub fn freshness_from_proto(message: &agg::Freshness) -> Result<Freshness, String> {
    Ok(Freshness {
        seen: Seen {
            last_accepted: moment_from_proto(message.last_accepted_at.as_ref())?,
            last_occurred: moment_from_proto(message.last_occurred_at.as_ref())?,
        },
        stale: message.stale,
        stale_at: moment_from_proto(message.stale_at.as_ref())?,
    })
}

/// An agency's events of one day as a message.
pub fn daily_events_to_proto(events: &DailyEvents) -> agg::DailyEvents {
    agg::DailyEvents {
        day: events.day.to_string(),
        accepted: events.accepted,
        rejected: events.rejected,
    }
}

/// A call's rejections as ingest forwards them (`ApplyEventsRequest.rejected_upstream`).
pub fn rejections_to_proto(rejections: &Rejections) -> Vec<agg::AgencyRejections> {
    rejections
        .iter()
        .map(|(agency, count)| agg::AgencyRejections {
            agency_id: agency.to_string(),
            count: u32::try_from(count).unwrap_or(u32::MAX),
        })
        .collect()
}

/// The rejections ingest forwarded: each agency in `catalog`, each count at least 1, at most
/// `limit` entries and `limit` events in all (a call stands for one batch); the first broken
/// rule names its field (`rejected_upstream[2].agency_id`).
pub fn rejections_from_proto(
    catalog: &Catalog,
    message: &[agg::AgencyRejections],
    limit: usize,
) -> Result<Rejections, Violation> {
    let refused = |field: String, reason: String| Violation {
        field,
        reason,
        agency: None,
    };
    if message.len() > limit {
        return Err(refused(
            "rejected_upstream".to_owned(),
            format!("has {} entries; the limit is {limit}", message.len()),
        ));
    }
    let mut rejections = Rejections::default();
    for (i, entry) in message.iter().enumerate() {
        // An agency this replica's catalog does not know (ingest's catalog is newer, during
        // a rollout) is passed over: its tally is data quality, and refusing it would refuse
        // the valid events of the same call.
        let Some(agency) = catalog.agency_by_str(&entry.agency_id) else {
            tracing::debug!(agency = %entry.agency_id, "rejections of an agency not in the catalog passed over");
            continue;
        };
        if entry.count == 0 {
            return Err(refused(
                format!("rejected_upstream[{i}].count"),
                "must be at least 1".to_owned(),
            ));
        }
        rejections.add(&agency.id, u64::from(entry.count));
    }
    let total = rejections.total();
    if total > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(refused(
            "rejected_upstream".to_owned(),
            format!("counts {total} events; a call stands for at most {limit}"),
        ));
    }
    Ok(rejections)
}

/// An ACCEPTED outcome.
pub fn accepted() -> ev::EventOutcome {
    ev::EventOutcome {
        status: ev::OutcomeStatus::Accepted.into(),
        ..Default::default()
    }
}

/// A DUPLICATE outcome.
pub fn duplicate() -> ev::EventOutcome {
    ev::EventOutcome {
        status: ev::OutcomeStatus::Duplicate.into(),
        ..Default::default()
    }
}

/// A CONFLICT outcome for event `index`, naming the fields that differ from the event counted
/// under its id.
pub fn conflict(index: usize, fields: &[&str]) -> ev::EventOutcome {
    ev::EventOutcome {
        status: ev::OutcomeStatus::Conflict.into(),
        field: format!(
            "events[{index}].{}",
            fields.first().copied().unwrap_or("event_id")
        ),
        reason: format!(
            "an event with other content ({}) was counted under this event id before; this one \
             is not counted: an event id names one happening, give another its own id",
            fields.join(", ")
        ),
    }
}

/// A CONFLICT outcome for an event of a stage its dossier had counted already under another
/// event id (a second reception, resolution, payment or feedback): not counted.
pub fn repeated(index: usize, stage: Stage, dossier: &DossierId) -> ev::EventOutcome {
    ev::EventOutcome {
        status: ev::OutcomeStatus::Conflict.into(),
        field: format!("events[{index}].dossier_id"),
        reason: if stage.ends() {
            format!(
                "dossier {dossier} already has {} counted, under another event id; a dossier \
                 ends once (resolved, withdrawn or returned), so this event is not counted; to \
                 change how it ended, correct or retract that event",
                stage.described()
            )
        } else {
            format!(
                "dossier {dossier} already has {} counted, under another event id; each stage \
                 of a dossier (received, resolved, fee_paid, feedback) counts once, so this \
                 event is not counted",
                stage.described()
            )
        },
    }
}

/// A CONFLICT outcome for an event whose dossier was counted under another procedure: a
/// dossier is for one procedure. Not counted.
pub fn other_procedure(index: usize, dossier: &DossierId) -> ev::EventOutcome {
    ev::EventOutcome {
        status: ev::OutcomeStatus::Conflict.into(),
        field: format!("events[{index}].procedure_id"),
        reason: format!(
            "dossier {dossier} was counted under another procedure; a dossier is for one \
             procedure, so this event is not counted"
        ),
    }
}

/// A REJECTED outcome for a correction or retraction that cannot apply (nothing changed): the
/// field at fault and why, naming the event it corrects.
pub fn uncorrectable(index: usize, why: Uncorrectable, write: &EventWrite) -> ev::EventOutcome {
    let target = write.corrects.as_ref().map_or("", |id| id.as_str());
    let agency = &write.agency;
    let (field, reason) = match why {
        Uncorrectable::Unknown => (
            "corrects",
            format!(
                "no event {target} of {agency} is counted: it was never sent or not counted, or \
                 it is past the horizon; a correction sent before its event is refused, so send \
                 the event first, then this correction again"
            ),
        ),
        Uncorrectable::Correction => (
            "corrects",
            format!(
                "{target} is itself a correction; name the event it corrected to correct it again"
            ),
        ),
        Uncorrectable::Retracted => (
            "corrects",
            format!(
                "{target} was retracted and stays so; send what happened as a new event with an \
                 event_id of its own"
            ),
        ),
        Uncorrectable::OtherDossier => (
            "dossier_id",
            format!(
                "{target} is of another dossier; a correction keeps the dossier of the event it \
                 corrects: retract {target}, then send the event for the right dossier under a \
                 new event_id"
            ),
        ),
        Uncorrectable::OtherStage(stage) => (
            "kind",
            format!(
                "{target} is {}; a correction keeps the kind of event it corrects: retract \
                 {target}, then send the right event under a new event_id",
                stage.described()
            ),
        ),
    };
    ev::EventOutcome {
        status: ev::OutcomeStatus::Rejected.into(),
        field: format!("events[{index}].{field}"),
        reason,
    }
}

/// A REJECTED outcome naming the field and the reason.
pub fn rejected(violation: Violation) -> ev::EventOutcome {
    ev::EventOutcome {
        status: ev::OutcomeStatus::Rejected.into(),
        field: violation.field,
        reason: violation.reason,
    }
}

/// A batch's outcomes as they are decided: some at once (an event refused where it stands),
/// the others later, together, in the order they were set aside (the events sent on to be
/// counted). Ingest and aggregate both merge their own refusals with what counting decided
/// this way; [`Outcomes::finish`] gives one outcome per event, in the batch's order.
#[derive(Debug, Default)]
pub struct Outcomes {
    slots: Vec<Option<ev::EventOutcome>>,
    /// The positions set aside, in order.
    later: Vec<usize>,
}

impl Outcomes {
    /// Room for a batch of `events`.
    pub fn with_capacity(events: usize) -> Self {
        Outcomes {
            slots: Vec::with_capacity(events),
            later: Vec::new(),
        }
    }

    /// The next event's outcome, decided now.
    pub fn decided(&mut self, outcome: ev::EventOutcome) {
        self.slots.push(Some(outcome));
    }

    /// The next event's outcome comes with [`Outcomes::fill`].
    pub fn later(&mut self) {
        self.later.push(self.slots.len());
        self.slots.push(None);
    }

    /// The outcomes of the events set aside, in the order they were; `Err` (saying how many
    /// came for how many) when that is not one each.
    pub fn fill(&mut self, outcomes: Vec<ev::EventOutcome>) -> Result<(), String> {
        if outcomes.len() != self.later.len() {
            return Err(format!(
                "{} outcomes for {} events",
                outcomes.len(),
                self.later.len()
            ));
        }
        for (position, outcome) in self.later.drain(..).zip(outcomes) {
            self.slots[position] = Some(outcome);
        }
        Ok(())
    }

    /// One outcome per event, in the batch's order; `Err` if an event got none.
    pub fn finish(self) -> Result<Vec<ev::EventOutcome>, String> {
        self.slots
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "an event got no outcome".to_owned())
    }
}

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` naming the field, so clients in any
/// language can read which field is wrong.
pub fn bad_request(field: &str, reason: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {reason}"),
        ErrorDetails::with_bad_request_violation(field, reason),
    )
}

/// A request field that is wrong, as every service's request error carries it: answered
/// INVALID_ARGUMENT naming the field ([`bad_request`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The field's path, for example `query.period` or `scores[2].points`.
    pub field: String,
    /// Why, in words a person can act on.
    pub reason: String,
}

impl From<Invalid> for Status {
    fn from(invalid: Invalid) -> Status {
        bad_request(&invalid.field, &invalid.reason)
    }
}

impl From<Violation> for Invalid {
    /// A wrong element of a request (an event, an assessed score), by its field path.
    fn from(violation: Violation) -> Self {
        Invalid {
            field: violation.field,
            reason: violation.reason,
        }
    }
}

/// `E::invalid(field, reason)` for every request error that carries an [`Invalid`].
pub trait InvalidField: From<Invalid> {
    /// The error saying that `field` is wrong, and why.
    fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
        .into()
    }
}

impl<E: From<Invalid>> InvalidField for E {}

/// A change notice as WatchChanges sends it, numbered `sequence`.
pub fn notice_to_proto(sequence: u64, notice: &ChangeNotice) -> agg::WatchChangesResponse {
    agg::WatchChangesResponse {
        sequence,
        agency_ids: notice.agencies.iter().map(ToString::to_string).collect(),
        days: notice.days.iter().map(ToString::to_string).collect(),
        traceparent: notice.traceparent.to_string(),
    }
}

/// A WatchChanges message as a change notice. A part that cannot be read is read as its
/// widest meaning: an unreadable agency id makes it "any agency", an unreadable day "any
/// day", so a notice is never narrowed by what a reader does not understand.
pub fn notice_from_proto(message: agg::WatchChangesResponse) -> ChangeNotice {
    let agencies: Option<Vec<AgencyId>> = message
        .agency_ids
        .into_iter()
        .map(|id| AgencyId::parse_owned(id).ok())
        .collect();
    let days: Option<Vec<time::Date>> = message.days.iter().map(|d| parse_day(d).ok()).collect();
    ChangeNotice {
        origin: "".into(),
        agencies: agencies.unwrap_or_default().into(),
        days: days.unwrap_or_default().into(),
        traceparent: message.traceparent.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> AgencyId {
        AgencyId::parse(raw).expect("id")
    }

    #[test]
    fn counters_round_trip_through_their_message() {
        // The due-day counters are the store's bookkeeping: the message carries what they
        // give, the dossiers open past due at the period's end.
        let mut counters = Counters::from_pairs(
            Counter::ALL
                .into_iter()
                .filter(|c| !c.by_due_day())
                .zip(1u64..),
        );
        counters.procedures_with_online_dossiers = 99;
        counters.open_past_due_at_end = 98;
        assert_eq!(counters_from_proto(&counters_to_proto(&counters)), counters);
    }

    #[test]
    fn rejections_cross_apply_events_as_sent_and_bad_ones_name_their_field() {
        let catalog = Catalog::builder()
            .provinces_csv(
                "p",
                "code,id,name\n17,hoa-binh,Hòa Bình\n01,ha-noi,Hà Nội\n",
            )
            .and_then(govpulse_core::CatalogBuilder::build)
            .expect("catalog");
        let mut rejections = Rejections::default();
        rejections.add(&id("hoa-binh"), 3);
        rejections.add(&id("ha-noi"), 1);
        let message = rejections_to_proto(&rejections);
        assert_eq!(
            rejections_from_proto(&catalog, &message, 10),
            Ok(rejections)
        );
        let entry = |agency: &str, count| agg::AgencyRejections {
            agency_id: agency.to_owned(),
            count,
        };
        let refused = |message: &[agg::AgencyRejections], limit| {
            rejections_from_proto(&catalog, message, limit)
                .expect_err("refused")
                .field
        };
        // An agency outside this catalog (ingest's is newer) is passed over, not refused:
        // the call's valid events must not be refused with it.
        assert_eq!(
            rejections_from_proto(&catalog, &[entry("ha-noi", 2), entry("nowhere", 1)], 10)
                .map(|r| r.total()),
            Ok(2)
        );
        assert_eq!(
            refused(&[entry("ha-noi", 0)], 10),
            "rejected_upstream[0].count"
        );
        assert_eq!(refused(&[entry("ha-noi", 11)], 10), "rejected_upstream");
        assert_eq!(
            refused(&[entry("ha-noi", 1), entry("ha-noi", 1)], 1),
            "rejected_upstream"
        );
        // The same agency twice adds up.
        let twice = rejections_from_proto(&catalog, &[entry("ha-noi", 2), entry("ha-noi", 3)], 10)
            .expect("valid");
        assert_eq!(twice.total(), 5);
    }

    #[test]
    fn bad_requests_carry_field_violations() {
        let status = bad_request("events", "has 1001 events; the limit is 1000");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status
            .get_details_bad_request()
            .expect("a BadRequest detail");
        assert_eq!(details.field_violations[0].field, "events");
        assert_eq!(
            details.field_violations[0].description,
            "has 1001 events; the limit is 1000"
        );
    }

    #[test]
    fn blocks_map_both_ways() {
        for block in [Block::Ministry, Block::Province] {
            assert_eq!(block_from_proto(block_to_proto(block).into()), Some(block));
        }
        assert_eq!(block_from_proto(0), None);
        assert_eq!(block_from_proto(42), None);
    }

    #[test]
    fn outcomes_decided_now_and_later_come_back_in_the_batch_s_order() {
        let refused = |field: &str| {
            rejected(Violation {
                field: field.to_owned(),
                reason: "bad".to_owned(),
                agency: None,
            })
        };
        let mut outcomes = Outcomes::with_capacity(4);
        outcomes.later();
        outcomes.decided(refused("events[1].kind"));
        outcomes.later();
        outcomes.decided(refused("events[3].kind"));
        assert_eq!(
            outcomes.fill(vec![accepted()]),
            Err("1 outcomes for 2 events".to_owned())
        );
        outcomes
            .fill(vec![accepted(), duplicate()])
            .expect("one each");
        assert_eq!(
            outcomes.finish(),
            Ok(vec![
                accepted(),
                refused("events[1].kind"),
                duplicate(),
                refused("events[3].kind")
            ])
        );

        let mut unfilled = Outcomes::with_capacity(1);
        unfilled.later();
        assert_eq!(unfilled.finish(), Err("an event got no outcome".to_owned()));
    }

    #[test]
    fn a_notice_crosses_watch_changes_as_it_was_sent() {
        use time::macros::date;
        let notice = ChangeNotice {
            origin: "".into(),
            agencies: vec![id("hoa-binh.dept-01"), id("hoa-binh")].into(),
            days: vec![date!(2026 - 08 - 15), date!(2026 - 01 - 02)].into(),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        };
        let message = notice_to_proto(7, &notice);
        assert_eq!(message.days, ["2026-08-15", "2026-01-02"]);
        assert_eq!(notice_from_proto(message), notice);
    }

    #[test]
    fn what_a_notice_says_unreadably_is_read_as_anything() {
        let message = agg::WatchChangesResponse {
            agency_ids: vec!["hoa-binh".into(), "not an id!".into()],
            days: vec!["2026-08-15".into(), "15/08".into()],
            ..Default::default()
        };
        let notice = notice_from_proto(message);
        assert!(notice.is_anything(), "an unreadable agency: any agency");
        assert!(notice.days.is_empty(), "an unreadable day: any day");
    }
}
