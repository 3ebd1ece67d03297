//! A device list's places in their order with the reasons for it, DoICT's steps on the list
//! (propose from the rules, amend with a reason, submit to the People's Committee), and the
//! approved list as published. Every rule is the device service's; who may do what is the
//! authorization table's (`ListAllocationRecipients`, `ProposeRecipients`, `AmendProposal`,
//! `SubmitForApproval`, `PublishedRecipients`).

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    Console, format,
    households::category_name,
    pages::{PAGE, Visitor, attachment, failure_in, render, who},
    words::{Lang, T},
};
use crate::{
    domain::{
        DomainError,
        devices::{AmendAction, DeviceType},
        household::Category,
    },
    export::published,
};

/// Places shown on one page of a list.
const PLACES_PER_PAGE: u32 = 100;

/// The address of a decision's page.
pub(super) fn address(number: &str) -> String {
    format!("/console/devices/{}", format::segment(number))
}

pub(super) fn device_name(t: T, device_type: &str) -> &'static str {
    match DeviceType::parse(device_type) {
        Ok(DeviceType::Tablet) => t.s("Máy tính bảng"),
        Ok(DeviceType::Smartphone) => t.s("Điện thoại thông minh"),
        Err(_) => "—",
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct PlacesAsked {
    #[serde(default)]
    unit: String,
    #[serde(default)]
    page: String,
}

struct PlaceRow {
    rank: i64,
    household: String,
    head: String,
    unit: String,
    commune: String,
    category: &'static str,
    priority: i64,
    device: &'static str,
    /// Why the household is on the list beyond its order: nominated, added by an amendment.
    notes: Vec<&'static str>,
    handed_over: String,
}

#[derive(Template)]
#[template(path = "console/device_places.html")]
struct PlacesPage {
    who: String,
    t: T,
    back: String,
    number: String,
    decision: String,
    unit: String,
    rows: Vec<PlaceRow>,
    next_page: Option<String>,
}

/// A list's places in rank order, a page at a time: a locality its own unit's.
pub(super) async fn places(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path(number): Path<String>,
    Query(asked): Query<PlacesAsked>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let page = match console
        .devices
        .recipients(caller, &number, &asked.unit, None, PLACES_PER_PAGE, asked.page.trim())
        .await
    {
        Ok(page) => page,
        Err(e) => return failure_in(visitor.lang, e.renamed(&[("unit_code", "unit"), PAGE])),
    };
    let units = match console.devices.unit_table().await {
        Ok(units) => units,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let today = console.clock.today();
    let unit_name = |code: &str| match units.on(code, today) {
        Some(u) => format!("{} ({code})", u.name),
        None if code.is_empty() => t.s("Toàn tỉnh").to_owned(),
        None => code.to_owned(),
    };
    let rows = page
        .items
        .iter()
        .map(|r| {
            let p = &r.place;
            let mut notes = Vec::new();
            if p.nominated {
                notes.push(t.s("được đề cử"));
            }
            if p.added {
                notes.push(t.s("bổ sung khi điều chỉnh"));
            }
            PlaceRow {
                rank: p.rank,
                household: p.household_code.clone(),
                head: p.head_name_masked.clone(),
                unit: unit_name(&p.unit_code),
                commune: unit_name(&p.commune_code),
                category: Category::parse(&p.category).map_or("—", |c| category_name(t, c)),
                priority: p.priority_group + 1,
                device: device_name(t, &p.device_type),
                notes,
                handed_over: r
                    .handover
                    .as_ref()
                    .map(|h| {
                        format!(
                            "{}, {}",
                            format::date(h.handed_over_on),
                            format::by(&h.recorded_by, h.recorded_by_person.as_deref())
                        )
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let here = format!("{}/places", address(&number));
    let next_page = page.next.map(|t| {
        let mut parts = vec![format!("page={}", format::segment(&t))];
        if !asked.unit.trim().is_empty() {
            parts.push(format!("unit={}", format::segment(asked.unit.trim())));
        }
        format!("{here}?{}", parts.join("&"))
    });
    render(&PlacesPage {
        who: who(caller),
        t,
        back: visitor.back.clone(),
        decision: address(&number),
        number,
        unit: asked.unit.trim().to_owned(),
        rows,
        next_page,
    })
}

/// What DoICT's forms on a decision's page send.
#[derive(Debug, Default, Deserialize)]
pub(super) struct IctForm {
    #[serde(default)]
    as_of: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    household_code: String,
    #[serde(default)]
    device_type: String,
    #[serde(default)]
    reason: String,
}

/// DoICT's step on a list: `propose`, `amend` or `submit`; then the decision's page again.
pub(super) async fn ict_step(
    console: &Console,
    visitor: &Visitor,
    number: &str,
    step: &str,
    form: IctForm,
) -> Response {
    let (caller, lang) = (&visitor.caller, visitor.lang);
    let done = match step {
        "propose" => console.devices.propose(number, &form.as_of).await,
        "amend" => {
            let action = match form.action.as_str() {
                "ADD" => Some(AmendAction::Add),
                "REMOVE" => Some(AmendAction::Remove),
                "" => None,
                other => {
                    return failure_in(
                        lang,
                        DomainError::invalid("action", format!("{other:?}: choose ADD or REMOVE")),
                    );
                }
            };
            let device = match form.device_type.as_str() {
                "" => None,
                t => match DeviceType::parse(t) {
                    Ok(t) => Some(t),
                    Err(e) => return failure_in(lang, DomainError::invalid("device_type", e)),
                },
            };
            console.devices.amend(caller, number, action, &form.household_code, device, &form.reason).await
        }
        "submit" => console.devices.submit(caller, number).await,
        _ => return failure_in(lang, DomainError::NotFound("the console has no such page".into())),
    };
    match done {
        Ok(a) => Redirect::to(&address(&a.row.decision_number)).into_response(),
        Err(e) => failure_in(lang, e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct PublishedAsked {
    #[serde(default)]
    commune: String,
    #[serde(default)]
    format: String,
}

/// The approved list as published: a commune's notice board as an HTML page to print, or the
/// list (a commune's, or all) as CSV.
pub(super) async fn published(
    State(console): State<Arc<Console>>,
    lang: Lang,
    Path(number): Path<String>,
    Query(asked): Query<PublishedAsked>,
) -> Response {
    let commune = asked.commune.trim();
    let html = match asked.format.as_str() {
        "html" if commune.is_empty() => {
            return failure_in(lang, DomainError::invalid("commune", "a notice board is for one commune: name it"));
        }
        "html" => true,
        "csv" => false,
        other => return failure_in(lang, DomainError::invalid("format", format!("{other:?}: choose html or csv"))),
    };
    let (allocation, places, units) = match console.devices.published(&number, Some(commune)).await {
        Ok(found) => found,
        Err(e) => return failure_in(lang, e),
    };
    let (data, name, content_type) = match published::file(&allocation, commune, &places, &units, html, true) {
        Ok(file) => file,
        Err(e) => return failure_in(lang, DomainError::Internal(Box::new(e))),
    };
    attachment(&name, content_type, data)
}
