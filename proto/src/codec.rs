//! The codec of every govpulse service: prost's, with two changes at the edge.
//!
//! - Bytes that do not decode are the caller's fault: `INVALID_ARGUMENT`, saying what failed,
//!   never `INTERNAL` (which integrators are told to retry).
//! - A batch is counted before it is decoded: a message of 4 MiB can hold two million empty
//!   events of two bytes each, which prost would decode into hundreds of megabytes. The
//!   batch messages' repeated field is counted on the wire first, without allocating, and a
//!   message with more than [`MAX_ITEMS`] items is refused whole. The services' own batch
//!   limits (ingest's `--max-batch`, at most this) are checked after decoding, against at most
//!   this many items.

use std::{
    any::{Any, TypeId},
    marker::PhantomData,
};

use prost::{
    Message,
    bytes::Buf,
    encoding::{WireType, decode_key, decode_varint},
};
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstEncoder;

use crate::{aggregate, ingest, wire};

/// The most items a batch message may carry on the wire, whatever the service's own limit:
/// aggregate's limit per call, and the most any ingest may be configured to take.
pub const MAX_ITEMS: usize = 10_000;

/// prost's codec, with decoding errors as `INVALID_ARGUMENT` and batches counted first.
#[derive(Debug, Clone)]
pub struct GovpulseCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for GovpulseCodec<T, U> {
    fn default() -> Self {
        Self {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for GovpulseCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CountingDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CountingDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes `U`, counting a batch's items first.
#[derive(Debug, Clone)]
pub struct CountingDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default + 'static> Decoder for CountingDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // tonic hands the whole message as one contiguous buffer. Decoding from the slice
        // rather than through `DecodeBuf` saves prost a call into `BytesMut` at every field
        // (a tenth of ingest's instructions per event, docs/PERFORMANCE.md).
        let len = buf.remaining();
        let message = if keeps_bytes::<U>() {
            // A wire batch's events are slices of the body: the body is taken, not copied.
            decode_counted::<U, _>(buf.copy_to_bytes(len))?
        } else if buf.chunk().len() >= len {
            decode_counted::<U, _>(&buf.chunk()[..len])?
        } else {
            decode_counted::<U, _>(&buf.copy_to_bytes(len)[..])?
        };
        buf.advance(buf.remaining());
        Ok(Some(message))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Whether `U` keeps slices of the bytes it is decoded from ([`crate::wire`]).
fn keeps_bytes<U: 'static>() -> bool {
    let id = TypeId::of::<U>();
    id == TypeId::of::<wire::SubmitEventsWire>() || id == TypeId::of::<wire::ApplyEventsWire>()
}

/// Decodes `U` from its encoded `bytes`, first refusing a batch of more than [`MAX_ITEMS`]
/// items, and making room for the items it counted (the list is not grown as it decodes).
fn decode_counted<U, B>(bytes: B) -> Result<U, Status>
where
    U: Message + Default + 'static,
    B: Buf + AsRef<[u8]>,
{
    let mut message = U::default();
    if let Some((tag, field, list)) = batch_list(&mut message) {
        let items = count_field(bytes.as_ref(), tag).map_err(undecodable)?;
        if items > MAX_ITEMS {
            return Err(too_many(field, items));
        }
        list.reserve_room(items);
    }
    message.merge(bytes).map_err(undecodable)?;
    Ok(message)
}

/// The list of a batch message: its field's tag, its name for errors, and the list; `None`
/// for the other messages, which carry no list a caller could make long.
fn batch_list(message: &mut dyn Any) -> Option<(u32, &'static str, &mut dyn Room)> {
    // Each batch message, its list's field and tag. Asked with `is` first: a borrow returned
    // from one `downcast_mut` would hold the message through the next.
    macro_rules! lists {
        ($($message:ty => $field:ident = $tag:literal,)+) => {
            $(if message.is::<$message>() {
                let batch = message.downcast_mut::<$message>()?;
                return Some(($tag, stringify!($field), &mut batch.$field));
            })+
        };
    }
    lists! {
        ingest::SubmitEventsRequest => events = 1,
        aggregate::ApplyEventsRequest => events = 1,
        // Field 1 is the batch id.
        ingest::StreamEventsRequest => events = 2,
        wire::SubmitEventsWire => events = 1,
        wire::ApplyEventsWire => events = 1,
        ingest::ReportAssessedScoresRequest => scores = 1,
        aggregate::ApplyAssessedScoresRequest => scores = 1,
    }
    None
}

/// A list that can make room for the items counted on the wire.
trait Room {
    fn reserve_room(&mut self, items: usize);
}

impl<T> Room for Vec<T> {
    fn reserve_room(&mut self, items: usize) {
        self.reserve_exact(items);
    }
}

/// How many times field `tag` occurs at the top level of the encoded message `bytes`,
/// walking the wire format without decoding any field.
pub fn count_field(mut bytes: &[u8], tag: u32) -> Result<usize, String> {
    let mut count = 0;
    while bytes.has_remaining() {
        let (field, wire_type) = decode_key(&mut bytes).map_err(|e| e.to_string())?;
        if field == tag {
            count += 1;
        }
        let skip = match wire_type {
            WireType::Varint => {
                decode_varint(&mut bytes).map_err(|e| e.to_string())?;
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => decode_varint(&mut bytes)
                .map_err(|e| e.to_string())
                .and_then(|len| usize::try_from(len).map_err(|e| e.to_string()))?,
            WireType::StartGroup | WireType::EndGroup => {
                return Err(format!(
                    "field {field} is a group, which no govpulse message has"
                ));
            }
        };
        if skip > bytes.remaining() {
            return Err(format!("field {field} runs past the end of the message"));
        }
        bytes.advance(skip);
    }
    Ok(count)
}

/// The refusal of bytes that do not decode: `INVALID_ARGUMENT`, saying what failed.
pub(crate) fn undecodable(error: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!(
        "the request is not a valid protobuf message: {error}"
    ))
}

fn too_many(field: &str, items: usize) -> Status {
    Status::invalid_argument(format!(
        "{field} has {items} items; no batch may hold more than {MAX_ITEMS}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DossierEvent;

    #[test]
    fn a_batch_is_counted_on_the_wire_whatever_else_it_holds() {
        let events = vec![
            DossierEvent {
                event_id: "e-1".into(),
                ..Default::default()
            },
            DossierEvent::default(),
            DossierEvent {
                agency_id: "ha-noi".into(),
                ..Default::default()
            },
        ];
        let bytes = ingest::SubmitEventsRequest { events }.encode_to_vec();
        assert_eq!(count_field(&bytes, 1), Ok(3));
        // Two million empty events are four megabytes of `0a 00`.
        let empty = [0x0a, 0x00].repeat(2_000_000);
        assert_eq!(count_field(&empty, 1), Ok(2_000_000));
        // A length running past the end is an error, not a panic.
        assert!(count_field(&[0x0a, 0x05, 0x01], 1).is_err());
    }

    #[test]
    fn every_batch_message_is_refused_whole_past_the_limit_and_decoded_up_to_it() {
        let events = |n| vec![DossierEvent::default(); n];
        let scores = |n| vec![crate::event::AssessedScore::default(); n];
        // A message at the limit, one past it, and how many items decoding one gives.
        type Decoded = fn(&[u8]) -> Result<usize, Status>;
        let cases: Vec<(Vec<u8>, Vec<u8>, Decoded)> = vec![
            (
                ingest::SubmitEventsRequest {
                    events: events(MAX_ITEMS),
                }
                .encode_to_vec(),
                ingest::SubmitEventsRequest {
                    events: events(MAX_ITEMS + 1),
                }
                .encode_to_vec(),
                |b| decode_counted::<ingest::SubmitEventsRequest, _>(b).map(|m| m.events.len()),
            ),
            (
                ingest::StreamEventsRequest {
                    batch_id: 7,
                    events: events(MAX_ITEMS),
                }
                .encode_to_vec(),
                ingest::StreamEventsRequest {
                    batch_id: 7,
                    events: events(MAX_ITEMS + 1),
                }
                .encode_to_vec(),
                |b| decode_counted::<ingest::StreamEventsRequest, _>(b).map(|m| m.events.len()),
            ),
            (
                aggregate::ApplyEventsRequest {
                    events: events(MAX_ITEMS),
                    rejected_upstream: Vec::new(),
                }
                .encode_to_vec(),
                aggregate::ApplyEventsRequest {
                    events: events(MAX_ITEMS + 1),
                    rejected_upstream: Vec::new(),
                }
                .encode_to_vec(),
                |b| decode_counted::<aggregate::ApplyEventsRequest, _>(b).map(|m| m.events.len()),
            ),
            (
                ingest::ReportAssessedScoresRequest {
                    scores: scores(MAX_ITEMS),
                }
                .encode_to_vec(),
                ingest::ReportAssessedScoresRequest {
                    scores: scores(MAX_ITEMS + 1),
                }
                .encode_to_vec(),
                |b| {
                    decode_counted::<ingest::ReportAssessedScoresRequest, _>(b)
                        .map(|m| m.scores.len())
                },
            ),
            (
                aggregate::ApplyAssessedScoresRequest {
                    scores: scores(MAX_ITEMS),
                }
                .encode_to_vec(),
                aggregate::ApplyAssessedScoresRequest {
                    scores: scores(MAX_ITEMS + 1),
                }
                .encode_to_vec(),
                |b| {
                    decode_counted::<aggregate::ApplyAssessedScoresRequest, _>(b)
                        .map(|m| m.scores.len())
                },
            ),
        ];
        // The wire batches are read from the same bytes as the messages they stand for.
        let (submit, apply) = (&cases[0], &cases[2]);
        let wire_cases: Vec<(Vec<u8>, Vec<u8>, Decoded)> = vec![
            (submit.0.clone(), submit.1.clone(), |b| {
                decode_counted::<wire::SubmitEventsWire, _>(prost::bytes::Bytes::copy_from_slice(b))
                    .map(|m| m.events.len())
            }),
            (apply.0.clone(), apply.1.clone(), |b| {
                decode_counted::<wire::ApplyEventsWire, _>(prost::bytes::Bytes::copy_from_slice(b))
                    .map(|m| m.events.len())
            }),
        ];
        for (at_limit, past_limit, decode) in cases.into_iter().chain(wire_cases) {
            assert_eq!(decode(&at_limit).ok(), Some(MAX_ITEMS));
            let refused = decode(&past_limit).expect_err("past the limit");
            assert_eq!(refused.code(), tonic::Code::InvalidArgument);
            assert!(
                refused.message().contains("10001 items"),
                "{}",
                refused.message()
            );
        }
    }

    #[test]
    fn every_rpc_is_a_known_method_path() {
        let paths = crate::method_paths();
        assert!(paths.contains(&"/govpulse.ingest.v1.IngestService/SubmitEvents".to_owned()));
        assert!(paths.contains(&"/govpulse.ranking.v1.RankingService/WatchRanking".to_owned()));
        assert!(paths.len() >= 15, "{paths:?}");
    }
}
