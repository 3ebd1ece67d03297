//! The programme's rules as data: complete versions with the date each holds from, loaded
//! from `server/data/policy.toml` into an empty database and added to by ICT. A decision for
//! a date uses the version in force on that date; versions are never changed.

use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::clock::Clock;
use super::{
    DomainError, Violations,
    household::{Category, HouseholdFlags, RemovalReason, format_date, free_text, name_enum, parse_date},
    member::OrgCode,
    units::{UnitLevel, UnitTable},
};
use crate::domain::ports::{PolicyStore, PortError, policy::StoredPolicy};

/// How long the cached versions are used before they are read again (other hubs may add one).
const CACHE_TTL: Duration = Duration::from_secs(10);
/// The most a monthly amount may be: anything above is a typing error.
const MAX_MONTHLY_AMOUNT: i64 = 10_000_000;

name_enum! {
    /// A subsidised service.
    Service {
        Mobile = "MOBILE",
        FixedBroadband = "FIXED_BROADBAND",
    }
}

/// The supported amount of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRule {
    pub service: Service,
    pub monthly_amount: i64,
    /// Only in the policy's broadband communes.
    #[serde(default)]
    pub listed_communes_only: bool,
}

/// An amount the Ministry set for one operator and year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountRule {
    pub operator: String,
    pub year: i32,
    pub service: Service,
    pub monthly_amount: i64,
}

/// A package an operator offers subscribers under the programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRule {
    pub operator: String,
    /// The operator's package code, as on its monthly lists.
    pub code: String,
    pub service: Service,
}

/// What happens when a household stops qualifying.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraceRule {
    /// Support goes on until 1 January of the year after the household stopped qualifying.
    #[serde(default)]
    pub until_end_of_year: bool,
    /// The removals the grace applies to; other removals end support on the day.
    #[serde(default)]
    pub removal_reasons: Vec<RemovalReason>,
    /// A change to a category the policy does not cover gets the grace too.
    #[serde(default)]
    pub on_category_change: bool,
}

name_enum! {
    /// A priority group of the device rules: a household is in the first group of the
    /// policy's order that it matches.
    DevicePriority {
        /// A family of people with meritorious service.
        MeritoriousServiceFamily = "MERITORIOUS_SERVICE_FAMILY",
        /// A social-policy family.
        SocialPolicyFamily = "SOCIAL_POLICY_FAMILY",
        Poor = "POOR",
        NearPoor = "NEAR_POOR",
    }
}

impl DevicePriority {
    /// Whether a household of `category` with `flags` is in the group.
    pub fn matches(self, category: Category, flags: &HouseholdFlags) -> bool {
        match self {
            DevicePriority::MeritoriousServiceFamily => flags.meritorious_service_family,
            DevicePriority::SocialPolicyFamily => flags.social_policy_family,
            DevicePriority::Poor => category == Category::Poor,
            DevicePriority::NearPoor => category == Category::NearPoor,
        }
    }
}

/// Who may get a device, in which order, and the cash alternative (Circular 14/2022).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRules {
    /// Categories whose households may get a device.
    pub categories: Vec<Category>,
    /// Priority groups, highest first.
    pub priority: Vec<DevicePriority>,
    /// VND paid instead of a device to a household that bought its own phone.
    pub cash_alternative: i64,
    /// The earliest date such a phone may have been bought.
    pub own_phone_bought_from: String,
}

impl Default for DeviceRules {
    fn default() -> Self {
        Self {
            categories: vec![Category::Poor, Category::NearPoor],
            priority: DevicePriority::ALL.to_vec(),
            cash_alternative: 500_000,
            own_phone_bought_from: "2022-12-12".to_owned(),
        }
    }
}

impl DeviceRules {
    /// The priority group (0 highest) of a household that may get a device, or `None` when it
    /// may not by category, because it already got one from the earlier programme, or because
    /// it does not want one.
    pub fn group(&self, category: Category, flags: &HouseholdFlags) -> Option<usize> {
        if !self.categories.contains(&category) || flags.earlier_programme_device || !flags.wants_device {
            return None;
        }
        self.priority.iter().position(|p| p.matches(category, flags)).or(Some(self.priority.len()))
    }

    /// The date of [`DeviceRules::own_phone_bought_from`] (checked when the version was added).
    pub fn own_phone_from(&self) -> Date {
        parse_date(&self.own_phone_bought_from).unwrap_or(time::macros::date!(2022 - 12 - 12))
    }
}

/// One complete version of the rules, as written in the reference file and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    pub valid_from: String,
    #[serde(default)]
    pub note: String,
    /// Supported categories, highest priority first.
    pub categories: Vec<Category>,
    pub services: Vec<ServiceRule>,
    #[serde(default)]
    pub amounts: Vec<AmountRule>,
    /// The packages operators may claim for; an operator with none listed may claim any.
    #[serde(default)]
    pub packages: Vec<PackageRule>,
    pub subscriptions_per_household: u32,
    #[serde(default)]
    pub broadband_communes: Vec<String>,
    #[serde(default)]
    pub grace: GraceRule,
    pub non_usage_months: u32,
    /// The device rules; the Circular's when a version does not give them.
    #[serde(default)]
    pub devices: DeviceRules,
}

/// A stored version: the rules, their number and dates, and who recorded them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    pub version: i64,
    pub valid_from: Date,
    /// The next version's `valid_from`.
    pub valid_to: Option<Date>,
    pub rules: PolicyRules,
    pub recorded_by: Option<String>,
    pub recorded_at: Option<OffsetDateTime>,
    /// Set when the version was withdrawn before it took effect: it never holds.
    pub withdrawal: Option<Withdrawal>,
}

/// Who withdrew a version that had not taken effect, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub by: String,
    pub at: OffsetDateTime,
    pub reason: String,
}

impl PolicyVersion {
    pub fn covers(&self, category: Category) -> bool {
        self.rules.categories.contains(&category)
    }

    /// The supported amount of a service for an operator in a year: the Ministry's figure
    /// for that operator and year when the version has one, the service's amount otherwise.
    pub fn monthly_amount(&self, service: &ServiceRule, operator: Option<&str>, year: i32) -> i64 {
        operator
            .and_then(|op| {
                self.rules.amounts.iter().find(|a| a.operator == op && a.year == year && a.service == service.service)
            })
            .map_or(service.monthly_amount, |a| a.monthly_amount)
    }

    /// Whether an operator may claim support for a package and service: when the version lists
    /// packages for the operator, it must be one of them, for that service.
    pub fn package_allowed(&self, operator: &str, code: &str, service: Service) -> Result<(), String> {
        let listed: Vec<&PackageRule> = self.rules.packages.iter().filter(|p| p.operator == operator).collect();
        if listed.is_empty() || listed.iter().any(|p| p.code == code && p.service == service) {
            return Ok(());
        }
        match listed.iter().find(|p| p.code == code) {
            Some(p) => Err(format!("package {code} is a {} package, not {service}", p.service)),
            None => Err(format!(
                "{code:?} is not one of {operator}'s packages in {self}: {}",
                listed.iter().map(|p| p.code.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// Whether amounts of a service are set year by year (then an entitlement ends with the year).
    pub fn yearly_amounts(&self, service: Service) -> bool {
        self.rules.amounts.iter().any(|a| a.service == service)
    }

    /// The first day without support for a household that stopped qualifying on `stopped`:
    /// 1 January of the next year when the grace applies, the day itself otherwise.
    pub fn support_end(&self, stopped: Date, removal: Option<RemovalReason>) -> Date {
        let grace = &self.rules.grace;
        let applies = grace.until_end_of_year
            && match removal {
                Some(reason) => grace.removal_reasons.contains(&reason),
                None => grace.on_category_change,
            };
        if !applies {
            return stopped;
        }
        // Stopping on 1 January (a review's list taking effect) ends support that day.
        let last_supported = stopped.previous_day().unwrap_or(stopped);
        Date::from_calendar_date(last_supported.year() + 1, time::Month::January, 1).unwrap_or(stopped)
    }
}

/// Every version that holds, oldest first; the withdrawn ones apart.
#[derive(Debug, Clone, Default)]
pub struct PolicyTable {
    versions: Vec<Arc<PolicyVersion>>,
    withdrawn: Vec<Arc<PolicyVersion>>,
}

impl PolicyTable {
    pub fn new(versions: Vec<PolicyVersion>) -> Self {
        let (withdrawn, mut versions): (Vec<_>, Vec<_>) = versions.into_iter().partition(|v| v.withdrawal.is_some());
        versions.sort_by_key(|v| v.valid_from);
        let next: Vec<Option<Date>> = versions.iter().skip(1).map(|v| Some(v.valid_from)).chain([None]).collect();
        for (v, to) in versions.iter_mut().zip(next) {
            v.valid_to = to;
        }
        Self {
            versions: versions.into_iter().map(Arc::new).collect(),
            withdrawn: withdrawn.into_iter().map(Arc::new).collect(),
        }
    }

    /// Every version recorded, withdrawn ones too, by number.
    pub fn all(&self) -> Vec<&Arc<PolicyVersion>> {
        let mut all: Vec<_> = self.versions.iter().chain(&self.withdrawn).collect();
        all.sort_by_key(|v| v.version);
        all
    }

    /// The version in force on a date, if the programme had rules then.
    pub fn in_force(&self, date: Date) -> Option<&Arc<PolicyVersion>> {
        self.versions.iter().rev().find(|v| v.valid_from <= date)
    }

    pub fn first_day(&self) -> Option<Date> {
        self.versions.first().map(|v| v.valid_from)
    }

    pub fn latest(&self) -> Option<&Arc<PolicyVersion>> {
        self.versions.last()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<PolicyVersion>> {
        self.versions.iter()
    }
}

/// The reference file's shape: `[[version]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: Vec<PolicyRules>,
}

/// The versions that ship with the hub (`server/data/policy.toml`).
pub fn reference_policy() -> Result<Vec<PolicyRules>, String> {
    const FILE: &str = include_str!("../../data/policy.toml");
    let file: PolicyFile = toml::from_str(FILE).map_err(|e| format!("server/data/policy.toml: {e}"))?;
    Ok(file.version)
}

/// Checks a version's content against the unit table; returns its first day.
pub fn check_rules(rules: &PolicyRules, units: &UnitTable, field: &str) -> Result<Date, DomainError> {
    let mut v = Violations::new();
    let f = |name: &str| format!("{field}.{name}");
    let valid_from = v.check(&f("valid_from"), parse_date(&rules.valid_from));
    v.check(&f("note"), free_text(&rules.note, 500));
    if rules.categories.is_empty() {
        v.add(f("categories"), "at least one supported category is required");
    }
    let mut seen = HashSet::new();
    for (i, c) in rules.categories.iter().enumerate() {
        if !seen.insert(*c) {
            v.add(format!("{}[{i}]", f("categories")), format!("{c} is listed twice"));
        }
    }
    if rules.services.is_empty() {
        v.add(f("services"), "at least one supported service is required");
    }
    let amount = |v: &mut Violations, field: String, amount: i64| {
        if !(1..=MAX_MONTHLY_AMOUNT).contains(&amount) {
            v.add(field, format!("{amount} VND is not a monthly amount: use 1 to {MAX_MONTHLY_AMOUNT}"));
        }
    };
    let mut services = HashSet::new();
    for (i, s) in rules.services.iter().enumerate() {
        let at = format!("{}[{i}]", f("services"));
        if !services.insert(s.service) {
            v.add(format!("{at}.service"), format!("{} is listed twice", s.service));
        }
        amount(&mut v, format!("{at}.monthly_amount"), s.monthly_amount);
    }
    let mut overrides = HashSet::new();
    for (i, a) in rules.amounts.iter().enumerate() {
        let at = format!("{}[{i}]", f("amounts"));
        v.check(&format!("{at}.operator"), OrgCode::parse(&a.operator));
        if !(2000..=2100).contains(&a.year) {
            v.add(format!("{at}.year"), format!("{} is not a year of the programme", a.year));
        }
        if !services.contains(&a.service) {
            v.add(format!("{at}.service"), format!("{} is not among this version's services", a.service));
        }
        amount(&mut v, format!("{at}.monthly_amount"), a.monthly_amount);
        if !overrides.insert((&a.operator, a.year, a.service)) {
            v.add(at, format!("{} {} {} is given twice", a.operator, a.year, a.service));
        }
    }
    let mut packages = HashSet::new();
    for (i, p) in rules.packages.iter().enumerate() {
        let at = format!("{}[{i}]", f("packages"));
        v.check(&format!("{at}.operator"), OrgCode::parse(&p.operator));
        let code_ok = (1..=30).contains(&p.code.len())
            && p.code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !code_ok {
            v.add(
                format!("{at}.code"),
                format!("{:?} is not a package code: use 1 to 30 letters, digits, '-', '_', '.'", p.code),
            );
        }
        if !services.contains(&p.service) {
            v.add(format!("{at}.service"), format!("{} is not among this version's services", p.service));
        }
        if !packages.insert((&p.operator, &p.code)) {
            v.add(at, format!("{} {} is listed twice", p.operator, p.code));
        }
    }
    if !(1..=10).contains(&rules.subscriptions_per_household) {
        v.add(f("subscriptions_per_household"), "use 1 to 10");
    }
    if !(1..=12).contains(&rules.non_usage_months) {
        v.add(f("non_usage_months"), "use 1 to 12");
    }
    let d = &rules.devices;
    if d.categories.is_empty() {
        v.add(format!("{}.categories", f("devices")), "at least one category is required");
    }
    for (i, p) in d.priority.iter().enumerate() {
        if d.priority[..i].contains(p) {
            v.add(format!("{}.priority[{i}]", f("devices")), format!("{p} is listed twice"));
        }
    }
    if !(0..=MAX_MONTHLY_AMOUNT).contains(&d.cash_alternative) {
        v.add(format!("{}.cash_alternative", f("devices")), format!("use 0 to {MAX_MONTHLY_AMOUNT} VND"));
    }
    v.check(&format!("{}.own_phone_bought_from", f("devices")), parse_date(&d.own_phone_bought_from));
    let mut communes = HashSet::new();
    for (i, code) in rules.broadband_communes.iter().enumerate() {
        let at = format!("{}[{i}]", f("broadband_communes"));
        match units.versions(code).iter().find(|u| u.level == UnitLevel::Commune) {
            None => v.add(at, format!("{code:?} is not a commune in the unit table")),
            Some(_) if !communes.insert(code) => v.add(at, format!("{code} is listed twice")),
            Some(_) => {}
        }
    }
    v.finish()?;
    Ok(valid_from.expect("checked above"))
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy version {} (from {})", self.version, format_date(self.valid_from))
    }
}

/// The rules as the hub keeps them: seeded from the reference file, added to by ICT, cached.
#[derive(Debug)]
pub struct PolicyRegistry {
    policy_store: Arc<dyn PolicyStore>,
    cached: RwLock<Option<(Instant, Arc<PolicyTable>)>>,
    /// How many years ahead of today a new version may start.
    horizon_years: u32,
    clock: Clock,
}

/// How many years ahead of today a new version may start, unless configured.
pub const DEFAULT_HORIZON_YEARS: u32 = 5;

impl PolicyRegistry {
    /// `clock` says which version is in force today and how far ahead a new one may start.
    pub fn new(store: Arc<dyn PolicyStore>, clock: Clock) -> Self {
        Self { policy_store: store, cached: RwLock::new(None), horizon_years: DEFAULT_HORIZON_YEARS, clock }
    }

    /// New versions start at most `years` ahead of today.
    pub fn with_horizon(mut self, years: u32) -> Self {
        self.horizon_years = years;
        self
    }

    /// Loads the reference versions into an empty table.
    pub async fn seed(&self, units: &UnitTable) -> Result<(), DomainError> {
        let versions = reference_policy().map_err(|e| DomainError::Internal(e.into()))?;
        let mut rows = Vec::with_capacity(versions.len());
        for (i, rules) in versions.iter().enumerate() {
            let valid_from = check_rules(rules, units, &format!("version[{i}]"))
                .map_err(|e| DomainError::Internal(format!("server/data/policy.toml: {e}").into()))?;
            rows.push(StoredPolicy::new(i as i64 + 1, valid_from, rules, None, None));
        }
        if self.policy_store.seed_policy(&rows).await? {
            tracing::info!(versions = rows.len(), "loaded the reference policy");
        }
        Ok(())
    }

    /// Every version, at most a few seconds old.
    pub async fn table(&self) -> Result<Arc<PolicyTable>, PortError> {
        if let Some((at, table)) = self.cached.read().expect("policy cache").as_ref()
            && at.elapsed() < CACHE_TTL
        {
            return Ok(table.clone());
        }
        let rows = self.policy_store.policy_versions().await?;
        let versions = rows.into_iter().map(StoredPolicy::into_version).collect::<Result<Vec<_>, _>>()?;
        let table = Arc::new(PolicyTable::new(versions));
        *self.cached.write().expect("policy cache") = Some((Instant::now(), table.clone()));
        Ok(table)
    }

    /// The version in force on a date.
    pub async fn on(&self, date: Date) -> Result<Arc<PolicyVersion>, DomainError> {
        let table = self.table().await?;
        table.in_force(date).cloned().ok_or_else(|| {
            DomainError::NotFound(match table.first_day() {
                Some(first) => format!("no policy was in force on {date}: the first version holds from {first}"),
                None => "no policy version is recorded".to_owned(),
            })
        })
    }

    /// Checks and records a new version; it must start after every earlier one.
    pub async fn add(
        &self,
        rules: PolicyRules,
        units: &UnitTable,
        by: &OrgCode,
        at: OffsetDateTime,
    ) -> Result<PolicyVersion, DomainError> {
        let valid_from = check_rules(&rules, units, "version")?;
        let today = self.clock.today();
        let horizon =
            Date::from_calendar_date(today.year() + self.horizon_years as i32, today.month(), 1).unwrap_or(today);
        if valid_from > horizon {
            return Err(DomainError::invalid(
                "version.valid_from",
                format!(
                    "{valid_from} is more than {} years ahead (the latest start accepted now is {horizon}); \
                     record the version closer to the day it takes effect",
                    self.horizon_years
                ),
            ));
        }
        let stored = self.policy_store.policy_versions().await?;
        let version = stored.iter().map(|r| r.version).max().map_or(1, |v| v + 1);
        let latest = stored.into_iter().filter(|r| r.withdrawn_at.is_none()).max_by_key(|r| r.valid_from);
        if let Some(last) = &latest
            && valid_from <= last.valid_from
        {
            return Err(DomainError::invalid(
                "version.valid_from",
                format!(
                    "{valid_from} is not after {} (version {} holds from then); a version can only follow the latest",
                    last.valid_from, last.version
                ),
            ));
        }
        let row = StoredPolicy::new(version, valid_from, &rules, Some(by.as_str().to_owned()), Some(at));
        match self.policy_store.add_policy_version(&row).await {
            Ok(()) => {}
            Err(PortError::AlreadyExists | PortError::Conflict(_)) => {
                return Err(DomainError::FailedPrecondition(
                    "another policy version was recorded at the same time; read the versions and try again".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        *self.cached.write().expect("policy cache") = None;
        tracing::info!(version, %valid_from, "policy version recorded");
        Ok(PolicyVersion {
            version,
            valid_from,
            valid_to: None,
            rules,
            recorded_by: row.recorded_by,
            recorded_at: at.into(),
            withdrawal: None,
        })
    }

    /// Withdraws a version that has not yet taken effect; one in force or past never is.
    pub async fn withdraw(
        &self,
        version: i64,
        reason: &str,
        by: &OrgCode,
        at: OffsetDateTime,
    ) -> Result<PolicyVersion, DomainError> {
        let reason = super::household::free_text(reason, 500).map_err(|e| DomainError::invalid("reason", e))?;
        if reason.is_empty() {
            return Err(DomainError::invalid("reason", "say why the version is withdrawn"));
        }
        let today = self.clock.today();
        let Some(row) = self.policy_store.policy_versions().await?.into_iter().find(|r| r.version == version) else {
            return Err(DomainError::NotFound(format!("no policy version {version} is recorded")));
        };
        if row.withdrawn_at.is_some() {
            return Err(DomainError::FailedPrecondition(format!("policy version {version} was withdrawn already")));
        }
        if row.valid_from <= today {
            return Err(DomainError::FailedPrecondition(format!(
                "policy version {version} holds from {}, today or before: a version in force or past is never \
                 withdrawn; add a later version instead",
                row.valid_from
            )));
        }
        match self.policy_store.withdraw_policy_version(version, by.as_str(), at, &reason, today).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(DomainError::FailedPrecondition(format!(
                    "policy version {version} was withdrawn or took effect meanwhile; read the versions again"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        *self.cached.write().expect("policy cache") = None;
        tracing::info!(version, reason, "policy version withdrawn");
        let mut withdrawn = StoredPolicy {
            withdrawn_by: Some(by.as_str().to_owned()),
            withdrawn_at: Some(at),
            withdrawal_reason: Some(reason),
            ..row
        }
        .into_version()?;
        withdrawn.valid_to = None;
        Ok(withdrawn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::units::reference_units;
    use time::macros::date;

    fn table() -> UnitTable {
        UnitTable::new(reference_units().unwrap())
    }

    #[test]
    fn the_reference_policy_is_valid() {
        let versions = reference_policy().unwrap();
        assert!(!versions.is_empty());
        for (i, v) in versions.iter().enumerate() {
            check_rules(v, &table(), &format!("version[{i}]")).unwrap();
        }
    }

    #[test]
    fn support_ends_in_january_after_the_year_a_household_stopped_qualifying() {
        let rules = reference_policy().unwrap().remove(0);
        let v = PolicyVersion {
            version: 1,
            valid_from: date!(2022 - 12 - 12),
            valid_to: None,
            rules,
            recorded_by: None,
            recorded_at: None,
            withdrawal: None,
        };
        let out = Some(RemovalReason::OutOfPoverty);
        assert_eq!(v.support_end(date!(2025 - 03 - 15), out), date!(2026 - 01 - 01));
        // A review's list taking effect on 1 January: support ends that day.
        assert_eq!(v.support_end(date!(2025 - 01 - 01), Some(RemovalReason::NotInReview)), date!(2025 - 01 - 01));
        assert_eq!(v.support_end(date!(2025 - 03 - 15), Some(RemovalReason::Deceased)), date!(2025 - 03 - 15));
        assert_eq!(v.support_end(date!(2025 - 07 - 01), None), date!(2026 - 01 - 01));
    }

    #[test]
    fn bad_rules_are_named_field_by_field() {
        let mut rules = reference_policy().unwrap().remove(0);
        rules.valid_from = "2025-02-30".into();
        rules.categories.push(Category::Poor);
        rules.services[0].monthly_amount = 0;
        rules.amounts.push(AmountRule {
            operator: "VNPT".into(),
            year: 2025,
            service: Service::Mobile,
            monthly_amount: 55_000,
        });
        rules.amounts.push(rules.amounts[0].clone());
        rules.broadband_communes = vec!["99999".into()];
        rules.subscriptions_per_household = 0;
        let Err(DomainError::Invalid(v)) = check_rules(&rules, &table(), "version") else { panic!("accepted") };
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "version.valid_from",
                "version.categories[4]",
                "version.services[0].monthly_amount",
                "version.amounts[1]",
                "version.subscriptions_per_household",
                "version.broadband_communes[0]",
            ]
        );
    }

    #[test]
    fn the_version_in_force_is_the_latest_started() {
        let mk = |version, from| PolicyVersion {
            version,
            valid_from: from,
            valid_to: None,
            rules: reference_policy().unwrap().remove(0),
            recorded_by: None,
            recorded_at: None,
            withdrawal: None,
        };
        let t = PolicyTable::new(vec![mk(2, date!(2025 - 01 - 01)), mk(1, date!(2022 - 12 - 12))]);
        assert!(t.in_force(date!(2022 - 12 - 11)).is_none());
        assert_eq!(t.in_force(date!(2024 - 12 - 31)).unwrap().version, 1);
        assert_eq!(t.in_force(date!(2024 - 12 - 31)).unwrap().valid_to, Some(date!(2025 - 01 - 01)));
        assert_eq!(t.in_force(date!(2025 - 01 - 01)).unwrap().version, 2);
    }
}
