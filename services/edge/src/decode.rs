//! Decodes a protobuf event into a validated domain event, or says which field is wrong and
//! why. The one place where untrusted event data becomes trusted: ingest runs it before
//! forwarding, aggregate again before counting.

use std::{borrow::Cow, sync::Arc};

use govpulse_core::{
    AcceptancePolicy, AgencyEntry, AgencyId, Catalog, Channel, CheckedId, DossierEvent, DossierId,
    EventId, EventKind, IdError, ProcedureId, Provision, Timeliness,
};
use govpulse_proto::{Timestamp, event as pb, wire::EventView};
use time::{Date, OffsetDateTime};

/// What is wrong with one event: the path of the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field's path, for example `events[3].agency_id`.
    pub field: String,
    /// Why, in words a person can act on.
    pub reason: String,
    /// The agency the event names, when it is an agency of the catalog: the one its
    /// rejection may count against ([`govpulse_core::freshness::blamed`]); `None` when the
    /// `agency_id` itself is wrong.
    pub agency: Option<AgencyId>,
}

impl Violation {
    fn new(position: Option<usize>, field: &str, reason: impl Into<String>) -> Self {
        // Built only for a bad event, so valid events cost no formatting.
        let field = match position {
            None => field.to_owned(),
            Some(i) => format!("events[{i}].{field}"),
        };
        Self {
            field,
            reason: reason.into(),
            agency: None,
        }
    }
}

/// Converts a protobuf timestamp, refusing impossible ones.
pub fn timestamp(ts: &Timestamp) -> Option<OffsetDateTime> {
    // Whole seconds, then the nanoseconds: no 128-bit division for every time of every event.
    let nanos = u32::try_from(ts.nanos).ok()?;
    OffsetDateTime::from_unix_timestamp(ts.seconds)
        .ok()?
        .replace_nanosecond(nanos)
        .ok()
}

/// `raw` checked as an id (still the caller's text: no copy), or a violation of `field`
/// saying why it is malformed.
fn id_field<'v>(
    position: Option<usize>,
    field: &str,
    raw: Cow<'v, str>,
) -> Result<CheckedId<'v>, Violation> {
    CheckedId::check(raw).map_err(|e| Violation::new(position, field, e.to_string()))
}

/// An id field whose values the catalog lists, and how one it does not know is refused.
struct Listed<I> {
    /// The field, for example `agency_id`.
    field: &'static str,
    /// What the id names, for example `agency`.
    noun: &'static str,
    /// The `CatalogService` method that lists the known ones.
    listed_by: &'static str,
    /// Whether an id is well formed.
    parse: fn(&str) -> Result<I, IdError>,
}

/// `agency_id`: an agency of the catalog.
const AGENCY_ID: Listed<AgencyId> = Listed {
    field: "agency_id",
    noun: "agency",
    listed_by: "ListAgencies",
    parse: AgencyId::parse,
};

/// `procedure_id`: a procedure of the catalog.
const PROCEDURE_ID: Listed<ProcedureId> = Listed {
    field: "procedure_id",
    noun: "procedure",
    listed_by: "ListProcedures",
    parse: ProcedureId::parse,
};

impl<I> Listed<I> {
    /// The entry the catalog `found` for `raw` (its id is the catalog's own, shared: no copy
    /// of the text); none is a violation of the field: a malformed id or, if well formed, an
    /// unknown one.
    fn known<T>(
        &self,
        position: Option<usize>,
        raw: &str,
        found: Option<T>,
    ) -> Result<T, Violation> {
        if let Some(entry) = found {
            return Ok(entry);
        }
        let field = self.field;
        (self.parse)(raw).map_err(|e| Violation::new(position, field, e.to_string()))?;
        Err(Violation::new(
            position,
            field,
            format!(
                "unknown {} {raw:?}; CatalogService.{} lists them",
                self.noun, self.listed_by
            ),
        ))
    }
}

/// Validates one event received at `now`. `position` is its place in the batch, which names
/// it in field paths (`events[3].agency_id`); `None` for a lone event. The event's strings
/// become the domain event's ids as they are (no copies where they are owned already).
#[inline]
pub fn decode_event(
    position: Option<usize>,
    event: EventView<'_>,
    catalog: &Catalog,
    policy: &AcceptancePolicy,
    now: OffsetDateTime,
) -> Result<DossierEvent, Violation> {
    check_event(position, event, catalog, policy, now).map(Checked::into_event)
}

/// An event that passed every check of [`decode_event`], its ids still the caller's text
/// (borrowed from the request where they were): what ingest needs of every event it
/// forwards as it came, without a copy of its ids to drop; [`Checked::into_event`] makes
/// the domain event of it without checking again.
#[derive(Debug)]
pub struct Checked<'v, 'c> {
    event_id: CheckedId<'v>,
    dossier: CheckedId<'v>,
    corrects: Option<CheckedId<'v>>,
    procedure: ProcedureId,
    occurred_at: OffsetDateTime,
    kind: EventKind,
    /// The catalog's entry of the event's agency.
    pub entry: AgencyEntry<'c>,
    /// How the catalog provided the event's procedure on the event's day.
    pub provision: Provision,
    /// The Vietnam day the event happened on, which the agency and the procedure were
    /// checked to exist on.
    pub day: Date,
}

impl Checked<'_, '_> {
    /// The event's agency (the catalog's id).
    pub fn agency(&self) -> &AgencyId {
        &self.entry.agency.id
    }

    /// The domain event, its ids owning their text.
    pub fn into_event(self) -> DossierEvent {
        DossierEvent {
            event_id: EventId::from_checked(self.event_id),
            agency: self.entry.agency.id.clone(),
            dossier: DossierId::from_checked(self.dossier),
            procedure: self.procedure,
            occurred_at: self.occurred_at,
            kind: self.kind,
            corrects: self.corrects.map(EventId::from_checked),
        }
    }
}

/// An event as aggregate counts it: what [`decode_counted`] found checking it, so that
/// nothing is looked up or worked out again.
#[derive(Debug)]
pub struct Counted {
    /// The event.
    pub event: DossierEvent,
    /// How the catalog provided the event's procedure on the event's day.
    pub provision: Provision,
    /// The event's agency, then each ancestor up to its ministry or province (the
    /// catalog's, shared).
    pub chain: Arc<[AgencyId]>,
    /// The Vietnam day the event happened on, which the agency and the procedure were
    /// checked to exist on.
    pub day: Date,
}

/// [`decode_event`], with what checking it found: how the catalog provided the event's
/// procedure on the event's day, its agency's chain and the day itself.
pub fn decode_counted(
    position: Option<usize>,
    event: EventView<'_>,
    catalog: &Catalog,
    policy: &AcceptancePolicy,
    now: OffsetDateTime,
) -> Result<Counted, Violation> {
    check_event(position, event, catalog, policy, now).map(|checked| Counted {
        provision: checked.provision,
        chain: checked.entry.chain.clone(),
        day: checked.day,
        event: checked.into_event(),
    })
}

/// Every check of [`decode_event`], the event's ids left as the caller's text.
pub fn check_event<'v, 'c>(
    position: Option<usize>,
    event: EventView<'v>,
    catalog: &'c Catalog,
    policy: &AcceptancePolicy,
    now: OffsetDateTime,
) -> Result<Checked<'v, 'c>, Violation> {
    let event_id = id_field(position, "event_id", event.event_id)?;
    let agency = &event.agency_id;
    let reporting = AGENCY_ID.known(position, agency, catalog.agency_entry(agency))?;
    decode_known(
        position,
        (
            event_id,
            reporting,
            event.dossier_id,
            event.procedure_id,
            event.corrects,
        ),
        event.occurred_at,
        event.kind,
        catalog,
        policy,
        now,
    )
    // The agency's id shared only for a violation.
    .map_err(|violation| Violation {
        agency: Some(reporting.agency.id.clone()),
        ..violation
    })
}

/// The rest of [`check_event`], for an event whose agency is one of the catalog.
fn decode_known<'v, 'c>(
    position: Option<usize>,
    (event_id, entry, dossier_id, procedure_id, corrects): (
        CheckedId<'v>,
        AgencyEntry<'c>,
        Cow<'v, str>,
        Cow<'_, str>,
        Cow<'v, str>,
    ),
    occurred_at: Option<Timestamp>,
    kind: Option<pb::dossier_event::Kind>,
    catalog: &Catalog,
    policy: &AcceptancePolicy,
    now: OffsetDateTime,
) -> Result<Checked<'v, 'c>, Violation> {
    let reporting = entry.agency;
    let agency = &reporting.id;
    let dossier = id_field(position, "dossier_id", dossier_id)?;
    // A known procedure's id is the catalog's (checked when the catalog was loaded).
    let procedure = PROCEDURE_ID.known(
        position,
        &procedure_id,
        catalog.procedure_by_str(&procedure_id),
    )?;
    let procedure_id = procedure.id.clone();
    if !entry.handles(procedure) {
        return Err(Violation::new(
            position,
            "procedure_id",
            format!(
                "procedure {:?} belongs to {}, not to {agency} or an agency above it",
                procedure_id.as_str(),
                procedure.agency
            ),
        ));
    }
    let occurred_at = match &occurred_at {
        None => return Err(Violation::new(position, "occurred_at", "is required")),
        Some(ts) => timestamp(ts)
            .ok_or_else(|| Violation::new(position, "occurred_at", "is not a valid time"))?,
    };
    policy
        .check(occurred_at, now)
        .map_err(|e| Violation::new(position, "occurred_at", e.to_string()))?;
    let day = govpulse_core::period::vietnam_day(occurred_at);
    if !reporting.exists_on(day) {
        let reason = match (&reporting.successor, reporting.valid_until) {
            (Some(successor), Some(until)) if until < day => format!(
                "agency {agency} was merged into {successor} on {}; report events from that day for {successor}",
                until.next_day().unwrap_or(until)
            ),
            _ => format!("agency {agency} did not exist on {day}"),
        };
        return Err(Violation::new(position, "agency_id", reason));
    }
    let Some(span) = procedure.on(day) else {
        return Err(Violation::new(
            position,
            "procedure_id",
            format!(
                "procedure {:?} was not in the catalog on {day} (it exists {})",
                procedure_id.as_str(),
                procedure.validity_text()
            ),
        ));
    };
    let provision = span.provision;
    let kind = match &kind {
        None => {
            return Err(Violation::new(
                position,
                "kind",
                "one of received, resolved, fee_paid, feedback, withdrawn, returned or retracted is \
                 required",
            ));
        }
        Some(pb::dossier_event::Kind::Received(received)) => EventKind::Received {
            channel: match pb::Channel::try_from(received.channel) {
                Ok(pb::Channel::InPerson) => Channel::InPerson,
                Ok(pb::Channel::Online) => Channel::Online,
                Ok(pb::Channel::Postal) => Channel::Postal,
                Ok(pb::Channel::Unspecified) => {
                    return Err(Violation::new(
                        position,
                        "received.channel",
                        "is required: 1 in person, 2 online, 3 postal",
                    ));
                }
                Err(_) => {
                    return Err(Violation::new(
                        position,
                        "received.channel",
                        format!(
                            "unknown channel {}; use 1 in person, 2 online, 3 postal",
                            received.channel
                        ),
                    ));
                }
            },
            digitized: received.digitized,
            due_at: match &received.due_at {
                None => None,
                Some(due) => {
                    let due = timestamp(due).ok_or_else(|| {
                        Violation::new(position, "received.due_at", "is not a valid time")
                    })?;
                    // Bounded so that the backlog's due-day counters are read over a bounded
                    // number of buckets (govpulse_core::backlog).
                    govpulse_core::backlog::check_due(occurred_at, due)
                        .map_err(|e| Violation::new(position, "received.due_at", e.to_string()))?;
                    Some(due)
                }
            },
        },
        Some(pb::dossier_event::Kind::Resolved(resolved)) => EventKind::Resolved {
            timeliness: match &resolved.timeliness {
                None => {
                    return Err(Violation::new(
                        position,
                        "resolved.timeliness",
                        "one of due_at or on_time is required",
                    ));
                }
                Some(pb::dossier_resolved::Timeliness::OnTime(on_time)) => {
                    Timeliness::OnTime(*on_time)
                }
                Some(pb::dossier_resolved::Timeliness::DueAt(due)) => {
                    Timeliness::DueAt(timestamp(due).ok_or_else(|| {
                        Violation::new(position, "resolved.due_at", "is not a valid time")
                    })?)
                }
            },
            result_electronic: resolved.result_electronic,
        },
        Some(pb::dossier_event::Kind::FeePaid(fee)) => EventKind::FeePaid { online: fee.online },
        Some(pb::dossier_event::Kind::Feedback(feedback)) => EventKind::Feedback {
            satisfied: feedback.satisfied,
        },
        Some(pb::dossier_event::Kind::Withdrawn(pb::Withdrawn {})) => EventKind::Withdrawn,
        Some(pb::dossier_event::Kind::Returned(pb::Returned {})) => EventKind::Returned,
        Some(pb::dossier_event::Kind::Retracted(pb::Retracted {})) => EventKind::Retracted,
    };
    let corrects = if corrects.is_empty() {
        if kind == EventKind::Retracted {
            return Err(Violation::new(
                position,
                "corrects",
                "is required with retracted: the event_id of the event to take back",
            ));
        }
        None
    } else {
        let target = id_field(position, "corrects", corrects)?;
        if target.as_str() == event_id.as_str() {
            return Err(Violation::new(
                position,
                "corrects",
                "names this event's own event_id; a correction has an event_id of its own",
            ));
        }
        Some(target)
    };
    Ok(Checked {
        event_id,
        dossier,
        corrects,
        procedure: procedure_id,
        occurred_at,
        kind,
        entry,
        provision,
        day,
    })
}

/// The protobuf form of a decoded event: what ingest forwards to aggregate. The ids' strings
/// are moved, not copied; decoding the result gives the same event back.
pub fn encode_event(event: DossierEvent) -> pb::DossierEvent {
    let timestamp = |at: OffsetDateTime| Timestamp {
        seconds: at.unix_timestamp(),
        // Below 10^9 by construction.
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    };
    let kind = match event.kind {
        EventKind::Received {
            channel,
            digitized,
            due_at,
        } => pb::dossier_event::Kind::Received(pb::DossierReceived {
            channel: match channel {
                Channel::InPerson => pb::Channel::InPerson,
                Channel::Online => pb::Channel::Online,
                Channel::Postal => pb::Channel::Postal,
            }
            .into(),
            digitized,
            due_at: due_at.map(timestamp),
        }),
        EventKind::Resolved {
            timeliness,
            result_electronic,
        } => pb::dossier_event::Kind::Resolved(pb::DossierResolved {
            timeliness: Some(match timeliness {
                Timeliness::OnTime(on_time) => pb::dossier_resolved::Timeliness::OnTime(on_time),
                Timeliness::DueAt(due) => pb::dossier_resolved::Timeliness::DueAt(timestamp(due)),
            }),
            result_electronic,
        }),
        EventKind::FeePaid { online } => pb::dossier_event::Kind::FeePaid(pb::FeePaid { online }),
        EventKind::Feedback { satisfied } => {
            pb::dossier_event::Kind::Feedback(pb::FeedbackGiven { satisfied })
        }
        EventKind::Withdrawn => pb::dossier_event::Kind::Withdrawn(pb::Withdrawn {}),
        EventKind::Returned => pb::dossier_event::Kind::Returned(pb::Returned {}),
        EventKind::Retracted => pb::dossier_event::Kind::Retracted(pb::Retracted {}),
    };
    pb::DossierEvent {
        event_id: event.event_id.into_string(),
        agency_id: event.agency.into_string(),
        dossier_id: event.dossier.into_string(),
        procedure_id: event.procedure.into_string(),
        occurred_at: Some(timestamp(event.occurred_at)),
        kind: Some(kind),
        corrects: event.corrects.map(EventId::into_string).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-08-15 05:00 UTC);

    #[test]
    fn a_timestamp_is_its_seconds_and_nanoseconds_or_nothing() {
        let at = |seconds, nanos| timestamp(&Timestamp { seconds, nanos });
        assert_eq!(
            at(-1, 500_000_000),
            Some(datetime!(1969-12-31 23:59:59.5 UTC))
        );
        assert_eq!(
            at(1_786_759_200, 999_999_999),
            Some(datetime!(2026-08-15 02:00:00.999_999_999 UTC))
        );
        assert_eq!(at(0, 1_000_000_000), None);
        assert_eq!(at(0, -1), None);
        assert_eq!(at(i64::MAX, 0), None);
    }

    fn catalog() -> Catalog {
        Catalog::builder()
            .provinces_csv("p", "code,id,name\n17,hoa-binh,Hòa Bình\n01,ha-noi,Hà Nội\n")
            .and_then(|b| b.units_csv("u", "id,name,parent_id\nhb-dept,Sở,hoa-binh\n"))
            .and_then(|b| b.procedures_csv("x", "id,agency_id,name,provision,eligible_full_online\nhb-p1,hoa-binh,A,full,true\nhn-p1,ha-noi,B,full,true\nhb-p2,hoa-binh,C,partial,false\n"))
            .and_then(govpulse_core::CatalogBuilder::build)
            .expect("valid")
    }

    fn ts(at: OffsetDateTime) -> Timestamp {
        Timestamp {
            seconds: at.unix_timestamp(),
            nanos: 0,
        }
    }

    fn valid() -> pb::DossierEvent {
        pb::DossierEvent {
            event_id: "e-1".into(),
            agency_id: "hoa-binh".into(),
            dossier_id: "HS-1".into(),
            procedure_id: "hb-p1".into(),
            occurred_at: Some(ts(NOW)),
            kind: Some(pb::dossier_event::Kind::Received(pb::DossierReceived {
                channel: pb::Channel::Online as i32,
                digitized: true,
                due_at: None,
            })),
            corrects: String::new(),
        }
    }

    /// `event` decoded at `position` against the test catalog, the default policy, at `NOW`.
    fn decode(position: Option<usize>, event: pb::DossierEvent) -> Result<DossierEvent, Violation> {
        decode_event(
            position,
            event.into(),
            &catalog(),
            &AcceptancePolicy::default(),
            NOW,
        )
    }

    #[test]
    fn a_counted_event_comes_with_its_procedures_provision_that_day_and_its_agencys_chain() {
        let catalog = catalog();
        // Sent by a unit, for its province's procedures.
        let counted = |procedure: &str| {
            let event = pb::DossierEvent {
                procedure_id: procedure.into(),
                agency_id: "hb-dept".into(),
                ..valid()
            };
            decode_counted(
                None,
                event.into(),
                &catalog,
                &AcceptancePolicy::default(),
                NOW,
            )
            .map(|counted| (counted.event.agency, counted.provision, counted.chain))
            .expect("valid")
        };
        let (agency, provision, chain) = counted("hb-p1");
        assert_eq!(provision, Provision::Full);
        assert_eq!(&chain[..], catalog.chain(&agency));
        assert_eq!(
            chain.iter().map(AgencyId::as_str).collect::<Vec<_>>(),
            ["hb-dept", "hoa-binh"]
        );
        assert_eq!(counted("hb-p2").1, Provision::Partial);
        // The day it counts in, in Vietnam: 23:00 UTC on 2026-08-15 is 06:00 on the 16th there.
        let late = pb::DossierEvent {
            occurred_at: Some(Timestamp {
                seconds: datetime!(2026-08-15 23:00 UTC).unix_timestamp(),
                nanos: 0,
            }),
            ..valid()
        };
        let counted = decode_counted(
            None,
            late.into(),
            &catalog,
            &AcceptancePolicy::default(),
            datetime!(2026-08-16 03:00 UTC),
        )
        .expect("valid");
        assert_eq!(counted.day, time::macros::date!(2026 - 08 - 16));
        assert_eq!(counted.day, counted.event.day());
    }

    fn violation(event: pb::DossierEvent) -> (String, String) {
        let v = decode(Some(2), event).expect_err("invalid");
        (v.field, v.reason)
    }

    /// The field and reason of a valid event changed by `change`, as the 3rd of a batch.
    fn violation_after(change: fn(&mut pb::DossierEvent)) -> (String, String) {
        let mut event = valid();
        change(&mut event);
        violation(event)
    }

    #[test]
    fn a_checked_event_is_the_decoded_event_and_a_refused_one_the_same_refusal() {
        let catalog = catalog();
        let policy = AcceptancePolicy::default();
        let mut bad = valid();
        bad.dossier_id = "a b".into();
        let mut correction = valid();
        correction.corrects = "other-event".into();
        for event in [valid(), bad, correction] {
            let checked = check_event(Some(2), event.clone().into(), &catalog, &policy, NOW);
            let decoded = decode_event(Some(2), event.into(), &catalog, &policy, NOW);
            match (checked, decoded) {
                (Ok(checked), Ok(decoded)) => {
                    assert_eq!(checked.agency(), &decoded.agency);
                    assert_eq!(checked.into_event(), decoded);
                }
                (Err(checked), Err(decoded)) => assert_eq!(checked, decoded),
                (checked, decoded) => panic!("{checked:?} against {decoded:?}"),
            }
        }
    }

    #[test]
    fn a_valid_event_decodes() {
        let e = decode(None, valid()).expect("valid");
        assert_eq!(
            e.kind,
            EventKind::Received {
                channel: Channel::Online,
                digitized: true,
                due_at: None
            }
        );
        assert_eq!(e.occurred_at, NOW);
        let mut unit = valid();
        unit.agency_id = "hb-dept".into();
        assert!(
            decode(None, unit).is_ok(),
            "a unit uses its province's procedure"
        );
    }

    #[test]
    fn a_violation_names_the_agency_only_when_it_is_one_of_the_catalog() {
        let decode = |e: pb::DossierEvent| decode(Some(0), e).expect_err("invalid");
        let mut late = valid();
        late.occurred_at = None;
        let named = decode(late);
        assert_eq!(named.field, "events[0].occurred_at");
        assert_eq!(
            named.agency.as_ref().map(AgencyId::as_str),
            Some(valid().agency_id.as_str())
        );
        let mut unknown = valid();
        unknown.agency_id = "nowhere".to_owned();
        assert_eq!(decode(unknown).agency, None);
        let mut malformed = valid();
        malformed.agency_id = "not an id!".to_owned();
        assert_eq!(decode(malformed).agency, None);
    }

    #[test]
    fn a_procedure_is_reported_only_on_days_it_exists() {
        let catalog = Catalog::builder()
            .provinces_csv("p", "code,id,name\n17,hoa-binh,Hòa Bình\n")
            .and_then(|b| b.procedures_csv("x", "id,agency_id,name,provision,eligible_full_online,valid_from,valid_until\nhb-p1,hoa-binh,A,full,true,2026-08-16,\n"))
            .and_then(govpulse_core::CatalogBuilder::build)
            .expect("valid");
        let policy = AcceptancePolicy::default();
        let violation = decode_event(Some(0), valid().into(), &catalog, &policy, NOW)
            .expect_err("the procedure starts the next day");
        assert_eq!(
            (violation.field.as_str(), violation.reason.as_str()),
            (
                "events[0].procedure_id",
                "procedure \"hb-p1\" was not in the catalog on 2026-08-15 (it exists from 2026-08-16)"
            )
        );
        let mut next_day = valid();
        next_day.occurred_at = Some(ts(NOW + time::Duration::days(1)));
        let later = NOW + time::Duration::days(1);
        assert!(decode_event(None, next_day.into(), &catalog, &policy, later).is_ok());
    }

    #[test]
    fn an_agency_reports_only_while_it_exists() {
        let catalog = Catalog::builder()
            .provinces_csv("p", "code,id,name\n17,hoa-binh,Hòa Bình\n25,phu-tho,Phú Thọ\n")
            .and_then(|b| b.units_csv("u", "id,name,parent_id,valid_from,valid_until\nhb-district,Huyện,hoa-binh,2010-01-01,2025-06-30\n"))
            .and_then(|b| b.procedures_csv("x", "id,agency_id,name,provision,eligible_full_online\nhb-p1,hoa-binh,A,full,true\n"))
            .and_then(|b| b.mergers_csv("m", "successor_id,successor_name,predecessor_ids,effective\nphu-tho,Phú Thọ,phu-tho;hoa-binh,2025-07-01\n"))
            .and_then(govpulse_core::CatalogBuilder::build)
            .expect("valid");
        let mut event = valid();
        let policy = AcceptancePolicy {
            horizon: time::Duration::days(1000),
            ..AcceptancePolicy::default()
        };
        let check = |e: &pb::DossierEvent| {
            decode_event(None, e.clone().into(), &catalog, &policy, NOW).map_err(|v| v.reason)
        };
        assert_eq!(
            check(&event),
            Err("agency hoa-binh was merged into phu-tho on 2025-07-01; report events from that day for phu-tho".into())
        );
        event.agency_id = "hb-district".into();
        assert_eq!(
            check(&event),
            Err("agency hb-district did not exist on 2026-08-15".into())
        );
        event.occurred_at = Some(ts(datetime!(2025-06-30 12:00 +7)));
        assert!(
            check(&event).is_ok(),
            "a district reports for days before it was abolished"
        );
    }

    #[test]
    fn each_bad_field_is_named_with_its_reason() {
        let with = violation_after;
        let field = |f: fn(&mut pb::DossierEvent)| with(f).0;
        assert_eq!(
            with(|e| e.event_id.clear()),
            ("events[2].event_id".into(), "must not be empty".into())
        );
        assert_eq!(
            field(|e| e.agency_id = "bad agency".into()),
            "events[2].agency_id"
        );
        assert_eq!(
            with(|e| e.agency_id = "atlantis".into()),
            (
                "events[2].agency_id".into(),
                "unknown agency \"atlantis\"; CatalogService.ListAgencies lists them".into()
            )
        );
        assert_eq!(
            field(|e| e.dossier_id = "x".repeat(200)),
            "events[2].dossier_id"
        );
        assert_eq!(
            field(|e| e.procedure_id = "nope".into()),
            "events[2].procedure_id"
        );
        assert_eq!(
            with(|e| e.procedure_id = "hn-p1".into()).1,
            "procedure \"hn-p1\" belongs to ha-noi, not to hoa-binh or an agency above it"
        );
        assert_eq!(
            with(|e| e.occurred_at = None),
            ("events[2].occurred_at".into(), "is required".into())
        );
        assert_eq!(
            with(|e| e.occurred_at = Some(Timestamp {
                seconds: 0,
                nanos: -1
            }))
            .1,
            "is not a valid time"
        );
        assert_eq!(
            with(|e| e.occurred_at = Some(ts(NOW + time::Duration::days(1)))).1,
            "is 1d ahead of the server clock; at most 5m is allowed"
        );
        assert_eq!(
            with(|e| e.occurred_at = Some(ts(NOW - time::Duration::days(500)))).1,
            "is older than the accepted horizon of 400 days"
        );
        assert_eq!(field(|e| e.kind = None), "events[2].kind");
        assert_eq!(
            with(
                |e| e.kind = Some(pb::dossier_event::Kind::Received(pb::DossierReceived {
                    channel: 9,
                    digitized: false,
                    due_at: None
                }))
            ),
            (
                "events[2].received.channel".into(),
                "unknown channel 9; use 1 in person, 2 online, 3 postal".into()
            )
        );
        assert_eq!(
            field(|e| e.kind = Some(pb::dossier_event::Kind::Received(
                pb::DossierReceived::default()
            ))),
            "events[2].received.channel"
        );
        fn due(e: &mut pb::DossierEvent, at: OffsetDateTime) {
            e.kind = Some(pb::dossier_event::Kind::Received(pb::DossierReceived {
                channel: pb::Channel::Online as i32,
                digitized: false,
                due_at: Some(ts(at)),
            }));
        }
        assert_eq!(
            with(|e| due(e, NOW - time::Duration::SECOND)),
            (
                "events[2].received.due_at".into(),
                "is before occurred_at; a dossier cannot be due before it is received".into()
            )
        );
        assert_eq!(
            with(|e| due(e, NOW + time::Duration::days(367))),
            (
                "events[2].received.due_at".into(),
                "is more than 366 days after occurred_at".into()
            )
        );
        let mut within = valid();
        due(&mut within, NOW + time::Duration::days(366));
        assert!(decode(None, within).is_ok());
        assert_eq!(
            field(
                |e| e.kind = Some(pb::dossier_event::Kind::Resolved(pb::DossierResolved {
                    timeliness: None,
                    result_electronic: true
                }))
            ),
            "events[2].resolved.timeliness"
        );
    }

    #[test]
    fn a_correction_names_another_event_of_its_agency() {
        let retraction = |e: &mut pb::DossierEvent| {
            e.kind = Some(pb::dossier_event::Kind::Retracted(pb::Retracted {}));
        };
        let with = violation_after;
        assert_eq!(
            with(retraction),
            (
                "events[2].corrects".into(),
                "is required with retracted: the event_id of the event to take back".into()
            )
        );
        assert_eq!(
            with(|e| e.corrects = e.event_id.clone()),
            (
                "events[2].corrects".into(),
                "names this event's own event_id; a correction has an event_id of its own".into()
            )
        );
        assert_eq!(
            with(|e| e.corrects = "not an id".into()).0,
            "events[2].corrects"
        );
        let mut fix = valid();
        fix.corrects = "HS-1/received".into();
        retraction(&mut fix);
        let decoded = decode(None, fix.clone()).expect("a retraction");
        assert_eq!(decoded.kind, EventKind::Retracted);
        assert_eq!(
            decoded.corrects.as_ref().map(EventId::as_str),
            Some("HS-1/received")
        );
        assert_eq!(encode_event(decoded), fix, "forwarded as it came");
    }

    #[test]
    fn a_withdrawal_and_a_return_decode_and_forward_as_they_came() {
        for (kind, want) in [
            (
                pb::dossier_event::Kind::Withdrawn(pb::Withdrawn {}),
                EventKind::Withdrawn,
            ),
            (
                pb::dossier_event::Kind::Returned(pb::Returned {}),
                EventKind::Returned,
            ),
        ] {
            let mut event = valid();
            event.kind = Some(kind);
            let decoded = decode(None, event.clone()).expect("valid");
            assert_eq!((decoded.kind, decoded.corrects.is_none()), (want, true));
            assert_eq!(encode_event(decoded), event);
        }
    }
}
