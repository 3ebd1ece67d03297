//! Limits: message size and concurrency. Calls beyond them are refused with a clear status,
//! audited like any other.

use std::time::Duration;

use futures_util::StreamExt;

use telesub_client::{Code, Error, proto};
use telesub_tests::{TestApp, raw};
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

#[tokio::test]
async fn calls_beyond_the_concurrency_limit_get_unavailable() {
    let app = TestApp::spawn_with(|s| s.limits.max_concurrent_requests = 1).await;
    // A change feed holds the one place for as long as it is open.
    let viettel = app.client("VIETTEL").await;
    let mut watch = Box::pin(viettel.watch_changes("", 1).await.unwrap());
    watch.next().await.unwrap().unwrap();
    // Health is never refused for capacity.
    let mut health = HealthClient::new(raw::channel(&app, "DOICT").await);
    let answer = health.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(answer.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    let client = app.client("VNPT").await;
    let err = client.who_am_i().await.unwrap_err();
    let Error::Unavailable(r) = &err else { panic!("expected UNAVAILABLE, got {err:?}") };
    assert!(r.message.contains("capacity"), "{}", r.message);
    assert!(err.is_retryable());
    let record = app.audit_record(err.request_id().unwrap()).await;
    assert_eq!(record.entry.outcome, "UNAVAILABLE");

    drop(watch);
    drop(health);
    drop(viettel);
    // Once the stream is gone, its place is free again.
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
async fn the_sdk_retries_read_only_calls_while_the_hub_is_at_capacity() {
    let app = TestApp::spawn_with(|s| s.limits.max_concurrent_requests = 1).await;
    let viettel = app.client("VIETTEL").await;
    let mut watch = Box::pin(viettel.watch_changes("", 1).await.unwrap());
    watch.next().await.unwrap().unwrap();

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
    drop(watch);
    let me = call.await.unwrap().expect("the retried call succeeds once there is room");
    assert_eq!(me.member.unwrap().code, "VNPT");
    // A refusal's record is stored after its answer (it waits for nothing).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.audit().await.iter().all(|r| r.entry.outcome != "UNAVAILABLE") {
        assert!(tokio::time::Instant::now() < deadline, "the first attempts were refused and audited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
