//! The organisations that may use the hub.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::PortError;
use crate::domain::member::{DisplayName, Member, MemberFilter, MemberStatus, NewMember, OrgCode, Role, UnitCode};

/// The organisations that may use the hub.
#[async_trait]
pub trait MemberStore: Send + Sync + std::fmt::Debug {
    async fn get_member(&self, code: &OrgCode) -> Result<Option<Member>, PortError>;

    /// Members in code order after `after`, at most `limit` of them.
    async fn list_members(
        &self,
        filter: &MemberFilter,
        after: Option<&OrgCode>,
        limit: u32,
    ) -> Result<Vec<Member>, PortError>;

    /// Fails with `AlreadyExists` when the code is taken.
    async fn insert_member(&self, member: &NewMember, at: OffsetDateTime) -> Result<Member, PortError>;

    /// Overwrites a member's state. Fails with `NotFound`, or with
    /// `Conflict(LastActiveIct)` when the write would leave no active ICT member.
    async fn update_member(&self, write: &MemberWrite) -> Result<Member, PortError>;

    /// Notes that a member used the certificate with this fingerprint at `at`.
    async fn record_certificate_use(
        &self,
        code: &OrgCode,
        fingerprint: &str,
        at: OffsetDateTime,
    ) -> Result<(), PortError>;

    /// Whether any member has the role `ICT` (active or not): the hub is bootstrapped.
    async fn has_ict_member(&self) -> Result<bool, PortError>;
}

/// The complete new state of a member, written by [`Store::update_member`].
#[derive(Debug, Clone)]
pub struct MemberWrite {
    pub code: OrgCode,
    pub display_name: DisplayName,
    pub role: Role,
    pub unit: Option<UnitCode>,
    pub status: MemberStatus,
    pub status_reason: Option<String>,
    pub updated_at: OffsetDateTime,
}
