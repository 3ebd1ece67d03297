//! Policy versions and the eligibility decisions given.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::PortError;
use crate::domain::eligibility::History;

use crate::domain::{
    eligibility::{Facts, State},
    household::RemovalReason,
    policy::{PolicyRules, PolicyVersion, Withdrawal},
};

/// A stored policy version.
#[derive(Debug, Clone)]
pub struct StoredPolicy {
    pub version: i64,
    pub valid_from: Date,
    pub rules: String,
    pub recorded_by: Option<String>,
    pub recorded_at: Option<OffsetDateTime>,
    pub withdrawn_by: Option<String>,
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdrawal_reason: Option<String>,
}

impl StoredPolicy {
    pub fn new(
        version: i64,
        valid_from: Date,
        rules: &PolicyRules,
        recorded_by: Option<String>,
        recorded_at: Option<OffsetDateTime>,
    ) -> Self {
        let rules = serde_json::to_string(rules).expect("policy rules serialise");
        Self {
            version,
            valid_from,
            rules,
            recorded_by,
            recorded_at,
            withdrawn_by: None,
            withdrawn_at: None,
            withdrawal_reason: None,
        }
    }

    pub fn into_version(self) -> Result<PolicyVersion, PortError> {
        let rules: PolicyRules = serde_json::from_str(&self.rules)
            .map_err(|e| PortError::Corrupt(format!("policy version {}: {e}", self.version)))?;
        Ok(PolicyVersion {
            version: self.version,
            valid_from: self.valid_from,
            valid_to: None,
            rules,
            recorded_by: self.recorded_by,
            recorded_at: self.recorded_at,
            withdrawal: match (self.withdrawn_at, self.withdrawal_reason) {
                (Some(at), Some(reason)) => Some(Withdrawal { by: self.withdrawn_by.unwrap_or_default(), at, reason }),
                _ => None,
            },
        })
    }
}

/// One decision as stored: what identifies it and who asked, and the answer as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDecision {
    pub call_id: String,
    pub idx: i64,
    pub request_id: String,
    pub asked_by: String,
    pub decided_at: OffsetDateTime,
    /// `CITIZEN_ID`, `HOUSEHOLD_CODE` or `CERTIFICATE_NUMBER`.
    pub query_kind: String,
    pub query_value: String,
    pub as_of: Date,
    pub household_code: Option<String>,
    pub eligible: bool,
    pub policy_version: i64,
    /// The answer (JSON); empty once purged.
    pub body: String,
    /// The request id of the purge call that blanked the value asked and the answer, under
    /// the retention policy; `None` while kept.
    pub purged_by: Option<String>,
    pub purged_at: Option<OffsetDateTime>,
}

impl StoredDecision {
    /// `<call id>-<index>`.
    pub fn decision_id(&self) -> String {
        format!("{}-{}", self.call_id, self.idx)
    }
}

/// A run of consecutive decisions of one batch call, decided together, stored in one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRun {
    pub call_id: String,
    pub first_idx: i64,
    pub last_idx: i64,
    pub request_id: String,
    pub asked_by: String,
    pub decided_at: OffsetDateTime,
    /// How many decisions the run holds (questions that could not be asked have none).
    pub decisions: i64,
    /// The decisions (JSON array); empty once purged.
    pub body: String,
    /// The request id of the purge call that blanked the answers; `None` while kept.
    pub purged_by: Option<String>,
    pub purged_at: Option<OffsetDateTime>,
    /// The SHA-256 (hex) of the answers as they were, kept when they are purged.
    pub body_digest: Option<String>,
}

/// One state of a household that matched a lookup value at some time: every state of every
/// household the value ever matched.
#[derive(Debug, Clone)]
pub struct MatchedState {
    /// The value looked up.
    pub matched: String,
    pub household_code: String,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    pub removal_reason: Option<String>,
    pub data: String,
    /// The household's enrolments with any operator, ever: a JSON array of
    /// `[operator, start_date, end_date]` (`end_date` null while open); empty or NULL for none.
    pub holdings: Option<String>,
}

/// Groups matched states by the value looked up and the household: for each value, the
/// histories of its households, by code, each state oldest first.
pub fn histories_from_states(mut rows: Vec<MatchedState>) -> Result<Vec<(String, Vec<History>)>, PortError> {
    rows.sort_unstable_by(|a, b| {
        (&a.matched, &a.household_code, a.valid_from).cmp(&(&b.matched, &b.household_code, b.valid_from))
    });
    let mut out: Vec<(String, Vec<History>)> = Vec::new();
    for row in rows {
        if out.last().is_none_or(|(v, _)| *v != row.matched) {
            out.push((row.matched.clone(), Vec::new()));
        }
        let histories = &mut out.last_mut().expect("pushed above").1;
        add_state(histories, row)?;
    }
    Ok(out)
}

/// Adds a state row to the histories: to the last one when it is the row's household's, else to
/// a new one. Rows of one household come together, oldest first.
pub fn add_state(histories: &mut Vec<History>, row: MatchedState) -> Result<(), PortError> {
    let facts = Facts::from_stored(&row.data).map_err(|e| {
        PortError::Corrupt(format!("stored state of {} from {}: {e}", row.household_code, row.valid_from))
    })?;
    let removal = row
        .removal_reason
        .as_deref()
        .map(RemovalReason::parse)
        .transpose()
        .map_err(|e| PortError::Corrupt(format!("state of {} from {}: {e}", row.household_code, row.valid_from)))?;
    let state = State { valid_from: row.valid_from, valid_to: row.valid_to, removal, facts };
    if histories.last().is_none_or(|h| h.code != row.household_code) {
        let enrollments = match row.holdings.as_deref() {
            None | Some("[]") => Vec::new(),
            Some(json) => serde_json::from_str(json)
                .map_err(|e| PortError::Corrupt(format!("enrolments of household {}: {e}", row.household_code)))?,
        };
        histories.push(History { code: row.household_code, states: Vec::new(), enrollments });
    }
    histories.last_mut().expect("pushed above").states.push(state);
    Ok(())
}

/// The programme's rules, version by version.
#[async_trait]
pub trait PolicyStore: Send + Sync + std::fmt::Debug {
    /// Every policy version, oldest first.
    async fn policy_versions(&self) -> Result<Vec<StoredPolicy>, PortError>;

    /// Loads `rows` when no version is stored; returns whether it did.
    async fn seed_policy(&self, rows: &[StoredPolicy]) -> Result<bool, PortError>;

    /// Adds a version. `Conflict` when it does not follow every stored version (by number
    /// and date); `AlreadyExists` when another was added with its number meanwhile.
    async fn add_policy_version(&self, row: &StoredPolicy) -> Result<(), PortError>;

    /// Marks version `version` withdrawn, if it has not taken effect by `today` and is not
    /// withdrawn already; whether it did.
    async fn withdraw_policy_version(
        &self,
        version: i64,
        by: &str,
        at: time::OffsetDateTime,
        reason: &str,
        today: time::Date,
    ) -> Result<bool, PortError>;
}

/// The eligibility decisions given, kept to be shown again and audited.
#[async_trait]
pub trait DecisionStore: Send + Sync + std::fmt::Debug {
    /// Stores runs of a batch call's decisions in one transaction.
    async fn record_decision_runs(&self, runs: &[DecisionRun]) -> Result<(), PortError>;

    /// A stored single decision.
    async fn decision(&self, call_id: &str, idx: i64) -> Result<Option<StoredDecision>, PortError>;

    /// The run of a batch call that holds decision `idx`, if any.
    async fn decision_run(&self, call_id: &str, idx: i64) -> Result<Option<DecisionRun>, PortError>;
}
