//! JSON over HTTP beside gRPC, on the same port: axum handlers that call the very service
//! implementations the gRPC routes call. A handler turns the HTTP request into the
//! `tonic::Request` a gRPC call would have produced (metadata from the headers, so
//! `authorization` and `traceparent` count; the connection's extensions, so mutual-TLS
//! peer certificates still identify the agency; the deadline from `X-Server-Timeout`),
//! calls the service, and answers with its message as protobuf JSON (pbjson), or its
//! `tonic::Status` as an HTTP status and a JSON body carrying the same rich details
//! (`google.rpc.BadRequest`, `RetryInfo`, ...) a gRPC client gets. docs/INTEGRATION.md.

use std::{future::Future, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header, request::Parts},
    response::{IntoResponse, Response},
};
use govpulse_proto::codec::MAX_ITEMS;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tonic::{Code, Status, service::Routes};
use tonic_types::{ErrorDetail, StatusExt};

use crate::convert::bad_request;

/// The header an HTTP caller sets to bound a call, in seconds (`2.5`): the HTTP counterpart
/// of gRPC's `grpc-timeout` (the name Google's HTTP APIs use).
pub const SERVER_TIMEOUT: &str = "x-server-timeout";

/// A whole-call failure, answered as an HTTP status and a JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: Status,
    /// An HTTP status other than the one the gRPC code maps to (413 for a body over the
    /// limit, 415 for a body that is not JSON).
    http: Option<StatusCode>,
}

impl ApiError {
    /// The failure `status`, with an HTTP status of its own instead of the code's.
    pub fn with_http(status: Status, http: StatusCode) -> Self {
        Self {
            status,
            http: Some(http),
        }
    }
}

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        Self { status, http: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = status_response(&self.status);
        if let Some(http) = self.http {
            *response.status_mut() = http;
        }
        response
    }
}

/// The HTTP status a gRPC code is answered with.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // 499 "client closed request", as nginx and Google's HTTP APIs answer CANCELLED.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The canonical name of a gRPC code, as google.rpc.Code spells it (`INVALID_ARGUMENT`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `{"code": "...", "message": "...", "details": [...]}`: the status as JSON, its details
/// in the protobuf JSON mapping of `google.protobuf.Any` (an `@type` beside the fields).
pub fn status_json(status: &Status) -> String {
    /// In this order on the wire: code, message, details.
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        details: Vec<Value>,
    }
    let body = ErrorBody {
        code: code_name(status.code()),
        message: status.message(),
        details: status
            .get_error_details_vec()
            .into_iter()
            .filter_map(detail_json)
            .collect(),
    };
    serde_json::to_string(&body).unwrap_or_else(|_| format!("{{\"code\":\"{}\"}}", body.code))
}

/// The response for a failed call: the code's HTTP status, the JSON body, and for
/// RESOURCE_EXHAUSTED with a `RetryInfo` a `Retry-After` header (whole seconds, rounded up).
pub fn status_response(status: &Status) -> Response {
    let mut response = json_text_response(http_status(status.code()), status_json(status));
    let retry = status
        .get_error_details_vec()
        .into_iter()
        .find_map(|detail| match detail {
            ErrorDetail::RetryInfo(info) => info.retry_delay,
            _ => None,
        });
    if let Some(delay) = retry {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

fn detail_json(detail: ErrorDetail) -> Option<Value> {
    const PREFIX: &str = "type.googleapis.com/google.rpc.";
    let value = match detail {
        ErrorDetail::BadRequest(bad) => json!({
            "@type": format!("{PREFIX}BadRequest"),
            "fieldViolations": bad.field_violations.iter().map(|v| json!({
                "field": v.field,
                "description": v.description,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::RetryInfo(info) => {
            let mut value = json!({ "@type": format!("{PREFIX}RetryInfo") });
            if let Some(delay) = info.retry_delay {
                value["retryDelay"] = Value::String(duration_json(delay));
            }
            value
        }
        ErrorDetail::ErrorInfo(info) => json!({
            "@type": format!("{PREFIX}ErrorInfo"),
            "reason": info.reason,
            "domain": info.domain,
            "metadata": info.metadata,
        }),
        ErrorDetail::PreconditionFailure(failure) => json!({
            "@type": format!("{PREFIX}PreconditionFailure"),
            "violations": failure.violations.iter().map(|v| json!({
                "type": v.r#type,
                "subject": v.subject,
                "description": v.description,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::QuotaFailure(failure) => json!({
            "@type": format!("{PREFIX}QuotaFailure"),
            "violations": failure.violations.iter().map(|v| json!({
                "subject": v.subject,
                "description": v.description,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::ResourceInfo(info) => json!({
            "@type": format!("{PREFIX}ResourceInfo"),
            "resourceType": info.resource_type,
            "resourceName": info.resource_name,
            "owner": info.owner,
            "description": info.description,
        }),
        ErrorDetail::Help(help) => json!({
            "@type": format!("{PREFIX}Help"),
            "links": help.links.iter().map(|l| json!({
                "description": l.description,
                "url": l.url,
            })).collect::<Vec<_>>(),
        }),
        ErrorDetail::LocalizedMessage(message) => json!({
            "@type": format!("{PREFIX}LocalizedMessage"),
            "locale": message.locale,
            "message": message.message,
        }),
        ErrorDetail::RequestInfo(info) => json!({
            "@type": format!("{PREFIX}RequestInfo"),
            "requestId": info.request_id,
            "servingData": info.serving_data,
        }),
        // Stack traces are for the server's logs, not for callers.
        _ => return None,
    };
    Some(value)
}

/// A duration in the protobuf JSON mapping: seconds with 0, 3, 6 or 9 decimals (`1.500s`).
pub fn duration_json(delay: Duration) -> String {
    let nanos = delay.subsec_nanos();
    let seconds = delay.as_secs();
    if nanos == 0 {
        format!("{seconds}s")
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{seconds}.{:03}s", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{seconds}.{:06}s", nanos / 1_000)
    } else {
        format!("{seconds}.{nanos:09}s")
    }
}

/// A message as protobuf JSON (`200 OK`, `application/json`), its fields in proto order.
pub fn json_response<M: Serialize>(message: &M) -> Response {
    match serde_json::to_string(message) {
        Ok(body) => json_text_response(StatusCode::OK, body),
        Err(e) => status_response(&Status::internal(format!("cannot encode the answer: {e}"))),
    }
}

fn json_text_response(status: StatusCode, mut body: String) -> Response {
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Decodes a request message from protobuf JSON. A syntax or type error is INVALID_ARGUMENT
/// with a `BadRequest` naming the field by its proto path (`events[2].occurred_at`, or
/// `body` for the document as a whole) and the line and column.
pub fn decode_json<M: DeserializeOwned>(body: &[u8]) -> Result<M, Status> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let message = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = proto_path(&e.path().to_string());
        bad_request(&field, &e.inner().to_string())
    })?;
    deserializer
        .end()
        .map_err(|e| bad_request("body", &e.to_string()))?;
    Ok(message)
}

/// Decodes a batch message from protobuf JSON, as [`decode_json`], after counting the items
/// of its list `field` without building them: a body of the size limit can hold a million
/// empty objects (`{},`), which would take hundreds of megabytes once decoded. More than
/// `max_items` is INVALID_ARGUMENT on `field`, and nothing is decoded.
pub fn decode_json_batch<M: DeserializeOwned>(
    body: &[u8],
    field: &'static str,
    max_items: usize,
) -> Result<M, Status> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // A body that is not an object of lists is refused by the full decoding below, which
    // names what is wrong; here only a list that is too long stops it.
    if let Ok(items) = serde::Deserializer::deserialize_map(&mut deserializer, ItemCount(field))
        && items > max_items
    {
        return Err(bad_request(
            field,
            &format!("has {items} items; no batch may hold more than {max_items}"),
        ));
    }
    decode_json(body)
}

/// Counts the items of one list of a JSON object, ignoring everything else, allocating
/// nothing per item.
struct ItemCount(&'static str);

impl<'de> serde::de::Visitor<'de> for ItemCount {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0 {
                count = map.next_value::<SeqLength>()?.0;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(count)
    }
}

/// The length of a JSON list, its items skipped.
struct SeqLength(usize);

impl<'de> serde::Deserialize<'de> for SeqLength {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = SeqLength;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SeqLength, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(SeqLength(n))
            }
        }
        deserializer.deserialize_seq(Counter)
    }
}

/// `events[2].occurredAt` as the proto names it, `events[2].occurred_at`; `.` (the root) as
/// `body`.
fn proto_path(json_path: &str) -> String {
    if json_path == "." || json_path.is_empty() {
        return "body".to_owned();
    }
    let mut path = String::with_capacity(json_path.len() + 4);
    for c in json_path.chars() {
        if c.is_ascii_uppercase() {
            path.push('_');
            path.push(c.to_ascii_lowercase());
        } else {
            path.push(c);
        }
    }
    path
}

/// Reads a request body of at most `limit` bytes that says it is JSON: 415 when its
/// `Content-Type` is not `application/json` (which also makes a browser on another origin
/// ask first, a CORS preflight, before it can post), 413 over the limit.
pub async fn json_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::with_http(
            bad_request("Content-Type", "the body must be sent as application/json"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ));
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::with_http(
            bad_request(
                "body",
                &format!("larger than {limit} bytes, or cut short: split the batch"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
    })
}

/// The `tonic::Request` a gRPC call with the same headers and connection would have
/// produced, and its deadline: metadata from the headers (`authorization`, `traceparent`,
/// ...), the connection's extensions (`TcpConnectInfo`, `TlsConnectInfo` with the verified
/// client certificates), and `X-Server-Timeout` as the request's `grpc-timeout`, so that a
/// service forwarding the call passes the deadline on.
pub fn grpc_request<M>(
    parts: Parts,
    message: M,
) -> Result<(tonic::Request<M>, Option<Duration>), Status> {
    let deadline = deadline(&parts.headers)?;
    let mut request = tonic::Request::from_http(axum::http::Request::from_parts(parts, message));
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    Ok((request, deadline))
}

fn deadline(headers: &HeaderMap) -> Result<Option<Duration>, Status> {
    let Some(raw) = headers.get(SERVER_TIMEOUT) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|s| s.trim().trim_end_matches('s').parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(|s| Some(Duration::from_secs_f64(s)))
        .ok_or_else(|| {
            bad_request(
                "X-Server-Timeout",
                "must be a number of seconds above 0 and at most 86400, such as 2.5",
            )
        })
}

/// Runs a service call within `deadline`: past it the call is dropped and the answer is
/// DEADLINE_EXCEEDED, as tonic's server does for a gRPC call's `grpc-timeout`.
pub async fn within<R>(
    deadline: Option<Duration>,
    call: impl Future<Output = Result<tonic::Response<R>, Status>>,
) -> Result<R, Status> {
    let response = match deadline {
        None => call.await,
        Some(deadline) => tokio::time::timeout(deadline, call)
            .await
            .map_err(|_| Status::deadline_exceeded("the call took longer than X-Server-Timeout"))?,
    };
    response.map(tonic::Response::into_inner)
}

/// A batch POSTed as JSON: the body (at most `limit` bytes) decoded as the request message,
/// its list `field` at most [`MAX_ITEMS`] long as on the wire ([`decode_json_batch`]),
/// handed to `call` as the gRPC request with the caller's deadline ([`grpc_request`],
/// [`within`]), the answer written as JSON.
pub async fn post_json_batch<M, R, Fut>(
    request: axum::extract::Request,
    limit: usize,
    field: &'static str,
    call: impl FnOnce(tonic::Request<M>) -> Fut,
) -> Result<Response, ApiError>
where
    M: DeserializeOwned,
    R: Serialize,
    Fut: Future<Output = Result<tonic::Response<R>, Status>>,
{
    let (parts, body) = request.into_parts();
    let body = json_body(&parts.headers, body, limit).await?;
    let message: M = decode_json_batch(&body, field, MAX_ITEMS)?;
    let (request, deadline) = grpc_request(parts, message)?;
    let response = within(deadline, call(request)).await?;
    Ok(json_response(&response))
}

/// The JSON routes of `router`, the gRPC services added after them (`Routes::add_service`):
/// one port. A path neither serves is a JSON 404, or UNIMPLEMENTED for a gRPC client. Every
/// HTTP answer is counted in `govpulse_http_requests_total` (gRPC calls are counted by
/// `grpc_metrics`).
pub fn routes(router: axum::Router) -> Routes {
    Routes::from(
        router
            .fallback(no_route)
            .layer(axum::middleware::from_fn(count_request)),
    )
}

/// Counts an HTTP request by its route (the pattern it matched, `/assets/{name}`, so that
/// paths do not make new series; `unknown` for none) and the status of its answer.
async fn count_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unknown".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    if !grpc {
        metrics::counter!(
            govpulse_runtime::prometheus::HTTP_REQUESTS,
            "route" => route,
            "status" => response.status().as_str().to_owned()
        )
        .increment(1);
    }
    response
}

async fn no_route(request: axum::extract::Request) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        let (parts, ()) = Status::unimplemented("").into_http::<()>().into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    status_response(&Status::not_found(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    )))
}

/// Lets pages of any origin read `router`'s routes from a browser (`fetch`, `EventSource`):
/// answers CORS preflights and adds `Access-Control-Allow-Origin: *` to every answer. Safe
/// for these routes because they take a credential only from the `Authorization` header,
/// which a page must set itself (never from cookies): another site's page cannot borrow a
/// user's credential.
pub fn cross_origin_reads(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::from_fn(allow_any_origin))
}

async fn allow_any_origin(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let any = HeaderValue::from_static("*");
    if request.method() == axum::http::Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return (
            StatusCode::NO_CONTENT,
            [
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, any),
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, OPTIONS"),
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(
                        "authorization, accept, last-event-id, x-server-timeout, traceparent, tracestate",
                    ),
                ),
                (
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                ),
            ],
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, any);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("content-disposition, retry-after"),
    );
    response
}

/// The query string's parameters, checked against the names a route takes.
#[derive(Debug)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses the query of `uri`; a parameter not in `allowed` is INVALID_ARGUMENT naming it
    /// (a misspelt parameter would otherwise be silently ignored).
    pub fn parse(uri: &Uri, allowed: &[&str]) -> Result<Self, Status> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
                .map_err(|e| bad_request("query", &e.body_text()))?;
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            return Err(bad_request(
                name,
                &format!("unknown parameter; this route takes {}", allowed.join(", ")),
            ));
        }
        Ok(Self { pairs })
    }

    /// The value of `name`, if given; INVALID_ARGUMENT when it is given twice.
    pub fn one(&self, name: &str) -> Result<Option<&str>, Status> {
        let mut values = self.pairs.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(bad_request(name, "given more than once"));
        }
        Ok(first)
    }

    /// The value of `name`, empty when not given (a proto3 string's default);
    /// INVALID_ARGUMENT when it is given twice.
    pub fn text(&self, name: &str) -> Result<String, Status> {
        Ok(self.one(name)?.unwrap_or_default().to_owned())
    }

    /// Every value of `name`, whether repeated (`metric=a&metric=b`) or comma-separated
    /// (`metric=a,b`).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The value of `name` as a number, if given.
    pub fn number<N: std::str::FromStr>(&self, name: &str) -> Result<Option<N>, Status> {
        self.one(name)?
            .map(|raw| {
                raw.trim().parse().map_err(|_| {
                    bad_request(name, &format!("{raw:?} is not a whole number in range"))
                })
            })
            .transpose()
    }

    /// The value of `name` as a boolean (`true`, `false`, `1`, `0`), if given.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, Status> {
        self.one(name)?
            .map(|raw| match raw.trim() {
                "" | "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                other => Err(bad_request(
                    name,
                    &format!("{other:?} is not true or false"),
                )),
            })
            .transpose()
    }
}

/// Whether the caller asked for CSV: `format=csv`, or `text/csv` in `Accept` (`format=json`
/// wins over the header).
pub fn wants_csv(headers: &HeaderMap, format: Option<&str>) -> Result<bool, Status> {
    match format.map(str::trim) {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(bad_request(
            "format",
            &format!("{other:?} is not a format; use json or csv"),
        )),
        None => Ok(headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"))
            })),
    }
}

/// The answer to a read that offers both formats: with `csv` (see [`wants_csv`]) the header
/// row and rows `table` makes of `message`, as the CSV download `filename`; otherwise
/// `message` as JSON.
pub fn csv_or_json<M: Serialize, H: AsRef<[u8]>>(
    csv: bool,
    filename: &str,
    message: &M,
    table: impl FnOnce(&M) -> (Vec<H>, Vec<Vec<String>>),
) -> Response {
    if csv {
        let (header, rows) = table(message);
        csv_response(filename, &header, &rows)
    } else {
        json_response(message)
    }
}

/// A CSV download: a header row, then `rows`; UTF-8 with a byte order mark, because Excel,
/// which most agencies open downloads with, reads a CSV without one in the legacy Windows
/// code page and garbles Vietnamese names (`HÃ  Ná»™i`); CSV libraries skip it (Python:
/// `encoding="utf-8-sig"`). `filename` is sanitised to `A-Z a-z 0-9 - _ .`.
pub fn csv_response<H: AsRef<[u8]>>(
    filename: &str,
    header_row: &[H],
    rows: &[Vec<String>],
) -> Response {
    let mut writer = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let written = writer
        .write_record(header_row)
        .and_then(|()| rows.iter().try_for_each(|row| writer.write_record(row)));
    let body = match written
        .map_err(|e| e.to_string())
        .and_then(|()| writer.into_inner().map_err(|e| e.to_string()))
    {
        Ok(body) => body,
        Err(e) => return status_response(&Status::internal(format!("cannot write the csv: {e}"))),
    };
    let filename: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use govpulse_proto::ingest::SubmitEventsRequest;
    use tonic_types::ErrorDetails;

    #[test]
    fn each_code_has_its_http_status() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::OutOfRange, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Cancelled, 499),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DataLoss, 500),
        ];
        for (code, http) in cases {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn rich_details_become_typed_json_and_a_retry_after_header() {
        let mut details = ErrorDetails::with_retry_info(Some(Duration::from_millis(1_500)));
        details.add_bad_request_violation("events", "too many");
        let status = Status::with_error_details(Code::ResourceExhausted, "slow down", details);
        let text = status_json(&status);
        assert!(text.starts_with(r#"{"code":"RESOURCE_EXHAUSTED","message":"slow down","#));
        let body: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(body["message"], "slow down");
        let details = body["details"].as_array().expect("details");
        assert!(details.contains(&json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": "1.500s",
        })));
        assert!(details.contains(&json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "events", "description": "too many"}],
        })));
        let response = status_response(&status);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn a_type_error_names_the_field_by_its_proto_path() {
        let body = br#"{"events":[{"eventId":"e-1"},{"eventId":"e-2","occurredAt":"yesterday"}]}"#;
        let status = decode_json::<SubmitEventsRequest>(body).expect_err("bad timestamp");
        assert_eq!(status.code(), Code::InvalidArgument);
        let violations = status.get_details_bad_request().expect("bad request");
        assert_eq!(
            violations.field_violations[0].field,
            "events[1].occurred_at"
        );
        assert!(
            violations.field_violations[0]
                .description
                .contains("column"),
            "{}",
            violations.field_violations[0].description
        );
    }

    #[test]
    fn a_syntax_error_names_the_body_and_the_position() {
        for body in [&b"{\"events\": ["[..], b"", b"{} trailing"] {
            let status = decode_json::<SubmitEventsRequest>(body).expect_err("not json");
            let violations = status.get_details_bad_request().expect("bad request");
            assert!(
                violations.field_violations[0].field == "body"
                    || violations.field_violations[0].field == "events",
                "{:?}",
                violations.field_violations
            );
            assert!(
                violations.field_violations[0]
                    .description
                    .contains("line 1")
            );
        }
    }

    #[test]
    fn durations_use_the_protobuf_json_form() {
        assert_eq!(duration_json(Duration::from_secs(3)), "3s");
        assert_eq!(duration_json(Duration::from_millis(1_500)), "1.500s");
        assert_eq!(duration_json(Duration::from_micros(2)), "0.000002s");
        assert_eq!(duration_json(Duration::from_nanos(7)), "0.000000007s");
    }

    #[test]
    fn csv_is_asked_for_by_parameter_or_accept_header() {
        let mut headers = HeaderMap::new();
        assert!(!wants_csv(&headers, None).expect("valid"));
        assert!(wants_csv(&headers, Some("csv")).expect("valid"));
        assert!(wants_csv(&headers, Some("xml")).is_err());
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/csv;q=0.9, */*"),
        );
        assert!(wants_csv(&headers, None).expect("valid"));
        assert!(!wants_csv(&headers, Some("json")).expect("valid"));
    }

    #[test]
    fn parameters_are_checked_and_may_repeat_or_be_comma_separated() {
        let uri: Uri = "/x?metric=a,b&metric=c&period=2026".parse().expect("uri");
        let params = Params::parse(&uri, &["metric", "period"]).expect("valid");
        assert_eq!(params.all("metric"), ["a", "b", "c"]);
        assert_eq!(params.one("period").expect("once"), Some("2026"));
        assert!(params.one("metric").is_err());
        let uri: Uri = "/x?metrc=a".parse().expect("uri");
        let status = Params::parse(&uri, &["metric"]).expect_err("unknown");
        let violations = status.get_details_bad_request().expect("bad request");
        assert_eq!(violations.field_violations[0].field, "metrc");
    }
}
