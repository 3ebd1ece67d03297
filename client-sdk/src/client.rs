//! The client: a builder for the mutual-TLS connection and one typed method per RPC.

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use telesub_proto::v1::{
    self as pb, administrative_units_client::AdministrativeUnitsClient, change_feed_client::ChangeFeedClient,
    device_allocation_client::DeviceAllocationClient, eligibility_client::EligibilityClient,
    enrollments_client::EnrollmentsClient, household_registry_client::HouseholdRegistryClient,
    members_client::MembersClient, policy_client::PolicyClient, reconciliation_client::ReconciliationClient,
    supervision_client::SupervisionClient,
};
use tonic::{
    Status,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::Error;

/// How read-only calls are retried when the hub is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 turns retries off.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 4, initial_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }
}

/// Sets up a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: String,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    ca: Option<Vec<u8>>,
    domain_name: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    receipts: Option<ReceiptSink>,
}

/// Where the signed receipts of write answers go.
#[derive(Clone)]
struct ReceiptSink(Arc<dyn Fn(String) + Send + Sync>);

impl std::fmt::Debug for ReceiptSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptSink")
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Config(format!("cannot read the {what} {}: {e}", path.display())))
}

impl ClientBuilder {
    /// The client certificate and key, PEM encoded.
    pub fn identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    pub fn identity_files(self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, Error> {
        let cert = read(cert.as_ref(), "client certificate")?;
        let key = read(key.as_ref(), "client key")?;
        Ok(self.identity_pem(cert, key))
    }

    /// The CA that issued the hub's certificate, PEM encoded.
    pub fn ca_pem(mut self, ca: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(ca.into());
        self
    }

    pub fn ca_file(self, ca: impl AsRef<Path>) -> Result<Self, Error> {
        let ca = read(ca.as_ref(), "CA certificate")?;
        Ok(self.ca_pem(ca))
    }

    /// For a development folder written by `telesub pki init`: `DIR/ca.crt` and the
    /// certificate and key of `org` in `DIR/clients/`.
    pub fn dev_folder(self, dir: impl AsRef<Path>, org: &str) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let client = |ext: &str| -> PathBuf { dir.join("clients").join(format!("{org}.{ext}")) };
        self.ca_file(dir.join("ca.crt"))?.identity_files(client("crt"), client("key"))
    }

    /// The name the hub's certificate must carry; by default the endpoint's host.
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Deadline of each call but batch pushes (sent to the hub as `grpc-timeout`).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Hands every signed receipt a write answer carries (the text of a signed note, see
    /// [`crate::audit::Receipt`]) to `keep`, e.g. to save it beside the business record it
    /// proves. Each is the hub's signed promise that the call's audit record, with the digest
    /// of the request sent, is in its trail.
    pub fn on_receipt(mut self, keep: impl Fn(String) + Send + Sync + 'static) -> Self {
        self.receipts = Some(ReceiptSink(Arc::new(keep)));
        self
    }

    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    fn endpoint(&self) -> Result<Endpoint, Error> {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.domain_name {
            tls = tls.domain_name(name.clone());
        }
        Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| Error::Config(format!("{:?} is not a valid endpoint: {e}", self.endpoint)))?
            .tls_config(tls)
            .map_err(|e| Error::Config(format!("TLS configuration: {e}")))
            .map(|e| {
                // Deadlines go with each call (`grpc-timeout`), not on the channel: a batch push
                // streams for as long as its records take.
                e.connect_timeout(self.connect_timeout)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .keep_alive_timeout(Duration::from_secs(20))
            })
    }

    /// Whether the hub accepts this certificate, found by a TLS handshake of its own: `Ok`, or
    /// [`Error::CertificateRefused`] with the hub's reason. With TLS 1.3 a refusal can reach a
    /// call as a mere closed connection; after a call failed so, this tells a refused
    /// certificate from a connection that failed for another reason.
    pub async fn check_certificate(&self) -> Result<(), Error> {
        let (Some(ca), Some((cert, key))) = (&self.ca, &self.identity) else {
            return Err(Error::Config("a CA and a client identity are needed to check a certificate".into()));
        };
        crate::probe::check_certificate(
            &self.endpoint,
            self.domain_name.as_deref(),
            ca,
            (cert, key),
            self.connect_timeout.max(Duration::from_secs(2)),
        )
        .await
    }

    /// Connects now, failing when the hub cannot be reached.
    pub async fn connect(self) -> Result<Client, Error> {
        let endpoint = self.endpoint()?;
        let channel = endpoint.connect().await.map_err(|e| {
            let reason = error_chain(&e);
            match reason.split_once("received fatal alert: ") {
                Some((_, alert)) => {
                    Error::CertificateRefused { alert: alert.split(':').next().unwrap_or(alert).trim().to_owned() }
                }
                None => Error::Connect { endpoint: self.endpoint.clone(), reason },
            }
        })?;
        Ok(Client::new(channel, self))
    }

    /// Connects on the first call (and reconnects after failures).
    pub fn connect_lazy(self) -> Result<Client, Error> {
        let channel = self.endpoint()?.connect_lazy();
        Ok(Client::new(channel, self))
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A connection to the hub. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    members: MembersClient<Channel>,
    households: HouseholdRegistryClient<Channel>,
    units: AdministrativeUnitsClient<Channel>,
    policy: PolicyClient<Channel>,
    eligibility: EligibilityClient<Channel>,
    enrollments: EnrollmentsClient<Channel>,
    feed: ChangeFeedClient<Channel>,
    reconciliation: ReconciliationClient<Channel>,
    devices: DeviceAllocationClient<Channel>,
    supervision: SupervisionClient<Channel>,
    health: HealthClient<Channel>,
    retry: RetryPolicy,
    request_timeout: Duration,
    receipts: Option<ReceiptSink>,
}

impl Client {
    /// Starts configuring a client for `endpoint`, e.g. `https://hub.example.vn:50051`.
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            identity: None,
            ca: None,
            domain_name: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            receipts: None,
        }
    }

    fn new(channel: Channel, builder: ClientBuilder) -> Self {
        Self {
            members: MembersClient::new(channel.clone()),
            households: HouseholdRegistryClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            units: AdministrativeUnitsClient::new(channel.clone()),
            policy: PolicyClient::new(channel.clone()),
            eligibility: EligibilityClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            enrollments: EnrollmentsClient::new(channel.clone()),
            feed: ChangeFeedClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            reconciliation: ReconciliationClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            devices: DeviceAllocationClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            supervision: SupervisionClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            health: HealthClient::new(channel),
            retry: builder.retry,
            request_timeout: builder.request_timeout,
            receipts: builder.receipts,
        }
    }

    /// A write's answer, its receipt handed to the sink set with
    /// [`ClientBuilder::on_receipt`].
    fn receipted<T>(&self, response: tonic::Response<T>) -> T {
        if let (Some(sink), Some(receipt)) = (&self.receipts, crate::audit::receipt_in(response.metadata())) {
            (sink.0)(receipt);
        }
        response.into_inner()
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.request_timeout);
        request
    }

    /// Runs a call that changes nothing, retrying while the hub is unavailable.
    async fn read_only<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut backoff = self.retry.initial_backoff;
        let mut attempt = 1;
        loop {
            let err = match call().await {
                Ok(value) => return Ok(value),
                Err(status) => Error::from(status),
            };
            if attempt >= self.retry.max_attempts.max(1) || !err.is_retryable() {
                return Err(err);
            }
            tracing::debug!(attempt, error = %err, "retrying");
            // Never sooner than the hub asked.
            let asked = err.rejection().and_then(|r| r.retry_delay).unwrap_or_default();
            tokio::time::sleep(jitter(backoff).max(asked)).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
            attempt += 1;
        }
    }

    /// Whether the hub says it is serving (`grpc.health.v1.Health/Check`).
    pub async fn health(&self) -> Result<bool, Error> {
        self.read_only(|| {
            let mut health = self.health.clone();
            let request = self.request(HealthCheckRequest { service: String::new() });
            async move { health.check(request).await }
        })
        .await
        .map(|r| r.into_inner().status == ServingStatus::Serving as i32)
    }

    /// Who the hub takes this client to be.
    pub async fn who_am_i(&self) -> Result<pb::WhoAmIResponse, Error> {
        self.read_only(|| {
            let mut members = self.members.clone();
            let request = self.request(pb::WhoAmIRequest {});
            async move { members.who_am_i(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// One page of members (ICT only).
    pub async fn list_members(&self, query: pb::ListMembersRequest) -> Result<pb::ListMembersResponse, Error> {
        self.read_only(|| {
            let mut members = self.members.clone();
            let request = self.request(query.clone());
            async move { members.list_members(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Adds a member (ICT only).
    pub async fn register_member(&self, member: pb::RegisterMemberRequest) -> Result<pb::Member, Error> {
        let response = self.members.clone().register_member(self.request(member)).await?;
        self.receipted(response).member.ok_or_else(missing_member)
    }

    /// Changes a member (ICT only).
    pub async fn update_member(&self, update: pb::UpdateMemberRequest) -> Result<pb::Member, Error> {
        let response = self.members.clone().update_member(self.request(update)).await?;
        self.receipted(response).member.ok_or_else(missing_member)
    }

    /// Suspends a member (ICT only); `reason` is required.
    pub async fn suspend_member(&self, code: &str, reason: &str) -> Result<pb::Member, Error> {
        let request = pb::SuspendMemberRequest { code: code.to_owned(), reason: reason.to_owned() };
        let response = self.members.clone().suspend_member(self.request(request)).await?;
        self.receipted(response).member.ok_or_else(missing_member)
    }
}

/// Records per message of a pushed batch: large enough to amortise framing, small enough to
/// stay far below the hub's message size limit.
pub const RECORDS_PER_CHUNK: usize = 500;
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

impl Client {
    /// Pushes a batch of household records (LABOUR only): the header, then the records in
    /// chunks, streamed as `records` yields them. Applied whole or not at all; pushing the
    /// same batch id with the same content again returns the first receipt (`replayed`).
    ///
    /// Not retried by the SDK: the stream cannot be replayed. Pushing again with the same
    /// batch id is safe.
    pub async fn push_batch<S>(&self, header: pb::BatchHeader, records: S) -> Result<pb::BatchReceipt, Error>
    where
        S: Stream<Item = pb::HouseholdRecord> + Send + 'static,
    {
        let first = futures_util::stream::once(async move {
            pb::PushBatchRequest { item: Some(pb::push_batch_request::Item::Header(header)) }
        });
        let chunks = records.chunks(RECORDS_PER_CHUNK).map(|records| pb::PushBatchRequest {
            item: Some(pb::push_batch_request::Item::Records(pb::RecordChunk { records })),
        });
        // A large batch takes longer than one ordinary call; the hub's own limit applies.
        let request = tonic::Request::new(first.chain(chunks));
        Ok(self.receipted(self.households.clone().push_batch(request).await?))
    }

    /// The receipt of a batch.
    pub async fn get_batch(&self, batch_id: &str) -> Result<pb::BatchReceipt, Error> {
        self.read_only(|| {
            let mut households = self.households.clone();
            let request = self.request(pb::GetBatchRequest { batch_id: batch_id.to_owned() });
            async move { households.get_batch(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Batch receipts, newest first, a page at a time.
    pub async fn list_batches(&self, query: pb::ListBatchesRequest) -> Result<pb::ListBatchesResponse, Error> {
        self.read_only(|| {
            let mut households = self.households.clone();
            let request = self.request(query.clone());
            async move { households.list_batches(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// A household as it was on `as_of` (`YYYY-MM-DD`; empty for today).
    pub async fn get_household(&self, code: &str, as_of: &str) -> Result<pb::HouseholdVersion, Error> {
        self.read_only(|| {
            let mut households = self.households.clone();
            let request =
                self.request(pb::GetHouseholdRequest { household_code: code.to_owned(), as_of: as_of.to_owned() });
            async move { households.get_household(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Every state a household has been in, oldest first.
    pub async fn household_history(&self, code: &str) -> Result<pb::HouseholdHistory, Error> {
        self.read_only(|| {
            let mut households = self.households.clone();
            let request = self.request(pb::GetHouseholdHistoryRequest { household_code: code.to_owned() });
            async move { households.get_household_history(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Households with a member with this citizen ID, as on `as_of` (empty for today).
    pub async fn find_by_citizen_id(&self, citizen_id: &str, as_of: &str) -> Result<Vec<pb::HouseholdVersion>, Error> {
        self.find(pb::find_households_request::Key::CitizenId(citizen_id.to_owned()), as_of).await
    }

    /// Households holding this certificate, as on `as_of` (empty for today).
    pub async fn find_by_certificate(&self, number: &str, as_of: &str) -> Result<Vec<pb::HouseholdVersion>, Error> {
        self.find(pb::find_households_request::Key::CertificateNumber(number.to_owned()), as_of).await
    }

    async fn find(
        &self,
        key: pb::find_households_request::Key,
        as_of: &str,
    ) -> Result<Vec<pb::HouseholdVersion>, Error> {
        self.read_only(|| {
            let mut households = self.households.clone();
            let request = self.request(pb::FindHouseholdsRequest { key: Some(key.clone()), as_of: as_of.to_owned() });
            async move { households.find_households(request).await }
        })
        .await
        .map(|r| r.into_inner().households)
    }

    /// Administrative units valid on `as_of` (all when empty).
    pub async fn list_units(&self, query: pb::ListUnitsRequest) -> Result<Vec<pb::AdministrativeUnit>, Error> {
        self.read_only(|| {
            let mut units = self.units.clone();
            let request = self.request(query.clone());
            async move { units.list_units(request).await }
        })
        .await
        .map(|r| r.into_inner().units)
    }

    /// Records new units and changes to existing ones, all or nothing (ICT only).
    pub async fn record_units(&self, units: Vec<pb::AdministrativeUnit>) -> Result<pb::RecordUnitsResponse, Error> {
        let request = self.request(pb::RecordUnitsRequest { units });
        Ok(self.receipted(self.units.clone().record_units(request).await?))
    }
}

/// Questions sent per message of [`Client::check_eligibility_batch`].
pub const CHECKS_PER_CHUNK: usize = 2_000;

/// The programme's rules (`telesub.v1.Policy`).
impl Client {
    /// The policy version in force on `as_of` (`YYYY-MM-DD`; empty for today).
    pub async fn get_policy(&self, as_of: &str) -> Result<pb::PolicyVersion, Error> {
        self.read_only(|| {
            let mut policy = self.policy.clone();
            let request = self.request(pb::GetPolicyRequest { as_of: as_of.to_owned() });
            async move { policy.get_policy(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Every policy version, oldest first.
    pub async fn list_policy_versions(&self) -> Result<Vec<pb::PolicyVersion>, Error> {
        self.read_only(|| {
            let mut policy = self.policy.clone();
            let request = self.request(pb::ListPolicyVersionsRequest {});
            async move { policy.list_policy_versions(request).await }
        })
        .await
        .map(|r| r.into_inner().versions)
    }

    /// Records a new policy version (ICT only).
    pub async fn add_policy_version(&self, version: pb::PolicyVersion) -> Result<pb::PolicyVersion, Error> {
        let request = self.request(pb::AddPolicyVersionRequest { version: Some(version) });
        Ok(self.receipted(self.policy.clone().add_policy_version(request).await?))
    }

    /// Withdraws a version that has not yet taken effect, with the reason. ICT only.
    pub async fn withdraw_policy_version(&self, version: i64, reason: &str) -> Result<pb::PolicyVersion, Error> {
        let request = self.request(pb::WithdrawPolicyVersionRequest { version, reason: reason.to_owned() });
        Ok(self.receipted(self.policy.clone().withdraw_policy_version(request).await?))
    }
}

/// Eligibility decisions (`telesub.v1.Eligibility`).
impl Client {
    /// Whether the household `key` identifies is entitled to support on `as_of` (`YYYY-MM-DD`;
    /// empty for today). Asking again is harmless, so the call is retried like a read.
    pub async fn check_eligibility(
        &self,
        key: pb::check_eligibility_request::Key,
        as_of: &str,
    ) -> Result<pb::EligibilityDecision, Error> {
        self.read_only(|| {
            let mut eligibility = self.eligibility.clone();
            let request = self.request(pb::CheckEligibilityRequest { key: Some(key.clone()), as_of: as_of.to_owned() });
            async move { eligibility.check_eligibility(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// [`Client::check_eligibility`] by a member's citizen ID.
    pub async fn check_citizen(&self, citizen_id: &str, as_of: &str) -> Result<pb::EligibilityDecision, Error> {
        self.check_eligibility(pb::check_eligibility_request::Key::CitizenId(citizen_id.to_owned()), as_of).await
    }

    /// Many questions in one call: sent in chunks of [`CHECKS_PER_CHUNK`], answered in the
    /// same order, one decision per question (a malformed question gets a decision with
    /// reason `INVALID_QUERY`). Answers arrive while later questions are still being sent.
    pub async fn check_eligibility_batch<S>(
        &self,
        questions: S,
    ) -> Result<impl Stream<Item = Result<pb::EligibilityDecision, Error>> + Send + 'static, Error>
    where
        S: Stream<Item = pb::CheckEligibilityRequest> + Send + 'static,
    {
        let chunks = questions.chunks(CHECKS_PER_CHUNK).map(|checks| pb::CheckEligibilityBatchRequest { checks });
        // Long-running: the hub's own batch limit applies, not the per-call timeout.
        let answers = self.eligibility.clone().check_eligibility_batch(tonic::Request::new(chunks)).await?.into_inner();
        Ok(answers.flat_map(|chunk| {
            let decisions: Vec<Result<pb::EligibilityDecision, Error>> = match chunk {
                Ok(chunk) => chunk.decisions.into_iter().map(Ok).collect(),
                Err(status) => vec![Err(Error::from(status))],
            };
            futures_util::stream::iter(decisions)
        }))
    }

    /// A decision given earlier, by its id.
    pub async fn get_decision(&self, decision_id: &str) -> Result<pb::EligibilityDecision, Error> {
        self.read_only(|| {
            let mut eligibility = self.eligibility.clone();
            let request = self.request(pb::GetDecisionRequest { decision_id: decision_id.to_owned() });
            async move { eligibility.get_decision(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }
}

/// The enrolment register (`telesub.v1.Enrollments`). Writes carry the caller's idempotency
/// key, so a write whose answer was lost may be sent again with the same key.
impl Client {
    /// Enrols a subsidised line (operators).
    pub async fn enroll(&self, request: pb::EnrollRequest) -> Result<pb::Enrollment, Error> {
        let request = self.request(request);
        Ok(self.receipted(self.enrollments.clone().enroll(request).await?))
    }

    /// Ends one of the caller's enrolments (operators).
    pub async fn deenroll(&self, request: pb::DeenrollRequest) -> Result<pb::Enrollment, Error> {
        let request = self.request(request);
        Ok(self.receipted(self.enrollments.clone().deenroll(request).await?))
    }

    /// Takes a household's line over from another operator on its written request (operators).
    pub async fn transfer(&self, request: pb::TransferRequest) -> Result<pb::TransferResponse, Error> {
        let request = self.request(request);
        Ok(self.receipted(self.enrollments.clone().transfer(request).await?))
    }

    /// One enrolment by its id: the caller's own, or (ICT) anyone's.
    pub async fn get_enrollment(&self, enrollment_id: &str) -> Result<pb::Enrollment, Error> {
        let query = pb::GetEnrollmentRequest { enrollment_id: enrollment_id.to_owned() };
        self.read_only(|| {
            let mut enrollments = self.enrollments.clone();
            let request = self.request(query.clone());
            async move { enrollments.get_enrollment(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Enrolments, a page at a time: the caller's own, or (ICT) anyone's.
    pub async fn list_enrollments(
        &self,
        query: pb::ListEnrollmentsRequest,
    ) -> Result<pb::ListEnrollmentsResponse, Error> {
        self.read_only(|| {
            let mut enrollments = self.enrollments.clone();
            let request = self.request(query.clone());
            async move { enrollments.list_enrollments(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }
}

/// The operators' change feed (`telesub.v1.ChangeFeed`).
impl Client {
    /// Events about the caller's enrolled households after `cursor` (empty: from the
    /// beginning), then new ones as they happen, with heartbeats every `heartbeat_seconds`
    /// (0: the hub's default) while there are none. The stream ends only when the connection
    /// does: keep the cursor of the last event processed and call again with it.
    pub async fn watch_changes(
        &self,
        cursor: &str,
        heartbeat_seconds: i32,
    ) -> Result<impl Stream<Item = Result<pb::WatchChangesResponse, Error>> + Send + 'static, Error> {
        // No deadline: the stream is meant to stay open.
        let request = tonic::Request::new(pb::WatchChangesRequest { cursor: cursor.to_owned(), heartbeat_seconds });
        let stream = self.feed.clone().watch_changes(request).await?.into_inner();
        Ok(stream.map(|item| item.map_err(Error::from)))
    }
}

fn missing_member() -> Error {
    Error::Other {
        code: tonic::Code::Internal,
        rejection: crate::Rejection {
            message: "the hub's answer carried no member".to_owned(),
            request_id: None,
            violations: Vec::new(),
            retry_delay: None,
        },
    }
}

/// The backoff, spread by ±20 % so that many clients do not retry in step.
fn jitter(backoff: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let factor = 0.8 + f64::from(nanos % 1_000) / 2_500.0;
    backoff.mul_f64(factor)
}

/// Lines per message of a monthly list.
pub const LINES_PER_CHUNK: usize = 1_000;

/// Monthly lists and their reconciliation (`telesub.v1.Reconciliation`).
impl Client {
    /// Submits a month's list (OPERATOR): the header, then the lines in chunks of
    /// [`LINES_PER_CHUNK`]; answers when the hub has reconciled it. Sending the same list again
    /// under the same `update_id` is harmless (the answer says `replayed`).
    pub async fn submit_monthly_update<S>(
        &self,
        header: pb::MonthlyUpdateHeader,
        lines: S,
    ) -> Result<pb::MonthlyReconciliation, Error>
    where
        S: Stream<Item = pb::MonthlyLine> + Send + 'static,
    {
        let first = futures_util::stream::once(async move {
            pb::SubmitMonthlyUpdateRequest { item: Some(pb::submit_monthly_update_request::Item::Header(header)) }
        });
        let chunks = lines.chunks(LINES_PER_CHUNK).map(|lines| pb::SubmitMonthlyUpdateRequest {
            item: Some(pb::submit_monthly_update_request::Item::Lines(pb::MonthlyLines { lines })),
        });
        // A large list takes longer than one ordinary call; the hub's own limit applies.
        let request = tonic::Request::new(first.chain(chunks));
        Ok(self.receipted(self.reconciliation.clone().submit_monthly_update(request).await?))
    }

    /// Lists, newest first, a page at a time: an operator's own, or any for ICT.
    pub async fn list_reconciliations(
        &self,
        query: pb::ListReconciliationsRequest,
    ) -> Result<pb::ListReconciliationsResponse, Error> {
        self.read_only(|| {
            let mut reconciliation = self.reconciliation.clone();
            let request = self.request(query.clone());
            async move { reconciliation.list_reconciliations(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// One list's status and figures; `operator` may be empty for an operator's own list.
    pub async fn get_reconciliation(
        &self,
        operator: &str,
        update_id: &str,
    ) -> Result<pb::MonthlyReconciliation, Error> {
        self.read_only(|| {
            let mut reconciliation = self.reconciliation.clone();
            let request = self.request(pb::GetReconciliationRequest {
                operator: operator.to_owned(),
                update_id: update_id.to_owned(),
            });
            async move { reconciliation.get_reconciliation(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// A list's lines with their outcome, a page at a time.
    pub async fn list_discrepancies(
        &self,
        query: pb::ListDiscrepanciesRequest,
    ) -> Result<pb::ListDiscrepanciesResponse, Error> {
        self.read_only(|| {
            let mut reconciliation = self.reconciliation.clone();
            let request = self.request(query.clone());
            async move { reconciliation.list_discrepancies(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Confirms a reconciled list (ICT).
    pub async fn confirm_reconciliation(
        &self,
        confirm: pb::ConfirmRequest,
    ) -> Result<pb::MonthlyReconciliation, Error> {
        // Confirming reads every line of the list: allow it the hub's own limit.
        Ok(self.receipted(self.reconciliation.clone().confirm(tonic::Request::new(confirm)).await?))
    }

    /// Rejects a reconciled list with a note (ICT).
    pub async fn reject_reconciliation(
        &self,
        operator: &str,
        update_id: &str,
        note: &str,
    ) -> Result<pb::MonthlyReconciliation, Error> {
        let request = self.request(pb::RejectRequest {
            operator: operator.to_owned(),
            update_id: update_id.to_owned(),
            note: note.to_owned(),
        });
        Ok(self.receipted(self.reconciliation.clone().reject(request).await?))
    }

    /// A list as a file (CSV or XLSX), in chunks (OPERATOR its own, ICT): the first names the
    /// file and its media type; the chunks' data in order make the file.
    pub async fn export_reconciliation(
        &self,
        request: pb::ExportReconciliationRequest,
    ) -> Result<impl Stream<Item = Result<pb::FileChunk, Error>> + Send + 'static, Error> {
        // No deadline: a large list takes longer than one ordinary call; the hub's own limit
        // applies.
        let request = tonic::Request::new(request);
        let stream = self.reconciliation.clone().export_reconciliation(request).await?.into_inner();
        Ok(stream.map(|item| item.map_err(Error::from)))
    }
}

/// Recipients asked for per page by [`Client::all_allocation_recipients`] when the query
/// leaves the page size to the SDK.
const RECIPIENTS_PER_PAGE: i32 = 500;

/// Tablets and smartphones for households (`telesub.v1.DeviceAllocation`): the Ministry's
/// decision, the list of recipients, its approval by the provincial People's Committee, the
/// hand-overs, and the list published for everyone. An allocation is named by the Ministry's
/// decision number; dates are `YYYY-MM-DD`, amounts whole VND.
impl Client {
    /// Records the Ministry's decision: the quantities per device type, optionally split by
    /// district or commune, and the cash alternative (ICT).
    pub async fn record_allocation_decision(
        &self,
        decision: pb::RecordAllocationDecisionRequest,
    ) -> Result<pb::Allocation, Error> {
        let request = self.request(decision);
        Ok(self.receipted(self.devices.clone().record_allocation_decision(request).await?))
    }

    /// Nominates households for a device, with the reason (e.g. pupils at the commune's lower
    /// secondary school), at most 10,000 at once (EDUCATION, ICT). Households nominated
    /// before, by anyone, are left as they were and counted as `already_nominated`.
    pub async fn nominate_households<I, S>(
        &self,
        decision_number: &str,
        codes: I,
        reason: &str,
    ) -> Result<pb::NominateHouseholdsResponse, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let request = self.request(pb::NominateHouseholdsRequest {
            decision_number: decision_number.to_owned(),
            household_codes: codes.into_iter().map(Into::into).collect(),
            reason: reason.to_owned(),
        });
        Ok(self.receipted(self.devices.clone().nominate_households(request).await?))
    }

    /// Draws up the list from the register as of `as_of` (empty for today), replacing any
    /// earlier draft (ICT). The same register gives the same list.
    pub async fn propose_recipients(&self, decision_number: &str, as_of: &str) -> Result<pb::Allocation, Error> {
        // No deadline: ranking a large register takes longer than one ordinary call; the
        // hub's own limit applies.
        let request = tonic::Request::new(pb::ProposeRecipientsRequest {
            decision_number: decision_number.to_owned(),
            as_of: as_of.to_owned(),
        });
        Ok(self.receipted(self.devices.clone().propose_recipients(request).await?))
    }

    /// Adds a household to a draft list or takes one off, with a reason (ICT).
    pub async fn amend_proposal(&self, amendment: pb::AmendProposalRequest) -> Result<pb::Allocation, Error> {
        let request = self.request(amendment);
        Ok(self.receipted(self.devices.clone().amend_proposal(request).await?))
    }

    /// Submits the draft list to the People's Committee (ICT); `list_digest` in the answer
    /// names the list submitted.
    pub async fn submit_for_approval(&self, decision_number: &str) -> Result<pb::Allocation, Error> {
        let request = self.request(pb::SubmitForApprovalRequest { decision_number: decision_number.to_owned() });
        Ok(self.receipted(self.devices.clone().submit_for_approval(request).await?))
    }

    /// Approves a submitted list with the committee's decision number, and freezes it
    /// (PROVINCE_COMMITTEE). With `list_digest` set, only if the list is still that one.
    pub async fn approve_allocation(&self, approval: pb::ApproveRequest) -> Result<pb::Allocation, Error> {
        let request = self.request(approval);
        Ok(self.receipted(self.devices.clone().approve(request).await?))
    }

    /// Returns a submitted list to ICT with a note saying what to change (PROVINCE_COMMITTEE).
    pub async fn return_allocation(&self, decision_number: &str, note: &str) -> Result<pb::Allocation, Error> {
        let request = self.request(pb::ReturnForRevisionRequest {
            decision_number: decision_number.to_owned(),
            note: note.to_owned(),
        });
        Ok(self.receipted(self.devices.clone().return_for_revision(request).await?))
    }

    /// Records that a household on an approved list received its device or the cash
    /// alternative (ICT; LOCALITY for households of its unit).
    pub async fn record_handover(&self, handover: pb::RecordHandoverRequest) -> Result<pb::Handover, Error> {
        let request = self.request(handover);
        Ok(self.receipted(self.devices.clone().record_handover(request).await?))
    }

    /// One allocation with its progress per unit and its amendments.
    pub async fn get_allocation(&self, decision_number: &str) -> Result<pb::Allocation, Error> {
        self.read_only(|| {
            let mut devices = self.devices.clone();
            let request = self.request(pb::GetAllocationRequest { decision_number: decision_number.to_owned() });
            async move { devices.get_allocation(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Allocations, newest first, a page at a time (without progress and amendments);
    /// `page_size` 0 for the hub's default, `page_token` empty for the first page.
    pub async fn list_allocations(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListAllocationsResponse, Error> {
        self.read_only(|| {
            let mut devices = self.devices.clone();
            let request = self.request(pb::ListAllocationsRequest { page_size, page_token: page_token.to_owned() });
            async move { devices.list_allocations(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// The households on an allocation's list, in rank order, a page at a time.
    pub async fn list_allocation_recipients(
        &self,
        query: pb::ListAllocationRecipientsRequest,
    ) -> Result<pb::ListAllocationRecipientsResponse, Error> {
        self.read_only(|| {
            let mut devices = self.devices.clone();
            let request = self.request(query.clone());
            async move { devices.list_allocation_recipients(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Every household on an allocation's list that `query` selects, in rank order: each page
    /// from `query.page_token` on (from the first when empty), `query.page_size` at a time
    /// (500 when 0).
    pub async fn all_allocation_recipients(
        &self,
        mut query: pb::ListAllocationRecipientsRequest,
    ) -> Result<Vec<pb::AllocationRecipient>, Error> {
        if query.page_size <= 0 {
            query.page_size = RECIPIENTS_PER_PAGE;
        }
        let mut recipients = Vec::new();
        loop {
            let page = self.list_allocation_recipients(query.clone()).await?;
            recipients.extend(page.recipients);
            if page.next_page_token.is_empty() {
                return Ok(recipients);
            }
            query.page_token = page.next_page_token;
        }
    }

    /// An approved list as the public sees it, in chunks: CSV (every commune, or one), or an
    /// HTML page for one commune's notice board. The first chunk names the file and its media
    /// type; the chunks' data in order make the file.
    pub async fn published_recipients(
        &self,
        request: pb::PublishedRecipientsRequest,
    ) -> Result<impl Stream<Item = Result<pb::FileChunk, Error>> + Send + 'static, Error> {
        // No deadline: a province's whole list takes longer than one ordinary call; the hub's
        // own limit applies.
        let request = tonic::Request::new(request);
        let stream = self.devices.clone().published_recipients(request).await?.into_inner();
        Ok(stream.map(|item| item.map_err(Error::from)))
    }

    /// [`Client::published_recipients`] held whole in memory: one chunk with the file's
    /// name, its media type and all its bytes (all empty when the hub sends no chunk). Not
    /// retried: call again on failure.
    pub async fn published_recipients_file(
        &self,
        request: pb::PublishedRecipientsRequest,
    ) -> Result<pb::FileChunk, Error> {
        whole_file(self.published_recipients(request).await?).await
    }
}

/// Inspections (`telesub.v1.Supervision`): ICT records an inspection of localities and
/// operators, from the yearly plan or on an authority's request, with its team, findings and
/// their follow-up, and freezes samples of the hub's data for the team to check. ICT writes;
/// ICT, PROVINCE_COMMITTEE, LABOUR, EDUCATION and HEALTH read, and LOCALITY the inspections of
/// its own unit. Dates are `YYYY-MM-DD`.
impl Client {
    /// Records an inspection: its title, basis (`requested_by` is required for an authority's
    /// request), subject units and operators, team and dates (ICT). The hub assigns its id.
    pub async fn create_inspection(&self, inspection: pb::CreateInspectionRequest) -> Result<pb::Inspection, Error> {
        let request = self.request(inspection);
        Ok(self.receipted(self.supervision.clone().create_inspection(request).await?))
    }

    /// Adds a finding to an inspection that is not closed (ICT); the hub numbers findings 1,
    /// 2, … within the inspection.
    pub async fn record_finding(&self, finding: pb::RecordFindingRequest) -> Result<pb::Finding, Error> {
        let request = self.request(finding);
        Ok(self.receipted(self.supervision.clone().record_finding(request).await?))
    }

    /// Moves finding `number` of an inspection on (OPEN → IN_PROGRESS → RESOLVED, or straight
    /// to RESOLVED), with a note saying what was done; also after the inspection is closed
    /// (ICT).
    pub async fn update_finding_status(
        &self,
        inspection_id: i64,
        number: i64,
        status: pb::FindingStatus,
        note: &str,
    ) -> Result<pb::Finding, Error> {
        let request = self.request(pb::UpdateFindingStatusRequest {
            inspection_id,
            number,
            status: status.into(),
            note: note.to_owned(),
        });
        Ok(self.receipted(self.supervision.clone().update_finding_status(request).await?))
    }

    /// Closes an inspection with its conclusion (required); no finding is added afterwards
    /// (ICT).
    pub async fn close_inspection(&self, inspection_id: i64, conclusion: &str) -> Result<pb::Inspection, Error> {
        let request = self.request(pb::CloseInspectionRequest { inspection_id, conclusion: conclusion.to_owned() });
        Ok(self.receipted(self.supervision.clone().close_inspection(request).await?))
    }

    /// Freezes a random sample of households of a commune with an enrolment running on
    /// `as_of` (empty for today), with their history and enrolments as the hub holds them now
    /// (ICT). Each call freezes a new sample, numbered within the inspection.
    pub async fn pull_sample(&self, sample: pb::PullSampleRequest) -> Result<pb::Sample, Error> {
        let request = self.request(sample);
        Ok(self.receipted(self.supervision.clone().pull_sample(request).await?))
    }

    /// Inspections, newest first, a page at a time (without findings and samples): `status`
    /// `Unspecified` for all, `page_size` 0 for the hub's default, `page_token` empty for the
    /// first page.
    pub async fn list_inspections(
        &self,
        status: pb::InspectionStatus,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListInspectionsResponse, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            let request = self.request(pb::ListInspectionsRequest {
                status: status.into(),
                page_size,
                page_token: page_token.to_owned(),
            });
            async move { supervision.list_inspections(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// One inspection with its findings (each with its updates) and the list of its samples.
    pub async fn get_inspection(&self, inspection_id: i64) -> Result<pb::Inspection, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            let request = self.request(pb::GetInspectionRequest { inspection_id });
            async move { supervision.get_inspection(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Sample `number` of an inspection, as it was pulled.
    pub async fn get_sample(&self, inspection_id: i64, number: i64) -> Result<pb::Sample, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            let request = self.request(pb::GetSampleRequest { inspection_id, number });
            async move { supervision.get_sample(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }
}

/// The audit reader (ICT).
impl Client {
    /// Audit records in sequence order, filtered by caller, method, time and outcome, a page
    /// at a time (`page_token` from the previous answer).
    pub async fn query_audit(&self, query: pb::QueryAuditRequest) -> Result<pb::QueryAuditResponse, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            let request = self.request(query.clone());
            async move { supervision.query_audit(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Walks the whole audit chain on the hub and reports the first break, if any. No
    /// deadline: a long trail takes longer than an ordinary call.
    pub async fn verify_audit(&self) -> Result<pb::VerifyAuditResponse, Error> {
        let request = tonic::Request::new(pb::VerifyAuditRequest {});
        Ok(self.supervision.clone().verify_audit(request).await?.into_inner())
    }

    /// Counts what the hub's retention policy lets go (ICT), and gives the ticket
    /// [`Client::purge_expired`] names.
    pub async fn purge_dry_run(&self) -> Result<pb::PurgeExpiredResponse, Error> {
        let request = tonic::Request::new(pb::PurgeExpiredRequest { dry_run: true, ticket: String::new() });
        Ok(self.supervision.clone().purge_expired(request).await?.into_inner())
    }

    /// Applies the hub's retention policy (ICT) as at the dry run that gave `ticket`: lets go
    /// the decisions, inspections' samples and households off the list it no longer keeps.
    /// Not retried: a purge cut off has purged whole pieces; a new dry run and purge go on.
    pub async fn purge_expired(&self, ticket: &str) -> Result<pb::PurgeExpiredResponse, Error> {
        let request = tonic::Request::new(pb::PurgeExpiredRequest { dry_run: false, ticket: ticket.to_owned() });
        Ok(self.supervision.clone().purge_expired(request).await?.into_inner())
    }

    /// A signed checkpoint of the audit tree: of `tree_size`, or the latest (`0`).
    pub async fn get_audit_checkpoint(&self, tree_size: i64) -> Result<pb::AuditCheckpoint, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            let request = self.request(pb::GetAuditCheckpointRequest { tree_size });
            async move { supervision.get_audit_checkpoint(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Signed checkpoints of trees larger than `after_size`, smallest first, a page of at most
    /// `page_size` (0: 100); `next_after_size` names the next page.
    pub async fn list_audit_checkpoints(
        &self,
        after_size: i64,
        page_size: i32,
    ) -> Result<pb::ListAuditCheckpointsResponse, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            let request = self.request(pb::ListAuditCheckpointsRequest { after_size, page_size });
            async move { supervision.list_audit_checkpoints(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// Record `seq` with its proof of inclusion in checkpoint `tree_size` (`0`: the latest).
    pub async fn get_inclusion_proof(&self, seq: i64, tree_size: i64) -> Result<pb::InclusionProof, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            let request = self.request(pb::GetInclusionProofRequest { seq, tree_size });
            async move { supervision.get_inclusion_proof(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// The proof that the tree of `old_size` records is a prefix of checkpoint `new_size`
    /// (`0`: the latest).
    pub async fn get_consistency_proof(&self, old_size: i64, new_size: i64) -> Result<pb::ConsistencyProof, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            let request = self.request(pb::GetConsistencyProofRequest { old_size, new_size });
            async move { supervision.get_consistency_proof(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// The records of a time range as CSV with their chain hashes, in chunks: the first names
    /// the file and its media type; the chunks' data in order make the file. Asked with
    /// `with_proof`, a chunk naming the proof file follows the CSV's.
    pub async fn export_audit(
        &self,
        request: pb::ExportAuditRequest,
    ) -> Result<impl Stream<Item = Result<pb::FileChunk, Error>> + Send + 'static, Error> {
        let stream = self.supervision.clone().export_audit(tonic::Request::new(request)).await?.into_inner();
        Ok(stream.map(|item| item.map_err(Error::from)))
    }

    /// [`Client::export_audit`] held whole in memory: one chunk with the file's name, media
    /// type and all its bytes (the CSV).
    pub async fn export_audit_file(&self, request: pb::ExportAuditRequest) -> Result<pb::FileChunk, Error> {
        whole_file(self.export_audit(request).await?).await
    }

    /// [`Client::export_audit`] held whole in memory, file by file: the CSV and, asked with
    /// `with_proof`, its proof ([`crate::audit::ExportProof`]).
    pub async fn export_audit_files(&self, request: pb::ExportAuditRequest) -> Result<Vec<pb::FileChunk>, Error> {
        whole_files(self.export_audit(request).await?).await
    }
}

/// The programme's statistics.
impl Client {
    /// The figures of a month for the province (`unit_code` empty), a district or a commune
    /// (ICT and the coordinating departments; a locality its own unit).
    pub async fn get_programme_statistics(
        &self,
        query: pb::GetProgrammeStatisticsRequest,
    ) -> Result<pb::ProgrammeStatistics, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            // Counting a large register takes longer than an ordinary call.
            let request = tonic::Request::new(query.clone());
            async move { supervision.get_programme_statistics(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// The same figures with small counts suppressed (every member).
    pub async fn public_statistics(
        &self,
        query: pb::PublicStatisticsRequest,
    ) -> Result<pb::PublicStatisticsTable, Error> {
        self.read_only(|| {
            let mut supervision = self.supervision.clone();
            let request = tonic::Request::new(query.clone());
            async move { supervision.public_statistics(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
    }

    /// The figures as a file (an XLSX workbook, or the public CSV), in chunks.
    pub async fn export_statistics(
        &self,
        request: pb::ExportStatisticsRequest,
    ) -> Result<impl Stream<Item = Result<pb::FileChunk, Error>> + Send + 'static, Error> {
        let stream = self.supervision.clone().export_statistics(tonic::Request::new(request)).await?.into_inner();
        Ok(stream.map(|item| item.map_err(Error::from)))
    }

    /// [`Client::export_statistics`] held whole in memory.
    pub async fn export_statistics_file(&self, request: pb::ExportStatisticsRequest) -> Result<pb::FileChunk, Error> {
        whole_file(self.export_statistics(request).await?).await
    }
}

/// The chunks of a file held whole in memory: one chunk with the file's name, media type and
/// all its bytes (all empty when the hub sends no chunk).
async fn whole_file(chunks: impl Stream<Item = Result<pb::FileChunk, Error>>) -> Result<pb::FileChunk, Error> {
    Ok(whole_files(chunks).await?.into_iter().next().unwrap_or_default())
}

/// The files of a chunk stream, each held whole: a chunk that names a file begins the next.
async fn whole_files(chunks: impl Stream<Item = Result<pb::FileChunk, Error>>) -> Result<Vec<pb::FileChunk>, Error> {
    let mut chunks = std::pin::pin!(chunks);
    let mut files: Vec<pb::FileChunk> = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        match files.last_mut() {
            Some(whole) if chunk.file_name.is_empty() => whole.data.extend_from_slice(&chunk.data),
            _ => files.push(chunk),
        }
    }
    Ok(files)
}
