//! `govpulse_grpc_requests_total{method, code}`: every gRPC call a server answered, by its
//! final status. A tower layer on the servers (`server.rs`): a handler's error arrives in the
//! response headers, any other status in the trailers at the end of the body (the end of a
//! stream), so the body is watched until then.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http_body_util::BodyExt;
use tonic::{Code, codegen::http};

use crate::prometheus::GRPC_REQUESTS;

/// Counts each call by method and final status.
#[derive(Debug, Clone)]
pub struct RequestMetrics<S> {
    inner: S,
}

impl<S> RequestMetrics<S> {
    /// Around `inner`; as a layer, `tower::layer::layer_fn(RequestMetrics::new)`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B> tower::Service<http::Request<B>> for RequestMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Only gRPC calls (gRPC-Web included) are counted here: the JSON routes on the same
        // port end without a grpc-status and would all look cancelled.
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let method = request.uri().path().trim_start_matches('/').to_owned();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let mut call = Unrecorded {
                method: grpc.then_some(method),
            };
            // A handler's error is a trailers-only response: the status is in the headers.
            if let Some(status) = response.headers().get("grpc-status") {
                call.record(Code::from_bytes(status.as_bytes()));
            }
            // Any other status is in the trailers that end the body.
            Ok(response.map(|body| {
                tonic::body::Body::new(body.map_frame(move |frame| {
                    if let Some(status) = frame.trailers_ref().and_then(|t| t.get("grpc-status")) {
                        call.record(Code::from_bytes(status.as_bytes()));
                    }
                    frame
                }))
            }))
        })
    }
}

/// A call not yet recorded: recorded with the first status that goes by, or as cancelled if
/// its response body goes away before any (the client cancelled, or the connection dropped,
/// mid-call).
struct Unrecorded {
    /// The method, until its call is recorded; none for a call that is not counted.
    method: Option<String>,
}

impl Unrecorded {
    /// Counts the call once, with its final status `code`; nothing after the first.
    fn record(&mut self, code: Code) {
        let Some(method) = self.method.take() else {
            return;
        };
        // Labels come from a closed set: a path that names no rpc of ours is one series,
        // whatever a client sends (a random path per request would grow the registry forever).
        let method = if code == Code::Unimplemented || !known_method(&format!("/{method}")) {
            "unknown".to_owned()
        } else {
            method
        };
        let code = if code == Code::Ok {
            "OK".to_owned()
        } else {
            format!("{code:?}")
        };
        metrics::counter!(GRPC_REQUESTS, "method" => method, "code" => code).increment(1);
    }
}

impl Drop for Unrecorded {
    fn drop(&mut self) {
        // The body went away before any status: the client cancelled (or the connection
        // dropped) mid-call.
        self.record(Code::Cancelled);
    }
}

/// Whether `path` names an rpc of ours (or of health and reflection, which every server
/// serves): the closed set of `method` labels.
fn known_method(path: &str) -> bool {
    static KNOWN: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    KNOWN
        .get_or_init(|| {
            govpulse_proto::method_paths()
                .into_iter()
                .chain(
                    [
                        "/grpc.health.v1.Health/Check",
                        "/grpc.health.v1.Health/Watch",
                        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                    ]
                    .map(str::to_owned),
                )
                .collect()
        })
        .contains(path)
}
