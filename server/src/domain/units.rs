//! Administrative units (province, district, commune) as data with validity dates.
//!
//! Codes come from the national statistics office and are never reused, so one code names
//! one unit for ever; a unit that ends keeps its row, with the date it ended and the unit
//! that succeeded it. A household's address keeps the code it had, and the table still
//! answers where that commune was (district, province) on any date.

use std::{collections::HashMap, fmt};

use time::Date;

use super::member::UnitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitLevel {
    Province,
    District,
    Commune,
}

impl UnitLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitLevel::Province => "PROVINCE",
            UnitLevel::District => "DISTRICT",
            UnitLevel::Commune => "COMMUNE",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "PROVINCE" => Ok(UnitLevel::Province),
            "DISTRICT" => Ok(UnitLevel::District),
            "COMMUNE" => Ok(UnitLevel::Commune),
            other => Err(format!("{other:?} is not a unit level")),
        }
    }
}

impl fmt::Display for UnitLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One administrative unit. `valid_from` is `None` for units that existed before the
/// hub's records begin; `valid_to` (exclusive) is `None` while the unit exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUnit {
    pub code: UnitCode,
    pub level: UnitLevel,
    pub name: String,
    pub parent: Option<UnitCode>,
    pub valid_from: Option<Date>,
    pub valid_to: Option<Date>,
    /// The unit that took this one over when it ended.
    pub successor: Option<UnitCode>,
}

impl AdminUnit {
    pub fn valid_on(&self, date: Date) -> bool {
        self.valid_from.is_none_or(|from| from <= date) && self.valid_to.is_none_or(|to| date < to)
    }
}

/// All units with all their versions, in memory: the registry checks every record's commune
/// against it.
#[derive(Debug, Clone, Default)]
pub struct UnitTable {
    /// Each code's versions, oldest first.
    units: HashMap<String, Vec<AdminUnit>>,
}

impl UnitTable {
    pub fn new(units: impl IntoIterator<Item = AdminUnit>) -> Self {
        let mut map: HashMap<String, Vec<AdminUnit>> = HashMap::new();
        for u in units {
            map.entry(u.code.as_str().to_owned()).or_default().push(u);
        }
        for versions in map.values_mut() {
            versions.sort_by_key(|u| u.valid_from);
        }
        Self { units: map }
    }

    /// The latest version of a unit.
    pub fn get(&self, code: &str) -> Option<&AdminUnit> {
        self.units.get(code).and_then(|v| v.last())
    }

    /// Every version of a unit, oldest first.
    pub fn versions(&self, code: &str) -> &[AdminUnit] {
        self.units.get(code).map_or(&[], Vec::as_slice)
    }

    /// The version of a unit valid on `date`.
    pub fn on(&self, code: &str, date: Date) -> Option<&AdminUnit> {
        self.versions(code).iter().find(|u| u.valid_on(date))
    }

    /// How many versions the table holds.
    pub fn len(&self) -> usize {
        self.units.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Every version of every unit.
    pub fn iter(&self) -> impl Iterator<Item = &AdminUnit> {
        self.units.values().flatten()
    }

    /// Whether `code` is a province code (citizen IDs open with one, whether or not the
    /// province still exists).
    pub fn is_province(&self, code: &str) -> bool {
        self.get(code).is_some_and(|u| u.level == UnitLevel::Province)
    }

    /// Checks that `code` is a commune that exists on `date`; the error says why not, and
    /// names the successor of a commune that has ended.
    pub fn commune_on(&self, code: &str, date: Date) -> Result<&AdminUnit, String> {
        let Some(latest) = self.get(code) else {
            return Err(format!("{code:?} is not a known administrative unit"));
        };
        if latest.level != UnitLevel::Commune {
            return Err(format!("{code} is a {}, not a commune", latest.level.as_str().to_lowercase()));
        }
        if let Some(unit) = self.on(code, date) {
            return Ok(unit);
        }
        let first = &self.versions(code)[0];
        if let Some(from) = first.valid_from.filter(|from| date < *from) {
            return Err(format!("commune {code} ({}) exists only from {from}", first.name));
        }
        let ended =
            self.versions(code).iter().rev().find(|u| u.valid_to.is_some_and(|to| to <= date)).unwrap_or(latest);
        let successor = ended.successor.as_ref().map(|s| format!("; its successor is {s}")).unwrap_or_default();
        Err(format!(
            "commune {code} ({}) ceased to exist on {}{successor}",
            ended.name,
            ended.valid_to.map(|d| d.to_string()).unwrap_or_default()
        ))
    }

    /// The unit and its parents on `date`, nearest first.
    pub fn ancestry_on(&self, code: &str, date: Date) -> Vec<&AdminUnit> {
        let mut chain = Vec::new();
        let mut next = self.on(code, date).or_else(|| self.get(code));
        while let Some(unit) = next {
            if chain.len() > 4 {
                break; // a cycle in bad data; the checks forbid it, but never loop for ever
            }
            chain.push(unit);
            next = unit.parent.as_ref().and_then(|p| self.on(p.as_str(), date).or_else(|| self.get(p.as_str())));
        }
        chain
    }

    /// Whether the unit `code` is `scope` or lay within it on `date`.
    pub fn within_on(&self, code: &str, scope: &UnitCode, date: Date) -> bool {
        self.ancestry_on(code, date).iter().any(|u| u.code == *scope)
    }

    /// The province and district (where there was one) of a unit on `date`.
    pub fn province_and_district_on(&self, code: &str, date: Date) -> (Option<&AdminUnit>, Option<&AdminUnit>) {
        let chain = self.ancestry_on(code, date);
        let find = |level| chain.iter().copied().find(|u| u.level == level);
        (find(UnitLevel::Province), find(UnitLevel::District))
    }
}

/// Units that ship with the hub: the 63 provinces and Đắk Nông's districts and communes as of
/// 1 March 2025, from the statistics office's list (`server/data/`).
pub fn reference_units() -> Result<Vec<AdminUnit>, String> {
    const PROVINCES: &str = include_str!("../../data/provinces-2025-03-01.csv");
    const DAK_NONG: &str = include_str!("../../data/dak-nong-units-2025-03-01.csv");
    let mut units: HashMap<String, AdminUnit> = HashMap::new();
    let mut add = |code: &str, level, name: &str, parent: Option<&str>| -> Result<(), String> {
        let code = UnitCode::parse(code)?;
        let parent = parent.map(UnitCode::parse).transpose()?;
        units.entry(code.as_str().to_owned()).or_insert(AdminUnit {
            code,
            level,
            name: name.to_owned(),
            parent,
            valid_from: None,
            valid_to: None,
            successor: None,
        });
        Ok(())
    };
    for line in PROVINCES.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let [code, name, _kind] = f[..] else { return Err(format!("bad province line {line:?}")) };
        add(code, UnitLevel::Province, name, None)?;
    }
    for line in DAK_NONG.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let [province, _, district, district_name, _, commune, commune_name, _] = f[..] else {
            return Err(format!("bad unit line {line:?}"));
        };
        add(district, UnitLevel::District, district_name, Some(province))?;
        add(commune, UnitLevel::Commune, commune_name, Some(district))?;
    }
    let mut units: Vec<AdminUnit> = units.into_values().collect();
    units.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn reference_data_loads() {
        let units = reference_units().unwrap();
        let count = |level| units.iter().filter(|u| u.level == level).count();
        assert_eq!(count(UnitLevel::Province), 63);
        assert_eq!(count(UnitLevel::District), 8);
        assert_eq!(count(UnitLevel::Commune), 71);
        let table = UnitTable::new(units);
        let nghia_duc = table.commune_on("24611", date!(2024 - 01 - 01)).unwrap();
        assert_eq!(nghia_duc.name, "Phường Nghĩa Đức");
        let day = date!(2024 - 01 - 01);
        let (province, district) = table.province_and_district_on("24611", day);
        assert_eq!(province.unwrap().code.as_str(), "67");
        assert_eq!(district.unwrap().code.as_str(), "660");
        assert!(table.within_on("24611", &UnitCode::parse("660").unwrap(), day));
        assert!(table.within_on("24611", &UnitCode::parse("67").unwrap(), day));
        assert!(!table.within_on("24611", &UnitCode::parse("661").unwrap(), day));
        assert!(table.is_province("01") && !table.is_province("660"));
        assert!(table.commune_on("660", date!(2024 - 01 - 01)).unwrap_err().contains("district"));
    }

    #[test]
    fn ended_communes_name_their_successor() {
        let mut units = reference_units().unwrap();
        let old = units.iter_mut().find(|u| u.code.as_str() == "24611").unwrap();
        old.valid_to = Some(date!(2025 - 07 - 01));
        old.successor = Some(UnitCode::parse("24612").unwrap());
        let table = UnitTable::new(units);
        assert!(table.commune_on("24611", date!(2025 - 06 - 30)).is_ok());
        let err = table.commune_on("24611", date!(2025 - 07 - 01)).unwrap_err();
        assert!(err.contains("2025-07-01") && err.contains("24612"), "{err}");
    }

    #[test]
    fn a_commune_that_keeps_its_code_changes_parent_from_a_date() {
        let mut units = reference_units().unwrap();
        let old = units.iter_mut().find(|u| u.code.as_str() == "24611").unwrap();
        old.valid_to = Some(date!(2025 - 07 - 01));
        let mut merged = old.clone();
        merged.name = "Phường Bắc Gia Nghĩa".into();
        merged.parent = Some(UnitCode::parse("68").unwrap());
        merged.valid_from = Some(date!(2025 - 07 - 01));
        merged.valid_to = None;
        units.push(merged);
        let table = UnitTable::new(units);
        let before = date!(2025 - 06 - 30);
        let after = date!(2025 - 07 - 01);
        assert_eq!(table.province_and_district_on("24611", before).1.unwrap().code.as_str(), "660");
        assert_eq!(table.province_and_district_on("24611", after).0.unwrap().code.as_str(), "68");
        assert_eq!(table.province_and_district_on("24611", after).1, None);
        assert_eq!(table.commune_on("24611", after).unwrap().name, "Phường Bắc Gia Nghĩa");
        assert!(table.within_on("24611", &UnitCode::parse("660").unwrap(), before));
        assert!(!table.within_on("24611", &UnitCode::parse("660").unwrap(), after));
    }
}
