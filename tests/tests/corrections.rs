//! Corrections end to end, through ingest over gRPC: a correction of a reception's channel
//! moves the online rate of every period containing its day exactly; resent, it is a
//! duplicate; a correction naming an event its agency never sent changes nothing; a
//! retraction of every event brings every count back to what it was before them. A withdrawn
//! or returned dossier stays received, leaves the backlog and counts in no resolution
//! figure; a dossier ends once; a withdrawal retracted reopens it. (The JSON form is the
//! integration guide's examples 7.6 and 7.7, run by `integration_guide.rs`.)

use std::time::Duration;

use govpulse_core::{Bucket, period::VIETNAM};
use govpulse_e2e::{Deployment, fraction, received, resolved, statuses, two_days_ago_noon};
use govpulse_proto::{
    Timestamp,
    aggregate::{Counters, WatchChangesRequest},
    event::{
        DossierEvent, DossierReceived, OutcomeStatus, Retracted, Returned, Withdrawn,
        dossier_event::Kind,
    },
};
use time::OffsetDateTime;

/// A correction of `target` (an event of `agency` made by [`received`]) saying it was
/// received online or not.
fn corrected(id: &str, target: &str, agency: &str, online: bool) -> DossierEvent {
    let at = two_days_ago_noon();
    DossierEvent {
        dossier_id: format!("HS-{target}"),
        corrects: target.to_owned(),
        ..received(id, agency, at, online)
    }
}

/// A retraction of `target`.
fn retracted(id: &str, target: &str, agency: &str) -> DossierEvent {
    DossierEvent {
        kind: Some(Kind::Retracted(Retracted {})),
        ..corrected(id, target, agency, false)
    }
}

/// The day, month, quarter and year of the events, as periods.
fn periods() -> [String; 4] {
    Bucket::containing(two_days_ago_noon().to_offset(VIETNAM).date()).map(Bucket::label)
}

/// (received online, received, received in person) of `agency` in each of [`periods`].
async fn receptions(deployment: &Deployment, agency: &str) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    for period in periods() {
        let response = deployment
            .get_metrics(agency, &period, &["online-dossier-rate"])
            .await
            .expect("metrics");
        let counters = response.counters.expect("counters");
        let rate = response.metrics[0].rate.as_ref();
        assert_eq!(
            fraction(rate),
            (counters.received > 0).then_some((counters.received_online, counters.received)),
            "the rate is the counters' over {period}"
        );
        out.push((
            counters.received_online,
            counters.received,
            counters.received_in_person,
        ));
    }
    out
}

/// Ha Noi's receptions stand at `ha_noi` in every period, and Hai Phong's one online
/// reception is untouched by Ha Noi's corrections.
async fn both_stand(deployment: &Deployment, ha_noi: (u64, u64, u64)) {
    assert_eq!(receptions(deployment, "ha-noi").await, vec![ha_noi; 4]);
    assert_eq!(
        receptions(deployment, "hai-phong").await,
        vec![(1, 1, 0); 4]
    );
}

async fn submit(deployment: &Deployment, events: Vec<DossierEvent>) -> Vec<OutcomeStatus> {
    statuses(&deployment.submit(events).await.outcomes)
}

#[tokio::test]
async fn corrections_move_every_period_exactly_and_retractions_take_everything_back() {
    let deployment = Deployment::start_alone("corrections").await;
    let at = two_days_ago_noon();
    deployment
        .accept_all(vec![
            received("hn-1", "ha-noi", at, false),
            received("hn-2", "ha-noi", at, false),
            received("hn-3", "ha-noi", at, true),
            received("hp-1", "hai-phong", at, true),
        ])
        .await;
    assert_eq!(receptions(&deployment, "ha-noi").await, vec![(1, 3, 2); 4]);

    // hn-1 was in fact online: every period of its day moves by exactly one, and live
    // rankings of any period are told (the corrected event's day is the store's to know).
    let mut changes = deployment
        .aggregate()
        .watch_changes(WatchChangesRequest {})
        .await
        .expect("watch changes")
        .into_inner();
    let fix = corrected("hn-1/fix", "hn-1", "ha-noi", true);
    assert_eq!(
        submit(&deployment, vec![fix.clone()]).await,
        [OutcomeStatus::Accepted]
    );
    let notice = tokio::time::timeout(Duration::from_secs(10), changes.message())
        .await
        .expect("a notice within 10 s")
        .expect("the stream")
        .expect("a notice");
    assert!(notice.agency_ids.contains(&"ha-noi".to_owned()));
    assert!(notice.days.is_empty(), "any day: {:?}", notice.days);
    assert_eq!(receptions(&deployment, "ha-noi").await, vec![(2, 3, 1); 4]);
    // Resent (a retry), and a correction of an event Ha Noi never sent (Hai Phong's id):
    // nothing moves.
    let response = deployment
        .submit(vec![fix, corrected("hn-x/fix", "hp-1", "ha-noi", false)])
        .await;
    assert_eq!(
        statuses(&response.outcomes),
        [OutcomeStatus::Duplicate, OutcomeStatus::Rejected]
    );
    assert_eq!(response.outcomes[1].field, "events[1].corrects");
    assert!(
        response.outcomes[1]
            .reason
            .starts_with("no event hp-1 of ha-noi is counted"),
        "{}",
        response.outcomes[1].reason
    );
    both_stand(&deployment, (2, 3, 1)).await;

    // Every event of Ha Noi retracted, the corrected one included: nothing is left of them.
    assert_eq!(
        submit(
            &deployment,
            vec![
                retracted("hn-1/gone", "hn-1", "ha-noi"),
                retracted("hn-2/gone", "hn-2", "ha-noi"),
                retracted("hn-3/gone", "hn-3", "ha-noi"),
            ]
        )
        .await,
        vec![OutcomeStatus::Accepted; 3]
    );
    both_stand(&deployment, (0, 0, 0)).await;
    // A retracted event stays retracted.
    assert_eq!(
        submit(
            &deployment,
            vec![corrected("hn-1/again", "hn-1", "ha-noi", true)]
        )
        .await,
        [OutcomeStatus::Rejected]
    );
    assert_eq!(receptions(&deployment, "ha-noi").await, vec![(0, 0, 0); 4]);
    deployment.stop().await;
}

/// What `agency` counts from `first` to today, Vietnam time: its counters, its backlog now,
/// and its on-time rate as (numerator, denominator).
async fn figures(
    deployment: &Deployment,
    agency: &str,
    first: OffsetDateTime,
) -> (Counters, u64, Option<(u64, u64)>) {
    let today = OffsetDateTime::now_utc().to_offset(VIETNAM).date();
    let period = format!("{}..{today}", first.to_offset(VIETNAM).date());
    let response = deployment
        .get_metrics(agency, &period, &["on-time-rate"])
        .await
        .expect("metrics");
    (
        response.counters.expect("counters"),
        response.open_past_due,
        fraction(response.metrics[0].rate.as_ref()),
    )
}

/// An event of dossier `HS-<dossier>` of Ha Noi (as [`received`] makes them) at `at`.
fn of_dossier(id: &str, dossier: &str, at: OffsetDateTime, kind: Kind) -> DossierEvent {
    DossierEvent {
        event_id: id.to_owned(),
        dossier_id: format!("HS-{dossier}"),
        kind: Some(kind),
        ..received(id, "ha-noi", at, true)
    }
}

#[tokio::test]
async fn a_withdrawn_or_returned_dossier_stays_received_leaves_the_backlog_and_ends_once() {
    let deployment = Deployment::start_alone("withdrawals").await;
    let at = two_days_ago_noon();
    let received_at = at - time::Duration::days(8);
    let due_at = at - time::Duration::days(3);
    // hn-w received online 10 days ago, due 5 days ago: open past due.
    let reception = DossierEvent {
        kind: Some(Kind::Received(DossierReceived {
            channel: govpulse_proto::event::Channel::Online.into(),
            digitized: true,
            due_at: Some(Timestamp {
                seconds: due_at.unix_timestamp(),
                nanos: 0,
            }),
        })),
        ..received("hn-w", "ha-noi", received_at, true)
    };
    deployment
        .accept_all(vec![
            reception,
            received("hn-r", "ha-noi", received_at, false),
        ])
        .await;
    let (counters, backlog, on_time) = figures(&deployment, "ha-noi", received_at).await;
    assert_eq!(
        (
            counters.received,
            counters.received_online,
            backlog,
            on_time
        ),
        (2, 1, 1, Some((0, 1))),
        "open past due: late in the on-time rate"
    );

    // Withdrawn two days ago, and hn-r returned: both stay received; hn-w leaves the
    // backlog; neither is a resolution.
    let withdrawal = of_dossier("hn-w/withdrawn", "hn-w", at, Kind::Withdrawn(Withdrawn {}));
    assert_eq!(
        submit(
            &deployment,
            vec![
                withdrawal.clone(),
                of_dossier("hn-r/returned", "hn-r", at, Kind::Returned(Returned {}))
            ]
        )
        .await,
        vec![OutcomeStatus::Accepted; 2]
    );
    let (counters, backlog, on_time) = figures(&deployment, "ha-noi", received_at).await;
    assert_eq!(
        (
            counters.received,
            counters.received_online,
            counters.withdrawn,
            counters.returned,
            counters.resolved,
            backlog,
            on_time
        ),
        (2, 1, 1, 1, 0, 0, None),
        "received twice, withdrawn once, returned once, no resolution, nothing open"
    );

    // It ended: a resolution under a new id is not counted, and says so.
    let late_resolution = DossierEvent {
        dossier_id: "HS-hn-w".into(),
        ..resolved("hn-w/resolved", "ha-noi", at, false)
    };
    let response = deployment.submit(vec![late_resolution.clone()]).await;
    assert_eq!(statuses(&response.outcomes), [OutcomeStatus::Conflict]);
    assert_eq!(response.outcomes[0].field, "events[0].dossier_id");
    assert!(
        response.outcomes[0]
            .reason
            .contains("already has a withdrawal counted")
            && response.outcomes[0].reason.contains("a dossier ends once"),
        "{}",
        response.outcomes[0].reason
    );

    // The withdrawal was a mistake: retracted, the dossier is open past due again, and the
    // resolution, sent again, counts (late).
    let retraction = DossierEvent {
        corrects: withdrawal.event_id.clone(),
        ..of_dossier(
            "hn-w/withdrawn/undo",
            "hn-w",
            at,
            Kind::Retracted(Retracted {}),
        )
    };
    assert_eq!(
        submit(&deployment, vec![retraction]).await,
        [OutcomeStatus::Accepted]
    );
    let (counters, backlog, _) = figures(&deployment, "ha-noi", received_at).await;
    assert_eq!(
        (counters.withdrawn, counters.corrected, backlog),
        (0, 1, 1),
        "open again, and the day knows a correction changed it"
    );
    assert_eq!(
        submit(&deployment, vec![late_resolution]).await,
        [OutcomeStatus::Accepted]
    );
    let (counters, backlog, on_time) = figures(&deployment, "ha-noi", received_at).await;
    assert_eq!(
        (counters.resolved, counters.returned, backlog, on_time),
        (1, 1, 0, Some((0, 1)))
    );
    deployment.stop().await;
}
