//! Building and running the hub. `Hub::build` binds the listener (port 0 works: tests read
//! the port back), opens the store and loads TLS; `Hub::run` serves until the shutdown future
//! completes, then lets calls in flight finish and stores their audit records.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use telesub_proto::v1::{
    administrative_units_server::AdministrativeUnitsServer, change_feed_server::ChangeFeedServer,
    device_allocation_server::DeviceAllocationServer, eligibility_server::EligibilityServer,
    enrollments_server::EnrollmentsServer, household_registry_server::HouseholdRegistryServer,
    members_server::MembersServer, policy_server::PolicyServer, reconciliation_server::ReconciliationServer,
    supervision_server::SupervisionServer,
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::{
    audit::{AuditLog, AuditTree},
    config::Settings,
    domain::{
        DomainError,
        clock::Clock,
        context::ServiceContext,
        devices::DeviceService,
        eligibility::EligibilityService,
        enrollments::EnrollmentService,
        feed::ChangeFeed,
        identity::Identities,
        inspections::InspectionService,
        member::{DisplayName, NewMember},
        members::MemberRegistry,
        policy::PolicyRegistry,
        reconciliation::ReconciliationService,
        registry::HouseholdRegistry,
        retention::RetentionService,
        statistics::StatisticsService,
        supervision::SupervisionService,
        unit_registry::UnitRegistry,
    },
    pki::{self, PkiDir},
    read_model::RegisterReadModel,
    storage::{self, Store, StoreOptions},
    tls::{self, ReloadableTls},
    transport::{
        AdmissionLimits, DevicesApi, EligibilityApi, EnrollmentsApi, FeedApi, HouseholdsApi, HubLayer, HubState,
        MembersApi, PolicyApi, ReconciliationApi, SupervisionApi, UnitsApi,
    },
};

/// Why the hub could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the database {url}")]
    Storage {
        url: String,
        #[source]
        source: storage::PortError,
    },
    #[error("cannot load the TLS files")]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot register the members of the certificate folder")]
    Members(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot load the administrative units")]
    Units(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot load the programme's policy")]
    Policy(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("server reflection cannot be set up")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed")]
    Serve(#[from] tonic::transport::Error),
    #[error(
        "the audit trail's append-only guards are missing or disabled: {0}; whoever removed them could have \
         changed the trail. Check it with `telesub audit verify`, and restore the guards before serving"
    )]
    AuditGuards(String),
}

/// Opens the store the settings name, running migrations.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartupError> {
    let options = StoreOptions {
        max_connections: settings.database_max_connections,
        acquire_timeout: settings.database_timeout(),
        write_wait: settings.request_timeout(),
    };
    storage::open(&settings.database_url.0, &options)
        .await
        .map_err(|source| StartupError::Storage { url: settings.database_url.to_string(), source })
}

/// A hub ready to serve.
#[derive(Debug)]
pub struct Hub {
    settings: Settings,
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: ReloadableTls,
    store: Arc<dyn Store>,
    identities: Arc<Identities>,
    units: Arc<UnitRegistry>,
    policy: Arc<PolicyRegistry>,
    tree: AuditTree,
    /// The register as the services read it: held in memory where the backend keeps a change
    /// log (SQLite), single questions read together otherwise.
    read_model: RegisterReadModel,
    clock: Clock,
    /// The metrics and health listener, when `metrics.listen` is set.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    metrics: crate::metrics::Metrics,
}

impl Hub {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_on(settings, Clock::system()).await
    }

    /// A hub whose rules read the date and time from `clock` (a test sets it).
    pub async fn build_on(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        let tls = ReloadableTls::new(settings.tls_paths()?)?;
        let key = Arc::new(settings.audit_key()?);
        let store = open_store(&settings).await?;
        let missing = store
            .missing_guards()
            .await
            .map_err(|source| StartupError::Storage { url: settings.database_url.to_string(), source })?;
        if !missing.is_empty() {
            return Err(StartupError::AuditGuards(missing.join(", ")));
        }
        let tree = AuditTree::new(store.clone(), Some(key), &settings.audit.origin);
        store
            .prepare_to_serve()
            .await
            .map_err(|source| StartupError::Storage { url: settings.database_url.to_string(), source })?;
        let identities =
            Arc::new(Identities::new(store.clone(), Duration::from_millis(settings.identity_cache_ms), clock.clone()));
        let units = Arc::new(UnitRegistry::new(store.clone()));
        units.seed().await.map_err(|e| StartupError::Units(Box::new(e)))?;
        let policy =
            Arc::new(PolicyRegistry::new(store.clone(), clock.clone()).with_horizon(settings.policy_horizon_years));
        let unit_table = units.table().await.map_err(|e| StartupError::Units(Box::new(e)))?;
        policy.seed(&unit_table).await.map_err(|e| StartupError::Policy(Box::new(e)))?;
        if let Some(dir) = &settings.tls.dir {
            register_folder_members(
                &MemberRegistry::new(store.clone(), identities.clone(), clock.clone()),
                &PkiDir::new(dir),
            )
            .await?;
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: settings.listen, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| StartupError::Bind { addr: settings.listen, source })?;
        let read_model = RegisterReadModel::start(store.clone(), store.register_changes());
        let metrics_listener = match settings.metrics.listen {
            None => None,
            Some(addr) => {
                let bind = |source| StartupError::Bind { addr, source };
                let listener = TcpListener::bind(addr).await.map_err(bind)?;
                let bound = listener.local_addr().map_err(bind)?;
                Some((listener, bound))
            }
        };
        Ok(Self {
            settings,
            listener,
            local_addr,
            tls,
            store,
            identities,
            units,
            policy,
            tree,
            read_model,
            clock,
            metrics_listener,
            metrics: crate::metrics::Metrics::new(),
        })
    }

    /// Where the metrics and health answers are served, when they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
    }

    /// The address the hub listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The register as the hub's services read it (see [`RegisterReadModel`]).
    pub fn register(&self) -> RegisterReadModel {
        self.read_model.clone()
    }

    /// The TLS configuration; `reload()` rereads certificates and CRLs.
    pub fn tls(&self) -> ReloadableTls {
        self.tls.clone()
    }

    /// Serves until `shutdown` completes; then stops accepting, lets calls in flight finish,
    /// and waits until their audit records are stored.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartupError> {
        let Hub {
            settings,
            listener,
            local_addr,
            tls,
            store,
            identities,
            units,
            policy,
            tree,
            read_model,
            clock,
            metrics_listener,
            metrics,
        } = self;
        let limits = &settings.limits;
        let (audit, audit_writer) = AuditLog::start_with(store.clone(), Some(metrics.clone()));
        let registry = MemberRegistry::new(store.clone(), identities.clone(), clock.clone());
        let registry_for_reload = registry.clone();

        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::Serving).await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(telesub_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let members = MembersServer::new(MembersApi::new(registry.clone()))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        // The services: those that only read the register read it through the read model.
        let context = ServiceContext::new(store.clone(), units.clone(), policy)
            .with_register(Arc::new(read_model.clone()))
            .with_clock(clock.clone());
        let feed = ChangeFeed::new(&context);
        let reconciliation = ReconciliationService::new(&context);
        let register =
            HouseholdRegistry::new(&context).with_feed(feed.written()).with_reconciliation(reconciliation.clone());
        // What streams of a hub that stopped left: batches and lists cut off are cleared, lists
        // received whole are finished, lists left half reconciled are reconciled again.
        if let Err(e) = register.recover().await {
            tracing::error!(error = %crate::ErrorChain(&e), "batches left by a hub that stopped could not be cleared");
        }
        if let Err(e) = reconciliation.recover().await {
            tracing::error!(error = %crate::ErrorChain(&e), "monthly lists left by a hub that stopped could not be settled");
        }
        if let Err(e) = reconciliation.resume().await {
            tracing::error!(error = %crate::ErrorChain(&e), "monthly lists left stale could not be reconciled again");
        }
        let households =
            HouseholdRegistryServer::new(HouseholdsApi::new(register.clone()).with_metrics(metrics.clone()))
                .max_decoding_message_size(limits.max_message_bytes)
                .max_encoding_message_size(limits.max_message_bytes);
        let device_service = DeviceAllocationServer::new(DevicesApi::new(DeviceService::new(&context)))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let supervision_service = SupervisionServer::new(SupervisionApi::new(
            SupervisionService::new(store.clone()),
            InspectionService::new(&context),
            StatisticsService::new(&context),
            tree.clone(),
            units.clone(),
            RetentionService::new(&context, settings.retention),
        ))
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
        let eligibility = EligibilityService::new(&context);
        let policy_service = PolicyServer::new(PolicyApi::new(eligibility.clone(), units.clone()))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let enrollments = EnrollmentService::new(&context, eligibility.clone()).with_feed(feed.written());
        let enrollment_service = EnrollmentsServer::new(EnrollmentsApi::new(enrollments.clone()))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let feed_service = ChangeFeedServer::new(FeedApi::new(feed))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let eligibility_service = EligibilityServer::new(EligibilityApi::new(eligibility, limits.max_checks_in_flight))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        // The console's pages, beside the gRPC services on the same port (an HTTP/1.1 or HTTP/2
        // request for a path under /console; see `console`).
        let console = crate::console::router(crate::console::Console {
            reconciliation: reconciliation.clone(),
            registry: register.clone(),
            supervision: SupervisionService::new(store.clone()),
            statistics: StatisticsService::new(&context),
            devices: DeviceService::new(&context),
            members: registry.clone(),
            inspections: InspectionService::new(&context),
            enrollments: enrollments.clone(),
            verifier: tree.verifier(),
            clock: clock.clone(),
            csrf: crate::console::csrf::Csrf::from_secret(
                &tree.key().expect("the hub signs with its key").sign(crate::console::csrf::KEY_LABEL),
                clock.clone(),
            ),
        });
        let routes = tonic::service::Routes::from(tonic::service::Routes::default().into_axum_router().merge(console));
        let reconciliation_service =
            ReconciliationServer::new(ReconciliationApi::new(reconciliation).with_metrics(metrics.clone()))
                .max_decoding_message_size(limits.max_message_bytes)
                .max_encoding_message_size(limits.max_message_bytes);
        let unit_service = AdministrativeUnitsServer::new(UnitsApi::new(units))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let state = HubState::new(
            identities,
            audit.clone(),
            AdmissionLimits {
                calls: limits.max_concurrent_requests,
                calls_per_member: limits.requests_per_member(),
                streams: limits.max_streams,
                streams_per_member: limits.streams_per_member(),
            },
            settings.request_timeout(),
            Duration::from_millis(limits.batch_timeout_ms),
            limits.max_message_bytes,
        )
        .with_receipts(tree.key().expect("the hub signs with its key").clone())
        .with_clock(clock)
        .with_metrics(metrics.clone());
        let database_up = state.database_up();
        // Metrics and health, on a listener of their own.
        let stopping_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = metrics_listener.map(|(listener, addr)| {
            let watched = crate::metrics::Watched {
                metrics: metrics.clone(),
                database_up: database_up.clone(),
                stopping: stopping_flag.clone(),
                register: read_model.clone(),
                store: store.clone(),
            };
            tracing::info!(%addr, "metrics and health served");
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, crate::metrics::router(watched)).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            })
        });
        let layer = HubLayer::new(state);

        let folder_members = settings.tls.dir.as_ref().map(|dir| (registry_for_reload, PkiDir::new(dir)));
        let reload = tokio::spawn(reload_on_hangup(tls.clone(), folder_members));
        // A certificate that expires while its connection is open: the connection is closed.
        let expiry = tokio::spawn({
            let tls = tls.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    tls.recheck();
                }
            }
        });
        let database_watch =
            tokio::spawn(watch_database(store.clone(), health.clone(), database_up, settings.database_timeout()));
        // A checkpoint every few seconds while records are added (none while the trail is idle).
        let checkpoints = tokio::spawn({
            let tree = tree.clone();
            let metrics = metrics.clone();
            let every = Duration::from_millis(settings.audit.checkpoint_interval_ms);
            async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    match tree.sign_checkpoint().await {
                        Ok(Some(_)) => {
                            metrics.checkpoints_signed.inc();
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %crate::ErrorChain(&e), "could not sign an audit checkpoint"),
                    }
                }
            }
        });
        let stop_watching = database_watch.abort_handle();
        let incoming = tls::incoming(listener, tls, settings.handshake_timeout());
        tracing::info!(addr = %local_addr, database = %settings.database_url, backend = store.backend(), "telesub listening");
        let (signalled, on_signal) = oneshot::channel();
        let stopping = async move {
            shutdown.await;
            stopping_flag.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("shutting down: finishing calls in flight");
            stop_watching.abort();
            set_health(&health, ServingStatus::NotServing).await;
            let _ = signalled.send(());
        };
        let grace = settings.shutdown_grace();
        let serve = Server::builder()
            .max_concurrent_streams(Some(limits.max_concurrent_streams_per_connection))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .accept_http1(true)
            .layer(layer)
            .add_routes(routes)
            .add_service(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(members)
            .add_service(households)
            .add_service(unit_service)
            .add_service(policy_service)
            .add_service(eligibility_service)
            .add_service(enrollment_service)
            .add_service(feed_service)
            .add_service(reconciliation_service)
            .add_service(device_service)
            .add_service(supervision_service)
            .serve_with_incoming_shutdown(incoming, stopping);
        // Calls in flight get `grace` to finish; a stream that never ends must not hold the
        // hub up for ever.
        let grace_over = async move {
            match on_signal.await {
                Ok(()) => tokio::time::sleep(grace).await,
                Err(_) => std::future::pending().await,
            }
        };
        let served = tokio::select! {
            served = serve => served,
            () = grace_over => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "calls still in flight after the shutdown grace period; closing them");
                Ok(())
            }
        };
        reload.abort();
        expiry.abort();
        database_watch.abort();
        checkpoints.abort();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        drop(audit);
        audit_writer.finish(Duration::from_secs(30)).await;
        // The last records get a checkpoint of their own.
        match tree.sign_checkpoint().await {
            Ok(Some(c)) => tracing::info!(size = c.tree_size, "audit checkpoint signed on shutdown"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %crate::ErrorChain(&e), "could not sign the audit checkpoint on shutdown"),
        }
        tracing::info!("telesub stopped");
        Ok(served?)
    }
}

/// The names health reports: the whole hub (`""`) and each of its services.
fn health_names() -> [&'static str; 11] {
    use tonic::server::NamedService;
    [
        "",
        MembersServer::<MembersApi>::NAME,
        HouseholdRegistryServer::<HouseholdsApi>::NAME,
        AdministrativeUnitsServer::<UnitsApi>::NAME,
        PolicyServer::<PolicyApi>::NAME,
        EligibilityServer::<EligibilityApi>::NAME,
        EnrollmentsServer::<EnrollmentsApi>::NAME,
        ChangeFeedServer::<FeedApi>::NAME,
        ReconciliationServer::<ReconciliationApi>::NAME,
        DeviceAllocationServer::<DevicesApi>::NAME,
        SupervisionServer::<SupervisionApi>::NAME,
    ]
}

async fn set_health(health: &tonic_health::server::HealthReporter, status: ServingStatus) {
    for name in health_names() {
        health.set_service_status(name, status).await;
    }
}

/// Health follows the database: `NOT_SERVING` while it does not answer within the database
/// timeout (every call would be `UNAVAILABLE`), `SERVING` again once it does. Checked every
/// second, on a read of its own: health never waits on a write.
async fn watch_database(
    store: Arc<dyn Store>,
    health: tonic_health::server::HealthReporter,
    up_flag: Arc<std::sync::atomic::AtomicBool>,
    timeout: Duration,
) {
    let mut serving = true;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let answer = tokio::time::timeout(timeout, store.ping()).await;
        let up = matches!(answer, Ok(Ok(())));
        if up != serving {
            serving = up;
            up_flag.store(up, std::sync::atomic::Ordering::Relaxed);
            if up {
                tracing::info!("the database answers again: serving");
                set_health(&health, ServingStatus::Serving).await;
            } else {
                let why = match answer {
                    Ok(Err(e)) => crate::ErrorChain(&e).to_string(),
                    _ => format!("no answer within {} ms", timeout.as_millis()),
                };
                tracing::error!(reason = %why, "the database does not answer: health says NOT_SERVING");
                set_health(&health, ServingStatus::NotServing).await;
            }
        }
    }
}

/// Registers the members `telesub pki init` recorded in the folder, when they are missing.
async fn register_folder_members(registry: &MemberRegistry, dir: &PkiDir) -> Result<(), StartupError> {
    let specs = pki::read_manifest(dir).map_err(|e| StartupError::Members(Box::new(e)))?;
    for spec in specs {
        let org = spec
            .parse()
            .map_err(|e| StartupError::Members(format!("{}: {spec}: {e}", dir.manifest().display()).into()))?;
        let new = NewMember {
            display_name: DisplayName::parse(&org.display_name).map_err(|e| StartupError::Members(e.into()))?,
            code: org.code,
            role: org.role,
            unit: org.unit,
        };
        let code = new.code.clone();
        match registry.ensure(new).await {
            Ok(true) => {
                tracing::info!(member = %code, "registered member from the certificate folder")
            }
            Ok(false) => {}
            Err(DomainError::Internal(e)) => return Err(StartupError::Members(e)),
            Err(e) => return Err(StartupError::Members(Box::new(e))),
        }
    }
    Ok(())
}

/// On SIGHUP: rereads the certificates and CRLs and, for a certificate folder, registers the
/// members added to its `members.toml` since (`telesub pki init` run again).
#[cfg(unix)]
async fn reload_on_hangup(tls: ReloadableTls, folder_members: Option<(MemberRegistry, PkiDir)>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("reloaded TLS certificates and CRLs"),
            Err(err) => {
                tracing::error!(error = %crate::ErrorChain(&err), "TLS reload failed; keeping the configuration in force")
            }
        }
        if let Some((registry, dir)) = &folder_members
            && let Err(err) = register_folder_members(registry, dir).await
        {
            tracing::error!(error = %crate::ErrorChain(&err), "the certificate folder's members were not registered");
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(_tls: ReloadableTls, _folder_members: Option<(MemberRegistry, PkiDir)>) {}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
