//! Alerts end to end: each kind of rule fires and clears on events sent through ingest, seen
//! in WatchAlerts within 1 s of the event that causes it (for silence: of the moment the
//! allowed silence ends), with the figures behind it, in GetAlerts, the Server-Sent Events
//! route and ranking's `/metrics`; a stream resumes by revision; the rules file reloads, and
//! a broken version keeps the rules in force and says why.

use std::{collections::BTreeMap, path::Path, time::Duration};

use govpulse_e2e::{
    Deployment, Options,
    http::open_events,
    prometheus::{sample, scrape},
    received, scratch, ts, write_ahead,
};
use govpulse_edge::convert::moment_from_proto;
use govpulse_proto::{
    event::DossierEvent,
    ranking::{
        Alert, AlertRulesStatus, AlertState, GetAlertsRequest, WatchAlertsRequest,
        WatchAlertsResponse, watch_alerts_response::Event,
    },
};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tonic::Streaming;

/// How soon an alert must show after the event (or the moment) that causes it.
const WITHIN: Duration = Duration::from_secs(1);

/// The allowed silence of the silent rule.
const SILENCE_SECS: i64 = 3;

/// An alert's rule and agency: what the alerts are told apart by.
type Alerting = (&'static str, &'static str);

/// The alerts the tests cause, one of each rule of [`rules`].
const BELOW_TARGET: Alerting = ("below-target", "ha-noi");
const DROP: Alerting = ("drop", "hai-phong");
const REJECTED: Alerting = ("rejected", "da-nang");
const SILENT: Alerting = ("silent", "can-tho");

/// One rule of each kind, each on its own province (the silent rule sees every province
/// that reported, which this test ignores except for can-tho).
fn rules(rejected_for: &str) -> String {
    format!(
        r#"
[[rules]]
name = "silent"
kind = "silent"
block = "province"
after = "{SILENCE_SECS}s"
severity = "critical"

[[rules]]
name = "below-target"
kind = "below-target"
block = "province"
metric = "online-dossier-rate"
period = "ytd"

[[rules]]
name = "drop"
kind = "weekly-drop"
block = "province"
metric = "online-dossier-rate"
points = 20
min_volume = 5

[[rules]]
name = "rejected"
kind = "rejected-share"
block = "province"
percent = 20
days = 1
min_events = 5
for = "{rejected_for}"
"#
    )
}

/// The alerts a WatchAlerts client shows, kept by applying its messages.
struct Watched {
    stream: Streaming<WatchAlertsResponse>,
    alerts: BTreeMap<(String, String), Alert>,
    rules: Option<AlertRulesStatus>,
    revision: u64,
    /// Every message's kind, in order (`snapshot`, `complete`, `changes`, `reset`).
    kinds: Vec<&'static str>,
}

impl Watched {
    async fn open(deployment: &Deployment, resume_revision: u64) -> Self {
        let stream = deployment
            .ranking()
            .watch_alerts(WatchAlertsRequest { resume_revision })
            .await
            .expect("watch alerts")
            .into_inner();
        Self {
            stream,
            alerts: BTreeMap::new(),
            rules: None,
            revision: 0,
            kinds: Vec::new(),
        }
    }

    /// [`Watched::open`] from the start, once its snapshot is complete (within 10 s).
    async fn open_complete(deployment: &Deployment) -> Self {
        let mut watched = Self::open(deployment, 0).await;
        watched
            .until(Duration::from_secs(10), "the snapshot", |w| {
                w.kinds.contains(&"complete")
            })
            .await;
        watched
    }

    fn apply(&mut self, message: WatchAlertsResponse) {
        self.revision = message.revision;
        let key = |a: &Alert| (a.rule.clone(), a.agency_id.clone());
        match message.event.expect("an event") {
            // A snapshot may come in several messages: the first starts afresh.
            Event::Snapshot(snapshot) => {
                if self.kinds.last() != Some(&"snapshot") {
                    self.alerts.clear();
                }
                self.kinds.push("snapshot");
                self.alerts
                    .extend(snapshot.alerts.into_iter().map(|a| (key(&a), a)));
                self.rules = snapshot.rules;
            }
            Event::SnapshotComplete(_) => self.kinds.push("complete"),
            Event::Changes(changes) => {
                self.kinds.push("changes");
                for change in changes.changes {
                    let alert = change.alert.expect("an alert");
                    if change.resolved {
                        self.alerts.remove(&key(&alert));
                    } else {
                        self.alerts.insert(key(&alert), alert);
                    }
                }
                if changes.rules.is_some() {
                    self.rules = changes.rules;
                }
            }
            Event::Reset(_) => self.kinds.push("reset"),
            Event::Heartbeat(_) => {}
        }
    }

    /// Applies messages until `done` holds, within `wait`; returns when it began to hold.
    async fn until(&mut self, wait: Duration, what: &str, done: impl Fn(&Self) -> bool) -> Instant {
        let deadline = Instant::now() + wait;
        while !done(self) {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("{what} within {wait:?}; shown: {:?}", self.alerts))
                .expect("the stream goes on")
                .expect("a message");
            self.apply(message);
        }
        Instant::now()
    }

    fn get(&self, (rule, agency): Alerting) -> Option<&Alert> {
        self.alerts.get(&(rule.to_owned(), agency.to_owned()))
    }

    fn state(&self, alert: Alerting) -> Option<AlertState> {
        self.get(alert)
            .map(|a| AlertState::try_from(a.state).expect("a known state"))
    }

    fn firing(&self, alert: Alerting) -> bool {
        self.state(alert) == Some(AlertState::Firing)
    }

    /// [`Watched::until`] within [`WITHIN`] of `sent`, when the call whose events cause it
    /// was answered; prints how long after it the stream showed `what`.
    async fn shown(&mut self, sent: Instant, what: &str, done: impl Fn(&Self) -> bool) {
        let seen = self.until(WITHIN, what, done).await;
        eprintln!("{what}: shown {:?} after its event", seen - sent);
    }

    /// [`Watched::shown`] for `alert` to be firing; `why` says why.
    async fn fired(&mut self, sent: Instant, (rule, agency): Alerting, why: &str) {
        let what = format!("{rule} on {agency} fired ({why})");
        self.shown(sent, &what, |w| w.firing((rule, agency))).await;
    }

    /// [`Watched::shown`] for `alert` to be gone; `why` says why.
    async fn cleared(&mut self, sent: Instant, (rule, agency): Alerting, why: &str) {
        let what = format!("{rule} on {agency} cleared ({why})");
        self.shown(sent, &what, |w| w.get((rule, agency)).is_none())
            .await;
    }

    /// Asserts that `alert` shows each (figure, value) of `figures`.
    fn assert_figures(&self, alert: Alerting, figures: &[(&str, &str)]) {
        let (rule, agency) = alert;
        for (name, value) in figures {
            assert_eq!(
                self.figure(alert, name).as_deref(),
                Some(*value),
                "{rule} on {agency}: {name}"
            );
        }
    }

    fn figure(&self, alert: Alerting, name: &str) -> Option<String> {
        self.get(alert)?
            .figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.clone())
    }
}

/// Sends `events` through ingest; returns when the answer came, and how many were accepted.
async fn send(deployment: &Deployment, events: Vec<DossierEvent>) -> (Instant, u32) {
    let response = deployment.submit(events).await;
    (Instant::now(), response.accepted)
}

/// `n` receptions of `agency` at `at`, online or in person, with ids from `prefix`.
fn receptions(
    prefix: &str,
    agency: &str,
    at: OffsetDateTime,
    n: usize,
    online: bool,
) -> Vec<DossierEvent> {
    (0..n)
        .map(|i| received(&format!("{prefix}-{i}"), agency, at, online))
        .collect()
}

/// [`receptions`] now.
fn received_now(prefix: &str, agency: &str, n: usize, online: bool) -> Vec<DossierEvent> {
    receptions(prefix, agency, OffsetDateTime::now_utc(), n, online)
}

/// `events` moved a day ahead: invalid, refused.
fn a_day_ahead(events: Vec<DossierEvent>) -> Vec<DossierEvent> {
    let ahead = ts(OffsetDateTime::now_utc() + time::Duration::days(1));
    events
        .into_iter()
        .map(|e| DossierEvent {
            occurred_at: ahead,
            ..e
        })
        .collect()
}

fn targets_file(dir: &Path) -> std::path::PathBuf {
    let year = govpulse_core::period::vietnam_day(OffsetDateTime::now_utc()).year();
    let path = dir.join("targets.toml");
    std::fs::write(
        &path,
        format!(
            "[[targets]]\nmetric = \"online-dossier-rate\"\nyear = {year}\nagency = \"ha-noi\"\npercent = 50\n"
        ),
    )
    .expect("write targets");
    path
}

/// A deployment of its own (keys under `name`) following the alert rules `rules_text`: it,
/// and the rules file, to rewrite.
async fn deployment(name: &str, rules_text: &str) -> (Deployment, std::path::PathBuf) {
    let dir = scratch(name);
    let rules = dir.join("alerts.toml");
    write_ahead(&rules, rules_text, 0);
    let deployment = Deployment::start_alone_with(
        name,
        Options {
            targets: Some(targets_file(&dir)),
            alert_rules: Some(rules.clone()),
            ranking_metrics: true,
            // Notices cause evaluations; the refresh tick would hide a missed one.
            refresh_ms: Some(600_000),
            ..Options::default()
        },
    )
    .await;
    (deployment, rules)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_fires_and_clears_within_a_second_of_its_event() {
    let (deployment, _rules) = deployment("alerts-fire", &rules("1s")).await;
    let mut watched = Watched::open_complete(&deployment).await;
    assert_eq!(watched.rules.as_ref().map(|r| r.count), Some(4));
    let now = OffsetDateTime::now_utc;

    // Below target: ha-noi's target is 50%; one dossier in person is 0%.
    let (sent, _) = send(&deployment, received_now("hn-a", "ha-noi", 1, false)).await;
    watched
        .fired(sent, BELOW_TARGET, "ha-noi under its target")
        .await;
    watched.assert_figures(BELOW_TARGET, &[("value", "0.00"), ("target", "50.00")]);
    let (sent, _) = send(&deployment, received_now("hn-b", "ha-noi", 2, true)).await;
    watched
        .cleared(sent, BELOW_TARGET, "ha-noi back over its target")
        .await;

    // Weekly drop: hai-phong was 100% online the week before (8 days ago), is 0% now.
    send(
        &deployment,
        receptions(
            "hp-a",
            "hai-phong",
            now() - time::Duration::days(8),
            10,
            true,
        ),
    )
    .await;
    let (sent, _) = send(&deployment, received_now("hp-b", "hai-phong", 10, false)).await;
    watched.fired(sent, DROP, "hai-phong's drop").await;
    watched.assert_figures(
        DROP,
        &[("previous_week", "100.00"), ("change_points", "-100.00")],
    );
    // 50 online more: 50 of 60 is 83.33%, 16.67 points down, under the rule's 20.
    let (sent, _) = send(&deployment, received_now("hp-c", "hai-phong", 50, true)).await;
    watched
        .cleared(sent, DROP, "hai-phong's drop cleared")
        .await;

    // Rejected share: 6 of da-nang's 10 events are invalid (a day ahead), over 20%; pending
    // for the rule's 1 s, then firing.
    let mut batch = received_now("dn-a", "da-nang", 4, true);
    batch.extend(a_day_ahead(received_now("dn-bad", "da-nang", 6, true)));
    let (sent, accepted) = send(&deployment, batch).await;
    assert_eq!(accepted, 4);
    watched
        .shown(sent, "da-nang's rejections pending", |w| {
            w.get(REJECTED).is_some()
        })
        .await;
    watched.assert_figures(REJECTED, &[("share", "60.00")]);
    assert_eq!(watched.state(REJECTED), Some(AlertState::Pending));
    let since = watched
        .get(REJECTED)
        .and_then(|a| a.active_since)
        .expect("since");
    watched
        .until(
            Duration::from_secs(1) + WITHIN,
            "da-nang's rejections firing",
            |w| w.firing(REJECTED),
        )
        .await;
    let alert = watched.get(REJECTED).expect("firing");
    let firing_since = moment_from_proto(alert.firing_since.as_ref())
        .expect("valid")
        .expect("set");
    let active_since = moment_from_proto(Some(&since))
        .expect("valid")
        .expect("set");
    assert_eq!(
        firing_since - active_since,
        time::Duration::seconds(1),
        "fires after its `for`"
    );
    let (sent, _) = send(&deployment, received_now("dn-b", "da-nang", 30, true)).await;
    watched
        .cleared(sent, REJECTED, "da-nang's rejections cleared")
        .await;
    // A call of invalid events only is evaluated as it arrives too: 16 of 50 rejected.
    let invalid = a_day_ahead(received_now("dn-worse", "da-nang", 10, true));
    let (sent, accepted) = send(&deployment, invalid).await;
    assert_eq!(accepted, 0);
    watched
        .shown(
            sent,
            "da-nang's share, after a call of rejections only",
            |w| w.figure(REJECTED, "share").as_deref() == Some("32.00"),
        )
        .await;

    // Silence: can-tho reports once, then nothing for the allowed 3 s.
    send(&deployment, received_now("ct-a", "can-tho", 1, true)).await;
    watched
        .until(
            Duration::from_secs(SILENCE_SECS as u64) + WITHIN * 2,
            "can-tho silent",
            |w| w.firing(SILENT),
        )
        .await;
    let seen_at = OffsetDateTime::now_utc();
    let alert = watched.get(SILENT).expect("firing");
    let silent_from = moment_from_proto(alert.active_since.as_ref())
        .expect("valid")
        .expect("set");
    let late = seen_at - silent_from;
    eprintln!("silence fired {late} after the allowed silence ended");
    assert!(
        late < time::Duration::try_from(WITHIN).expect("short"),
        "{late}"
    );
    assert!(
        alert.summary.contains("nothing accepted since"),
        "{}",
        alert.summary
    );
    // Ranking's /metrics shows it, as Alertmanager would read it.
    let addr = deployment
        .ranking_metrics_addr()
        .expect("a metrics listener");
    let labels = [
        ("rule", "silent"),
        ("agency", "can-tho"),
        ("severity", "critical"),
        ("state", "firing"),
    ];
    assert_eq!(
        sample(&scrape(addr).await, "govpulse_alert_active", &labels),
        Some(1.0)
    );
    // GetAlerts and the Server-Sent Events route show what the stream shows.
    let listed = deployment
        .ranking()
        .get_alerts(GetAlertsRequest {})
        .await
        .expect("get alerts")
        .into_inner();
    assert!(
        listed
            .alerts
            .iter()
            .any(|a| a.rule == "silent" && a.agency_id == "can-tho")
    );
    assert!(listed.evaluated_at.is_some());
    let mut events = open_events(deployment.ranking_addr(), "/api/v1/alerts/watch", &[]).await;
    assert_eq!(events.status, 200);
    let first = events
        .next_within(Duration::from_secs(5))
        .await
        .expect("a snapshot event");
    assert!(first.id.is_some(), "the revision as the event id");
    assert!(first.data.contains("\"can-tho\""), "{}", first.data);
    // Its next event clears it.
    let (sent, _) = send(&deployment, received_now("ct-b", "can-tho", 1, true)).await;
    watched
        .cleared(sent, SILENT, "can-tho reporting again")
        .await;
    assert_eq!(
        sample(&scrape(addr).await, "govpulse_alert_active", &labels),
        Some(0.0)
    );
    deployment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumes_and_the_rules_reload_but_a_broken_file_keeps_them() {
    let (deployment, rules_path) = deployment("alerts-resume", &rules("0s")).await;
    let mut watched = Watched::open_complete(&deployment).await;
    send(&deployment, received_now("hn-a", "ha-noi", 1, false)).await;
    watched
        .until(WITHIN, "ha-noi under its target", |w| {
            w.get(BELOW_TARGET).is_some()
        })
        .await;
    let left_at = watched.revision;
    drop(watched);

    // While nobody watches, ha-noi gets over its target.
    send(&deployment, received_now("hn-b", "ha-noi", 2, true)).await;
    let listed = || async {
        deployment
            .ranking()
            .get_alerts(GetAlertsRequest {})
            .await
            .expect("get alerts")
            .into_inner()
    };
    // The resumed stream starts with the change since `left_at`: no snapshot.
    let mut resumed = Watched::open(&deployment, left_at).await;
    resumed.alerts = [(
        ("below-target".to_owned(), "ha-noi".to_owned()),
        Alert::default(),
    )]
    .into();
    resumed
        .until(Duration::from_secs(5), "the resolution, resumed", |w| {
            w.get(BELOW_TARGET).is_none()
        })
        .await;
    assert_eq!(
        resumed.kinds.first(),
        Some(&"changes"),
        "{:?}",
        resumed.kinds
    );
    assert!(!resumed.kinds.contains(&"snapshot"));
    assert!(
        listed()
            .await
            .alerts
            .iter()
            .all(|a| a.rule != "below-target")
    );

    // A revision this replica never published: a reset, then a snapshot.
    let mut reset = Watched::open(&deployment, 12_345).await;
    reset
        .until(Duration::from_secs(5), "a reset and a snapshot", |w| {
            w.kinds.contains(&"complete")
        })
        .await;
    assert_eq!(reset.kinds[..2], ["reset", "snapshot"]);

    // 2 online of 5: under the target again.
    send(&deployment, received_now("hn-c", "ha-noi", 2, false)).await;
    resumed
        .until(WITHIN, "ha-noi under its target again", |w| {
            w.get(BELOW_TARGET).is_some()
        })
        .await;
    let only_below = "[[rules]]\nname = \"below-target\"\nkind = \"below-target\"\nblock = \"province\"\nmetric = \"online-dossier-rate\"\nmin_volume = 10\n";
    write_ahead(&rules_path, only_below, 10);
    // A new version of the file, the below-target rule alone with a minimum volume: 5
    // dossiers are too few to judge, and the alert resolves with the reload.
    resumed
        .until(Duration::from_secs(5), "the reloaded rules", |w| {
            w.rules.as_ref().map(|r| r.count) == Some(1) && w.get(BELOW_TARGET).is_none()
        })
        .await;
    // A broken version is refused, says why, and the rule in force stays.
    write_ahead(
        &rules_path,
        &only_below.replace("min_volume = 10", "min_volume = \"ten\""),
        20,
    );
    resumed
        .until(Duration::from_secs(5), "the refusal", |w| {
            w.rules.as_ref().is_some_and(|r| !r.refused.is_empty())
        })
        .await;
    let status = resumed.rules.clone().expect("a status");
    assert_eq!(status.count, 1, "the rule in force stays");
    assert!(status.refused.contains("min_volume"), "{}", status.refused);
    assert_eq!(listed().await.rules, Some(status));
    // The rule in force still works: 11 more in person is enough volume, 2 of 16 online.
    let (sent, _) = send(&deployment, received_now("hn-d", "ha-noi", 11, false)).await;
    let seen = resumed
        .until(
            WITHIN,
            "ha-noi under its target by the rule in force",
            |w| w.get(BELOW_TARGET).is_some(),
        )
        .await;
    eprintln!("below-target fired {:?} after its event", seen - sent);
    deployment.stop().await;
}
