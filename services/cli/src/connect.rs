//! How the command reaches a deployment that requires TLS and credentials: the CA its
//! certificates chain to (for `https://` URLs), a client certificate for mutual TLS, and a
//! bearer token sent with every call (docs/SECURITY.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

/// The credentials and TLS settings of the client commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnectArgs {
    /// Bearer token sent with every call (`govpulse token` makes one: a reporter's to
    /// submit, an assessor's to assess, a reader's to read rankings that are not public, a
    /// publisher's to publish); none for a development deployment.
    #[arg(long, env = "GOVPULSE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificates the services' certificates chain to; needed for `https://` URLs.
    #[arg(long, env = "GOVPULSE_CA")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (one naming an agency and its roles is a
    /// credential, like a token).
    #[arg(long, env = "GOVPULSE_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long, env = "GOVPULSE_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// The name the service's certificate must carry, when the URL's host is another one
    /// (through `kubectl port-forward`, 127.0.0.1 presents the certificate of `ranking`).
    #[arg(long, env = "GOVPULSE_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
}

/// A service as the command calls it: where, how, and with which token.
#[derive(Debug, Clone)]
pub struct Remote {
    endpoint: Endpoint,
    authorization: Option<MetadataValue<Ascii>>,
}

impl ConnectArgs {
    /// The service at `url`: over TLS for `https://` (which needs `--ca`), plaintext for
    /// `http://`. Nothing is connected yet.
    pub fn remote(&self, url: &str) -> anyhow::Result<Remote> {
        let tls = self.tls(url)?;
        let endpoint =
            govpulse_runtime::client::endpoint(url, None, tls).map_err(anyhow::Error::msg)?;
        let authorization = self
            .token
            .as_ref()
            .map(|token| {
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| anyhow::anyhow!("the token is not printable ASCII"))
            })
            .transpose()?;
        Ok(Remote {
            endpoint,
            authorization,
        })
    }

    fn tls(&self, url: &str) -> anyhow::Result<Option<ClientTlsConfig>> {
        if !url.starts_with("https://") {
            // A CA or a certificate given for a plaintext URL is a mistake that would send the
            // token in the clear: say so rather than ignore it.
            anyhow::ensure!(
                self.ca.is_none() && self.client_cert.is_none(),
                "{url} is not https://, but --ca or --client-cert is set: use https://"
            );
            return Ok(None);
        }
        let ca = self.ca.as_deref().with_context(|| {
            format!("{url} is https://: give --ca, the CA its certificate chains to")
        })?;
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(name) = &self.tls_server_name {
            config = config.domain_name(name);
        }
        Ok(Some(config))
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

impl Remote {
    /// A channel that connects on first use and reconnects when the connection drops.
    pub fn channel(&self) -> Channel {
        self.endpoint.connect_lazy()
    }

    /// A connected channel, or the reason none could be made.
    pub async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        self.endpoint.connect().await
    }

    /// `message` as a request carrying the bearer token, when there is one.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        request
    }
}
