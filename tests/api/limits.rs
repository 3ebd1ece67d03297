//! Limits: message size and concurrency. Calls beyond them are refused with a clear status,
//! audited like any other.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use telesub_client::{Client, Code, Error, proto};
use telesub_tests::{ServeProcess, TestApp, TestDb, raw};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[tokio::test]
async fn a_message_over_the_limit_is_refused() {
    let app = TestApp::spawn_with(|s| s.limits.max_message_bytes = 2_048).await;
    let ict = app.client("DOICT").await;
    let err = ict
        .register_member(proto::RegisterMemberRequest {
            code: "BIG".into(),
            display_name: "x".repeat(3_000),
            role: proto::Role::Operator.into(),
            unit_code: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::ResourceExhausted), "{err:?}");
    assert!(err.to_string().contains("too large"), "{err}");
    let records = app.audit().await;
    let last = records.last().unwrap();
    assert_eq!(
        (last.entry.method.as_str(), last.entry.outcome.as_str()),
        ("/telesub.v1.Members/RegisterMember", "RESOURCE_EXHAUSTED")
    );
    let listed = ict.list_members(proto::ListMembersRequest::default()).await.unwrap();
    assert!(listed.members.iter().all(|m| m.code != "BIG"));
}

/// A batch eligibility call whose questions never end: a call in flight until it is dropped.
struct InFlight {
    _questions: mpsc::Sender<proto::CheckEligibilityRequest>,
    _answers: std::pin::Pin<Box<dyn Stream<Item = Result<proto::EligibilityDecision, Error>> + Send>>,
}

async fn call_in_flight(client: &Client) -> InFlight {
    let (questions, rx) = mpsc::channel::<proto::CheckEligibilityRequest>(1);
    let answers = client.check_eligibility_batch(ReceiverStream::new(rx)).await.expect("the call is admitted");
    InFlight { _questions: questions, _answers: Box::pin(answers) }
}

/// Asks reflection for the services, as grpcurl does first.
async fn reflect(app: &TestApp, org: &str) -> Result<(), tonic::Status> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    let mut client = ServerReflectionClient::new(raw::channel(app, org).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client.server_reflection_info(tokio_stream::iter([request])).await?.into_inner();
    answers.next().await.expect("an answer")?;
    Ok(())
}

async fn health(app: &TestApp) -> i32 {
    let mut health = HealthClient::new(raw::channel(app, "DOICT").await);
    health.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner().status
}

const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;

#[tokio::test]
async fn calls_beyond_the_concurrency_limit_get_unavailable() {
    let app = TestApp::spawn_with(|s| s.limits.max_concurrent_requests = 1).await;
    // A call in flight holds the one place for as long as it is open.
    let viettel = app.client("VIETTEL").await;
    let held = call_in_flight(&viettel).await;
    // Health and reflection are never refused for capacity.
    assert_eq!(health(&app).await, SERVING);
    reflect(&app, "DOICT").await.expect("reflection answers at capacity");

    let client = app.client("VNPT").await;
    let err = client.who_am_i().await.unwrap_err();
    let Error::Unavailable(r) = &err else { panic!("expected UNAVAILABLE, got {err:?}") };
    assert!(r.message.contains("capacity"), "{}", r.message);
    assert!(err.is_retryable());
    let record = app.audit_record(err.request_id().unwrap()).await;
    assert_eq!(record.entry.outcome, "UNAVAILABLE");

    drop(held);
    drop(viettel);
    // Once the call is gone, its place is free again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match client.who_am_i().await {
            Ok(me) => break assert_eq!(me.member.unwrap().code, "VNPT"),
            Err(Error::Unavailable(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the place was not freed: {e:?}"),
        }
    }
}

#[tokio::test]
async fn a_member_holding_every_feed_it_may_leaves_the_others_served() {
    // As seen: an operator holding idle change feeds took every place, and ICT, the labour
    // department and health checks were refused.
    let app = TestApp::spawn_with(|s| {
        s.limits.max_concurrent_requests = 8;
        s.limits.max_streams = 4;
    })
    .await;
    let vnpt = app.client("VNPT").await;
    // The default share is a quarter of the whole: one feed of four.
    let mut feed = Box::pin(vnpt.watch_changes("", 1).await.unwrap());
    feed.next().await.unwrap().unwrap();
    let err = match vnpt.watch_changes("", 1).await {
        Ok(mut second) => second.next().await.unwrap().unwrap_err(),
        Err(e) => e,
    };
    let Error::ResourceExhausted(r) = &err else { panic!("expected RESOURCE_EXHAUSTED, got {err:?}") };
    assert!(r.message.contains("member VNPT has 1 change feeds open, its share"), "{}", r.message);
    assert!(r.retry_delay.is_some(), "the refusal asks for a retry later");
    assert!(err.is_retryable());
    assert_eq!(app.audit_record(err.request_id().unwrap()).await.entry.outcome, "RESOURCE_EXHAUSTED");

    // The member's calls are counted apart from its feeds; every other member is served.
    assert_eq!(vnpt.who_am_i().await.unwrap().member.unwrap().code, "VNPT");
    let viettel = app.client("VIETTEL").await;
    let mut other_feed = Box::pin(viettel.watch_changes("", 1).await.unwrap());
    other_feed.next().await.unwrap().unwrap();
    for org in ["DOICT", "DOLISA", "UBND"] {
        let me = app.client(org).await.who_am_i().await.unwrap();
        assert_eq!(me.member.unwrap().code, org);
    }
    assert_eq!(health(&app).await, SERVING);

    // A feed closed gives its place back.
    drop(feed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match vnpt.watch_changes("", 1).await {
            Ok(mut again) => match again.next().await.unwrap() {
                Ok(_) => break,
                Err(Error::ResourceExhausted(_)) if tokio::time::Instant::now() < deadline => {}
                Err(e) => panic!("{e:?}"),
            },
            Err(Error::ResourceExhausted(_)) if tokio::time::Instant::now() < deadline => {}
            Err(e) => panic!("the feed's place was not freed: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_member_at_its_share_of_calls_leaves_the_others_served() {
    let app = TestApp::spawn_with(|s| {
        s.limits.max_concurrent_requests = 3;
        s.limits.max_requests_per_member = Some(2);
    })
    .await;
    let vnpt = app.client("VNPT").await;
    let first = call_in_flight(&vnpt).await;
    let _second = call_in_flight(&vnpt).await;
    let err = vnpt.who_am_i().await.unwrap_err();
    let Error::ResourceExhausted(r) = &err else { panic!("expected RESOURCE_EXHAUSTED, got {err:?}") };
    assert!(r.message.contains("member VNPT has 2 calls in flight"), "{}", r.message);
    // Another member takes the last place; then the hub is full for everyone but health and
    // reflection.
    let ict = app.client("DOICT").await;
    let ict_call = call_in_flight(&app.client("VIETTEL").await).await;
    let err = ict.who_am_i().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(health(&app).await, SERVING);
    reflect(&app, "DOLISA").await.expect("reflection answers at capacity");
    drop(ict_call);
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match (vnpt.who_am_i().await, ict.who_am_i().await) {
            (Ok(_), Ok(_)) => break,
            _ if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("the places were not freed: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_sdk_retries_read_only_calls_while_the_hub_is_at_capacity() {
    let app = TestApp::spawn_with(|s| s.limits.max_concurrent_requests = 1).await;
    let viettel = app.client("VIETTEL").await;
    let held = call_in_flight(&viettel).await;

    let patient = app
        .builder("VNPT")
        .retry(telesub_client::RetryPolicy {
            max_attempts: 50,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
        })
        .connect()
        .await
        .unwrap();
    let call = tokio::spawn(async move { patient.who_am_i().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(held);
    let me = call.await.unwrap().expect("the retried call succeeds once there is room");
    assert_eq!(me.member.unwrap().code, "VNPT");
    // A refusal's record is stored after its answer (it waits for nothing).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.audit().await.iter().all(|r| r.entry.outcome != "UNAVAILABLE") {
        assert!(tokio::time::Instant::now() < deadline, "the first attempts were refused and audited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hub process's peak resident memory (`VmHWM`), in MiB.
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the hub's /proc status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc status");
    kb / 1024.0
}

/// As seen: 64 batch eligibility calls in flight took the hub to 943 MiB. Whatever its callers
/// do (here 64 calls that send questions as fast as the hub takes them and never read an
/// answer), the hub holds a bounded number of questions at once and stays well under 1 GiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_heavy_batch_calls_keep_the_hub_under_a_bounded_memory() {
    const CALLS: usize = 64;
    const CONNECTIONS: usize = 8;
    /// Well under the 1 GiB a busy hub must stay within, with room for a large register.
    const CEILING_MIB: f64 = 512.0;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let orgs: Vec<_> = ["DOICT:ICT", "VNPT:OPERATOR", "VIETTEL:OPERATOR"].iter().map(|o| o.parse().unwrap()).collect();
    telesub_server::pki::init(&tls, &orgs).unwrap();
    let mut hub = ServeProcess::start(&tls, &db.url(), &dir.path().join("hub.log"), &[]).await.unwrap();
    let heads = telesub_tests::load_generated(&*db.store().await, 11, 2_000, time::macros::date!(2025 - 01 - 01)).await;
    let pid = hub.pid();
    let baseline = peak_mib(pid);

    let mut clients = Vec::new();
    for n in 0..CONNECTIONS {
        clients.push(hub.client(if n % 2 == 0 { "VNPT" } else { "VIETTEL" }).await);
    }
    let asked = Arc::new(AtomicUsize::new(0));
    let mut calls = Vec::new();
    for n in 0..CALLS {
        let heads = heads.clone();
        let asked = asked.clone();
        let questions = futures_util::stream::iter((0..).map(move |i: usize| {
            asked.fetch_add(1, Ordering::Relaxed);
            proto::CheckEligibilityRequest {
                key: Some(proto::check_eligibility_request::Key::CitizenId(heads[(i + n) % heads.len()].clone())),
                as_of: "2025-03-01".into(),
            }
        }));
        // The answers are never read.
        calls.push(clients[n % CONNECTIONS].check_eligibility_batch(questions).await.expect("admitted"));
    }
    // The hub takes questions while it has room; then its calls wait for their clients.
    let mut peak = baseline;
    let mut last = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak_mib(pid);
        let now = asked.load(Ordering::Relaxed);
        assert!(peak < CEILING_MIB, "the hub reached {peak:.0} MiB with {CALLS} batch calls ({now} questions sent)");
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    let sent = asked.load(Ordering::Relaxed);
    eprintln!("{CALLS} batch calls: {sent} questions taken, hub peak {peak:.0} MiB (at start {baseline:.0} MiB)");
    // The hub is still serving others meanwhile.
    let ict = hub.client("DOICT").await;
    assert_eq!(ict.who_am_i().await.unwrap().member.unwrap().code, "DOICT");
    drop(calls);
    drop(clients);
    hub.terminate().await;
}

/// As seen on PostgreSQL under CI: while 64 batch calls kept every pooled connection busy, a
/// new call was refused because "the hub cannot look its members up right now". Bulk work
/// (a batch's reads and the storing of its decisions) takes a bounded share of the database's
/// connections; the rest stays for everyone else's calls, which are answered meanwhile, and
/// the batches still finish, waiting their turn rather than failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_calls_leave_database_connections_for_other_callers() {
    const BATCHES: usize = 12;
    const QUESTIONS: usize = 25_000;
    let app = TestApp::spawn_with(|s| {
        // Every call reads its member from the database, and a call that waits for a
        // connection longer than this is refused: what a busy hub meets after the cache expires.
        s.identity_cache_ms = 0;
        s.database_timeout_ms = 1_000;
        s.database_max_connections = 4;
    })
    .await;
    let heads = Arc::new(
        telesub_tests::load_generated(app.store.as_ref(), 11, 2_000, time::macros::date!(2025 - 01 - 01)).await,
    );
    let mut batches = Vec::new();
    for n in 0..BATCHES {
        let client = app.client(if n % 2 == 0 { "VNPT" } else { "VIETTEL" }).await;
        let heads = heads.clone();
        batches.push(tokio::spawn(async move {
            let questions = futures_util::stream::iter((0..QUESTIONS).map(move |i| proto::CheckEligibilityRequest {
                key: Some(proto::check_eligibility_request::Key::CitizenId(heads[(i * 7 + n) % heads.len()].clone())),
                as_of: "2025-03-01".into(),
            }));
            let mut answers = Box::pin(client.check_eligibility_batch(questions).await?);
            let mut answered = 0;
            while let Some(answer) = answers.next().await {
                answer?;
                answered += 1;
            }
            Ok::<usize, Error>(answered)
        }));
    }
    let ict = app.client("DOICT").await;
    let (mut asked, mut refused) = (0, Vec::new());
    while batches.iter().any(|b| !b.is_finished()) {
        asked += 1;
        if let Err(e) = ict.who_am_i().await {
            refused.push(e.to_string());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut finished = Vec::new();
    for done in batches {
        finished.push(done.await.unwrap().map_err(|e| e.to_string()));
    }
    eprintln!("{asked} calls while {BATCHES} batches ran; refused: {}; batches: {finished:?}", refused.len());
    assert!(refused.is_empty(), "{} of {asked} calls refused while batches ran, first: {}", refused.len(), refused[0]);
    assert!(
        finished.iter().all(|f| f.as_ref().is_ok_and(|n| *n == QUESTIONS)),
        "every batch is answered whole: {finished:?}"
    );
    assert!(asked >= 3, "the batches ran long enough to matter ({asked} calls beside them)");
}
