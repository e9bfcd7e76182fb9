//! One source for every figure: a ranking and a block's metrics are built by the same core
//! report (`govpulse_core::report`), so for any events GetRanking's rows and
//! GetBlockMetrics's rows carry the same value for every agency, metric and period.
//!
//! The events are a simulated country's (every kind of event, over the months before and
//! after the 2025 merger of the provinces), from fixed seeds so that a failure can be
//! replayed.

use govpulse::simulate::Country;
use govpulse_core::{Catalog, Metric, period::vietnam_day};
use govpulse_e2e::{Deployment, Options, fraction};
use govpulse_proto::{
    aggregate::{GetBlockMetricsRequest, PeriodRange, Rate, get_block_metrics_request},
    catalog::Block,
    ranking::RankingQuery,
};
use time::{Duration, OffsetDateTime};

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/catalog");

/// The days the simulated events span, ending today: back past the merger of 2025-07-01
/// whatever today is within the horizon below.
const DAYS: u16 = 600;

fn catalog() -> Catalog {
    govpulse_runtime::catalog_files::load(Some(std::path::Path::new(CATALOG)))
        .expect("the shipped catalog loads")
}

/// Which agencies are compared: a block, or the children of one agency.
#[derive(Debug, Clone)]
enum Scope {
    Block(Block),
    Children(&'static str),
}

/// Each agency's value as `(numerator, denominator)`, `None` without data.
type Values = Vec<(String, Option<(u64, u64)>)>;

async fn block_values(
    deployment: &Deployment,
    scope: &Scope,
    metric: Metric,
    period: &str,
) -> (String, Values) {
    let scope = match scope {
        Scope::Block(block) => get_block_metrics_request::Scope::Block((*block).into()),
        Scope::Children(parent) => get_block_metrics_request::Scope::ParentId((*parent).into()),
    };
    let answer = deployment
        .aggregate()
        .get_block_metrics(GetBlockMetricsRequest {
            scope: Some(scope),
            metric: metric.name().into(),
            period: period.into(),
            ..Default::default()
        })
        .await
        .expect("block metrics")
        .into_inner();
    let values = answer
        .agencies
        .into_iter()
        .map(|row| (row.agency_id, row.rate));
    sorted(answer.period, values)
}

async fn ranking_values(
    deployment: &Deployment,
    scope: &Scope,
    metric: Metric,
    period: &str,
) -> (String, Values) {
    let (block, parent_id) = match scope {
        Scope::Block(block) => ((*block).into(), String::new()),
        Scope::Children(parent) => (0, (*parent).to_owned()),
    };
    let query = RankingQuery {
        metric: metric.name().into(),
        block,
        parent_id,
        period: period.into(),
        ..Default::default()
    };
    let answer = deployment.get_ranking(query).await.expect("ranking");
    let values = answer.rows.into_iter().map(|row| (row.agency_id, row.rate));
    sorted(answer.period, values)
}

/// The days and each agency's value, sorted by agency.
fn sorted(
    period: Option<PeriodRange>,
    values: impl Iterator<Item = (String, Option<Rate>)>,
) -> (String, Values) {
    let mut values: Values = values
        .map(|(agency, rate)| (agency, fraction(rate.as_ref())))
        .collect();
    values.sort();
    let days = period.map(|p| format!("{}..{}", p.first_day, p.last_day));
    (days.unwrap_or_default(), values)
}

/// Compares every metric over every period and scope; returns how many agencies had a value.
async fn compare_all(deployment: &Deployment, periods: &[String]) -> usize {
    let scopes = [
        Scope::Block(Block::Province),
        Scope::Block(Block::Ministry),
        // Units that existed until the merger of their province.
        Scope::Children("hoa-binh"),
    ];
    let mut with_data = 0;
    for scope in &scopes {
        for period in periods {
            for metric in Metric::ALL {
                let (block_days, block) = block_values(deployment, scope, metric, period).await;
                let (ranking_days, ranking) =
                    ranking_values(deployment, scope, metric, period).await;
                assert_eq!(
                    (&ranking_days, &ranking),
                    (&block_days, &block),
                    "{metric} over {period} in {scope:?}: GetRanking's rows differ from GetBlockMetrics'"
                );
                with_data += block.iter().filter(|(_, v)| v.is_some()).count();
            }
        }
    }
    with_data
}

#[tokio::test]
async fn rankings_and_block_metrics_carry_the_same_value_for_every_agency_metric_and_period() {
    let options = Options {
        catalog_dir: Some(CATALOG.into()),
        horizon_days: Some(DAYS + 30),
        ..Options::default()
    };
    let deployment = Deployment::start_alone_with("agreement", options).await;
    let catalog = catalog();
    let now = OffsetDateTime::now_utc();
    let today = vietnam_day(now);
    let month_ago = today - Duration::days(31);
    let periods: Vec<String> = vec![
        today.to_string(),
        format!("{}-{:02}", today.year(), u8::from(today.month())),
        format!("{}-{:02}", month_ago.year(), u8::from(month_ago.month())),
        format!(
            "{}-Q{}",
            today.year(),
            (u8::from(today.month()) - 1) / 3 + 1
        ),
        "ytd".to_owned(),
        (today.year() - 1).to_string(),
        // Spanning the merger: merged provinces read with their predecessors.
        format!("2025-05-01..{}", today - Duration::days(3)),
        "2025-Q2".to_owned(),
    ];
    let mut with_data = 0;
    for seed in [7, 2026] {
        let events = Country::new(&catalog, seed).backfill(now, DAYS, 3000);
        deployment.accept_all(events).await;
        with_data = compare_all(&deployment, &periods).await;
    }
    assert!(
        with_data > 1000,
        "the comparison covered agencies with data ({with_data} values)"
    );
    deployment.stop().await;
}
