//! A person's report ([`crate::domain::person`]) as a printable page and a CSV file a commune
//! can hand over: the states that name the person, the subsidised lines in their name, and
//! every look-up of the ID; asking for it is itself recorded as a look-up of the person.

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Query, State},
    response::Response,
};
use serde::Deserialize;

use super::{
    Console, format,
    households::{category_name, relationship_name},
    pages::{Visitor, attachment, failure_in, render, who},
    supervision::Row,
    words::T,
};
use crate::{
    audit::SubjectKind,
    domain::{DomainError, person},
};

/// Look-ups read at most (in pages of the trail's largest page).
const LOOKUPS_AT_MOST: usize = 20_000;

#[derive(Debug, Deserialize)]
pub(super) struct Asked {
    #[serde(default)]
    citizen: String,
}

/// One state of a household that names the person.
struct Named {
    household: String,
    from: String,
    to: String,
    category: &'static str,
    commune: String,
    name: String,
    relationship: &'static str,
    birth_year: i32,
    removed: bool,
}

struct Line {
    operator: String,
    phone: String,
    household: String,
    service: String,
    from: String,
    to: String,
}

/// What the hub holds about the person.
struct Report {
    states: Vec<Named>,
    lines: Vec<Line>,
    lookups: Vec<Row>,
    /// More look-ups than were read.
    more: bool,
}

#[derive(Template)]
#[template(path = "console/subject.html")]
struct SubjectPage {
    who: String,
    t: T,
    back: String,
    citizen: String,
    report: Option<Report>,
    made: String,
}

async fn report(console: &Console, visitor: &Visitor, citizen: &str) -> Result<Report, DomainError> {
    let (caller, t) = (&visitor.caller, visitor.t());
    visitor.call.looked_up(SubjectKind::CitizenId, [citizen]);
    let found =
        person::report(&console.registry, &console.enrollments, &console.supervision, caller, citizen, LOOKUPS_AT_MOST)
            .await?;
    let mut states = Vec::new();
    for views in &found.households {
        for v in views {
            for m in v.data.members.iter().filter(|m| m.citizen_id == citizen) {
                states.push(Named {
                    household: v.code.clone(),
                    from: format::date(v.valid_from),
                    to: v.valid_to.map(format::date).unwrap_or_default(),
                    category: category_name(t, v.data.category),
                    commune: format!("{} ({})", v.commune_name, v.data.commune_code),
                    name: m.full_name.clone(),
                    relationship: relationship_name(t, m.relationship),
                    birth_year: m.birth_year,
                    removed: v.removal.is_some(),
                });
            }
        }
    }
    let lines = found
        .lines
        .into_iter()
        .map(|e| Line {
            operator: e.operator,
            phone: e.phone_number,
            household: e.household_code,
            service: e.service,
            from: format::date(e.start_date),
            to: e.end_date.map(format::date).unwrap_or_default(),
        })
        .collect();
    let lookups = found.lookups.iter().map(Row::from).collect();
    Ok(Report { states, lines, lookups, more: found.more })
}

/// The report's page: the form, and for a citizen ID what the hub holds about the person.
pub(super) async fn subject(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<Asked>,
) -> Response {
    let citizen = asked.citizen.trim().to_owned();
    let mut page = SubjectPage {
        who: who(&visitor.caller),
        t: visitor.t(),
        back: visitor.back.clone(),
        citizen: citizen.clone(),
        report: None,
        made: format::time(console.clock.now()),
    };
    if citizen.is_empty() {
        return render(&page);
    }
    match report(&console, &visitor, &citizen).await {
        Ok(r) => page.report = Some(r),
        Err(e) => return failure_in(visitor.lang, e),
    }
    render(&page)
}

/// The report as a CSV file: a row per state, line and look-up, its kind first.
pub(super) async fn file(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<Asked>,
) -> Response {
    let citizen = asked.citizen.trim().to_owned();
    let r = match report(&console, &visitor, &citizen).await {
        Ok(r) => r,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let mut w = crate::export::csv_file(true);
    let rows = std::iter::once(
        ["section", "household", "from", "to", "detail", "by", "outcome", "request_id"].map(str::to_owned),
    )
    .chain(r.states.iter().map(|s| {
        let detail = format!("{} · {} · {} · {} · {}", s.name, s.relationship, s.birth_year, s.category, s.commune);
        ["household_state", &s.household, &s.from, &s.to, &detail, "", if s.removed { "REMOVED" } else { "" }, ""]
            .map(str::to_owned)
    }))
    .chain(r.lines.iter().map(|l| {
        let detail = format!("{} {}", l.service, l.phone);
        ["subsidised_line", &l.household, &l.from, &l.to, &detail, &l.operator, "", ""].map(str::to_owned)
    }))
    .chain(
        r.lookups
            .iter()
            .map(|l| ["look_up", "", &l.at, "", &l.what, &l.member, &l.outcome, &l.request_id].map(str::to_owned)),
    );
    for row in rows {
        if let Err(e) = w.write_record(&row) {
            return failure_in(visitor.lang, DomainError::Internal(Box::new(e)));
        }
    }
    let data = match w.into_inner() {
        Ok(data) => data,
        Err(e) => return failure_in(visitor.lang, DomainError::Internal(Box::new(e.into_error()))),
    };
    let name = format!("du-lieu-ca-nhan-{}.csv", citizen.chars().filter(char::is_ascii_digit).collect::<String>());
    attachment(&name, "text/csv; charset=utf-8", data)
}
