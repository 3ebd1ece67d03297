//! The administrative unit table as the hub keeps it: seeded from the reference data on
//! first start, changed by ICT through the API, cached for checking records.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use time::Date;
use unicode_normalization::UnicodeNormalization;

use super::{
    DomainError, Violations,
    household::parse_date,
    member::UnitCode,
    units::{AdminUnit, UnitLevel, UnitTable, reference_units},
};
use crate::domain::ports::{PortError, UnitStore};

/// How many times a unit change is checked again when another was stored meanwhile.
const RECORD_ATTEMPTS: usize = 3;

/// How long the cached table is used before it is read again (other hubs may change it).
const CACHE_TTL: Duration = Duration::from_secs(10);

/// A unit as ICT sends it: every field as text, checked here.
#[derive(Debug, Clone, Default)]
pub struct UnitInput {
    pub code: String,
    pub level: Option<UnitLevel>,
    pub name: String,
    pub parent_code: String,
    pub valid_from: String,
    pub valid_to: String,
    pub successor_code: String,
}

#[derive(Debug)]
pub struct UnitRegistry {
    unit_store: Arc<dyn UnitStore>,
    cached: RwLock<Option<(Instant, Arc<UnitTable>)>>,
}

impl UnitRegistry {
    pub fn new(store: Arc<dyn UnitStore>) -> Self {
        Self { unit_store: store, cached: RwLock::new(None) }
    }

    /// Loads the reference units into an empty table.
    pub async fn seed(&self) -> Result<(), DomainError> {
        let units = reference_units().map_err(|e| DomainError::Internal(e.into()))?;
        if self.unit_store.seed_units(&units).await? {
            tracing::info!(units = units.len(), "loaded the reference administrative units");
        }
        Ok(())
    }

    /// The unit table, at most a few seconds old.
    pub async fn table(&self) -> Result<Arc<UnitTable>, PortError> {
        if let Some((at, table)) = self.cached.read().expect("unit cache").as_ref()
            && at.elapsed() < CACHE_TTL
        {
            return Ok(table.clone());
        }
        let table = Arc::new(UnitTable::new(self.unit_store.units().await?));
        *self.cached.write().expect("unit cache") = Some((Instant::now(), table.clone()));
        Ok(table)
    }

    /// Units valid on `as_of` (all when `None`), of a level and under a parent when given.
    pub async fn list(
        &self,
        as_of: Option<Date>,
        level: Option<UnitLevel>,
        parent: Option<&UnitCode>,
    ) -> Result<Vec<AdminUnit>, DomainError> {
        let table = self.table().await?;
        let mut units: Vec<AdminUnit> = table
            .iter()
            .filter(|u| as_of.is_none_or(|d| u.valid_on(d)))
            .filter(|u| level.is_none_or(|l| u.level == l))
            .filter(|u| parent.is_none_or(|p| u.parent.as_ref() == Some(p)))
            .cloned()
            .collect();
        units.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(units)
    }

    /// Checks and records unit versions: new units, new versions of existing units (a new
    /// name or parent from a date; the version before ends that day), and new names, end
    /// dates and successors of existing versions. All or nothing. Returns (added, changed).
    ///
    /// The request is checked against the units as read, and stored only if they are still
    /// those: a change stored meanwhile (another of ICT's staff) has the request checked again
    /// against it, as if it had come second.
    pub async fn record(&self, inputs: &[UnitInput]) -> Result<(usize, usize), DomainError> {
        for _ in 0..RECORD_ATTEMPTS {
            let read = self.unit_store.units().await?;
            let table = UnitTable::new(read.clone());
            let (new, changed) = check_units(inputs, &table)?;
            match self.unit_store.save_units(&read, &new, &changed).await {
                Ok(()) => {
                    *self.cached.write().expect("unit cache") = None;
                    tracing::info!(added = new.len(), changed = changed.len(), "administrative units recorded");
                    return Ok((new.len(), changed.len()));
                }
                Err(PortError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Unavailable(
            "the units kept changing while these were checked; nothing was changed: send them again".into(),
        ))
    }
}

/// Checks a request; returns the versions to insert and the versions to rewrite.
fn check_units(inputs: &[UnitInput], table: &UnitTable) -> Result<(Vec<AdminUnit>, Vec<AdminUnit>), DomainError> {
    let mut v = Violations::new();
    if inputs.is_empty() {
        v.add("units", "no units given");
    }
    let mut seen = HashSet::new();
    let mut parsed: Vec<AdminUnit> = Vec::new();
    for (i, u) in inputs.iter().enumerate() {
        let f = |name: &str| format!("units[{i}].{name}");
        let Some(code) = v.check(&f("code"), UnitCode::parse(&u.code)) else { continue };
        if !seen.insert(code.clone()) {
            v.add(f("code"), format!("{code} appears twice in this request"));
        }
        let level = u.level.or_else(|| {
            v.add(f("level"), "a level is required: PROVINCE, DISTRICT or COMMUNE");
            None
        });
        let expected_len = match level {
            Some(UnitLevel::Province) => 2,
            Some(UnitLevel::District) => 3,
            Some(UnitLevel::Commune) => 5,
            None => code.as_str().len(),
        };
        if code.as_str().len() != expected_len {
            v.add(f("code"), format!("a {} code has {expected_len} digits", level.map_or("", |l| l.as_str())));
        }
        let name: String = u.name.trim().nfc().collect();
        if name.is_empty() || name.chars().count() > 200 {
            v.add(f("name"), "a name of 1 to 200 characters is required");
        }
        let date = |v: &mut Violations, field: &str, s: &str| -> Option<Date> {
            if s.is_empty() { None } else { v.check(&f(field), parse_date(s)) }
        };
        let valid_from = date(&mut v, "valid_from", &u.valid_from);
        let valid_to = date(&mut v, "valid_to", &u.valid_to);
        if let (Some(from), Some(to)) = (valid_from, valid_to)
            && to <= from
        {
            v.add(f("valid_to"), format!("{to} is not after valid_from {from}"));
        }
        let parent =
            if u.parent_code.is_empty() { None } else { v.check(&f("parent_code"), UnitCode::parse(&u.parent_code)) };
        let successor = if u.successor_code.is_empty() {
            None
        } else {
            v.check(&f("successor_code"), UnitCode::parse(&u.successor_code))
        };
        if successor.is_some() && valid_to.is_none() {
            v.add(f("successor_code"), "only a unit that ends (valid_to) has a successor");
        }
        if successor.as_ref() == Some(&code) {
            v.add(f("successor_code"), "a unit does not succeed itself");
        }
        let versions = table.versions(code.as_str());
        if versions.is_empty() && valid_from.is_none() {
            v.add(f("valid_from"), "a new unit needs the date it starts");
        }
        if let Some(existing) = versions.last() {
            if level.is_some_and(|l| l != existing.level) {
                v.add(f("level"), format!("{code} is a {}; a unit's level never changes", existing.level));
            }
            match versions.iter().find(|e| e.valid_from == valid_from) {
                Some(same) if same.parent != parent => v.add(
                    f("parent_code"),
                    "to move a unit under another parent, record a new version from the date it moves",
                ),
                Some(_) => {}
                None if valid_from
                    .is_some_and(|from| versions.iter().all(|e| e.valid_from.is_none_or(|s| s < from))) => {}
                None => v.add(
                    f("valid_from"),
                    format!(
                        "{code} ({}) has versions from {}; a new version starts after the latest",
                        existing.name,
                        existing.valid_from.map_or("the beginning".to_owned(), |d| d.to_string())
                    ),
                ),
            }
        }
        if let Some(level) = level {
            parsed.push(AdminUnit { code, level, name, parent, valid_from, valid_to, successor });
        }
    }
    v.finish()?;

    // References: parents and successors exist (in the table or in this request) at the right level.
    let in_request: HashMap<&str, &AdminUnit> = parsed.iter().map(|u| (u.code.as_str(), u)).collect();
    let level_of =
        |code: &UnitCode| in_request.get(code.as_str()).map(|u| u.level).or(table.get(code.as_str()).map(|u| u.level));
    let mut v = Violations::new();
    for (i, u) in parsed.iter().enumerate() {
        let allowed: &[UnitLevel] = match u.level {
            UnitLevel::Province => &[],
            UnitLevel::District => &[UnitLevel::Province],
            UnitLevel::Commune => &[UnitLevel::District, UnitLevel::Province],
        };
        match (&u.parent, level_of_opt(&u.parent, &level_of)) {
            (None, _) if allowed.is_empty() => {}
            (None, _) => v.add(
                format!("units[{i}].parent_code"),
                format!("a {} needs a parent", u.level.as_str().to_lowercase()),
            ),
            (Some(p), None) => v.add(format!("units[{i}].parent_code"), format!("{p} is not a known unit")),
            (Some(p), Some(l)) if !allowed.contains(&l) => v.add(
                format!("units[{i}].parent_code"),
                format!(
                    "{p} is a {}, which cannot contain a {}",
                    l.as_str().to_lowercase(),
                    u.level.as_str().to_lowercase()
                ),
            ),
            _ => {}
        }
        if let Some(s) = &u.successor {
            match level_of(s) {
                None => v.add(format!("units[{i}].successor_code"), format!("{s} is not a known unit")),
                Some(l) if l != u.level => {
                    v.add(format!("units[{i}].successor_code"), format!("{s} is a {}, not a {}", l, u.level))
                }
                _ => {}
            }
        }
    }
    v.finish()?;
    // New versions, changed versions, and the open version each new version closes.
    let mut new = Vec::new();
    let mut changed: Vec<AdminUnit> = Vec::new();
    for u in parsed {
        let versions = table.versions(u.code.as_str());
        if versions.iter().any(|e| e.valid_from == u.valid_from) {
            changed.push(u);
            continue;
        }
        if let (Some(latest), Some(from)) = (versions.last(), u.valid_from)
            && latest.valid_to.is_none_or(|to| to > from)
            && !changed.iter().any(|c| c.code == latest.code && c.valid_from == latest.valid_from)
        {
            let mut closed = latest.clone();
            closed.valid_to = Some(from);
            changed.push(closed);
        }
        new.push(u);
    }
    Ok((new, changed))
}

fn level_of_opt(code: &Option<UnitCode>, level_of: &impl Fn(&UnitCode) -> Option<UnitLevel>) -> Option<UnitLevel> {
    code.as_ref().and_then(level_of)
}
