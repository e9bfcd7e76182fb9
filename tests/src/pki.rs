//! Certificates for the TLS tests: a CA, and certificates it signs, in PEM.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    string::Ia5String,
};

/// A certificate authority.
#[derive(Debug)]
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl Pki {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        Self {
            ca: CertifiedIssuer::self_signed(params, key).expect("ca"),
        }
    }

    /// The CA's own certificate.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A certificate for the DNS names `dns` and URI names `uris` (an agency's
    /// `govpulse:agency:<id>`), valid now, or expired since 2021.
    pub fn issue(&self, dns: &[&str], uris: &[&str], expired: bool) -> Pem {
        let mut params =
            CertificateParams::new(dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())
                .expect("params");
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI(Ia5String::try_from(*uri).expect("ia5")));
        }
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("signed");
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Writes `pem` as `<name>.crt` and `<name>.key` in `dir`; their paths.
pub fn write_pem(dir: &Path, name: &str, pem: &Pem) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, &pem.cert).expect("cert");
    std::fs::write(&key, &pem.key).expect("key");
    (cert, key)
}

/// A new CA and a server certificate it signs for `names` (DNS names or IP addresses),
/// written in `dir` as `ca.crt`, `tls.crt` and `tls.key`; their paths, in that order.
pub fn write_server_pki(dir: &Path, names: &[&str]) -> [PathBuf; 3] {
    let pki = Pki::new("govpulse test CA");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, pki.ca_pem()).expect("write the CA");
    let (cert, key) = write_pem(dir, "tls", &pki.issue(names, &[], false));
    [ca, cert, key]
}
