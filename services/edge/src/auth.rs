//! Who is calling: bearer tokens (kept only as SHA-256 hashes in a file that is re-read when
//! it changes) and client certificates (mutual TLS, the agency named by a URI SAN), turned
//! into a `Principal` that names an agency and its roles, and the audit log of every refusal.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use govpulse_core::{AgencyId, Catalog};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tonic::{
    Request, Status,
    codegen::http::{Extensions, HeaderMap},
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tracing::{info, warn};

use govpulse_runtime::live_file::LiveFile;

/// The URI SAN prefix that names the agency of a client certificate.
pub const AGENCY_URI_PREFIX: &str = "govpulse:agency:";
/// The URI SAN prefix that names one role of a client certificate.
pub const ROLE_URI_PREFIX: &str = "govpulse:role:";

/// What a credential allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends dossier events for its agency and the units below it.
    Reporter,
    /// Reports assessed scores (the `ReportAssessedScores` rpc).
    Assessor,
    /// Changes the catalog, targets and index profiles.
    Admin,
    /// Reads rankings and metrics where reading is not public.
    Reader,
    /// Publishes figures (RankingService.Publish): a publication is immutable and public.
    Publisher,
}

impl Role {
    /// The role named `raw` (`reporter`, `assessor`, `admin`, `reader`, `publisher`).
    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "reporter" => Some(Role::Reporter),
            "assessor" => Some(Role::Assessor),
            "admin" => Some(Role::Admin),
            "reader" => Some(Role::Reader),
            "publisher" => Some(Role::Publisher),
            _ => None,
        }
    }

    /// The role's name, as written in token files and certificates.
    pub fn name(self) -> &'static str {
        match self {
            Role::Reporter => "reporter",
            Role::Assessor => "assessor",
            Role::Admin => "admin",
            Role::Reader => "reader",
            Role::Publisher => "publisher",
        }
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A bearer token found in the token file.
    Token,
    /// A client certificate signed by the configured client CA.
    Certificate,
    /// Nothing: development mode with anonymous calls allowed.
    Anonymous,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The agency the credential names; `None` only for anonymous development calls, which
    /// may act for every agency.
    pub agency: Option<AgencyId>,
    /// What it may do.
    pub roles: Vec<Role>,
    /// How it was proved.
    pub via: Via,
}

impl Principal {
    /// The anonymous development caller: every role, every agency.
    pub fn anonymous() -> Self {
        Self {
            agency: None,
            roles: vec![
                Role::Reporter,
                Role::Assessor,
                Role::Admin,
                Role::Reader,
                Role::Publisher,
            ],
            via: Via::Anonymous,
        }
    }

    /// Whether it holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether it may send events of `agency`: a reporter of that agency or of one of its
    /// ancestors (a province for its departments, never a sibling or a child for its parent).
    pub fn may_report_for(&self, catalog: &Catalog, agency: &AgencyId) -> bool {
        if !self.has(Role::Reporter) {
            return false;
        }
        match &self.agency {
            None => true,
            Some(own) => catalog.chain(agency).contains(own),
        }
    }

    /// The agency for logs: its id, or `anonymous`.
    pub fn agency_name(&self) -> String {
        self.agency
            .as_ref()
            .map_or_else(|| "anonymous".to_owned(), ToString::to_string)
    }
}

/// Why a call's credential was refused: always UNAUTHENTICATED, never naming the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential: send `authorization: Bearer <token>` or a client certificate")]
    Missing,
    #[error("the authorization header is not `Bearer <token>`")]
    Malformed,
    #[error("unknown or revoked token")]
    UnknownToken,
    #[error("the token of agency {agency} expired at {expired_at}")]
    Expired { agency: String, expired_at: String },
    #[error("client certificate refused: {0}")]
    Certificate(String),
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Status {
        Status::unauthenticated(error.to_string())
    }
}

/// Why a call is refused before it does anything: no valid credential, or a credential
/// without the role the call needs.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// UNAUTHENTICATED.
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    /// PERMISSION_DENIED.
    #[error("agency {agency} lacks the {role} role")]
    MissingRole { agency: String, role: &'static str },
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Status {
        match refusal {
            Refusal::Unauthenticated(e) => Status::from(e),
            e @ Refusal::MissingRole { .. } => Status::permission_denied(e.to_string()),
        }
    }
}

/// Audit: one structured warning per refused credential, denied scope or rate-limited call.
/// `reason` never holds a secret; the log target is `govpulse::audit`.
///
/// Counted in `govpulse_refusals_total{reason = kind}`; each kind logs at most one line a
/// second, with how many refusals went unlogged since its last (`refusals.rs`): a flood of
/// refused calls cannot flood the log.
pub fn audit(kind: &'static str, agency: &str, peer: Option<SocketAddr>, reason: &str) {
    let Some(unlogged) = crate::refusals::count(kind) else {
        return;
    };
    let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
    warn!(target: "govpulse::audit", audit = kind, agency, peer, reason, unlogged, "call refused");
}

/// One credential of the token file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Lowercase hex SHA-256 of the token.
    sha256: String,
    agency: String,
    roles: Vec<String>,
    /// RFC 3339; the token is refused from then on.
    expires_at: Option<String>,
    /// Free text for people (who holds it, when it was issued).
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    credential: Vec<TokenEntry>,
}

#[derive(Debug, Clone)]
struct Credential {
    hash: [u8; 32],
    agency: AgencyId,
    roles: Vec<Role>,
    expires_at: Option<OffsetDateTime>,
}

/// The credentials of one version of the token file.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    credentials: Vec<Credential>,
}

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// The SHA-256 of a token, as the token file stores it (lowercase hex).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (256 bits, hex) and its hash.
pub fn new_token() -> (String, String) {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let hash = token_hash(&token);
    (token, hash)
}

impl Tokens {
    /// Parses a token file's text; every agency must be in `catalog`.
    pub fn parse(text: &str, catalog: &Catalog) -> Result<Self, String> {
        let file: TokenFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut credentials = Vec::with_capacity(file.credential.len());
        for (i, entry) in file.credential.into_iter().enumerate() {
            let at = |reason: String| format!("credential[{i}]: {reason}");
            let mut hash = [0u8; 32];
            hex::decode_to_slice(entry.sha256.trim(), &mut hash)
                .map_err(|e| at(format!("sha256 is not 64 hex digits: {e}")))?;
            let agency = catalog
                .agency_by_str(&entry.agency)
                .ok_or_else(|| at(format!("agency {:?} is not in the catalog", entry.agency)))?
                .id
                .clone();
            let roles = entry
                .roles
                .iter()
                .map(|r| Role::parse(r).ok_or_else(|| at(format!("unknown role {r:?}"))))
                .collect::<Result<Vec<_>, _>>()?;
            if roles.is_empty() {
                return Err(at("no role".to_owned()));
            }
            let expires_at = entry
                .expires_at
                .map(|raw| {
                    OffsetDateTime::parse(&raw, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| at(format!("expires_at {raw:?} is not RFC 3339: {e}")))
                })
                .transpose()?;
            credentials.push(Credential {
                hash,
                agency,
                roles,
                expires_at,
            });
        }
        Ok(Self { credentials })
    }

    /// The credential of `token` at `now`. Every stored hash is compared in constant time,
    /// so the time taken does not tell how close a guess was.
    pub fn check(&self, token: &str, now: OffsetDateTime) -> Result<Principal, AuthError> {
        let digest = Sha256::digest(token.as_bytes());
        let mut found: Option<&Credential> = None;
        for credential in &self.credentials {
            if bool::from(credential.hash.as_slice().ct_eq(digest.as_slice())) {
                found = Some(credential);
            }
        }
        let credential = found.ok_or(AuthError::UnknownToken)?;
        if let Some(expires_at) = credential.expires_at
            && now >= expires_at
        {
            return Err(AuthError::Expired {
                agency: credential.agency.to_string(),
                expired_at: expires_at.to_string(),
            });
        }
        Ok(Principal {
            agency: Some(credential.agency.clone()),
            roles: credential.roles.clone(),
            via: Via::Token,
        })
    }

    /// How many credentials it holds.
    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }
}

fn load_tokens(path: &Path, catalog: &Catalog) -> Result<Tokens, TokensError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
        path: name.clone(),
        source,
    })?;
    Tokens::parse(&text, catalog).map_err(|reason| TokensError::Invalid { path: name, reason })
}

/// Where a service reads its bearer tokens: a group of flags ingest and ranking share.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenFileArgs {
    /// TOML file of bearer tokens (their SHA-256, agency, roles, expiry); re-read when it
    /// changes. See docs/SECURITY.md.
    #[arg(long, env = "GOVPULSE_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// How often the token file is checked for changes.
    #[arg(long, env = "GOVPULSE_TOKENS_RELOAD_MS", default_value_t = 5_000)]
    pub tokens_reload_ms: u64,
}

impl Default for TokenFileArgs {
    /// No token file, checked every 5 s once there is one, as the flags' defaults.
    fn default() -> Self {
        Self {
            tokens: None,
            tokens_reload_ms: 5_000,
        }
    }
}

impl TokenFileArgs {
    /// The token file at `path`, checked every 5 s.
    pub fn at(path: PathBuf) -> Self {
        Self {
            tokens: Some(path),
            ..Self::default()
        }
    }

    /// The token file loaded, `None` when none is set; an invalid file stops start-up.
    pub fn load(&self, catalog: &Arc<Catalog>) -> Result<Option<LiveTokens>, TokensError> {
        self.tokens
            .clone()
            .map(|path| LiveTokens::load(path, catalog.clone()))
            .transpose()
    }

    /// How often the file is checked for changes.
    pub fn every(&self) -> Duration {
        Duration::from_millis(self.tokens_reload_ms.max(1))
    }
}

/// The token file in force, replaced when the file changes (a Kubernetes Secret mounted as a
/// file changes in place), so tokens are issued and revoked without a restart.
#[derive(Debug, Clone)]
pub struct LiveTokens(LiveFile<Tokens>);

impl LiveTokens {
    /// Loads the file; an invalid file stops start-up.
    pub fn load(path: PathBuf, catalog: Arc<Catalog>) -> Result<Self, TokensError> {
        let read = move |p: &Path| load_tokens(p, &catalog);
        let live = LiveFile::load(path, "tokens", read, Tokens::len)?;
        info!(path = ?live.path(), credentials = live.get().len(), "tokens loaded");
        Ok(Self(live))
    }

    /// The tokens in force now.
    pub fn get(&self) -> Arc<Tokens> {
        self.0.get()
    }

    /// Checks the file every `every` and loads it again when its modification time changes;
    /// an invalid new version is logged and ignored (the previous tokens stay in force).
    /// Returns when `stop` is cancelled.
    pub async fn watch(self, every: Duration, stop: CancellationToken) {
        self.0.watch(every, stop).await;
    }
}

/// The agency and roles a client certificate names: the agency from the one URI SAN
/// `govpulse:agency:<id>`, roles from URI SANs `govpulse:role:<role>` (none: `reporter`).
/// The chain itself was verified by rustls against the client CA during the handshake.
pub fn certificate_principal(der: &[u8], catalog: &Catalog) -> Result<Principal, AuthError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| AuthError::Certificate(format!("unreadable: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| AuthError::Certificate(format!("bad subject alternative names: {e}")))?
        .ok_or_else(|| AuthError::Certificate("no subject alternative name".to_owned()))?;
    let mut agencies = Vec::new();
    let mut roles = Vec::new();
    for name in &san.value.general_names {
        if let x509_parser::extensions::GeneralName::URI(uri) = name {
            if let Some(agency) = uri.strip_prefix(AGENCY_URI_PREFIX) {
                agencies.push(agency);
            } else if let Some(role) = uri.strip_prefix(ROLE_URI_PREFIX) {
                roles.push(
                    Role::parse(role)
                        .ok_or_else(|| AuthError::Certificate(format!("unknown role {role:?}")))?,
                );
            }
        }
    }
    let [agency] = agencies[..] else {
        return Err(AuthError::Certificate(format!(
            "needs exactly one URI SAN {AGENCY_URI_PREFIX}<agency id>, has {}",
            agencies.len()
        )));
    };
    let agency = catalog
        .agency_by_str(agency)
        .ok_or_else(|| AuthError::Certificate(format!("agency {agency:?} is not in the catalog")))?
        .id
        .clone();
    if roles.is_empty() {
        roles.push(Role::Reporter);
    }
    Ok(Principal {
        agency: Some(agency),
        roles,
        via: Via::Certificate,
    })
}

/// Decides who a call is from: a bearer token when the `authorization` header is present
/// (a wrong token is refused even if a certificate is also presented), else the client
/// certificate, else anonymous when development mode allows it.
#[derive(Clone)]
pub struct Authenticator {
    catalog: Arc<Catalog>,
    tokens: Option<LiveTokens>,
    anonymous: bool,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.as_ref().map(|t| t.get().len()))
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

impl Authenticator {
    /// The caller of `request`, if it holds `role`: the principal the edge already found
    /// (`Principal` in the request's extensions, when it authenticated before reading the
    /// body), else the one its credential names. A caller without the role is audited.
    pub fn authorize<T>(&self, request: &Request<T>, role: Role) -> Result<Principal, Refusal> {
        let principal = match request.extensions().get::<Principal>() {
            Some(principal) => principal.clone(),
            None => self.authenticate(request)?,
        };
        if !principal.has(role) {
            let agency = principal.agency_name();
            audit(
                "scope_denied",
                &agency,
                request.remote_addr(),
                &format!("the credential lacks the {} role", role.name()),
            );
            return Err(Refusal::MissingRole {
                agency,
                role: role.name(),
            });
        }
        Ok(principal)
    }

    /// Accepts tokens from `tokens` (when given), client certificates (when the server has a
    /// client CA, rustls only lets verified ones through) and, with `anonymous`, calls with
    /// no credential (development only).
    pub fn new(catalog: Arc<Catalog>, tokens: Option<LiveTokens>, anonymous: bool) -> Self {
        Self {
            catalog,
            tokens,
            anonymous,
        }
    }

    /// The caller of `request`, or UNAUTHENTICATED (audited).
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, AuthError> {
        self.authenticate_parts(request.metadata().as_ref(), request.extensions())
    }

    /// The caller of a request from its headers and its connection (the extensions the
    /// server set: address, verified client certificates), before anything of its body is
    /// read: what the edge checks first, so that a caller without a credential costs a
    /// header's worth of work.
    pub fn authenticate_parts(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Principal, AuthError> {
        let result = self.identify(headers, extensions);
        if let Err(error) = &result {
            audit(
                "credential_rejected",
                match error {
                    AuthError::Expired { agency, .. } => agency,
                    _ => "unknown",
                },
                remote_addr(extensions),
                &error.to_string(),
            );
        }
        result
    }

    fn identify(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Principal, AuthError> {
        if let Some(header) = headers.get("authorization") {
            let token = header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(AuthError::Malformed)?;
            let tokens = self.tokens.as_ref().ok_or(AuthError::UnknownToken)?;
            return tokens.get().check(token, OffsetDateTime::now_utc());
        }
        if let Some(certs) = extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            && let Some(leaf) = certs.first()
        {
            return certificate_principal(leaf.as_ref(), &self.catalog);
        }
        if self.anonymous {
            return Ok(Principal::anonymous());
        }
        Err(AuthError::Missing)
    }
}

/// The credential a long-lived call (an event stream, a live ranking) was opened with, to
/// check again while it lasts: a token removed from the token file, or past its expiry,
/// ends the call instead of letting it go on. A call opened with a client certificate or
/// anonymously has nothing to check again (certificates are revoked by rotating the CA).
#[derive(Debug, Clone)]
pub struct StreamCredential {
    auth: Authenticator,
    token: Option<tonic::codegen::http::HeaderValue>,
}

impl StreamCredential {
    /// The credential of `request`, checked by `auth`.
    pub fn of<T>(auth: &Authenticator, request: &Request<T>) -> Self {
        Self {
            auth: auth.clone(),
            token: request.metadata().as_ref().get("authorization").cloned(),
        }
    }

    /// UNAUTHENTICATED when the call's token is no longer valid (audited).
    pub fn still_valid(&self) -> Result<(), Status> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        headers.insert("authorization", token.clone());
        self.auth
            .authenticate_parts(&headers, &Extensions::new())
            .map(|_| ())
            .map_err(|e| {
                Status::unauthenticated(format!("the call's credential no longer holds: {e}"))
            })
    }
}

/// How often a long-lived call checks its credential again.
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// The peer's address, from the connection information the server put in `extensions`.
pub fn remote_addr(extensions: &Extensions) -> Option<SocketAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        govpulse_runtime::catalog_files::built_in().expect("valid catalog")
    }

    fn id(raw: &str) -> AgencyId {
        AgencyId::parse(raw).expect("id")
    }

    /// A token file of one credential: the token of `hash`, for `agency`, with `roles` (the
    /// items of a TOML list), then the lines `more`.
    fn credential(hash: &str, agency: &str, roles: &str, more: &str) -> String {
        format!(
            "[[credential]]\nsha256 = \"{hash}\"\nagency = \"{agency}\"\nroles = [{roles}]\n{more}"
        )
    }

    #[test]
    fn a_listed_token_names_its_agency_and_roles_and_others_are_unknown() {
        let (token, hash) = new_token();
        let text = credential(&hash, "ha-noi", r#""reporter", "reader""#, "");
        let tokens = Tokens::parse(&text, &catalog()).expect("valid");
        let principal = tokens
            .check(&token, OffsetDateTime::now_utc())
            .expect("known");
        assert_eq!(principal.agency, Some(id("ha-noi")));
        assert_eq!(principal.roles, vec![Role::Reporter, Role::Reader]);
        assert_eq!(
            tokens.check("not-the-token", OffsetDateTime::now_utc()),
            Err(AuthError::UnknownToken)
        );
    }

    #[test]
    fn an_expired_token_is_refused_naming_its_agency() {
        let (token, hash) = new_token();
        let expiry = "expires_at = \"2026-01-01T00:00:00Z\"\n";
        let text = credential(&hash, "ha-noi", r#""reporter""#, expiry);
        let tokens = Tokens::parse(&text, &catalog()).expect("valid");
        let before = time::macros::datetime!(2025-12-31 23:59 UTC);
        let after = time::macros::datetime!(2026-01-01 00:00 UTC);
        assert!(tokens.check(&token, before).is_ok());
        assert!(matches!(
            tokens.check(&token, after),
            Err(AuthError::Expired { agency, .. }) if agency == "ha-noi"
        ));
    }

    #[test]
    fn a_token_file_with_an_unknown_agency_role_or_bad_hash_is_refused() {
        let catalog = catalog();
        let hash = token_hash("x");
        for (text, needle) in [
            (
                credential(&hash, "atlantis", r#""reporter""#, ""),
                "atlantis",
            ),
            (credential(&hash, "ha-noi", r#""king""#, ""), "king"),
            (credential("abc", "ha-noi", r#""reporter""#, ""), "sha256"),
        ] {
            let error = Tokens::parse(&text, &catalog).expect_err("refused");
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn a_reporter_may_send_for_itself_and_its_units_but_not_its_parent_or_siblings() {
        let catalog = catalog();
        let unit = catalog
            .agencies()
            .find(|a| a.parent.is_some())
            .expect("a unit");
        let parent = unit.parent.clone().expect("parent");
        let sibling_province = if parent.as_str() == "ha-noi" {
            "hai-phong"
        } else {
            "ha-noi"
        };
        let as_parent = Principal {
            agency: Some(parent.clone()),
            roles: vec![Role::Reporter],
            via: Via::Token,
        };
        let as_unit = Principal {
            agency: Some(unit.id.clone()),
            ..as_parent.clone()
        };
        assert!(as_parent.may_report_for(&catalog, &parent));
        assert!(as_parent.may_report_for(&catalog, &unit.id));
        assert!(!as_parent.may_report_for(&catalog, &id(sibling_province)));
        assert!(!as_unit.may_report_for(&catalog, &parent));
        let reader_only = Principal {
            roles: vec![Role::Reader],
            ..as_parent
        };
        assert!(!reader_only.may_report_for(&catalog, &parent));
    }

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_refused_token_is_audited_with_the_reason_but_never_the_secret() {
        let catalog = Arc::new(catalog());
        let (token, hash) = new_token();
        let expiry = "expires_at = \"2020-01-01T00:00:00Z\"\n";
        let text = credential(&hash, "ha-noi", r#""reporter""#, expiry);
        let path = std::env::temp_dir().join(format!("govpulse-audit-{}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write");
        let tokens = LiveTokens::load(path.clone(), catalog.clone()).expect("valid");
        let auth = Authenticator::new(catalog, Some(tokens), false);
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer({
                let sink = sink.clone();
                move || sink.clone()
            })
            .finish();
        let results = tracing::subscriber::with_default(subscriber, || {
            let mut expired = Request::new(());
            expired.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
            let mut wrong = Request::new(());
            wrong.metadata_mut().insert(
                "authorization",
                "Bearer guessed-secret".parse().expect("header"),
            );
            [
                auth.authenticate(&expired),
                auth.authenticate(&wrong),
                auth.authenticate(&Request::new(())),
            ]
        });
        assert!(results.iter().all(Result::is_err));
        let logged = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = logged.lines().collect();
        // One line a second per kind of refusal: the first of the three is written, the two
        // after it are counted and told in the next line (refusals.rs).
        assert_eq!(lines.len(), 1, "{logged}");
        for line in &lines {
            assert!(line.contains("\"audit\":\"credential_rejected\""), "{line}");
            assert!(
                line.contains("\"peer\":") && line.contains("\"reason\":"),
                "{line}"
            );
            assert!(line.contains("govpulse::audit"), "{line}");
        }
        assert!(lines[0].contains("\"agency\":\"ha-noi\""), "{}", lines[0]);
        assert!(
            !logged.contains(&token) && !logged.contains(&hash),
            "{logged}"
        );
        assert!(!logged.contains("guessed-secret"), "{logged}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_certificate_names_its_agency_by_uri_san() {
        let catalog = catalog();
        let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
        params.subject_alt_names = vec![
            rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from("govpulse:agency:ha-noi").expect("ia5"),
            ),
            rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from("govpulse:role:assessor").expect("ia5"),
            ),
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let principal = certificate_principal(cert.der(), &catalog).expect("principal");
        assert_eq!(principal.agency, Some(id("ha-noi")));
        assert_eq!(principal.roles, vec![Role::Assessor]);

        let bare = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        assert!(matches!(
            certificate_principal(bare.der(), &catalog),
            Err(AuthError::Certificate(_))
        ));
    }
}
