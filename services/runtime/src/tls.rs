//! TLS settings every service shares: the server's certificate and key (rustls), the CA that
//! client certificates are verified against (mutual TLS), and, for calls to another service,
//! the CA that service's certificate is checked against and this service's own client
//! certificate. Serving without TLS needs the explicit development setting `--plaintext`.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// How a server secures its connections.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain this server presents.
    #[arg(long, env = "GOVPULSE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "GOVPULSE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to (mutual TLS); a client
    /// without a certificate is still let through the handshake and must then authenticate
    /// otherwise (a bearer token on ingest).
    #[arg(long, env = "GOVPULSE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve plaintext HTTP/2, without TLS: development and tests only.
    #[arg(long, env = "GOVPULSE_PLAINTEXT", num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub plaintext: bool,
}

/// How a service calls another one (ranking and ingest calling aggregate).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UpstreamTlsArgs {
    /// PEM CA certificates the upstream service's certificate must chain to; required for an
    /// `https://` upstream URL.
    #[arg(long, env = "GOVPULSE_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
    /// PEM client certificate presented to the upstream service (mutual TLS).
    #[arg(long, env = "GOVPULSE_UPSTREAM_CERT")]
    pub upstream_cert: Option<PathBuf>,
    /// PEM private key of that client certificate.
    #[arg(long, env = "GOVPULSE_UPSTREAM_KEY")]
    pub upstream_key: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

impl TlsArgs {
    /// The server's TLS configuration, `None` for plaintext. A server with neither a
    /// certificate nor `plaintext` does not start: plaintext is never the silent default.
    pub fn server_config(&self) -> Result<Option<ServerTlsConfig>, String> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) if self.plaintext => return Ok(None),
            (None, None) => {
                return Err(
                    "no TLS certificate: set --tls-cert and --tls-key, or --plaintext for development"
                        .to_owned(),
                );
            }
            _ => return Err("--tls-cert and --tls-key go together".to_owned()),
        };
        let identity = Identity::from_pem(read(cert, "TLS certificate")?, read(key, "TLS key")?);
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.tls_client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(read(ca, "client CA")?))
                .client_auth_optional(true);
        }
        Ok(Some(config))
    }
}

impl UpstreamTlsArgs {
    /// The client TLS configuration for calling `url`: `None` for an `http://` URL.
    pub fn client_config(&self, url: &str) -> Result<Option<ClientTlsConfig>, String> {
        if !url.starts_with("https://") {
            return Ok(None);
        }
        let ca = self
            .upstream_ca
            .as_ref()
            .ok_or_else(|| format!("{url} is https: set --upstream-ca"))?;
        let mut config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca, "upstream CA")?));
        match (&self.upstream_cert, &self.upstream_key) {
            (Some(cert), Some(key)) => {
                config = config.identity(Identity::from_pem(
                    read(cert, "upstream certificate")?,
                    read(key, "upstream key")?,
                ));
            }
            (None, None) => {}
            _ => return Err("--upstream-cert and --upstream-key go together".to_owned()),
        }
        Ok(Some(config))
    }
}
