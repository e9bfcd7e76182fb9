//! `govpulse.catalog.v1.CatalogService`, served by every service from its loaded catalog.

use std::sync::Arc;

use govpulse_core::{AgencyId, Catalog};
use govpulse_proto::catalog::{
    ListAgenciesRequest, ListAgenciesResponse, ListProceduresRequest, ListProceduresResponse,
    catalog_service_server::{CatalogService, CatalogServiceServer},
};
use tonic::{Request, Response, Status};

use crate::convert::{agency_to_proto, bad_request, block_from_proto, procedure_to_proto};

/// Lists agencies and procedures.
#[derive(Debug, Clone)]
pub struct CatalogApi {
    catalog: Arc<Catalog>,
}

impl CatalogApi {
    /// The service over `catalog`, for callers other than a gRPC server (the JSON routes).
    pub fn new(catalog: Arc<Catalog>) -> Self {
        CatalogApi { catalog }
    }

    /// The service over `catalog`, ready to add to a server.
    pub fn server(catalog: Arc<Catalog>) -> CatalogServiceServer<CatalogApi> {
        CatalogServiceServer::new(CatalogApi { catalog })
    }

    /// The agency a request's `field` names, `None` when it is empty; INVALID_ARGUMENT naming
    /// the field when no agency of the catalog has that id.
    fn optional_agency(&self, field: &str, raw: &str) -> Result<Option<AgencyId>, Status> {
        if raw.is_empty() {
            return Ok(None);
        }
        let agency = self
            .catalog
            .agency_by_str(raw)
            .ok_or_else(|| bad_request(field, &format!("unknown agency {raw:?}")))?;
        Ok(Some(agency.id.clone()))
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn list_agencies(
        &self,
        request: Request<ListAgenciesRequest>,
    ) -> Result<Response<ListAgenciesResponse>, Status> {
        let request = request.into_inner();
        let block = match request.block {
            0 => None,
            value => Some(
                block_from_proto(value)
                    .ok_or_else(|| bad_request("block", &format!("unknown block {value}")))?,
            ),
        };
        let parent = self.optional_agency("parent_id", &request.parent_id)?;
        let agencies = self
            .catalog
            .agencies()
            .filter(|a| block.is_none_or(|b| a.block == b))
            .filter(|a| parent.is_none() || a.parent == parent)
            .map(agency_to_proto)
            .collect();
        Ok(Response::new(ListAgenciesResponse { agencies }))
    }

    async fn list_procedures(
        &self,
        request: Request<ListProceduresRequest>,
    ) -> Result<Response<ListProceduresResponse>, Status> {
        let request = request.into_inner();
        let agency = self.optional_agency("agency_id", &request.agency_id)?;
        let procedures = self
            .catalog
            .procedures()
            .filter(|p| agency.as_ref().is_none_or(|a| &p.agency == a))
            .map(procedure_to_proto)
            .collect();
        Ok(Response::new(ListProceduresResponse { procedures }))
    }
}
