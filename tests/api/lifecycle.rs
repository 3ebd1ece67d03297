//! Starting and stopping: health reflects the hub's state, shutdown lets open calls see it
//! and ends within the grace period, and nothing is served afterwards.

use std::time::{Duration, Instant};

use telesub_tests::{TestApp, raw};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

#[tokio::test]
async fn health_is_serving_for_the_hub_and_its_services() {
    let app = TestApp::spawn().await;
    assert!(app.client("DOH").await.health().await.unwrap());
    let mut health = HealthClient::new(raw::channel(&app, "DOH").await);
    for service in ["", "telesub.v1.Members"] {
        let answer = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "telesub.v1.Nothing".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn shutdown_tells_open_streams_and_ends_within_the_grace_period() {
    let app = TestApp::spawn_with(|s| s.shutdown_grace_ms = 1_500).await;
    let addr = app.addr;
    let builder = app.builder("DOICT");
    let mut health = HealthClient::new(raw::channel(&app, "DOICT").await);
    let mut watch =
        health.watch(HealthCheckRequest { service: "telesub.v1.Members".into() }).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status(), ServingStatus::Serving);

    let started = Instant::now();
    let stopping = tokio::spawn(app.stop());
    // The open stream is still served during shutdown, and hears about it.
    let update = tokio::time::timeout(Duration::from_secs(5), watch.message()).await.expect("an update");
    assert_eq!(update.unwrap().unwrap().status(), ServingStatus::NotServing);
    // The stream never ends by itself; the grace period ends it.
    stopping.await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_400) && took < Duration::from_secs(10), "stopped after {took:?}");

    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is still open");
    assert!(builder.connect().await.is_err());
}

#[tokio::test]
async fn shutdown_without_open_calls_is_immediate_and_keeps_every_record() {
    let app = TestApp::spawn_with(|s| s.shutdown_grace_ms = 30_000).await;
    let client = app.client("VNPT").await;
    for _ in 0..3 {
        client.who_am_i().await.unwrap();
    }
    drop(client);
    let store = app.store.clone();
    let _database = app.db.keep();
    let started = Instant::now();
    app.stop().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let report = telesub_server::audit::verify(store.as_ref()).await.unwrap();
    assert_eq!((report.records, report.first_break), (3, None));
}
