//! Development certificates: a CA, the hub's server certificate and one client certificate
//! per member organisation, as `telesub pki init` writes them. In production the province's
//! own CA issues the certificates; the hub only needs the CA bundle and its own identity.

use std::{
    fmt, fs,
    io::{self, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    str::FromStr,
};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::{
    domain::member::{OrgCode, Role, UnitCode, check_scope},
    transport::ORG_URI_PREFIX,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("certificate generation failed")]
    Generate(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PkiError + 'a {
    move |source| PkiError::Io { action, path: path.to_owned(), source }
}

/// One organisation to issue a certificate for: `CODE:ROLE[:UNIT]` on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSpec {
    pub code: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// An [`OrgSpec`] whose parts parsed.
#[derive(Debug, Clone)]
pub struct ParsedOrg {
    pub code: OrgCode,
    pub role: Role,
    pub unit: Option<UnitCode>,
    pub display_name: String,
}

impl OrgSpec {
    pub fn parse(&self) -> Result<ParsedOrg, String> {
        let code = OrgCode::parse(&self.code)?;
        let role = Role::parse(&self.role)?;
        let unit = self.unit.as_deref().map(UnitCode::parse).transpose()?;
        check_scope(role, unit.as_ref())?;
        let display_name = self.display_name.clone().unwrap_or_else(|| code.as_str().to_owned());
        Ok(ParsedOrg { code, role, unit, display_name })
    }
}

impl FromStr for OrgSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(':');
        let (Some(code), Some(role)) = (parts.next(), parts.next()) else {
            return Err(format!("{s:?} is not CODE:ROLE[:UNIT]"));
        };
        let unit = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err(format!("{s:?} is not CODE:ROLE[:UNIT]"));
        }
        let spec = OrgSpec { code: code.to_owned(), role: role.to_uppercase(), unit, display_name: None };
        spec.parse()?;
        Ok(spec)
    }
}

impl fmt::Display for OrgSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.code, self.role)?;
        if let Some(unit) = &self.unit {
            write!(f, ":{unit}")?;
        }
        Ok(())
    }
}

/// How long a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clocks differ) for `days`.
    pub fn days(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self { not_before: now - Duration::hours(1), not_after: now + Duration::days(days) }
    }
}

/// A certificate and its key, PEM encoded, and its serial number.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: Vec<u8>,
}

/// A certificate authority for development and tests.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

fn random_serial() -> Vec<u8> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = vec![0u8; 16];
    SystemRandom::new().fill(&mut bytes).expect("the system random source works");
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and no leading zero byte to strip
    bytes
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "telesub development");
    dn.push(DnType::CommonName, common_name);
    dn
}

impl DevCa {
    /// A new CA, valid for ten years.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let validity = Validity::days(3_650);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert_pem = params.self_signed(&key)?.pem();
        let key_pem = key.serialize_pem();
        Ok(Self { issuer: Issuer::new(params, key), cert_pem, key_pem })
    }

    /// A CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self { issuer, cert_pem: cert_pem.to_owned(), key_pem: key_pem.to_owned() })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    fn issue(&self, mut params: CertificateParams, validity: Validity) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let serial = random_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial })
    }

    /// The hub's certificate, for the given DNS names and IP addresses.
    pub fn server_certificate(&self, names: &[&str]) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(names.first().copied().unwrap_or("telesub"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        for n in names {
            params.subject_alt_names.push(match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into()?),
            });
        }
        self.issue(params, Validity::days(825))
    }

    /// A member's client certificate: SAN URI `urn:telesub:org:<org>`.
    pub fn client_certificate(&self, org: &str, validity: Validity) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(org);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names = vec![SanType::URI(format!("{ORG_URI_PREFIX}{org}").try_into()?)];
        self.issue(params, validity)
    }

    /// A CRL, valid for 30 days, revoking the certificates with these serial numbers.
    pub fn crl(&self, revoked: &[Vec<u8>]) -> Result<String, PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(30),
            crl_number: SerialNumber::from_slice(&random_serial()),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: now - Duration::minutes(5),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// The file names in a certificate folder.
#[derive(Debug, Clone)]
pub struct PkiDir(PathBuf);

impl PkiDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }
    pub fn root(&self) -> &Path {
        &self.0
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.0.join("server.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.0.join("server.key")
    }
    pub fn crl(&self) -> PathBuf {
        self.0.join("crl.pem")
    }
    /// The key the hub signs audit checkpoints and receipts with.
    pub fn audit_key(&self) -> PathBuf {
        self.0.join("audit-signing.key")
    }
    pub fn client_cert(&self, code: &str) -> PathBuf {
        self.0.join("clients").join(format!("{code}.crt"))
    }
    pub fn client_key(&self, code: &str) -> PathBuf {
        self.0.join("clients").join(format!("{code}.key"))
    }
    /// The members whose certificates were issued here, for `serve --tls-dir` to register.
    pub fn manifest(&self) -> PathBuf {
        self.0.join("members.toml")
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    #[serde(default, rename = "member")]
    members: Vec<OrgSpec>,
}

/// The members listed in a folder's `members.toml`; none when the file is missing.
pub fn read_manifest(dir: &PkiDir) -> Result<Vec<OrgSpec>, PkiError> {
    let path = dir.manifest();
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let manifest: Manifest =
        toml::from_str(&text).map_err(|e| PkiError::Invalid(format!("{} is not valid: {e}", path.display())))?;
    Ok(manifest.members)
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(io_err("write", path))?;
    file.write_all(contents.as_bytes()).map_err(io_err("write", path))
}

/// What `init` did.
#[derive(Debug, Default)]
pub struct InitReport {
    pub created_ca: bool,
    pub issued: Vec<String>,
    pub kept: Vec<String>,
}

/// Writes a development CA (or reuses the one in `dir`), the hub's server certificate for
/// `localhost` and `127.0.0.1`, and a client certificate for each organisation that has none
/// yet, and records the organisations in `members.toml`.
pub fn init(dir: &Path, orgs: &[OrgSpec]) -> Result<InitReport, PkiError> {
    let dir = PkiDir::new(dir);
    let mut report = InitReport::default();
    for org in orgs {
        org.parse().map_err(|e| PkiError::Invalid(format!("--org {org}: {e}")))?;
    }
    let ca = if dir.ca_cert().exists() && dir.ca_key().exists() {
        let read = |p: PathBuf| fs::read_to_string(&p).map_err(io_err("read", &p));
        DevCa::from_pem(&read(dir.ca_cert())?, &read(dir.ca_key())?)?
    } else {
        let ca = DevCa::generate("telesub development CA")?;
        write_file(&dir.ca_key(), ca.key_pem(), true)?;
        write_file(&dir.ca_cert(), ca.cert_pem(), false)?;
        report.created_ca = true;
        ca
    };
    if report.created_ca || !dir.server_cert().exists() || !dir.server_key().exists() {
        let server =
            ca.server_certificate(&["localhost", &Ipv4Addr::LOCALHOST.to_string(), &Ipv6Addr::LOCALHOST.to_string()])?;
        write_file(&dir.server_key(), &server.key_pem, true)?;
        write_file(&dir.server_cert(), &server.cert_pem, false)?;
    }
    if !dir.audit_key().exists() {
        write_file(&dir.audit_key(), &crate::audit::checkpoint::generate_pem(), true)?;
    }
    let mut manifest = Manifest { members: read_manifest(&dir)? };
    for org in orgs {
        let (cert, key) = (dir.client_cert(&org.code), dir.client_key(&org.code));
        if report.created_ca || !cert.exists() || !key.exists() {
            let issued = ca.client_certificate(&org.code, Validity::days(397))?;
            write_file(&key, &issued.key_pem, true)?;
            write_file(&cert, &issued.cert_pem, false)?;
            report.issued.push(org.code.clone());
        } else {
            report.kept.push(org.code.clone());
        }
        manifest.members.retain(|m| m.code != org.code);
        manifest.members.push(org.clone());
    }
    manifest.members.sort_by(|a, b| a.code.cmp(&b.code));
    let text = toml::to_string(&manifest).map_err(|e| PkiError::Invalid(e.to_string()))?;
    write_file(
        &dir.manifest(),
        &format!(
            "# Organisations whose development certificates are in clients/.\n\
             # `telesub serve --tls-dir` registers them as members when they are missing.\n\n{text}"
        ),
        false,
    )?;
    Ok(report)
}

/// The serial number of a PEM certificate.
pub fn serial_of(cert_pem: &str) -> Result<Vec<u8>, PkiError> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| PkiError::Invalid(format!("not a PEM certificate: {e}")))?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| PkiError::Invalid(format!("certificate: {e}")))?;
    Ok(cert.tbs_certificate.raw_serial().to_vec())
}

fn revoked_serials(crl_pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    use rustls_pki_types::{CertificateRevocationListDer, pem::PemObject};
    use x509_parser::prelude::{CertificateRevocationList, FromDer};
    let der = CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes())
        .map_err(|e| PkiError::Invalid(format!("not a PEM CRL: {e}")))?;
    let (_, crl) = CertificateRevocationList::from_der(&der).map_err(|e| PkiError::Invalid(format!("CRL: {e}")))?;
    Ok(crl.iter_revoked_certificates().map(|r| r.raw_serial().to_vec()).collect())
}

/// Adds the client certificates of `codes` to the folder's CRL (`crl.pem`), keeping what it
/// revoked before. The hub reads the CRL on start and on SIGHUP.
pub fn revoke(dir: &Path, codes: &[String]) -> Result<PathBuf, PkiError> {
    let dir = PkiDir::new(dir);
    let read = |p: PathBuf| fs::read_to_string(&p).map_err(io_err("read", &p));
    let ca = DevCa::from_pem(&read(dir.ca_cert())?, &read(dir.ca_key())?)?;
    let mut serials = if dir.crl().exists() { revoked_serials(&read(dir.crl())?)? } else { Vec::new() };
    for code in codes {
        let serial = serial_of(&read(dir.client_cert(code))?)?;
        if !serials.contains(&serial) {
            serials.push(serial);
        }
    }
    write_file(&dir.crl(), &ca.crl(&serials)?, false)?;
    Ok(dir.crl())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_specs_parse() {
        let spec: OrgSpec = "GIANGHIA:locality:660".parse().unwrap();
        assert_eq!(
            (spec.code.as_str(), spec.role.as_str(), spec.unit.as_deref()),
            ("GIANGHIA", "LOCALITY", Some("660"))
        );
        assert!("VNPT".parse::<OrgSpec>().is_err());
        assert!("VNPT:OPERATOR:660".parse::<OrgSpec>().is_err());
        assert!("GIANGHIA:LOCALITY".parse::<OrgSpec>().is_err());
        assert!("VNPT:KING".parse::<OrgSpec>().is_err());
        assert!("a:b:c:d".parse::<OrgSpec>().is_err());
    }

    #[test]
    fn init_writes_everything_and_reuses_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let orgs: Vec<OrgSpec> = vec!["DOICT:ICT".parse().unwrap(), "VNPT:OPERATOR".parse().unwrap()];
        let first = init(tmp.path(), &orgs).unwrap();
        assert!(first.created_ca);
        assert_eq!(first.issued, ["DOICT", "VNPT"]);
        let dir = PkiDir::new(tmp.path());
        for p in [
            dir.ca_cert(),
            dir.ca_key(),
            dir.server_cert(),
            dir.server_key(),
            dir.client_cert("VNPT"),
            dir.client_key("VNPT"),
        ] {
            assert!(p.exists(), "{} missing", p.display());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.ca_key()).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the CA key is readable by others");
        }
        let ca_before = fs::read(dir.ca_cert()).unwrap();
        let second = init(tmp.path(), &["VIETTEL:OPERATOR".parse().unwrap()]).unwrap();
        assert!(!second.created_ca);
        assert_eq!(second.issued, ["VIETTEL"]);
        assert_eq!(fs::read(dir.ca_cert()).unwrap(), ca_before);
        let codes: Vec<String> = read_manifest(&dir).unwrap().into_iter().map(|m| m.code).collect();
        assert_eq!(codes, ["DOICT", "VIETTEL", "VNPT"]);
    }

    #[test]
    fn revoke_accumulates_serials() {
        let tmp = tempfile::tempdir().unwrap();
        init(tmp.path(), &["A1:OPERATOR".parse().unwrap(), "B1:OPERATOR".parse().unwrap()]).unwrap();
        let crl = revoke(tmp.path(), &["A1".to_owned()]).unwrap();
        revoke(tmp.path(), &["B1".to_owned()]).unwrap();
        let serials = revoked_serials(&fs::read_to_string(crl).unwrap()).unwrap();
        let dir = PkiDir::new(tmp.path());
        for code in ["A1", "B1"] {
            let serial = serial_of(&fs::read_to_string(dir.client_cert(code)).unwrap()).unwrap();
            assert!(serials.contains(&serial), "{code} not revoked");
        }
    }
}
