//! Ingest's JSON routes on its port, for agencies' systems without a gRPC stack: each route
//! decodes the request message from protobuf JSON and calls the same `IngestService`
//! implementation the gRPC routes call, so credentials, rate limits, validation, per-event
//! outcomes and the audit log are the same by construction. docs/INTEGRATION.md.

use axum::{
    Router,
    extract::{Request, State},
    middleware::{Next, from_fn_with_state},
    response::Response,
    routing::post,
};
use govpulse_edge::http_json::{ApiError, post_json_batch};
use govpulse_proto::ingest::ingest_service_server::IngestService;

use crate::IngestApi;

/// What the routes call, and the largest body they read (the gRPC message limit).
#[derive(Debug, Clone)]
struct Http {
    api: IngestApi,
    max_body_bytes: usize,
}

/// The HTTP routes, to merge with the gRPC services on ingest's port.
pub(crate) fn router(api: IngestApi, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/api/v1/events", post(submit_events))
        .route("/api/v1/assessed-scores", post(report_assessed_scores))
        // Credentials first: a caller without one is answered before its body is read.
        .route_layer(from_fn_with_state(api.clone(), authenticate_first))
        .with_state(Http {
            api,
            max_body_bytes,
        })
}

/// Refuses a call without a valid credential (401, as UNAUTHENTICATED over gRPC) from its
/// headers alone, and hands the principal to the route.
async fn authenticate_first(
    State(api): State<IngestApi>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    api.authenticate_first(&parts.headers, &mut parts.extensions)?;
    request = Request::from_parts(parts, body);
    Ok(next.run(request).await)
}

/// `POST /api/v1/events`: SubmitEvents.
async fn submit_events(State(http): State<Http>, request: Request) -> Result<Response, ApiError> {
    post_json_batch(request, http.max_body_bytes, "events", |request| {
        http.api.submit_events(request)
    })
    .await
}

/// `POST /api/v1/assessed-scores`: ReportAssessedScores.
async fn report_assessed_scores(
    State(http): State<Http>,
    request: Request,
) -> Result<Response, ApiError> {
    post_json_batch(request, http.max_body_bytes, "scores", |request| {
        http.api.report_assessed_scores(request)
    })
    .await
}
