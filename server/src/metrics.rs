//! The hub's metrics for Prometheus, and plain health answers for orchestrators, on a listener
//! of its own (`metrics.listen`, `telesub serve --metrics-listen ADDR`; off by default): plain
//! HTTP, no client certificate, nothing personal (labels are methods, roles, outcomes and
//! member codes).
//!
//! - `GET /metrics`: Prometheus' text format (version 0.0.4);
//! - `GET /health/live`: 200 while the process serves;
//! - `GET /health/ready`: 200 while the database answers and the hub is not stopping, else 503.
//!
//! Names and units follow Prometheus' conventions (`_total` counters, `_seconds` durations).
//! Each hub has its own registry (several hubs can run in one process, as the tests do).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The gRPC method, or the console page's path (without its query).
    pub method: String,
    /// The caller's role, `NONE` when it was not a member.
    pub role: String,
    /// The gRPC status code name.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HolderLabels {
    /// The member (or, before it is known, what its certificate names).
    pub member: String,
    /// `call` or `stream`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// What the pool is for (`read`, `write`, `bulk`, `mapped` on SQLite; `main` on PostgreSQL).
    pub pool: String,
    /// `in_use`, `idle`, or `max` (the most it opens).
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    /// `hub` (the hub is full) or `member` (the member's share is used up).
    pub scope: String,
}

/// The hub's metrics. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub calls: Family<CallLabels, Counter>,
    pub call_seconds: Family<MethodLabels, Histogram, fn() -> Histogram>,
    pub in_flight: Family<HolderLabels, Gauge>,
    pub capacity_refusals: Family<ScopeLabels, Counter>,
    pub audit_commit_records: Histogram,
    pub audit_waiting: Gauge,
    pub checkpoints_signed: Counter,
    pub batch_seconds: Histogram,
    pub batch_records: Histogram,
    pub list_seconds: Histogram,
    pub list_lines: Histogram,
    pub database_up: Gauge,
    pub households_held: Gauge,
    pub held_built: Gauge,
    pub connections: Family<PoolLabels, Gauge>,
    pub acquire_timeouts: Counter,
    /// The timeouts counted into `acquire_timeouts` so far.
    timeouts_seen: Arc<std::sync::atomic::AtomicU64>,
}

fn seconds() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn sizes() -> Histogram {
    // 1 to about a million.
    Histogram::new(exponential_buckets(1.0, 4.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("telesub");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register("calls", "Calls and console pages answered, by method, role and outcome", calls.clone());
        let call_seconds =
            Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(seconds as fn() -> Histogram);
        registry.register_with_unit(
            "call_duration",
            "Time from a call's arrival to its answer (its audit record kept)",
            Unit::Seconds,
            call_seconds.clone(),
        );
        let in_flight = Family::<HolderLabels, Gauge>::default();
        registry.register("calls_in_flight", "Calls and streams being served, by member", in_flight.clone());
        let capacity_refusals = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "capacity_refusals",
            "Calls refused because the hub or the member's share was full",
            capacity_refusals.clone(),
        );
        let audit_commit_records = sizes();
        registry.register(
            "audit_commit_records",
            "Audit records stored by one group commit",
            audit_commit_records.clone(),
        );
        let audit_waiting = Gauge::default();
        registry.register(
            "audit_records_waiting",
            "Audit records queued for the next group commit",
            audit_waiting.clone(),
        );
        let checkpoints_signed = Counter::default();
        registry.register("audit_checkpoints_signed", "Audit checkpoints signed", checkpoints_signed.clone());
        let batch_seconds = seconds();
        registry.register_with_unit(
            "batch_duration",
            "Household batches received and applied",
            Unit::Seconds,
            batch_seconds.clone(),
        );
        let batch_records = sizes();
        registry.register("batch_records", "Records in a household batch applied", batch_records.clone());
        let list_seconds = seconds();
        registry.register_with_unit(
            "monthly_list_duration",
            "Monthly lists received and reconciled",
            Unit::Seconds,
            list_seconds.clone(),
        );
        let list_lines = sizes();
        registry.register("monthly_list_lines", "Lines of a monthly list reconciled", list_lines.clone());
        let database_up = Gauge::default();
        registry.register("database_up", "1 while the hub's database answers, else 0", database_up.clone());
        let households_held = Gauge::default();
        registry.register(
            "register_households_held",
            "Households of the register held in memory (0 where the register is read from the database)",
            households_held.clone(),
        );
        let held_built = Gauge::default();
        registry.register(
            "register_held_built_timestamp_seconds",
            "When the register held in memory was last built whole (its age is time() minus this; 0 when not held)",
            held_built.clone(),
        );
        let connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "database_connections",
            "The database pools' connections: in use, idle, and the most each opens",
            connections.clone(),
        );
        let acquire_timeouts = Counter::default();
        registry.register(
            "database_acquire_timeouts",
            "Waits for a database connection that ran out of time (the call was answered UNAVAILABLE)",
            acquire_timeouts.clone(),
        );
        Self {
            registry: Arc::new(registry),
            held_built,
            connections,
            acquire_timeouts,
            timeouts_seen: Arc::default(),
            calls,
            call_seconds,
            in_flight,
            capacity_refusals,
            audit_commit_records,
            audit_waiting,
            checkpoints_signed,
            batch_seconds,
            batch_records,
            list_seconds,
            list_lines,
            database_up,
            households_held,
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn text(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// What the listener answers from.
#[derive(Clone)]
pub struct Watched {
    pub metrics: Metrics,
    /// Whether the database answers, as the hub's watch last found.
    pub database_up: Arc<AtomicBool>,
    /// Set once the hub is stopping.
    pub stopping: Arc<AtomicBool>,
    /// The register as the hub holds it.
    pub register: crate::read_model::RegisterReadModel,
    pub store: Arc<dyn crate::domain::ports::Store>,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").finish_non_exhaustive()
    }
}

/// The listener's routes.
pub fn router(watched: Watched) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .with_state(watched)
}

async fn scrape(State(watched): State<Watched>) -> impl IntoResponse {
    watched.metrics.database_up.set(i64::from(watched.database_up.load(Ordering::Relaxed)));
    let m = &watched.metrics;
    m.households_held.set(watched.register.held().unwrap_or(0) as i64);
    m.held_built.set(watched.register.built_at().unwrap_or(0));
    for pool in watched.store.pools() {
        let label = |state: &str| PoolLabels { pool: pool.name.to_owned(), state: state.to_owned() };
        m.connections.get_or_create(&label("in_use")).set(i64::from(pool.open.saturating_sub(pool.idle)));
        m.connections.get_or_create(&label("idle")).set(i64::from(pool.idle));
        m.connections.get_or_create(&label("max")).set(i64::from(pool.max));
    }
    let timeouts = crate::storage::pool_timeouts();
    let seen = m.timeouts_seen.swap(timeouts, Ordering::Relaxed);
    m.acquire_timeouts.inc_by(timeouts.saturating_sub(seen));
    ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], watched.metrics.text())
}

async fn ready(State(watched): State<Watched>) -> impl IntoResponse {
    if watched.stopping.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
    } else if !watched.database_up.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}
