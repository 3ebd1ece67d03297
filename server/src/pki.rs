//! Development certificates: a CA, the hub's server certificate and one client certificate
//! per member organisation (and per person named with `--person`), each also as a PKCS#12
//! file a browser imports, as `telesub pki init` writes them. In production the province's
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

/// A person of a member organisation, for a certificate whose subject names them:
/// `CODE:LOGIN:FULL NAME` on the command line, e.g. `DOICT:lan:Nguyễn Thị Lan`. The files are
/// `clients/CODE.LOGIN.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonSpec {
    pub org: OrgCode,
    /// Lower-case letters, digits and `-`: a file name part.
    pub login: String,
    pub full_name: String,
}

impl PersonSpec {
    /// The name the files of this person's certificate start with: `CODE.LOGIN`.
    pub fn file_stem(&self) -> String {
        format!("{}.{}", self.org.as_str(), self.login)
    }
}

impl FromStr for PersonSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.splitn(3, ':');
        let (Some(org), Some(login), Some(full_name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{s:?} is not CODE:LOGIN:FULL NAME"));
        };
        let org = OrgCode::parse(org)?;
        if login.is_empty()
            || login.len() > 32
            || !login.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("login {login:?} is not 1 to 32 lower-case letters, digits or '-'"));
        }
        let full_name = full_name.trim();
        if full_name.is_empty() || full_name.chars().count() > 128 || full_name.chars().any(char::is_control) {
            return Err(format!("full name {full_name:?} is not 1 to 128 printable characters"));
        }
        Ok(Self { org, login: login.to_owned(), full_name: full_name.to_owned() })
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

/// X.520 `surname` (2.5.4.4) and `givenName` (2.5.4.42).
const SURNAME: [u64; 4] = [2, 5, 4, 4];
const GIVEN_NAME: [u64; 4] = [2, 5, 4, 42];

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

    /// A person's client certificate: the organisation's SAN URI, and a subject naming the
    /// person as a natural person's certificate does (ETSI EN 319 412-2: common name, surname
    /// and given name); the hub keeps that name beside the organisation.
    pub fn person_certificate(&self, person: &PersonSpec, validity: Validity) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "VN");
        dn.push(DnType::OrganizationName, person.org.as_str());
        let words: Vec<&str> = person.full_name.split_whitespace().collect();
        // A Vietnamese name is the family name first and the given name last.
        dn.push(DnType::CustomDnType(SURNAME.to_vec()), words[0]);
        dn.push(DnType::CustomDnType(GIVEN_NAME.to_vec()), words[words.len() - 1]);
        dn.push(DnType::CommonName, person.full_name.as_str());
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names = vec![SanType::URI(format!("{ORG_URI_PREFIX}{}", person.org).try_into()?)];
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
    /// The certificate, its CA and its key as one PKCS#12 file, for importing into a browser.
    pub fn client_p12(&self, code: &str) -> PathBuf {
        self.0.join("clients").join(format!("{code}.p12"))
    }
    /// The password of [`Self::client_p12`].
    pub fn client_p12_password(&self, code: &str) -> PathBuf {
        self.0.join("clients").join(format!("{code}.p12.password"))
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

fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
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
    file.write_all(contents).map_err(io_err("write", path))
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
    init_with_people(dir, orgs, &[])
}

/// [`init`], and a certificate for each person that has none yet; a person's organisation is
/// one of `orgs` or already in the folder. Every client certificate also gets its PKCS#12
/// file and that file's password.
pub fn init_with_people(dir: &Path, orgs: &[OrgSpec], people: &[PersonSpec]) -> Result<InitReport, PkiError> {
    let dir = PkiDir::new(dir);
    let mut report = InitReport::default();
    for org in orgs {
        org.parse().map_err(|e| PkiError::Invalid(format!("--org {org}: {e}")))?;
    }
    let mut manifest = Manifest { members: read_manifest(&dir)? };
    for person in people {
        let known = |code: &str| code == person.org.as_str();
        if !orgs.iter().any(|o| known(&o.code)) && !manifest.members.iter().any(|m| known(&m.code)) {
            return Err(PkiError::Invalid(format!(
                "--person {}: organisation {} is neither given with --org nor in {}",
                person.file_stem(),
                person.org,
                dir.manifest().display()
            )));
        }
    }
    let ca = if dir.ca_cert().exists() && dir.ca_key().exists() {
        let read = |p: PathBuf| fs::read_to_string(&p).map_err(io_err("read", &p));
        DevCa::from_pem(&read(dir.ca_cert())?, &read(dir.ca_key())?)?
    } else {
        let ca = DevCa::generate("telesub development CA")?;
        write_file(&dir.ca_key(), ca.key_pem().as_bytes(), true)?;
        write_file(&dir.ca_cert(), ca.cert_pem().as_bytes(), false)?;
        report.created_ca = true;
        ca
    };
    if report.created_ca || !dir.server_cert().exists() || !dir.server_key().exists() {
        let server =
            ca.server_certificate(&["localhost", &Ipv4Addr::LOCALHOST.to_string(), &Ipv6Addr::LOCALHOST.to_string()])?;
        write_file(&dir.server_key(), server.key_pem.as_bytes(), true)?;
        write_file(&dir.server_cert(), server.cert_pem.as_bytes(), false)?;
    }
    if !dir.audit_key().exists() {
        write_file(&dir.audit_key(), crate::audit::checkpoint::generate_pem().as_bytes(), true)?;
    }
    let stems = orgs.iter().map(|org| (org.code.clone(), None)).chain(people.iter().map(|p| (p.file_stem(), Some(p))));
    for (stem, person) in stems {
        let (cert, key) = (dir.client_cert(&stem), dir.client_key(&stem));
        if report.created_ca || !cert.exists() || !key.exists() {
            let validity = Validity::days(397);
            let issued = match person {
                Some(person) => ca.person_certificate(person, validity)?,
                None => ca.client_certificate(&stem, validity)?,
            };
            write_file(&key, issued.key_pem.as_bytes(), true)?;
            write_file(&cert, issued.cert_pem.as_bytes(), false)?;
            report.issued.push(stem.clone());
        } else {
            report.kept.push(stem.clone());
        }
        if report.created_ca || report.issued.contains(&stem) || !dir.client_p12(&stem).exists() {
            let read = |p: PathBuf| fs::read_to_string(&p).map_err(io_err("read", &p));
            write_p12(&dir, &stem, &read(cert)?, &read(key)?, ca.cert_pem())?;
        }
    }
    for org in orgs {
        manifest.members.retain(|m| m.code != org.code);
        manifest.members.push(org.clone());
    }
    manifest.members.sort_by(|a, b| a.code.cmp(&b.code));
    let text = toml::to_string(&manifest).map_err(|e| PkiError::Invalid(e.to_string()))?;
    write_file(
        &dir.manifest(),
        format!(
            "# Organisations whose development certificates are in clients/.\n\
             # `telesub serve --tls-dir` registers them as members when they are missing.\n\n{text}"
        )
        .as_bytes(),
        false,
    )?;
    Ok(report)
}

/// Writes `clients/STEM.p12` (the certificate, its CA and its key, encrypted with AES-256
/// under PBKDF2 and MACed with HMAC-SHA256, which browsers and OpenSSL 3 read) and its
/// password, random, in `clients/STEM.p12.password`.
fn write_p12(dir: &PkiDir, stem: &str, cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<(), PkiError> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    use ring::rand::{SecureRandom, SystemRandom};
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let invalid = |what: &str, e: &dyn fmt::Display| PkiError::Invalid(format!("{stem}: {what}: {e}"));
    let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| invalid("certificate", &e));
    let certs = [der(cert_pem)?, der(ca_pem)?]
        .iter()
        .map(|c| Certificate::from_der(c).map_err(|e| invalid("certificate", &e)))
        .collect::<Result<Vec<_>, _>>()?;
    let key = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| invalid("key", &e))? {
        PrivateKeyDer::Pkcs8(key) => PrivateKey::from_der(key.secret_pkcs8_der()).map_err(|e| invalid("key", &e))?,
        _ => return Err(invalid("key", &"not PKCS#8")),
    };
    let mut local_id = [0u8; 20];
    let mut secret = [0u8; 12];
    let random = SystemRandom::new();
    random.fill(&mut local_id).and_then(|()| random.fill(&mut secret)).expect("the system random source works");
    let password = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
    let mut store = KeyStore::new();
    store.add_entry(stem, KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_id.to_vec(), key, certs)));
    let bytes = store.writer(&password).write().map_err(|e| invalid("PKCS#12", &e))?;
    write_file(&dir.client_p12_password(stem), format!("{password}\n").as_bytes(), true)?;
    write_file(&dir.client_p12(stem), &bytes, true)
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
    write_file(&dir.crl(), ca.crl(&serials)?.as_bytes(), false)?;
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
    fn person_specs_parse() {
        let spec: PersonSpec = "DOICT:lan:Nguyễn Thị Lan".parse().unwrap();
        assert_eq!(
            (spec.org.as_str(), spec.login.as_str(), spec.full_name.as_str()),
            ("DOICT", "lan", "Nguyễn Thị Lan")
        );
        assert_eq!(spec.file_stem(), "DOICT.lan");
        for bad in [
            "DOICT:lan",
            "DOICT:Lan:Nguyễn Thị Lan",
            "DOICT::Nguyễn",
            "doict:lan:Nguyễn",
            "DOICT:lan:  ",
            "DOICT:lan:a\nb",
        ] {
            assert!(bad.parse::<PersonSpec>().is_err(), "{bad:?} accepted");
        }
    }

    /// Each client certificate gets a PKCS#12 file that opens with its password and holds the
    /// certificate, its CA and the certificate's key; a person's names them in its subject.
    #[test]
    fn init_writes_pkcs12_files_for_organisations_and_people() {
        use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let tmp = tempfile::tempdir().unwrap();
        let person: PersonSpec = "DOICT:lan:Nguyễn Thị Lan".parse().unwrap();
        let report =
            init_with_people(tmp.path(), &["DOICT:ICT".parse().unwrap()], std::slice::from_ref(&person)).unwrap();
        assert_eq!(report.issued, ["DOICT", "DOICT.lan"]);
        let dir = PkiDir::new(tmp.path());
        for stem in ["DOICT", "DOICT.lan"] {
            let password = fs::read_to_string(dir.client_p12_password(stem)).unwrap();
            let bytes = fs::read(dir.client_p12(stem)).unwrap();
            assert!(KeyStore::from_pkcs12(&bytes, "wrong", Pkcs12ImportPolicy::Strict).is_err());
            let store = KeyStore::from_pkcs12(&bytes, password.trim(), Pkcs12ImportPolicy::Strict).unwrap();
            let (_, chain) = store.private_key_chain().expect("a key with its chain");
            let cert = CertificateDer::from_pem_file(dir.client_cert(stem)).unwrap();
            let ca = CertificateDer::from_pem_file(dir.ca_cert()).unwrap();
            let ders: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
            assert_eq!(ders, [cert.as_ref(), ca.as_ref()], "{stem}: the chain is the certificate then its CA");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(dir.client_p12(stem)).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{stem}: the PKCS#12 file is readable by others");
            }
        }
        let subject = p12_keystore::Certificate::from_der(
            CertificateDer::from_pem_file(dir.client_cert("DOICT.lan")).unwrap().as_ref(),
        )
        .unwrap()
        .subject()
        .to_owned();
        assert!(subject.contains("Nguyễn Thị Lan"), "{subject}");
        // A person of an organisation the folder does not know is refused.
        let stranger: PersonSpec = "VNPT:an:Trần Văn An".parse().unwrap();
        let err = init_with_people(tmp.path(), &[], &[stranger]).unwrap_err().to_string();
        assert!(err.contains("VNPT"), "{err}");
        // Run again, nothing is reissued and the files stay.
        let before = fs::read(dir.client_p12("DOICT.lan")).unwrap();
        let again = init_with_people(tmp.path(), &[], &[person]).unwrap();
        assert_eq!((again.issued.len(), again.kept.as_slice()), (0, ["DOICT.lan".to_owned()].as_slice()));
        assert_eq!(fs::read(dir.client_p12("DOICT.lan")).unwrap(), before);
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
