//! One unary rpc served with a request type of its own: the batch rpcs read their events as
//! bytes (`govpulse_proto::wire`), which the generated servers cannot, since they decode the
//! request message the proto names. The route is the rpc's own path, beside the generated
//! service's routes (a path matches before the service's `/<service>/*`), and serves the
//! call as the generated code would: the same codec, size limit and status handling.

use std::{
    convert::Infallible,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
};

use govpulse_proto::codec::GovpulseCodec;
use tonic::{
    Request, Response, Status,
    body::Body,
    codegen::{Service, http},
    service::Routes,
};

/// `routes` with `path` (`/govpulse.ingest.v1.IngestService/SubmitEvents`) served by
/// `service` (a [`Unary`], or one wrapped in the service's interceptor).
pub fn route<S>(routes: Routes, path: &'static str, service: S) -> Routes
where
    S: Service<http::Request<axum::body::Body>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Response: axum::response::IntoResponse + 'static,
    S::Future: Send + 'static,
{
    Routes::from(routes.into_axum_router().route_service(path, service))
}

/// A unary rpc as a service over HTTP requests: `handler` gets the decoded request.
#[derive(Debug)]
pub struct Unary<H, Req, Resp> {
    handler: H,
    max_decoding: usize,
    _messages: PhantomData<fn(Req) -> Resp>,
}

impl<H: Clone, Req, Resp> Clone for Unary<H, Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            max_decoding: self.max_decoding,
            _messages: PhantomData,
        }
    }
}

impl<H, Req, Resp> Unary<H, Req, Resp> {
    /// The rpc answered by `handler`, refusing bodies over `max_decoding` bytes.
    pub fn new(handler: H, max_decoding: usize) -> Self {
        Self {
            handler,
            max_decoding,
            _messages: PhantomData,
        }
    }
}

/// The handler as tonic's servers call it.
struct Call<H>(H);

impl<H, F, Req, Resp> Service<Request<Req>> for Call<H>
where
    H: FnMut(Request<Req>) -> F,
    F: Future<Output = Result<Response<Resp>, Status>>,
{
    type Response = Response<Resp>;
    type Error = Status;
    type Future = F;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Req>) -> F {
        (self.0)(request)
    }
}

impl<H, F, Req, Resp, B> Service<http::Request<B>> for Unary<H, Req, Resp>
where
    H: FnMut(Request<Req>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let handler = self.handler.clone();
        let max_decoding = self.max_decoding;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(GovpulseCodec::<Resp, Req>::default())
                .apply_max_message_size_config(Some(max_decoding), None);
            Ok(grpc.unary(Call(handler), request).await)
        })
    }
}
