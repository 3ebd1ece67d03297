//! Members: the organisations that use the hub, and the types that describe them.

use std::fmt;

use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization;

/// An organisation code as it appears in a certificate (`urn:telesub:org:<CODE>`): 2 to 32
/// characters of `A`–`Z`, `0`–`9`, `-` and `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgCode(String);

impl OrgCode {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_len = (2..=32).contains(&s.len());
        let ok_first = s.starts_with(|c: char| c.is_ascii_uppercase());
        let ok_chars = s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok_len && ok_first && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not an organisation code: use 2 to 32 characters A-Z, 0-9, '-' or '_', starting with a letter"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a member may do; the authorization table lists, for every RPC, the roles allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Labour,
    Operator,
    Ict,
    ProvinceCommittee,
    Locality,
    Education,
    Health,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Labour,
        Role::Operator,
        Role::Ict,
        Role::ProvinceCommittee,
        Role::Locality,
        Role::Education,
        Role::Health,
    ];

    /// The name used in configuration, the database and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Labour => "LABOUR",
            Role::Operator => "OPERATOR",
            Role::Ict => "ICT",
            Role::ProvinceCommittee => "PROVINCE_COMMITTEE",
            Role::Locality => "LOCALITY",
            Role::Education => "EDUCATION",
            Role::Health => "HEALTH",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Role::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("{s:?} is not a role; roles are {}", names.join(", "))
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    Active,
    Suspended,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "ACTIVE",
            MemberStatus::Suspended => "SUSPENDED",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "ACTIVE" => Ok(MemberStatus::Active),
            "SUSPENDED" => Ok(MemberStatus::Suspended),
            other => Err(format!("{other:?} is not a member status")),
        }
    }
}

/// An administrative unit code of the national statistics office: 2 digits for a province,
/// 3 for a district, 5 for a commune. Whether the unit exists is a question for the unit table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitCode(String);

impl UnitCode {
    pub fn parse(s: &str) -> Result<Self, String> {
        if matches!(s.len(), 2 | 3 | 5) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not an administrative unit code: use 2 digits (province), 3 (district) or 5 (commune)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name shown to people: trimmed, Unicode NFC, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let nfc: String = s.trim().nfc().collect();
        let len = nfc.chars().count();
        if len == 0 {
            Err("must not be empty".to_owned())
        } else if len > 200 {
            Err(format!("is {len} characters long; at most 200 are allowed"))
        } else if let Some(why) = super::household::hidden_character(&nfc) {
            Err(why)
        } else {
            Ok(Self(nfc))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A free-text reason recorded with a state change: trimmed NFC, 1 to 500 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn parse(s: &str) -> Result<Self, String> {
        let nfc: String = s.trim().nfc().collect();
        let len = nfc.chars().count();
        if len == 0 {
            Err("a reason is required".to_owned())
        } else if len > 500 {
            Err(format!("is {len} characters long; at most 500 are allowed"))
        } else {
            Ok(Self(nfc))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Lower-case hex SHA-256 of a certificate's DER encoding.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    crate::hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateUse {
    pub fingerprint: String,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub code: OrgCode,
    pub display_name: DisplayName,
    pub role: Role,
    pub unit: Option<UnitCode>,
    pub status: MemberStatus,
    pub status_reason: Option<String>,
    pub certificates: Vec<CertificateUse>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A member as the registry first records it.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub code: OrgCode,
    pub display_name: DisplayName,
    pub role: Role,
    pub unit: Option<UnitCode>,
}

/// The changes an ICT member asks for; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct MemberChanges {
    pub display_name: Option<DisplayName>,
    pub role: Option<Role>,
    /// `Some(None)` clears the unit scope.
    pub unit: Option<Option<UnitCode>>,
    pub reinstate: bool,
}

/// Checks that a role and a unit scope go together: a locality is scoped to its unit, and no
/// other role is scoped.
pub fn check_scope(role: Role, unit: Option<&UnitCode>) -> Result<(), String> {
    match (role, unit) {
        (Role::Locality, None) => Err("a LOCALITY member must be scoped to an administrative unit".to_owned()),
        (Role::Locality, Some(_)) | (_, None) => Ok(()),
        (other, Some(_)) => Err(format!("only LOCALITY members are scoped to a unit, not {other}")),
    }
}

/// Filter of `ListMembers`.
#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    pub role: Option<Role>,
    pub status: Option<MemberStatus>,
}

/// The authenticated caller of one RPC.
#[derive(Debug, Clone)]
pub struct Caller {
    pub member: Member,
    /// Fingerprint of the certificate the call came with.
    pub fingerprint: String,
    /// The person the certificate names, for a person's certificate: kept beside the
    /// organisation in the audit trail and in the decisions the call makes.
    pub person: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_codes() {
        assert!(OrgCode::parse("DOICT").is_ok());
        assert!(OrgCode::parse("VNPT-DAKNONG_2").is_ok());
        for bad in ["", "A", "doict", "1VNPT", "VN PT", "VNPT!", &"A".repeat(33)] {
            assert!(OrgCode::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert_eq!(Role::parse("ict"), Ok(Role::Ict));
        assert!(Role::parse("ADMIN").unwrap_err().contains("LABOUR"));
    }

    #[test]
    fn display_names_are_nfc() {
        // "Sở" written with a combining hook above (NFD) becomes the precomposed form.
        let decomposed = "So\u{31b}\u{309} Thông tin";
        let name = DisplayName::parse(decomposed).unwrap();
        assert_eq!(name.as_str(), "Sở Thông tin");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn unit_codes_and_scope() {
        assert!(UnitCode::parse("67").is_ok());
        assert!(UnitCode::parse("660").is_ok());
        assert!(UnitCode::parse("24611").is_ok());
        assert!(UnitCode::parse("2461").is_err());
        assert!(UnitCode::parse("6a").is_err());
        let unit = UnitCode::parse("660").unwrap();
        assert!(check_scope(Role::Locality, Some(&unit)).is_ok());
        assert!(check_scope(Role::Locality, None).is_err());
        assert!(check_scope(Role::Operator, Some(&unit)).is_err());
        assert!(check_scope(Role::Operator, None).is_ok());
    }
}
