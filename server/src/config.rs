//! Configuration in layers: built-in defaults, then a TOML file (`--config` or
//! `TELESUB_CONFIG`), then environment variables (`TELESUB_LISTEN`, `TELESUB_TLS__CA_FILE`, …:
//! `__` separates levels), then command-line flags.

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use crate::{pki::PkiDir, storage::redact_url, tls::TlsPaths};

/// A database URL: `sqlite://PATH` or `postgres://…`. Shown with its password hidden.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the hub listens (TLS only; there is no plaintext listener).
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created when missing) or `postgres://USER:PASSWORD@HOST/DB`.
    pub database_url: DatabaseUrl,
    /// Connections in the database pool (readers, for SQLite).
    pub database_max_connections: u32,
    /// How long a call waits for the database (a connection, or the server coming back)
    /// before it is answered `UNAVAILABLE`; never longer than the request deadline.
    pub database_timeout_ms: u64,
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `telesub_server=debug,info`; `RUST_LOG` wins.
    pub log_filter: String,
    /// How long a member record is cached before the database is read again.
    pub identity_cache_ms: u64,
    /// After Ctrl-C or SIGTERM, how long calls in flight may take to finish.
    pub shutdown_grace_ms: u64,
    /// How many years ahead of today a new policy version may start.
    pub policy_horizon_years: u32,
    pub tls: TlsSettings,
    pub limits: Limits,
    pub audit: AuditSettings,
    pub metrics: MetricsSettings,
    /// How long what the hub keeps beyond the programme's need is kept (see
    /// [`crate::domain::retention`]).
    pub retention: crate::domain::retention::RetentionPolicy,
    pub traces: TraceSettings,
}

/// Spans exported to an OpenTelemetry collector (see [`crate::telemetry`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceSettings {
    /// The collector's OTLP/gRPC address, e.g. `http://127.0.0.1:4317` (an agent on the
    /// host). Left out: no spans are exported. Needs a hub built with the `otlp` feature.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the spans carry.
    pub service_name: String,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "telesub".to_owned() }
    }
}

/// The metrics and health listener (see [`crate::metrics`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where Prometheus' metrics and the health answers are served, in plain HTTP (no client
    /// certificate): keep it on loopback or a monitoring network. Off when left out.
    pub listen: Option<SocketAddr>,
}

/// The audit trail's checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// The Ed25519 key checkpoints and receipts are signed with (PKCS#8 PEM); `audit-signing.key`
    /// in `tls.dir` when left out.
    pub signing_key_file: Option<PathBuf>,
    /// The log's name: the first line of every checkpoint, and the key's name.
    pub origin: String,
    /// How often, while records are added, a checkpoint is signed (and once more on shutdown).
    pub checkpoint_interval_ms: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            signing_key_file: None,
            origin: crate::audit::checkpoint::DEFAULT_ORIGIN.to_owned(),
            checkpoint_interval_ms: 5_000,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 50051)),
            database_url: DatabaseUrl("sqlite://telesub.db".to_owned()),
            database_max_connections: 8,
            database_timeout_ms: 2_000,
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            identity_cache_ms: 5_000,
            shutdown_grace_ms: 30_000,
            policy_horizon_years: crate::domain::policy::DEFAULT_HORIZON_YEARS,
            tls: TlsSettings::default(),
            limits: Limits::default(),
            audit: AuditSettings::default(),
            metrics: MetricsSettings::default(),
            retention: crate::domain::retention::RetentionPolicy::default(),
            traces: TraceSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// A folder as `telesub pki init` writes it: `ca.crt`, `server.crt`, `server.key`, and
    /// `crl.pem` when present. Files named below take precedence.
    pub dir: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates are accepted.
    pub client_ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// PEM CRLs; reread with the rest on SIGHUP.
    pub crl_files: Vec<PathBuf>,
    /// Milliseconds a client has to complete the TLS handshake (0 means 10 000).
    pub handshake_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message, either way, in bytes.
    pub max_message_bytes: usize,
    /// Longest a call may take before its response starts; a shorter client deadline wins.
    pub request_timeout_ms: u64,
    /// Longest a batch push (a client stream of records) may take.
    pub batch_timeout_ms: u64,
    /// Calls in progress across all connections; beyond it calls get `UNAVAILABLE`.
    pub max_concurrent_requests: usize,
    /// Calls one member may have in progress; beyond it its calls get `RESOURCE_EXHAUSTED`.
    /// Unset: a quarter of `max_concurrent_requests`.
    pub max_requests_per_member: Option<usize>,
    /// Change feeds (`WatchChanges`) open across all members; they hold no call place.
    pub max_streams: usize,
    /// Change feeds one member may hold open. Unset: a quarter of `max_streams`.
    pub max_streams_per_member: Option<usize>,
    /// Eligibility questions of batch calls being decided, stored or sent at one time, across
    /// all calls: what bounds the memory batch calls take, whatever their number.
    pub max_checks_in_flight: usize,
    /// HTTP/2 streams one connection may have open.
    pub max_concurrent_streams_per_connection: u32,
}

impl Limits {
    /// The calls one member may have in progress.
    pub fn requests_per_member(&self) -> usize {
        self.max_requests_per_member.unwrap_or(self.max_concurrent_requests.div_ceil(4))
    }

    /// The change feeds one member may hold open.
    pub fn streams_per_member(&self) -> usize {
        self.max_streams_per_member.unwrap_or(self.max_streams.div_ceil(4))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout_ms: 30_000,
            batch_timeout_ms: 3_600_000,
            max_concurrent_requests: 1_024,
            max_requests_per_member: None,
            max_streams: 1_024,
            max_streams_per_member: None,
            max_checks_in_flight: 200_000,
            max_concurrent_streams_per_connection: 256,
        }
    }
}

/// Flags given on the command line; only those set override the other layers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsOverrides>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricsOverrides {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsOverrides {
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "database_url",
    "database_max_connections",
    "database_timeout_ms",
    "log_format",
    "log_filter",
    "identity_cache_ms",
    "shutdown_grace_ms",
    "policy_horizon_years",
    "tls",
    "limits",
    "audit",
    "metrics",
    "retention",
    "traces",
];

impl Settings {
    /// Reads the layers in order: defaults, `file`, `TELESUB_*` environment, `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::MissingFile(file.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // The filter sees the name as written (`DATABASE_URL`, `LIMITS__MAX_MESSAGE_BYTES`);
        // other `TELESUB_` variables (`TELESUB_CONFIG`, the CLI's `TELESUB_ENDPOINT`) are not
        // settings.
        let env = Env::prefixed("TELESUB_").split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            let top = key.split("__").next().and_then(|k| k.split('.').next()).unwrap_or_default();
            TOP_LEVEL_KEYS.contains(&top)
        });
        let mut settings: Settings = figment
            .merge(env)
            .merge(Serialized::globals(overrides))
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(tls) = &overrides.tls {
            // `--tls-dir` names the whole folder: files named in a lower layer do not mix in.
            settings.tls = TlsSettings {
                dir: Some(tls.dir.clone()),
                handshake_timeout_ms: settings.tls.handshake_timeout_ms,
                ..TlsSettings::default()
            };
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let positive = [
            ("limits.max_message_bytes", l.max_message_bytes as u64),
            ("limits.request_timeout_ms", l.request_timeout_ms),
            ("limits.batch_timeout_ms", l.batch_timeout_ms),
            ("limits.max_concurrent_requests", l.max_concurrent_requests as u64),
            ("limits.max_requests_per_member", l.requests_per_member() as u64),
            ("limits.max_streams", l.max_streams as u64),
            ("limits.max_streams_per_member", l.streams_per_member() as u64),
            ("limits.max_checks_in_flight", l.max_checks_in_flight as u64),
            ("limits.max_concurrent_streams_per_connection", u64::from(l.max_concurrent_streams_per_connection)),
            ("database_max_connections", u64::from(self.database_max_connections)),
            ("database_timeout_ms", self.database_timeout_ms),
            ("policy_horizon_years", u64::from(self.policy_horizon_years)),
            ("audit.checkpoint_interval_ms", self.audit.checkpoint_interval_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{key} must be greater than 0")));
            }
        }
        if let Err((key, why)) = self.retention.check() {
            return Err(ConfigError::Invalid(format!("retention.{key} {why}")));
        }
        let shares = [
            (
                "limits.max_requests_per_member",
                l.requests_per_member(),
                "limits.max_concurrent_requests",
                l.max_concurrent_requests,
            ),
            ("limits.max_streams_per_member", l.streams_per_member(), "limits.max_streams", l.max_streams),
        ];
        for (key, share, total_key, total) in shares {
            if share > total {
                return Err(ConfigError::Invalid(format!(
                    "{key} ({share}) is more than {total_key} ({total}): a member's share is part of the whole"
                )));
            }
        }
        if l.max_checks_in_flight < crate::transport::MAX_CHECKS_PER_MESSAGE {
            return Err(ConfigError::Invalid(format!(
                "limits.max_checks_in_flight ({}) is less than the questions one message may carry ({})",
                l.max_checks_in_flight,
                crate::transport::MAX_CHECKS_PER_MESSAGE
            )));
        }
        Ok(())
    }

    /// The audit signing key's file: the one named, or the TLS folder's.
    pub fn audit_key_file(&self) -> Option<PathBuf> {
        self.audit.signing_key_file.clone().or_else(|| self.tls.dir.as_ref().map(|d| PkiDir::new(d).audit_key()))
    }

    /// Reads the audit signing key.
    pub fn audit_key(&self) -> Result<crate::audit::checkpoint::SigningKey, ConfigError> {
        let Some(path) = self.audit_key_file() else {
            return Err(ConfigError::Invalid(
                "no audit signing key: set audit.signing_key_file, or give --tls-dir a folder `telesub pki init` \
                 wrote (it writes audit-signing.key)"
                    .into(),
            ));
        };
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::Invalid(format!("the audit signing key {}: {e}", path.display())))?;
        crate::audit::checkpoint::SigningKey::from_pem(&pem, &self.audit.origin)
            .map_err(|e| ConfigError::Invalid(format!("the audit signing key {}: {e}", path.display())))
    }

    /// The database timeout, within the request deadline.
    pub fn database_timeout(&self) -> Duration {
        Duration::from_millis(self.database_timeout_ms).min(self.request_timeout())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.request_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn handshake_timeout(&self) -> Duration {
        match self.tls.handshake_timeout_ms {
            0 => Duration::from_secs(10),
            ms => Duration::from_millis(ms),
        }
    }

    /// The TLS files to serve with: each named file, or its default in `tls.dir`.
    pub fn tls_paths(&self) -> Result<TlsPaths, ConfigError> {
        let dir = self.tls.dir.as_ref().map(PkiDir::new);
        let pick = |file: &Option<PathBuf>, key: &str, default: fn(&PkiDir) -> PathBuf| {
            file.clone().or_else(|| dir.as_ref().map(default)).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "no TLS {key}: the hub only serves mutual TLS; give --tls-dir DIR (see `telesub pki init`) \
                     or set tls.client_ca_file, tls.cert_file and tls.key_file"
                ))
            })
        };
        Ok(TlsPaths {
            client_ca: pick(&self.tls.client_ca_file, "client CA (tls.client_ca_file)", PkiDir::ca_cert)?,
            cert: pick(&self.tls.cert_file, "certificate (tls.cert_file)", PkiDir::server_cert)?,
            key: pick(&self.tls.key_file, "key (tls.key_file)", PkiDir::server_key)?,
            crls: self.tls.crl_files.clone(),
            optional_crl: dir.as_ref().filter(|_| self.tls.crl_files.is_empty()).map(PkiDir::crl),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("telesub.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:6000\"\nlog_format = \"json\"\n[limits]\nrequest_timeout_ms = 5000\n[tls]\ndir = \"/etc/telesub/tls\"\n",
        )
        .unwrap();
        let overrides = Overrides { listen: Some("127.0.0.1:7000".parse().unwrap()), ..Overrides::default() };
        let s = Settings::load(Some(&file), &overrides).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.limits.request_timeout_ms, 5000);
        assert_eq!(s.limits.max_concurrent_requests, Limits::default().max_concurrent_requests);
        let paths = s.tls_paths().unwrap();
        assert_eq!(paths.client_ca, Path::new("/etc/telesub/tls/ca.crt"));
    }

    #[test]
    fn the_tls_dir_flag_wins_over_files_named_in_the_file() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/telesub.example.toml");
        let flags = Overrides { tls: Some(TlsOverrides { dir: "/tmp/dev-tls".into() }), ..Overrides::default() };
        let s = Settings::load(Some(&example), &flags).unwrap();
        let paths = s.tls_paths().unwrap();
        assert_eq!(paths.client_ca, Path::new("/tmp/dev-tls/ca.crt"));
        assert_eq!(paths.cert, Path::new("/tmp/dev-tls/server.crt"));
        assert!(paths.crls.is_empty());
        assert_eq!(paths.optional_crl.as_deref(), Some(Path::new("/tmp/dev-tls/crl.pem")));
    }

    #[test]
    fn the_documented_example_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/telesub.example.toml");
        let s = Settings::load(Some(&example), &Overrides::default()).unwrap();
        assert_eq!(s.limits.max_message_bytes, Limits::default().max_message_bytes);
        assert_eq!(s.tls_paths().unwrap().client_ca, Path::new("/etc/telesub/province-ca.crt"));
    }

    #[test]
    fn bad_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope.toml");
        assert!(matches!(Settings::load(Some(&missing), &Overrides::default()), Err(ConfigError::MissingFile(_))));
        let typo = tmp.path().join("typo.toml");
        std::fs::write(&typo, "lisen = \"0.0.0.0:1\"\n").unwrap();
        let err = Settings::load(Some(&typo), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        let zero = tmp.path().join("zero.toml");
        std::fs::write(&zero, "[limits]\nmax_concurrent_requests = 0\n").unwrap();
        let err = Settings::load(Some(&zero), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("limits.max_concurrent_requests"), "{err}");
    }

    #[test]
    fn a_members_share_is_a_quarter_of_the_whole_unless_set() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("shares.toml");
        std::fs::write(&file, "[limits]\nmax_concurrent_requests = 10\nmax_streams = 8\n").unwrap();
        let s = Settings::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!((s.limits.requests_per_member(), s.limits.streams_per_member()), (3, 2));
        std::fs::write(&file, "[limits]\nmax_requests_per_member = 10\nmax_streams_per_member = 1\n").unwrap();
        let s = Settings::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!((s.limits.requests_per_member(), s.limits.streams_per_member()), (10, 1));

        for (text, key) in [
            ("[limits]\nmax_requests_per_member = 0\n", "limits.max_requests_per_member must be greater than 0"),
            ("[limits]\nmax_streams = 4\nmax_streams_per_member = 5\n", "limits.max_streams_per_member (5) is more"),
            ("[limits]\nmax_checks_in_flight = 9999\n", "limits.max_checks_in_flight (9999) is less"),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = Settings::load(Some(&file), &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn the_retention_policy_is_read_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("retention.toml");
        std::fs::write(&file, "[retention]\ndecisions_years = 10\n").unwrap();
        let s = Settings::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!((s.retention.decisions_years, s.retention.samples_years), (10, 5));
        std::fs::write(&file, "[retention]\nsamples_years = 0\n").unwrap();
        let err = Settings::load(Some(&file), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("retention.samples_years is 0; it must be between 1 and 100 years"), "{err}");
        std::fs::write(&file, "[retention]\nhouseholds_years = 3\n").unwrap();
        let err = Settings::load(Some(&file), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("households_years"), "a key the policy does not know: {err}");
    }

    #[test]
    fn tls_is_required_to_serve() {
        let err = Settings::default().tls_paths().unwrap_err().to_string();
        assert!(err.contains("--tls-dir"), "{err}");
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let s =
            Settings { database_url: DatabaseUrl("postgres://hub:s3cret@db/telesub".into()), ..Settings::default() };
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
