//! Authorization: the table from method to roles is complete, matches what the programme
//! expects, and the hub enforces it for every role on every method.

use std::collections::BTreeSet;

use prost::Message;
use telesub_server::{
    domain::member::Role,
    transport::authz::{Access, RULES},
};
use telesub_tests::{TestApp, raw};
use tonic::Code;

/// The table as the programme's rules require it, written out apart from the hub's code so
/// that a change to either one shows here. `None` means any verified certificate.
fn expected(method: &str) -> Option<&'static [Role]> {
    use Role::*;
    const EVERY_MEMBER: &[Role] = &[Labour, Operator, Ict, ProvinceCommittee, Locality, Education, Health];
    match method {
        "/grpc.health.v1.Health/Check" | "/grpc.health.v1.Health/Watch" => None,
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        | "/telesub.v1.Members/WhoAmI" => Some(EVERY_MEMBER),
        "/telesub.v1.Members/ListMembers"
        | "/telesub.v1.Members/RegisterMember"
        | "/telesub.v1.Members/UpdateMember"
        | "/telesub.v1.Members/SuspendMember"
        | "/telesub.v1.AdministrativeUnits/RecordUnits" => Some(&[Ict]),
        "/telesub.v1.AdministrativeUnits/ListUnits" => Some(EVERY_MEMBER),
        "/telesub.v1.HouseholdRegistry/PushBatch" => Some(&[Labour]),
        "/telesub.v1.HouseholdRegistry/GetBatch" | "/telesub.v1.HouseholdRegistry/ListBatches" => Some(&[Labour, Ict]),
        "/telesub.v1.HouseholdRegistry/GetHousehold"
        | "/telesub.v1.HouseholdRegistry/GetHouseholdHistory"
        | "/telesub.v1.HouseholdRegistry/FindHouseholds" => Some(&[Labour, Ict, Locality]),
        "/telesub.v1.Policy/GetPolicy" | "/telesub.v1.Policy/ListPolicyVersions" => Some(EVERY_MEMBER),
        "/telesub.v1.Policy/AddPolicyVersion" | "/telesub.v1.Policy/WithdrawPolicyVersion" => Some(&[Ict]),
        "/telesub.v1.Eligibility/CheckEligibility"
        | "/telesub.v1.Eligibility/CheckEligibilityBatch"
        | "/telesub.v1.Eligibility/GetDecision"
        | "/telesub.v1.Enrollments/ListEnrollments"
        | "/telesub.v1.Enrollments/GetEnrollment"
        | "/telesub.v1.Reconciliation/ListReconciliations"
        | "/telesub.v1.Reconciliation/GetReconciliation"
        | "/telesub.v1.Reconciliation/ListDiscrepancies"
        | "/telesub.v1.Reconciliation/ExportReconciliation" => Some(&[Operator, Ict]),
        "/telesub.v1.Reconciliation/Confirm" | "/telesub.v1.Reconciliation/Reject" => Some(&[Ict]),
        "/telesub.v1.Enrollments/Enroll"
        | "/telesub.v1.Enrollments/Deenroll"
        | "/telesub.v1.Enrollments/Transfer"
        | "/telesub.v1.ChangeFeed/WatchChanges"
        | "/telesub.v1.Reconciliation/SubmitMonthlyUpdate" => Some(&[Operator]),
        // Device allocations: operators have no part.
        "/telesub.v1.DeviceAllocation/RecordAllocationDecision"
        | "/telesub.v1.DeviceAllocation/ProposeRecipients"
        | "/telesub.v1.DeviceAllocation/AmendProposal"
        | "/telesub.v1.DeviceAllocation/SubmitForApproval" => Some(&[Ict]),
        "/telesub.v1.DeviceAllocation/NominateHouseholds" => Some(&[Ict, Education]),
        "/telesub.v1.DeviceAllocation/Approve" | "/telesub.v1.DeviceAllocation/ReturnForRevision" => {
            Some(&[ProvinceCommittee])
        }
        "/telesub.v1.DeviceAllocation/RecordHandover" => Some(&[Ict, Locality]),
        "/telesub.v1.DeviceAllocation/GetAllocation" | "/telesub.v1.DeviceAllocation/ListAllocations" => {
            Some(&[Labour, Ict, ProvinceCommittee, Locality, Education])
        }
        "/telesub.v1.DeviceAllocation/ListAllocationRecipients" => Some(&[Labour, Ict, ProvinceCommittee, Locality]),
        "/telesub.v1.DeviceAllocation/PublishedRecipients" => {
            Some(&[Labour, Ict, ProvinceCommittee, Locality, Education, Health])
        }
        "/telesub.v1.Supervision/GetProgrammeStatistics" => {
            Some(&[Labour, Ict, ProvinceCommittee, Locality, Education, Health])
        }
        "/telesub.v1.Supervision/PublicStatistics" | "/telesub.v1.Supervision/ExportStatistics" => Some(EVERY_MEMBER),
        "/telesub.v1.Supervision/CreateInspection"
        | "/telesub.v1.Supervision/RecordFinding"
        | "/telesub.v1.Supervision/UpdateFindingStatus"
        | "/telesub.v1.Supervision/CloseInspection"
        | "/telesub.v1.Supervision/PullSample" => Some(&[Ict]),
        "/telesub.v1.Supervision/ListInspections"
        | "/telesub.v1.Supervision/GetInspection"
        | "/telesub.v1.Supervision/GetSample" => Some(&[Labour, Ict, ProvinceCommittee, Locality, Education, Health]),
        "/telesub.v1.Supervision/QueryAudit"
        | "/telesub.v1.Supervision/VerifyAudit"
        | "/telesub.v1.Supervision/PurgeExpired"
        | "/telesub.v1.Supervision/ExportAudit" => Some(&[Ict]),
        // Proofs of the trail: every member (an inclusion proof of its own calls only).
        "/telesub.v1.Supervision/GetAuditCheckpoint"
        | "/telesub.v1.Supervision/GetInclusionProof"
        | "/telesub.v1.Supervision/GetConsistencyProof"
        | "/telesub.v1.Supervision/ListAuditCheckpoints" => Some(EVERY_MEMBER),
        other => panic!("{other} has no expected roles in this test; add it"),
    }
}

/// Every method of every service the hub serves, from the descriptor sets.
fn served_methods() -> BTreeSet<String> {
    let sets = [
        telesub_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = BTreeSet::new();
    for set in sets {
        let fds = prost_types::FileDescriptorSet::decode(set).unwrap();
        for file in &fds.file {
            for service in &file.service {
                for method in &service.method {
                    methods.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
    }
    methods
}

#[test]
fn the_table_covers_exactly_the_methods_served() {
    let table: BTreeSet<String> = RULES.iter().map(|r| r.method.to_owned()).collect();
    assert_eq!(table, served_methods());
}

#[test]
fn the_table_matches_the_expected_roles() {
    for rule in RULES {
        match (expected(rule.method), rule.access) {
            (None, Access::Certificate) => {}
            (Some(roles), access) => {
                assert_ne!(access, Access::Certificate, "{} must require a member", rule.method);
                for role in Role::ALL {
                    assert_eq!(access.allows(role), roles.contains(&role), "{} for {role}", rule.method);
                }
            }
            (None, access) => panic!("{} should need only a certificate, has {access:?}", rule.method),
        }
    }
}

/// Calls every method as a member of every role (and as a suspended member and a stranger)
/// and checks the hub lets through exactly what the table allows.
#[tokio::test]
async fn the_hub_enforces_the_table_for_every_role() {
    let app = TestApp::spawn().await;
    let by_role = [
        (Role::Ict, "DOICT"),
        (Role::Labour, "DOLISA"),
        (Role::Operator, "VNPT"),
        (Role::ProvinceCommittee, "UBND"),
        (Role::Locality, "GIANGHIA"),
        (Role::Education, "DOET"),
        (Role::Health, "DOH"),
    ];
    assert_eq!(by_role.len(), Role::ALL.len());
    let mut checked = 0;
    for (role, org) in by_role {
        let channel = raw::channel(&app, org).await;
        for rule in RULES {
            let code = raw::call(channel.clone(), rule.method).await;
            let allowed = rule.access.allows(role);
            if allowed {
                assert!(
                    !matches!(code, Code::PermissionDenied | Code::Unauthenticated | Code::Unimplemented),
                    "{org} ({role}) should be let through to {}, got {code:?}",
                    rule.method
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{org} ({role}) calling {}", rule.method);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, RULES.len() * Role::ALL.len());

    // Suspended: nothing but the certificate-only methods.
    app.client("DOICT").await.suspend_member("DOH", "test").await.unwrap();
    let channel = raw::channel(&app, "DOH").await;
    for rule in RULES {
        let code = raw::call(channel.clone(), rule.method).await;
        if rule.access == Access::Certificate {
            assert_eq!(code, Code::Ok, "{}", rule.method);
        } else {
            assert_eq!(code, Code::PermissionDenied, "suspended member calling {}", rule.method);
        }
    }

    // Every one of those calls left its record, and the chain holds.
    // Health checks aside: they are the hub's state, not a member's act.
    let audited = RULES.iter().filter(|r| !r.method.starts_with("/grpc.health.v1.Health/")).count();
    let expected_records = audited * (Role::ALL.len() + 1) + 1;
    assert_eq!(app.wait_for_audit(expected_records).await.len(), expected_records);
    let report = telesub_server::audit::verify(app.store.as_ref()).await.unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.records as usize, expected_records);
}

#[tokio::test]
async fn a_method_the_hub_does_not_serve_is_refused_and_audited() {
    let app = TestApp::spawn().await;
    let channel = raw::channel(&app, "DOICT").await;
    let code = raw::call(channel, "/telesub.v1.Members/DeleteEverything").await;
    assert_eq!(code, Code::Unimplemented);
    let records = app.audit().await;
    let last = records.last().unwrap();
    assert_eq!(last.entry.method, "/telesub.v1.Members/DeleteEverything");
    assert_eq!(last.entry.outcome, "UNIMPLEMENTED");
}

#[tokio::test]
async fn reflection_lists_the_services_in_both_versions() {
    use tokio_stream::StreamExt;
    let app = TestApp::spawn().await;
    let channel = raw::channel(&app, "VNPT").await;

    let mut v1 = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = v1.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("unexpected reflection answer {answer:?}")
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in ["telesub.v1.Members", "grpc.health.v1.Health"] {
        assert!(names.contains(service), "{service} missing from {names:?}");
    }

    let mut v1alpha = tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = v1alpha.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    assert!(answers.next().await.unwrap().is_ok());
}
