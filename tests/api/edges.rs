//! The hub's edges: what a request that does not decode, one over the size limit, a unary call
//! with two messages, text that hides what it says or a connection that never speaks HTTP/2
//! gets; what revoking a certificate (or its expiry) does to a connection already open.

use std::{sync::Arc, time::Duration};

use prost::Message;
use telesub_client::{Client, Code, Error, proto};
use telesub_server::pki::Validity;
use telesub_tests::{TestApp, raw, read};

use crate::households::{header, household};

#[tokio::test]
async fn a_body_that_does_not_decode_is_invalid_argument_and_audited_so() {
    let app = TestApp::spawn().await;
    let channel = raw::channel(&app, "DOICT").await;
    // A field of wire type 7 (no such type) and a length running past the end.
    let garbage = vec![0x0f, 0xff, 0xff, 0xff, 0x7f, 0x01];
    let status =
        raw::outcome(raw::open(channel.clone(), "/telesub.v1.Members/ListMembers", garbage.clone()).await).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let records = app.wait_for_audit(1).await;
    assert_eq!(records.last().unwrap().entry.outcome, "INVALID_ARGUMENT");

    // In a client stream: a good header, then a message that does not decode.
    let head = proto::PushBatchRequest {
        item: Some(proto::push_batch_request::Item::Header(header(
            "b1",
            proto::BatchKind::Delta,
            "2025-01",
            "2025-01-01",
        ))),
    };
    let labour = raw::channel(&app, "DOLISA").await;
    let call =
        raw::stream(labour, "/telesub.v1.HouseholdRegistry/PushBatch", vec![head.encode_to_vec(), garbage]).await;
    let status = raw::outcome(call).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let records = app.wait_for_audit(2).await;
    assert_eq!(records.last().unwrap().entry.outcome, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn a_message_over_the_limit_is_resource_exhausted_inside_a_client_stream_too() {
    // The unary case is `limits::a_message_over_the_limit_is_refused`.
    let app = TestApp::spawn_with(|s| s.limits.max_message_bytes = 2_048).await;
    // A record too large, inside a batch being pushed.
    let mut big = household("HH-1", "24611", 1);
    if let Some(proto::household_record::Change::Upsert(d)) = &mut big.change {
        d.address = "Thôn ".repeat(600);
    }
    let labour = app.client("DOLISA").await;
    let err = labour
        .push_batch(header("big", proto::BatchKind::Delta, "2025-01", "2025-01-01"), tokio_stream::iter(vec![big]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::ResourceExhausted), "{err:?}");
    let records = app.wait_for_audit(1).await;
    let last = records.last().unwrap();
    assert_eq!(
        (last.entry.method.as_str(), last.entry.outcome.as_str()),
        ("/telesub.v1.HouseholdRegistry/PushBatch", "RESOURCE_EXHAUSTED")
    );
    assert!(matches!(labour.get_batch("big").await.unwrap_err(), Error::NotFound(_)));
}

#[tokio::test]
async fn a_unary_call_with_two_messages_is_refused() {
    let app = TestApp::spawn().await;
    let channel = raw::channel(&app, "VNPT").await;
    let status =
        raw::outcome(raw::stream(channel.clone(), "/telesub.v1.Members/WhoAmI", vec![vec![], vec![]]).await).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("one request message"), "{}", status.message());
    // No message at all is refused alike.
    let status = raw::outcome(raw::stream(channel.clone(), "/telesub.v1.Members/WhoAmI", vec![]).await).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // One is answered.
    let status = raw::outcome(raw::stream(channel, "/telesub.v1.Members/WhoAmI", vec![vec![]]).await).await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
}

#[tokio::test]
async fn text_that_would_show_other_than_it_is_is_refused_by_field() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let err = ict
        .register_member(proto::RegisterMemberRequest {
            code: "FAKE".into(),
            display_name: "Sở Thông tin\u{202E}TTTT".into(),
            role: proto::Role::Operator.into(),
            unit_code: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err:?}");
    assert_eq!(err.violations()[0].field, "display_name");
    assert!(err.violations()[0].description.contains("U+202E"), "{:?}", err.violations());
    let mut record = household("HH-1", "24611", 1);
    if let Some(proto::household_record::Change::Upsert(d)) = &mut record.change {
        d.address = "Thôn 3\u{2066}".into();
    }
    let err = app
        .client("DOLISA")
        .await
        .push_batch(header("b1", proto::BatchKind::Delta, "2025-01", "2025-01-01"), tokio_stream::iter(vec![record]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err:?}");
    assert!(err.violations()[0].field.ends_with("address"), "{:?}", err.violations());
}

/// A TLS client of the test's own, with the folder's certificate for `org`.
fn tls_client(app: &TestApp, org: &str) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let dir = app.dir();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(read(dir.ca_cert()).as_bytes()).unwrap()).unwrap();
    let chain = vec![CertificateDer::from_pem_slice(read(dir.client_cert(org)).as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(read(dir.client_key(org)).as_bytes()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn a_connection_that_never_speaks_http2_is_closed_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let app = TestApp::spawn_with(|s| s.tls.handshake_timeout_ms = 800).await;
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tls_client(&app, "VNPT").connect(name, tcp).await.expect("the handshake completes");
    // Says nothing: the hub hangs up once the handshake timeout has passed.
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
    let elapsed = started.elapsed();
    match read {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("the hub sent {n} bytes to a client that never spoke HTTP/2"),
        Err(_) => panic!("the connection is still open after 5 s"),
    }
    assert!(elapsed < Duration::from_secs(3), "closed only after {elapsed:?}");
    // A client that does speak is served as ever.
    app.client("VNPT").await.who_am_i().await.unwrap();
}

#[tokio::test]
async fn revoking_a_certificate_closes_its_open_connections() {
    let app = TestApp::spawn().await;
    let vnpt = app.builder("VNPT").retry(telesub_client::RetryPolicy::none()).connect().await.unwrap();
    let ict = app.client("DOICT").await;
    vnpt.who_am_i().await.expect("in before the revocation");
    telesub_server::pki::revoke(app.tls_dir.path(), &["VNPT".to_owned()]).unwrap();
    app.tls.reload().expect("reload");
    // The open connection is gone; the client's reconnection is refused at its handshake.
    let err = vnpt.who_am_i().await.expect_err("a revoked certificate still answered on its open connection");
    assert!(err.request_id().is_none(), "the call reached the hub: {err:?}");
    ict.who_am_i().await.expect("other members' connections stay open");
}

#[tokio::test]
async fn a_certificate_that_expires_while_connected_loses_its_connection() {
    let app = TestApp::spawn().await;
    let now = time::OffsetDateTime::now_utc();
    let short = Validity { not_before: now - time::Duration::hours(1), not_after: now + time::Duration::seconds(3) };
    let vnpt = app.client_with_new_certificate("VNPT", short).await.unwrap();
    vnpt.who_am_i().await.expect("valid for three seconds");
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The hub checks open connections every minute; the test asks it now.
    assert!(app.tls.recheck() >= 1, "no connection was closed");
    let err = vnpt.who_am_i().await.expect_err("an expired certificate still answered");
    assert!(err.request_id().is_none(), "the call reached the hub: {err:?}");
}

/// Every list of the API asked for one page of `page_size` from `page_token`, by method; the
/// audit checkpoints, which page by a record number rather than a token, only when `page_token`
/// is empty.
async fn every_list(ict: &Client, page_size: i32, page_token: &str) -> Vec<(&'static str, Result<(), Error>)> {
    let t = || page_token.to_owned();
    let mut answers = vec![
        (
            "ListMembers",
            ict.list_members(proto::ListMembersRequest { page_size, page_token: t(), ..Default::default() })
                .await
                .map(drop),
        ),
        ("ListBatches", ict.list_batches(proto::ListBatchesRequest { page_size, page_token: t() }).await.map(drop)),
        (
            "ListEnrollments",
            ict.list_enrollments(proto::ListEnrollmentsRequest { page_size, page_token: t(), ..Default::default() })
                .await
                .map(drop),
        ),
        (
            "ListReconciliations",
            ict.list_reconciliations(proto::ListReconciliationsRequest {
                page_size,
                page_token: t(),
                ..Default::default()
            })
            .await
            .map(drop),
        ),
        (
            "ListDiscrepancies",
            ict.list_discrepancies(proto::ListDiscrepanciesRequest {
                operator: "VNPT".into(),
                update_id: "none".into(),
                page_size,
                page_token: t(),
                ..Default::default()
            })
            .await
            .map(drop),
        ),
        ("ListAllocations", ict.list_allocations(page_size, page_token).await.map(drop)),
        (
            "ListAllocationRecipients",
            ict.list_allocation_recipients(proto::ListAllocationRecipientsRequest {
                decision_number: "none".into(),
                page_size,
                page_token: t(),
                ..Default::default()
            })
            .await
            .map(drop),
        ),
        (
            "ListInspections",
            ict.list_inspections(proto::InspectionStatus::Unspecified, page_size, page_token).await.map(drop),
        ),
        (
            "QueryAudit",
            ict.query_audit(proto::QueryAuditRequest { page_size, page_token: t(), ..Default::default() })
                .await
                .map(drop),
        ),
    ];
    if page_token.is_empty() {
        answers.push(("ListAuditCheckpoints", ict.list_audit_checkpoints(0, page_size).await.map(drop)));
    }
    answers
}

/// A token the hub never gave out (another list's, a negative or signed number, a NUL, 10,000
/// digits) is refused by every list the same way: INVALID_ARGUMENT naming `page_token`, without
/// echoing it whole, rather than read as a place to start.
#[tokio::test]
async fn every_list_refuses_a_page_token_it_did_not_give_naming_the_field() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let mut wrong = Vec::new();
    let long = "9".repeat(10_000);
    for token in ["not a token", "-1", "+7", "e-1", "e+7", "s-1", "a-1", "r-1", "i-1", "l-1", "\u{0}", &long] {
        let shown: String = token.chars().take(20).collect();
        for (method, answer) in every_list(&ict, 0, token).await {
            match answer {
                Ok(()) => wrong.push(format!("{method} with {shown:?}: answered")),
                Err(err) => {
                    let fields: Vec<_> = err.violations().iter().map(|v| v.field.as_str()).collect();
                    let text = err.to_string();
                    if err.code() != Some(Code::InvalidArgument) || fields != ["page_token"] || text.len() > 2_000 {
                        wrong.push(format!("{method} with {shown:?}: {}", text.chars().take(300).collect::<String>()));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every list of the API asked for a page it cannot give (a negative size, or more than that
/// list's most) is refused the same way: INVALID_ARGUMENT naming `page_size` and the size asked,
/// rather than a page of another size than asked.
#[tokio::test]
async fn every_list_refuses_a_page_size_it_cannot_give_naming_the_field() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    for size in [-1, 100_000] {
        for (method, answer) in every_list(&ict, size, "").await {
            let err = answer.expect_err(method);
            assert_eq!(err.code(), Some(Code::InvalidArgument), "{method} with {size}: {err}");
            let fields: Vec<_> = err.violations().iter().map(|v| v.field.as_str()).collect();
            assert_eq!(fields, ["page_size"], "{method} with {size}: {err}");
            let description = &err.violations()[0].description;
            assert!(description.contains(&size.to_string()), "{method} with {size}: {description}");
        }
    }
}

/// A day that is not in the calendar and a month that is not a month get one answer from every
/// read that takes them: INVALID_ARGUMENT naming the field, and the value in the description.
#[tokio::test]
async fn every_read_refuses_a_day_or_month_that_is_not_one_naming_the_field() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let vnpt = app.client("VNPT").await;
    const DAY: &str = "2025-02-30";
    const MONTH: &str = "2025-13";
    let citizen = || proto::check_eligibility_request::Key::CitizenId("001080000001".into());
    let answers: Vec<(&str, &str, Result<(), Error>)> = vec![
        ("GetPolicy", "as_of", ict.get_policy(DAY).await.map(drop)),
        ("CheckEligibility", "as_of", vnpt.check_eligibility(citizen(), DAY).await.map(drop)),
        ("GetHousehold", "as_of", ict.get_household("HH-1", DAY).await.map(drop)),
        ("FindHouseholds", "as_of", ict.find_by_citizen_id("001080000001", DAY).await.map(drop)),
        (
            "ListEnrollments",
            "active_on",
            ict.list_enrollments(proto::ListEnrollmentsRequest { active_on: DAY.into(), ..Default::default() })
                .await
                .map(drop),
        ),
        (
            "ListUnits",
            "as_of",
            ict.list_units(proto::ListUnitsRequest { as_of: DAY.into(), ..Default::default() }).await.map(drop),
        ),
        (
            "ListReconciliations",
            "period",
            ict.list_reconciliations(proto::ListReconciliationsRequest { period: MONTH.into(), ..Default::default() })
                .await
                .map(drop),
        ),
        (
            "GetProgrammeStatistics",
            "period",
            ict.get_programme_statistics(proto::GetProgrammeStatisticsRequest {
                period: MONTH.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        ),
        (
            "PublicStatistics",
            "period",
            ict.public_statistics(proto::PublicStatisticsRequest { period: MONTH.into(), ..Default::default() })
                .await
                .map(drop),
        ),
        ("ExportStatistics", "period", {
            match ict
                .export_statistics(proto::ExportStatisticsRequest {
                    period: MONTH.into(),
                    format: proto::StatisticsFormat::PublicCsv.into(),
                    ..Default::default()
                })
                .await
            {
                Ok(mut chunks) => match futures_util::StreamExt::next(&mut chunks).await {
                    Some(Err(e)) => Err(e),
                    _ => Ok(()),
                },
                Err(e) => Err(e),
            }
        }),
    ];
    let mut wrong = Vec::new();
    for (method, field, answer) in answers {
        let value = if field == "period" { MONTH } else { DAY };
        match answer {
            Ok(()) => wrong.push(format!("{method}: answered")),
            Err(err) => {
                let named: Vec<_> =
                    err.violations().iter().map(|v| (v.field.as_str(), v.description.as_str())).collect();
                let right = err.code() == Some(Code::InvalidArgument)
                    && named.len() == 1
                    && named[0].0 == field
                    && named[0].1.contains(value);
                if !right {
                    wrong.push(format!("{method}: {err} {named:?}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // An export with neither a format nor a month names both.
    let err = match ict
        .export_statistics(proto::ExportStatisticsRequest { period: MONTH.into(), ..Default::default() })
        .await
    {
        Ok(mut chunks) => futures_util::StreamExt::next(&mut chunks).await.and_then(Result::err),
        Err(e) => Some(e),
    }
    .expect("an export without a format is refused");
    let fields: Vec<_> = err.violations().iter().map(|v| v.field.as_str()).collect();
    assert_eq!((err.code(), fields), (Some(Code::InvalidArgument), vec!["format", "period"]), "{err}");
}

/// A list filtered by a number its enum does not have is refused naming the filter, on every
/// list with such a filter: read as "no filter", it answered every row for a filter the caller
/// meant to narrow.
#[tokio::test]
async fn every_list_refuses_a_filter_number_its_enum_does_not_have() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    const NONE: i32 = 99;
    let answers: Vec<(&str, &str, Result<(), Error>)> = vec![
        (
            "ListMembers",
            "role",
            ict.list_members(proto::ListMembersRequest { role: NONE, ..Default::default() }).await.map(drop),
        ),
        (
            "ListMembers",
            "status",
            ict.list_members(proto::ListMembersRequest { status: NONE, ..Default::default() }).await.map(drop),
        ),
        (
            "ListReconciliations",
            "status",
            ict.list_reconciliations(proto::ListReconciliationsRequest { status: NONE, ..Default::default() })
                .await
                .map(drop),
        ),
        (
            "ListDiscrepancies",
            "code",
            ict.list_discrepancies(proto::ListDiscrepanciesRequest {
                operator: "VNPT".into(),
                update_id: "none".into(),
                code: NONE,
                ..Default::default()
            })
            .await
            .map(drop),
        ),
        (
            "ListAllocationRecipients",
            "status",
            ict.list_allocation_recipients(proto::ListAllocationRecipientsRequest {
                decision_number: "none".into(),
                status: NONE,
                ..Default::default()
            })
            .await
            .map(drop),
        ),
        ("ListInspections", "status", {
            // The SDK takes the enum; the number goes by hand.
            let request = proto::ListInspectionsRequest { status: NONE, ..Default::default() }.encode_to_vec();
            let channel = raw::channel(&app, "DOICT").await;
            let status =
                raw::outcome(raw::open(channel, "/telesub.v1.Supervision/ListInspections", request).await).await;
            if status.code() == tonic::Code::Ok { Ok(()) } else { Err(Error::from(status)) }
        }),
        (
            "ListUnits",
            "level",
            ict.list_units(proto::ListUnitsRequest { level: NONE, ..Default::default() }).await.map(drop),
        ),
    ];
    let mut wrong = Vec::new();
    for (method, field, answer) in answers {
        match answer {
            Ok(()) => wrong.push(format!("{method} with {field} {NONE}: answered")),
            Err(err) => {
                let named: Vec<_> =
                    err.violations().iter().map(|v| (v.field.as_str(), v.description.as_str())).collect();
                if err.code() != Some(Code::InvalidArgument)
                    || named.len() != 1
                    || named[0].0 != field
                    || !named[0].1.contains("99")
                {
                    wrong.push(format!("{method} with {field} {NONE}: {err} {named:?}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A list's lines filtered by a commune that is not a commune's code are refused naming `unit`:
/// read as given, the filter matched nothing and the list looked clean there.
#[tokio::test]
async fn discrepancies_filtered_by_a_unit_that_is_not_a_commune_code_are_refused() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    for unit in ["Gia Nghĩa", "660", "67", "6604"] {
        let err = ict
            .list_discrepancies(proto::ListDiscrepanciesRequest {
                operator: "VNPT".into(),
                update_id: "none".into(),
                unit: unit.into(),
                ..Default::default()
            })
            .await
            .expect_err(unit);
        let named: Vec<_> = err.violations().iter().map(|v| (v.field.as_str(), v.description.as_str())).collect();
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{unit}: {err}");
        assert!(named.len() == 1 && named[0].0 == "unit" && named[0].1.contains(unit), "{unit}: {named:?}");
    }
}

/// Enrolments and monthly lists filtered by a household or an operator that is not a code are
/// refused naming the filter: read as given, they matched nothing and ICT saw a household with
/// no lines, or an operator with no lists.
#[tokio::test]
async fn lists_filtered_by_what_is_not_a_code_are_refused_naming_the_filter() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let enrolments = |household_code: &str, operator: &str| proto::ListEnrollmentsRequest {
        household_code: household_code.into(),
        operator: operator.into(),
        ..Default::default()
    };
    let mut answers = Vec::new();
    for (request, field, value) in [
        (enrolments("hộ 12", ""), "household_code", "hộ 12"),
        (enrolments("", "vnpt"), "operator", "vnpt"),
        (enrolments("", "VNPT; --"), "operator", "VNPT; --"),
    ] {
        answers.push((field, value, ict.list_enrollments(request).await.map(drop)));
    }
    for value in ["vnpt", "VNPT; --"] {
        let request = proto::ListReconciliationsRequest { operator: value.into(), ..Default::default() };
        answers.push(("operator", value, ict.list_reconciliations(request).await.map(drop)));
    }
    for (field, value, answer) in answers {
        let err = answer.expect_err(value);
        let named: Vec<_> = err.violations().iter().map(|v| (v.field.as_str(), v.description.as_str())).collect();
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{value}: {err}");
        assert!(named.len() == 1 && named[0].0 == field && named[0].1.contains(value), "{value}: {named:?}");
    }
}
