//! `telesub.v1.Policy` and `telesub.v1.Eligibility`: convert messages to domain inputs and
//! back; the domain does every check.

use std::{
    collections::{HashMap, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex},
};

use futures_util::{Stream, StreamExt};
use telesub_proto::v1::{self as pb, eligibility_server::Eligibility, policy_server::Policy};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    CallContext,
    convert::timestamp,
    households::{category, category_to_pb, optional_date, removal_reason, removal_reason_to_pb},
    status,
};
use crate::domain::{
    DomainError, FieldViolation,
    eligibility::{Answer, BatchAnswer, Decision, EligibilityService, QueryInput, QueryKind, ReasonCode, new_call_id},
    household::format_date,
    policy::{
        AmountRule, DevicePriority, DeviceRules, GraceRule, PackageRule, PolicyRules, PolicyVersion, Service,
        ServiceRule,
    },
    unit_registry::UnitRegistry,
};

/// The most questions one message of a batch call may carry.
pub const MAX_CHECKS_PER_MESSAGE: usize = 10_000;
/// Answer chunks decided ahead of a client that reads slowly.
const ANSWERS_AHEAD: usize = 2;
/// Chunks of one batch call decided at the same time.
const CHUNKS_DECIDED_AT_ONCE: usize = 4;
/// Chunks decided ahead of the recording.
const DECIDED_AHEAD: usize = 4;
/// Decisions of a batch call stored in one transaction, at most (about).
const DECISIONS_PER_WRITE: usize = 16_000;

#[derive(Debug, Clone)]
pub struct PolicyApi {
    service: EligibilityService,
    units: Arc<UnitRegistry>,
}

impl PolicyApi {
    pub fn new(service: EligibilityService, units: Arc<UnitRegistry>) -> Self {
        Self { service, units }
    }
}

#[derive(Debug, Clone)]
pub struct EligibilityApi {
    service: EligibilityService,
    budget: Arc<CheckBudget>,
}

impl EligibilityApi {
    /// `max_checks_in_flight`: the questions of batch calls held at one time, across all calls.
    pub fn new(service: EligibilityService, max_checks_in_flight: usize) -> Self {
        Self { service, budget: Arc::new(CheckBudget::new(max_checks_in_flight)) }
    }
}

/// A chunk of a batch call being decided.
type Deciding = AbortOnDrop<Result<(Vec<BatchAnswer>, Held), DomainError>>;

/// A task that ends with whoever holds it.
#[derive(Debug)]
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The questions of batch calls held at one time (decided, being stored, or waiting to be
/// sent), in all and per member: what bounds the memory batch calls take, whatever their number
/// and however slowly their clients read. A chunk takes its questions' worth before it is
/// decided and gives it back once its answers are on their way to the client.
#[derive(Debug)]
struct CheckBudget {
    total: Arc<Semaphore>,
    per_member: usize,
    members: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A chunk's share of the budget, in the hub's and in its member's.
#[derive(Debug)]
struct Held {
    _total: OwnedSemaphorePermit,
    _member: OwnedSemaphorePermit,
}

impl CheckBudget {
    fn new(total: usize) -> Self {
        // Half for one member: a single large call runs at full speed, and another member's
        // calls still find room when one member's clients stop reading.
        let per_member = total.div_ceil(2).max(MAX_CHECKS_PER_MESSAGE);
        Self { total: Arc::new(Semaphore::new(total)), per_member, members: Mutex::default() }
    }

    /// Waits for room for `questions` (counted as one at least, at most a message's worth).
    async fn take(&self, member: &str, questions: usize) -> Held {
        let n = questions.clamp(1, MAX_CHECKS_PER_MESSAGE) as u32;
        let mine = self
            .members
            .lock()
            .expect("check budget")
            .entry(member.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_member)))
            .clone();
        // The semaphores are never closed.
        let member = mine.acquire_many_owned(n).await.expect("the member's budget is open");
        let total = self.total.clone().acquire_many_owned(n).await.expect("the hub's budget is open");
        Held { _total: total, _member: member }
    }
}

pub(super) fn service_from_pb(n: i32) -> Option<Service> {
    match pb::SupportedService::try_from(n).ok()? {
        pb::SupportedService::Unspecified => None,
        pb::SupportedService::Mobile => Some(Service::Mobile),
        pb::SupportedService::FixedBroadband => Some(Service::FixedBroadband),
    }
}

pub(super) fn service_to_pb(s: Service) -> pb::SupportedService {
    match s {
        Service::Mobile => pb::SupportedService::Mobile,
        Service::FixedBroadband => pb::SupportedService::FixedBroadband,
    }
}

fn reason_code_to_pb(c: ReasonCode) -> pb::ReasonCode {
    match c {
        ReasonCode::NotFound => pb::ReasonCode::NotFound,
        ReasonCode::Removed => pb::ReasonCode::Removed,
        ReasonCode::CategoryNotCovered => pb::ReasonCode::CategoryNotCovered,
        ReasonCode::NotYetValid => pb::ReasonCode::NotYetValid,
        ReasonCode::NoLongerMember => pb::ReasonCode::NoLongerMember,
        ReasonCode::AlreadyEnrolledElsewhere => pb::ReasonCode::AlreadyEnrolledElsewhere,
        ReasonCode::InvalidQuery => pb::ReasonCode::InvalidQuery,
    }
}

fn policy_to_pb(v: &PolicyVersion) -> pb::PolicyVersion {
    let r = &v.rules;
    pb::PolicyVersion {
        version: v.version,
        valid_from: format_date(v.valid_from),
        valid_to: v.valid_to.map(format_date).unwrap_or_default(),
        note: r.note.clone(),
        categories: r.categories.iter().map(|c| category_to_pb(*c).into()).collect(),
        services: r
            .services
            .iter()
            .map(|s| pb::ServiceRule {
                service: service_to_pb(s.service).into(),
                monthly_amount: s.monthly_amount,
                listed_communes_only: s.listed_communes_only,
            })
            .collect(),
        amounts: r
            .amounts
            .iter()
            .map(|a| pb::AmountRule {
                operator: a.operator.clone(),
                year: a.year,
                service: service_to_pb(a.service).into(),
                monthly_amount: a.monthly_amount,
            })
            .collect(),
        packages: r
            .packages
            .iter()
            .map(|p| pb::PackageRule {
                operator: p.operator.clone(),
                code: p.code.clone(),
                service: service_to_pb(p.service).into(),
            })
            .collect(),
        subscriptions_per_household: r.subscriptions_per_household as i32,
        broadband_communes: r.broadband_communes.clone(),
        grace: Some(pb::GraceRule {
            until_end_of_year: r.grace.until_end_of_year,
            removal_reasons: r.grace.removal_reasons.iter().map(|x| removal_reason_to_pb(*x).into()).collect(),
            on_category_change: r.grace.on_category_change,
        }),
        non_usage_months: r.non_usage_months as i32,
        recorded_by: v.recorded_by.clone().unwrap_or_default(),
        recorded_at: v.recorded_at.map(timestamp),
        withdrawal: v.withdrawal.as_ref().map(|w| pb::PolicyWithdrawal {
            withdrawn_by: w.by.clone(),
            withdrawn_at: Some(timestamp(w.at)),
            reason: w.reason.clone(),
        }),
        devices: Some(pb::DeviceRules {
            categories: r.devices.categories.iter().map(|c| category_to_pb(*c).into()).collect(),
            priority: r.devices.priority.iter().map(|p| device_priority_to_pb(*p).into()).collect(),
            cash_alternative_amount: r.devices.cash_alternative,
            own_phone_bought_from: r.devices.own_phone_bought_from.clone(),
        }),
    }
}

pub(super) fn device_priority_to_pb(p: DevicePriority) -> pb::DevicePriority {
    pb::DevicePriority::from_str_name(&format!("DEVICE_PRIORITY_{p}")).unwrap_or_default()
}

fn device_priority_from_pb(n: i32) -> Option<DevicePriority> {
    let name = pb::DevicePriority::try_from(n).ok()?.as_str_name();
    DevicePriority::parse(name.strip_prefix("DEVICE_PRIORITY_")?).ok()
}

/// The rules a request carries; enum numbers that mean nothing are reported by field.
fn rules_from_pb(v: pb::PolicyVersion) -> Result<PolicyRules, DomainError> {
    fn known<T>(bad: &mut Vec<FieldViolation>, field: String, value: Option<T>, what: &str) -> Option<T> {
        if value.is_none() {
            bad.push(FieldViolation::new(field, format!("a {what} is required")));
        }
        value
    }
    let mut bad = Vec::new();
    let categories = v
        .categories
        .iter()
        .enumerate()
        .filter_map(|(i, c)| known(&mut bad, format!("version.categories[{i}]"), category(*c), "category"))
        .collect();
    let services = v
        .services
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            known(&mut bad, format!("version.services[{i}].service"), service_from_pb(s.service), "service").map(
                |service| ServiceRule {
                    service,
                    monthly_amount: s.monthly_amount,
                    listed_communes_only: s.listed_communes_only,
                },
            )
        })
        .collect();
    let amounts = v
        .amounts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            known(&mut bad, format!("version.amounts[{i}].service"), service_from_pb(a.service), "service").map(
                |service| AmountRule {
                    operator: a.operator.clone(),
                    year: a.year,
                    service,
                    monthly_amount: a.monthly_amount,
                },
            )
        })
        .collect();
    let packages = v
        .packages
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            known(&mut bad, format!("version.packages[{i}].service"), service_from_pb(p.service), "service")
                .map(|service| PackageRule { operator: p.operator.clone(), code: p.code.clone(), service })
        })
        .collect();
    let devices = match v.devices {
        None => DeviceRules::default(),
        Some(d) => DeviceRules {
            categories: d
                .categories
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    known(&mut bad, format!("version.devices.categories[{i}]"), category(*c), "category")
                })
                .collect(),
            priority: d
                .priority
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    known(&mut bad, format!("version.devices.priority[{i}]"), device_priority_from_pb(*p), "priority")
                })
                .collect(),
            cash_alternative: d.cash_alternative_amount,
            own_phone_bought_from: d.own_phone_bought_from,
        },
    };
    let grace = v.grace.unwrap_or_default();
    let removal_reasons = grace
        .removal_reasons
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            known(&mut bad, format!("version.grace.removal_reasons[{i}]"), removal_reason(*r), "removal reason")
        })
        .collect();
    if !bad.is_empty() {
        return Err(DomainError::Invalid(bad));
    }
    Ok(PolicyRules {
        valid_from: v.valid_from,
        note: v.note,
        categories,
        services,
        amounts,
        packages,
        subscriptions_per_household: u32::try_from(v.subscriptions_per_household).unwrap_or(0),
        broadband_communes: v.broadband_communes,
        grace: GraceRule {
            until_end_of_year: grace.until_end_of_year,
            removal_reasons,
            on_category_change: grace.on_category_change,
        },
        non_usage_months: u32::try_from(v.non_usage_months).unwrap_or(0),
        devices,
    })
}

fn query_input(r: &pb::CheckEligibilityRequest) -> QueryInput {
    use pb::check_eligibility_request::Key;
    let (kind, value) = match &r.key {
        Some(Key::CitizenId(v)) => (Some(QueryKind::CitizenId), v.clone()),
        Some(Key::HouseholdCode(v)) => (Some(QueryKind::HouseholdCode), v.clone()),
        Some(Key::CertificateNumber(v)) => (Some(QueryKind::CertificateNumber), v.clone()),
        None => (None, String::new()),
    };
    QueryInput { kind, value, as_of: r.as_of.clone() }
}

fn query_to_pb(kind: Option<QueryKind>, value: &str, as_of: String) -> pb::CheckEligibilityRequest {
    use pb::check_eligibility_request::Key;
    let key = kind.map(|k| match k {
        QueryKind::CitizenId => Key::CitizenId(value.to_owned()),
        QueryKind::HouseholdCode => Key::HouseholdCode(value.to_owned()),
        QueryKind::CertificateNumber => Key::CertificateNumber(value.to_owned()),
    });
    pb::CheckEligibilityRequest { key, as_of }
}

fn answer_fields(d: &mut pb::EligibilityDecision, a: &Answer) {
    d.eligible = a.eligible;
    d.household_code = a.household_code.clone().unwrap_or_default();
    d.category = a.category.map_or(pb::Category::Unspecified, category_to_pb).into();
    d.head_name_masked = a.head_name_masked.clone();
    d.entitlements = a
        .entitlements
        .iter()
        .map(|e| pb::Entitlement {
            service: service_to_pb(e.service).into(),
            monthly_amount: e.monthly_amount,
            subscriptions_allowed: e.subscriptions_allowed as i32,
            valid_from: e.valid_from.clone(),
            valid_to: e.valid_to.clone().unwrap_or_default(),
        })
        .collect();
    d.reasons = a
        .reasons
        .iter()
        .map(|r| pb::DecisionReason {
            code: reason_code_to_pb(r.code).into(),
            message: r.message.clone(),
            date: r.date.clone().unwrap_or_default(),
            removal_reason: r.removal_reason.map_or(pb::RemovalReason::Unspecified, removal_reason_to_pb).into(),
            support_ended: r.support_ended.clone().unwrap_or_default(),
        })
        .collect();
    d.policy_version = a.policy_version;
}

fn decision_to_pb(d: &Decision) -> pb::EligibilityDecision {
    let as_of = format_date(d.query.as_of);
    let mut out = pb::EligibilityDecision {
        decision_id: d.id.clone(),
        decided_at: Some(timestamp(d.decided_at)),
        asked_by: d.asked_by.clone(),
        query: Some(query_to_pb(Some(d.query.kind), &d.query.value, as_of.clone())),
        as_of,
        ..Default::default()
    };
    answer_fields(&mut out, &d.answer);
    out
}

fn batch_answer_to_pb(a: &BatchAnswer) -> pb::EligibilityDecision {
    match a {
        BatchAnswer::Decided(d) => decision_to_pb(d),
        BatchAnswer::Invalid { input, violations } => pb::EligibilityDecision {
            query: Some(query_to_pb(input.kind, &input.value, input.as_of.clone())),
            as_of: input.as_of.clone(),
            reasons: violations
                .iter()
                .map(|v| pb::DecisionReason {
                    code: pb::ReasonCode::InvalidQuery.into(),
                    message: format!("{}: {}", v.field, v.description),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
    }
}

#[tonic::async_trait]
impl Policy for PolicyApi {
    async fn get_policy(&self, request: Request<pb::GetPolicyRequest>) -> Result<Response<pb::PolicyVersion>, Status> {
        let ctx = CallContext::of(&request)?;
        let as_of = optional_date("as_of", &request.get_ref().as_of)
            .map_err(|e| ctx.fail(e))?
            .unwrap_or_else(|| self.service.clock().today());
        let version = self.service.policy().on(as_of).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(policy_to_pb(&version)))
    }

    async fn list_policy_versions(
        &self,
        request: Request<pb::ListPolicyVersionsRequest>,
    ) -> Result<Response<pb::ListPolicyVersionsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let table = self.service.policy().table().await.map_err(|e| ctx.fail(e.into()))?;
        Ok(Response::new(pb::ListPolicyVersionsResponse {
            versions: table.all().into_iter().map(|v| policy_to_pb(v)).collect(),
        }))
    }

    async fn add_policy_version(
        &self,
        request: Request<pb::AddPolicyVersionRequest>,
    ) -> Result<Response<pb::PolicyVersion>, Status> {
        let ctx = CallContext::of(&request)?;
        let caller = ctx.caller()?.member.code.clone();
        let Some(version) = request.into_inner().version else {
            return Err(ctx.fail(DomainError::invalid("version", "the version's rules are required")));
        };
        let rules = rules_from_pb(version).map_err(|e| ctx.fail(e))?;
        let units = self.units.table().await.map_err(|e| ctx.fail(e.into()))?;
        let added = self
            .service
            .policy()
            .add(rules, &units, &caller, self.service.clock().now())
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(policy_to_pb(&added)))
    }

    async fn withdraw_policy_version(
        &self,
        request: Request<pb::WithdrawPolicyVersionRequest>,
    ) -> Result<Response<pb::PolicyVersion>, Status> {
        let ctx = CallContext::of(&request)?;
        let caller = ctx.caller()?.member.code.clone();
        let r = request.into_inner();
        let withdrawn = self
            .service
            .policy()
            .withdraw(r.version, &r.reason, &caller, self.service.clock().now())
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(policy_to_pb(&withdrawn)))
    }
}

type AnswerStream = Pin<Box<dyn Stream<Item = Result<pb::CheckEligibilityBatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Eligibility for EligibilityApi {
    async fn check_eligibility(
        &self,
        request: Request<pb::CheckEligibilityRequest>,
    ) -> Result<Response<pb::EligibilityDecision>, Status> {
        let ctx = CallContext::of(&request)?;
        let caller = ctx.caller()?;
        let input = query_input(request.get_ref());
        let cx = self.service.context().await.map_err(|e| ctx.fail(e))?;
        let query = EligibilityService::check_query(&cx, &input, "").map_err(|v| ctx.fail(DomainError::Invalid(v)))?;
        let decision = self.service.decide_one(&cx, query, caller, &new_call_id()).await.map_err(|e| ctx.fail(e))?;
        ctx.store_with_audit([decision.to_row(&ctx.request_id)]);
        Ok(Response::new(decision_to_pb(&decision)))
    }

    type CheckEligibilityBatchStream = AnswerStream;

    async fn check_eligibility_batch(
        &self,
        request: Request<Streaming<pb::CheckEligibilityBatchRequest>>,
    ) -> Result<Response<AnswerStream>, Status> {
        let ctx = CallContext::of(&request)?;
        let caller = ctx.caller()?.clone();
        let questions = request.into_inner();
        let service = self.service.clone();
        let (answers, rx) = mpsc::channel(ANSWERS_AHEAD);
        let (decided, mut to_record) = mpsc::channel::<Result<(Vec<BatchAnswer>, Held), Status>>(DECIDED_AHEAD);
        let call_id = new_call_id();
        let request_id = ctx.request_id.clone();
        let recorder = ctx.clone();
        // Deciding: questions are checked and decided chunk by chunk, several chunks at once
        // (each on its own task, so that both the reading and the deciding use every core),
        // ahead of the recording and in order.
        let budget = self.budget.clone();
        let member = caller.member.code.as_str().to_owned();
        // Reading: each message waits for room in the budget, then is decided on a task of its
        // own; several at once, so that both the reading and the deciding use every core.
        let (started, mut deciding_queue) = mpsc::channel::<Deciding>(CHUNKS_DECIDED_AT_ONCE - 1);
        let reading = {
            let service = service.clone();
            let mut questions = questions;
            tokio::spawn(async move {
                let mut next = 0usize;
                // A message that does not arrive whole ends the questions.
                while let Some(Ok(chunk)) = questions.next().await {
                    let held = budget.take(&member, chunk.checks.len()).await;
                    let first = next;
                    next += chunk.checks.len();
                    let (service, caller, call_id) = (service.clone(), caller.clone(), call_id.clone());
                    let task = tokio::spawn(async move {
                        if chunk.checks.len() > MAX_CHECKS_PER_MESSAGE {
                            return Err(DomainError::invalid(
                                "checks",
                                format!(
                                    "a message carries {} questions; send at most {MAX_CHECKS_PER_MESSAGE} per message",
                                    chunk.checks.len()
                                ),
                            ));
                        }
                        let answers = answer_chunk(&service, &caller, &call_id, first, &chunk.checks).await?;
                        Ok((answers, held))
                    });
                    if started.send(AbortOnDrop(task)).await.is_err() {
                        return;
                    }
                }
            })
        };
        // Deciding: the chunks' answers, in order, ahead of the recording.
        let deciding = tokio::spawn(async move {
            let _reading = AbortOnDrop(reading);
            // A client that breaks off ends the stream: what was answered stays answered.
            while let Some(mut task) = deciding_queue.recv().await {
                let answered = (&mut task.0).await.unwrap_or_else(|e| Err(DomainError::Internal(e.into())));
                let stop = answered.is_err();
                if decided.send(answered.map_err(|e| ctx.fail(e))).await.is_err() || stop {
                    return;
                }
            }
        });
        // Recording: the decisions of several chunks are stored in one transaction, then their
        // answers are sent, in order.
        tokio::spawn(async move {
            let mut pending: Vec<(Vec<BatchAnswer>, Held)> = Vec::new();
            // The budget of the answers the channel may still hold: given back once they are
            // surely taken (the channel holds ANSWERS_AHEAD at most).
            let mut sent: VecDeque<Held> = VecDeque::with_capacity(ANSWERS_AHEAD + 1);
            let mut failure = None;
            loop {
                let received = match to_record.recv().await {
                    Some(r) => r,
                    None => break,
                };
                match received {
                    Ok(chunk) => pending.push(chunk),
                    Err(status) => failure = Some(status),
                }
                // Take what else is ready, up to a transaction's worth.
                while failure.is_none() && pending.iter().map(|(c, _)| c.len()).sum::<usize>() < DECISIONS_PER_WRITE {
                    match to_record.try_recv() {
                        Ok(Ok(chunk)) => pending.push(chunk),
                        Ok(Err(status)) => failure = Some(status),
                        Err(_) => break,
                    }
                }
                let decisions: Vec<&Decision> = pending
                    .iter()
                    .flat_map(|(c, _)| c)
                    .filter_map(|a| match a {
                        BatchAnswer::Decided(d) => Some(d.as_ref()),
                        BatchAnswer::Invalid { .. } => None,
                    })
                    .collect();
                match service.record_batch(&decisions, &request_id).await {
                    Ok(runs) => recorder.stored_runs(runs),
                    Err(e) => {
                        let _ = answers.send(Err(status::to_status(e, &request_id))).await;
                        deciding.abort();
                        return;
                    }
                }
                for (chunk, held) in pending.drain(..) {
                    let reply =
                        pb::CheckEligibilityBatchResponse { decisions: chunk.iter().map(batch_answer_to_pb).collect() };
                    drop(chunk);
                    if answers.send(Ok(reply)).await.is_err() {
                        deciding.abort();
                        return;
                    }
                    sent.push_back(held);
                    if sent.len() > ANSWERS_AHEAD {
                        sent.pop_front();
                    }
                }
                if let Some(status) = failure.take() {
                    let _ = answers.send(Err(status)).await;
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx)) as AnswerStream))
    }

    async fn get_decision(
        &self,
        request: Request<pb::GetDecisionRequest>,
    ) -> Result<Response<pb::EligibilityDecision>, Status> {
        let ctx = CallContext::of(&request)?;
        let decision =
            self.service.get(&request.get_ref().decision_id, ctx.caller()?).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(decision_to_pb(&decision)))
    }
}

/// Checks and decides one chunk of a batch call (the caller stores the decisions); decisions are numbered from `first`.
async fn answer_chunk(
    service: &EligibilityService,
    caller: &crate::domain::member::Caller,
    call_id: &str,
    first: usize,
    checks: &[pb::CheckEligibilityRequest],
) -> Result<Vec<BatchAnswer>, DomainError> {
    let cx = service.context().await?;
    let mut answers: Vec<Option<BatchAnswer>> = Vec::with_capacity(checks.len());
    let mut valid = Vec::with_capacity(checks.len());
    let mut places = Vec::with_capacity(checks.len());
    for (i, check) in checks.iter().enumerate() {
        let input = query_input(check);
        match EligibilityService::check_query(&cx, &input, "") {
            Ok(q) => {
                valid.push(q);
                places.push(i);
                answers.push(None);
            }
            Err(violations) => {
                // Named by the question's place in the whole call.
                let violations = violations
                    .into_iter()
                    .map(|v| FieldViolation::new(format!("checks[{}].{}", first + i, v.field), v.description))
                    .collect();
                answers.push(Some(BatchAnswer::Invalid { input, violations }));
            }
        }
    }
    // Decisions are numbered by their question's place in the whole call.
    let numbers: Vec<usize> = places.iter().map(|p| first + p).collect();
    let decided = service.decide_all(&cx, &valid, caller, call_id, &numbers).await?;
    for (place, d) in places.into_iter().zip(decided) {
        answers[place] = Some(BatchAnswer::Decided(Box::new(d)));
    }
    Ok(answers.into_iter().map(|a| a.expect("every question answered")).collect())
}

#[cfg(test)]
mod mapping_tests {
    use super::*;

    #[test]
    fn every_device_priority_has_its_protobuf_value_and_back() {
        for &p in DevicePriority::ALL {
            let pb = device_priority_to_pb(p);
            assert_ne!(pb, pb::DevicePriority::Unspecified, "{p} maps to UNSPECIFIED");
            assert_eq!(device_priority_from_pb(pb.into()), Some(p));
        }
    }
}
