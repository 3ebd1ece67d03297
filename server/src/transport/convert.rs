//! Conversions between protobuf messages and domain types.

use telesub_proto::v1 as pb;
use time::OffsetDateTime;

use crate::domain::{
    DomainError,
    member::{Member, MemberStatus, Role},
};

/// The size of page a list request asks for, as the domain takes it: a negative one is refused
/// naming the field, in the same words on every list (each list sets its own most).
pub(super) fn page_size(asked: i32) -> Result<u32, String> {
    u32::try_from(asked).map_err(|_| format!("is {asked}; a page size is not negative (0 asks for the default)"))
}

/// [`page_size`], refused as the call's error.
pub(super) fn page_size_or_invalid(asked: i32) -> Result<u32, DomainError> {
    page_size(asked).map_err(|e| DomainError::invalid("page_size", e))
}

pub(super) fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.unix_timestamp(), nanos: t.nanosecond() as i32 }
}

pub(super) fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Labour => pb::Role::Labour,
        Role::Operator => pb::Role::Operator,
        Role::Ict => pb::Role::Ict,
        Role::ProvinceCommittee => pb::Role::ProvinceCommittee,
        Role::Locality => pb::Role::Locality,
        Role::Education => pb::Role::Education,
        Role::Health => pb::Role::Health,
    }
}

/// The domain role of a protobuf role number; unset or unknown numbers are an error for `field`.
pub(super) fn role_from_pb(value: i32) -> Result<Role, String> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Labour) => Ok(Role::Labour),
        Ok(pb::Role::Operator) => Ok(Role::Operator),
        Ok(pb::Role::Ict) => Ok(Role::Ict),
        Ok(pb::Role::ProvinceCommittee) => Ok(Role::ProvinceCommittee),
        Ok(pb::Role::Locality) => Ok(Role::Locality),
        Ok(pb::Role::Education) => Ok(Role::Education),
        Ok(pb::Role::Health) => Ok(Role::Health),
        Ok(pb::Role::Unspecified) => Err("a role is required".to_owned()),
        Err(_) => Err(format!("{value} is not a role number")),
    }
}

pub(super) fn status_to_pb(status: MemberStatus) -> pb::MemberStatus {
    match status {
        MemberStatus::Active => pb::MemberStatus::Active,
        MemberStatus::Suspended => pb::MemberStatus::Suspended,
    }
}

pub(super) fn status_from_pb(value: i32) -> Result<Option<MemberStatus>, String> {
    match pb::MemberStatus::try_from(value) {
        Ok(pb::MemberStatus::Unspecified) => Ok(None),
        Ok(pb::MemberStatus::Active) => Ok(Some(MemberStatus::Active)),
        Ok(pb::MemberStatus::Suspended) => Ok(Some(MemberStatus::Suspended)),
        Err(_) => Err(format!("{value} is not a member status number")),
    }
}

pub(super) fn member_to_pb(m: &Member) -> pb::Member {
    pb::Member {
        code: m.code.as_str().to_owned(),
        display_name: m.display_name.as_str().to_owned(),
        role: role_to_pb(m.role).into(),
        unit_code: m.unit.as_ref().map(|u| u.as_str().to_owned()).unwrap_or_default(),
        status: status_to_pb(m.status).into(),
        status_reason: m.status_reason.clone().unwrap_or_default(),
        certificates: m
            .certificates
            .iter()
            .map(|c| pb::CertificateUse {
                sha256_fingerprint: c.fingerprint.clone(),
                first_seen: Some(timestamp(c.first_seen)),
                last_seen: Some(timestamp(c.last_seen)),
            })
            .collect(),
        created_at: Some(timestamp(m.created_at)),
        updated_at: Some(timestamp(m.updated_at)),
    }
}
