//! Watching a hub: Prometheus' metrics and health answers on a listener of their own (plain
//! HTTP, no certificate), counters read before and after known calls, nothing personal in them.

use telesub_client::proto;
use telesub_tests::{TestApp, console::Browser, plain_get};

use crate::households::{header, household};

/// The value of the sample `name{labels}` (labels as the text format writes them), 0 when the
/// series does not exist yet.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap_or_else(|_| panic!("{series}: {v:?}")))
}

#[tokio::test]
async fn the_metrics_count_known_calls_and_health_answers_without_a_certificate() {
    let app = TestApp::spawn_with(|s| s.metrics.listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let at = app.metrics_addr.expect("the metrics listener");
    assert_eq!(plain_get(at, "/health/live").await.0, 200);
    assert_eq!(plain_get(at, "/health/ready").await, (200, "ready\n".to_owned()));
    assert_eq!(plain_get(at, "/anything-else").await.0, 404);

    let (status, before) = plain_get(at, "/metrics").await;
    assert_eq!(status, 200, "{before}");
    let vnpt = app.client("VNPT").await;
    for _ in 0..3 {
        vnpt.who_am_i().await.unwrap();
    }
    // A refusal: the labour department may not read an operator's list.
    let err = app.client("DOLISA").await.get_reconciliation("VNPT", "x").await.unwrap_err();
    assert_eq!(err.code(), Some(telesub_client::Code::PermissionDenied), "{err}");
    // A batch of 25 households, and a console page.
    let records: Vec<_> = (1..=25).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
    app.client("DOLISA")
        .await
        .push_batch(header("b1", proto::BatchKind::Snapshot, "2024", "2025-01-01"), tokio_stream::iter(records))
        .await
        .unwrap();
    let page = Browser::connect(&app, Some("DOICT"))
        .await
        .unwrap()
        .get("/console/reconciliation?period=2025-03")
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    // The calls' records are kept before they are answered; a moment for the last to be counted.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (_, after) = plain_get(at, "/metrics").await;

    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    let who = r#"telesub_calls_total{method="/telesub.v1.Members/WhoAmI",role="OPERATOR",outcome="OK"}"#;
    assert_eq!(delta(who), 3.0, "{after}");
    let refused = r#"telesub_calls_total{method="/telesub.v1.Reconciliation/GetReconciliation",role="NONE",outcome="PERMISSION_DENIED"}"#;
    let refused_as_member = r#"telesub_calls_total{method="/telesub.v1.Reconciliation/GetReconciliation",role="LABOUR",outcome="PERMISSION_DENIED"}"#;
    assert_eq!(delta(refused) + delta(refused_as_member), 1.0, "{after}");
    let page = r#"telesub_calls_total{method="GET /console/reconciliation",role="ICT",outcome="OK"}"#;
    assert_eq!(delta(page), 1.0, "{after}");
    assert!(delta(r#"telesub_call_duration_seconds_count{method="/telesub.v1.Members/WhoAmI"}"#) >= 3.0, "{after}");
    assert_eq!(delta("telesub_batch_records_count"), 1.0, "{after}");
    assert_eq!(delta("telesub_batch_records_sum"), 25.0, "{after}");
    assert!(sample(&after, "telesub_audit_commit_records_count") >= 5.0, "{after}");
    assert_eq!(sample(&after, "telesub_database_up"), 1.0, "{after}");
    // The register held in memory (SQLite) holds the batch's households, once caught up.
    if app.store.backend() == "sqlite" {
        app.register.catch_up().await.unwrap();
        let (_, now) = plain_get(at, "/metrics").await;
        assert_eq!(sample(&now, "telesub_register_households_held"), 25.0, "{now}");
        let built = sample(&now, "telesub_register_held_built_timestamp_seconds");
        let now_s = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
        assert!(built > now_s - 600.0 && built <= now_s + 1.0, "built {built}, now {now_s}");
    }
    // The database pools: what each opens at most, what is in use (between calls, none of the
    // pool short calls read from), and waits that ran out of time (none here).
    let pool = if app.store.backend() == "sqlite" { "read" } else { "main" };
    let max = format!(r#"telesub_database_connections{{pool="{pool}",state="max"}}"#);
    assert!(sample(&after, &max) >= 1.0, "{after}");
    let idle = format!(r#"telesub_database_connections{{pool="{pool}",state="idle"}}"#);
    assert!(after.contains(&format!("{idle} ")), "{after}");
    assert!(after.contains("telesub_database_acquire_timeouts_total "), "{after}");
    // Between calls nothing is in flight.
    assert!(after.contains("# TYPE telesub_calls_in_flight gauge"), "{after}");
    for line in after.lines().filter(|l| l.starts_with("telesub_calls_in_flight{")) {
        assert!(line.ends_with(" 0") || line.contains("/metrics"), "{line}");
    }
    // Names, units and help as Prometheus' conventions want them; nothing personal.
    for family in ["telesub_calls_total", "telesub_call_duration_seconds", "telesub_batch_duration_seconds"] {
        assert!(
            after.contains(&format!("# HELP {family}"))
                || after.contains(&format!("# HELP {}", family.trim_end_matches("_total"))),
            "{family}: {after}"
        );
    }
    assert!(!after.contains("HH-1") && !after.contains("0670"), "a household or citizen in the metrics: {after}");
}

/// A call that carries a W3C `traceparent` has its trace id in its log lines, in the real
/// `telesub serve` process: a call over gRPC and a console page alike.
#[tokio::test]
async fn a_calls_trace_id_from_traceparent_is_in_its_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    telesub_server::pki::init(&tls, &["DOICT:ICT".parse().unwrap()]).unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let hub = telesub_tests::ServeProcess::start(&tls, &url, &dir.path().join("hub.log"), &[]).await.unwrap();
    let folder = telesub_server::pki::PkiDir::new(&tls);
    let endpoint = format!("https://localhost:{}", hub.addr.port());
    let channel = telesub_tests::raw::channel_at(&endpoint, &folder, "DOICT").await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(Vec::new());
    let traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    request.metadata_mut().insert("traceparent", traced.parse().unwrap());
    let path = http::uri::PathAndQuery::from_static("/telesub.v1.Members/WhoAmI");
    grpc.unary(request, path, telesub_tests::raw::RawCodec).await.expect("WhoAmI");
    assert!(
        hub.wait_for_log("trace_id=4bf92f3577b34da6a3ce929d0e0e4736", std::time::Duration::from_secs(5)).await,
        "{}",
        hub.log()
    );
    let page = telesub_tests::console::Browser::connect_to(hub.addr, &folder, Some("DOICT"))
        .await
        .unwrap()
        .get_with("/console/", &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert!(
        hub.wait_for_log("trace_id=0af7651916cd43dd8448eb211c80319c", std::time::Duration::from_secs(5)).await,
        "{}",
        hub.log()
    );
}
