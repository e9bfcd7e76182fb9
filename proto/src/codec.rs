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

use std::{any::Any, marker::PhantomData};

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

use crate::{aggregate, ingest};

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
        let message = if buf.chunk().len() >= len {
            decode_counted(&buf.chunk()[..len])?
        } else {
            decode_counted(&buf.copy_to_bytes(len))?
        };
        buf.advance(buf.remaining());
        Ok(Some(message))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Decodes `U` from its encoded `bytes`, first refusing a batch of more than [`MAX_ITEMS`]
/// items, and making room for the items it counted (the list is not grown as it decodes).
fn decode_counted<U: Message + Default + 'static>(bytes: &[u8]) -> Result<U, Status> {
    let mut message = U::default();
    if let Some((tag, field, list)) = batch_list(&mut message) {
        let items = count_field(bytes, tag).map_err(undecodable)?;
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
    // Asked with `is` first: a borrow returned from one `downcast_mut` branch would hold the
    // message through the next.
    if message.is::<ingest::SubmitEventsRequest>() {
        let batch = message.downcast_mut::<ingest::SubmitEventsRequest>()?;
        Some((1, "events", &mut batch.events))
    } else if message.is::<aggregate::ApplyEventsRequest>() {
        let batch = message.downcast_mut::<aggregate::ApplyEventsRequest>()?;
        Some((1, "events", &mut batch.events))
    } else if message.is::<ingest::StreamEventsRequest>() {
        // Field 1 is the batch id.
        let batch = message.downcast_mut::<ingest::StreamEventsRequest>()?;
        Some((2, "events", &mut batch.events))
    } else if message.is::<ingest::ReportAssessedScoresRequest>() {
        let batch = message.downcast_mut::<ingest::ReportAssessedScoresRequest>()?;
        Some((1, "scores", &mut batch.scores))
    } else {
        let batch = message.downcast_mut::<aggregate::ApplyAssessedScoresRequest>()?;
        Some((1, "scores", &mut batch.scores))
    }
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

fn undecodable(error: impl std::fmt::Display) -> Status {
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
                |b| decode_counted::<ingest::SubmitEventsRequest>(b).map(|m| m.events.len()),
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
                |b| decode_counted::<ingest::StreamEventsRequest>(b).map(|m| m.events.len()),
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
                |b| decode_counted::<aggregate::ApplyEventsRequest>(b).map(|m| m.events.len()),
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
                    decode_counted::<ingest::ReportAssessedScoresRequest>(b).map(|m| m.scores.len())
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
                    decode_counted::<aggregate::ApplyAssessedScoresRequest>(b)
                        .map(|m| m.scores.len())
                },
            ),
        ];
        for (at_limit, past_limit, decode) in cases {
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
