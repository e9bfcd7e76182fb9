//! GetProcedureMetrics: one agency's metric per procedure, decode → plan (core) → read (store)
//! → report (core) → encode, with one clock reading per request.

use std::slice;

use futures::future::try_join_all;
use govpulse_core::{
    ProcedureId,
    procedures::{ProcedureLine, per_procedure, procedure_needs, procedure_report},
    reading::{Question, Read, Source, plan},
    report,
};
use govpulse_edge::convert::{InvalidField, agency_to_proto, period_to_proto, rate_to_proto};
use govpulse_proto::aggregate::{
    GetProcedureMetricsRequest, GetProcedureMetricsResponse, ProcedureMetric,
};
use govpulse_store::{AgencyKey, ProceduresRead, StoreError};
use time::Date;

use super::{
    AggregateApi,
    read::{ids, parse_metric, parse_period},
};
use crate::Error;

/// How many procedures `best` and `worst` list when the request does not say.
const DEFAULT_TOP: u32 = 5;
/// The most a request may ask `best` and `worst` to list.
const MAX_TOP: u32 = 100;

impl AggregateApi {
    /// One agency's metric per procedure: the body of GetProcedureMetrics.
    pub async fn procedure_metrics(
        &self,
        request: GetProcedureMetricsRequest,
    ) -> Result<GetProcedureMetricsResponse, Error> {
        let horizon = self.horizon();
        let agency = self.agency("agency_id", &request.agency_id)?;
        let period = parse_period("period", &request.period, &horizon)?;
        let metric = parse_metric("metric", &request.metric)?;
        let top = match request.top {
            0 => DEFAULT_TOP,
            n if n <= MAX_TOP => n,
            n => {
                return Err(Error::invalid(
                    "top",
                    format!("{n} is more than {MAX_TOP} procedures"),
                ));
            }
        } as usize;
        // Refused before anything is read: the metrics that count procedures.
        per_procedure(metric).map_err(|e| Error::invalid("metric", e.to_string()))?;
        let needs = procedure_needs(metric);
        // The agency as it is now, with every agency it absorbed since the period began: the
        // plan GetMetrics reads it by.
        let planned = plan(
            &self.catalog,
            &horizon,
            &Question {
                agencies: slice::from_ref(&agency.id),
                parent: None,
                period: &period,
                as_of: Date::MAX,
                needs: &needs,
            },
        );
        let answers = try_join_all(
            planned
                .reads()
                .iter()
                .map(|read| self.fetch_procedures(read)),
        )
        .await?;
        let totals = planned
            .procedure_totals(answers)
            .map_err(|e| Error::Store(StoreError::Unexpected(e.to_string())))?;
        let report = procedure_report(metric, totals)
            .map_err(|e| Error::invalid("metric", e.to_string()))?;
        let line = |line: &ProcedureLine| self.procedure_metric(line);
        Ok(GetProcedureMetricsResponse {
            agency: Some(agency_to_proto(agency)),
            metric: metric.name().to_owned(),
            period: Some(period_to_proto(&period)),
            best: report.top(top).iter().map(line).collect(),
            worst: report.bottom(top).into_iter().map(line).collect(),
            procedures: report.ranked.iter().map(line).collect(),
            no_data: report.no_data.iter().map(line).collect(),
            merged_from: ids(report::merged_from(
                &self.catalog,
                &agency.id,
                &period,
                Date::MAX,
            )),
            provisional: horizon.is_provisional(&period),
        })
    }

    /// Runs one read of a plan per procedure: the plan of one agency reads one group.
    async fn fetch_procedures(
        &self,
        read: &Read<'_>,
    ) -> Result<Vec<(ProcedureId, govpulse_core::Counters)>, StoreError> {
        let Source::Groups(groups) = &read.source else {
            return Err(StoreError::Unexpected(
                "a procedure breakdown planned from a parent's roll-up".to_owned(),
            ));
        };
        let [group] = &groups[..] else {
            return Err(StoreError::Unexpected(format!(
                "a procedure breakdown of {} groups",
                groups.len()
            )));
        };
        let keys: Vec<AgencyKey> = group.iter().map(|a| self.key(a)).collect();
        self.store
            .read_procedures(ProceduresRead {
                of: &keys,
                buckets: &read.buckets,
                counters: &read.needs.counters,
            })
            .await
    }

    fn procedure_metric(&self, line: &ProcedureLine) -> ProcedureMetric {
        ProcedureMetric {
            procedure_id: line.procedure.as_str().to_owned(),
            procedure_name: self
                .catalog
                .procedure(&line.procedure)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            rank: line.rank,
            rate: line.rate.map(rate_to_proto),
            numerator: line.numerator,
            denominator: line.denominator,
        }
    }
}
