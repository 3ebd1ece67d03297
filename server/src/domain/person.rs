//! A person's report (Law 91/2025/QH15 on personal data: a person may know what is held about
//! them and who processed it): for a citizen ID, the households the register holds the person
//! in, with all their states; the subsidised lines in the person's name; and every look-up of
//! the ID in the audit trail (who, when, which call, its outcome). DoICT makes it for anyone;
//! a locality (a commune's or district's office, where people come to ask) for a person of a
//! household that lies, or lay, in its unit, and sees only those households; nobody else.

use super::{
    DomainError,
    enrollments::EnrollmentService,
    member::{Caller, Role},
    paging::MAX_PAGE,
    ports::enrollments::Enrollment,
    registry::{HouseholdRegistry, HouseholdView},
    supervision::{AuditQuery, SupervisionService},
};
use crate::audit::AuditRecord;

/// What the hub holds about a person.
#[derive(Debug)]
pub struct PersonReport {
    /// Every household that named the citizen ID, with its whole history.
    pub households: Vec<Vec<HouseholdView>>,
    /// The subsidised lines in the person's name.
    pub lines: Vec<Enrollment>,
    /// Every call that looked the citizen ID up, oldest first.
    pub lookups: Vec<AuditRecord>,
    /// More look-ups than `most` were found; the oldest `most` are given.
    pub more: bool,
}

/// The report on `citizen` for `caller`, with at most `most` look-ups.
pub async fn report(
    registry: &HouseholdRegistry,
    enrollments: &EnrollmentService,
    supervision: &SupervisionService,
    caller: &Caller,
    citizen: &str,
    most: usize,
) -> Result<PersonReport, DomainError> {
    if !matches!(caller.member.role, Role::Ict | Role::Locality) {
        return Err(DomainError::PermissionDenied(format!(
            "a person's report is made by ICT, or by a locality for its residents; member {} has role {}",
            caller.member.code,
            caller.member.role.as_str()
        )));
    }
    let households = registry.households_of_citizen(caller, citizen).await?;
    if caller.member.role == Role::Locality && households.is_empty() {
        return Err(DomainError::OutOfScope {
            shown: format!("no household of your unit names citizen ID {}", citizen.trim()),
            reason: format!(
                "locality {} asked for the report of a person of no household in its unit",
                caller.member.code
            ),
        });
    }
    let citizen = citizen.trim();
    let mut lines = Vec::new();
    for views in &households {
        if let Some(code) = views.first().map(|v| v.code.as_str()) {
            lines.extend(enrollments.in_the_name_of(code, citizen).await?);
        }
    }
    let query = AuditQuery { citizen_id: citizen.to_owned(), ..AuditQuery::default() };
    let (mut lookups, mut token, mut more) = (Vec::new(), String::new(), false);
    loop {
        let page = supervision.query(&query, MAX_PAGE, &token).await?;
        lookups.extend(page.items);
        match page.next {
            Some(next) if lookups.len() < most => token = next,
            Some(_) => {
                more = true;
                break;
            }
            None => break,
        }
    }
    if lookups.len() > most {
        lookups.truncate(most);
        more = true;
    }
    Ok(PersonReport { households, lines, lookups, more })
}
