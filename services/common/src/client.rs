//! gRPC client channels between services (and from the CLI): lazy, reconnecting, with
//! TCP_NODELAY so that small calls are not held back by Nagle's algorithm.

use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

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
