//! Who may call what: the one table from RPC to the roles allowed, enforced by the hub layer
//! for every call before any handler runs. A method missing from the table is refused.

use crate::domain::member::Role;

use Role::*;

/// What a call needs besides a client certificate the TLS layer accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing more: a verified certificate suffices (health checks from load balancers).
    Certificate,
    /// The certificate's organisation must be an active member, of any role.
    AnyMember,
    /// An active member with one of these roles.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether a member with `role` may call a method with this access.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Certificate | Access::AnyMember => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

/// One row of the table: a gRPC path and the access it needs.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub method: &'static str,
    pub access: Access,
}

const fn rule(method: &'static str, access: Access) -> Rule {
    Rule { method, access }
}

const ICT_ONLY: Access = Access::Roles(&[Ict]);
const LABOUR_ONLY: Access = Access::Roles(&[Labour]);
const BATCH_READERS: Access = Access::Roles(&[Labour, Ict]);
/// Localities read only households in their unit; the domain enforces the scope.
const HOUSEHOLD_READERS: Access = Access::Roles(&[Labour, Ict, Locality]);

const OPERATOR_ONLY: Access = Access::Roles(&[Operator]);
/// Operators ask for decisions and read their own lists; ICT supervises.
const DECISION_ASKERS: Access = Access::Roles(&[Operator, Ict]);

/// Device allocations: ICT runs them, the People's Committee decides, coordinating
/// departments and localities read; operators have no part.
const ALLOCATION_READERS: Access = Access::Roles(&[Ict, ProvinceCommittee, Labour, Education, Locality]);
const RECIPIENT_READERS: Access = Access::Roles(&[Ict, ProvinceCommittee, Labour, Locality]);
const COMMITTEE_ONLY: Access = Access::Roles(&[ProvinceCommittee]);
const PUBLIC_READERS: Access = Access::Roles(&[Labour, Ict, ProvinceCommittee, Locality, Education, Health]);

/// Inspections: ICT records them; the coordinating departments and the committee read them.
const INSPECTION_READERS: Access = Access::Roles(&[Ict, ProvinceCommittee, Labour, Education, Health, Locality]);

/// The programme's statistics: ICT and the coordinating departments; a locality its own unit
/// (the domain checks which).
pub const STATISTICS_READERS: Access = Access::Roles(&[Ict, ProvinceCommittee, Labour, Education, Health, Locality]);

/// Every method the hub serves.
pub const RULES: &[Rule] = &[
    rule("/grpc.health.v1.Health/Check", Access::Certificate),
    rule("/grpc.health.v1.Health/Watch", Access::Certificate),
    rule("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Access::AnyMember),
    rule("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Access::AnyMember),
    rule("/telesub.v1.Members/WhoAmI", Access::AnyMember),
    rule("/telesub.v1.Members/ListMembers", ICT_ONLY),
    rule("/telesub.v1.Members/RegisterMember", ICT_ONLY),
    rule("/telesub.v1.Members/UpdateMember", ICT_ONLY),
    rule("/telesub.v1.Members/SuspendMember", ICT_ONLY),
    rule("/telesub.v1.HouseholdRegistry/PushBatch", LABOUR_ONLY),
    rule("/telesub.v1.HouseholdRegistry/GetBatch", BATCH_READERS),
    rule("/telesub.v1.HouseholdRegistry/ListBatches", BATCH_READERS),
    rule("/telesub.v1.HouseholdRegistry/GetHousehold", HOUSEHOLD_READERS),
    rule("/telesub.v1.HouseholdRegistry/GetHouseholdHistory", HOUSEHOLD_READERS),
    rule("/telesub.v1.HouseholdRegistry/FindHouseholds", HOUSEHOLD_READERS),
    rule("/telesub.v1.AdministrativeUnits/ListUnits", Access::AnyMember),
    rule("/telesub.v1.AdministrativeUnits/RecordUnits", ICT_ONLY),
    rule("/telesub.v1.Policy/GetPolicy", Access::AnyMember),
    rule("/telesub.v1.Policy/ListPolicyVersions", Access::AnyMember),
    rule("/telesub.v1.Policy/AddPolicyVersion", ICT_ONLY),
    rule("/telesub.v1.Policy/WithdrawPolicyVersion", ICT_ONLY),
    rule("/telesub.v1.Eligibility/CheckEligibility", DECISION_ASKERS),
    rule("/telesub.v1.Eligibility/CheckEligibilityBatch", DECISION_ASKERS),
    rule("/telesub.v1.Eligibility/GetDecision", DECISION_ASKERS),
    rule("/telesub.v1.Enrollments/Enroll", OPERATOR_ONLY),
    rule("/telesub.v1.Enrollments/Deenroll", OPERATOR_ONLY),
    rule("/telesub.v1.Enrollments/Transfer", OPERATOR_ONLY),
    rule("/telesub.v1.Enrollments/ListEnrollments", DECISION_ASKERS),
    rule("/telesub.v1.Enrollments/GetEnrollment", DECISION_ASKERS),
    rule("/telesub.v1.ChangeFeed/WatchChanges", OPERATOR_ONLY),
    rule("/telesub.v1.Reconciliation/SubmitMonthlyUpdate", OPERATOR_ONLY),
    rule("/telesub.v1.Reconciliation/ListReconciliations", DECISION_ASKERS),
    rule("/telesub.v1.Reconciliation/GetReconciliation", DECISION_ASKERS),
    rule("/telesub.v1.Reconciliation/ListDiscrepancies", DECISION_ASKERS),
    rule("/telesub.v1.Reconciliation/Confirm", ICT_ONLY),
    rule("/telesub.v1.Reconciliation/Reject", ICT_ONLY),
    rule("/telesub.v1.Reconciliation/ExportReconciliation", DECISION_ASKERS),
    rule("/telesub.v1.DeviceAllocation/RecordAllocationDecision", ICT_ONLY),
    rule("/telesub.v1.DeviceAllocation/NominateHouseholds", Access::Roles(&[Education, Ict])),
    rule("/telesub.v1.DeviceAllocation/ProposeRecipients", ICT_ONLY),
    rule("/telesub.v1.DeviceAllocation/AmendProposal", ICT_ONLY),
    rule("/telesub.v1.DeviceAllocation/SubmitForApproval", ICT_ONLY),
    rule("/telesub.v1.DeviceAllocation/Approve", COMMITTEE_ONLY),
    rule("/telesub.v1.DeviceAllocation/ReturnForRevision", COMMITTEE_ONLY),
    // A locality records hand-overs in its own unit only; the domain checks the household.
    rule("/telesub.v1.DeviceAllocation/RecordHandover", Access::Roles(&[Ict, Locality])),
    rule("/telesub.v1.DeviceAllocation/GetAllocation", ALLOCATION_READERS),
    rule("/telesub.v1.DeviceAllocation/ListAllocations", ALLOCATION_READERS),
    rule("/telesub.v1.DeviceAllocation/ListAllocationRecipients", RECIPIENT_READERS),
    rule("/telesub.v1.DeviceAllocation/PublishedRecipients", PUBLIC_READERS),
    rule("/telesub.v1.Supervision/GetProgrammeStatistics", STATISTICS_READERS),
    // The public figures are public: every member; the internal workbook is checked by role.
    rule("/telesub.v1.Supervision/PublicStatistics", Access::AnyMember),
    rule("/telesub.v1.Supervision/ExportStatistics", Access::AnyMember),
    rule("/telesub.v1.Supervision/CreateInspection", ICT_ONLY),
    rule("/telesub.v1.Supervision/RecordFinding", ICT_ONLY),
    rule("/telesub.v1.Supervision/UpdateFindingStatus", ICT_ONLY),
    rule("/telesub.v1.Supervision/CloseInspection", ICT_ONLY),
    rule("/telesub.v1.Supervision/PullSample", ICT_ONLY),
    // A locality reads the inspections of its unit; the domain checks which.
    rule("/telesub.v1.Supervision/ListInspections", INSPECTION_READERS),
    rule("/telesub.v1.Supervision/GetInspection", INSPECTION_READERS),
    rule("/telesub.v1.Supervision/GetSample", INSPECTION_READERS),
    rule("/telesub.v1.Supervision/QueryAudit", ICT_ONLY),
    rule("/telesub.v1.Supervision/VerifyAudit", ICT_ONLY),
    rule("/telesub.v1.Supervision/PurgeExpired", ICT_ONLY),
    rule("/telesub.v1.Supervision/ExportAudit", ICT_ONLY),
    // Checkpoints and consistency proofs say nothing of anyone; an inclusion proof is
    // scoped to the caller's own records by the handler.
    rule("/telesub.v1.Supervision/GetAuditCheckpoint", Access::AnyMember),
    rule("/telesub.v1.Supervision/GetInclusionProof", Access::AnyMember),
    rule("/telesub.v1.Supervision/GetConsistencyProof", Access::AnyMember),
    rule("/telesub.v1.Supervision/ListAuditCheckpoints", Access::AnyMember),
];

/// The rule for a gRPC path, if the hub serves it.
pub fn rule_for(method: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.method == method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn each_method_appears_once() {
        let mut seen = HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.method), "{} appears twice", r.method);
            assert!(r.method.starts_with('/') && r.method.matches('/').count() == 2, "{} is not a gRPC path", r.method);
        }
    }

    #[test]
    fn ict_administers_members_and_no_one_else_does() {
        let rule = rule_for("/telesub.v1.Members/RegisterMember").unwrap();
        for role in Role::ALL {
            assert_eq!(rule.access.allows(role), role == Ict, "{role}");
        }
        assert!(rule_for("/telesub.v1.Members/Nope").is_none());
    }
}
