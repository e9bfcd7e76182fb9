//! The event batches as their bytes: what ingest and aggregate serve `SubmitEvents` and
//! `ApplyEvents` with, so that an event is decoded once per hop and forwarded as it came.
//!
//! - [`SubmitEventsWire`] and [`ApplyEventsWire`] are `SubmitEventsRequest` and
//!   `ApplyEventsRequest` with each event kept as its encoded bytes: the same wire format (an
//!   embedded message and a `bytes` field are both length-delimited), decoded without copying
//!   (the events are slices of the call's body) and encoded by copying the bytes as they are.
//!   Ingest forwards the events it accepted this way instead of encoding them again.
//! - [`EventView`] is a `DossierEvent` read from its bytes with its strings borrowed from
//!   them: no allocation for an event's four ids. What it reads is exactly what prost reads
//!   (the same functions decode the time and the kind; anything unusual, and every error, is
//!   left to prost itself, so a refusal says what prost says).

use std::borrow::Cow;

use prost::{DecodeError, Message, bytes::Bytes, encoding::decode_varint};

use tonic::Status;

use crate::{
    Timestamp, aggregate,
    codec::undecodable,
    event::{
        DossierEvent, DossierReceived, DossierResolved, FeePaid, FeedbackGiven, Retracted,
        Returned, Withdrawn, dossier_event::Kind, dossier_resolved::Timeliness,
    },
};

/// The path of `IngestService.SubmitEvents`, which ingest serves with [`SubmitEventsWire`]
/// on a route of its own (and the load generator calls with a batch encoded once).
pub const SUBMIT_EVENTS: &str = "/govpulse.ingest.v1.IngestService/SubmitEvents";

/// The path of `AggregateService.ApplyEvents`, which aggregate serves with
/// [`ApplyEventsWire`] and ingest calls with one.
pub const APPLY_EVENTS: &str = "/govpulse.aggregate.v1.AggregateService/ApplyEvents";

/// `govpulse.ingest.v1.SubmitEventsRequest` with its events as their encodings.
#[derive(Clone, PartialEq, Message)]
pub struct SubmitEventsWire {
    /// Each `DossierEvent`'s bytes, in order: slices of the call's body.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub events: Vec<Bytes>,
}

/// `govpulse.aggregate.v1.ApplyEventsRequest` with its events as their encodings: what
/// ingest sends (the bytes its callers sent) and what aggregate reads.
#[derive(Clone, PartialEq, Message)]
pub struct ApplyEventsWire {
    /// Each `DossierEvent`'s bytes, in order.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub events: Vec<Bytes>,
    /// As `ApplyEventsRequest.rejected_upstream`.
    #[prost(message, repeated, tag = "2")]
    pub rejected_upstream: Vec<aggregate::AgencyRejections>,
}

/// Reads every event of a wire batch, in order. Bytes that do not decode refuse the batch
/// whole, as the codec refuses a message it cannot decode: `INVALID_ARGUMENT`, naming the
/// event (`events[3]: …`).
pub fn read_events(events: &[Bytes]) -> Result<Vec<EventView<'_>>, Status> {
    let mut views = Vec::with_capacity(events.len());
    for (i, bytes) in events.iter().enumerate() {
        let view =
            EventView::decode(bytes).map_err(|e| undecodable(format!("events[{i}]: {e}")))?;
        views.push(view);
    }
    Ok(views)
}

/// A `DossierEvent` whose strings are borrowed from its bytes (or owned, when it was
/// decoded as a message first: [`EventView::from`]). Fields as `DossierEvent`'s.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventView<'a> {
    /// `event_id`.
    pub event_id: Cow<'a, str>,
    /// `agency_id`.
    pub agency_id: Cow<'a, str>,
    /// `dossier_id`.
    pub dossier_id: Cow<'a, str>,
    /// `procedure_id`.
    pub procedure_id: Cow<'a, str>,
    /// `occurred_at`.
    pub occurred_at: Option<Timestamp>,
    /// `corrects`.
    pub corrects: Cow<'a, str>,
    /// `kind`.
    pub kind: Option<Kind>,
}

impl<'a> EventView<'a> {
    /// Reads an encoded `DossierEvent`, as `DossierEvent::decode` would.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        match Self::borrowed(bytes) {
            Some(view) => Ok(view),
            // Whatever the borrowing read does not take plainly (every error above all) is
            // prost's to decode or to refuse, in its own words.
            None => DossierEvent::decode(bytes).map(Self::from),
        }
    }

    /// The event read with its strings borrowed, or `None` where prost must decide: an
    /// error, a wire type no field of the event has, or a message field given twice (which
    /// prost merges).
    fn borrowed(mut buf: &'a [u8]) -> Option<Self> {
        let mut view = Self::default();
        while !buf.is_empty() {
            let (tag, value) = field(&mut buf)?;
            let text = match (tag, value) {
                (1, Value::Bytes(bytes)) => (&mut view.event_id, bytes),
                (2, Value::Bytes(bytes)) => (&mut view.agency_id, bytes),
                (3, Value::Bytes(bytes)) => (&mut view.dossier_id, bytes),
                (4, Value::Bytes(bytes)) => (&mut view.procedure_id, bytes),
                (6, Value::Bytes(bytes)) => (&mut view.corrects, bytes),
                (5, Value::Bytes(bytes)) if view.occurred_at.is_none() => {
                    view.occurred_at = Some(timestamp(bytes)?);
                    continue;
                }
                (10..=16, Value::Bytes(bytes)) if view.kind.is_none() => {
                    view.kind = Some(kind(tag, bytes)?);
                    continue;
                }
                (1..=6 | 10..=16, _) => return None,
                // A field this version does not know, skipped as prost skips it.
                _ => continue,
            };
            // A string: the last occurrence wins, as in prost.
            *text.0 = Cow::Borrowed(std::str::from_utf8(text.1).ok()?);
        }
        Some(view)
    }
}

/// A field's value, of the two wire types an event's fields have.
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The next field of `buf`: its tag and value; `None` for an error or another wire type.
#[inline]
fn field<'a>(buf: &mut &'a [u8]) -> Option<(u32, Value<'a>)> {
    // A key is at most 32 bits (prost refuses a longer one); tags are 1 to 2^29 - 1 and the
    // wire type is the key's last three bits.
    let key = u32::try_from(varint(buf)?).ok()?;
    let tag = Some(key >> 3).filter(|tag| *tag > 0)?;
    let value = match key & 7 {
        0 => Value::Varint(varint(buf)?),
        2 => {
            let len = usize::try_from(varint(buf)?).ok()?;
            let (bytes, rest) = buf.split_at_checked(len)?;
            *buf = rest;
            Value::Bytes(bytes)
        }
        _ => return None,
    };
    Some((tag, value))
}

/// A varint: one byte for the keys, lengths and flags of nearly every event, else prost's.
/// Inlined, the rest apart: an event reads about 19, and the call cost as much as the byte.
#[inline(always)]
fn varint(buf: &mut &[u8]) -> Option<u64> {
    match buf.split_first() {
        Some((&byte, rest)) if byte < 0x80 => {
            *buf = rest;
            Some(u64::from(byte))
        }
        _ => longer_varint(buf),
    }
}

/// A varint of more than one byte (a time's seconds), or none, as prost reads it.
fn longer_varint(buf: &mut &[u8]) -> Option<u64> {
    decode_varint(buf).ok()
}

/// A `google.protobuf.Timestamp` read from its bytes (int64 and int32 as prost reads them).
fn timestamp(mut buf: &[u8]) -> Option<Timestamp> {
    let mut at = Timestamp::default();
    while !buf.is_empty() {
        match field(&mut buf)? {
            (1, Value::Varint(seconds)) => at.seconds = seconds as i64,
            (2, Value::Varint(nanos)) => at.nanos = nanos as i32,
            (1 | 2, _) => return None,
            _ => {}
        }
    }
    Some(at)
}

/// The event's kind from the field `tag` (10 to 16) and its message's bytes.
fn kind(tag: u32, mut buf: &[u8]) -> Option<Kind> {
    let mut kind = match tag {
        10 => Kind::Received(DossierReceived::default()),
        11 => Kind::Resolved(DossierResolved::default()),
        12 => Kind::FeePaid(FeePaid::default()),
        13 => Kind::Feedback(FeedbackGiven::default()),
        14 => Kind::Retracted(Retracted {}),
        15 => Kind::Withdrawn(Withdrawn {}),
        _ => Kind::Returned(Returned {}),
    };
    while !buf.is_empty() {
        let (tag, value) = field(&mut buf)?;
        match (&mut kind, tag, value) {
            (Kind::Received(received), 1, Value::Varint(channel)) => {
                received.channel = channel as i32;
            }
            (Kind::Received(received), 2, Value::Varint(digitized)) => {
                received.digitized = digitized != 0;
            }
            (Kind::Received(received), 3, Value::Bytes(due)) if received.due_at.is_none() => {
                received.due_at = Some(timestamp(due)?);
            }
            (Kind::Resolved(resolved), 1, Value::Bytes(due)) if resolved.timeliness.is_none() => {
                resolved.timeliness = Some(Timeliness::DueAt(timestamp(due)?));
            }
            (Kind::Resolved(resolved), 2, Value::Varint(on_time))
                if resolved.timeliness.is_none() =>
            {
                resolved.timeliness = Some(Timeliness::OnTime(on_time != 0));
            }
            (Kind::Resolved(resolved), 3, Value::Varint(electronic)) => {
                resolved.result_electronic = electronic != 0;
            }
            (Kind::FeePaid(fee), 1, Value::Varint(online)) => fee.online = online != 0,
            (Kind::Feedback(feedback), 1, Value::Varint(satisfied)) => {
                feedback.satisfied = satisfied != 0;
            }
            // A field of the kind given twice or with another wire type is prost's to read.
            (Kind::Received(_), 1..=3, _)
            | (Kind::Resolved(_), 1..=3, _)
            | (Kind::FeePaid(_) | Kind::Feedback(_), 1, _) => return None,
            _ => {}
        }
    }
    Some(kind)
}

impl From<DossierEvent> for EventView<'_> {
    /// The decoded message's strings, moved.
    fn from(event: DossierEvent) -> Self {
        Self {
            event_id: Cow::Owned(event.event_id),
            agency_id: Cow::Owned(event.agency_id),
            dossier_id: Cow::Owned(event.dossier_id),
            procedure_id: Cow::Owned(event.procedure_id),
            occurred_at: event.occurred_at,
            corrects: Cow::Owned(event.corrects),
            kind: event.kind,
        }
    }
}

impl From<EventView<'_>> for DossierEvent {
    fn from(view: EventView<'_>) -> Self {
        Self {
            event_id: view.event_id.into_owned(),
            agency_id: view.agency_id.into_owned(),
            dossier_id: view.dossier_id.into_owned(),
            procedure_id: view.procedure_id.into_owned(),
            occurred_at: view.occurred_at,
            corrects: view.corrects.into_owned(),
            kind: view.kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::SubmitEventsRequest;

    fn events() -> Vec<DossierEvent> {
        let at = |seconds| Some(Timestamp { seconds, nanos: 7 });
        let events = vec![
            DossierEvent {
                event_id: "hs-1:rcv".into(),
                agency_id: "ha-noi".into(),
                dossier_id: "hs-1".into(),
                procedure_id: "ha-noi.p01".into(),
                occurred_at: at(1_780_000_000),
                corrects: String::new(),
                kind: Some(Kind::Received(DossierReceived {
                    channel: 2,
                    digitized: true,
                    due_at: at(1_780_400_000),
                })),
            },
            DossierEvent {
                event_id: "hs-1:res".into(),
                agency_id: "ha-noi".into(),
                dossier_id: "hs-1".into(),
                procedure_id: "ha-noi.p01".into(),
                occurred_at: at(1_780_300_000),
                corrects: "hs-1:res-old".into(),
                kind: Some(Kind::Resolved(DossierResolved {
                    timeliness: Some(Timeliness::OnTime(true)),
                    result_electronic: true,
                })),
            },
            DossierEvent::default(),
        ];
        let other_kinds = [
            Kind::Resolved(DossierResolved {
                timeliness: Some(Timeliness::DueAt(Timestamp {
                    seconds: -5,
                    nanos: -1,
                })),
                result_electronic: false,
            }),
            Kind::FeePaid(FeePaid { online: true }),
            Kind::Feedback(FeedbackGiven { satisfied: true }),
            Kind::Retracted(Retracted {}),
            Kind::Withdrawn(Withdrawn {}),
            Kind::Returned(Returned {}),
        ];
        let mut events = events;
        events.extend(other_kinds.into_iter().map(|kind| DossierEvent {
            event_id: "ü-1".into(),
            kind: Some(kind),
            occurred_at: at(i64::MAX),
            ..DossierEvent::default()
        }));
        events
    }

    /// What prost makes of `bytes`, and what the view makes of them, as messages.
    fn both(bytes: &[u8]) -> (Result<DossierEvent, String>, Result<DossierEvent, String>) {
        (
            DossierEvent::decode(bytes).map_err(|e| e.to_string()),
            EventView::decode(bytes)
                .map(DossierEvent::from)
                .map_err(|e| e.to_string()),
        )
    }

    #[test]
    fn a_view_reads_what_prost_reads_and_borrows_its_strings() {
        for event in events() {
            let bytes = event.encode_to_vec();
            let view = EventView::decode(&bytes).expect("decodes");
            assert!(matches!(view.event_id, Cow::Borrowed(_)) || event.event_id.is_empty());
            assert_eq!(DossierEvent::from(view), event);
        }
    }

    #[test]
    fn repeated_fields_unknown_fields_and_merged_kinds_read_as_prost_reads_them() {
        let events = events();
        let (first, second) = (&events[0], &events[1]);
        // Two events end to end: the later strings win, the times and kinds merge.
        let mut twice = first.encode_to_vec();
        twice.extend(second.encode_to_vec());
        // An unknown varint field (99), an unknown length-delimited one (100), a fixed64 (101).
        twice.extend([0x98, 0x06, 0x05]);
        twice.extend([0xa2, 0x06, 0x02, b'h', b'i']);
        twice.extend([0xa9, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
        let (prost, view) = both(&twice);
        assert!(prost.is_ok());
        assert_eq!(prost, view);
        // Every pair of events end to end (kinds merged or replaced), and each with unknown
        // fields inside its kind and its time.
        for a in &events {
            for b in &events {
                let mut pair = a.encode_to_vec();
                pair.extend(b.encode_to_vec());
                let (prost, view) = both(&pair);
                assert_eq!(prost, view);
            }
        }
        // Keys past 32 bits, tag 0 and the wire types 6 and 7 are refused as prost refuses them.
        let long_key = [0x80, 0x80, 0x80, 0x80, 0x20, 0x01];
        for bad in [&long_key[..], &[0x00, 0x01], &[0x0e, 0x01], &[0x0f, 0x01]] {
            let (prost, view) = both(bad);
            assert!(prost.is_err(), "{bad:?}");
            assert_eq!(prost, view);
        }
        // Field 10 (received) holding field 99 = 5, then field 5 (occurred_at) holding 99 = 5.
        let unknown_inside = [0x52, 0x03, 0x98, 0x06, 0x05, 0x2a, 0x03, 0x98, 0x06, 0x05];
        let (prost, view) = both(&unknown_inside);
        assert!(prost.is_ok());
        assert_eq!(prost, view);
    }

    #[test]
    fn every_prefix_and_every_flipped_byte_reads_or_fails_as_prost() {
        for event in events() {
            let bytes = event.encode_to_vec();
            for end in 0..=bytes.len() {
                let (prost, view) = both(&bytes[..end]);
                assert_eq!(prost, view, "prefix of {end} bytes");
            }
            for at in 0..bytes.len() {
                for flip in [0x01, 0x07, 0x80, 0xff] {
                    let mut changed = bytes.clone();
                    changed[at] ^= flip;
                    let (prost, view) = both(&changed);
                    assert_eq!(prost, view, "byte {at} ^ {flip:#x}");
                }
            }
        }
        // A string that is not UTF-8 is prost's refusal, word for word.
        let (prost, view) = both(&[0x0a, 0x02, 0xc3, 0x28]);
        assert!(prost.is_err());
        assert_eq!(prost, view);
    }

    #[test]
    fn the_paths_served_from_bytes_are_rpcs_of_the_protos() {
        let paths = crate::method_paths();
        for path in [SUBMIT_EVENTS, APPLY_EVENTS] {
            assert!(paths.iter().any(|p| p == path), "{path} in {paths:?}");
        }
    }

    #[test]
    fn the_wire_batches_are_the_batch_messages_byte_for_byte() {
        let events = events();
        let request = SubmitEventsRequest {
            events: events.clone(),
        };
        let bytes = Bytes::from(request.encode_to_vec());
        let wire = SubmitEventsWire::decode(bytes.clone()).expect("decodes");
        assert_eq!(wire.events.len(), events.len());
        for (raw, event) in wire.events.iter().zip(&events) {
            assert_eq!(raw.as_ref(), event.encode_to_vec());
        }
        assert_eq!(wire.encode_to_vec(), bytes.as_ref());

        let rejected_upstream = vec![aggregate::AgencyRejections {
            agency_id: "ha-noi".into(),
            count: 3,
        }];
        let apply = ApplyEventsWire {
            events: wire.events,
            rejected_upstream: rejected_upstream.clone(),
        };
        let decoded =
            aggregate::ApplyEventsRequest::decode(apply.encode_to_vec().as_slice()).expect("ok");
        assert_eq!(decoded.events, events);
        assert_eq!(decoded.rejected_upstream, rejected_upstream);
    }
}
