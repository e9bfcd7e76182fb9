//! `govpulse.catalog.v1.CatalogService`, served by every service from its loaded catalog.

use std::sync::Arc;

use govpulse_core::Catalog;
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
        let parent = match request.parent_id.as_str() {
            "" => None,
            raw => Some(
                self.catalog
                    .agency_by_str(raw)
                    .ok_or_else(|| bad_request("parent_id", &format!("unknown agency {raw:?}")))?
                    .id
                    .clone(),
            ),
        };
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
        let agency = match request.agency_id.as_str() {
            "" => None,
            raw => Some(
                self.catalog
                    .agency_by_str(raw)
                    .ok_or_else(|| bad_request("agency_id", &format!("unknown agency {raw:?}")))?
                    .id
                    .clone(),
            ),
        };
        let procedures = self
            .catalog
            .procedures()
            .filter(|p| agency.as_ref().is_none_or(|a| &p.agency == a))
            .map(procedure_to_proto)
            .collect();
        Ok(Response::new(ListProceduresResponse { procedures }))
    }
}
