//! Kept publications: opaque bytes ranking encoded, kept under an id, never changed nor
//! deleted, listed newest first.
//!
//! In Redis (`P` is the configured prefix; `{#pub}` is a Redis Cluster hash tag no tree
//! shares, `#` being in no agency id, so the three keys live in one hash slot and one
//! transaction touches them all):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{#pub}:b` | hash | publication id → the publication's bytes |
//! | `P:{#pub}:s` | hash | publication id → its summary's bytes (what a list shows) |
//! | `P:{#pub}:t` | sorted set | publication ids, each scored minus its `published_at` in Unix milliseconds |
//!
//! A publication is kept by one `MULTI` … `EXEC` of `HSETNX` (body), `HSETNX` (summary) and
//! `ZADD NX` (time): Redis runs the three together or none of them, so an id is in all three
//! keys or in none, whatever crashes, and the first transaction for an id wins every later
//! one (theirs change nothing). When the body's `HSETNX` did not set it, an `HGET` reads the
//! body kept before. A list is a `ZCARD` and a `ZRANGE` by index in one transaction, then
//! an `HMGET` of the summaries: the negated time makes `ZRANGE`'s ascending order newest
//! first, and Redis orders equal scores by member bytes, so ties come by id ascending, as
//! the in-memory store orders them. No script: only plain commands.

use time::OffsetDateTime;

use crate::{NewPublication, StoreError, redis_store::RedisStore};

/// Where a publication falls in the newest-first order: minus its `published_at` in Unix
/// milliseconds (saturating; any date `time` represents fits in an `f64` score exactly).
pub(crate) fn order_score(published_at: OffsetDateTime) -> i64 {
    let millis = published_at.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(-millis).unwrap_or(if millis > 0 { i64::MIN } else { i64::MAX })
}

impl RedisStore {
    /// A key of the kept publications: `P:{#pub}:<name>`.
    fn publications_key(&self, name: &str) -> String {
        format!("{}:{{#pub}}:{name}", self.prefix)
    }

    /// [`crate::CounterStore::keep_publication`] in Redis.
    pub(crate) async fn keep_publication_in_redis(
        &self,
        publication: NewPublication<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let id = publication.id;
        let bodies = self.publications_key("b");
        let mut connection = self.connection.clone();
        let (created,): (bool,) = redis::pipe()
            .atomic()
            .cmd("HSETNX")
            .arg(&bodies)
            .arg(id)
            .arg(publication.body)
            .cmd("HSETNX")
            .arg(self.publications_key("s"))
            .arg(id)
            .arg(publication.summary)
            .ignore()
            .cmd("ZADD")
            .arg(self.publications_key("t"))
            .arg("NX")
            .arg(order_score(publication.published_at))
            .arg(id)
            .ignore()
            .query_async(&mut connection)
            .await?;
        if created {
            return Ok(None);
        }
        let kept: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(&bodies)
            .arg(id)
            .query_async(&mut connection)
            .await?;
        // Never deleted: what HSETNX found is still there.
        let kept = kept.ok_or_else(|| {
            StoreError::Unexpected(format!("publication {id} vanished after it was kept"))
        })?;
        Ok(Some(kept))
    }

    /// [`crate::CounterStore::publication`] in Redis.
    pub(crate) async fn publication_in_redis(
        &self,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(redis::cmd("HGET")
            .arg(self.publications_key("b"))
            .arg(id)
            .query_async(&mut self.connection.clone())
            .await?)
    }

    /// [`crate::CounterStore::publications`] in Redis.
    pub(crate) async fn publications_in_redis(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), StoreError> {
        let times = self.publications_key("t");
        let mut connection = self.connection.clone();
        if limit == 0 {
            // `ZRANGE t <offset> <offset - 1>` would read -1 as the last member.
            let total: usize = redis::cmd("ZCARD")
                .arg(&times)
                .query_async(&mut connection)
                .await?;
            return Ok((Vec::new(), total));
        }
        let start = i64::try_from(offset).unwrap_or(i64::MAX);
        let stop = start.saturating_add(i64::try_from(limit - 1).unwrap_or(i64::MAX));
        let (total, ids): (usize, Vec<String>) = redis::pipe()
            .atomic()
            .cmd("ZCARD")
            .arg(&times)
            .cmd("ZRANGE")
            .arg(&times)
            .arg(start)
            .arg(stop)
            .query_async(&mut connection)
            .await?;
        if ids.is_empty() {
            return Ok((Vec::new(), total));
        }
        let summaries: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(self.publications_key("s"))
            .arg(&ids)
            .query_async(&mut connection)
            .await?;
        if summaries.len() != ids.len() {
            return Err(StoreError::Unexpected(format!(
                "{} summaries for {} publications",
                summaries.len(),
                ids.len()
            )));
        }
        let summaries = ids
            .iter()
            .zip(summaries)
            .map(|(id, summary)| {
                summary.ok_or_else(|| {
                    StoreError::Unexpected(format!("publication {id} is listed without a summary"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((summaries, total))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn newer_publications_score_lower_to_the_millisecond() {
        let at = datetime!(2026-12-05 07:15:17.589 UTC);
        assert_eq!(order_score(at), -1_796_454_917_589);
        assert_eq!(
            order_score(at + time::Duration::microseconds(999)),
            order_score(at),
            "within one millisecond: a tie"
        );
        assert!(order_score(at + time::Duration::milliseconds(1)) < order_score(at));
        assert_eq!(order_score(datetime!(1970-01-01 00:00 UTC)), 0);
        assert!(order_score(datetime!(1969-12-31 23:59:59 UTC)) > 0);
    }
}
