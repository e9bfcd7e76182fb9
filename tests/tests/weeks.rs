//! Provinces publish weekly rankings, Monday to Sunday: an ISO week (`2026-W49`) is a period
//! like any other, its previous period the week before and its same period last year the
//! week of the same number.

use govpulse_core::period::{VIETNAM, vietnam_day};
use govpulse_e2e::{Deployment, fraction, provinces_by_online_rate, received};
use time::{Duration, OffsetDateTime, Weekday, macros::time};

/// `count` receptions of `agency` at noon of `day`, `online` of them online.
fn receptions(
    tag: &str,
    agency: &str,
    day: time::Date,
    count: usize,
    online: usize,
) -> Vec<govpulse_proto::event::DossierEvent> {
    let at = day.with_time(time!(12:00)).assume_offset(VIETNAM);
    (0..count)
        .map(|i| received(&format!("{tag}-{agency}-{i}"), agency, at, i < online))
        .collect()
}

#[tokio::test]
async fn a_weekly_ranking_moves_against_the_week_before() {
    let deployment = Deployment::start_alone("weeks").await;
    // Last week (Monday to Sunday, all in the past) and the week before it.
    let today = vietnam_day(OffsetDateTime::now_utc());
    let this_monday = today - Duration::days(i64::from(today.weekday().number_days_from_monday()));
    let last_monday = this_monday - Duration::days(7);
    let before_monday = last_monday - Duration::days(7);
    assert_eq!(last_monday.weekday(), Weekday::Monday);
    let (year, number, _) = last_monday.to_iso_week_date();
    let last_week = format!("{year:04}-W{number:02}");
    let (year, number, _) = before_monday.to_iso_week_date();
    let week_before = format!("{year:04}-W{number:02}");

    // The week before: Lạng Sơn ahead of Quảng Ninh. Last week (its Sunday included, its
    // next Monday not): Quảng Ninh ahead.
    let mut events = Vec::new();
    events.extend(receptions("b", "lang-son", before_monday, 4, 4));
    events.extend(receptions(
        "b",
        "quang-ninh",
        before_monday + Duration::days(6),
        4,
        1,
    ));
    events.extend(receptions(
        "l",
        "lang-son",
        last_monday + Duration::days(3),
        4,
        2,
    ));
    events.extend(receptions(
        "l",
        "quang-ninh",
        last_monday + Duration::days(6),
        4,
        3,
    ));
    deployment.accept_all(events).await;

    let ranking = deployment
        .get_ranking(provinces_by_online_rate(&last_week))
        .await
        .expect("a weekly ranking");
    let period = ranking.period.expect("its days");
    assert_eq!(
        period.expression, last_week,
        "the period as it was asked for"
    );
    assert_eq!(
        (period.first_day, period.last_day),
        (
            last_monday.to_string(),
            (last_monday + Duration::days(6)).to_string()
        )
    );
    let previous = ranking.previous_period.expect("the week before");
    assert_eq!(previous.first_day, before_monday.to_string());
    let row = |id: &str| {
        ranking
            .rows
            .iter()
            .find(|r| r.agency_id == id)
            .map(|r| (r.rank, r.previous_period_rank, r.places_gained))
            .expect("ranked")
    };
    assert_eq!(
        row("quang-ninh"),
        (1, 2, 1),
        "up one place on the week before"
    );
    assert_eq!(row("lang-son"), (2, 1, -1));

    // One agency's week: against the week before, by its ISO name.
    let metrics = deployment
        .get_metrics("quang-ninh", &last_week, &["online-dossier-rate"])
        .await
        .expect("metrics over a week");
    assert_eq!(
        metrics.previous_period.map(|p| p.expression),
        Some(week_before)
    );
    assert_eq!(fraction(metrics.metrics[0].rate.as_ref()), Some((3, 4)));
    assert_eq!(
        fraction(metrics.metrics[0].previous_period.as_ref()),
        Some((1, 4))
    );
    deployment.stop().await;
}
