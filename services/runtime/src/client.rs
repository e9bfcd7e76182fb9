//! gRPC client channels between services (and from the CLI): lazy, reconnecting, with
//! TCP_NODELAY so that small calls are not held back by Nagle's algorithm.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// The longest wait between two attempts to reconnect a stream.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// The waits between attempts to reconnect a stream that follows another service: from
/// `first`, doubling up to 5 s, for as long as it takes; [`ReconnectDelays::reset`] once
/// connected, so that the next break starts from `first` again.
#[derive(Debug)]
pub struct ReconnectDelays {
    first: Duration,
    delays: ExponentialBackoff,
}

impl ReconnectDelays {
    /// Waits starting from `first`.
    pub fn new(first: Duration) -> Self {
        Self {
            first,
            delays: Self::start(first),
        }
    }

    fn start(first: Duration) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(first)
            .with_max_delay(MAX_RECONNECT_DELAY)
            .without_max_times()
            .build()
    }

    /// Connected: the next wait is `first` again.
    pub fn reset(&mut self) {
        self.delays = Self::start(self.first);
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(MAX_RECONNECT_DELAY)
    }
}

/// A channel to `url` that connects on first use and reconnects whenever the connection
/// drops; `call_timeout` bounds each call (for unary calls), `None` leaves calls unbounded
/// (streams).
pub fn lazy_channel(url: &str, call_timeout: Option<Duration>) -> Result<Channel, String> {
    lazy_channel_tls(url, call_timeout, None)
}

/// `lazy_channel` over TLS (`https://` URLs) with `tls`: the upstream's CA and, for mutual
/// TLS, this service's client certificate.
pub fn lazy_channel_tls(
    url: &str,
    call_timeout: Option<Duration>,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, String> {
    Ok(endpoint(url, call_timeout, tls)?.connect_lazy())
}

/// How ingest and ranking reach aggregate: a group of flags both services share.
#[derive(Debug, Clone, clap::Args)]
pub struct AggregateArgs {
    /// The aggregate service.
    #[arg(long, env = "GOVPULSE_AGGREGATE_URL", default_value = "http://127.0.0.1:50052")]
    pub aggregate_url: String,
    /// TLS towards aggregate (for an `https://` aggregate URL).
    #[command(flatten)]
    pub upstream: crate::tls::UpstreamTlsArgs,
}

impl AggregateArgs {
    /// Aggregate at `url`, with no upstream TLS files: plaintext (an `https://` URL needs
    /// `upstream` set before [`AggregateArgs::channel`]).
    pub fn at(url: String) -> Self {
        Self {
            aggregate_url: url,
            upstream: crate::tls::UpstreamTlsArgs::default(),
        }
    }

    /// The channel to aggregate: [`lazy_channel_tls`] to its URL, over TLS as `upstream`
    /// says for an `https://` URL. The error says which setting is wrong: the upstream TLS
    /// files, or the URL (`aggregate url: ...`).
    pub fn channel(&self, call_timeout: Option<Duration>) -> Result<Channel, String> {
        let url = &self.aggregate_url;
        let tls = self.upstream.client_config(url)?;
        lazy_channel_tls(url, call_timeout, tls).map_err(|e| format!("aggregate url: {e}"))
    }
}

/// The endpoint the channels above connect to, for a caller that connects when it chooses
/// (`Endpoint::connect`, which fails at once when nothing answers).
pub fn endpoint(
    url: &str,
    call_timeout: Option<Duration>,
    tls: Option<ClientTlsConfig>,
) -> Result<Endpoint, String> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("tls for {url}: {e}"))?;
    }
    Ok(match call_timeout {
        Some(timeout) => endpoint.timeout(timeout),
        None => endpoint,
    })
}

/// The request that forwards `message` to another service on behalf of a call that came
/// with `incoming`: the current trace context, and the caller's deadline (`grpc-timeout`)
/// so that the upstream gives up when the caller does.
pub fn forwarded<T>(incoming: &tonic::metadata::MetadataMap, message: T) -> tonic::Request<T> {
    let mut request = crate::telemetry::traced(message);
    if let Some(timeout) = incoming
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc_timeout)
    {
        request.set_timeout(timeout);
    }
    request
}

/// An upstream's failure as this service's: the same code, message and details, without
/// the upstream's response headers. tonic's client reports a deadline that expired as
/// CANCELLED: for a call `forwarded` with the caller's deadline that is DEADLINE_EXCEEDED.
pub fn upstream_status(status: tonic::Status, had_deadline: bool) -> tonic::Status {
    if had_deadline && status.code() == tonic::Code::Cancelled {
        return tonic::Status::deadline_exceeded(format!(
            "the deadline passed while waiting for the upstream: {}",
            status.message()
        ));
    }
    tonic::Status::with_details(
        status.code(),
        status.message(),
        status.details().to_vec().into(),
    )
}

/// A `grpc-timeout` value (`1500m`, `2S`: at most 8 digits and a unit).
pub fn grpc_timeout(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.checked_mul(3600)?),
        "M" => Duration::from_secs(value.checked_mul(60)?),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_read_every_unit_and_refuse_the_rest() {
        assert_eq!(grpc_timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("5"), None);
        assert_eq!(grpc_timeout("123456789S"), None);
        assert_eq!(grpc_timeout("1x"), None);
    }

    #[test]
    fn a_forwarded_request_keeps_the_callers_deadline() {
        let mut incoming = tonic::Request::new(());
        incoming.set_timeout(Duration::from_millis(750));
        let out = forwarded(incoming.metadata(), ());
        assert_eq!(
            out.metadata()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok()),
            incoming
                .metadata()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
        );
    }

    #[test]
    fn reconnect_delays_double_from_the_first_up_to_five_seconds_and_start_over_when_reset() {
        let first = Duration::from_millis(100);
        let mut delays = ReconnectDelays::new(first);
        let waits: Vec<Duration> = (0..10).map(|_| delays.next_delay()).collect();
        // Doubled as floating point: within a microsecond.
        for (wait, times) in waits.iter().zip([1, 2, 4]) {
            assert!(
                wait.abs_diff(first * times) < Duration::from_micros(1),
                "{waits:?}"
            );
        }
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(waits[9], MAX_RECONNECT_DELAY, "{waits:?}");
        // Never ends: a stream is followed for as long as it takes.
        assert_eq!(
            (0..100).map(|_| delays.next_delay()).max(),
            Some(MAX_RECONNECT_DELAY)
        );
        delays.reset();
        assert_eq!(delays.next_delay(), first);
    }
}
