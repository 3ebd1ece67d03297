//! The citizens and households a request names, read from the request itself, for the record
//! of who looked up whom. A handler notes what it found; the hub layer adds what the request
//! named when the call did not succeed (refused by role, by an unknown or suspended member, for
//! a bad argument, not found), so that `QueryAudit` by a citizen or household finds every
//! attempt, whatever its outcome.

use prost::Message;
use telesub_proto::v1 as pb;

use crate::{
    audit::{Subject, SubjectKind},
    domain::household::HouseholdCode,
};

/// The methods whose requests name citizens or households (all unary but the batch check,
/// whose questions are read only when the call is refused before it starts).
const NAMING: &[&str] = &[
    "/telesub.v1.Eligibility/CheckEligibility",
    "/telesub.v1.Eligibility/CheckEligibilityBatch",
    "/telesub.v1.HouseholdRegistry/GetHousehold",
    "/telesub.v1.HouseholdRegistry/GetHouseholdHistory",
    "/telesub.v1.HouseholdRegistry/FindHouseholds",
    "/telesub.v1.Enrollments/Enroll",
    "/telesub.v1.Enrollments/Transfer",
    "/telesub.v1.Enrollments/ListEnrollments",
    "/telesub.v1.DeviceAllocation/NominateHouseholds",
    "/telesub.v1.DeviceAllocation/AmendProposal",
    "/telesub.v1.DeviceAllocation/RecordHandover",
    "/telesub.v1.Reconciliation/ListDiscrepancies",
];

/// Whether requests of `method` may name citizens or households.
pub(crate) fn names_subjects(method: &str) -> bool {
    NAMING.contains(&method)
}

/// The citizens and households a request message of `method` names; only values that have the
/// form of a citizen ID or a household code count (a garbled one names nobody).
pub(crate) fn named(method: &str, message: &[u8]) -> Vec<Subject> {
    let mut out = Subjects::default();
    let m = message;
    match method {
        "/telesub.v1.Eligibility/CheckEligibility" => {
            if let Ok(r) = pb::CheckEligibilityRequest::decode(m) {
                match r.key {
                    Some(pb::check_eligibility_request::Key::CitizenId(id)) => out.citizen(id),
                    Some(pb::check_eligibility_request::Key::HouseholdCode(code)) => out.household(code),
                    _ => {}
                }
            }
        }
        "/telesub.v1.Eligibility/CheckEligibilityBatch" => {
            if let Ok(r) = pb::CheckEligibilityBatchRequest::decode(m) {
                for check in r.checks {
                    match check.key {
                        Some(pb::check_eligibility_request::Key::CitizenId(id)) => out.citizen(id),
                        Some(pb::check_eligibility_request::Key::HouseholdCode(code)) => out.household(code),
                        _ => {}
                    }
                }
            }
        }
        "/telesub.v1.HouseholdRegistry/GetHousehold" => {
            if let Ok(r) = pb::GetHouseholdRequest::decode(m) {
                out.household(r.household_code);
            }
        }
        "/telesub.v1.HouseholdRegistry/GetHouseholdHistory" => {
            if let Ok(r) = pb::GetHouseholdHistoryRequest::decode(m) {
                out.household(r.household_code);
            }
        }
        "/telesub.v1.HouseholdRegistry/FindHouseholds" => {
            if let Ok(pb::FindHouseholdsRequest {
                key: Some(pb::find_households_request::Key::CitizenId(id)), ..
            }) = pb::FindHouseholdsRequest::decode(m)
            {
                out.citizen(id);
            }
        }
        "/telesub.v1.Enrollments/Enroll" => {
            if let Ok(r) = pb::EnrollRequest::decode(m) {
                out.household(r.household_code);
                out.citizen(r.subscriber_citizen_id);
            }
        }
        "/telesub.v1.Enrollments/Transfer" => {
            if let Ok(r) = pb::TransferRequest::decode(m) {
                out.household(r.household_code);
                out.citizen(r.subscriber_citizen_id);
            }
        }
        "/telesub.v1.Enrollments/ListEnrollments" => {
            if let Ok(r) = pb::ListEnrollmentsRequest::decode(m) {
                out.household(r.household_code);
            }
        }
        "/telesub.v1.DeviceAllocation/NominateHouseholds" => {
            if let Ok(r) = pb::NominateHouseholdsRequest::decode(m) {
                r.household_codes.into_iter().for_each(|c| out.household(c));
            }
        }
        "/telesub.v1.DeviceAllocation/AmendProposal" => {
            if let Ok(r) = pb::AmendProposalRequest::decode(m) {
                out.household(r.household_code);
            }
        }
        "/telesub.v1.DeviceAllocation/RecordHandover" => {
            if let Ok(r) = pb::RecordHandoverRequest::decode(m) {
                out.household(r.household_code);
            }
        }
        "/telesub.v1.Reconciliation/ListDiscrepancies" => {
            if let Ok(r) = pb::ListDiscrepanciesRequest::decode(m) {
                out.household(r.household_code);
            }
        }
        _ => {}
    }
    out.0
}

#[derive(Default)]
struct Subjects(Vec<Subject>);

impl Subjects {
    fn add(&mut self, subject: Subject) {
        if !self.0.contains(&subject) {
            self.0.push(subject);
        }
    }

    fn citizen(&mut self, id: String) {
        let id = id.trim();
        if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
            self.add(Subject { kind: SubjectKind::CitizenId, value: id.to_owned() });
        }
    }

    fn household(&mut self, code: String) {
        if let Ok(code) = HouseholdCode::parse(code.trim()) {
            self.add(Subject { kind: SubjectKind::HouseholdCode, value: code.to_string() });
        }
    }
}

/// What every whole, uncompressed gRPC message of a request body names.
pub(crate) fn named_in_body(method: &str, mut body: &[u8]) -> Vec<Subject> {
    let mut out = Subjects::default();
    while let Some(message) = message_of(body) {
        for subject in named(method, message) {
            out.add(subject);
        }
        body = &body[5 + message.len()..];
    }
    out.0
}

/// The message of a unary request's body: its one gRPC frame, uncompressed.
pub(crate) fn message_of(body: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = body.split_first()?;
    if flag != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
    rest.get(4..4 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(message: &impl Message) -> Vec<u8> {
        let bytes = message.encode_to_vec();
        let mut out = vec![0];
        out.extend((bytes.len() as u32).to_be_bytes());
        out.extend(bytes);
        out
    }

    #[test]
    fn requests_name_their_citizens_and_households() {
        let enroll = pb::EnrollRequest {
            household_code: "HH-24611-0000042".into(),
            subscriber_citizen_id: "067094219761".into(),
            ..Default::default()
        };
        let body = framed(&enroll);
        let found = named("/telesub.v1.Enrollments/Enroll", message_of(&body).unwrap());
        assert_eq!(
            found,
            [
                Subject { kind: SubjectKind::HouseholdCode, value: "HH-24611-0000042".into() },
                Subject { kind: SubjectKind::CitizenId, value: "067094219761".into() },
            ]
        );
        let check = pb::CheckEligibilityRequest {
            key: Some(pb::check_eligibility_request::Key::CitizenId("12345".into())),
            as_of: String::new(),
        };
        assert!(named("/telesub.v1.Eligibility/CheckEligibility", &check.encode_to_vec()).is_empty());
        assert!(named("/telesub.v1.Members/WhoAmI", &[]).is_empty());
        assert_eq!(message_of(&[0, 0, 0, 0, 9, 1]), None, "a frame cut short");
        assert_eq!(message_of(&[1, 0, 0, 0, 0]), None, "compressed");
    }
}
