//! Test support: a fresh database per test (SQLite file, or a new database on the PostgreSQL
//! server named by `TELESUB_TEST_POSTGRES_URL`), and a real hub on port 0 with real
//! certificates, driven through the client SDK.

pub mod bench;
pub mod console;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use sqlx::{AssertSqlSafe, Connection};
use telesub_client::{Client, ClientBuilder};
use telesub_server::{
    audit::AuditRecord,
    config::{DatabaseUrl, Settings},
    domain::clock::Clock,
    pki::{self, DevCa, PkiDir, Validity},
    read_model::RegisterReadModel,
    startup::{Hub, StartupError},
    storage::Store,
    tls::ReloadableTls,
};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};

/// The environment variable naming a PostgreSQL server (an admin URL) to run the suite on.
pub const POSTGRES_ENV: &str = "TELESUB_TEST_POSTGRES_URL";

/// The organisations every test hub starts with: one per role.
pub const ORGS: &[&str] = &[
    "DOICT:ICT",
    "DOLISA:LABOUR",
    "VNPT:OPERATOR",
    "VIETTEL:OPERATOR",
    "UBND:PROVINCE_COMMITTEE",
    "GIANGHIA:LOCALITY:660",
    "DOET:EDUCATION",
    "DOH:HEALTH",
];

/// A database of its own for one test, removed when the test is done (a PostgreSQL server
/// used for tests does not fill up with them).
#[derive(Debug)]
pub enum TestDb {
    Sqlite { _dir: Arc<TempDir>, path: PathBuf },
    Postgres { url: String, guard: Arc<DatabaseGuard> },
}

/// Removes a test's PostgreSQL database when the last holder lets go of it.
#[derive(Debug)]
pub struct DatabaseGuard {
    admin_url: String,
    name: String,
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // From a thread of its own: a drop cannot wait on the test's runtime. FORCE ends the
        // connections of hubs the test left running.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await.ok()
            })
        });
        let _ = dropped.join();
    }
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t_{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// What keeps a [`TestDb`] from being removed: its folder, or its PostgreSQL database.
pub enum Kept {
    Folder(Arc<TempDir>),
    Database(Arc<DatabaseGuard>),
}

impl TestDb {
    /// A new, empty database on the backend under test.
    pub async fn new() -> Self {
        match std::env::var(POSTGRES_ENV) {
            Ok(admin_url) => {
                let name = unique_name();
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but the server cannot be reached: {e}"));
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create the test database");
                let (base, _) = admin_url.rsplit_once('/').expect("the admin URL names a database");
                TestDb::Postgres { url: format!("{base}/{name}"), guard: Arc::new(DatabaseGuard { admin_url, name }) }
            }
            Err(_) => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("telesub.db");
                TestDb::Sqlite { _dir: Arc::new(dir), path }
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            TestDb::Postgres { url, .. } => url.clone(),
        }
    }

    /// Keeps the database after the test's hub is gone, as long as the value is held.
    pub fn keep(&self) -> Kept {
        match self {
            TestDb::Sqlite { _dir: dir, .. } => Kept::Folder(dir.clone()),
            TestDb::Postgres { guard, .. } => Kept::Database(guard.clone()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }

    /// The number a `SELECT COUNT(*) …` gives, read around the hub.
    pub async fn count(&self, sql: &str) -> Result<i64, sqlx::Error> {
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            TestDb::Sqlite { path, .. } => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
                Ok(sqlx::query_scalar(sql).fetch_one(&mut c).await?)
            }
            TestDb::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await?;
                Ok(sqlx::query_scalar(sql).fetch_one(&mut c).await?)
            }
        }
    }

    /// Runs SQL on the database directly, around the hub: for tests that tamper with it.
    pub async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self {
            TestDb::Sqlite { path, .. } => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
                Ok(sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(&mut c).await?.rows_affected())
            }
            TestDb::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await?;
                Ok(sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(&mut c).await?.rows_affected())
            }
        }
    }

    /// Opens the hub's store on this database (migrated).
    pub async fn store(&self) -> Arc<dyn Store> {
        telesub_server::storage::open(&self.url(), &Default::default()).await.expect("open store")
    }
}

/// A lock on a table held from outside the hub, on PostgreSQL: the hub's transactions read
/// the table but wait at their first write to it, so that two writers racing for one row have
/// both read before either writes (the moment a race needs, made certain).
pub struct WriteHold {
    conn: sqlx::PgConnection,
    db: String,
}

impl TestDb {
    /// Holds `table` in `SHARE` mode until [`WriteHold::release_when_waiting`]; `None` on
    /// SQLite, whose one writer already takes transactions one at a time.
    pub async fn hold_writes(&self, table: &str) -> Option<WriteHold> {
        let TestDb::Postgres { url, .. } = self else { return None };
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect to hold a table");
        sqlx::raw_sql(AssertSqlSafe(format!("BEGIN; LOCK TABLE {table} IN SHARE MODE")))
            .execute(&mut conn)
            .await
            .expect("hold the table");
        Some(WriteHold { conn, db: url.clone() })
    }
}

impl WriteHold {
    /// Waits until `n` of the hub's transactions wait for a lock, or three seconds; whether
    /// they did. (A test hub's pool is small: a call may wait for a connection the held
    /// transaction keeps, and reach its lock only once the hold is let go.)
    pub async fn wait_for(&self, n: i64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut watch = sqlx::PgConnection::connect(&self.db).await.expect("connect to watch the locks");
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
            )
            .fetch_one(&mut watch)
            .await
            .expect("read the waiting transactions");
            if waiting >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets the writers go.
    pub async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await.expect("let the table go");
    }

    /// Lets the writers go once `n` of the hub's transactions wait for a lock (or after three
    /// seconds, when fewer do by then).
    pub async fn release_when_waiting(self, n: i64) {
        self.wait_for(n).await;
        self.release().await;
    }
}

/// A running hub with its certificate folder and database.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The metrics and health listener, when the settings asked for one.
    pub metrics_addr: Option<SocketAddr>,
    pub tls_dir: TempDir,
    pub ca: DevCa,
    pub db: TestDb,
    pub store: Arc<dyn Store>,
    /// The register as the hub's services read it (held in memory on SQLite).
    pub register: RegisterReadModel,
    pub tls: ReloadableTls,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<Result<(), StartupError>>>,
}

impl TestApp {
    /// A hub with the members of [`ORGS`] and default settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A hub whose settings `tweak` may change before it starts.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on_with(Clock::system(), tweak).await
    }

    /// A hub whose rules and records read the date and time from `clock`.
    pub async fn spawn_on(clock: Clock) -> Self {
        Self::spawn_on_with(clock, |_| {}).await
    }

    async fn spawn_on_with(clock: Clock, tweak: impl FnOnce(&mut Settings)) -> Self {
        let tls_dir = tempfile::tempdir().expect("temp dir");
        let orgs: Vec<pki::OrgSpec> = ORGS.iter().map(|o| o.parse().expect("org spec")).collect();
        pki::init(tls_dir.path(), &orgs).expect("pki init");
        let dir = PkiDir::new(tls_dir.path());
        let ca = DevCa::from_pem(&read(dir.ca_cert()), &read(dir.ca_key())).expect("load CA");
        let db = TestDb::new().await;

        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: DatabaseUrl(db.url()),
            database_max_connections: 4,
            ..Settings::default()
        };
        settings.tls.dir = Some(tls_dir.path().to_owned());
        tweak(&mut settings);

        let hub = Hub::build_on(settings, clock).await.expect("build the hub");
        let addr = hub.local_addr();
        let metrics_addr = hub.metrics_addr();
        let store = hub.store();
        let register = hub.register();
        let tls = hub.tls();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(hub.run(async {
            let _ = stopped.await;
        }));
        TestApp { addr, metrics_addr, tls_dir, ca, db, store, register, tls, stop: Some(stop), serving: Some(serving) }
    }

    pub fn dir(&self) -> PkiDir {
        PkiDir::new(self.tls_dir.path())
    }

    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// A client builder that trusts the hub's CA, with no client certificate yet.
    pub fn anonymous(&self) -> ClientBuilder {
        Client::builder(self.endpoint())
            .ca_pem(read(self.dir().ca_cert()))
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(10))
            .retry(telesub_client::RetryPolicy::none())
    }

    /// A client builder with `org`'s certificate from the folder.
    pub fn builder(&self, org: &str) -> ClientBuilder {
        let dir = self.dir();
        self.anonymous().identity_pem(read(dir.client_cert(org)), read(dir.client_key(org)))
    }

    /// Issues into the folder a certificate naming a person of a member, as
    /// `telesub pki init --person CODE:LOGIN:FULL NAME` does, and returns the name of its files
    /// (`CODE.LOGIN`), with which [`Self::client`] and the console's browser connect.
    pub fn add_person(&self, spec: &str) -> String {
        let person: pki::PersonSpec = spec.parse().expect("person spec");
        pki::init_with_people(self.tls_dir.path(), &[], std::slice::from_ref(&person))
            .expect("issue the person's certificate");
        person.file_stem()
    }

    /// A connected client for `org` (or a person's file name from [`Self::add_person`]).
    pub async fn client(&self, org: &str) -> Client {
        self.builder(org).connect().await.unwrap_or_else(|e| panic!("{org} cannot connect: {e}"))
    }

    /// A client whose certificate the hub's CA issues now for `org`, valid as given.
    pub async fn client_with_new_certificate(
        &self,
        org: &str,
        validity: Validity,
    ) -> Result<Client, telesub_client::Error> {
        let issued = self.ca.client_certificate(org, validity).expect("issue certificate");
        self.anonymous().identity_pem(issued.cert_pem, issued.key_pem).connect().await
    }

    /// Every audit record so far, in order.
    pub async fn audit(&self) -> Vec<AuditRecord> {
        self.store.audit_records(0, u32::MAX).await.expect("read audit records")
    }

    /// Waits until the audit trail holds at least `n` records (a call that the client abandons,
    /// such as a watch stream, is recorded when the hub notices it is gone).
    pub async fn wait_for_audit(&self, n: usize) -> Vec<AuditRecord> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.audit().await;
            if records.len() >= n || tokio::time::Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The audit record of the call with this request id.
    /// The audit record of a call; waits a little, as a call answered `UNAVAILABLE` is
    /// recorded after its answer.
    pub async fn audit_record(&self, request_id: &str) -> AuditRecord {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(found) = self.audit().await.into_iter().find(|r| r.entry.request_id == request_id) {
                return found;
            }
            assert!(tokio::time::Instant::now() < deadline, "no audit record for request {request_id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A second hub on the same database and certificate folder (several hubs sharing one
    /// PostgreSQL database, as in production).
    pub async fn spawn_beside(&self) -> ExtraHub {
        self.spawn_beside_with(|_| {}).await
    }

    /// [`TestApp::spawn_beside`] with settings of its own.
    pub async fn spawn_beside_with(&self, configure: impl FnOnce(&mut Settings)) -> ExtraHub {
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: DatabaseUrl(self.db.url()),
            database_max_connections: 4,
            ..Settings::default()
        };
        settings.tls.dir = Some(self.tls_dir.path().to_owned());
        configure(&mut settings);
        let hub = Hub::build(settings).await.expect("build the second hub");
        let addr = hub.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(hub.run(async {
            let _ = stopped.await;
        }));
        ExtraHub { addr, stop: Some(stop), _serving: serving }
    }

    /// A second hub in a process of its own (`telesub serve`, the binary a province runs) on
    /// the same database and certificate folder.
    pub async fn spawn_process_beside(&self) -> HubProcess {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(hub_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &self.db.url(), "--tls-dir"])
            .arg(self.tls_dir.path())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start telesub serve");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        let mut stdout = tokio::io::BufReader::new(stdout);
        tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line))
            .await
            .expect("telesub serve says where it listens")
            .expect("read its output");
        let port: u16 = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            panic!("telesub serve printed {line:?}, not where it listens");
        });
        HubProcess { addr: SocketAddr::from(([127, 0, 0, 1], port)), _child: child, _stdout: stdout }
    }

    /// A connected client for `org` to another hub sharing this one's folder.
    pub async fn client_of(&self, hub: &impl OtherHub, org: &str) -> Client {
        let dir = self.dir();
        Client::builder(format!("https://localhost:{}", hub.addr().port()))
            .ca_pem(read(dir.ca_cert()))
            .identity_pem(read(dir.client_cert(org)), read(dir.client_key(org)))
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(10))
            .retry(telesub_client::RetryPolicy::none())
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{org} cannot connect to the second hub: {e}"))
    }

    /// Stops the hub gracefully and waits for it.
    pub async fn stop(mut self) -> Result<(), StartupError> {
        self.stop_in_place().await
    }

    async fn stop_in_place(&mut self) -> Result<(), StartupError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.serving.take() {
            Some(serving) => serving.await.expect("the hub task panicked"),
            None => Ok(()),
        }
    }
}

/// Another hub on a [`TestApp`]'s database; stops when dropped.
pub struct ExtraHub {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    _serving: JoinHandle<Result<(), StartupError>>,
}

/// A hub other than the test's own, on the same database and certificate folder.
pub trait OtherHub {
    fn addr(&self) -> SocketAddr;
}

impl OtherHub for ExtraHub {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A hub in a process of its own, stopped when dropped.
pub struct HubProcess {
    pub addr: SocketAddr,
    _child: tokio::process::Child,
    /// Kept open: the hub writes to it.
    _stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
}

impl HubProcess {
    /// Sends the hub's process a signal by name (`HUP`, `TERM`, `KILL`), with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let pid = self._child.id().expect("the hub is running");
        let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid} failed");
    }
}

impl OtherHub for HubProcess {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A `telesub serve` process of the test's own, on a certificate folder and database the
/// test keeps: it can be killed (SIGKILL, no cleanup) and started again on the same data, and
/// its log is in a file the test reads.
pub struct ServeProcess {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    tls: PathBuf,
    log: PathBuf,
}

impl ServeProcess {
    /// Starts the hub; `Err` with the end of its log when it exits before it is listening.
    pub async fn start(tls: &Path, database: &str, log: &Path, extra: &[&str]) -> Result<Self, String> {
        Self::start_binary(hub_binary(), tls, database, log, extra).await
    }

    /// [`Self::start`] with the hub binary at `bin` (one built with other features).
    pub async fn start_binary(
        bin: &Path,
        tls: &Path,
        database: &str,
        log: &Path,
        extra: &[&str],
    ) -> Result<Self, String> {
        use tokio::io::AsyncBufReadExt;
        let file = std::fs::File::create(log).expect("the hub's log file");
        let mut child = tokio::process::Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database, "--tls-dir"])
            .arg(tls)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("start telesub serve");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(120), stdout.read_line(&mut line)).await;
        let log_tail = || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        let port = match read {
            Ok(Ok(n)) if n > 0 => line.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok()),
            _ => None,
        };
        let Some(port) = port else {
            let _ = child.kill().await;
            return Err(format!("telesub serve did not start: {line:?}\n{}", log_tail()));
        };
        // Keep reading what it prints, so that it never blocks on a full pipe.
        tokio::spawn(async move {
            let mut sink = String::new();
            while stdout.read_line(&mut sink).await.is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        Ok(Self { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), tls: tls.to_owned(), log: log.to_owned() })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, and the exit status once it stopped.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the hub stops within a minute of SIGTERM")
            .expect("wait for the hub")
    }

    /// The hub's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `needle`; `false` after `timeout`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.log().lines().any(|l| l.contains(needle)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A client for `org` of the certificate folder, without retries.
    pub async fn client(&self, org: &str) -> Client {
        Client::builder(format!("https://localhost:{}", self.addr.port()))
            .dev_folder(&self.tls, org)
            .expect("the folder's certificate")
            .request_timeout(Duration::from_secs(120))
            .retry(telesub_client::RetryPolicy::none())
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{org} cannot connect to the hub process: {e}"))
    }
}

/// A PostgreSQL cluster of the test's own (`initdb` and `pg_ctl`), which the test stops and
/// starts again: the hub's database going away and coming back. As root, PostgreSQL's tools
/// run as the `postgres` user.
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
}

impl PgCluster {
    /// A new cluster, started; `None` (with a loud line) where PostgreSQL's tools are missing.
    pub async fn start() -> Option<Self> {
        let bin = pg_bin()?;
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            let status = std::process::Command::new("chown").arg("postgres:").arg(dir.path()).status();
            assert!(status.is_ok_and(|s| s.success()), "chown the cluster's folder to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cluster = Self { dir, bin, port, running: false };
        let data = cluster.data();
        let data = data.to_str().unwrap();
        cluster
            .pg(&["initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
            .await;
        cluster.start_again().await;
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of PostgreSQL's tools from its folder, as `postgres` when root.
    async fn pg(&self, args: &[&str]) {
        let tool = self.bin.join(args[0]);
        let mut command = if is_root() {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&tool);
            c
        } else {
            tokio::process::Command::new(&tool)
        };
        let output =
            command.args(&args[1..]).current_dir(self.dir.path()).output().await.expect("run PostgreSQL's tool");
        assert!(
            output.status.success(),
            "{} failed: {}{}",
            args[0],
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the stopped cluster on its port.
    pub async fn start_again(&mut self) {
        let data = self.data();
        let log = self.dir.path().join("log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        self.pg(&[
            "pg_ctl",
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            "start",
        ])
        .await;
        self.running = true;
    }

    /// Stops it (fast: open sessions are ended), as an outage would.
    pub async fn stop(&mut self) {
        let data = self.data();
        self.pg(&["pg_ctl", "-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]).await;
        self.running = false;
    }

    /// The URL of a database on it (`postgres`, the one initdb makes).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let tool = self.bin.join("pg_ctl");
            let mut command = if is_root() {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&tool);
                c
            } else {
                std::process::Command::new(&tool)
            };
            let _ = command.arg("-D").arg(data).args(["-m", "immediate", "stop"]).current_dir(self.dir.path()).output();
        }
    }
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `GET path` in plain HTTP/1.1 from `addr` (the metrics and health listener): the status and
/// the body.
pub async fn plain_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the listener");
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_owned())
}

/// A PostgreSQL client tool (`pg_dump`, `pg_restore`) of the same install as `initdb` (the
/// folder `initdb` is linked from, then its own), else the first on `PATH`.
pub fn pg_tool(name: &str) -> Option<PathBuf> {
    let bin = pg_bin();
    let linked = bin
        .as_ref()
        .and_then(|dir| std::fs::canonicalize(dir.join("initdb")).ok())
        .and_then(|p| p.parent().map(Path::to_owned));
    let on_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    linked.into_iter().chain(bin).chain(on_path).map(|dir| dir.join(name)).find(|tool| tool.is_file())
}

/// The folder of `initdb` and `pg_ctl`: `TELESUB_TEST_PG_BIN`, then `PATH`, then the newest
/// Debian install.
fn pg_bin() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let from_env = std::env::var_os("TELESUB_TEST_PG_BIN").map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| has_tools(d));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort();
    let found = from_env.into_iter().chain(on_path).chain(debian.into_iter().rev()).find(|d| has_tools(d));
    if found.is_none() {
        eprintln!("!!! WARNING: PostgreSQL's initdb and pg_ctl were not found: the database-outage test does not run");
    }
    found
}

/// The hub's binary, `telesub`, built for the profile the tests run in (`TELESUB_BIN` names
/// another).
pub fn hub_binary() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("TELESUB_BIN") {
        Some(path) => PathBuf::from(path),
        None => built_binary("telesub"),
    })
}

/// Builds binary `bin` of the workspace for the profile the tests run in, into the tests' own
/// target folder, and gives its path.
///
/// Built as `cargo build --workspace` builds it: a build of one package alone unifies other
/// features (the contract crate's `json`, which only `telesub-cli` asks for), so it would
/// compile a second copy of the contract, the hub and everything between them, beside the one
/// `cargo test --workspace` has just built (about a minute on a CI machine, in every run).
pub fn built_binary(bin: &str) -> PathBuf {
    // Tests run as TARGET/PROFILE/deps/NAME-HASH.
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("TARGET/PROFILE/deps");
    let target_dir = profile_dir.parent().expect("TARGET");
    let mut build = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // What cargo sets for the test itself would reach build scripts that read it (ring's
    // does), rebuilding them here and again in the next `cargo test`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_package = ["CARGO_PKG_", "CARGO_BIN_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_PRIMARY_"];
        if per_package.iter().any(|prefix| name.starts_with(prefix)) || name == "CARGO_TARGET_TMPDIR" {
            build.env_remove(&*name);
        }
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.toml");
    build.args(["build", "--quiet", "--workspace", "--manifest-path"]).arg(manifest);
    build.args(["--bin", bin, "--target-dir"]).arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(other) => {
            build.args(["--profile", other]);
        }
        None => panic!("no profile folder in {}", exe.display()),
    }
    let status = build.status().unwrap_or_else(|e| panic!("run cargo to build {bin}: {e}"));
    assert!(status.success(), "cargo could not build {bin}: {status}");
    profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX))
}

impl Drop for ExtraHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs the `telesub` binary and gives what it printed (both streams); panics on failure.
pub fn run_telesub(args: &[&str]) -> String {
    let (ok, out) = run_telesub_status(args);
    assert!(ok, "telesub {args:?} failed: {out}");
    out
}

/// Runs the `telesub` binary: whether it succeeded, and what it printed (both streams).
pub fn run_telesub_status(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(hub_binary())
        .args(args)
        .env("RUST_LOG", "error")
        .env("NO_COLOR", "1")
        .output()
        .expect("run telesub");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Reads a file the test set up; panics with its name when missing.
pub fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The SHA-256 fingerprint of a PEM certificate, computed apart from the hub's own code.
pub fn fingerprint_of(pem: &str) -> String {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    sha256_hex(&CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate"))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    telesub_server::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

pub mod raw {
    //! gRPC calls by path with raw message bytes, for tests that walk every method of the hub
    //! whatever its message types.

    use bytes::{Buf, BufMut};
    use tonic::{
        Code, Request, Status, Streaming,
        codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
        transport::{Certificate, Channel, ClientTlsConfig, Identity},
    };

    use super::{TestApp, read};

    #[derive(Debug, Clone, Copy, Default)]
    pub struct RawCodec;

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawCodec;
        type Decoder = RawCodec;

        fn encoder(&mut self) -> Self::Encoder {
            RawCodec
        }

        fn decoder(&mut self) -> Self::Decoder {
            RawCodec
        }
    }

    impl Encoder for RawCodec {
        type Item = Vec<u8>;
        type Error = Status;

        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for RawCodec {
        type Item = Vec<u8>;
        type Error = Status;

        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let bytes = src.chunk().to_vec();
            src.advance(bytes.len());
            Ok(Some(bytes))
        }
    }

    /// A channel to the hub with `org`'s certificate.
    pub async fn channel(app: &TestApp, org: &str) -> Channel {
        channel_at(&app.endpoint(), &app.dir(), org).await
    }

    /// A channel to the hub at `endpoint` with `org`'s certificate of the folder `dir` (a
    /// `telesub serve` process of the test's own).
    pub async fn channel_at(endpoint: &str, dir: &telesub_server::pki::PkiDir, org: &str) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(dir.ca_cert())))
            .identity(Identity::from_pem(read(dir.client_cert(org)), read(dir.client_key(org))))
            .domain_name("localhost");
        Channel::from_shared(endpoint.to_owned()).unwrap().tls_config(tls).unwrap().connect().await.expect("connect")
    }

    /// Opens a call to `method` sending one message, `body`, and returns the response stream
    /// (or the status the call was refused with).
    pub async fn open(channel: Channel, method: &str, body: Vec<u8>) -> Result<Streaming<Vec<u8>>, Status> {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::try_from(method).expect("a gRPC path");
        grpc.server_streaming(Request::new(body), path, RawCodec).await.map(tonic::Response::into_inner)
    }

    /// Opens a call to `method` sending each of `bodies` as a message of its own, whatever
    /// kind of method it is.
    pub async fn stream(channel: Channel, method: &str, bodies: Vec<Vec<u8>>) -> Result<Streaming<Vec<u8>>, Status> {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::try_from(method).expect("a gRPC path");
        grpc.streaming(Request::new(tokio_stream::iter(bodies)), path, RawCodec).await.map(tonic::Response::into_inner)
    }

    /// The status a call ends with: its first answer's, or the refusal.
    pub async fn outcome(call: Result<Streaming<Vec<u8>>, Status>) -> Status {
        match call {
            Err(status) => status,
            Ok(mut stream) => loop {
                match stream.message().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break Status::ok(""),
                    Err(status) => break status,
                }
            },
        }
    }

    /// Calls `method` with an empty message and returns the status code of the first answer.
    pub async fn call(channel: Channel, method: &str) -> Code {
        match open(channel, method, Vec::new()).await {
            Err(status) => status.code(),
            Ok(mut stream) => match stream.message().await {
                Ok(_) => Code::Ok,
                Err(status) => status.code(),
            },
        }
    }
}

/// Puts `n` generated households (seed `seed`) on the register straight through the storage
/// layer, as one applied snapshot effective on `effective`: how benchmarks load a large
/// register quickly. Returns the head's citizen ID of every household, in order.
pub async fn load_generated(store: &dyn Store, seed: u64, n: usize, effective: time::Date) -> Vec<String> {
    use telesub_server::{
        domain::ports::register::{NewBatch, Staged},
        domain::{
            household::{BatchKind, CheckContext, check_record},
            registry::staged,
            units::UnitTable,
        },
        transport::record_input,
    };
    use telesub_tools::generator::HouseholdGenerator;
    let units = UnitTable::new(store.units().await.expect("units"));
    let cx = CheckContext {
        units: &units,
        today: Clock::system().today(),
        batch_effective: effective,
        kind: BatchKind::Snapshot,
    };
    let batch_id = format!("generated-{seed}-{n}");
    let batch = NewBatch {
        batch_id: &batch_id,
        kind: BatchKind::Snapshot,
        review_period: "2024",
        effective,
        note: "generated",
        pushed_by: "DOLISA",
        received_at: Clock::system().now(),
        receiver: "generated",
    };
    // A stream like any other: a hub starting meanwhile leaves the batch alone.
    let _claim = store.claim(&telesub_server::domain::registry::batch_key(&batch_id)).await.unwrap().expect("claim");
    store.begin_batch(&batch).await.expect("begin");
    let mut heads = Vec::with_capacity(n);
    let mut chunk = Vec::with_capacity(2_000);
    for (idx, record) in HouseholdGenerator::reference(seed).take(n).enumerate() {
        if let Some(telesub_client::proto::household_record::Change::Upsert(d)) = &record.change {
            heads.push(d.members[0].citizen_id.clone());
        }
        chunk.push(staged(idx, check_record(idx, &record_input(record), &cx).expect("generated records are valid")));
        if chunk.len() == 2_000 {
            store.stage_records(&batch_id, "generated", &chunk).await.expect("stage");
            chunk.clear();
        }
    }
    store.stage_records(&batch_id, "generated", &chunk).await.expect("stage");
    store
        .apply_batch(
            &Staged { batch_id: &batch_id, receiver: "generated", records: n as i64 },
            BatchKind::Snapshot,
            effective,
            "-",
            Clock::system().now(),
        )
        .await
        .expect("apply")
        .expect("generated households apply");
    heads
}

/// Puts enrolments on the register straight into the database, around the hub: how tests and
/// benchmarks give a large generated register its subsidised lines quickly. Each rests on a
/// decision id of `imported`.
pub async fn load_enrollments(
    db: &TestDb,
    enrollments: impl Iterator<Item = telesub_tools::monthly_generator::PlannedEnrollment>,
) -> Result<u64, sqlx::Error> {
    use sqlx::{Connection, QueryBuilder};
    let at = Clock::system().now();
    let mut loaded = 0;
    let mut rows = enrollments.peekable();
    match db {
        TestDb::Sqlite { path, .. } => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await?;
            let mut tx = c.begin().await?;
            while rows.peek().is_some() {
                let chunk: Vec<_> = rows.by_ref().take(500).collect();
                let mut insert = QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO enrollments (operator, household_code, subscriber_citizen_id, phone_number, service, \
                     start_date, decision_id, recorded_at) ",
                );
                insert.push_values(&chunk, |mut row, e| {
                    row.push_bind(e.operator.clone())
                        .push_bind(e.household_code.clone())
                        .push_bind(e.subscriber_citizen_id.clone())
                        .push_bind(e.phone_number.clone())
                        .push_bind("MOBILE")
                        .push_bind(e.start_date)
                        .push_bind("imported")
                        .push_bind(at);
                });
                loaded += insert.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
        }
        TestDb::Postgres { url, .. } => {
            let mut c = sqlx::PgConnection::connect(url).await?;
            let mut tx = c.begin().await?;
            while rows.peek().is_some() {
                let chunk: Vec<_> = rows.by_ref().take(10_000).collect();
                let column = |f: fn(&telesub_tools::monthly_generator::PlannedEnrollment) -> String| {
                    chunk.iter().map(f).collect::<Vec<_>>()
                };
                loaded += sqlx::query(
                    "INSERT INTO enrollments (operator, household_code, subscriber_citizen_id, phone_number, service, \
                     start_date, decision_id, recorded_at) \
                     SELECT o, h, s, p, 'MOBILE', d, 'imported', $6 \
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[]) AS t(o, h, s, p, d)",
                )
                .bind(column(|e| e.operator.clone()))
                .bind(column(|e| e.household_code.clone()))
                .bind(column(|e| e.subscriber_citizen_id.clone()))
                .bind(column(|e| e.phone_number.clone()))
                .bind(chunk.iter().map(|e| e.start_date).collect::<Vec<_>>())
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
        }
    }
    Ok(loaded)
}

/// The parts of a ZIP archive (a workbook), inflated: read through its central directory, as
/// any unzip does. Panics on what is not a ZIP archive the hub could have written.
pub fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
    let end = bytes.len() - 22;
    assert_eq!(&bytes[end..end + 4], b"PK\x05\x06", "a ZIP archive ends with its directory");
    let (count, mut at) = (u16_at(end + 10), u32_at(end + 16));
    let mut parts = Vec::new();
    for _ in 0..count {
        assert_eq!(&bytes[at..at + 4], b"PK\x01\x02");
        let (method, compressed, name_len) = (u16_at(at + 10), u32_at(at + 20), u16_at(at + 28));
        let (extra, comment, local) = (u16_at(at + 30), u16_at(at + 32), u32_at(at + 42));
        let name = String::from_utf8(bytes[at + 46..at + 46 + name_len].to_vec()).expect("a UTF-8 name");
        let data_at = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        let raw = &bytes[data_at..data_at + compressed];
        let data = match method {
            0 => raw.to_vec(),
            8 => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(raw).read_to_end(&mut out).expect("inflate");
                out
            }
            other => panic!("{name}: compression method {other}"),
        };
        parts.push((name, data));
        at += 46 + name_len + extra + comment;
    }
    parts
}
