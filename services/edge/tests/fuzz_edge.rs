//! Fuzzing the edge: arbitrary bytes decoded as a batch and validated, arbitrary well-typed
//! events validated and scope-checked, arbitrary token files and certificates parsed. None
//! may panic; a valid event must satisfy every rule the edge promises.
//!
//! CI runs a short pass. The long run (docs/SECURITY.md, section 7):
//! `GOVPULSE_FUZZ_SECONDS=600 cargo test --release -p govpulse-edge --test fuzz_edge -- --nocapture`
//! runs each harness for that many seconds and prints how many inputs it tried.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use govpulse_core::{AcceptancePolicy, AgencyId, Catalog};
use govpulse_edge::auth::{Principal, Role, Tokens, Via, certificate_principal};
use govpulse_edge::decode::{decode_event, encode_event};
use govpulse_proto::{
    Timestamp,
    event::{
        DossierEvent, DossierReceived, DossierResolved, FeePaid, FeedbackGiven, Retracted,
        Returned, Withdrawn, dossier_event, dossier_resolved,
    },
    ingest::SubmitEventsRequest,
    wire::{EventView, SubmitEventsWire, read_events},
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use prost::{Message, bytes::Bytes};
use time::{OffsetDateTime, macros::datetime};

const NOW: OffsetDateTime = datetime!(2026-08-15 05:00 UTC);

fn catalog() -> Catalog {
    govpulse_runtime::catalog_files::built_in().expect("valid catalog")
}

/// Runs `test` on inputs from `strategy`: 512 cases, or for `GOVPULSE_FUZZ_SECONDS`
/// seconds when set. Returns how many inputs were tried.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64 {
    let seconds: Option<u64> = std::env::var("GOVPULSE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let rounds_cases = 512;
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut tried = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases: rounds_cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, &test)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        tried += u64::from(rounds_cases);
        match deadline {
            Some(deadline) if Instant::now() < deadline => continue,
            _ => break,
        }
    }
    eprintln!("fuzz {name}: {tried} inputs, no failure");
    tried
}

/// Ids: mostly real catalog-shaped ones, sometimes anything at all.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "ha-noi", "hai-phong", "lang-son", "hoa-binh", "hoa-binh.dept-01", "mof",
            "ha-noi.p01", "lang-son.p01", "mof.p01", "cema.p01", "e1", "HS-1",
        ]).prop_map(str::to_owned),
        2 => "[A-Za-z0-9._:/-]{0,140}",
        1 => any::<String>(),
    ]
}

fn timestamp() -> impl Strategy<Value = Option<Timestamp>> {
    let now = NOW.unix_timestamp();
    prop_oneof![
        1 => Just(None),
        4 => (now - 500 * 86_400..now + 86_400, 0..1_000_000_000i32)
            .prop_map(|(seconds, nanos)| Some(Timestamp { seconds, nanos })),
        1 => (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| Some(Timestamp { seconds, nanos })),
    ]
}

fn kind() -> impl Strategy<Value = Option<dossier_event::Kind>> {
    prop_oneof![
        Just(None),
        (any::<i32>(), 0..5i32, any::<bool>(), timestamp()).prop_map(
            |(raw, small, digitized, due_at)| {
                let channel = if raw % 2 == 0 { small } else { raw };
                Some(dossier_event::Kind::Received(DossierReceived {
                    channel,
                    digitized,
                    due_at,
                }))
            }
        ),
        (
            prop_oneof![
                Just(None),
                timestamp().prop_map(|t| t.map(dossier_resolved::Timeliness::DueAt)),
                any::<bool>().prop_map(|b| Some(dossier_resolved::Timeliness::OnTime(b))),
            ],
            any::<bool>()
        )
            .prop_map(|(timeliness, result_electronic)| {
                Some(dossier_event::Kind::Resolved(DossierResolved {
                    timeliness,
                    result_electronic,
                }))
            }),
        any::<bool>().prop_map(|online| Some(dossier_event::Kind::FeePaid(FeePaid { online }))),
        any::<bool>()
            .prop_map(|satisfied| Some(dossier_event::Kind::Feedback(FeedbackGiven { satisfied }))),
        Just(Some(dossier_event::Kind::Retracted(Retracted {}))),
        Just(Some(dossier_event::Kind::Withdrawn(Withdrawn {}))),
        Just(Some(dossier_event::Kind::Returned(Returned {}))),
    ]
}

/// What `corrects` holds: mostly nothing, else any id (a correction).
fn corrects() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just(String::new()), 1 => id()]
}

fn event() -> impl Strategy<Value = DossierEvent> {
    let anything = (id(), id(), id(), id(), timestamp(), kind(), corrects()).prop_map(
        |(event_id, agency_id, dossier_id, procedure_id, occurred_at, kind, corrects)| {
            DossierEvent {
                event_id,
                agency_id,
                dossier_id,
                procedure_id,
                occurred_at,
                kind,
                corrects,
            }
        },
    );
    // An agency with a procedure it handles, at a time within the horizon: whether the event
    // is valid then rests on its ids and its kind, so the valid path is reached often.
    let now = NOW.unix_timestamp();
    let plausible = (
        id(),
        prop::sample::select(vec![
            ("ha-noi", "ha-noi.p01"),
            ("lang-son", "lang-son.p01"),
            ("mof", "mof.p01"),
            ("hai-phong", "hai-phong.p01"),
        ]),
        id(),
        now - 300 * 86_400..now,
        kind(),
        corrects(),
    )
        .prop_map(
            |(event_id, (agency, procedure), dossier_id, seconds, kind, corrects)| DossierEvent {
                event_id,
                agency_id: agency.to_owned(),
                dossier_id,
                procedure_id: procedure.to_owned(),
                occurred_at: Some(Timestamp { seconds, nanos: 0 }),
                kind,
                corrects,
            },
        );
    prop_oneof![3 => anything, 1 => plausible]
}

/// Events found valid, so a harness can show it reached the valid path at all.
static VALID: AtomicU64 = AtomicU64::new(0);

/// What a valid event must be, whatever produced it.
fn check_valid(catalog: &Catalog, event: &DossierEvent) -> Result<(), TestCaseError> {
    let policy = AcceptancePolicy::default();
    if let Ok(valid) = decode_event(Some(0), event.clone().into(), catalog, &policy, NOW) {
        VALID.fetch_add(1, Ordering::Relaxed);
        // What ingest forwards decodes to the same event: the bytes it was sent, read in
        // place, or the decoded event encoded again (from a stream or the JSON routes).
        let bytes = event.encode_to_vec();
        let view = EventView::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            decode_event(Some(0), view, catalog, &policy, NOW),
            Ok(valid.clone())
        );
        let forwarded = encode_event(valid.clone());
        prop_assert_eq!(
            decode_event(Some(0), forwarded.into(), catalog, &policy, NOW),
            Ok(valid.clone())
        );
        prop_assert!(catalog.agency(&valid.agency).is_some());
        let procedure = catalog
            .procedure(&valid.procedure)
            .expect("known procedure");
        prop_assert!(catalog.handles(&valid.agency, procedure));
        prop_assert!(valid.occurred_at <= NOW + policy.future_skew);
        prop_assert!(valid.occurred_at >= NOW - policy.horizon - time::Duration::days(1));
        for raw in [
            &event.event_id,
            &event.agency_id,
            &event.dossier_id,
            &event.procedure_id,
        ] {
            prop_assert!(!raw.is_empty() && raw.len() <= 128, "{raw:?}");
        }
        // The scope check holds for any valid event: its own agency may send it, a
        // province that is not in its chain may not.
        let own = Principal {
            agency: Some(valid.agency.clone()),
            roles: vec![Role::Reporter],
            via: Via::Token,
        };
        prop_assert!(own.may_report_for(catalog, &valid.agency));
        let stranger = AgencyId::parse(
            if catalog
                .chain(&valid.agency)
                .iter()
                .any(|a| a.as_str() == "ha-noi")
            {
                "hai-phong"
            } else {
                "ha-noi"
            },
        )
        .expect("id");
        let other = Principal {
            agency: Some(stranger),
            ..own
        };
        prop_assert!(!other.may_report_for(catalog, &valid.agency));
    }
    Ok(())
}

#[test]
fn arbitrary_bytes_never_panic_the_decoder() {
    let catalog = catalog();
    let tried = fuzz(
        "bytes",
        prop::collection::vec(any::<u8>(), 0..512),
        |bytes| {
            let decoded = SubmitEventsRequest::decode(bytes.as_slice());
            if let Ok(batch) = &decoded {
                for event in &batch.events {
                    check_valid(&catalog, event)?;
                }
            }
            // The batch read as the services read it (each event's bytes in place) is the
            // batch prost decodes, or both refuse it.
            let wire = SubmitEventsWire::decode(Bytes::from(bytes))
                .ok()
                .and_then(|batch| {
                    read_events(&batch.events)
                        .ok()
                        .map(|views| views.into_iter().map(DossierEvent::from).collect())
                });
            prop_assert_eq!(decoded.ok().map(|batch| batch.events), wire);
            Ok(())
        },
    );
    assert!(tried >= 512);
}

#[test]
fn arbitrary_events_are_valid_only_when_every_rule_holds() {
    let catalog = catalog();
    let tried = fuzz("events", event(), |event| {
        check_valid(&catalog, &event)?;
        // What survives a round trip through the wire is judged the same.
        let bytes = event.encode_to_vec();
        let again = DossierEvent::decode(bytes.as_slice()).expect("round trip");
        let policy = AcceptancePolicy::default();
        prop_assert_eq!(
            decode_event(None, event.into(), &catalog, &policy, NOW).is_ok(),
            decode_event(None, again.into(), &catalog, &policy, NOW).is_ok()
        );
        Ok(())
    });
    assert!(tried >= 512);
    assert!(
        VALID.load(Ordering::Relaxed) > 0,
        "the generator reaches valid events too"
    );
}

#[test]
fn events_with_bytes_changed_are_read_in_place_as_prost_reads_them() {
    let changes = prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4);
    let tried = fuzz("changed bytes", (event(), changes), |(event, changes)| {
        let mut bytes = event.encode_to_vec();
        for (at, flip) in changes {
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] ^= flip;
            }
        }
        let view = EventView::decode(&bytes)
            .map(DossierEvent::from)
            .map_err(|e| e.to_string());
        let prost = DossierEvent::decode(bytes.as_slice()).map_err(|e| e.to_string());
        prop_assert_eq!(view, prost);
        Ok(())
    });
    assert!(tried >= 512);
}

#[test]
fn arbitrary_token_files_and_certificates_never_panic() {
    let catalog = catalog();
    let text = prop_oneof![
        any::<String>(),
        ("[0-9a-f]{0,70}", id(), prop::collection::vec("[a-z]{0,10}", 0..3), ".{0,30}").prop_map(
            |(hash, agency, roles, expiry)| format!(
                "[[credential]]\nsha256 = \"{hash}\"\nagency = \"{agency}\"\nroles = {roles:?}\nexpires_at = \"{expiry}\"\n"
            )
        ),
    ];
    fuzz("token files", text, |text| {
        if let Ok(tokens) = Tokens::parse(&text, &catalog) {
            let _ = tokens.check("anything", NOW);
        }
        Ok(())
    });
    fuzz(
        "certificates",
        prop::collection::vec(any::<u8>(), 0..2048),
        |der| {
            let _ = certificate_principal(&der, &catalog);
            Ok(())
        },
    );
}
