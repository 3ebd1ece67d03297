//! The member registry: registering, changing and suspending the organisations that use the hub.

use std::sync::Arc;

use super::clock::Clock;
use super::{
    DomainError, Violations,
    identity::Identities,
    member::{Member, MemberChanges, MemberFilter, MemberStatus, NewMember, OrgCode, Reason, Role, check_scope},
};
use crate::domain::ports::{MemberStore, MemberWrite, PortError};

/// Largest page `ListMembers` returns.
pub const MAX_PAGE: u32 = 500;
/// Page size when the caller gives none.
pub const DEFAULT_PAGE: u32 = 100;

pub use super::paging::Page;

#[derive(Debug, Clone)]
pub struct MemberRegistry {
    member_store: Arc<dyn MemberStore>,
    identities: Arc<Identities>,
    clock: Clock,
}

impl MemberRegistry {
    /// `clock` dates registrations and changes of members.
    pub fn new(store: Arc<dyn MemberStore>, identities: Arc<Identities>, clock: Clock) -> Self {
        Self { member_store: store, identities, clock }
    }

    pub async fn get(&self, code: &OrgCode) -> Result<Member, DomainError> {
        self.member_store.get_member(code).await?.ok_or_else(|| not_found(code))
    }

    pub async fn list(
        &self,
        filter: &MemberFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Member>, DomainError> {
        let mut v = Violations::new();
        if page_size > MAX_PAGE {
            v.add("page_size", format!("is {page_size}; at most {MAX_PAGE} members come in one page"));
        }
        let after = if page_token.is_empty() {
            None
        } else {
            v.check("page_token", OrgCode::parse(page_token).map_err(|_| "is not a token this hub gave out".to_owned()))
        };
        v.finish()?;
        let limit = if page_size == 0 { DEFAULT_PAGE } else { page_size };
        let items = self.member_store.list_members(filter, after.as_ref(), limit + 1).await?;
        Ok(Page::cut(items, limit, |m| m.code.as_str().to_owned()))
    }

    pub async fn register(&self, new: NewMember) -> Result<Member, DomainError> {
        check_scope(new.role, new.unit.as_ref()).map_err(|e| DomainError::invalid("unit_code", e))?;
        let member = self.member_store.insert_member(&new, self.clock.now()).await.map_err(|e| match e {
            PortError::AlreadyExists => {
                DomainError::AlreadyExists(format!("member {} is already registered", new.code))
            }
            other => other.into(),
        })?;
        self.identities.invalidate(&member.code);
        tracing::info!(member = %member.code, role = %member.role, "member registered");
        Ok(member)
    }

    pub async fn update(&self, code: &OrgCode, changes: MemberChanges) -> Result<Member, DomainError> {
        let current = self.get(code).await?;
        let role = changes.role.unwrap_or(current.role);
        let unit = changes.unit.clone().unwrap_or_else(|| current.unit.clone());
        check_scope(role, unit.as_ref())
            .map_err(|e| DomainError::invalid(if changes.unit.is_some() { "unit_code" } else { "role" }, e))?;
        let (status, status_reason) = if changes.reinstate {
            (MemberStatus::Active, None)
        } else {
            (current.status, current.status_reason.clone())
        };
        let write = MemberWrite {
            code: code.clone(),
            display_name: changes.display_name.unwrap_or(current.display_name),
            role,
            unit,
            status,
            status_reason,
            updated_at: self.clock.now(),
        };
        let member = self.write(write).await?;
        tracing::info!(member = %member.code, role = %member.role, status = member.status.as_str(), "member updated");
        Ok(member)
    }

    pub async fn suspend(&self, code: &OrgCode, reason: Reason) -> Result<Member, DomainError> {
        let current = self.get(code).await?;
        if current.status == MemberStatus::Suspended {
            return Err(DomainError::FailedPrecondition(format!("member {code} is already suspended")));
        }
        let write = MemberWrite {
            code: code.clone(),
            display_name: current.display_name,
            role: current.role,
            unit: current.unit,
            status: MemberStatus::Suspended,
            status_reason: Some(reason.into_string()),
            updated_at: self.clock.now(),
        };
        let member = self.write(write).await?;
        tracing::warn!(member = %member.code, reason = member.status_reason.as_deref(), "member suspended");
        Ok(member)
    }

    /// Creates the first ICT member, outside the API: the hub's administrator runs this once
    /// at set-up. Refused when an ICT member exists already.
    pub async fn bootstrap(&self, new: NewMember) -> Result<Member, DomainError> {
        if new.role != Role::Ict {
            return Err(DomainError::invalid("role", "the first member must have the ICT role"));
        }
        if self.member_store.has_ict_member().await? {
            return Err(DomainError::FailedPrecondition(
                "the hub already has an ICT member; register further members through the API".to_owned(),
            ));
        }
        self.register(new).await
    }

    /// Registers a member unless its code is taken; returns whether it was added. Used when a
    /// development certificate folder is loaded on start.
    pub async fn ensure(&self, new: NewMember) -> Result<bool, DomainError> {
        match self.register(new).await {
            Ok(_) => Ok(true),
            Err(DomainError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn write(&self, write: MemberWrite) -> Result<Member, DomainError> {
        let code = write.code.clone();
        let result = self.member_store.update_member(&write).await;
        self.identities.invalidate(&code);
        result.map_err(|e| match e {
            PortError::NotFound => not_found(&code),
            PortError::Conflict(crate::domain::ports::Conflict::LastActiveIct) => DomainError::FailedPrecondition(
                format!("member {code} is the last active ICT member; register or reinstate another ICT member first"),
            ),
            other => other.into(),
        })
    }
}

fn not_found(code: &OrgCode) -> DomainError {
    DomainError::NotFound(format!("member {code} is not registered"))
}

/// The rule a member write is checked against inside its transaction: the hub keeps at least
/// one active ICT member, who can register and reinstate the others. A write keeps one when the
/// member stays (or becomes) an active ICT member, when it was not one, or when another is.
/// `(role, status)` before and after the write; `other_active_ict`: how many other members are
/// active ICT members now.
pub fn keeps_an_active_ict(before: (Role, MemberStatus), after: (Role, MemberStatus), other_active_ict: u64) -> bool {
    let active_ict = |(role, status): (Role, MemberStatus)| role == Role::Ict && status == MemberStatus::Active;
    active_ict(after) || !active_ict(before) || other_active_ict > 0
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    const ACTIVE_ICT: (Role, MemberStatus) = (Role::Ict, MemberStatus::Active);
    const SUSPENDED_ICT: (Role, MemberStatus) = (Role::Ict, MemberStatus::Suspended);
    const ACTIVE_LABOUR: (Role, MemberStatus) = (Role::Labour, MemberStatus::Active);

    #[test]
    fn the_last_active_ict_member_is_neither_suspended_nor_given_another_role() {
        assert!(!keeps_an_active_ict(ACTIVE_ICT, SUSPENDED_ICT, 0));
        assert!(!keeps_an_active_ict(ACTIVE_ICT, ACTIVE_LABOUR, 0));
        assert!(keeps_an_active_ict(ACTIVE_ICT, SUSPENDED_ICT, 1), "another one stays");
        assert!(keeps_an_active_ict(ACTIVE_ICT, ACTIVE_ICT, 0), "a rename of the last one");
    }

    #[test]
    fn members_that_are_not_active_ict_change_freely() {
        assert!(keeps_an_active_ict(SUSPENDED_ICT, (Role::Operator, MemberStatus::Suspended), 0));
        assert!(keeps_an_active_ict(ACTIVE_LABOUR, (Role::Labour, MemberStatus::Suspended), 0));
        assert!(keeps_an_active_ict(SUSPENDED_ICT, ACTIVE_ICT, 0), "a reinstated ICT member");
    }
}
