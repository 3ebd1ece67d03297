//! The hub's members, for DoICT: who they are, their role and unit, whether active; a new
//! member registered and a member suspended with a reason. The member registry checks every
//! field and the rules (a locality has a unit, the last active ICT member stays), as it does
//! for the RPCs.

use std::sync::Arc;

use askama::Template;
use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, Uri},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    Console, format,
    pages::{PAGE, Visitor, failure_in, forged, render, role_name, who},
    words::T,
};
use crate::domain::{
    DomainError, Violations,
    member::{DisplayName, MemberFilter, MemberStatus, NewMember, OrgCode, Reason, Role, UnitCode},
};

#[derive(Debug, Deserialize)]
pub(super) struct Asked {
    #[serde(default)]
    page: String,
}

struct MemberRow {
    code: String,
    name: String,
    role: &'static str,
    unit: String,
    active: bool,
    reason: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct MembersPage {
    who: String,
    t: T,
    back: String,
    token: String,
    rows: Vec<MemberRow>,
    roles: Vec<(&'static str, &'static str)>,
    next_page: Option<String>,
}

pub(super) async fn members(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<Asked>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let page = match console.members.list(&MemberFilter::default(), 100, asked.page.trim()).await {
        Ok(page) => page,
        Err(e) => return failure_in(visitor.lang, e.renamed(&[PAGE])),
    };
    let rows = page
        .items
        .iter()
        .map(|m| MemberRow {
            code: m.code.as_str().to_owned(),
            name: m.display_name.as_str().to_owned(),
            role: role_name(t, m.role),
            unit: m.unit.as_ref().map(ToString::to_string).unwrap_or_default(),
            active: m.status == MemberStatus::Active,
            reason: m.status_reason.clone().unwrap_or_default(),
            updated: format::time(m.updated_at),
        })
        .collect();
    render(&MembersPage {
        who: who(caller),
        t,
        back: visitor.back.clone(),
        token: console.csrf.token(&caller.fingerprint),
        rows,
        roles: Role::ALL.iter().map(|&r| (r.as_str(), role_name(t, r))).collect(),
        next_page: page.next,
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct RegisterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    unit_code: String,
}

/// A new member; then the members' page again.
pub(super) async fn register(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<RegisterForm>,
) -> Response {
    if let Some(refused) = forged(&console, &visitor, &headers, &uri, &form.csrf) {
        return refused;
    }
    let mut v = Violations::new();
    let code = v.check("code", OrgCode::parse(form.code.trim()));
    let display_name = v.check("display_name", DisplayName::parse(&form.display_name));
    let role = v.check("role", Role::parse(form.role.trim()));
    let unit = match form.unit_code.trim() {
        "" => Some(None),
        u => v.check("unit_code", UnitCode::parse(u)).map(Some),
    };
    if let Err(e) = v.finish() {
        return failure_in(visitor.lang, e);
    }
    let (Some(code), Some(display_name), Some(role), Some(unit)) = (code, display_name, role, unit) else {
        return failure_in(visitor.lang, DomainError::invalid("code", "every field is required"));
    };
    match console.members.register(NewMember { code, display_name, role, unit }).await {
        Ok(_) => Redirect::to("/console/members").into_response(),
        Err(e) => failure_in(visitor.lang, e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SuspendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// A member suspended, with the reason; then the members' page again.
pub(super) async fn suspend(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path(code): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<SuspendForm>,
) -> Response {
    if let Some(refused) = forged(&console, &visitor, &headers, &uri, &form.csrf) {
        return refused;
    }
    let mut v = Violations::new();
    let code = v.check("code", OrgCode::parse(&code));
    let reason = v.check("reason", Reason::parse(&form.reason));
    if let Err(e) = v.finish() {
        return failure_in(visitor.lang, e);
    }
    let (Some(code), Some(reason)) = (code, reason) else {
        return failure_in(visitor.lang, DomainError::invalid("reason", "a reason is required"));
    };
    match console.members.suspend(&code, reason).await {
        Ok(_) => Redirect::to("/console/members").into_response(),
        Err(e) => failure_in(visitor.lang, e),
    }
}
