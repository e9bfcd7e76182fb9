//! Change notices shared through the counter store, so that every aggregate replica can
//! tell its readers about batches any replica applied: Redis pub/sub on `P:changes` for
//! [`crate::RedisStore`], an in-process broadcast for [`crate::MemoryStore`].
//!
//! Pub/sub delivers at most once: a notice published while a subscriber's connection is
//! down is lost. The subscriber then receives [`ChangeNotice::anything`] once it has
//! subscribed again, and readers keep a periodic refresh as the safety net.

use std::time::Duration;

use futures::StreamExt;
use redis::Client;
use tokio::sync::{OnceCell, broadcast, oneshot};
use tracing::{info, warn};

use govpulse_core::{AgencyId, notice::ChangeNotice, period::parse_day};
use time::Date;

use crate::StoreError;

/// How many notices a subscriber may fall behind before it misses some (it is then told
/// it lagged, and must assume anything changed).
pub const NOTICE_BACKLOG: usize = 1024;

/// The message published for `notice`: a version line, the origin, the agencies and the
/// days, one line each, comma-separated, then the traceparent on a fifth line when there is
/// one. Agency ids and days never contain commas or newlines (ids are
/// `A-Z a-z 0-9 - _ . : /`), nor does a traceparent (hex digits and dashes). An untraced
/// notice keeps the four lines, so replicas that predate the traceparent still read it.
pub fn encode(notice: &ChangeNotice) -> String {
    let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(",");
    let mut message = format!(
        "v1\n{}\n{}\n{}",
        notice.origin,
        list(&mut notice.agencies.iter().map(ToString::to_string)),
        list(&mut notice.days.iter().map(ToString::to_string)),
    );
    if !notice.traceparent.is_empty() {
        message.push('\n');
        message.push_str(&notice.traceparent);
    }
    message
}

/// Reads a published message; `None` when it is not one.
pub fn decode(message: &str) -> Option<ChangeNotice> {
    let mut lines = message.split('\n');
    if lines.next()? != "v1" {
        return None;
    }
    let origin = lines.next()?;
    let agencies: Vec<AgencyId> = items(lines.next()?)
        .map(|id| AgencyId::parse(id).ok())
        .collect::<Option<_>>()?;
    let days: Vec<Date> = items(lines.next()?)
        .map(|day| parse_day(day).ok())
        .collect::<Option<_>>()?;
    // Optional: notices published without a trace (or by older replicas) have four lines.
    let traceparent = lines.next().unwrap_or_default();
    let traceparent_like = traceparent
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !traceparent_like || lines.next().is_some() {
        return None;
    }
    Some(ChangeNotice {
        origin: origin.into(),
        agencies: agencies.into(),
        days: days.into(),
        traceparent: traceparent.into(),
    })
}

/// The comma-separated items of a line.
fn items(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').filter(|s| !s.is_empty())
}

/// The in-process twin: every subscriber of one store hears every notice published on it.
#[derive(Debug)]
pub(crate) struct LocalNotices(broadcast::Sender<ChangeNotice>);

impl Default for LocalNotices {
    fn default() -> Self {
        Self(broadcast::channel(NOTICE_BACKLOG).0)
    }
}

impl LocalNotices {
    pub(crate) fn publish(&self, notice: &ChangeNotice) {
        // Nobody subscribed is not an error.
        let _ = self.0.send(notice.clone());
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ChangeNotice> {
        self.0.subscribe()
    }
}

/// Notices over Redis pub/sub: one subscribing connection per store, opened by the first
/// subscriber and kept (re-subscribing with backoff when it drops) for the life of the
/// process; its messages are fanned out in-process.
#[derive(Debug)]
pub(crate) struct RedisNotices {
    client: Client,
    channel: String,
    relay: OnceCell<broadcast::Sender<ChangeNotice>>,
}

impl RedisNotices {
    pub(crate) fn new(client: Client, prefix: &str) -> Self {
        Self {
            client,
            channel: format!("{prefix}:changes"),
            relay: OnceCell::new(),
        }
    }

    /// The pub/sub channel.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Subscribes, returning once Redis confirmed the subscription.
    pub(crate) async fn subscribe(&self) -> Result<broadcast::Receiver<ChangeNotice>, StoreError> {
        let sender = self
            .relay
            .get_or_try_init(|| async {
                let (sender, _) = broadcast::channel(NOTICE_BACKLOG);
                let (ready, subscribed) = oneshot::channel();
                tokio::spawn(relay(
                    self.client.clone(),
                    self.channel.clone(),
                    sender.clone(),
                    ready,
                ));
                subscribed.await.map_err(|_| {
                    StoreError::Unexpected("the notice subscriber stopped".to_owned())
                })??;
                Ok::<_, StoreError>(sender)
            })
            .await?;
        Ok(sender.subscribe())
    }
}

/// Subscribes to `channel` and passes every notice to `sender`, re-subscribing with backoff
/// when the connection drops. The first outcome goes to `ready`; a failed first attempt
/// ends the relay (the caller sees the error).
async fn relay(
    client: Client,
    channel: String,
    sender: broadcast::Sender<ChangeNotice>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    let mut delay = Duration::from_millis(100);
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(pubsub) => {
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(Ok(()));
                    }
                    None => {
                        info!(channel, "change notices subscribed again");
                        // Notices published while we were away are lost.
                        let _ = sender.send(ChangeNotice::anything());
                    }
                }
                delay = Duration::from_millis(100);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let notice = message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|m| decode(&m));
                    match notice {
                        Some(notice) => {
                            let _ = sender.send(notice);
                        }
                        None => warn!(channel, "unreadable change notice"),
                    }
                }
                warn!(channel, retry_in = ?delay, "change notice subscription dropped");
            }
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e.into()));
                    return;
                }
                warn!(channel, error = %e, retry_in = ?delay, "cannot subscribe to change notices");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn notice(traceparent: &str) -> ChangeNotice {
        let id = |raw| AgencyId::parse(raw).expect("id");
        ChangeNotice {
            origin: "agg-1".into(),
            agencies: vec![id("hoa-binh.dept-01"), id("hoa-binh")].into(),
            days: vec![date!(2026 - 08 - 15)].into(),
            traceparent: traceparent.into(),
        }
    }

    #[test]
    fn a_notice_reads_back_as_it_was_written() {
        let notice = notice(TRACEPARENT);
        assert_eq!(decode(&encode(&notice)), Some(notice));
    }

    #[test]
    fn an_untraced_notice_keeps_the_four_lines_older_replicas_read() {
        let notice = notice("");
        assert_eq!(
            encode(&notice),
            "v1\nagg-1\nhoa-binh.dept-01,hoa-binh\n2026-08-15"
        );
        assert_eq!(decode(&encode(&notice)), Some(notice));
    }

    #[test]
    fn a_notice_without_a_traceparent_line_reads_as_untraced() {
        let notice = decode("v1\nagg-2\nhoa-binh\n2026-08-15").expect("a notice");
        assert_eq!(&*notice.traceparent, "");
        assert_eq!(notice.agencies[0].as_str(), "hoa-binh");
    }

    #[test]
    fn the_anything_notice_reads_back_empty() {
        let anything = ChangeNotice::anything();
        assert_eq!(decode(&encode(&anything)), Some(anything));
    }

    #[test]
    fn foreign_messages_are_not_notices() {
        assert_eq!(decode("hello"), None);
        assert_eq!(decode("v2\na\nb\n2026-08-15"), None);
        assert_eq!(decode("v1\na\nb"), None);
        assert_eq!(decode("v1\na\nb\n15/08"), None, "not a day");
        assert_eq!(decode("v1\na\nnot an id!\n2026-08-15"), None);
        assert_eq!(decode("v1\na\nb\n2026-08-15\nnot a traceparent"), None);
        assert_eq!(
            decode(&format!("v1\na\nb\n2026-08-15\n{TRACEPARENT}\nd")),
            None
        );
    }
}
