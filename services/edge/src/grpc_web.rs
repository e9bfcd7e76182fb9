//! gRPC-Web for the gRPC services without turning away the JSON routes: tonic-web's layer
//! answers 400 to every HTTP/1.1 request that is not gRPC-Web, so only gRPC-Web requests are
//! passed through it and every other request goes straight to the routes.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tonic::{
    body::Body,
    codegen::http::{Request, Response, header},
};
use tower::{Layer, Service};

/// Translates gRPC-Web requests (binary and text) to gRPC; lets every other request through.
#[derive(Debug, Clone)]
pub struct GrpcWeb<S> {
    inner: S,
}

impl<S> GrpcWeb<S> {
    /// Around `inner`; as a layer, `tower::layer::layer_fn(GrpcWeb::new)`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcWeb<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError> + std::fmt::Display,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError> + std::fmt::Display,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service polled ready is the one called; a clone stays for the next call.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let grpc_web = request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"));
        if grpc_web {
            Box::pin(tonic_web::GrpcWebLayer::new().layer(ready).call(request))
        } else {
            let mut ready = ready;
            let response = ready.call(request.map(Body::new));
            Box::pin(async move { Ok(response.await?.map(Body::new)) })
        }
    }
}
