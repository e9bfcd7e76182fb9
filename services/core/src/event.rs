//! A validated dossier event and the counters it adds.

use time::{Date, OffsetDateTime};

use crate::{
    AgencyId, DossierId, EventId, ProcedureId,
    backlog::StageEvent,
    catalog::Provision,
    counters::{Counter, CounterDelta},
    period::vietnam_day,
};

/// How a dossier arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// At a desk (national code 1).
    InPerson,
    /// Online (national code 2).
    Online,
    /// By post (national code 3).
    Postal,
}

/// Whether a resolution met its due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeliness {
    /// The due time; on time when resolved at or before it.
    DueAt(OffsetDateTime),
    /// The agency's own verdict.
    OnTime(bool),
}

/// What happened to the dossier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Received on a channel, maybe digitized, maybe with the due time given to the citizen.
    Received {
        channel: Channel,
        digitized: bool,
        due_at: Option<OffsetDateTime>,
    },
    /// Resolved, on time or not, with an electronic result or not.
    Resolved {
        timeliness: Timeliness,
        result_electronic: bool,
    },
    /// Fee paid, online or not.
    FeePaid { online: bool },
    /// Feedback given, satisfied or not.
    Feedback { satisfied: bool },
    /// Withdrawn by its owner (`rút hồ sơ`): the dossier ends without a resolution.
    Withdrawn,
    /// Returned by the agency as ineligible (`trả lại`): the dossier ends without a
    /// resolution.
    Returned,
    /// The event named by [`DossierEvent::corrects`] did not happen: take it back.
    Retracted,
}

/// One validated event: every id parsed, the time within bounds, the agency and procedure
/// known. Built only by the API edge's decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DossierEvent {
    /// The sender's event id.
    pub event_id: EventId,
    /// The agency the dossier belongs to.
    pub agency: AgencyId,
    /// The agency's dossier id.
    pub dossier: DossierId,
    /// The procedure the dossier is for.
    pub procedure: ProcedureId,
    /// When it happened.
    pub occurred_at: OffsetDateTime,
    /// What happened.
    pub kind: EventKind,
    /// For a correction: the id of the agency's earlier event that this one replaces (with
    /// its own content) or, with [`EventKind::Retracted`], takes back.
    pub corrects: Option<EventId>,
}

impl DossierEvent {
    /// The stage of its dossier this event is (each counts once), with the days the
    /// backlog needs: the Vietnam day of a reception's due time, a resolution's own day.
    /// `None` for a retraction.
    pub fn stage_event(&self) -> Option<StageEvent> {
        Some(match self.kind {
            EventKind::Received { due_at, .. } => StageEvent::Received {
                due_day: due_at.map(vietnam_day),
            },
            EventKind::Resolved { .. } => StageEvent::Resolved { day: self.day() },
            EventKind::FeePaid { .. } => StageEvent::FeePaid,
            EventKind::Feedback { .. } => StageEvent::Feedback,
            EventKind::Withdrawn => StageEvent::Withdrawn { day: self.day() },
            EventKind::Returned => StageEvent::Returned { day: self.day() },
            EventKind::Retracted => return None,
        })
    }

    /// The Vietnam local day the event counts in.
    pub fn day(&self) -> Date {
        vietnam_day(self.occurred_at)
    }

    /// The counters this event adds, given how its procedure is provided online.
    pub fn delta(&self, provision: Provision) -> CounterDelta {
        let mut increments = Vec::with_capacity(4);
        let mut online_procedure = None;
        match self.kind {
            EventKind::Received {
                channel, digitized, ..
            } => {
                increments.push(Counter::Received);
                increments.push(match channel {
                    Channel::Online => Counter::ReceivedOnline,
                    Channel::InPerson => Counter::ReceivedInPerson,
                    Channel::Postal => Counter::ReceivedPostal,
                });
                if digitized {
                    increments.push(Counter::Digitized);
                }
                let online = channel == Channel::Online;
                if provision == Provision::Full {
                    increments.push(Counter::ReceivedFullOnlineProcedure);
                    if online {
                        increments.push(Counter::ReceivedOnlineFullOnlineProcedure);
                    }
                }
                if online && provision.is_online() {
                    online_procedure = Some(self.procedure.clone());
                }
            }
            EventKind::Resolved {
                timeliness,
                result_electronic,
            } => {
                increments.push(Counter::Resolved);
                let on_time = match timeliness {
                    Timeliness::DueAt(due) => self.occurred_at <= due,
                    Timeliness::OnTime(on_time) => on_time,
                };
                if on_time {
                    increments.push(Counter::ResolvedOnTime);
                }
                if result_electronic {
                    increments.push(Counter::ResultElectronic);
                }
            }
            EventKind::FeePaid { online } => {
                increments.push(Counter::FeePaid);
                if online {
                    increments.push(Counter::FeePaidOnline);
                }
            }
            EventKind::Feedback { satisfied } => {
                increments.push(Counter::Feedback);
                if satisfied {
                    increments.push(Counter::FeedbackSatisfied);
                }
            }
            EventKind::Withdrawn => increments.push(Counter::Withdrawn),
            EventKind::Returned => increments.push(Counter::Returned),
            EventKind::Retracted => {}
        }
        CounterDelta {
            increments,
            online_procedure,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn event(kind: EventKind) -> DossierEvent {
        DossierEvent {
            event_id: EventId::parse("e1").expect("id"),
            agency: AgencyId::parse("hoa-binh").expect("id"),
            dossier: DossierId::parse("d1").expect("id"),
            procedure: ProcedureId::parse("p1").expect("id"),
            occurred_at: datetime!(2026-08-14 18:00 UTC),
            kind,
            corrects: None,
        }
    }

    /// [`event`] of a reception through `channel`.
    fn reception(
        channel: Channel,
        digitized: bool,
        due_at: Option<OffsetDateTime>,
    ) -> DossierEvent {
        event(EventKind::Received {
            channel,
            digitized,
            due_at,
        })
    }

    /// [`event`] of a resolution.
    fn resolution(timeliness: Timeliness, result_electronic: bool) -> DossierEvent {
        event(EventKind::Resolved {
            timeliness,
            result_electronic,
        })
    }

    #[test]
    fn an_event_counts_in_its_vietnam_day() {
        assert_eq!(
            event(EventKind::FeePaid { online: true }).day(),
            date!(2026 - 08 - 15)
        );
    }

    #[test]
    fn a_reception_counts_by_its_channel_and_by_how_its_procedure_is_provided() {
        use Counter::*;
        for (channel, digitized, provision, expected, online_service) in [
            (
                Channel::Online,
                true,
                Provision::Full,
                &[
                    Received,
                    ReceivedOnline,
                    Digitized,
                    ReceivedFullOnlineProcedure,
                    ReceivedOnlineFullOnlineProcedure,
                ][..],
                true,
            ),
            (
                Channel::Online,
                true,
                Provision::Partial,
                &[Received, ReceivedOnline, Digitized],
                true,
            ),
            (
                Channel::Online,
                true,
                Provision::Info,
                &[Received, ReceivedOnline, Digitized],
                false,
            ),
            (
                Channel::InPerson,
                false,
                Provision::Full,
                &[Received, ReceivedInPerson, ReceivedFullOnlineProcedure],
                false,
            ),
            (
                Channel::Postal,
                false,
                Provision::Info,
                &[Received, ReceivedPostal],
                false,
            ),
        ] {
            let case = format!("{channel:?}, digitized: {digitized}, {provision:?} procedure");
            let sent = reception(channel, digitized, None);
            let delta = sent.delta(provision);
            assert_eq!(delta.increments, expected, "{case}");
            // Only an online reception of a procedure provided online is an online service.
            let procedure = online_service.then(|| sent.procedure.clone());
            assert_eq!(delta.online_procedure, procedure, "{case}");
        }
    }

    #[test]
    fn other_events_count_as_such_whatever_their_procedure() {
        use Counter::*;
        // The time every test event happens at (see `event`).
        let due = datetime!(2026-08-14 18:00 UTC);
        let late = due - time::Duration::SECOND;
        for (sent, expected) in [
            (
                resolution(Timeliness::DueAt(due), false),
                &[Resolved, ResolvedOnTime][..],
            ),
            (resolution(Timeliness::DueAt(late), false), &[Resolved]),
            (
                resolution(Timeliness::OnTime(true), false),
                &[Resolved, ResolvedOnTime],
            ),
            (
                resolution(Timeliness::OnTime(false), true),
                &[Resolved, ResultElectronic],
            ),
            (
                event(EventKind::FeePaid { online: true }),
                &[FeePaid, FeePaidOnline],
            ),
            (event(EventKind::FeePaid { online: false }), &[FeePaid]),
            (
                event(EventKind::Feedback { satisfied: true }),
                &[Feedback, FeedbackSatisfied],
            ),
            (event(EventKind::Feedback { satisfied: false }), &[Feedback]),
            (event(EventKind::Withdrawn), &[Withdrawn]),
            (event(EventKind::Returned), &[Returned]),
            (event(EventKind::Retracted), &[]),
        ] {
            for provision in [Provision::Info, Provision::Full] {
                assert_eq!(
                    sent.delta(provision),
                    CounterDelta {
                        increments: expected.to_vec(),
                        online_procedure: None
                    },
                    "{:?}, {provision:?} procedure",
                    sent.kind
                );
            }
        }
    }

    #[test]
    fn each_event_is_a_stage_of_its_dossier_with_the_days_the_backlog_needs() {
        // 20:00 UTC is 03:00 the next day in Vietnam.
        let due = datetime!(2026-08-20 20:00 UTC);
        let received = |due_at| reception(Channel::Online, false, due_at).stage_event();
        assert_eq!(
            received(Some(due)),
            Some(StageEvent::Received {
                due_day: Some(date!(2026 - 08 - 21))
            })
        );
        assert_eq!(received(None), Some(StageEvent::Received { due_day: None }));
        let resolved = resolution(Timeliness::OnTime(true), false);
        assert_eq!(
            resolved.stage_event(),
            Some(StageEvent::Resolved {
                day: resolved.day()
            })
        );
        assert_eq!(
            event(EventKind::FeePaid { online: true }).stage_event(),
            Some(StageEvent::FeePaid)
        );
        assert_eq!(
            event(EventKind::Feedback { satisfied: true }).stage_event(),
            Some(StageEvent::Feedback)
        );
        let withdrawn = event(EventKind::Withdrawn);
        assert_eq!(
            withdrawn.stage_event(),
            Some(StageEvent::Withdrawn {
                day: withdrawn.day()
            })
        );
        assert_eq!(
            event(EventKind::Returned).stage_event(),
            Some(StageEvent::Returned {
                day: withdrawn.day()
            })
        );
        assert_eq!(event(EventKind::Retracted).stage_event(), None);
    }
}
